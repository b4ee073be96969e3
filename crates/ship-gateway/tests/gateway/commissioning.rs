//! Issue 23, "Done means": an installer commissions ten devices in a row through the web
//! console of one `ship-gateway run --http` (headless Chromium over WebDriver), inside the
//! private network namespace (mDNS for the SHIP Pairing Service; addresses `10.77.0.x` on the
//! namespace's loopback, so that every device connects from an address of its own).
//!
//! The ten, each a real SHIP peer: five of our hubs (`ship-gateway run` processes) that dial
//! the gateway and are approved from the requests list; one of our hubs and one `eebus` crate
//! hub paired by SKI and address typed into the console; one of our hubs that asks, paired by
//! its QR text typed into the console; one of our hubs that requires a PIN, approved, its PIN
//! typed into its card; and one `eebus` crate control unit that pairs itself through the SHIP
//! Pairing Service (it knows the gateway's secret). Asserted: all ten `Completed`, and still
//! so after a settle of 3 s with no disconnection; no `warning` event and no `WARNING` line from
//! the gateway; `ship-gateway watch`, run on a pseudo-terminal (`script`) from the start, shows
//! `10 paired, 10 connected` at the end. Printed: the time it took.
//!
//! `#[ignore]`d in a plain `cargo test`; `bash .ci/test` runs it inside `unshare -n` after
//! `tests/netns-setup.sh`. It fails (never skips) outside such a namespace.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use eebus::mdns::Mdns as TheirMdns;
use eebus::runtime::{Hub as TheirHub, TrustStore as TheirTrust};
use eebus::ship::Ski as TheirSki;
use eebus::ship::pairing::{
    Nonce as TheirNonce, PairingRequest as TheirRequest, PairingSecret as TheirSecret,
};
use serde_json::Value;
use ship_test_support::common::{MULTICAST, assert_private_namespace};

use crate::gateway_support::{
    BIN, PATIENCE, Running, WatchOnTerminal, gateway, grouped, json_line, qr_text_of, ski_of,
    tempdir, write_secret,
};
use crate::http::webdriver::Browser;
use crate::http::{login_link, screenshot_path};
use crate::pairing_service::eebus_peers::{spine_engine, their_node};

const SECRET: &str = "5B1E0C4F7A2D93E8B6C10F4A7D2E9B38";
const PIN: &str = "0BAD CAFE";

/// The address of device `k` (and the gateway's address it dials) on the namespace's loopback.
fn address(k: u8) -> String {
    format!("10.77.0.{k}")
}

/// The addresses `10.77.0.1` to `10.77.0.12` on the namespace's loopback, removed again when
/// dropped (the namespace is shared with the tests that run after this one).
struct Addresses;

impl Addresses {
    fn add() -> Addresses {
        for k in 1..=12 {
            let status = Command::new("ip")
                .args([
                    "addr",
                    "replace",
                    &format!("{}/32", address(k)),
                    "dev",
                    "lo",
                ])
                .status()
                .expect("ip");
            assert!(status.success());
        }
        Addresses
    }
}

impl Drop for Addresses {
    fn drop(&mut self) {
        for k in 1..=12 {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{}/32", address(k)), "dev", "lo"])
                .status();
        }
    }
}

/// One of our hubs: `ship-gateway run` without mDNS, listening at `10.77.0.k`.
fn our_hub(dir: &Path, k: u8, extra: &[&str]) -> Running {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(dir)
        .args([
            "run",
            "--no-mdns",
            "--bind",
            &address(k),
            "--port",
            "0",
            "--json",
        ])
        .args(extra);
    Running::spawn(command)
}

/// Drives an eebus hub (its links, keepalive, SPINE) until the task is aborted.
fn drive(runtime: &tokio::runtime::Runtime, mut hub: TheirHub) -> tokio::task::JoinHandle<()> {
    runtime.spawn(async move { while hub.next().await.is_ok() {} })
}

