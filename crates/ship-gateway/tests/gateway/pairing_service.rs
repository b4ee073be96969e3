//! The gateway and the SHIP Pairing Service over real mDNS, inside the private network namespace
//! (`#[ignore]`d in a plain `cargo test`; `bash .ci/test` runs it): a ship-hub device that knows
//! the gateway's pairing secret pairs itself with no `pair` command.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ship_hub::discovery::{MdnsConfig, MdnsDiscovery};
use ship_hub::hub::RequestPairing;
use ship_hub::identity::Identity;
use ship_hub::pairing_service::{Fingerprint, PairingSecret};
use ship_test_support::common::{
    MULTICAST, Recorder, Seen, assert_private_namespace, identity, loopback_config, start,
};

use crate::gateway_support::BIN;

const PATIENCE: Duration = Duration::from_secs(30);

fn mdns(ski: ship_hub::Ski) -> Arc<MdnsDiscovery> {
    assert_private_namespace();
    Arc::new(MdnsDiscovery::new(MdnsConfig::new(ski)).expect("mDNS daemon"))
}

/// `ship-gateway run --pairing-secret-file`: a ship-hub device that knows the gateway's secret
/// pairs itself over mDNS with no `pair` command; the gateway reports `paired_by_service` in its
/// JSON event log, then `connected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via `bash .ci/test`"]
async fn the_gateway_pairs_a_device_through_the_pairing_service_over_mdns() {
    let _turn = MULTICAST.read().await;
    assert_private_namespace();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let secret_file = tmp.path().join("pairing-secret");
    crate::gateway_support::write_secret(&secret_file, "0A1B2C3D4E5F60718293A4B5C6D7E8F9\n");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "run",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--json",
            "--no-prompt",
        ])
        .arg("--pairing-secret-file")
        .arg(&secret_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, events) = std::sync::mpsc::channel::<Value>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx
                .send(serde_json::from_str(&line).expect("JSON line"))
                .is_err()
            {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str, f: &dyn Fn(&Value) -> bool| -> Value {
        if let Some(v) = seen.iter().find(|v| f(v)) {
            return Value::clone(v);
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match events.recv_timeout(left) {
                Ok(v) => {
                    seen.push(v.clone());
                    if f(&v) {
                        return v;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} from the gateway; saw {seen:#?}");
    };
    let listening = wait_for("listening", &|v| v["event"] == "listening");
    let gateway_ship_id = listening["ship_id"].as_str().unwrap().to_owned();
    let gateway_ski: ship_hub::Ski = listening["ski"].as_str().unwrap().parse().unwrap();
    let gateway_identity = Identity::load(&dir).expect("the gateway's identity");
    let fingerprint = Fingerprint::of_certificate(gateway_identity.certificate_der());

    let device_id = identity("device");
    let device_ski = device_id.ski();
    let recorder = Recorder::new();
    let mut config = loopback_config(device_id, "psvc-gateway-device", &recorder);
    config.discovery = Some(mdns(device_ski));
    config.pairing_service.request = Some(RequestPairing::new(
        ship_hub::ShipId::new(gateway_ship_id).unwrap(),
        gateway_ski,
        fingerprint,
        PairingSecret::from_hex("0a1b2c3d4e5f60718293a4b5c6d7e8f9").unwrap(),
    ));
    let device = start(config).await;
    let device_hex = device_ski.to_string();
    let paired = tokio::task::block_in_place(|| {
        wait_for("paired_by_service", &|v| {
            v["event"] == "paired_by_service" && v["ski"] == device_hex.as_str()
        })
    });
    assert_eq!(paired["ship_id"], "psvc-gateway-device");
    assert!(paired["displaced"].is_null());
    // The replay guard is kept in the data directory: one honoured digest.
    let replay = std::fs::read_to_string(dir.join("pairing-replay")).expect("pairing-replay");
    assert_eq!(replay.lines().count(), 1, "{replay:?}");
    assert_eq!(replay.trim().len(), 64);
    tokio::task::block_in_place(|| {
        wait_for("connected", &|v| {
            v["event"] == "connected" && v["ski"] == device_hex.as_str()
        })
    });
    assert!(
        recorder
            .wait_for(PATIENCE, |s| *s == Seen::Connected(gateway_ski))
            .await
    );
    device.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();
}

/// The gateway in both roles of the SHIP Pairing Service against the `eebus` crate, over real
/// mDNS in the private namespace: an eebus control unit pairs itself with the gateway (energy
/// manager), and the gateway (control unit, `pair --pairing-service`) pairs itself with an
/// eebus energy manager; data flows both ways after each pairing.
pub(crate) mod eebus_peers {
    use super::*;
    use eebus::cert::{self as eebus_cert, CertParams};
    use eebus::mdns::Mdns as TheirMdns;
    use eebus::model::{self as spine, Function};
    use eebus::runtime::{Hub as TheirHub, HubEvent, Node, TrustStore as TheirTrust};
    use eebus::ship::pairing::{
        Nonce as TheirNonce, PairingRequest as TheirRequest, PairingSecret as TheirSecret,
        Receiver as TheirReceiver,
    };
    use eebus::ship::{
        Data, DataMessage, Header as ShipHeader, ProtocolId, ShipMessage, ShipTxtRecord,
        Ski as TheirSki,
    };
    use eebus::spine::{device_address, node_management};
    use eebus::tls::ShipTls as TheirTls;
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;
    use tokio::sync::mpsc;

    use crate::gateway_support::{Running, assert_ok, gateway, json_line, stdout};

    const SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const THEIR_EM: &str = "i:46925_u:their-em";

    /// An `eebus` crate node with a new identity (SHIP ID `ship_id`) that trusts `trust`.
    pub(crate) fn their_node(ship_id: &str, trust: TheirTrust) -> Node {
        let identity = eebus_cert::self_signed(CertParams::new(ship_id)).expect("eebus identity");
        Node::new(ship_id, TheirTls::new(identity), trust)
    }

    /// A minimal SPINE device (one CEM entity with a generic client feature) for an `eebus`
    /// crate hub.
    pub(crate) fn spine_engine(unique: &str) -> eebus::spine::Engine {
        use eebus::model::{DeviceType, EntityType, FeatureType, Role as SpineRole};
        use eebus::spine::{Engine, LocalDevice, LocalEntity, LocalFeature};
        let mut device = LocalDevice::new("i:46925", unique, DeviceType::EnergyManagementSystem)
            .expect("a valid device address");
        device
            .add_entity(
                LocalEntity::new([1], EntityType::CEM).with_feature(LocalFeature::new(
                    1,
                    FeatureType::Generic,
                    SpineRole::Client,
                )),
            )
            .expect("an entity");
        Engine::new(device)
    }

    /// `ship-gateway run` with mDNS (on the namespace's loopback), JSON events, no prompt.
    fn run_with_mdns(dir: &Path, extra: &[&str]) -> Running {
        assert_private_namespace();
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(dir)
            .args([
                "run",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--json",
                "--no-prompt",
            ])
            .args(extra);
        Running::spawn(command)
    }

    /// A command with `input` on its stdin.
    fn gateway_with_stdin(dir: &Path, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn wait(gateway: &mut Running, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        tokio::task::block_in_place(|| gateway.wait_for(what, f))
    }

    /// Their energy manager: their runtime hub with the secret's receiver, listening on
    /// loopback, announced over mDNS (`_ship._tcp`) and browsing for pairing requests; its events
    /// come out of the returned channel. With `refuse_strangers`, a device it does not trust
    /// that connects is refused at once (as its owner would answer "no"), instead of waiting.
    async fn their_energy_manager(
        refuse_strangers: bool,
    ) -> (
        TheirSki,
        String,
        TheirMdns,
        mpsc::UnboundedReceiver<HubEvent>,
        tokio::task::JoinHandle<()>,
    ) {
        let node = their_node(THEIR_EM, TheirTrust::default());
        let fingerprint = node.fingerprint().to_string();
        let mut their_hub = TheirHub::new(node, spine_engine("their-em"));
        their_hub.accept_pairing_requests(TheirReceiver::new(
            THEIR_EM,
            their_hub.fingerprint(),
            TheirSecret::from_hex(SECRET).unwrap(),
        ));
        let address = their_hub
            .listen("127.0.0.1:0")
            .await
            .expect("their listener");
        let mut mdns = TheirMdns::new().expect("their mDNS");
        let record = ShipTxtRecord::new(THEIR_EM.parse().unwrap(), their_hub.ski());
        mdns.announce("their-em", &record, address.port(), &[LOOPBACK])
            .expect("their announcement");
        their_hub
            .browse_pairing(&mdns)
            .expect("their pairing browse");
        let ski = their_hub.ski();
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(event) = their_hub.next().await {
                if let HubEvent::TrustRequested { peer, .. } = &event
                    && refuse_strangers
                {
                    their_hub.refuse(peer.ski);
                }
                if events_tx.send(event).is_err() {
                    break;
                }
            }
        });
        (ski, fingerprint, mdns, events, task)
    }

    /// Waits until their energy manager reports our gateway paired (through the service) and
    /// connected.
    async fn their_pairing_and_connection(
        events: &mut mpsc::UnboundedReceiver<HubEvent>,
        gateway_ship_id: &str,
        gateway_ski: &str,
    ) {
        let (mut paired, mut connected) = (false, false);
        tokio::time::timeout(PATIENCE, async {
            while !(paired && connected) {
                match events.recv().await.expect("their hub runs") {
                    HubEvent::Paired { unit, displaced } => {
                        assert!(displaced.is_none());
                        assert_eq!(unit.ship_id, gateway_ship_id);
                        paired = true;
                    }
                    HubEvent::Connected { ski, .. } if ski.to_string() == gateway_ski => {
                        connected = true
                    }
                    HubEvent::PairingRefused { error, .. } => panic!("they refused: {error}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("their energy manager pairs and connects the gateway");
    }

    /// Data both ways between the gateway and their energy manager's SPINE engine: their
    /// runtime's opening reads reach the gateway (`data` events), and a SPINE read the gateway
    /// sends (`ship-gateway send`) is answered by their engine (an answer referencing it).
    fn spine_both_ways(running: &mut Running, dir: &Path, their_ski: &str) {
        let from_them = wait(running, "data from their energy manager", |v| {
            v["event"] == "data" && v["ski"] == their_ski
        });
        spine::from_json_value(from_them["payload"].clone()).expect("a SPINE datagram from them");
        let mut ours = spine_engine("gateway-side");
        let their_device = device_address("i:46925", "their-em").unwrap();
        let our_device = device_address("i:46925", "gateway-side").unwrap();
        let read = ours.read(
            &node_management(&their_device),
            &node_management(&our_device),
            Function::NodeManagementDetailedDiscoveryData,
            Duration::ZERO,
        );
        let datagram = ours.poll_transmit().expect("our read");
        let payload = serde_json::to_string(&spine::to_json_value(&datagram).unwrap()).unwrap();
        assert_ok(&gateway(dir, &["send", their_ski, &payload]));
        let answer = wait(running, "their answer to our SPINE read", |v| {
            v["event"] == "data"
                && v["ski"] == their_ski
                && spine::from_json_value(v["payload"].clone())
                    .ok()
                    .and_then(|d| d.header)
                    .and_then(|h| h.msg_counter_reference)
                    == Some(read)
        });
        assert!(answer["bytes"].as_u64().unwrap() > 0);
    }

    /// A raw `mdns-sd` browser of `_shippairing._tcp` (and `_ship._tcp`), to see the gateway's
    /// request on the LAN as any energy manager would.
    struct LanWatch {
        /// Shut down (and waited for) when the watch is dropped.
        _daemon: ship_test_support::discovery_spoof::OwnedDaemon,
        requests: mdns_sd::Receiver<mdns_sd::ServiceEvent>,
        services: mdns_sd::Receiver<mdns_sd::ServiceEvent>,
    }

    fn has_txt(event: &mdns_sd::ServiceEvent, key: &str, value: &str) -> bool {
        match event {
            mdns_sd::ServiceEvent::ServiceResolved(resolved) => resolved
                .txt_properties
                .iter()
                .any(|p| p.key() == key && p.val_str().eq_ignore_ascii_case(value)),
            _ => false,
        }
    }

    impl LanWatch {
        fn new() -> LanWatch {
            assert_private_namespace();
            let daemon = ship_test_support::discovery_spoof::OwnedDaemon::new();
            let requests = daemon
                .browse("_shippairing._tcp.local.")
                .expect("browse requests");
            let services = daemon.browse("_ship._tcp.local.").expect("browse services");
            LanWatch {
                _daemon: daemon,
                requests,
                services,
            }
        }

        /// Waits for the request of the gateway with SHIP ID `trust_id`; its full name.
        fn announced(&self, trust_id: &str) -> String {
            let deadline = std::time::Instant::now() + PATIENCE;
            loop {
                let left = deadline
                    .checked_duration_since(std::time::Instant::now())
                    .expect("the gateway's request is seen on the LAN");
                let event = self.requests.recv_timeout(left).expect("mDNS events");
                if has_txt(&event, "trustId", trust_id)
                    && let mdns_sd::ServiceEvent::ServiceResolved(resolved) = event
                {
                    return resolved.fullname.clone();
                }
            }
        }

        /// Waits for the goodbye of the request `fullname`: it left the LAN.
        fn withdrawn(&self, fullname: &str) {
            let deadline = std::time::Instant::now() + PATIENCE;
            loop {
                let left = deadline
                    .checked_duration_since(std::time::Instant::now())
                    .expect("the gateway's request leaves the LAN");
                if let mdns_sd::ServiceEvent::ServiceRemoved(_, name) =
                    self.requests.recv_timeout(left).expect("mDNS events")
                    && name == fullname
                {
                    return;
                }
            }
        }

        /// Whether a request of the gateway with SHIP ID `trust_id` shows up at all, judged
        /// from a fresh browser: after its `_ship._tcp` record was seen (both are announced at
        /// its start) and two more seconds.
        fn ever_announced(self, trust_id: &str, gateway_ski: &str) -> bool {
            let deadline = std::time::Instant::now() + PATIENCE;
            loop {
                let left = deadline
                    .checked_duration_since(std::time::Instant::now())
                    .expect("the gateway's _ship._tcp record is seen");
                let event = self.services.recv_timeout(left).expect("mDNS events");
                if has_txt(&event, "ski", gateway_ski) {
                    break;
                }
            }
            let until = std::time::Instant::now() + Duration::from_secs(2);
            let mut seen = false;
            while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
                if let Ok(event) = self.requests.recv_timeout(left) {
                    seen |= has_txt(&event, "trustId", trust_id);
                }
            }
            seen
        }
    }

    /// Their energy manager's QR code as their crate writes it, with the Pairing Service fields
    /// (`FPH256`, and `SPSEC` when `with_secret`).
    fn their_qr(ski: TheirSki, fingerprint: &str, with_secret: bool) -> String {
        let mut qr = eebus::ship::ShipQr::new(ski, THEIR_EM.parse().unwrap());
        qr.brand = Some("Their".into());
        qr.model = Some("EM 1".into());
        qr.certificate_fingerprint = Some(fingerprint.parse().unwrap());
        if with_secret {
            qr.pairing_secret = Some(SECRET.into());
        }
        qr.to_payload()
    }

    /// The installer's flow on a running gateway: `ship-gateway pair --pairing-service --qr -`
    /// with the energy manager's QR code (SKI, SHIP ID, FPH256, SPSEC) scanned into stdin.
    /// The gateway pairs the energy manager, announces its request (`pairing_request_announced`,
    /// seen on the LAN), their energy manager verifies it and trusts the gateway, the gateway
    /// dials it and connects (`pairing_request_connected`), and SPINE data flows both ways.
    /// `status` shows the request connected. Then `unpair` withdraws it: the event, the file
    /// gone, the record off the LAN.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a private network namespace: run via `bash .ci/test`"]
    async fn the_gateway_as_control_unit_pairs_with_an_eebus_energy_manager_from_its_qr_code() {
        let _turn = MULTICAST.read().await;
        assert_private_namespace();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut gateway_run = run_with_mdns(&dir, &[]);
        let listening = wait(&mut gateway_run, "listening", |v| v["event"] == "listening");
        let gateway_ship_id = listening["ship_id"].as_str().unwrap().to_owned();
        let gateway_ski = listening["ski"].as_str().unwrap().to_owned();
        let (their_ski, fingerprint, _their_mdns, mut their_events, their_task) =
            their_energy_manager(false).await;
        let their_hex = their_ski.to_string();

        let output = gateway_with_stdin(
            &dir,
            &["pair", "--pairing-service", "--qr", "-"],
            &format!("{}\n", their_qr(their_ski, &fingerprint, true)),
        );
        assert_ok(&output);
        assert!(
            stdout(&output).contains("request announced"),
            "{}",
            stdout(&output)
        );
        let announced = wait(&mut gateway_run, "pairing_request_announced", |v| {
            v["event"] == "pairing_request_announced"
        });
        assert_eq!(announced["ski"], their_hex.as_str());
        assert_eq!(announced["ship_id"], THEIR_EM);
        assert_eq!(announced["fingerprint"], fingerprint.as_str());
        their_pairing_and_connection(&mut their_events, &gateway_ship_id, &gateway_ski).await;
        wait(&mut gateway_run, "connected", |v| {
            v["event"] == "connected" && v["ski"] == their_hex.as_str()
        });
        let connected = wait(&mut gateway_run, "pairing_request_connected", |v| {
            v["event"] == "pairing_request_connected"
        });
        assert_eq!(connected["settles_in_s"], 900);
        eprintln!(
            "pairing service, the gateway as control unit: connected {} ms after its request \
             was announced",
            connected["ts_ms"].as_u64().unwrap() - announced["ts_ms"].as_u64().unwrap()
        );
        spine_both_ways(&mut gateway_run, &dir, &their_hex);

        let status = json_line(&gateway(&dir, &["--json", "status"]));
        let request = &status["status"]["pairing_request"];
        assert_eq!(request["ski"], their_hex.as_str());
        assert_eq!(request["state"], "connected", "{status}");
        let list = gateway(&dir, &["list"]);
        assert!(
            stdout(&list).contains("the energy manager trusts this gateway and is connected"),
            "{}",
            stdout(&list)
        );
        let lan = LanWatch::new();
        let on_the_air = tokio::task::block_in_place(|| lan.announced(&gateway_ship_id));
        // The secret is nowhere but in the request file.
        let pairings = std::fs::read_to_string(dir.join("pairings.json")).unwrap();
        assert!(!pairings.contains(SECRET), "{pairings}");
        assert!(
            gateway_run
                .seen
                .iter()
                .all(|v| !v.to_string().to_uppercase().contains(SECRET)),
            "the secret is in an event"
        );
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join("pairing-request"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);

        assert_ok(&gateway(&dir, &["unpair", &their_hex]));
        let withdrawn = wait(&mut gateway_run, "pairing_request_withdrawn", |v| {
            v["event"] == "pairing_request_withdrawn"
        });
        assert_eq!(withdrawn["ski"], their_hex.as_str());
        assert!(!dir.join("pairing-request").exists());
        tokio::task::block_in_place(|| lan.withdrawn(&on_the_air));
        their_task.abort();
        assert!(gateway_run.terminate().success());
    }

    /// The request made while no gateway runs (QR code without the secret, the secret from a
    /// file), announced at the next start; it pairs with their energy manager, data flows both
    /// ways, and after the connection held `--settle-after` it settles: withdrawn from the
    /// LAN, stored as settled with the secret erased. A restart does not announce it again
    /// (nothing on the LAN) and `status` shows it settled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a private network namespace: run via `bash .ci/test`"]
    async fn a_stored_request_is_announced_at_start_settles_and_is_never_announced_again() {
        let _turn = MULTICAST.read().await;
        assert_private_namespace();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let secret_file = tmp.path().join("em-secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let (their_ski, fingerprint, _their_mdns, mut their_events, their_task) =
            their_energy_manager(false).await;
        let their_hex = their_ski.to_string();
        let output = gateway(
            &dir,
            &[
                "pair",
                "--pairing-service",
                "--qr",
                &their_qr(their_ski, &fingerprint, false),
                "--secret-file",
                secret_file.to_str().unwrap(),
                "--settle-after",
                "3",
            ],
        );
        assert_ok(&output);
        assert!(stdout(&output).contains("announces it when it runs"));
        let stored = std::fs::read_to_string(dir.join("pairing-request")).unwrap();
        assert!(stored.contains(SECRET), "the secret is kept while pending");

        let lan = LanWatch::new();
        let mut gateway_run = run_with_mdns(&dir, &[]);
        let listening = wait(&mut gateway_run, "listening", |v| v["event"] == "listening");
        let gateway_ship_id = listening["ship_id"].as_str().unwrap().to_owned();
        let gateway_ski = listening["ski"].as_str().unwrap().to_owned();
        let on_the_air = tokio::task::block_in_place(|| lan.announced(&gateway_ship_id));
        wait(&mut gateway_run, "pairing_request_announced", |v| {
            v["event"] == "pairing_request_announced" && v["ski"] == their_hex.as_str()
        });
        their_pairing_and_connection(&mut their_events, &gateway_ship_id, &gateway_ski).await;
        let connected = wait(&mut gateway_run, "pairing_request_connected", |v| {
            v["event"] == "pairing_request_connected"
        });
        assert_eq!(connected["settles_in_s"], 3);
        spine_both_ways(&mut gateway_run, &dir, &their_hex);
        wait(&mut gateway_run, "pairing_request_settled", |v| {
            v["event"] == "pairing_request_settled" && v["ski"] == their_hex.as_str()
        });
        let stored = std::fs::read_to_string(dir.join("pairing-request")).unwrap();
        assert!(
            !stored.contains(SECRET),
            "the secret is erased once settled"
        );
        tokio::task::block_in_place(|| lan.withdrawn(&on_the_air));
        drop(lan);
        assert!(gateway_run.terminate().success());

        let mut again = run_with_mdns(&dir, &[]);
        wait(&mut again, "listening", |v| v["event"] == "listening");
        wait(&mut again, "connected", |v| {
            v["event"] == "connected" && v["ski"] == their_hex.as_str()
        });
        assert!(
            !tokio::task::block_in_place(
                || LanWatch::new().ever_announced(&gateway_ship_id, &gateway_ski)
            ),
            "a settled request is never announced again"
        );
        assert!(
            !again
                .seen
                .iter()
                .any(|v| v["event"] == "pairing_request_announced"),
            "{:#?}",
            again.seen
        );
        let status = json_line(&gateway(&dir, &["--json", "status"]));
        assert_eq!(status["status"]["pairing_request"]["state"], "settled");
        their_task.abort();
        assert!(again.terminate().success());
    }

    /// An installer's mistyped secret, corrected: their energy manager refuses the request
    /// (wrong digest) and, owned by someone who says no to strangers, the gateway's
    /// connection; the gateway says so once (`pairing_request_refused`). The same command
    /// again with the right secret replaces the request (`pairing_request_withdrawn`, then a
    /// new `pairing_request_announced`), and the gateway pairs and connects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a private network namespace: run via `bash .ci/test`"]
    async fn a_mistyped_secret_is_refused_and_the_corrected_request_replaces_it() {
        let _turn = MULTICAST.read().await;
        assert_private_namespace();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let wrong = tmp.path().join("wrong-secret");
        std::fs::write(&wrong, "7A37DCF81BDB50F8E92CFA4160CCB3DF\n").unwrap();
        let right = tmp.path().join("right-secret");
        std::fs::write(&right, format!("{SECRET}\n")).unwrap();
        let mut gateway_run = run_with_mdns(&dir, &[]);
        let listening = wait(&mut gateway_run, "listening", |v| v["event"] == "listening");
        let gateway_ship_id = listening["ship_id"].as_str().unwrap().to_owned();
        let (their_ski, fingerprint, _their_mdns, mut their_events, their_task) =
            their_energy_manager(true).await;
        let their_hex = their_ski.to_string();
        let code = their_qr(their_ski, &fingerprint, false);
        let pair = |secret: &Path| {
            gateway(
                &dir,
                &[
                    "pair",
                    "--pairing-service",
                    "--qr",
                    &code,
                    "--secret-file",
                    secret.to_str().unwrap(),
                ],
            )
        };
        assert_ok(&pair(&wrong));
        tokio::time::timeout(PATIENCE, async {
            loop {
                match their_events.recv().await.expect("their hub runs") {
                    HubEvent::PairingRefused { .. } => break,
                    HubEvent::Paired { .. } => panic!("a wrong secret was honoured"),
                    _ => {}
                }
            }
        })
        .await
        .expect("their energy manager refuses the request");
        let refused = wait(&mut gateway_run, "pairing_request_refused", |v| {
            v["event"] == "pairing_request_refused"
        });
        assert_eq!(refused["ski"], their_hex.as_str());

        assert_ok(&pair(&right));
        let withdrawn = wait(&mut gateway_run, "pairing_request_withdrawn", |v| {
            v["event"] == "pairing_request_withdrawn"
        });
        assert_eq!(withdrawn["reason"], "replaced by a new request");
        // (A late report about the first record may still come: only Paired counts here.)
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let HubEvent::Paired { unit, .. } =
                    their_events.recv().await.expect("their hub runs")
                {
                    assert_eq!(unit.ship_id, gateway_ship_id);
                    break;
                }
            }
        })
        .await
        .expect("their energy manager honours the corrected request");
        wait(&mut gateway_run, "connected", |v| {
            v["event"] == "connected" && v["ski"] == their_hex.as_str()
        });
        wait(&mut gateway_run, "pairing_request_connected", |v| {
            v["event"] == "pairing_request_connected" && v["ski"] == their_hex.as_str()
        });
        // Said once per request: once for the first; for the second at most once (the
        // gateway may dial before their energy manager has read the corrected request).
        let events: Vec<&Value> = gateway_run.seen.iter().map(|v| &v["event"]).collect();
        let announced: Vec<usize> = (0..events.len())
            .filter(|&i| events[i] == "pairing_request_announced")
            .collect();
        assert_eq!(announced.len(), 2, "{:#?}", gateway_run.seen);
        let refusals = |range: std::ops::Range<usize>| {
            range
                .filter(|&i| events[i] == "pairing_request_refused")
                .count()
        };
        assert_eq!(
            refusals(announced[0]..announced[1]),
            1,
            "{:#?}",
            gateway_run.seen
        );
        assert!(
            refusals(announced[1]..events.len()) <= 1,
            "{:#?}",
            gateway_run.seen
        );
        their_task.abort();
        assert!(gateway_run.terminate().success());
    }

    /// An eebus control unit that knows the gateway's secret (`--pairing-secret-file`) and its
    /// SHIP ID, SKI and fingerprint (`ship-gateway --json ski`) announces its request and
    /// dials: the gateway pairs it with no `pair` command and data flows both ways.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a private network namespace: run via `bash .ci/test`"]
    async fn an_eebus_control_unit_pairs_with_the_gateway_and_data_flows_both_ways() {
        let _turn = MULTICAST.read().await;
        assert_private_namespace();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let secret_file = tmp.path().join("pairing-secret");
        crate::gateway_support::write_secret(&secret_file, &format!("{SECRET}\n"));
        let mut gateway_run = run_with_mdns(
            &dir,
            &["--pairing-secret-file", secret_file.to_str().unwrap()],
        );
        let listening = wait(&mut gateway_run, "listening", |v| v["event"] == "listening");
        let gateway_ship_id = listening["ship_id"].as_str().unwrap().to_owned();
        let address: std::net::SocketAddr = listening["address"].as_str().unwrap().parse().unwrap();
        let ski = json_line(&gateway(&dir, &["--json", "ski"]));
        let gateway_ski: TheirSki = ski["ski"].as_str().unwrap().parse().unwrap();

        let node = their_node("i:46925_u:their-cu", TheirTrust::with([gateway_ski]));
        let their_hex = node.ski().to_string();
        let request = TheirRequest::new(
            gateway_ship_id.as_str(),
            ski["fingerprint"].as_str().unwrap().parse().unwrap(),
            "i:46925_u:their-cu",
            node.fingerprint(),
            TheirNonce::from_str(&ship_hub::pairing_service::Nonce::random().to_string()).unwrap(),
        );
        let announcement = request
            .sign(&TheirSecret::from_hex(SECRET).unwrap())
            .unwrap();
        let mut their_mdns = TheirMdns::new().expect("their mDNS");
        their_mdns
            .announce_pairing("their-cu", &announcement, 9, &[LOOPBACK])
            .expect("their pairing announcement");
        let verified = wait(&mut gateway_run, "pairing_service_request", |v| {
            v["event"] == "pairing_service_request"
        });
        assert_eq!(verified["ship_id"], "i:46925_u:their-cu");
        // They dial until they are in (the control unit repeats its attempts).
        let mut connection = tokio::time::timeout(PATIENCE, async {
            loop {
                match node.connect(address).await {
                    Ok(connection) => break connection,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        })
        .await
        .expect("their control unit reaches data exchange");
        // Their side, driven as their runtime drives a link (it answers the gateway's control
        // messages): data they receive comes out here.
        let (to_them, mut sends) = mpsc::unbounded_channel::<ShipMessage>();
        let (received_tx, mut received) = mpsc::unbounded_channel::<serde_json::Value>();
        let driver = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = sends.recv() => match message {
                        Some(message) => {
                            if connection.send_ship(&message).await.is_err() { break; }
                        }
                        None => break,
                    },
                    message = connection.next_message() => {
                        let Ok(message) = message else { break };
                        if connection.handle_message(&message).is_err()
                            || connection.flush().await.is_err()
                        {
                            break;
                        }
                        if let ShipMessage::Data(DataMessage::Data(data)) = message
                            && let Some(payload) = data.payload
                        {
                            let _ = received_tx.send(payload);
                        }
                    }
                }
            }
        });
        let paired = wait(&mut gateway_run, "paired_by_service", |v| {
            v["event"] == "paired_by_service" && v["ski"] == their_hex.as_str()
        });
        assert!(paired["displaced"].is_null());
        wait(&mut gateway_run, "connected", |v| {
            v["event"] == "connected" && v["ski"] == their_hex.as_str()
        });

        // Theirs → the gateway.
        let theirs = serde_json::json!({"from": "eebus control unit", "n": [1, 2.5, true]});
        to_them
            .send(ShipMessage::Data(DataMessage::Data(Data {
                header: Some(ShipHeader {
                    protocol_id: Some(ProtocolId("ee1.0".into())),
                }),
                payload: Some(theirs.clone()),
                extension: None,
            })))
            .unwrap();
        let data = wait(&mut gateway_run, "data from their control unit", |v| {
            v["event"] == "data" && v["ski"] == their_hex.as_str()
        });
        assert_eq!(data["payload"], theirs);
        // The gateway → theirs.
        let ours = r#"{"from":"ship-gateway","x":[1,2]}"#;
        assert_ok(&gateway(&dir, &["send", &their_hex, ours]));
        let got = tokio::time::timeout(PATIENCE, received.recv())
            .await
            .expect("their control unit receives the gateway's data")
            .expect("their driver runs");
        assert_eq!(got, serde_json::from_str::<Value>(ours).unwrap());
        driver.abort();
        assert!(gateway_run.terminate().success());
    }

    use std::str::FromStr;
}
