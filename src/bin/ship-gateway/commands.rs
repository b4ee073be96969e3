//! The short commands: `ski`, `pair`, `unpair`, `list`, `send`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ship_hub::hub::{PairedPeer, TrustStore};
use ship_hub::protocol::Pin;
use ship_hub::{ShipId, Ski};

use crate::control::{self, Reach, Request};
use crate::data_dir::{self, DataDir};
use crate::error::GatewayError;
use crate::escape::{Escaped, escaped};
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
    let request = Request::Pair {
        ski,
        ship_id: ship_id.clone(),
        name: name.clone(),
        address,
        pin: pin
            .as_ref()
            .map(|p| control::SecretPin(p.reveal().to_owned())),
    };
    match control::reach(&dir, &request)? {
        Reach::Running(response) if response.ok => println!("{}", Escaped(&response.message)),
        Reach::Running(response) => return Err(GatewayError::Refused(escaped(&response.message))),
        Reach::NotRunning(_no_gateway) => {
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
    match control::reach(&dir, &Request::Unpair { ski })? {
        Reach::Running(response) if response.ok => println!("{}", Escaped(&response.message)),
        Reach::Running(response) => return Err(GatewayError::Refused(escaped(&response.message))),
        Reach::NotRunning(_no_gateway) => {
            let trust = dir.trust_store()?;
            if !trust.locked(true, |store| store.remove(&ski))? {
                return Err(GatewayError::NotPaired(ski));
            }
            println!("unpaired {ski}");
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
    match control::reach(&dir, &Request::Send { ski, payload })? {
        Reach::Running(response) if response.ok => {
            println!("{}", Escaped(&response.message));
            Ok(())
        }
        Reach::Running(response) => Err(GatewayError::Refused(escaped(&response.message))),
        Reach::NotRunning(_) => Err(GatewayError::NotRunning(dir.path().to_owned())),
    }
}

/// One line of `list --json`.
#[derive(Serialize)]
struct PeerRow {
    ski: String,
    ship_id: Option<String>,
    name: Option<String>,
    last_address: Option<String>,
    /// Seconds since the Unix epoch.
    last_seen: Option<u64>,
    /// A PIN for the peer is stored (never the PIN itself).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pin_stored: bool,
}

impl PeerRow {
    fn of(peer: &PairedPeer) -> PeerRow {
        PeerRow {
            ski: peer.ski.to_string(),
            ship_id: peer.ship_id.as_ref().map(|s| s.to_string()),
            name: peer.name.clone(),
            last_address: peer.last_address.map(|a| a.to_string()),
            last_seen: peer.last_seen.map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            }),
            pin_stored: peer.pin.is_some(),
        }
    }
}

/// `list`: the paired peers.
pub(crate) fn list(data_dir: Option<PathBuf>, json: bool) -> Result<(), GatewayError> {
    let dir = DataDir::open(data_dir, false)?;
    let peers = dir.trust_store()?.load_all()?;
    if json {
        let rows: Vec<PeerRow> = peers.iter().map(PeerRow::of).collect();
        println!(
            "{}",
            serde_json::to_string(&rows).map_err(|e| GatewayError::Setting(e.to_string()))?
        );
        return Ok(());
    }
    if peers.is_empty() {
        println!("no paired peers (pair one with `ship-gateway pair SKI`)");
        return Ok(());
    }
    println!(
        "{:<40}  {:<24}  {:<20}  {:<22}  LAST SEEN (UTC)",
        "SKI", "SHIP ID", "NAME", "LAST ADDRESS"
    );
    for peer in &peers {
        let row = PeerRow::of(peer);
        println!(
            "{:<40}  {:<24}  {:<20}  {:<22}  {}",
            row.ski,
            Escaped(row.ship_id.as_deref().unwrap_or("-")),
            Escaped(row.name.as_deref().unwrap_or("-")),
            row.last_address.as_deref().unwrap_or("-"),
            peer.last_seen.map(utc).unwrap_or_else(|| "never".into())
        );
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
