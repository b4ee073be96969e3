//! TLS-level interop with OpenSSL (`openssl s_server` / `s_client`, a stack nobody here wrote) for
//! every cipher suite, in both roles: mutual TLS with certificates made by our identity code,
//! data echoed both ways in records of many lengths from 0 to 17 KiB (every length around the
//! 16-byte CBC block and the 16 KiB record boundaries), and renegotiation refused. OpenSSL speaks
//! no WebSocket, so these stop at TLS. Only 127.0.0.1, with ports the OS chose.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ship_hub::identity::Identity;
use ship_hub::transport::{ShipTls, TlsOptions, TlsStream, TlsSuite};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

use super::{identity, listener};

const LIMIT: Duration = Duration::from_secs(60);

/// Message lengths: every length to 100, every length next to a 16-byte boundary to 1.3 KiB, every
/// length around the 16 KiB record boundary, and the top of the range (17 KiB).
fn lengths() -> Vec<usize> {
    let mut lengths: Vec<usize> = (0..=100).collect();
    for block in 7..=80 {
        lengths.extend([block * 16 - 1, block * 16, block * 16 + 1]);
    }
    lengths.extend(16_368..=16_400);
    lengths.extend([16_384 + 1024, 17 * 1024 - 1, 17 * 1024]);
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

fn message(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(salt))
        .collect()
}

fn require_openssl() {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "these tests need the openssl command-line tool: install it (e.g. apt-get install openssl)"
    );
}

/// Our identities, written as PEM files for OpenSSL.
struct Pems {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: Identity,
    client: Identity,
}

impl Pems {
    fn new() -> Pems {
        require_openssl();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let server = identity("openssl-test-server");
        let client = identity("openssl-test-client");
        server.save(&path.join("server")).unwrap();
        client.save(&path.join("client")).unwrap();
        Pems {
            _dir: dir,
            path,
            server,
            client,
        }
    }

    fn file(&self, who: &str, name: &str) -> String {
        self.path.join(who).join(name).display().to_string()
    }
}

fn only(suites: &[TlsSuite]) -> TlsOptions {
    let mut options = TlsOptions::default();
    options.cipher_suites = Some(suites.to_vec());
    options
}

/// Sends each message and expects it back, then checks the echo saw nothing else.
async fn echo_all<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, what: &str) {
    for (n, len) in lengths().into_iter().enumerate() {
        let sent = message(len, n as u8);
        stream.write_all(&sent).await.unwrap();
        stream.flush().await.unwrap();
        let mut back = vec![0u8; len];
        timeout(LIMIT, stream.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| panic!("{what}: no echo of {len} bytes"))
            .unwrap_or_else(|e| panic!("{what}: reading the echo of {len} bytes: {e}"));
        assert!(back == sent, "{what}: echo of {len} bytes differs");
    }
}

/// Copies what OpenSSL received (its stdout) back to it (its stdin): OpenSSL then sends it back.
fn pump(mut from: ChildStdout, mut to: ChildStdin) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 32 * 1024];
        while let Ok(n) = from.read(&mut buffer).await {
            if n == 0 || to.write_all(&buffer[..n]).await.is_err() {
                break;
            }
            let _ = to.flush().await;
        }
    })
}

/// `openssl s_server` on a free port of 127.0.0.1. The port is found by binding 127.0.0.1:0 and
/// releasing it; if OpenSSL then cannot bind it (taken in between), another port is tried.
async fn s_server(pems: &Pems, cipher: &str, extra: &[&str]) -> (Child, u16) {
    for _ in 0..10 {
        let port = {
            let (probe, addr) = listener().await;
            drop(probe);
            addr.port()
        };
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", &pems.file("server", "cert.pem")])
            .args(["-key", &pems.file("server", "key.pem")])
            .args(["-CAfile", &pems.file("client", "cert.pem")])
            .args([
                "-Verify", "1", "-tls1_2", "-cipher", cipher, "-naccept", "1",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Ready once the kernel lists its listening socket (no probe connection needed).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // could not bind: try another port
            }
            if listening_on(port) {
                return (child, port);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "s_server never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("no free port for s_server after 10 tries");
}

/// Whether a socket listens on 127.0.0.1:`port` (from /proc/net/tcp: local address
/// `0100007F:PORT`, state `0A`).
fn listening_on(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"0A")
            })
        })
        .unwrap_or(false)
}

