//! Process tests of `ship-gateway` that need no network beyond loopback:
//! the commands and every bad input (`commands`), the configuration of `run` (`config`), and
//! the data directory against planted files and links (`files`).

mod commands;
mod config;
mod files;
