//! The application's pairing decision (`Callbacks::pairing_requested` returns a
//! `PairingDecision`), and the details a request carries, on the simulated LAN with the
//! in-memory discovery under tokio's paused clock (part of the `hub_discovery` test binary).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{
    OnPairingRequested, Recorder, Seen, identity, lan_addr, lan_config, paused_runtime, start,
};
use ship_hub::discovery::{InMemoryLan, InstanceName, TxtField, TxtValue};
use ship_hub::hub::{
    DeviceInfo, FailureCounts, Hub, HubError, MemoryLan, MemoryTrustStore, PairedPeer,
    PairingDecision, TrustStore, TrustStoreError,
};
use ship_hub::identity::Identity;
use ship_hub::protocol::ConnectionState;
use ship_hub::{ShipId, Ski};

const WAIT: Duration = Duration::from_secs(30);

/// A at 10.0.0.1 (announcing itself as a wallbox over the in-memory mDNS) and B at 10.0.0.2,
/// which does not know A. A is paired with B and dials it; B's application answers `decision`
/// (`None`: the recorder's default, a refusal).
struct Pairing {
    net: MemoryLan,
    a: Hub,
    b: Hub,
    ra: Arc<Recorder>,
    rb: Arc<Recorder>,
    trust_b: Arc<MemoryTrustStore>,
    b_identity: Identity,
}

fn wallbox() -> DeviceInfo {
    let mut device = DeviceInfo::default();
    device.instance_name = Some(InstanceName::new("Garage wallbox").unwrap());
    device.brand = Some(TxtValue::new(TxtField::Brand, "Demo Brand").unwrap());
    device.model = Some(TxtValue::new(TxtField::Model, "WB-22").unwrap());
    device.device_type = Some(TxtValue::new(TxtField::DeviceType, "EVSE").unwrap());
    device.serial = Some(TxtValue::new(TxtField::Serial, "SN-0042").unwrap());
    device
}

/// Starts A and B; B's recorder answers `decision`. With `mdns`, both announce and browse and
/// A is dialled only once B sees A's announcement.
async fn start_pair(decision: Option<PairingDecision>, mdns_on: bool) -> Pairing {
    start_pair_with(decision, mdns_on, |_| None).await
}

/// Like [`start_pair`]; `hook` (given B's hub) runs inside B's `pairing_requested`, installed
/// before A dials.
async fn start_pair_with(
    decision: Option<PairingDecision>,
    mdns_on: bool,
    hook: impl FnOnce(Hub) -> Option<OnPairingRequested>,
) -> Pairing {
    let net = MemoryLan::new();
    let mdns = InMemoryLan::new();
    let (ida, idb) = (identity("a"), identity("b"));
    let (a_ski, b_ski) = (ida.ski(), idb.ski());
    let (ra, rb) = (Recorder::new(), Recorder::new());
    *rb.decision.lock().unwrap() = decision;
    let trust_b = Arc::new(MemoryTrustStore::default());
    let mut ca = lan_config(&net, 1, ida, &ra);
    ca.device = wallbox();
    let mut cb = lan_config(&net, 2, idb.clone(), &rb);
    cb.trust_store = trust_b.clone();
    if mdns_on {
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        cb.discovery = Some(Arc::new(mdns.attach(b_ski, vec![lan_addr(2).ip()])));
    }
    let a = start(ca).await;
    let b = start(cb).await;
    if mdns_on {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(b.visible_services().iter().any(|s| s.ski == a_ski));
    }
    if let Some(hook) = hook(b.clone()) {
        let _ = rb.on_pairing_requested.set(hook);
    }
    a.pair(PairedPeer::new(b_ski).with_address(lan_addr(2)))
        .unwrap();
    Pairing {
        net,
        a,
        b,
        ra,
        rb,
        trust_b,
        b_identity: idb,
    }
}

