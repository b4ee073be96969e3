//! `ship-gateway discover`: the SHIP services visible on the LAN, as a table.
//!
//! Starts an mDNS daemon (it joins multicast on every interface that is up), browses
//! `_ship._tcp` for the given number of seconds, prints what it saw and stops.

use std::path::PathBuf;
use std::time::Duration;

use ship_hub::Ski;
use ship_hub::discovery::{Discovery, MdnsConfig, MdnsDiscovery};

use crate::data_dir::DataDir;
use crate::error::GatewayError;
use crate::escape::Escaped;
use crate::events::ServiceRow;

/// Browses for `seconds` and prints the services seen.
pub(crate) fn discover(
    data_dir: Option<PathBuf>,
    seconds: u64,
    json: bool,
) -> Result<(), GatewayError> {
    // Our own announcement (a gateway running on this machine) is left out when the identity is
    // known; discover never creates one.
    let own = match DataDir::open(data_dir, false) {
        Ok(dir) => dir.existing_identity()?.map(|i| i.ski()),
        Err(_) => None,
    };
    let discovery = MdnsDiscovery::new(MdnsConfig::new(own.unwrap_or(Ski::from_bytes([0; 20]))))
        .map_err(|e| GatewayError::Mdns(e.to_string()))?;
    std::thread::sleep(Duration::from_secs(seconds));
    let rows: Vec<ServiceRow> = discovery.visible().iter().map(ServiceRow::of).collect();
    drop(discovery);
    if json {
        // One object per line, like every `--json` of the command line.
        for row in &rows {
            println!(
                "{}",
                serde_json::to_string(row).map_err(|e| GatewayError::Setting(e.to_string()))?
            );
        }
        return Ok(());
    }
    if rows.is_empty() {
        println!("no SHIP services seen in {seconds} s");
        return Ok(());
    }
    println!(
        "{:<28}  {:<40}  {:<26}  {:<14}  {:<14}  {:<22}  REGISTER",
        "NAME", "SKI", "ADDRESS", "BRAND", "MODEL", "TYPE"
    );
    for row in rows {
        println!(
            "{:<28}  {:<40}  {:<26}  {:<14}  {:<14}  {:<22}  {}",
            Escaped(&row.name),
            row.ski,
            row.addresses.first().map(String::as_str).unwrap_or("-"),
            Escaped(row.brand.as_deref().unwrap_or("-")),
            Escaped(row.model.as_deref().unwrap_or("-")),
            Escaped(row.device_type.as_deref().unwrap_or("-")),
            row.register
        );
    }
    Ok(())
}
