//! `status`, `watch`, `approve`, `deny`, `disconnect`: the running gateway seen and steered
//! through its API on the control socket (the same answers as `GET /api/v1/…`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use ship_hub::Ski;

use crate::client;
use crate::data_dir::DataDir;
use crate::error::GatewayError;
use crate::escape::Escaped;
use crate::events::waiting_words;

/// Everything `status` shows: `GET status`, `GET peers`, `GET requests`.
fn snapshot(dir: &DataDir) -> Result<Value, GatewayError> {
    Ok(json!({
        "status": client::expect(dir, "GET", "/api/v1/status", None)?,
        "peers": client::expect(dir, "GET", "/api/v1/peers", None)?,
        "requests": client::expect(dir, "GET", "/api/v1/requests", None)?,
    }))
}

/// `status`: the gateway, its paired devices and the waiting requests; `--json`: one object
/// `{"status": …, "peers": […], "requests": […]}` on one line.
pub(crate) fn status(data_dir: Option<PathBuf>, json: bool) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    let view = snapshot(&dir)?;
    if json {
        println!("{view}");
    } else {
        print!("{}", render(&view, &[]));
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn ago(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let s = now_ms().saturating_sub(ms) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

fn text(value: &Value) -> String {
    Escaped(value.as_str().unwrap_or("-")).to_string()
}

/// The view for people: the gateway, the devices, the requests and the recent errors.
fn render(view: &Value, errors: &[String]) -> String {
    let status = &view["status"];
    let counters = &status["counters"];
    let mut out = format!(
        "ship-gateway {} · up {} · SKI {} · SHIP ID {}\n{} paired, {} connected, {} waiting to \
         pair, {} waiting for a PIN, {} visible\n\n",
        text(&status["version"]),
        ago(status["uptime_s"]
            .as_u64()
            .map(|s| now_ms().saturating_sub(s * 1000))),
        text(&status["ski"]),
        text(&status["ship_id"]),
        counters["paired"],
        counters["connected"],
        counters["pending_requests"],
        counters["pin_requests"],
        counters["visible"],
    );
    if let Some(line) = refusals_line(&status["refusals"]) {
        out.insert_str(out.len() - 1, &line);
    }
    let empty = vec![];
    let peers = view["peers"].as_array().unwrap_or(&empty);
    if peers.is_empty() {
        out.push_str("no paired devices\n");
    } else {
        out.push_str(&format!(
            "{:<40}  {:<20}  {:<18}  {:<8}  DETAIL\n",
            "SKI", "NAME", "STATE", "SINCE"
        ));
        for peer in peers {
            let detail = match (peer["last_error"].as_str(), peer["detailed"].as_str()) {
                (_, Some(d)) if waiting_words(d).is_some() => waiting_words(d).unwrap_or_default(),
                (Some(error), _) if peer["state"] != "Completed" => {
                    format!("last error: {}", Escaped(error))
                }
                _ => text(&peer["tls_suite"]),
            };
            out.push_str(&format!(
                "{:<40}  {:<20}  {:<18}  {:<8}  {}\n",
                text(&peer["ski"]),
                text(if peer["name"].is_null() {
                    &peer["ship_id"]
                } else {
                    &peer["name"]
                }),
                text(&peer["state"]),
                ago(peer["since_ms"].as_u64()),
                detail
            ));
        }
    }
    if let Some(line) = crate::pairing_request::words(&status["pairing_request"]) {
        out.push_str(&format!("\n{line}\n"));
    }
    for peer in peers.iter().filter(|p| p["pin_request"].is_object()) {
        let wait = &peer["pin_request"];
        let left = wait["expires_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(now_ms())
            / 1000;
        out.push_str(&format!(
            "\nPIN REQUEST: {} ({}) requires a PIN{}, {left} s left: give the one on its \
             label\n  ship-gateway pair {} --pin -   (then type the PIN)\n",
            text(if peer["name"].is_null() {
                &peer["ship_id"]
            } else {
                &peer["name"]
            }),
            grouped(peer["ski"].as_str().unwrap_or("")),
            if wait["rejected"] == true {
                " (the one sent was wrong)"
            } else {
                ""
            },
            text(&peer["ski"]),
        ));
    }
    let requests = view["requests"].as_array().unwrap_or(&empty);
    for request in requests {
        let left = request["expires_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(now_ms())
            / 1000;
        out.push_str(&format!(
            "\nPAIRING REQUEST from {} ({}), {left} s left: compare the SKI with the device's\n  \
             {}\n  ship-gateway approve {} | ship-gateway deny {}\n",
            text(&request["address"]),
            text(&request["name"]),
            grouped(request["ski"].as_str().unwrap_or("")),
            text(&request["ski"]),
            text(&request["ski"]),
        ));
    }
    if !errors.is_empty() {
        out.push_str("\nrecent errors:\n");
        for error in errors {
            out.push_str(&format!("  {error}\n"));
        }
    }
    out
}

/// `refused N connections (…)`: the line that says admission caps refused connections, with
/// the latest refusal; `None` when none was refused. A device that cannot pair because the
/// strangers' slots are taken shows up here.
fn refusals_line(refusals: &Value) -> Option<String> {
    let total = refusals["total"].as_u64().filter(|&n| n > 0)?;
    let by_cap: Vec<String> = refusals["by_cap"]
        .as_object()
        .map(|caps| {
            caps.iter()
                .filter_map(|(cap, n)| {
                    n.as_u64()
                        .filter(|&n| n > 0)
                        .map(|n| format!("{n} {}", Escaped(cap)))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut line = format!(
        "refused {total} incoming connection{} by admission caps ({})",
        if total == 1 { "" } else { "s" },
        by_cap.join(", ")
    );
    let last = &refusals["last"];
    if last.is_object() {
        line.push_str(&format!(
            "; last from {} {} ago: {}",
            text(&last["address"]),
            ago(last["at_ms"].as_u64()),
            text(&last["reason"]),
        ));
    }
    Some(line)
}

fn grouped(ski: &str) -> String {
    ski.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most this many views a second are drawn while events arrive; the last state of a burst
/// is always drawn (a trailing redraw once the burst is over).
const REDRAW_THROTTLE: Duration = Duration::from_millis(200);

/// On a terminal, the view is drawn again this often without events, so that its durations
/// ("up 5 s", how long a device has been in its state, the seconds left to answer) tick.
const TICK: Duration = Duration::from_secs(1);

/// `watch`: the `status` view, drawn again whenever something happens (on a terminal the
/// screen is redrawn; otherwise each view is printed after a blank line), until the gateway
/// stops or Ctrl-C. Events are followed on a thread of their own, so a burst of them is drawn
/// once it is over (never left on a stale frame), and on a terminal the view ticks every second.
pub(crate) fn watch(data_dir: Option<PathBuf>, json: bool) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    let terminal = std::io::stdout().is_terminal() && !json;
    let mut errors: Vec<String> = Vec::new();
    let draw = |errors: &[String]| -> Result<(), GatewayError> {
        let view = snapshot(&dir)?;
        let mut out = std::io::stdout().lock();
        let shown = if json {
            format!("{view}\n")
        } else {
            render(&view, errors)
        };
        let _ = if terminal {
            write!(out, "\x1b[H\x1b[2J{shown}")
        } else {
            writeln!(out, "{shown}")
        };
        let _ = out.flush();
        Ok(())
    };
    // The event stream on its thread; the channel closes when the stream ends (the gateway
    // stopped) or breaks.
    let (events_tx, events) = std::sync::mpsc::channel::<Option<Value>>();
    let follow_dir = dir.clone();
    let follower = std::thread::Builder::new()
        .name("watch-events".into())
        .spawn(move || client::follow(&follow_dir, |event| events_tx.send(event).is_ok()))
        .map_err(|source| GatewayError::Io {
            what: "starting the event reader".into(),
            source,
        })?;
    draw(&errors)?;
    let mut drawn = Instant::now();
    let mut dirty = false;
    loop {
        let next = if dirty {
            drawn + REDRAW_THROTTLE
        } else if terminal {
            drawn + TICK
        } else {
            drawn + Duration::from_secs(3600)
        };
        match events.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(event) => {
                if let Some(event) = &event
                    && event["event"] == "state"
                    && let Some(error) = event["error"].as_str()
                {
                    errors.push(format!(
                        "{} {}: {}",
                        text(&event["ski"]),
                        text(&event["state"]),
                        Escaped(error)
                    ));
                    if errors.len() > 5 {
                        errors.remove(0);
                    }
                }
                dirty = true;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let due =
            (dirty && drawn.elapsed() >= REDRAW_THROTTLE) || (terminal && drawn.elapsed() >= TICK);
        if due {
            dirty = false;
            drawn = Instant::now();
            if draw(&errors).is_err() {
                // The gateway is gone (its stream ends too): done, as when the stream ends.
                return Ok(());
            }
        }
    }
    if dirty {
        let _ = draw(&errors);
    }
    match follower.join() {
        Ok(result) => result,
        Err(_) => Err(GatewayError::Refused("the event reader failed".into())),
    }
}

/// `approve`, `deny`: decides a waiting pairing request.
pub(crate) fn decide(
    data_dir: Option<PathBuf>,
    ski: Ski,
    approve: bool,
) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    let what = if approve { "approve" } else { "deny" };
    client::expect(
        &dir,
        "POST",
        &format!("/api/v1/requests/{ski}/{what}"),
        None,
    )?;
    println!(
        "{} {ski}",
        if approve {
            "approved; it is paired and connects now:"
        } else {
            "denied; nothing was stored:"
        }
    );
    Ok(())
}

/// `disconnect`: closes the connections to a peer (it stays paired and is redialled).
pub(crate) fn disconnect(data_dir: Option<PathBuf>, ski: Ski) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    client::expect(
        &dir,
        "POST",
        &format!("/api/v1/peers/{ski}/disconnect"),
        None,
    )?;
    println!("disconnected {ski}; it stays paired, so it is dialled again by the usual backoff");
    Ok(())
}

/// `console`: a one-time login link for the running gateway's web console, made by the gateway
/// on its control socket (so only its own user gets one).
pub(crate) fn console(data_dir: Option<PathBuf>, json: bool) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    let link = client::expect(&dir, "POST", "/api/v1/login-link", None)?;
    if json {
        println!("{link}");
        return Ok(());
    }
    let url = link["url"].as_str().unwrap_or_default();
    let left = link["expires_ms"]
        .as_u64()
        .map_or(0, |at| at.saturating_sub(now_ms()) / 1000);
    println!("{url}");
    eprintln!(
        "ship-gateway: open it within {left} s; it works once. From another machine, put this \
         gateway's name or address in place of the host."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_a_line_of_the_status_only_when_there_were_some() {
        let none = json!({"total": 0, "by_cap": {"max_connections": 0}, "last": null});
        assert_eq!(refusals_line(&none), None);
        let some = json!({
            "total": 3,
            "by_cap": {"max_connections": 0, "max_unpaired_per_address": 3},
            "last": {
                "address": "192.168.1.7", "cap": "max_unpaired_per_address",
                "reason": "too many connections of devices that are not paired from this address",
                "refused": 1, "at_ms": now_ms()
            }
        });
        let line = refusals_line(&some).unwrap();
        assert!(
            line.starts_with(
                "refused 3 incoming connections by admission caps (3 max_unpaired_per_address)"
            ),
            "{line}"
        );
        assert!(
            line.contains("last from 192.168.1.7 0 s ago: too many"),
            "{line}"
        );
        let view =
            json!({"status": {"counters": {}, "refusals": some}, "peers": [], "requests": []});
        let rendered = render(&view, &[]);
        assert_eq!(
            rendered.lines().nth(2).map(|l| l.starts_with("refused 3")),
            Some(true),
            "{rendered}"
        );
    }
}
