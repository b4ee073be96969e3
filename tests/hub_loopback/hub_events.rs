//! `Hub::events`: the async event stream next to the callbacks, over real TCP on 127.0.0.1.

use ship_hub::hub::PairedPeer;
use std::time::Duration;

use crate::common::{Recorder, Seen, identity, loopback_config, start};
use ship_hub::{ConnectionState, DecideLater, HubEvent, HubEvents, PairingDecision, Ski};

const WAIT: Duration = Duration::from_secs(20);

/// What a stream event is, in the recorder's terms (for comparing the two views).
fn seen(event: &HubEvent) -> Option<Seen> {
    Some(match event {
        HubEvent::StateChanged { ski, state, .. } => Seen::State(*ski, *state),
        HubEvent::Connected { ski, .. } => Seen::Connected(*ski),
        HubEvent::Disconnected { ski, reason } => Seen::Disconnected(*ski, reason.to_string()),
        HubEvent::PairingRequested { request, .. } => Seen::PairingRequested(request.ski),
        HubEvent::Data(delivery) => Seen::Data(delivery.ski(), delivery.payload().to_vec()),
        HubEvent::ShipIdLearned { ski, ship_id } => Seen::ShipId(*ski, ship_id.clone()),
        _ => return None,
    })
}

fn about(ski: Ski, seen: &Seen) -> bool {
    match seen {
        Seen::State(s, _)
        | Seen::Connected(s)
        | Seen::Disconnected(s, _)
        | Seen::PairingRequested(s)
        | Seen::Data(s, _)
        | Seen::ShipId(s, _) => *s == ski,
        _ => false,
    }
}

/// Reads the stream until `pred` holds for an event (returned), at most `WAIT`.
async fn next_until(events: &mut HubEvents, pred: impl Fn(&HubEvent) -> bool) -> HubEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("the stream ended early");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event did not come")
}

/// The stream and the callbacks are views of one dispatcher: for a peer that pairs, exchanges
/// data and goes away, the stream yields the same happenings in the same order as the
/// callbacks, and it ends after the hub shut down.
#[tokio::test]
async fn an_event_stream_sees_what_the_callbacks_see_in_the_same_order() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let mut events = a.events();
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    let b_ski = b.local_ski();
    b.pair(a.local_ski()).unwrap();
    a.pair(PairedPeer::new(b_ski).with_address(b.local_addr()))
        .unwrap();
    assert!(ra.wait_for(WAIT, |s| *s == Seen::Connected(b_ski)).await);
    for n in 0..3 {
        b.send_data(a.local_ski(), format!("{{\"n\":{n}}}").as_bytes())
            .unwrap();
    }
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Data(b_ski, b"{\"n\":2}".to_vec()))
            .await
    );
    b.shutdown().await;
    assert!(
        ra.wait_for(
            WAIT,
            |s| matches!(s, Seen::Disconnected(k, _) if *k == b_ski)
        )
        .await
    );
    a.shutdown().await;
    let mut streamed = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            streamed.extend(seen(&event));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end after shutdown");
    let called: Vec<Seen> = ra.all().into_iter().filter(|s| about(b_ski, s)).collect();
    let streamed: Vec<Seen> = streamed.into_iter().filter(|s| about(b_ski, s)).collect();
    assert!(called.len() >= 6, "{called:?}");
    assert_eq!(streamed, called);
}

