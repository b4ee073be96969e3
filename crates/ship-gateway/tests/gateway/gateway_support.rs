//! Shared helpers of the `ship-gateway` process tests: running the built binary, reading its
//! JSON events, asserting one-line errors.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ship-gateway");
/// How long a test waits for an event before failing (a bound, not a timing claim).
pub const PATIENCE: Duration = Duration::from_secs(30);
pub const OTHER_SKI: &str = "0101010101010101010101010101010101010101";

pub fn gateway(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ship-gateway")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `--json` output of a command that answers one thing: exactly one JSON object on one line.
pub fn json_line(output: &Output) -> Value {
    let lines = json_lines(output);
    assert_eq!(lines.as_array().unwrap().len(), 1, "not one line: {lines}");
    lines[0].clone()
}

/// The `--json` output of a command, which must be one JSON object per line, as an array of
/// those objects.
pub fn json_lines(output: &Output) -> Value {
    let text = stdout(output);
    Value::Array(
        text.lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
                assert!(value.is_object(), "not one object per line: {line}");
                value
            })
            .collect(),
    )
}

/// Asserts a failure with `code` and exactly one stderr line that names `needle`.
pub fn assert_one_line_error(output: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr:?}");
    assert!(lines[0].starts_with("ship-gateway: "), "{stderr:?}");
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}, stderr {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn ski_of(dir: &Path) -> String {
    let output = gateway(dir, &["ski"]);
    assert_ok(&output);
    stdout(&output).trim().to_owned()
}

/// `ship-gateway [flags] run` on loopback (OS-chosen port), JSON events, no mDNS, then `extra`:
/// the command every process test starts a gateway with.
pub fn run_command(dir: &Path, flags: &[&str], extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(dir)
        .args(flags)
        .args([
            "run",
            "--no-mdns",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--json",
        ])
        .args(extra);
    command
}

/// Runs `ship-gateway run` as [`run_command`] starts it, with `extra`, to its end (for a start
/// that must fail).
pub fn run_output(dir: &Path, extra: &[&str]) -> Output {
    run_command(dir, &[], extra)
        .stdin(Stdio::null())
        .output()
        .expect("run ship-gateway")
}

/// A running `ship-gateway run`, killed when dropped.
pub struct Running {
    pub child: Child,
    pub events: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    pub stderr: mpsc::Receiver<String>,
}

impl Running {
    pub fn start(dir: &Path, extra: &[&str]) -> Running {
        Running::spawn(run_command(dir, &[], extra))
    }

    /// Runs `command` (a `run` with `--json`) and reads its events.
    pub fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ship-gateway run");
        let (tx, events) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON: {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        Running {
            child,
            events,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits for the first event matching `f` (looking at everything seen so far first).
    pub fn wait_for(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    if f(&value) {
                        return value;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} event; saw {:#?}", self.seen);
    }

    pub fn event(&mut self, kind: &str) -> Value {
        self.wait_for(kind, |v| v["event"] == kind)
    }

    pub fn address(&mut self) -> String {
        self.event("listening")["address"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a secret file (a PIN, a pairing secret, a token) as the gateway wants one: mode 0600
/// (it refuses a secret file every user can read).
pub fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The dialling side's first attempt ended refused: RemoteDeniedTrust, or Error while the
/// refusing side is still in CMI. (A deny that comes before the hello phase is not turned into a
/// hello `aborted` by the library yet: the dialler then sees the connection close with Error; the
/// same gap makes `tests/hub_loopback/` `pairing_request_refused_when_the_callback_says_no`
/// fail. Either way the attempt must end without reaching data exchange.)
pub fn assert_refused(b: &mut Running, a_ski: &str) {
    let end = b.wait_for("refused", |v| {
        v["event"] == "state"
            && v["ski"] == a_ski
            && (v["state"] == "RemoteDeniedTrust" || v["state"] == "Error")
    });
    let _ = end;
    assert!(
        !b.seen.iter().any(|v| v["event"] == "connected"),
        "{:#?}",
        b.seen
    );
}

#[allow(unused_imports)]
pub use common::assert_private_namespace;
/// The namespace guard every mDNS test uses (ship-test-support).
pub use ship_test_support::common;

/// `run` on a terminal (a pseudo-terminal made by `script`), its events read from the terminal.
pub struct OnTerminal {
    pub child: Child,
    pub input: std::process::ChildStdin,
    pub events: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    /// Every line the terminal showed (events, questions, echoed input), trimmed.
    pub lines: mpsc::Receiver<String>,
    pub seen_lines: Vec<String>,
}

impl OnTerminal {
    pub fn start(dir: &Path) -> OnTerminal {
        Self::start_with(dir, "--no-mdns")
    }

    /// Like [`OnTerminal::start`], with mDNS on: only inside a private network namespace.
    pub fn start_with_mdns(dir: &Path) -> OnTerminal {
        assert_private_namespace();
        Self::start_with(dir, "")
    }

    fn start_with(dir: &Path, flags: &str) -> OnTerminal {
        let command = format!(
            "{BIN} --data-dir {} run {flags} --bind 127.0.0.1 --port 0 --json",
            dir.display()
        );
        let mut child = Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) makes the terminal for this test");
        let input = child.stdin.take().unwrap();
        let (tx, events) = mpsc::channel();
        let (lines_tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // The terminal also shows the prompt (stderr) and echoes what is typed.
                let line = line.trim_matches(|c: char| c == '\r' || c.is_whitespace());
                let _ = lines_tx.send(line.to_owned());
                let value = line
                    .starts_with('{')
                    .then(|| serde_json::from_str::<Value>(line).ok())
                    .flatten();
                if let Some(value) = value
                    && tx.send(value).is_err()
                {
                    break;
                }
            }
        });
        OnTerminal {
            child,
            input,
            events,
            seen: Vec::new(),
            lines,
            seen_lines: Vec::new(),
        }
    }

    /// Waits for a line on the terminal (not only events: the prompt's questions too).
    pub fn wait_line(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen_lines.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} on the terminal; saw {:#?}", self.seen_lines);
    }

    /// Waits until the prompt asks about `ski` (the question names it in groups of four).
    pub fn wait_question(&mut self, ski: &str) {
        let grouped = grouped(ski);
        self.wait_line("the question", |l| l.contains(&grouped));
        self.wait_line("the question", |l| l.contains("Trust this device? [y/N]"));
    }

    pub fn wait_for(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    if f(&value) {
                        return value;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} event on the terminal; saw {:#?}", self.seen);
    }

    pub fn answer(&mut self, text: &str) {
        use std::io::Write;
        self.input.write_all(text.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }
}

/// `0123456789abcdef…` → `0123 4567 89ab …`, as the prompt shows a SKI.
pub fn grouped(ski: &str) -> String {
    ski.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a QR code drawn with Unicode half blocks (`ship-gateway qr`) back into modules, `true`
/// for dark, row by row. `blocks_are_dark` is `--invert`: by default a block is a light module.
pub fn modules_of_half_blocks(picture: &str, blocks_are_dark: bool) -> Vec<Vec<bool>> {
    let mut rows = Vec::new();
    for line in picture.lines() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (upper, lower) = match c {
                ' ' => (false, false),
                '\u{2580}' => (true, false),
                '\u{2584}' => (false, true),
                '\u{2588}' => (true, true),
                other => panic!("{other:?} is not a half block in {picture}"),
            };
            top.push(upper == blocks_are_dark);
            bottom.push(lower == blocks_are_dark);
        }
        rows.push(top);
        rows.push(bottom);
    }
    rows
}

/// Reads the modules of an SVG written by `ship-gateway qr --svg`: one path of squares
/// `M<x> <y>h<u>v<u>H<x>V<y>`, one a dark module, on a white square of `width` pixels.
pub fn modules_of_svg(svg: &str) -> Vec<Vec<bool>> {
    let number =
        |text: &str| -> usize { text.trim().parse().unwrap_or_else(|_| panic!("{text:?}")) };
    let attribute = |name: &str| -> &str {
        let start = svg.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        &svg[start..start + svg[start..].find('"').unwrap()]
    };
    let width = number(attribute("width"));
    let path = attribute("d");
    let squares: Vec<(usize, usize, usize)> = path
        .split('M')
        .filter(|s| !s.is_empty())
        .map(|square| {
            let (xy, rest) = square.split_once('h').expect("h");
            let (x, y) = xy.split_once(' ').expect("x y");
            let unit = rest.split_once('v').expect("v").0;
            (number(x), number(y), number(unit))
        })
        .collect();
    let unit = squares[0].2;
    assert!(
        squares.iter().all(|s| s.2 == unit),
        "squares of different sizes"
    );
    assert_eq!(width % unit, 0);
    let size = width / unit;
    let mut modules = vec![vec![false; size]; size];
    for (x, y, _) in squares {
        assert_eq!((x % unit, y % unit), (0, 0), "a square off the grid");
        modules[y / unit][x / unit] = true;
    }
    modules
}

/// Decodes a QR code from its modules the way a scanner does: drawn at 4 pixels a module, the
/// finder patterns located in the image, then read. Exactly one code must be found.
pub fn decode_modules(modules: &[Vec<bool>]) -> String {
    const SCALE: usize = 4;
    let width = modules[0].len();
    assert!(modules.iter().all(|row| row.len() == width), "ragged rows");
    let mut image =
        rqrr::PreparedImage::prepare_from_bitmap(width * SCALE, modules.len() * SCALE, |x, y| {
            modules[y / SCALE][x / SCALE]
        });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "found {} QR codes", grids.len());
    grids[0].decode().expect("the QR code decodes").1
}

/// `ship-gateway qr` in `dir` (with `args`): the text it prints, after checking that the picture
/// above it decodes to that same text.
pub fn qr_text_of(dir: &Path, args: &[&str]) -> String {
    let mut command = vec!["qr"];
    command.extend_from_slice(args);
    let output = gateway(dir, &command);
    assert_ok(&output);
    let out = stdout(&output);
    let (picture, text) = out
        .trim_end()
        .rsplit_once("\n\n")
        .expect("picture, blank line, text");
    let decoded = decode_modules(&modules_of_half_blocks(picture, args.contains(&"--invert")));
    assert_eq!(
        decoded, text,
        "the terminal picture does not read back to the text"
    );
    text.to_owned()
}

/// `ship-gateway watch` on a terminal (a pseudo-terminal made by `script`), its output read
/// frame by frame (each view starts by clearing the screen).
pub struct WatchOnTerminal {
    child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl WatchOnTerminal {
    /// Starts `ship-gateway watch` for `dir` on a pseudo-terminal.
    pub fn start(dir: &Path) -> WatchOnTerminal {
        use std::process::{Command, Stdio};
        let command = format!("{BIN} --data-dir {} watch", dir.display());
        let mut child = Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) makes the terminal for this test");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = output.clone();
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        WatchOnTerminal { child, output }
    }

    /// The views drawn so far (the last one may still be arriving).
    pub fn frames(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap()
            .split("\x1b[H\x1b[2J")
            .skip(1)
            .map(|frame| frame.replace('\r', ""))
            .collect()
    }

    /// Waits until the latest view satisfies `f`, and returns it.
    pub fn wait_frame(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(last) = self.frames().last()
                && f(last)
            {
                return last.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no view with {what}; the last: {:?}",
                self.frames().last()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WatchOnTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
