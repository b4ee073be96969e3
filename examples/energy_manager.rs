//! An energy manager (a SHIP controller): accepts devices that ask to pair, sends each connected
//! device a SPINE-shaped heartbeat datagram every interval, and logs what the devices send.
//!
//! ```text
//! cargo run --example energy_manager -- --yes                      # on the LAN, port 4711
//! cargo run --example energy_manager -- --demo-seconds 5 --yes     # with a simulated wallbox
//! ```
//!
//! With `--yes` every pairing request is accepted at once (the callback returns
//! `PairingDecision::Accept`); without it each request is asked on the terminal (`Ask`, then
//! `Hub::approve` or `Hub::deny`), or refused at once when stdin is not one (`Refuse`). `--demo-seconds N` binds to loopback only, starts a simulated wallbox hub in the same
//! process that dials the manager and answers each heartbeat with a measurement, and stops after
//! N seconds: nothing leaves the machine, so it is what the test suite runs.
//!
//! The manager does not announce itself over mDNS here (see `lan_pairing` for discovery):
//! devices dial it at its address, or it dials them with `Hub::pair` and their address.

use ship_hub::hub::PairedPeer;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;
use ship_hub::hub::{Callbacks, EndCause, Hub, HubConfig, PairingDecision, PairingRequest};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::{ShipId, Ski};

#[derive(Parser)]
struct Args {
    /// Approve every pairing request without asking (demo and tests).
    #[arg(long)]
    yes: bool,
    /// Run a simulated wallbox on loopback for N seconds, then stop.
    #[arg(long, value_name = "N")]
    demo_seconds: Option<u64>,
    /// Port to listen on (not in demo mode).
    #[arg(long, default_value_t = 4711)]
    port: u16,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

/// The manager's view of its devices.
struct Manager {
    hub: OnceLock<Hub>,
    approve_all: bool,
    received: AtomicU64,
}

impl Callbacks for Manager {
    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        let name = request.instance_name.as_deref().unwrap_or("unnamed");
        println!(
            "device {} asks to pair (from {}, name {name:?})",
            request.ski, request.address
        );
        if self.approve_all {
            // Decided at once: the hub stores the pairing and goes on, no `approve` needed.
            println!("device {} accepted", request.ski);
            return PairingDecision::Accept;
        }
        if !std::io::stdin().is_terminal() {
            println!("refused (no terminal to ask on; run with --yes to accept devices)");
            return PairingDecision::Refuse;
        }
        let Some(hub) = self.hub.get().cloned() else {
            return PairingDecision::Refuse;
        };
        // Asking a person takes time and the callback must not block the runtime: let the
        // device wait (hello `pending`) and answer with `approve`/`deny` from a blocking thread.
        let ski = request.ski;
        tokio::task::spawn_blocking(move || {
            println!("trust device {ski}? [y/N]");
            let mut line = String::new();
            let yes = std::io::stdin().read_line(&mut line).is_ok() && line.trim() == "y";
            let result = if yes { hub.approve(ski) } else { hub.deny(ski) };
            match result {
                Ok(()) => println!("device {ski} {}", if yes { "accepted" } else { "refused" }),
                Err(error) => println!("answering {ski}: {error}"),
            }
        });
        PairingDecision::Ask
    }

    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        let id = ship_id.map(ShipId::as_str).unwrap_or("?");
        println!("device {ski} connected (SHIP ID {id})");
    }

    fn disconnected(&self, ski: Ski, reason: &EndCause) {
        println!("device {ski} disconnected: {reason}");
    }

    fn data_received(&self, ski: Ski, payload: &[u8]) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(payload);
        let shown: String = text.chars().take(160).collect();
        println!("received {} bytes from {ski}: {shown}", payload.len());
    }
}

