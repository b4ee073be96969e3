//! The short commands: `ski`, `pair`, `unpair`, `list`, `send`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use std::io::Write;

use serde_json::Value;
use ship_hub::hub::TrustStore;
use ship_hub::protocol::Pin;
use ship_hub::{ShipId, Ski};

use crate::api::PeerView;
use crate::client::{self, Gateway};
use crate::data_dir::{self, DataDir};
use crate::error::GatewayError;
use crate::escape::Escaped;
use crate::settings::resolve_address;

/// `ski`: prints this gateway's SKI, creating the identity on first use. With `--json` also the
/// SHA-256 fingerprint of its certificate (what a SHIP Pairing Service request names).
pub(crate) fn ski(data_dir: Option<PathBuf>, json: bool) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, true)?;
    let identity = dir.identity(&data_dir::subject("ship-gateway", "ship-hub"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ski": identity.ski().to_string(),
                "fingerprint": ship_hub::pairing_service::Fingerprint::of_certificate(
                    identity.certificate_der()
                )
                .to_string(),
            })
        );
    } else {
        println!("{}", identity.ski());
    }
    Ok(())
}

fn refuse_own_ski(dir: &DataDir, ski: Ski) -> Result<(), GatewayError> {
    match dir.existing_identity()? {
        Some(identity) if identity.ski() == ski => Err(GatewayError::OwnSki(ski)),
        _ => Ok(()),
    }
}

/// `pair`: through the running gateway, or directly in the store when none runs.
pub(crate) fn pair(
    data_dir: Option<PathBuf>,
    ski: Ski,
    ship_id: Option<ShipId>,
    name: Option<String>,
    address: Option<String>,
    pin: Option<String>,
) -> Result<(), GatewayError> {
    let address = address
        .map(|a| resolve_address(&a))
        .transpose()
        .map_err(|e| GatewayError::Setting(format!("invalid --address: {e}")))?;
    let pin = match pin.as_deref() {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| GatewayError::Setting(format!("--pin -: cannot read stdin: {e}")))?;
            Some(line)
        }
        other => other.map(str::to_owned),
    };
    // Checked here (the error never repeats the text), sent as text to a running gateway.
    let pin = pin
        .map(|text| Pin::new(text.trim()).map_err(|e| GatewayError::Setting(format!("--pin: {e}"))))
        .transpose()?;
    let dir = DataDir::open(data_dir, true)?;
    refuse_own_ski(&dir, ski)?;
    match client::reach(&dir)? {
        Gateway::Running(stream) => {
            let body = serde_json::json!({
                "ski": ski.to_string(),
                "ship_id": ship_id.map(|s| s.as_str().to_owned()),
                "name": name,
                "address": address.map(|a| a.to_string()),
                "pin": pin.as_ref().map(|p| p.reveal()),
            })
            .to_string();
            let answer = client::call_on(stream, &dir, "POST", "/api/v1/peers", Some(&body))?;
            if answer.status != 201 {
                return Err(client::refused(&answer));
            }
            let next = answer.body["next"].as_str().unwrap_or("paired");
            println!("{}", Escaped(next));
        }
        Gateway::NotRunning(_no_gateway) => {
            dir.writable("`pair` (no gateway runs, so it writes pairings.json itself)")?;
            dir.trust_store()?
                .store_pairing(ski, ship_id, name, address, pin)?;
            println!("paired {ski}; the gateway dials it when it runs");
        }
    }
    Ok(())
}

/// `unpair`: through the running gateway, or directly in the store when none runs.
pub(crate) fn unpair(data_dir: Option<PathBuf>, ski: Ski) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    match client::reach(&dir)? {
        Gateway::Running(stream) => {
            let path = format!("/api/v1/peers/{ski}");
            let answer = client::call_on(stream, &dir, "DELETE", &path, None)?;
            match answer.status {
                204 => println!("unpaired {ski}; the running gateway disconnected it"),
                404 => return Err(GatewayError::NotPaired(ski)),
                _ => return Err(client::refused(&answer)),
            }
        }
        Gateway::NotRunning(_no_gateway) => {
            dir.writable("`unpair` (no gateway runs, so it writes pairings.json itself)")?;
            let trust = dir.trust_store()?;
            if !trust.locked(true, |store| store.remove(&ski))? {
                return Err(GatewayError::NotPaired(ski));
            }
            println!("unpaired {ski}");
            if crate::pairing_request::unpaired_offline(&dir, ski)? {
                println!("withdrew the SHIP Pairing Service request to {ski}");
            }
        }
    }
    Ok(())
}

