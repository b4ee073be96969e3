//! An application that follows the hub as an async stream (`Hub::events`) instead of
//! implementing `Callbacks`, using only what the crate root exports.
//!
//! ```text
//! cargo run --example event_stream            # two hubs on loopback, about 1 s
//! ```
//!
//! Two hubs run in this process on 127.0.0.1. The "controller" knows nobody; it leaves pairing
//! decisions for later (`DecideLater`) and decides from its event stream: it approves the
//! device that asks, greets it once connected, and prints what the device answers. The
//! "device" trusts the controller, dials it, and answers every message with one of its own,
//! also from its event stream. Nothing leaves the machine.

use ship_hub::hub::PairedPeer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ship_hub::{
    CertificateSubject, DecideLater, Hub, HubConfig, HubEvent, Identity, ShipId, StateDetail,
};

/// A hub on an OS-chosen loopback port, with a fresh certificate.
async fn hub(name: &str, decide_later: bool) -> Hub {
    let subject = CertificateSubject {
        common_name: name.into(),
        organization: "ship-hub example".into(),
        country: "DE".into(),
    };
    let identity = Identity::generate(&subject).expect("generating a certificate");
    let mut config = HubConfig::new(identity, ShipId::new(name).expect("a SHIP ID"));
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    if decide_later {
        config.callbacks = Arc::new(DecideLater);
    }
    Hub::start(config).await.expect("starting a hub")
}

/// The device: answers every message from the controller, until its hub shuts down.
async fn device(hub: Hub) {
    let mut events = hub.events();
    while let Some(event) = events.next().await {
        if let HubEvent::Data(message) = event {
            let answer = format!(r#"{{"device":"got {} bytes"}}"#, message.payload().len());
            let _ = hub.send_data(message.ski(), answer.as_bytes());
        }
    }
}

#[tokio::main]
async fn main() {
    let controller = hub("controller", true).await;
    let mut events = controller.events();
    let device_hub = hub("device", false).await;
    println!("controller {}", controller.local_ski());
    println!("device     {}", device_hub.local_ski());
    let answering = tokio::spawn(device(device_hub.clone()));
    device_hub
        .pair(PairedPeer::new(controller.local_ski()).with_address(controller.local_addr()))
        .expect("pairing the controller on the device");

    let run = async {
        while let Some(event) = events.next().await {
            match event {
                HubEvent::StateChanged {
                    ski,
                    state,
                    detail: StateDetail { failure, .. },
                    ..
                } => match failure {
                    Some(failure) => println!("{ski}: {state:?} ({failure})"),
                    None => println!("{ski}: {state:?}"),
                },
                HubEvent::PairingRequested { request, .. } => {
                    println!("{} asks to pair: approving", request.ski);
                    controller.approve(request.ski).expect("approving");
                }
                HubEvent::Connected { ski, ship_id } => {
                    println!("{ski} connected (SHIP ID {ship_id:?}): greeting it");
                    controller
                        .send_data(ski, br#"{"controller":"hello"}"#)
                        .expect("sending");
                }
                HubEvent::Data(message) => {
                    let text = String::from_utf8_lossy(message.payload());
                    println!("{} says {text}", message.ski());
                    return;
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the device answered within 20 s");
    device_hub.shutdown().await;
    controller.shutdown().await;
    answering.await.expect("the device task");
    println!("done");
}
