//! Criterion benchmarks of the transport: SKI extraction from a certificate, and one full
//! TLS + WebSocket handshake over an in-memory `tokio::io::duplex` pair.
//!
//! `cargo bench --bench transport -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use ship_hub::identity::{CertificateSubject, Identity, parse_peer_certificate};
use ship_hub::transport::{
    ShipTls, SocketEvent, TlsOptions, WsOptions, accept_websocket, connect_websocket,
};
use x509_parser::prelude::{FromDer, X509Certificate};

fn identity(name: &str) -> Identity {
    Identity::generate(&CertificateSubject {
        common_name: name.into(),
        organization: "Bench".into(),
        country: "DE".into(),
    })
    .expect("identity")
}

fn ski_extraction(c: &mut Criterion) {
    let der = identity("bench").certificate_der().to_vec();
    let elli = Identity::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/elli"))
        .expect("Elli fixture")
        .certificate_der()
        .to_vec();
    let mut group = c.benchmark_group("ski_extraction");
    group.bench_function("ship_hub", |b| {
        b.iter(|| parse_peer_certificate(black_box(&der)).expect("valid"))
    });
    group.bench_function("ship_hub_elli", |b| {
        b.iter(|| parse_peer_certificate(black_box(&elli)).expect("valid"))
    });
    // For scale: a full X.509 parse with x509-parser (no SKI check).
    group.bench_function("x509_parser_full_parse", |b| {
        b.iter(|| X509Certificate::from_der(black_box(&der)).expect("valid"))
    });
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server_id = identity("server");
    let client_id = identity("client");
    let ws = WsOptions::default();
    let mut group = c.benchmark_group("handshake_tls_ws_duplex");
    for (name, offer_tls13) in [("tls12", false), ("tls13", true)] {
        let mut options = TlsOptions::default();
        options.offer_tls13 = offer_tls13;
        let server_tls = ShipTls::new(&server_id, options.clone()).expect("server tls");
        let client_tls = ShipTls::new(&client_id, options).expect("client tls");
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
                    let server = async {
                        let (stream, _) = server_tls.accept(server_io).await?;
                        accept_websocket(stream, &ws, || true).await
                    };
                    let client = async {
                        let stream = client_tls
                            .connect(client_io, "server.local", server_id.ski())
                            .await?;
                        connect_websocket(stream, "server.local", 4711, "/ship/", &ws).await
                    };
                    let (server, client) = tokio::join!(server, client);
                    let (mut server, mut client) =
                        (server.expect("server"), client.expect("client"));
                    // One SHIP CMI round trip proves both directions work.
                    client.send(vec![0, 0]).await.expect("send");
                    let event = server.next_event().await.expect("event");
                    assert_eq!(event, SocketEvent::Message(vec![0, 0]));
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ski_extraction, handshake);
criterion_main!(benches);
