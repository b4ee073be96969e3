//! The gateway as a library (`ship_gateway::Gateway`), started and stopped in this process on
//! loopback with mDNS off: no process, no signal.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ship_gateway::{Gateway, Settings};

/// How long a stop may take here: the hub's shutdown deadline (no peer is connected, so it
/// is quick) plus the bound the HTTP servers have to finish.
const STOP_BOUND: Duration = Duration::from_secs(15);

fn settings(dir: &Path) -> Settings {
    Settings::from_command_line([
        "--data-dir".as_ref(),
        dir.as_os_str(),
        "--no-mdns".as_ref(),
        "--no-prompt".as_ref(),
        "--bind".as_ref(),
        "127.0.0.1".as_ref(),
        "--port".as_ref(),
        "0".as_ref(),
        "--http".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--json".as_ref(),
    ])
    .expect("settings")
}

/// One HTTP/1.1 request on a new connection; the status line of the answer.
fn status_line(mut stream: impl Read + Write, path: &str) -> String {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines().next().unwrap_or_default().to_owned()
}

fn closed(address: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err()
}

/// Tasks still alive on this runtime, waited for (a task that is ending may take a moment).
async fn tasks_left_after(wait: Duration) -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    let until = tokio::time::Instant::now() + wait;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    metrics.num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_in_process_stops_through_its_shutdown_and_leaves_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(settings(dir.path())).await.expect("starts");
    let ship = gateway.local_addr();
    let http = gateway.http_addr().expect("the HTTP API is served");
    assert!(ship.ip().is_loopback() && ship.port() != 0, "{ship}");
    let socket = dir.path().join("control.sock");

    // Both fronts answer: TCP (no token: refused, but by the API) and the control socket.
    let line = tokio::task::spawn_blocking(move || {
        status_line(
            std::net::TcpStream::connect(http).unwrap(),
            "/api/v1/status",
        )
    })
    .await
    .unwrap();
    assert!(line.starts_with("HTTP/1.1 401"), "{line}");
    let path = socket.clone();
    let line = tokio::task::spawn_blocking(move || {
        status_line(
            std::os::unix::net::UnixStream::connect(path).unwrap(),
            "/api/v1/status",
        )
    })
    .await
    .unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");

    // Idle connections on both fronts, left open across the stop: they must not keep a task.
    let idle_http = std::net::TcpStream::connect(http).unwrap();
    let idle_socket = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let report = tokio::time::timeout(STOP_BOUND, gateway.stop("test"))
        .await
        .expect("the stop completes within its bound");
    assert!(report.connections_closed_in_time, "{report:?}");
    assert!(closed(http), "the HTTP listener is closed");
    assert!(closed(ship), "the SHIP listener is closed");
    assert!(!socket.exists(), "the control socket is removed");
    assert_eq!(
        tasks_left_after(Duration::from_secs(5)).await,
        0,
        "every task of the gateway ended (its idle connections included)"
    );
    drop((idle_http, idle_socket));
}