/// `send`: one data message through the running gateway.
pub(crate) fn send(
    data_dir: Option<PathBuf>,
    ski: Ski,
    payload: String,
) -> Result<(), GatewayError> {
    serde_json::from_str::<serde::de::IgnoredAny>(&payload)
        .map_err(|e| GatewayError::Setting(format!("the payload is not JSON: {e}")))?;
    let dir = DataDir::open(data_dir, false)?;
    let path = format!("/api/v1/peers/{ski}/data");
    let sent = client::expect(&dir, "POST", &path, Some(&payload))?;
    println!("sent {} bytes to {ski}", sent["bytes"]);
    Ok(())
}

/// `list`: the paired peers, with their live state when a gateway runs (`GET /api/v1/peers`),
/// else as stored. `--json`: one object per line, the API's peer object (`state` is `null` when
/// no gateway runs).
pub(crate) fn list(data_dir: Option<PathBuf>, json: bool) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    let (peers, running): (Vec<Value>, bool) = match client::reach(&dir)? {
        Gateway::Running(stream) => {
            let answer = client::call_on(stream, &dir, "GET", "/api/v1/peers", None)?;
            if answer.status != 200 {
                return Err(client::refused(&answer));
            }
            let Value::Array(peers) = answer.body else {
                return Err(GatewayError::Refused("the gateway answered no list".into()));
            };
            (peers, true)
        }
        Gateway::NotRunning(_no_gateway) => {
            let stored = dir.trust_store()?.load_all()?;
            let request = crate::pairing_request::load(&dir)?;
            let peers = stored
                .iter()
                .map(|p| {
                    let mut view = PeerView::stored(p);
                    view.pairing_request = request
                        .as_ref()
                        .filter(|r| r.ski == p.ski)
                        .map(crate::pairing_request::RequestView::stored);
                    serde_json::to_value(view)
                })
                .collect::<Result<_, _>>()
                .map_err(|e| GatewayError::Setting(e.to_string()))?;
            (peers, false)
        }
    };
    if json {
        let mut out = std::io::stdout().lock();
        for peer in &peers {
            writeln!(out, "{peer}").map_err(|source| GatewayError::Io {
                what: "writing to stdout".into(),
                source,
            })?;
        }
        return Ok(());
    }
    if peers.is_empty() {
        println!("no paired peers (pair one with `ship-gateway pair SKI`)");
        return Ok(());
    }
    println!(
        "{:<40}  {:<14}  {:<24}  {:<20}  {:<22}  LAST SEEN (UTC)",
        "SKI", "STATE", "SHIP ID", "NAME", "LAST ADDRESS"
    );
    let text = |value: &Value| Escaped(value.as_str().unwrap_or("-")).to_string();
    for peer in &peers {
        let last_seen = peer["last_seen_ms"]
            .as_u64()
            .map(|ms| utc(UNIX_EPOCH + std::time::Duration::from_millis(ms)))
            .unwrap_or_else(|| "never".into());
        println!(
            "{:<40}  {:<14}  {:<24}  {:<20}  {:<22}  {last_seen}",
            text(&peer["ski"]),
            if running {
                text(&peer["state"])
            } else {
                "not running".into()
            },
            text(&peer["ship_id"]),
            text(&peer["name"]),
            text(&peer["last_address"]),
        );
    }
    for peer in &peers {
        if let Some(line) = crate::pairing_request::words(&peer["pairing_request"]) {
            println!("\n{line}");
        }
    }
    Ok(())
}

/// `2026-11-23 13:44:06` for a time.
pub(crate) fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_441_902);
        assert_eq!(utc(t), "2026-11-23 13:51:42");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc(leap), "2000-02-29 00:00:00");
    }
}
