//! A small W3C WebDriver client (the part the console tests use) over HTTP with ureq, driving
//! Debian's `chromium` through `chromedriver`, headless, with every background connection of
//! the browser switched off: it only ever loads what a test points it at.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running chromedriver with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

/// Chromium's flags: headless, no sandbox (the tests may run as root in a namespace), and no
/// traffic of its own (updates, sync, metrics, safe browsing, DNS prefetch…).
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--dns-prefetch-disable",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a browser session with the window `width`×`height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        // chromedriver has no "port 0": take a free one; retry if another process took it.
        for _ in 0..5 {
            let port = free_port();
            let mut driver = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian package chromium-driver) must be installed");
            let base = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut ready = false;
            while Instant::now() < deadline {
                if let Ok(mut r) = agent.get(format!("{base}/status")).call()
                    && r.body_mut()
                        .read_to_string()
                        .is_ok_and(|t| t.contains("\"ready\":true"))
                {
                    ready = true;
                    break;
                }
                if let Ok(Some(_)) = driver.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !ready {
                let _ = driver.kill();
                let _ = driver.wait();
                continue;
            }
            let profile = tempfile::tempdir().unwrap();
            let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
            args.push(format!("--user-data-dir={}", profile.path().display()));
            args.push(format!("--window-size={width},{height}"));
            let mut browser = Browser {
                driver,
                base,
                agent,
                _profile: profile,
            };
            let session = browser.post(
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "unhandledPromptBehavior": "ignore",
                }}}),
            );
            let id = session["sessionId"]
                .as_str()
                .unwrap_or_else(|| panic!("no session: {session}"))
                .to_owned();
            browser.base = format!("{}/session/{id}", browser.base);
            return browser;
        }
        panic!("chromedriver did not start");
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .content_type("application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let text = response.body_mut().read_to_string().unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        value["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.send("POST", path, Some(body))
    }

    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// Runs an async script: its last argument is the callback to call with the result.
    pub fn run_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
    }

    /// Waits until `css` matches an element (up to `patience`); its WebDriver id.
    pub fn wait_for(&self, css: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(id) = self.find(css) {
                return id;
            }
            assert!(Instant::now() < deadline, "no element {css:?} on the page");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until nothing matches `css`.
    pub fn wait_gone(&self, css: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        while self.find(css).is_some() {
            assert!(Instant::now() < deadline, "{css:?} is still on the page");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn find(&self, css: &str) -> Option<String> {
        let found = self.post("/element", json!({"using": "css selector", "value": css}));
        // An element reference is an object with this one key; anything else is an error
        // ("no such element").
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .map(str::to_owned)
    }

    /// Clicks an element; an error (say, the element was replaced meanwhile) is returned.
    pub fn click(&self, element: &str) -> Result<(), String> {
        let answer = self.post(&format!("/element/{element}/click"), json!({}));
        match answer.get("error") {
            Some(error) => Err(format!("{error}: {}", answer["message"])),
            None => Ok(()),
        }
    }

    /// Finds the element `css` and clicks it, again if it was replaced between the two.
    pub fn click_css(&self, css: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let element = self.wait_for(css, patience);
            match self.click(&element) {
                Ok(()) => return,
                Err(error) => {
                    assert!(Instant::now() < deadline, "clicking {css:?}: {error}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// The rendered text of an element, or the error (e.g. it was replaced meanwhile).
    pub fn text(&self, element: &str) -> Result<String, String> {
        let answer = self.send("GET", &format!("/element/{element}/text"), None);
        match answer.as_str() {
            Some(text) => Ok(text.to_owned()),
            None => Err(answer.to_string()),
        }
    }

    /// The text of the element `css`, found again if it was replaced while being read (the
    /// console re-renders its lists as events arrive).
    pub fn text_css(&self, css: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let element = self.wait_for(css, patience);
            match self.text(&element) {
                Ok(text) => return text,
                Err(error) => {
                    assert!(Instant::now() < deadline, "reading {css:?}: {error}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Waits for the console's in-page confirmation dialog (`#confirm`) to be open; its question,
    /// the device's name and the SKI, each as its own element shows it.
    pub fn confirmation(&self) -> (String, String, String) {
        self.wait_for("dialog#confirm[open]", Duration::from_secs(10));
        let text = |css: &str| self.text_css(css, Duration::from_secs(10));
        (
            text("#confirm-title"),
            text("#confirm-name"),
            text("#confirm-ski"),
        )
    }

    /// Answers the open in-page confirmation dialog: OK (`accept`) or Cancel; waits until it
    /// is closed.
    pub fn answer_confirmation(&self, accept: bool) {
        self.wait_for("dialog#confirm[open]", Duration::from_secs(10));
        let button = if accept {
            "#confirm-ok"
        } else {
            "#confirm-cancel"
        };
        self.click_css(button, Duration::from_secs(10));
        self.wait_gone("dialog#confirm[open]", Duration::from_secs(10));
    }

    /// Types `text` into the (empty) input `css`, found first; again if the element was
    /// replaced meanwhile (the console re-renders its lists as events arrive), until the input
    /// on the page holds exactly `text`.
    pub fn type_css(&self, css: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let element = self.wait_for(css, Duration::from_secs(10));
            let answer = self.post(
                &format!("/element/{element}/value"),
                json!({ "text": text }),
            );
            let value = self.run(
                "const e = document.querySelector(arguments[0]); return e && e.value;",
                json!([css]),
            );
            if answer.get("error").is_none() && value == json!(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "typing into {css:?}: {answer}, the input holds {value}"
            );
            self.run(
                "const e = document.querySelector(arguments[0]); if (e) e.value = '';",
                json!([css]),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Saves a PNG screenshot of the window at `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64_decode::decode;
        let data = self.send("GET", "/screenshot", None);
        let png = decode(data.as_str().expect("screenshot data"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The browser console's entries since the last call: (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let entries = self.post("/se/log", json!({"type": "browser"}));
        entries
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (what WebDriver screenshots are), decoded without another dependency.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        };
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut buffer = 0u32;
        let mut bits = 0;
        for c in text.bytes().filter_map(value) {
            buffer = (buffer << 6) | c;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        out
    }
}
