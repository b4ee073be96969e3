//! Implements the [`Callbacks`] trait and prints every call: each state transition of the ten
//! SHIP connection states (docs/ship.md §6), connects, disconnects, SHIP IDs and data.
//!
//! ```text
//! cargo run --example state_callbacks                  # two hubs on loopback, about 3 s
//! cargo run --example state_callbacks -- --demo-seconds 10
//! ```
//!
//! Two hubs run in this process on 127.0.0.1: "node a" is paired with "node b" and dials it,
//! "node b" trusts "node a". Once connected they exchange a data message, then "node a" unpairs
//! "node b" (connectionClose, reason removedConnection) and both shut down. Nothing leaves the
//! machine. `--demo-seconds N` bounds the whole run.

use ship_hub::hub::PairedPeer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ship_hub::discovery::VisibleService;
use ship_hub::hub::{
    Callbacks, EndCause, Hub, HubConfig, PairingDecision, PairingRequest, StateDetail,
};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::protocol::ConnectionState;
use ship_hub::{ShipId, Ski};
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// Upper bound of the whole demo, in seconds.
    #[arg(long, default_value_t = 10)]
    demo_seconds: u64,
}

/// What the printer tells `main` about (to know when to go on).
#[derive(Debug, PartialEq)]
enum Milestone {
    Connected(&'static str),
    Data(&'static str),
    Disconnected(&'static str),
}

/// Prints every callback, prefixed with the node's name and the time since start.
struct Printer {
    node: &'static str,
    started: Instant,
    milestones: mpsc::UnboundedSender<Milestone>,
}

impl Printer {
    fn say(&self, ski: Option<Ski>, text: std::fmt::Arguments<'_>) {
        let peer = ski
            .map(|s| s.to_string()[..8].to_owned())
            .unwrap_or_default();
        println!(
            "{:>7.3}s [{}] {peer:8} {text}",
            self.started.elapsed().as_secs_f64(),
            self.node
        );
    }
}

impl Callbacks for Printer {
    fn state_changed(&self, ski: Ski, state: ConnectionState, detail: &StateDetail) {
        match (&detail.detailed, &detail.failure) {
            (_, Some(failure)) => self.say(Some(ski), format_args!("state {state:?}: {failure}")),
            (Some(detailed), None) => {
                self.say(Some(ski), format_args!("state {state:?} ({detailed:?})"))
            }
            (None, None) => self.say(Some(ski), format_args!("state {state:?}")),
        }
    }

    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        self.say(Some(ski), format_args!("connected, SHIP ID {ship_id:?}"));
        let _ = self.milestones.send(Milestone::Connected(self.node));
    }

    fn disconnected(&self, ski: Ski, reason: &EndCause) {
        self.say(Some(ski), format_args!("disconnected: {reason}"));
        let _ = self.milestones.send(Milestone::Disconnected(self.node));
    }

    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        self.say(
            Some(request.ski),
            format_args!(
                "pairing requested from {} (SHIP ID {:?}, name {:?}): refused",
                request.address, request.ship_id, request.instance_name
            ),
        );
        PairingDecision::Refuse
    }

    fn data_received(&self, ski: Ski, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        self.say(
            Some(ski),
            format_args!("data {} bytes: {text}", payload.len()),
        );
        let _ = self.milestones.send(Milestone::Data(self.node));
    }

    fn visible_services_changed(&self, services: &[VisibleService]) {
        self.say(None, format_args!("{} services visible", services.len()));
    }

    fn ship_id_learned(&self, ski: Ski, ship_id: &ShipId) {
        self.say(Some(ski), format_args!("SHIP ID learnt: {ship_id}"));
    }
}

async fn node(
    name: &'static str,
    started: Instant,
    milestones: &mpsc::UnboundedSender<Milestone>,
) -> Hub {
    let subject = CertificateSubject {
        common_name: name.into(),
        organization: "ship-hub example".into(),
        country: "DE".into(),
    };
    let identity = Identity::generate(&subject).expect("generating a certificate");
    let mut config = HubConfig::new(identity, ShipId::new(name.replace(' ', "-")).unwrap());
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.callbacks = Arc::new(Printer {
        node: name,
        started,
        milestones: milestones.clone(),
    });
    Hub::start(config)
        .await
        .expect("starting a hub on loopback")
}

async fn wait_for(
    milestones: &mut mpsc::UnboundedReceiver<Milestone>,
    wanted: &[Milestone],
) -> bool {
    let mut missing: Vec<&Milestone> = wanted.iter().collect();
    while !missing.is_empty() {
        match milestones.recv().await {
            Some(m) => missing.retain(|w| **w != m),
            None => return false,
        }
    }
    true
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let started = Instant::now();
    let (tx, mut milestones) = mpsc::unbounded_channel();
    let a = node("node a", started, &tx).await;
    let b = node("node b", started, &tx).await;
    println!("node a {} on {}", a.local_ski(), a.local_addr());
    println!("node b {} on {}", b.local_ski(), b.local_addr());

    let script = async {
        b.pair(a.local_ski()).expect("b trusts a");
        a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
            .expect("a pairs with b");
        wait_for(
            &mut milestones,
            &[
                Milestone::Connected("node a"),
                Milestone::Connected("node b"),
            ],
        )
        .await;
        a.send_data(b.local_ski(), br#"{"hello":"from a"}"#)
            .expect("a sends");
        wait_for(&mut milestones, &[Milestone::Data("node b")]).await;
        println!("--- node a unpairs node b");
        a.unpair(b.local_ski()).expect("a unpairs b");
        wait_for(
            &mut milestones,
            &[
                Milestone::Disconnected("node a"),
                Milestone::Disconnected("node b"),
            ],
        )
        .await
    };
    let finished = tokio::time::timeout(Duration::from_secs(args.demo_seconds), script).await;
    println!("--- shutting down");
    b.shutdown().await;
    a.shutdown().await;
    match finished {
        Ok(true) => println!("done: every transition printed"),
        _ => {
            println!("the demo did not finish within {} s", args.demo_seconds);
            std::process::exit(1);
        }
    }
}
