//! Criterion benchmarks of the transport: SKI extraction from a certificate, one full
//! TLS + WebSocket handshake over an in-memory `tokio::io::duplex` pair, and per cipher suite a
//! TLS handshake and bulk throughput (1 MiB through an established TLS connection).
//!
//! `cargo bench --bench transport -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ship_hub::identity::{CertificateSubject, Identity, parse_peer_certificate};
use ship_hub::transport::{
    ShipTls, SocketEvent, TlsOptions, TlsSuite, WsOptions, accept_websocket, connect_websocket,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Per suite: a TLS-only handshake, and 1 MiB written by the client and read by the server in
/// 16 KiB writes (full records).
fn per_suite(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server_id = identity("server");
    let client_id = identity("client");
    const BULK: usize = 1024 * 1024;
    let chunk = vec![0x5au8; 16 * 1024];
    for suite in TlsSuite::ALL {
        let mut options = TlsOptions::default();
        options.cipher_suites = Some(vec![suite]);
        let server_tls = ShipTls::new(&server_id, options.clone()).expect("server tls");
        let client_tls = ShipTls::new(&client_id, options).expect("client tls");
        let connect = || async {
            let (server_io, client_io) = tokio::io::duplex(256 * 1024);
            let (server, client) = tokio::join!(
                server_tls.accept(server_io),
                client_tls.connect(client_io, "server.local", server_id.ski())
            );
            (server.expect("server").0, client.expect("client"))
        };
        let mut group = c.benchmark_group("tls_suite_handshake");
        group.bench_function(suite.name(), |b| b.iter(|| runtime.block_on(connect())));
        group.finish();

        let (mut server, mut client) = runtime.block_on(connect());
        let mut group = c.benchmark_group("tls_suite_bulk_1mib");
        group.throughput(Throughput::Bytes(BULK as u64));
        group.bench_function(suite.name(), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let writer = async {
                        for _ in 0..BULK / chunk.len() {
                            client.write_all(&chunk).await.expect("write");
                        }
                        client.flush().await.expect("flush");
                    };
                    let reader = async {
                        let mut buffer = vec![0u8; 64 * 1024];
                        let mut left = BULK;
                        while left > 0 {
                            let n = server.read(&mut buffer).await.expect("read");
                            assert!(n > 0);
                            left -= n;
                        }
                    };
                    tokio::join!(writer, reader);
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, ski_extraction, handshake, per_suite);
criterion_main!(benches);
