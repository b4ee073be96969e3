//! Two connections at once: CONN_001 (double connection, §12.2.3) and ROLE_003 (the DUT is
//! server and client at the same time).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::super::Ctx;
use super::super::identities::LISTENER;
use super::super::peer::{Incoming, Peer, Step};
use super::super::report::Verdict;
use super::super::script;
use super::Outcome;
use ship_hub::transport::{WsOptions, connect_websocket};

/// CONN_001: the older connection must be closed within 30 s.
const OLDER_CLOSED_WITHIN: Duration = Duration::from_secs(30);
/// ROLE_003: both hellos `ready` within 30 s.
const BOTH_READY_WITHIN: Duration = Duration::from_secs(30);

fn needs_both(ctx: &Ctx) -> Option<Outcome> {
    if ctx.target.is_none() || ctx.listener.is_none() {
        return Some(Outcome::not_applicable(
            "needs --target and --listen (the DUT dials the tool and is dialled by it)",
        ));
    }
    None
}

/// Watches connection A (the DUT dialled it): TLS + WebSocket as the listener, then reads until
/// the DUT closes. Returns when and how A ended, or `None` if it was still open at `until`.
async fn watch_older(ctx: &Ctx, tcp: TcpStream, until: Instant) -> (Option<Instant>, Vec<String>) {
    let upgrade = tokio::time::timeout_at(until, ctx.upgrade(tcp, "A")).await;
    let mut peer = match upgrade {
        Err(_) => {
            return (
                None,
                vec!["A: TLS/WebSocket still running at the deadline".into()],
            );
        }
        Ok(Err(e)) => {
            return (
                Some(Instant::now()),
                vec![format!("A: ended during TLS/WebSocket ({e})")],
            );
        }
        Ok(Ok(peer)) => peer,
    };
    peer.note("A: TLS + WebSocket done");
    loop {
        match peer
            .next(until.saturating_duration_since(Instant::now()))
            .await
        {
            None => {
                let log = peer.take_log();
                peer.finish().await;
                return (None, log);
            }
            Some(Incoming::Closed(_)) => return (Some(Instant::now()), peer.take_log()),
            Some(Incoming::Message(_)) => {}
        }
    }
}

/// TC_SHIP_CONN_001: the DUT (bigger SKI) dials A; the tool at once opens B with the same
/// certificate → the DUT keeps B and closes A within 30 s.
pub(crate) async fn conn_001(ctx: &Ctx) -> Outcome {
    if let Some(outcome) = needs_both(ctx) {
        return outcome;
    }
    let (Some(listener_ski), Some(target)) = (ctx.ski_of(LISTENER), ctx.target.clone()) else {
        return Outcome::fail("no listener identity");
    };
    if listener_ski >= target.ski {
        return Outcome::not_applicable(format!(
            "the tool's listener SKI {listener_ski} is not smaller than the DUT's {}",
            target.ski
        ));
    }
    let tcp_a = match ctx.accept_tcp().await {
        Ok(tcp) => tcp,
        Err(e) => return Outcome::fail(e),
    };
    let t0 = Instant::now();
    let until = t0 + OLDER_CLOSED_WITHIN;
    let mut evidence = vec![format!(
        "t=0 A: the DUT's TCP connection arrived; the tool opens B as {listener_ski}"
    )];
    let older = watch_older(ctx, tcp_a, until);
    let newer = async {
        let tls = ctx.tls(LISTENER)?;
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|e| format!("B: TCP connect failed: {e}"))?;
        let stream = tls
            .connect(tcp, "", target.ski)
            .await
            .map_err(|e| format!("B: TLS failed: {e}"))?;
        let b_tls_done = Instant::now();
        let socket = connect_websocket(
            stream,
            &target.addr.ip().to_string(),
            target.addr.port(),
            &target.path,
            &WsOptions::default(),
        )
        .await
        .map_err(|e| format!("B: WebSocket failed: {e}"))?;
        let mut peer = Peer::new(socket, "B");
        let result: Step<()> = async {
            script::cmi_dialled(&mut peer).await?;
            script::expect_ready(&mut peer).await?;
            Ok(())
        }
        .await;
        Ok::<_, String>((b_tls_done, peer, result))
    };
    let ((a_closed, a_log), b) = tokio::join!(older, newer);
    evidence.extend(a_log);
    let mut ok = true;
    let b_tls_done = match b {
        Ok((b_tls_done, mut peer, result)) => {
            evidence.push(format!(
                "B: TLS done at t={:.3}s",
                (b_tls_done - t0).as_secs_f64()
            ));
            evidence.extend(peer.take_log());
            if let Err(e) = result {
                evidence.push(format!("FAIL: B did not continue to hello: {e}"));
                ok = false;
            }
            // Keep B until A's verdict is in, then end it.
            peer.finish().await;
            Some(b_tls_done)
        }
        Err(e) => {
            evidence.push(format!("FAIL: {e}"));
            ok = false;
            None
        }
    };
    match a_closed {
        Some(at) => {
            let when = (at - t0).as_secs_f64();
            let order = match b_tls_done {
                Some(b) if at <= b => "before B's TLS handshake completed",
                Some(_) => "after B's TLS handshake completed (on the tool's clock)",
                None => "",
            };
            evidence.push(format!("A closed by the DUT at t={when:.3}s {order}"));
        }
        None => {
            evidence.push("FAIL: the DUT kept the older connection A open for 30 s".into());
            ok = false;
        }
    }
    Outcome {
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
        evidence,
    }
}