/// A SPINE datagram (EEBus JSON form) carrying a DeviceDiagnosis heartbeat.
fn heartbeat(counter: u64) -> String {
    format!(
        r#"{{"datagram":[{{"header":[{{"specificationVersion":"1.3.0"}},{{"addressSource":[{{"device":"d:_i:ship-hub_EnergyManager"}},{{"entity":[0]}},{{"feature":1}}]}},{{"addressDestination":[{{"entity":[0]}},{{"feature":1}}]}},{{"msgCounter":{counter}}},{{"cmdClassifier":"notify"}}]}},{{"payload":[{{"cmd":[[{{"deviceDiagnosisHeartbeatData":[{{"heartbeatCounter":{counter}}},{{"heartbeatTimeout":"PT4S"}}]}}]]}}]}}]}}"#
    )
}

/// The simulated wallbox answers each heartbeat with a power measurement.
struct Wallbox {
    hub: OnceLock<Hub>,
}

impl Callbacks for Wallbox {
    fn data_received(&self, ski: Ski, payload: &[u8]) {
        let counter = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| {
                v.pointer("/datagram/0/header/3/msgCounter")
                    .and_then(|c| c.as_u64())
            })
            .unwrap_or(0);
        let measurement = format!(
            r#"{{"datagram":[{{"header":[{{"specificationVersion":"1.3.0"}},{{"msgCounterReference":{counter}}},{{"cmdClassifier":"notify"}}]}},{{"payload":[{{"cmd":[[{{"measurementListData":[{{"measurementData":[[{{"measurementId":1}},{{"value":[{{"number":{}}},{{"scale":0}}]}}]]}}]}}]]}}]}}]}}"#,
            7000 + counter * 10
        );
        if let Some(hub) = self.hub.get() {
            let _ = hub.send_data(ski, measurement.as_bytes());
        }
    }
}

fn identity(name: &str) -> Identity {
    let subject = CertificateSubject {
        common_name: name.into(),
        organization: "ship-hub example".into(),
        country: "DE".into(),
    };
    Identity::generate(&subject).expect("generating a certificate")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let manager = Arc::new(Manager {
        hub: OnceLock::new(),
        approve_all: args.yes,
        received: AtomicU64::new(0),
    });
    let mut config = HubConfig::new(
        identity("Energy Manager"),
        ShipId::new("EnergyManager-1").unwrap(),
    );
    config.callbacks = manager.clone();
    config.bind = match args.demo_seconds {
        Some(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        None => SocketAddr::from(([0, 0, 0, 0], args.port)),
    };
    let hub = match Hub::start(config).await {
        Ok(hub) => hub,
        Err(error) => {
            eprintln!("energy_manager: {error}");
            std::process::exit(1);
        }
    };
    let _ = manager.hub.set(hub.clone());
    println!(
        "energy manager {} listening on {}",
        hub.local_ski(),
        hub.local_addr()
    );

    // The periodic heartbeat to every connected device.
    let sender = hub.clone();
    let interval = Duration::from_millis(args.interval_ms.max(10));
    let heartbeats = tokio::spawn(async move {
        let mut counter = 0u64;
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            for (ski, _) in sender.connected_peers() {
                counter += 1;
                match sender.send_data(ski, heartbeat(counter).as_bytes()) {
                    Ok(()) => println!("sent heartbeat {counter} to {ski}"),
                    Err(error) => println!("heartbeat to {ski}: {error}"),
                }
            }
        }
    });

    let wallbox = match args.demo_seconds {
        Some(_) => {
            let wallbox = Arc::new(Wallbox {
                hub: OnceLock::new(),
            });
            let mut config =
                HubConfig::new(identity("Wallbox"), ShipId::new("Wallbox-Demo-1").unwrap());
            config.callbacks = wallbox.clone();
            config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
            let device = Hub::start(config)
                .await
                .expect("starting the simulated wallbox");
            let _ = wallbox.hub.set(device.clone());
            println!("simulated wallbox {} dials the manager", device.local_ski());
            device
                .pair(PairedPeer::new(hub.local_ski()).with_address(hub.local_addr()))
                .expect("pairing the wallbox with the manager");
            Some(device)
        }
        None => None,
    };

    match args.demo_seconds {
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    heartbeats.abort();
    if let Some(device) = wallbox {
        device.shutdown().await;
    }
    let report = hub.shutdown().await;
    println!(
        "summary: received {} messages from devices; shut down in {:?}",
        manager.received.load(Ordering::Relaxed),
        report.elapsed
    );
}
