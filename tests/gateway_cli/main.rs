//! Process tests of `ship-gateway` that need no network beyond loopback, in one test binary:
//! the commands and every bad input (`commands`), the configuration of `run` (`config`), and
//! the data directory against planted files and links (`files`).

#[path = "../gateway_support/mod.rs"]
mod gateway_support;

mod commands;
mod config;
mod files;