impl Pairing {
    fn skis(&self) -> (Ski, Ski) {
        (self.a.local_ski(), self.b.local_ski())
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

/// Accept now: B reaches data exchange with A with no `approve` call, and the pairing is in
/// B's trust store, exactly as an approval leaves it: a restarted B (same identity, same
/// store, an application that would refuse) is redialled by A and connects without a question.
#[test]
fn accept_now_reaches_data_exchange_without_approve_and_is_stored() {
    paused_runtime().block_on(async {
        let p = start_pair(Some(PairingDecision::Accept), false).await;
        let (a_ski, b_ski) = p.skis();
        assert!(
            p.rb.wait_for(WAIT, |s| *s == Seen::Connected(a_ski)).await,
            "{:?}",
            p.rb.all()
        );
        assert!(p.ra.wait_for(WAIT, |s| *s == Seen::Connected(b_ski)).await);
        assert_eq!(p.rb.count(|s| *s == Seen::PairingRequested(a_ski)), 1);
        p.b.pairings_saved().await.unwrap();
        assert!(p.trust_b.get(&a_ski).unwrap().is_some(), "not stored");
        // Data flows both ways.
        p.a.send_data(b_ski, br#"{"x":1}"#).unwrap();
        p.b.send_data(a_ski, br#"{"y":2}"#).unwrap();
        assert!(
            p.rb.wait_for(WAIT, |s| *s == Seen::Data(a_ski, br#"{"x":1}"#.to_vec()))
                .await
        );
        assert!(
            p.ra.wait_for(WAIT, |s| *s == Seen::Data(b_ski, br#"{"y":2}"#.to_vec()))
                .await
        );
        // The SHIP ID A proved is stored with the pairing, as after an approval.
        for _ in 0..100 {
            if p.trust_b.get(&a_ski).unwrap().unwrap().ship_id.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stored = p.trust_b.get(&a_ski).unwrap().unwrap();
        assert_eq!(
            stored.ship_id.as_ref().map(ShipId::as_str),
            Some("test-node-1")
        );

        // B restarts: its pairing with A holds with no question asked.
        p.b.shutdown().await;
        let rb2 = Recorder::new();
        let mut cb2 = lan_config(&p.net, 2, p.b_identity.clone(), &rb2);
        cb2.trust_store = p.trust_b.clone();
        let b2 = start(cb2).await;
        assert!(
            rb2.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(a_ski))
                .await,
            "{:?}",
            rb2.all()
        );
        assert_eq!(rb2.count(|s| matches!(s, Seen::PairingRequested(_))), 0);
        p.a.shutdown().await;
        b2.shutdown().await;
    });
}

/// The outcome on the dialling side of a refused request: the states it showed for the
/// refusing peer up to RemoteDeniedTrust (empty if that never came), and its failure counters
/// once the connection ended.
async fn refusal_seen_by_the_dialler(p: &Pairing) -> (Vec<ConnectionState>, FailureCounts) {
    let (_, b_ski) = p.skis();
    let denied = Seen::State(b_ski, ConnectionState::RemoteDeniedTrust);
    if !p.ra.wait_for(WAIT, |s| *s == denied).await {
        return (Vec::new(), p.a.metrics().failures);
    }
    // Let the connection end (its counters are updated then), well before any redial.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let states =
        p.ra.all()
            .into_iter()
            .filter_map(|s| match s {
                Seen::State(ski, state) if ski == b_ski => Some(state),
                _ => None,
            })
            .collect::<Vec<_>>();
    let end = states
        .iter()
        .position(|s| *s == ConnectionState::RemoteDeniedTrust)
        .expect("seen");
    (states[..=end].to_vec(), p.a.metrics().failures)
}

/// Refuse now ends the request exactly as `Hub::deny` does: the dialler shows the same states
/// ending in RemoteDeniedTrust and counts the same failures, nothing is stored, nothing
/// connects, and no request is left to approve.
#[test]
fn refuse_now_closes_like_deny_and_stores_nothing() {
    paused_runtime().block_on(async {
        // Refused by the callback.
        let refused = start_pair(Some(PairingDecision::Refuse), false).await;
        let (a_ski, b_ski) = refused.skis();
        let by_refusal = refusal_seen_by_the_dialler(&refused).await;
        // Stop A from redialling.
        refused.a.unpair(b_ski).unwrap();
        assert!(refused.trust_b.get(&a_ski).unwrap().is_none());
        assert_eq!(refused.rb.count(|s| matches!(s, Seen::Connected(_))), 0);
        assert!(matches!(
            refused.b.approve(a_ski),
            Err(HubError::NoPendingRequest(_))
        ));
        refused.shutdown().await;

        // Asked, then denied by the user.
        let denied_later = start_pair(Some(PairingDecision::Ask), false).await;
        let (a_ski, b_ski) = denied_later.skis();
        let request = Seen::State(a_ski, ConnectionState::ReceivedPairingRequest);
        assert!(denied_later.rb.wait_for(WAIT, |s| *s == request).await);
        denied_later.b.deny(a_ski).unwrap();
        let by_deny = refusal_seen_by_the_dialler(&denied_later).await;
        denied_later.a.unpair(b_ski).unwrap();
        assert!(denied_later.trust_b.get(&a_ski).unwrap().is_none());
        assert_eq!(
            denied_later.rb.count(|s| matches!(s, Seen::Connected(_))),
            0
        );
        denied_later.shutdown().await;

        assert_eq!(
            by_refusal.0.last(),
            Some(&ConnectionState::RemoteDeniedTrust),
            "{by_refusal:?}"
        );
        assert_eq!(by_refusal, by_deny);
    });
}

/// Ask keeps the request waiting (nothing stored, nothing connected) until `approve`, which
/// then pairs as before.
#[test]
fn ask_waits_for_approve() {
    paused_runtime().block_on(async {
        let p = start_pair(Some(PairingDecision::Ask), false).await;
        let (a_ski, b_ski) = p.skis();
        let request = Seen::State(a_ski, ConnectionState::ReceivedPairingRequest);
        assert!(
            p.rb.wait_for(WAIT, |s| *s == request).await,
            "{:?}",
            p.rb.all()
        );
        // A while later (within the hello wait) it still waits.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            p.b.connection_state(a_ski),
            ConnectionState::ReceivedPairingRequest
        );
        assert!(p.trust_b.get(&a_ski).unwrap().is_none());
        assert_eq!(p.rb.count(|s| matches!(s, Seen::Connected(_))), 0);
        p.b.approve(a_ski).unwrap();
        assert!(p.rb.wait_for(WAIT, |s| *s == Seen::Connected(a_ski)).await);
        assert!(p.ra.wait_for(WAIT, |s| *s == Seen::Connected(b_ski)).await);
        p.b.pairings_saved().await.unwrap();
        assert!(p.trust_b.get(&a_ski).unwrap().is_some());
        p.shutdown().await;
    });
}

/// The request names the peer: its proven SKI and address, and what its mDNS record
/// announces (SHIP ID, instance name, brand, model, type, serial). Without a discovery only
/// the SKI and address are known.
#[test]
fn the_request_carries_the_peers_announced_details() {
    paused_runtime().block_on(async {
        let p = start_pair(Some(PairingDecision::Ask), true).await;
        let (a_ski, _) = p.skis();
        assert!(
            p.rb.wait_for(WAIT, |s| *s == Seen::PairingRequested(a_ski))
                .await,
            "{:?}",
            p.rb.all()
        );
        let request = p.rb.requests.lock().unwrap()[0].clone();
        assert_eq!(request.ski, a_ski);
        assert_eq!(request.address.ip(), lan_addr(1).ip());
        assert_eq!(
            request.ship_id.as_ref().map(ShipId::as_str),
            Some("test-node-1")
        );
        assert_eq!(request.instance_name.as_deref(), Some("Garage wallbox"));
        assert_eq!(request.brand.as_deref(), Some("Demo Brand"));
        assert_eq!(request.model.as_deref(), Some("WB-22"));
        assert_eq!(request.device_type.as_deref(), Some("EVSE"));
        assert_eq!(request.serial.as_deref(), Some("SN-0042"));
        p.shutdown().await;

        let p = start_pair(Some(PairingDecision::Ask), false).await;
        let (a_ski, _) = p.skis();
        assert!(
            p.rb.wait_for(WAIT, |s| *s == Seen::PairingRequested(a_ski))
                .await
        );
        let request = p.rb.requests.lock().unwrap()[0].clone();
        assert_eq!(request.ski, a_ski);
        assert_eq!(request.address.ip(), lan_addr(1).ip());
        assert_eq!(
            (
                request.ship_id,
                request.instance_name,
                request.brand,
                request.model,
                request.device_type,
                request.serial
            ),
            (None, None, None, None, None, None)
        );
        p.shutdown().await;
    });
}

/// What the callback saw and what its `approve` returned.
type Answered = (ConnectionState, Result<(), String>);

/// The order of events: the request is published (state ReceivedPairingRequest, and
/// `Hub::connection_state` says so) before `pairing_requested` is called, so an application
/// that calls `approve` from inside the callback finds the request waiting.
#[test]
fn the_request_is_pending_before_the_application_is_asked() {
    paused_runtime().block_on(async {
        let answered: Arc<Mutex<Vec<Answered>>> = Arc::default();
        let seen = answered.clone();
        let p = start_pair_with(Some(PairingDecision::Ask), false, move |hub| {
            Some(Box::new(move |request| {
                let state = hub.connection_state(request.ski);
                let result = hub.approve(request.ski).map_err(|e| e.to_string());
                seen.lock().unwrap().push((state, result));
            }))
        })
        .await;
        let (a_ski, b_ski) = p.skis();
        assert!(
            p.rb.wait_for(WAIT, |s| *s == Seen::Connected(a_ski)).await,
            "{:?}",
            p.rb.all()
        );
        assert!(p.ra.wait_for(WAIT, |s| *s == Seen::Connected(b_ski)).await);
        assert_eq!(
            *answered.lock().unwrap(),
            [(ConnectionState::ReceivedPairingRequest, Ok(()))]
        );
        let all = p.rb.all();
        let state_at = all
            .iter()
            .position(|s| *s == Seen::State(a_ski, ConnectionState::ReceivedPairingRequest))
            .expect("state reported");
        let asked_at = all
            .iter()
            .position(|s| *s == Seen::PairingRequested(a_ski))
            .expect("asked");
        assert!(state_at < asked_at, "{all:?}");
        p.b.pairings_saved().await.unwrap();
        assert!(p.trust_b.get(&a_ski).unwrap().is_some());
        p.shutdown().await;
    });
}

/// An acceptance whose write fails still pairs the peer (the hub's pairings are in memory;
/// admission and approval never wait for the disk): it connects, and the failed write is
/// reported, with the store's error, to the next `pairings_saved`.
#[test]
fn accept_now_with_a_store_that_fails_pairs_and_reports_the_failed_write() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        *rb.decision.lock().unwrap() = Some(PairingDecision::Accept);
        let a = start(lan_config(&net, 1, ida, &ra)).await;
        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.trust_store = Arc::new(ship_test_support::stores::TestStore::failing_upserts(
            "read-only",
        ));
        let b = start(cb).await;
        a.pair(PairedPeer::new(b_ski).with_address(lan_addr(2)))
            .unwrap();
        assert!(
            rb.wait_for(WAIT, |s| *s == Seen::Connected(a_ski)).await,
            "{:?}",
            rb.all()
        );
        assert!(b.pairing(a_ski).is_some());
        match b.pairings_saved().await {
            Err(HubError::TrustStore(TrustStoreError::Io { path, .. })) => {
                assert_eq!(path, std::path::Path::new("read-only"));
            }
            other => panic!("{other:?}"),
        }
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// Auto-accept with a required PIN: a key that sent the PIN is paired then, also when the
/// store cannot write it (reported to `pairings_saved`): the connection reaches data exchange
/// and the peer is paired in memory.
#[test]
fn a_verified_pin_under_auto_accept_pairs_even_when_the_write_fails() {
    use ship_hub::protocol::{Pin, PinRequirement};
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let pin = Pin::new("FFFF0000").unwrap();
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.default_peer_pin = Some(pin.clone());
        let a = start(ca).await;
        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.trust_store = Arc::new(ship_test_support::stores::TestStore::failing_upserts(
            "read-only",
        ));
        cb.auto_accept = true;
        cb.pin_requirement = PinRequirement::Required(pin);
        let b = start(cb).await;
        a.pair(PairedPeer::new(b_ski).with_address(lan_addr(2)))
            .unwrap();
        assert!(
            rb.wait_for(WAIT, |s| *s == Seen::Connected(a_ski)).await,
            "{:?}",
            rb.all()
        );
        assert!(b.metrics().pin.verified >= 1);
        assert!(b.pairing(a_ski).is_some());
        assert!(matches!(
            b.pairings_saved().await,
            Err(HubError::TrustStore(_))
        ));
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// On a multi-threaded runtime (the callback dispatcher and the supervisor on different
/// threads, real time), an immediate answer always lands: accept-now, and an `approve` made
/// from inside the callback, each complete every time and store the pairing.
#[test]
fn immediate_answers_land_on_a_multi_threaded_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for round in 0..10 {
            let from_callback = round % 2 == 1;
            let decision = if from_callback {
                PairingDecision::Ask
            } else {
                PairingDecision::Accept
            };
            let errors: Arc<Mutex<Vec<String>>> = Arc::default();
            let seen = errors.clone();
            let p = start_pair_with(Some(decision), false, move |hub| {
                from_callback.then(|| -> OnPairingRequested {
                    Box::new(move |request| {
                        if let Err(error) = hub.approve(request.ski) {
                            seen.lock().unwrap().push(error.to_string());
                        }
                    })
                })
            })
            .await;
            let (a_ski, b_ski) = p.skis();
            assert!(
                p.rb.wait_for(WAIT, |s| *s == Seen::Connected(a_ski)).await,
                "round {round}: {:?}",
                p.rb.all()
            );
            assert!(p.ra.wait_for(WAIT, |s| *s == Seen::Connected(b_ski)).await);
            p.b.pairings_saved().await.unwrap();
            assert!(p.trust_b.get(&a_ski).unwrap().is_some());
            assert!(errors.lock().unwrap().is_empty(), "{errors:?}");
            p.shutdown().await;
        }
    });
}
