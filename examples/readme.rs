//! The README's library example, as a program: an energy manager that pairs with one device,
//! finds it over mDNS, sends it a SPINE datagram and prints the answer.
//!
//! ```text
//! cargo run --example readme -- /var/lib/my-ems 5F2A91C077E40B3DA8126C95E0F12D48B7A30C6E
//! ```
//!
//! The README shows this file from `use` on (`tests/examples/main.rs` checks both are the same,
//! and runs it against a device over mDNS in a private network namespace). mDNS is multicast:
//! run it on your LAN, or in a private namespace (`unshare -r -n sh -c 'ip link set lo up &&
//! …'`).

use std::sync::Arc;

use ship_hub::discovery::{MdnsConfig, MdnsDiscovery};
use ship_hub::{CertificateSubject, FileTrustStore, Hub, HubConfig, HubEvent, Identity, ShipId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: readme DATA_DIR DEVICE_SKI";
    let mut args = std::env::args().skip(1);
    let data_dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let device: ship_hub::Ski = args.next().ok_or(usage)?.parse()?;

    // This node's identity: a P-256 key and certificate, created once and kept. Its SKI is what
    // the device must be told to trust (on its display or web page).
    std::fs::create_dir_all(&data_dir)?;
    let subject = CertificateSubject {
        common_name: "my-ems".into(),
        organization: "ACME".into(),
        country: "DE".into(),
    };
    let identity = Identity::load_or_create(&data_dir, &subject)?;
    println!("this node's SKI: {}", identity.ski());

    let mut config = HubConfig::new(identity.clone(), ShipId::new("ACME-EMS-0001")?);
    config.trust_store = Arc::new(FileTrustStore::open(data_dir.join("pairings.json"))?);
    // mDNS (`_ship._tcp`): announces this node and finds the device's address. Without a
    // discovery, `pair` alone never dials: give the address with
    // `hub.pair(PairedPeer::new(ski).with_address(address))` instead (or wait for the device to
    // dial in).
    config.discovery = Some(Arc::new(MdnsDiscovery::new(MdnsConfig::new(
        identity.ski(),
    ))?));
    let hub = Hub::start(config).await?;
    let mut events = hub.events();

    // Trust the device (stored in pairings.json): it is dialled as soon as mDNS shows it, and
    // it connects once it trusts this node's SKI too.
    hub.pair(device)?;
    while let Some(event) = events.next().await {
        match event {
            HubEvent::Connected { ski, .. } => hub.send_data(ski, br#"{"datagram":[]}"#)?,
            HubEvent::Data(message) => {
                println!("{} sent {} bytes", message.ski(), message.payload().len());
                break;
            }
            _ => {}
        }
    }
    // (or implement `ship_hub::Callbacks` and set `config.callbacks`: the same events, as calls)
    hub.shutdown().await;
    Ok(())
}
