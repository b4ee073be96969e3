//! Two hubs find each other over mDNS and pair after the user confirms the SKI on screen.
//!
//! An energy manager ("controller") and a heat pump ("device") run in this process, each with
//! its own mDNS discovery (`_ship._tcp`). The controller waits until it sees the device, shows
//! the device's SKI and asks the user to compare it with the one the device shows (on a real
//! device: its display, web page or label). Once confirmed it pairs and dials; the device gets a
//! pairing request and asks its own user. Both then reach data exchange and say hello.
//!
//! mDNS is multicast: creating the daemons joins the multicast group on every interface that is
//! up. Run it inside a private network namespace, where only loopback exists:
//!
//! ```text
//! unshare -n sh -c 'ip link set lo up && cargo run --example lan_pairing'
//! unshare -n sh -c 'ip link set lo up && cargo run --example lan_pairing -- --yes'   # no questions
//! ```
//!
//! (as a non-root user: `unshare -r -n sh -c '…'`). It refuses to run outside such a namespace
//! unless given `--real-lan`, which announces both hubs on your real network.

use ship_hub::hub::PairedPeer;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;
use ship_hub::discovery::{Discovery, InstanceName, MdnsConfig, MdnsDiscovery, VisibleService};
use ship_hub::hub::{Callbacks, DeviceInfo, Hub, HubConfig, PairingDecision, PairingRequest};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::{ShipId, Ski};
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// Confirm every question with yes (for scripts and the test suite).
    #[arg(long)]
    yes: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    demo_seconds: u64,
    /// Run on the real network interfaces (announces both hubs on your LAN).
    #[arg(long)]
    real_lan: bool,
}

/// `0123456789abcdef…` → `0123 4567 89ab …`, easier to compare by eye.
fn grouped(ski: Ski) -> String {
    let text = ski.to_string();
    let groups: Vec<&str> = (0..text.len())
        .step_by(4)
        .map(|i| &text[i..i + 4])
        .collect();
    groups.join(" ")
}

/// Asks a yes/no question (or answers yes with `--yes`), off the async runtime.
async fn confirm(question: String, yes: bool) -> bool {
    println!("{question} [y/N]");
    if yes {
        println!("> y (--yes)");
        return true;
    }
    if !std::io::stdin().is_terminal() {
        println!("> no terminal to ask on: no (use --yes)");
        return false;
    }
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}

/// What a node reports to `main`.
#[derive(Debug, PartialEq)]
enum Seen {
    Connected(&'static str),
    Data(&'static str),
}

struct Node {
    name: &'static str,
    hub: OnceLock<Hub>,
    yes: bool,
    seen: mpsc::UnboundedSender<Seen>,
}

impl Callbacks for Node {
    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        // The name, brand and model come from the controller's mDNS record: a claim, shown to
        // help recognise it. The SKI is what the user compares.
        let announced = [&request.instance_name, &request.brand, &request.model]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let announced = if announced.is_empty() {
            "not visible over mDNS".to_owned()
        } else {
            announced
        };
        let question = format!(
            "[{}] a controller asks to pair ({announced}). Its SKI is\n    {}\n  Does it match \
             the SKI the controller shows?",
            self.name,
            grouped(request.ski)
        );
        println!("{question} [y/N]");
        if self.yes {
            // Decided at once: the hub stores the pairing and goes on, no `approve` needed.
            println!("> y (--yes)");
            return PairingDecision::Accept;
        }
        if !std::io::stdin().is_terminal() {
            println!("> no terminal to ask on: no (use --yes)");
            return PairingDecision::Refuse;
        }
        let Some(hub) = self.hub.get().cloned() else {
            return PairingDecision::Refuse;
        };
        // A person answers later: let the controller wait and answer from a blocking thread.
        let ski = request.ski;
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let yes =
                std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "yes");
            let _ = if yes { hub.approve(ski) } else { hub.deny(ski) };
        });
        PairingDecision::Ask
    }

    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        println!("[{}] connected to {ski} ({ship_id:?})", self.name);
        let _ = self.seen.send(Seen::Connected(self.name));
    }

    fn data_received(&self, ski: Ski, payload: &[u8]) {
        println!(
            "[{}] data from {ski}: {}",
            self.name,
            String::from_utf8_lossy(payload)
        );
        let _ = self.seen.send(Seen::Data(self.name));
    }

    fn visible_services_changed(&self, services: &[VisibleService]) {
        let names: Vec<&str> = services
            .iter()
            .filter_map(|s| s.instances.first())
            .map(String::as_str)
            .collect();
        println!("[{}] visible: {names:?}", self.name);
    }
}