/// An application that decides from the stream: with `DecideLater` the request waits, the
/// stream says so, `approve` lets it through.
#[tokio::test]
async fn a_pairing_request_is_decided_from_the_stream() {
    let rb = Recorder::new();
    let mut ca = loopback_config(identity("a"), "node-a", &Recorder::new());
    ca.callbacks = std::sync::Arc::new(DecideLater);
    let a = start(ca).await;
    let mut events = a.events();
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    b.pair(PairedPeer::new(a.local_ski()).with_address(a.local_addr()))
        .unwrap();
    let request = next_until(&mut events, |e| {
        matches!(e, HubEvent::PairingRequested { .. })
    })
    .await;
    let HubEvent::PairingRequested { request, decision } = request else {
        unreachable!()
    };
    assert_eq!(request.ski, b.local_ski());
    assert_eq!(decision, PairingDecision::Ask);
    assert_eq!(
        a.connection_state(request.ski),
        ConnectionState::ReceivedPairingRequest
    );
    a.approve(request.ski).unwrap();
    next_until(
        &mut events,
        |e| matches!(e, HubEvent::Connected { ski, .. } if *ski == request.ski),
    )
    .await;
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::Connected(a.local_ski()))
            .await
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// A stream that is not read keeps at most `max_queued_events` events other than data; the
/// rest are dropped and counted, and the next event after room is made says how many
/// (`Lagged`), so nothing is lost silently and memory stays bounded.
#[tokio::test]
async fn an_unread_stream_drops_events_beyond_its_cap_and_says_how_many() {
    let ra = Recorder::new();
    let mut ca = loopback_config(identity("a"), "node-a", &ra);
    ca.limits.max_queued_events = 3;
    let a = start(ca).await;
    let mut events = a.events();
    // Pairing and unpairing a peer that is nowhere: Queued, None, Queued, None, ... Each step
    // waits until the callbacks had its change, so the dispatcher has offered it to the stream.
    let nowhere = identity("nowhere").ski();
    let changes = |ra: &Recorder| ra.count(|s| matches!(s, Seen::State(k, _) if *k == nowhere));
    for step in 0..20 {
        if step % 2 == 0 {
            a.pair(nowhere).unwrap();
        } else {
            a.unpair(nowhere).unwrap();
        }
        tokio::time::timeout(WAIT, async {
            while changes(&ra) <= step {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("a state change per step");
    }
    assert_eq!(changes(&ra), 20, "{:?}", ra.all());
    let mut kept = Vec::new();
    while let Some(event) = events.try_next() {
        kept.push(event);
    }
    assert_eq!(kept.len(), 3, "{kept:?}");
    // Room again: the next event comes after a count of the dropped ones.
    a.pair(nowhere).unwrap();
    let lagged = next_until(&mut events, |_| true).await;
    let HubEvent::Lagged { missed } = lagged else {
        panic!("expected Lagged, got {lagged:?}")
    };
    assert_eq!(missed, 17);
    let next = next_until(&mut events, |_| true).await;
    assert!(
        matches!(next, HubEvent::StateChanged { ski, state: ConnectionState::Queued, .. } if ski == nowhere),
        "{next:?}"
    );
    a.shutdown().await;
}

/// A data event holds its peer's inbound budget while it waits in a stream (as a `Delivery` a
/// callback keeps would), and releases it when the event is dropped.
#[tokio::test]
async fn a_data_event_holds_the_inbound_budget_until_it_is_dropped() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let mut events = a.events();
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    b.pair(a.local_ski()).unwrap();
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Connected(b.local_ski()))
            .await
    );
    let payload = br#"{"held":"by the stream"}"#;
    b.send_data(a.local_ski(), payload).unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Data(b.local_ski(), payload.to_vec()))
            .await
    );
    // The callback has returned (its copy is gone); the stream's copy still holds the bytes.
    assert!(a.metrics().inbound_queued_bytes >= payload.len() as u64);
    let data = next_until(&mut events, |e| matches!(e, HubEvent::Data(_))).await;
    assert!(a.metrics().inbound_queued_bytes >= payload.len() as u64);
    drop(data);
    assert_eq!(a.metrics().inbound_queued_bytes, 0);
    b.shutdown().await;
    a.shutdown().await;
}

/// `Hub::start_with_events`: the stream is subscribed before the hub runs anything, so it
/// yields everything the callbacks hear from the very first event: here a paired peer that
/// the hub dials as it starts, on a multi-threaded runtime (a stream taken with `events()`
/// after `start` and 50 ms of other work misses its first state, `Queued`: 10 of 10 runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_from_the_start_sees_every_event_from_the_first() {
    use ship_hub::hub::{Hub, MemoryTrustStore, PairedPeer, TrustStore};
    let rb = Recorder::new();
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    let b_ski = b.local_ski();
    let ra = Recorder::new();
    let mut ca = loopback_config(identity("a"), "node-a", &ra);
    let trust = std::sync::Arc::new(MemoryTrustStore::new());
    let mut peer = PairedPeer::new(b_ski);
    peer.last_address = Some(b.local_addr());
    trust.upsert(peer).unwrap();
    ca.trust_store = trust;
    b.pair(ca.identity.ski()).unwrap();
    let (a, mut events) = Hub::start_with_events(ca).await.expect("hub starts");
    // The application does other things before it reads (the gateway starts its prompt and
    // its events task): the hub's other workers dial meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(ra.wait_for(WAIT, |s| *s == Seen::Connected(b_ski)).await);
    a.shutdown().await;
    b.shutdown().await;
    let mut streamed = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            streamed.extend(seen(&event));
        }
    })
    .await
    .expect("the stream ends after shutdown");
    let called: Vec<Seen> = ra.all().into_iter().filter(|s| about(b_ski, s)).collect();
    let streamed: Vec<Seen> = streamed.into_iter().filter(|s| about(b_ski, s)).collect();
    assert!(
        matches!(called.first(), Some(Seen::State(_, _))),
        "{called:?}"
    );
    assert_eq!(streamed, called);
}