#[test]
#[ignore = "needs chromium and chromedriver and a private network namespace: run by .ci/test"]
fn an_installer_commissions_ten_devices_in_a_row_through_the_console() {
    assert_private_namespace();
    let _turn = MULTICAST.blocking_read();
    let _addresses = Addresses::add();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let started = Instant::now();
    let tmp = tempdir();
    let g_dir = tmp.path().join("gateway");
    let secret_file = tmp.path().join("pairing-secret");
    write_secret(&secret_file, &format!("{SECRET}\n"));
    let mut g = Running::spawn({
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(&g_dir)
            .args([
                "run",
                "--bind",
                "0.0.0.0",
                "--port",
                "0",
                "--json",
                "--no-prompt",
            ])
            .args(["--http", "127.0.0.1:0", "--pairing-secret-file"])
            .arg(&secret_file);
        command
    });
    let listening = g.event("listening");
    let g_ski = listening["ski"].as_str().unwrap().to_owned();
    let g_ship_id = listening["ship_id"].as_str().unwrap().to_owned();
    let g_port: u16 = listening["address"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let http = listening["http"].as_str().unwrap().to_owned();
    let g_at = |k: u8| format!("{g_ski}@{}:{g_port}", address(k));
    let watch = WatchOnTerminal::start(&g_dir);
    let browser = Browser::start(1280, 900);
    browser.goto(&login_link(&g_dir));
    browser.wait_for("#peers .empty", PATIENCE);
    let completed = |ski: &str| {
        browser.wait_for(
            &format!(".peer[data-ski='{ski}'] .badge.Completed"),
            PATIENCE,
        );
    };
    let mut devices: Vec<String> = Vec::new();
    let mut hubs: Vec<Running> = Vec::new();

    // 1-5: five of our hubs dial the gateway and are approved from the requests list, one
    // after the other (the next one dials while the one before is approved).
    let dir = |n: usize| tmp.path().join(format!("device-{n}"));
    // Each device's identity made first (`ski` then reads it while the device runs).
    let skis: Vec<String> = (0..=9).map(|n| ski_of(&dir(n))).collect();
    let mut next = our_hub(&dir(1), 1, &["--peer", &g_at(1)]);
    for k in 1..=5u8 {
        let ski = skis[k as usize].clone();
        let request = format!(".request[data-ski='{ski}']");
        browser.wait_for(&request, PATIENCE);
        browser.click_css(&format!("{request} .approve"), PATIENCE);
        hubs.push(next);
        if k < 5 {
            next = our_hub(&dir(k as usize + 1), k + 1, &["--peer", &g_at(k + 1)]);
        } else {
            next = our_hub(&dir(6), 6, &["--auto-accept"]);
        }
        completed(&ski);
        devices.push(ski);
    }

    // 6: one of our hubs, by SKI and address.
    let d6_ski = skis[6].clone();
    let d6_address = next.address();
    hubs.push(next);
    browser.type_css("#pair-ski", &grouped(&d6_ski));
    browser.type_css("#pair-address", &d6_address);
    browser.click_css("#pair-ski-submit", PATIENCE);
    completed(&d6_ski);
    devices.push(d6_ski);

    // 7: an eebus hub that trusts the gateway, by SKI and address.
    let g_their_ski: TheirSki = g_ski.parse().unwrap();
    let e7 = TheirHub::new(
        their_node("i:46925_u:their-e7", TheirTrust::with([g_their_ski])),
        spine_engine("their-e7"),
    );
    let e7_ski = e7.ski().to_string();
    let mut e7 = e7;
    let e7_address = runtime
        .block_on(e7.listen(format!("{}:0", address(7))))
        .expect("their listener");
    let e7_task = drive(&runtime, e7);
    browser.type_css("#pair-ski", &e7_ski);
    browser.type_css("#pair-address", &e7_address.to_string());
    browser.click_css("#pair-ski-submit", PATIENCE);
    completed(&e7_ski);
    devices.push(e7_ski);

    // 8: one of our hubs asks; paired by its QR text typed into the console.
    let qr = qr_text_of(&dir(8), &[]);
    let d8_ski = skis[8].clone();
    hubs.push(our_hub(&dir(8), 8, &["--peer", &g_at(8)]));
    browser.wait_for(&format!(".request[data-ski='{d8_ski}']"), PATIENCE);
    browser.type_css("#pair-qr", &qr);
    browser.click_css("#pair-qr-submit", PATIENCE);
    completed(&d8_ski);
    devices.push(d8_ski);

    // 9: one of our hubs requires a PIN: approved, its PIN typed into its card.
    let d9_ski = skis[9].clone();
    hubs.push(our_hub(&dir(9), 9, &["--peer", &g_at(9), "--pin", PIN]));
    let request = format!(".request[data-ski='{d9_ski}']");
    browser.wait_for(&request, PATIENCE);
    browser.click_css(&format!("{request} .approve"), PATIENCE);
    let card = format!(".peer[data-ski='{d9_ski}']");
    browser.type_css(&format!("{card} .pin-input"), PIN);
    browser.click_css(&format!("{card} .pin-send"), PATIENCE);
    completed(&d9_ski);
    devices.push(d9_ski);

    // 10: an eebus control unit that knows the gateway's secret pairs itself through the SHIP
    // Pairing Service.
    let ids = json_line(&gateway(&g_dir, &["--json", "ski"]));
    let node = their_node("i:46925_u:their-cu", TheirTrust::with([g_their_ski]));
    let e10_fingerprint = node.fingerprint();
    let request = TheirRequest::new(
        g_ship_id.as_str(),
        ids["fingerprint"].as_str().unwrap().parse().unwrap(),
        "i:46925_u:their-cu",
        e10_fingerprint,
        TheirNonce::from_str(&ship_hub::pairing_service::Nonce::random().to_string()).unwrap(),
    );
    let announcement = request
        .sign(&TheirSecret::from_hex(SECRET).unwrap())
        .unwrap();
    let mut their_mdns = TheirMdns::new().expect("their mDNS");
    their_mdns
        .announce_pairing(
            "their-cu",
            &announcement,
            9,
            &[address(10).parse().unwrap()],
        )
        .expect("their pairing announcement");
    let mut e10 = TheirHub::new(node, spine_engine("their-cu"));
    let e10_ski = e10.ski().to_string();
    g.wait_for("the Pairing Service request", |v| {
        v["event"] == "pairing_service_request"
    });
    let g_address: SocketAddr = format!("{}:{g_port}", address(10)).parse().unwrap();
    e10.remember(g_their_ski, g_address);
    let e10_task = drive(&runtime, e10);
    completed(&e10_ski);
    devices.push(e10_ski);
    let commissioned = started.elapsed();

    // All ten stay Completed: nothing disconnects during a settle.
    std::thread::sleep(Duration::from_secs(3));
    let token = std::fs::read_to_string(g_dir.join("http-token")).unwrap();
    let text = ureq::get(format!("http://{http}/api/v1/peers"))
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let peers: Value = serde_json::from_str(&text).unwrap();
    let peers = peers.as_array().unwrap();
    assert_eq!(peers.len(), 10, "{peers:#?}");
    for ski in &devices {
        let peer = peers.iter().find(|p| p["ski"] == ski.as_str()).unwrap();
        assert_eq!(peer["state"], "Completed", "{peer}");
    }
    browser.run("window.scrollTo(0, 0);", serde_json::json!([]));
    browser.screenshot(&screenshot_path("console-desktop-ten"));
    // `watch` shows the last state: ten connected.
    watch.wait_frame("ten connected", |frame| {
        frame.contains("10 paired, 10 connected")
    });
    // No warning, no disconnection of a commissioned device.
    let events: Vec<Value> = g.seen.iter().cloned().chain(g.events.try_iter()).collect();
    let warnings: Vec<&Value> = events.iter().filter(|v| v["event"] == "warning").collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    let dropped: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"] == "disconnected")
        .collect();
    assert!(dropped.is_empty(), "{dropped:#?}");
    let stderr: Vec<String> = g
        .stderr_lines()
        .into_iter()
        .filter(|l| l.contains("WARNING"))
        .collect();
    assert!(stderr.is_empty(), "{stderr:#?}");
    eprintln!(
        "figure: ten devices commissioned through the console in {:.1} s (whole test {:.1} s)",
        commissioned.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    e7_task.abort();
    e10_task.abort();
    drop(their_mdns);
    assert!(g.terminate().success());
}

use std::str::FromStr;