/// Interfaces other than loopback (and the test suite's own veth pairs) in this namespace.
fn foreign_interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    dev.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .filter(|name| name != "lo" && !name.starts_with("shipt"))
        .collect()
}

async fn start(
    name: &'static str,
    instance: &str,
    yes: bool,
    seen: &mpsc::UnboundedSender<Seen>,
) -> (Hub, Arc<Node>) {
    let subject = CertificateSubject {
        common_name: name.into(),
        organization: "ship-hub example".into(),
        country: "DE".into(),
    };
    let identity = Identity::generate(&subject).expect("generating a certificate");
    let discovery = MdnsDiscovery::new(MdnsConfig::new(identity.ski())).expect("starting mDNS");
    let node = Arc::new(Node {
        name,
        hub: OnceLock::new(),
        yes,
        seen: seen.clone(),
    });
    let mut config = HubConfig::new(
        identity,
        ShipId::new(format!("lan-pairing-{name}")).unwrap(),
    );
    config.bind = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut device = DeviceInfo::default();
    device.instance_name = Some(InstanceName::new(instance).unwrap());
    config.device = device;
    config.discovery = Some(Arc::new(discovery) as Arc<dyn Discovery>);
    config.callbacks = node.clone();
    let hub = Hub::start(config).await.expect("starting a hub");
    let _ = node.hub.set(hub.clone());
    (hub, node)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let foreign = foreign_interfaces();
    if !foreign.is_empty() && !args.real_lan {
        eprintln!(
            "lan_pairing: interfaces {foreign:?} exist, so mDNS would go out on your network. Run \
             it in a private network namespace:\n  unshare -n sh -c 'ip link set lo up && cargo \
             run --example lan_pairing'\nor pass --real-lan."
        );
        std::process::exit(2);
    }
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (controller, _c) = start("controller", "lan-pairing EMS", args.yes, &tx).await;
    let (device, _d) = start("device", "lan-pairing heat pump", args.yes, &tx).await;
    println!("the device shows its SKI: {}", grouped(device.local_ski()));
    println!(
        "the controller shows its SKI: {}",
        grouped(controller.local_ski())
    );

    let script = async {
        // 1. The controller waits until the device is visible over mDNS.
        let service = loop {
            if let Some(s) = controller
                .visible_services()
                .into_iter()
                .find(|s| s.ski == device.local_ski())
            {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let name = service.instances.first().cloned().unwrap_or_default();
        println!("[controller] found {name} at {:?}", service.addresses);
        // 2. The user compares the SKI with the device's.
        let question = format!(
            "[controller] pair with {name}? Its SKI is\n    {}\n  Does it match the SKI the \
             device shows?",
            grouped(service.ski)
        );
        if !confirm(question, args.yes).await {
            return Err("not confirmed");
        }
        // 3. Pair: stored as trusted, dialled at the address mDNS gave.
        controller
            .pair(PairedPeer::new(service.ski).with_ship_id(service.txt.id.clone()))
            .map_err(|_| "pair failed")?;
        let mut connected = 0;
        while connected < 2 {
            match seen.recv().await {
                Some(Seen::Connected(_)) => connected += 1,
                Some(_) => {}
                None => return Err("callbacks ended"),
            }
        }
        controller
            .send_data(device.local_ski(), br#"{"hello":"paired over mDNS"}"#)
            .map_err(|_| "send failed")?;
        while seen.recv().await != Some(Seen::Data("device")) {}
        Ok(())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(args.demo_seconds), script).await;
    device.shutdown().await;
    controller.shutdown().await;
    match outcome {
        Ok(Ok(())) => println!("paired over mDNS and exchanged data"),
        Ok(Err(why)) => {
            println!("no pairing: {why}");
            std::process::exit(1);
        }
        Err(_) => {
            println!("no pairing within {} s", args.demo_seconds);
            std::process::exit(1);
        }
    }
}
