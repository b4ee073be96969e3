//! `ship-load run`: connect N clients to a target, measure, print one JSON result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use ship_hub::protocol::ProtocolConfig;
use ship_hub::transport::{ShipTls, TlsOptions, TlsSuite, WsOptions, parse_tls_suites};
use ship_hub::{ShipId, Ski};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Failure, Session, Target};
use crate::identities::load_or_generate;
use crate::stats::{Latency, cpu_seconds, rss_kib, threads};

/// Options of `run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The target, `SKI@host:port` (host: an IP address).
    #[arg(long)]
    target: String,
    /// Directory of cached client identities (created and filled as needed).
    #[arg(long, default_value = "target/ship-load-identities")]
    identities: PathBuf,
    /// Number of connections (one client identity each).
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Keep every connection open after its handshake, and watch the idle target this many
    /// seconds (CPU and RSS) before closing them all; 0 = close each right after Completed.
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
    /// Data round trips per data connection (needs a target that echoes, e.g. `serve --echo`).
    #[arg(long, default_value_t = 0)]
    round_trips: usize,
    /// How many connections (the first ones) run the round trips, all at once.
    #[arg(long, default_value_t = 1)]
    data_connections: usize,
    /// Size of the JSON payload of each data message, in bytes (about).
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Wait for the target's first data message after Completed (`serve --greet`) and report
    /// the time from dial to its arrival.
    #[arg(long)]
    expect_greeting: bool,
    /// The target's pid, for RSS per held connection and idle CPU (/proc/PID).
    #[arg(long)]
    target_pid: Option<u32>,
    /// WebSocket path.
    #[arg(long, default_value = "/ship/")]
    path: String,
    /// Deadline of one connection's TCP + TLS + WebSocket + SHIP handshake, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// TLS 1.2 cipher suites to offer, comma-separated IANA or OpenSSL names (e.g.
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`); default: all four SHIP suites.
    #[arg(long, value_name = "SUITES")]
    tls_suites: Option<String>,
}

/// The JSON result.
#[derive(Serialize, Default)]
struct Report {
    target: String,
    count: usize,
    concurrency: usize,
    completed: usize,
    failures: BTreeMap<Failure, usize>,
    handshake_elapsed_s: f64,
    handshakes_per_second: f64,
    /// TCP connect → SHIP Completed at the client.
    handshake_latency: Latency,
    /// CPU time the target spent per completed handshake during the handshake phase (user +
    /// system, from /proc/PID/stat; includes anything else the target did meanwhile).
    target_cpu_us_per_handshake: Option<f64>,
    /// CPU time this load tool spent per completed handshake (client side of the same work).
    client_cpu_us_per_handshake: Option<f64>,
    /// 1e6 / (target + client CPU µs per handshake) × cores: the rate the two processes could
    /// reach on this machine if they had every core to themselves (noise-independent).
    cpu_bound_handshakes_per_second: Option<f64>,
    /// TCP connect → the target's first data message (sent from its `connected` callback).
    dial_to_greeting_latency: Option<Latency>,
    /// Completed → the target's first data message.
    completed_to_greeting_latency: Option<Latency>,
    round_trip_latency: Option<Latency>,
    round_trips: usize,
    data_connections: usize,
    data_elapsed_s: Option<f64>,
    /// Messages in both directions (two per round trip) per second, over all data connections.
    messages_per_second: Option<f64>,
    held: Option<HeldReport>,
    client_setup_s: f64,
    nofile_limit: u64,
}

#[derive(Serialize, Default)]
struct HeldReport {
    connections: usize,
    /// Lost while held (before the close).
    lost: usize,
    target_rss_before_kib: Option<u64>,
    target_rss_held_kib: Option<u64>,
    /// (RSS while holding − RSS before the first connection) / connections held.
    target_rss_per_connection_bytes: Option<u64>,
    target_threads: Option<u64>,
    idle_window_s: f64,
    /// CPU used by the target while every connection was idle, as a percentage of one core.
    target_idle_cpu_percent: Option<f64>,
}

enum Note {
    Handshake(Result<Duration, Failure>, Option<(Duration, Duration)>),
    RoundTrips(Result<Vec<Duration>, Failure>),
}

struct Plan {
    target: Target,
    semaphore: Semaphore,
    hold: bool,
    expect_greeting: bool,
    round_trips: usize,
    data_connections: usize,
    payload: String,
    data_go: CancellationToken,
    stop: CancellationToken,
    notes: mpsc::UnboundedSender<Note>,
}

fn parse_target(text: &str) -> Result<(Ski, SocketAddr), String> {
    let (ski, addr) = text
        .split_once('@')
        .ok_or_else(|| format!("target {text:?} is not SKI@host:port"))?;
    let ski: Ski = ski.parse().map_err(|e| format!("target SKI: {e}"))?;
    let addr: SocketAddr = addr.parse().map_err(|e| format!("target address: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; ship-load only measures on loopback"
        ));
    }
    Ok((ski, addr))
}

/// `--tls-suites`: `None` (all suites) when absent.
pub(crate) fn tls_suites(text: Option<&str>) -> Result<Option<Vec<TlsSuite>>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let suites = parse_tls_suites(text).map_err(|e| format!("--tls-suites: {e}"))?;
    if suites.is_empty() {
        return Err("--tls-suites must name at least one suite".into());
    }
    Ok(Some(suites))
}

pub(crate) async fn run(args: RunArgs, nofile_limit: u64) -> Result<(), String> {
    let (ski, addr) = parse_target(&args.target)?;
    let setup_started = Instant::now();
    let identities = load_or_generate(&args.identities, args.count).map_err(|e| e.to_string())?;
    let mut tls_options = TlsOptions::default();
    tls_options.cipher_suites = tls_suites(args.tls_suites.as_deref())?;
    let clients: Vec<(ShipTls, ShipId)> = identities
        .iter()
        .enumerate()
        .map(|(i, identity)| {
            let tls = ShipTls::new(identity, tls_options.clone()).map_err(|e| e.to_string())?;
            let ship_id = ShipId::new(format!("ship-load-{i}")).map_err(|e| e.to_string())?;
            Ok((tls, ship_id))
        })
        .collect::<Result<_, String>>()?;
    drop(identities);
    let client_setup_s = setup_started.elapsed().as_secs_f64();

    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let plan = Arc::new(Plan {
        target: Target {
            addr,
            ski,
            path: args.path.clone(),
            ws: WsOptions::default(),
            protocol: ProtocolConfig::default(),
            handshake_timeout: Duration::from_secs(args.timeout_secs),
        },
        semaphore: Semaphore::new(args.concurrency.max(1)),
        hold: args.hold_secs > 0,
        expect_greeting: args.expect_greeting,
        round_trips: args.round_trips,
        data_connections: if args.round_trips > 0 {
            args.data_connections.min(args.count)
        } else {
            0
        },
        payload: payload(args.payload_bytes),
        data_go: CancellationToken::new(),
        stop: CancellationToken::new(),
        notes: notes_tx,
    });
    let rss_before = args.target_pid.and_then(rss_kib);

    // Phase 1: handshakes.
    let target_cpu_start = args.target_pid.and_then(cpu_seconds);
    let client_cpu_start = cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (index, (tls, ship_id)) in clients.into_iter().enumerate() {
        tasks.spawn(one_client(index, tls, ship_id, plan.clone()));
    }
    let mut latencies = Vec::with_capacity(args.count);
    let mut greetings = Vec::new();
    let mut failures: BTreeMap<Failure, usize> = BTreeMap::new();
    let mut last_completed = started;
    for _ in 0..args.count {
        match notes.recv().await {
            Some(Note::Handshake(Ok(took), greeting)) => {
                latencies.push(took);
                last_completed = Instant::now();
                greetings.extend(greeting);
            }
            Some(Note::Handshake(Err(failure), _)) => *failures.entry(failure).or_default() += 1,
            Some(Note::RoundTrips(_)) | None => {}
        }
    }
    let handshake_elapsed = last_completed.duration_since(started).as_secs_f64();
    let per_handshake = |start: Option<f64>, end: Option<f64>| match (start, end) {
        (Some(a), Some(b)) if !latencies.is_empty() => Some(1e6 * (b - a) / latencies.len() as f64),
        _ => None,
    };
    let target_cpu_us = per_handshake(target_cpu_start, args.target_pid.and_then(cpu_seconds));
    let client_cpu_us = per_handshake(client_cpu_start, cpu_seconds(std::process::id()));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut report = Report {
        target: args.target.clone(),
        count: args.count,
        concurrency: args.concurrency,
        completed: latencies.len(),
        handshake_elapsed_s: handshake_elapsed,
        handshakes_per_second: if handshake_elapsed > 0.0 {
            latencies.len() as f64 / handshake_elapsed
        } else {
            0.0
        },
        handshake_latency: Latency::of(&latencies),
        target_cpu_us_per_handshake: target_cpu_us,
        client_cpu_us_per_handshake: client_cpu_us,
        cpu_bound_handshakes_per_second: match (target_cpu_us, client_cpu_us) {
            (Some(t), Some(c)) if t + c > 0.0 => Some(cores * 1e6 / (t + c)),
            _ => None,
        },
        round_trips: args.round_trips,
        client_setup_s,
        nofile_limit,
        ..Report::default()
    };
    if args.expect_greeting {
        let (dial, after): (Vec<Duration>, Vec<Duration>) = greetings.into_iter().unzip();
        report.dial_to_greeting_latency = Some(Latency::of(&dial));
        report.completed_to_greeting_latency = Some(Latency::of(&after));
    }

    // Phase 2: data round trips, all data connections at once.
    let data_connections = plan.data_connections.min(latencies.len());
    if data_connections > 0 {
        let data_started = Instant::now();
        plan.data_go.cancel();
        let mut rtts = Vec::new();
        let mut seen = 0;
        while seen < plan.data_connections {
            match notes.recv().await {
                Some(Note::RoundTrips(Ok(samples))) => {
                    rtts.extend(samples);
                    seen += 1;
                }
                Some(Note::RoundTrips(Err(failure))) => {
                    *failures.entry(failure).or_default() += 1;
                    seen += 1;
                }
                Some(Note::Handshake(..)) => {}
                None => break,
            }
        }
        let elapsed = data_started.elapsed().as_secs_f64();
        report.data_connections = data_connections;
        report.data_elapsed_s = Some(elapsed);
        report.messages_per_second = Some(2.0 * rtts.len() as f64 / elapsed.max(1e-9));
        report.round_trip_latency = Some(Latency::of(&rtts));
    } else {
        plan.data_go.cancel();
    }

    // Phase 3: hold and watch the idle target.
    if plan.hold {
        let held_before = latencies.len();
        let pid = args.target_pid;
        // Let the target settle (last callbacks, trust-store updates) before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu_start = pid.and_then(cpu_seconds);
        let window = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
        let cpu_end = pid.and_then(cpu_seconds);
        let idle_window_s = window.elapsed().as_secs_f64();
        let rss_held = pid.and_then(rss_kib);
        let mut lost = 0;
        while let Ok(note) = notes.try_recv() {
            if let Note::Handshake(Err(failure), _) = note {
                *failures.entry(failure).or_default() += 1;
                lost += 1;
            }
        }
        report.held = Some(HeldReport {
            connections: held_before,
            lost,
            target_rss_before_kib: rss_before,
            target_rss_held_kib: rss_held,
            target_rss_per_connection_bytes: match (rss_before, rss_held) {
                (Some(before), Some(held)) if held_before > 0 => {
                    Some(held.saturating_sub(before) * 1024 / held_before as u64)
                }
                _ => None,
            },
            target_threads: pid.and_then(threads),
            idle_window_s,
            target_idle_cpu_percent: match (cpu_start, cpu_end) {
                (Some(a), Some(b)) => Some(100.0 * (b - a) / idle_window_s),
                _ => None,
            },
        });
    }
    plan.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    report.failures = failures;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// A JSON payload of about `bytes` bytes.
fn payload(bytes: usize) -> String {
    let fill = bytes.saturating_sub(20);
    format!("{{\"seq\":0,\"pad\":\"{}\"}}", "x".repeat(fill))
}

async fn one_client(index: usize, tls: ShipTls, ship_id: ShipId, plan: Arc<Plan>) {
    let note = |note: Note| {
        let _ = plan.notes.send(note);
    };
    let permit = plan.semaphore.acquire().await;
    let (mut session, took) = match client::connect(&tls, ship_id, &plan.target).await {
        Ok(connected) => connected,
        Err(failure) => {
            note(Note::Handshake(Err(failure), None));
            return;
        }
    };
    let mut greeting = None;
    if plan.expect_greeting {
        let completed = Instant::now();
        match tokio::time::timeout(plan.target.handshake_timeout, session.next_data()).await {
            Ok(Ok(_)) => greeting = Some((took + completed.elapsed(), completed.elapsed())),
            Ok(Err(failure)) => return note(Note::Handshake(Err(failure), None)),
            Err(_) => return note(Note::Handshake(Err(Failure::Timeout), None)),
        }
    }
    drop(permit);
    note(Note::Handshake(Ok(took), greeting));
    drop(tls);

    if index < plan.data_connections {
        if let Err(failure) = session.hold(&plan.data_go).await {
            return note(Note::RoundTrips(Err(failure)));
        }
        note(Note::RoundTrips(round_trips(&mut session, &plan).await));
    }
    if plan.hold
        && let Err(failure) = session.hold(&plan.stop).await
    {
        // Reported as a handshake note so the main task counts it among the losses.
        return note(Note::Handshake(Err(failure), None));
    }
    session.close(Duration::from_secs(5)).await;
}

async fn round_trips(session: &mut Session, plan: &Plan) -> Result<Vec<Duration>, Failure> {
    let mut samples = Vec::with_capacity(plan.round_trips);
    for seq in 0..plan.round_trips {
        let message = plan
            .payload
            .replacen("\"seq\":0", &format!("\"seq\":{seq}"), 1);
        let sent = Instant::now();
        session.send_data(message.as_bytes()).await?;
        loop {
            let answer = tokio::time::timeout(plan.target.handshake_timeout, session.next_data())
                .await
                .map_err(|_| Failure::Timeout)??;
            if answer == message.as_bytes() {
                break;
            }
        }
        samples.push(sent.elapsed());
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_ski_at_a_loopback_address() {
        let ski = "0123456789abcdef0123456789abcdef01234567";
        let (parsed, addr) = parse_target(&format!("{ski}@127.0.0.1:4711")).unwrap();
        assert_eq!(parsed.to_string(), ski);
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], 4711)));
        assert!(parse_target(&format!("{ski}@[::1]:4711")).is_ok());
        assert!(parse_target("127.0.0.1:4711").is_err());
        assert!(parse_target(&format!("{ski}@192.168.1.2:4711")).is_err());
        assert!(parse_target("nothex@127.0.0.1:4711").is_err());
    }

    #[test]
    fn payloads_are_json_of_about_the_size_asked() {
        for size in [0, 20, 64, 1000] {
            let text = payload(size);
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
            assert!(
                text.len().abs_diff(size.max(20)) <= 12,
                "{size}: {}",
                text.len()
            );
        }
    }
}
