//! Process tests of `ship-gateway` that need no network beyond loopback:
//! the commands and every bad input (`commands`), the configuration of `run` (`config`), and
//! the data directory against planted files and links (`files`), `pair --pairing-service`
//! without mDNS (`pairing_request`).

mod commands;
mod config;
mod files;
mod pairing_request;