/// Connects our client (restricted to `options`) to s_server on `port`.
async fn ship_client(pems: &Pems, options: TlsOptions, port: u16) -> TlsStream<TcpStream> {
    let tls = ShipTls::new(&pems.client, options).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    timeout(LIMIT, tls.connect(tcp, "127.0.0.1", pems.server.ski()))
        .await
        .expect("handshake with s_server timed out")
        .expect("handshake with s_server")
}

async fn stderr_of(child: &mut Child) -> String {
    let _ = child.start_kill();
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = timeout(Duration::from_secs(5), err.read_to_string(&mut text)).await;
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_hub_client_against_openssl_s_server_with_every_suite() {
    let pems = Pems::new();
    for suite in TlsSuite::ALL {
        let (mut server, port) = s_server(&pems, suite.openssl_name(), &["-quiet"]).await;
        let echo = pump(server.stdout.take().unwrap(), server.stdin.take().unwrap());
        let mut client = ship_client(&pems, only(&[suite]), port).await;
        assert_eq!(client.tls_suite(), Some(suite));
        assert_eq!(client.protocol_version().as_deref(), Some("TLSv1_2"));
        echo_all(&mut client, &format!("s_server {suite}")).await;
        drop(client);
        echo.abort();
        let _ = stderr_of(&mut server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_ship_hub_client_gets_what_s_server_offers() {
    // s_server restricted to each suite: our default offer contains it, so it is negotiated.
    let pems = Pems::new();
    for suite in TlsSuite::ALL {
        let (mut server, port) = s_server(&pems, suite.openssl_name(), &["-quiet"]).await;
        let echo = pump(server.stdout.take().unwrap(), server.stdin.take().unwrap());
        let mut client = ship_client(&pems, TlsOptions::default(), port).await;
        assert_eq!(client.tls_suite(), Some(suite));
        client.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        timeout(LIMIT, client.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"ping");
        drop(client);
        echo.abort();
        let _ = stderr_of(&mut server).await;
    }
}

/// `openssl s_client` connected to a ship-hub server accepting with `options`; returns the
/// client process and our side of the connection.
async fn s_client(
    pems: &Pems,
    options: TlsOptions,
    cipher: &str,
    extra: &[&str],
) -> (Child, TlsStream<TcpStream>) {
    let tls = ShipTls::new(&pems.server, options).unwrap();
    let (listener, addr) = listener().await;
    let child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-tls1_2"])
        .args(["-cipher", cipher])
        .args(["-cert", &pems.file("client", "cert.pem")])
        .args(["-key", &pems.file("client", "key.pem")])
        .args(["-CAfile", &pems.file("server", "cert.pem")])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tcp, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
    let (stream, ski) = timeout(LIMIT, tls.accept(tcp))
        .await
        .expect("handshake with s_client timed out")
        .expect("handshake with s_client");
    assert_eq!(ski, pems.client.ski());
    (child, stream)
}

/// Drives s_client from its stdin/stdout: what we write there it sends to our server, which
/// echoes; what it receives appears on its stdout.
async fn echo_through_s_client(client: &mut Child, server: TlsStream<TcpStream>, what: &str) {
    let (mut read, mut write) = tokio::io::split(server);
    let echo = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut read, &mut write).await;
    });
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    for (n, len) in lengths().into_iter().enumerate() {
        let sent = message(len, n as u8);
        stdin.write_all(&sent).await.unwrap();
        stdin.flush().await.unwrap();
        let mut back = vec![0u8; len];
        timeout(LIMIT, stdout.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| panic!("{what}: no echo of {len} bytes"))
            .unwrap_or_else(|e| panic!("{what}: reading the echo of {len} bytes: {e}"));
        assert!(back == sent, "{what}: echo of {len} bytes differs");
    }
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_against_a_ship_hub_server_with_every_suite() {
    let pems = Pems::new();
    for suite in TlsSuite::ALL {
        // A server restricted to the suite, and a default server: both negotiate it.
        for options in [only(&[suite]), TlsOptions::default()] {
            let (mut client, server) =
                s_client(&pems, options, suite.openssl_name(), &["-quiet"]).await;
            assert_eq!(server.tls_suite(), Some(suite));
            echo_through_s_client(&mut client, server, &format!("s_client {suite}")).await;
            let _ = stderr_of(&mut client).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_prefers_gcm_over_cbc_whatever_the_client_order() {
    let pems = Pems::new();
    let all_cbc_first = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:\
                         ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
    let (mut client, server) =
        s_client(&pems, TlsOptions::default(), all_cbc_first, &["-quiet"]).await;
    assert_eq!(server.tls_suite(), Some(TlsSuite::Aes128GcmSha256));
    drop(server);
    let _ = stderr_of(&mut client).await;
    // A CBC-only server still talks to the same client, with CBC.
    let (mut client, server) = s_client(
        &pems,
        only(&[TlsSuite::Aes128CbcSha256]),
        all_cbc_first,
        &["-quiet"],
    )
    .await;
    assert_eq!(server.tls_suite(), Some(TlsSuite::Aes128CbcSha256));
    drop(server);
    let _ = stderr_of(&mut client).await;
}

/// Ends a process and returns everything it printed on stdout and stderr.
async fn output_of(child: &mut Child) -> String {
    let _ = child.start_kill();
    let mut bytes = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = timeout(Duration::from_secs(20), out.read_to_end(&mut bytes)).await;
    }
    String::from_utf8_lossy(&bytes).into_owned() + &stderr_of(child).await
}

/// Reads our side of the connection, and writes a byte every 200 ms (rustls sends its
/// no_renegotiation alert with the next write), until OpenSSL ends the connection (or [`LIMIT`]).
/// Returns whether it ended.
async fn until_closed<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    let mut buffer = vec![0u8; 1024];
    timeout(LIMIT, async {
        loop {
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stream.write_all(b".").await.is_err() || stream.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
    })
    .await
    .is_ok()
}

/// OpenSSL's `-msg` trace shows the refusal: our no_renegotiation alert arrived, our hello of
/// the first handshake is the only one, and OpenSSL, which asked, gave up ("no renegotiation").
fn assert_refused(output: &str, our_hello: &str) {
    assert!(
        output.contains("warning no_renegotiation") && output.contains("no renegotiation"),
        "OpenSSL saw no no_renegotiation alert:\n{output}"
    );
    assert_eq!(
        output.matches(our_hello).count(),
        1,
        "a second {our_hello} means a renegotiation happened:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renegotiation_requested_by_s_server_is_refused() {
    let pems = Pems::new();
    let cbc = TlsSuite::Aes128CbcSha256;
    let (mut server, port) = s_server(&pems, cbc.openssl_name(), &["-msg"]).await;
    let mut client = ship_client(&pems, only(&[cbc]), port).await;
    let mut stdin = server.stdin.take().unwrap();
    // `r` asks s_server to renegotiate: it sends a HelloRequest, which our client refuses.
    stdin.write_all(b"r\n").await.unwrap();
    stdin.flush().await.unwrap();
    assert!(
        until_closed(&mut client).await,
        "OpenSSL kept the connection"
    );
    drop(stdin);
    let output = output_of(&mut server).await;
    assert_refused(&output, "], ClientHello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renegotiation_requested_by_s_client_is_refused() {
    let pems = Pems::new();
    let cbc = TlsSuite::Aes128CbcSha256;
    let (mut client, mut server) =
        s_client(&pems, only(&[cbc]), cbc.openssl_name(), &["-msg"]).await;
    let mut stdin = client.stdin.take().unwrap();
    // `R` asks s_client to renegotiate: it sends a new ClientHello, which our server refuses.
    stdin.write_all(b"R\n").await.unwrap();
    stdin.flush().await.unwrap();
    assert!(
        until_closed(&mut server).await,
        "OpenSSL kept the connection"
    );
    drop(stdin);
    let output = output_of(&mut client).await;
    assert_refused(&output, "], ServerHello\n");
}
