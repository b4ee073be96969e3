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