/// TC_SHIP_ROLE_003: the DUT dials instance B while instance A dials the DUT; both handshakes
/// run in parallel and both reach hello `ready` within 30 s (and go on to data exchange).
pub(crate) async fn role_003(ctx: &Ctx) -> Outcome {
    if let Some(outcome) = needs_both(ctx) {
        return outcome;
    }
    if ctx.single_identity {
        return Outcome::not_applicable(
            super::NEEDS_TWO_IDENTITIES.to_owned()
                + ": the tool dials the DUT as one identity while the DUT dials it as another, at \
               the same time (one identity for both would be a double connection)",
        );
    }
    let tcp_b = match ctx.accept_tcp().await {
        Ok(tcp) => tcp,
        Err(e) => return Outcome::fail(e),
    };
    let t0 = Instant::now();
    let instance_b = async {
        let mut peer = ctx.upgrade(tcp_b, "B").await?;
        let result: Step<Duration> = async {
            script::cmi_accepted(&mut peer).await?;
            script::hello(&mut peer).await?;
            let ready = t0.elapsed();
            script::protocol_accepted(ctx, &mut peer).await?;
            script::pin(&mut peer).await?;
            Ok(ready)
        }
        .await;
        Ok::<_, String>((peer, result))
    };
    let instance_a = async {
        let mut peer = ctx.dial("role_003_a", "A").await?;
        let result: Step<Duration> = async {
            script::cmi_dialled(&mut peer).await?;
            script::hello(&mut peer).await?;
            let ready = t0.elapsed();
            script::protocol_dialled(ctx, &mut peer).await?;
            script::pin(&mut peer).await?;
            Ok(ready)
        }
        .await;
        Ok::<_, String>((peer, result))
    };
    let (b, a) = tokio::join!(instance_b, instance_a);
    let mut evidence = Vec::new();
    let mut ok = true;
    for (name, side) in [("A (DUT as server)", a), ("B (DUT as client)", b)] {
        match side {
            Err(e) => {
                evidence.push(format!("FAIL: {name}: {e}"));
                ok = false;
            }
            Ok((mut peer, result)) => {
                evidence.extend(peer.take_log());
                match result {
                    Ok(ready) if ready <= BOTH_READY_WITHIN => evidence.push(format!(
                        "{name}: hello ready at {:.2} s; PIN state exchanged",
                        ready.as_secs_f64()
                    )),
                    Ok(ready) => {
                        evidence.push(format!(
                            "FAIL: {name}: hello ready only at {:.1} s (> 30 s)",
                            ready.as_secs_f64()
                        ));
                        ok = false;
                    }
                    Err(e) => {
                        evidence.push(format!("FAIL: {name}: {e}"));
                        ok = false;
                    }
                }
                peer.finish().await;
            }
        }
    }
    Outcome {
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
        evidence,
    }
}
