//! Cipher suite negotiation between two ship-hub endpoints: every pair of offers, and the
//! server's preference (AES_128_GCM, AES_256_GCM, CHACHA20, CBC) deciding.

use ship_hub::transport::{ShipTls, TlsError, TlsOptions, TlsSuite, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{accept_tls, connect_tls, identity, listener};

/// `None` = the default offer (every suite); `Some(suite)` = only that suite.
fn offer(choice: Option<TlsSuite>) -> TlsOptions {
    let mut options = TlsOptions::default();
    options.cipher_suites = choice.map(|suite| vec![suite]);
    options
}

#[tokio::test]
async fn every_pair_of_offers_negotiates_the_servers_first_common_suite() {
    let server_id = identity("server");
    let client_id = identity("client");
    let choices: Vec<Option<TlsSuite>> = std::iter::once(None)
        .chain(TlsSuite::ALL.into_iter().map(Some))
        .collect();
    for server_choice in &choices {
        for client_choice in &choices {
            let server_tls = ShipTls::new(&server_id, offer(*server_choice)).unwrap();
            let client_tls = ShipTls::new(&client_id, offer(*client_choice)).unwrap();
            let expected = TlsSuite::ALL.into_iter().find(|suite| {
                server_choice.is_none_or(|s| s == *suite)
                    && client_choice.is_none_or(|c| c == *suite)
            });
            let (listener, addr) = listener().await;
            let (accepted, connected) = tokio::join!(
                accept_tls(&listener, &server_tls),
                connect_tls(addr, &client_tls, server_id.ski())
            );
            let what = format!("server {server_choice:?}, client {client_choice:?}");
            match expected {
                Some(suite) => {
                    let (mut server, _) = accepted.unwrap_or_else(|e| panic!("{what}: {e}"));
                    let mut client = connected.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(server.tls_suite(), Some(suite), "{what}");
                    assert_eq!(client.tls_suite(), Some(suite), "{what}");
                    assert_eq!(server.cipher_suite().as_deref(), Some(suite.name()));
                    let payload = vec![0x42u8; 5000];
                    client.write_all(&payload).await.unwrap();
                    client.flush().await.unwrap();
                    let mut got = vec![0u8; payload.len()];
                    server.read_exact(&mut got).await.unwrap();
                    server.write_all(&got).await.unwrap();
                    server.flush().await.unwrap();
                    let mut back = vec![0u8; payload.len()];
                    client.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, payload, "{what}");
                }
                None => {
                    assert!(
                        matches!(
                            accepted,
                            Err(TransportError::Tls(TlsError::NoCommonCipherSuite))
                        ),
                        "{what}: {accepted:?}"
                    );
                    assert!(connected.is_err(), "{what}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_default_node_uses_aes_128_gcm_with_a_default_peer_and_cbc_with_a_cbc_only_peer() {
    let server_id = identity("server");
    let client_id = identity("client");
    let default = ShipTls::new(&server_id, TlsOptions::default()).unwrap();
    for (client, expected) in [
        (None, TlsSuite::Aes128GcmSha256),
        (Some(TlsSuite::Aes128CbcSha256), TlsSuite::Aes128CbcSha256),
    ] {
        let client_tls = ShipTls::new(&client_id, offer(client)).unwrap();
        // Both roles: the default node accepting, then dialling.
        let (first, addr) = listener().await;
        let (accepted, connected) = tokio::join!(
            accept_tls(&first, &default),
            connect_tls(addr, &client_tls, server_id.ski())
        );
        assert_eq!(accepted.unwrap().0.tls_suite(), Some(expected));
        assert_eq!(connected.unwrap().tls_suite(), Some(expected));
        let peer_server = ShipTls::new(&client_id, offer(client)).unwrap();
        let (listener, addr) = listener().await;
        let (accepted, connected) = tokio::join!(
            accept_tls(&listener, &peer_server),
            connect_tls(addr, &default, client_id.ski())
        );
        assert_eq!(accepted.unwrap().0.tls_suite(), Some(expected));
        assert_eq!(connected.unwrap().tls_suite(), Some(expected));
    }
}

#[test]
fn an_empty_suite_list_is_a_configuration_error() {
    let mut options = TlsOptions::default();
    options.cipher_suites = Some(Vec::new());
    assert!(matches!(
        ShipTls::new(&identity("x"), options),
        Err(TransportError::Tls(TlsError::Configuration(_)))
    ));
}
