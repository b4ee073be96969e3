//! The command line's side of the HTTP API on the control socket (`pair`, `unpair`, `send`,
//! `list`, `status`, `watch`, `approve`, `deny`, `disconnect`): one HTTP/1.1 request per
//! connection, over the unix socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::data_dir::DataDir;
use crate::error::GatewayError;
use crate::store::FileLock;

/// The most bytes of an answer read (a list of 10,000 peers fits).
const MAX_ANSWER: u64 = 16 << 20;

/// How long a command waits for a gateway that holds its lock but has not opened its socket yet
/// (it is starting).
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// An answer: status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// Whether a gateway runs on a data dir.
pub(crate) enum Gateway {
    /// It runs: a connection to its control socket.
    Running(UnixStream),
    /// None runs; the shared lock keeps one from starting until it is dropped (`None`: root
    /// reads another user's data dir and takes no lock, which would create a file there).
    NotRunning(Option<FileLock>),
}

/// Connects to the running gateway's control socket, or takes the gateway lock shared when none
/// runs (see `crate::control`).
pub(crate) fn reach(dir: &DataDir) -> Result<Gateway, GatewayError> {
    if dir.is_foreign() {
        // Read only: the socket answers if a gateway runs; no lock file is touched.
        return Ok(match UnixStream::connect(dir.control_path()) {
            Ok(stream) => Gateway::Running(stream),
            Err(_) => Gateway::NotRunning(None),
        });
    }
    let lock_path = dir.gateway_lock_path();
    let lock = FileLock::try_acquire(&lock_path, false).map_err(|source| GatewayError::Io {
        what: format!("locking {}", lock_path.display()),
        source,
    })?;
    if let Some(lock) = lock {
        return Ok(Gateway::NotRunning(Some(lock)));
    }
    let path = dir.control_path();
    let started = Instant::now();
    loop {
        match UnixStream::connect(&path) {
            Ok(stream) => return Ok(Gateway::Running(stream)),
            Err(_) if started.elapsed() < CONNECT_PATIENCE => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(GatewayError::Control {
                    path,
                    reason: format!("the gateway holds its lock but: {e}"),
                });
            }
        }
    }
}

/// Connects to the running gateway's control socket; a clear error if none runs.
fn connect(dir: &DataDir) -> Result<UnixStream, GatewayError> {
    match reach(dir)? {
        Gateway::Running(stream) => Ok(stream),
        Gateway::NotRunning(_) => Err(GatewayError::NotRunning(dir.path().to_owned())),
    }
}

fn request_text(method: &str, path: &str, body: Option<&str>) -> String {
    let body = body.unwrap_or("");
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends one request and reads the whole answer.
pub(crate) fn call(
    dir: &DataDir,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Answer, GatewayError> {
    call_on(connect(dir)?, dir, method, path, body)
}

/// Sends one request on a connection [`reach`] opened and reads the whole answer.
pub(crate) fn call_on(
    stream: UnixStream,
    dir: &DataDir,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Answer, GatewayError> {
    let error = |reason: String| GatewayError::Control {
        path: dir.control_path(),
        reason,
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| error(e.to_string()))?;
    // A busy gateway answers and closes before it reads: the write may then fail, but its answer
    // is waiting to be read.
    let written = (&stream).write_all(request_text(method, path, body).as_bytes());
    let mut reader = BufReader::new(stream.take(MAX_ANSWER));
    let (status, chunked, length) = match read_head(&mut reader) {
        Ok(head) => head,
        Err(reason) => {
            return Err(error(match written {
                Err(e) => format!("{reason} (sending: {e})"),
                Ok(()) => reason,
            }));
        }
    };
    let mut text = String::new();
    if chunked {
        while let Some(chunk) = read_chunk(&mut reader).map_err(error)? {
            text.push_str(&chunk);
        }
    } else if let Some(length) = length {
        // Exactly the body: a gateway that answered before reading the request (busy) closes at
        // once, and reading on to the end would meet the reset of its unread request.
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .map_err(|e| error(e.to_string()))?;
        text = String::from_utf8(body).map_err(|e| error(e.to_string()))?;
    } else {
        reader
            .read_to_string(&mut text)
            .map_err(|e| error(e.to_string()))?;
    }
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| error(format!("unreadable answer: {e}")))?
    };
    Ok(Answer { status, body })
}

/// An error answer as a one-line error with the API's message.
pub(crate) fn refused(answer: &Answer) -> GatewayError {
    GatewayError::Refused(
        answer.body["message"]
            .as_str()
            .map(crate::escape::escaped)
            .unwrap_or_else(|| format!("the gateway answered {}", answer.status)),
    )
}

/// Like [`call`], turning an error answer into a one-line error with the API's message.
pub(crate) fn expect(
    dir: &DataDir,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Value, GatewayError> {
    let answer = call(dir, method, path, body)?;
    if (200..300).contains(&answer.status) {
        return Ok(answer.body);
    }
    Err(refused(&answer))
}

/// The status line, whether the body is chunked, and its length if given.
fn read_head(reader: &mut impl BufRead) -> Result<(u16, bool, Option<usize>), String> {
    let mut line = String::new();
    let read = reader.read_line(&mut line).map_err(|e| e.to_string())?;
    if read == 0 {
        return Err("the gateway closed without an answer".into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", line.trim()))?;
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_err(|e| e.to_string())? == 0 {
            return Err("the gateway closed the connection".into());
        }
        let header = header.trim_end();
        if header.is_empty() {
            return Ok((status, chunked, length));
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let value: usize = value
                .trim()
                .parse()
                .map_err(|e| format!("bad Content-Length {value:?}: {e}"))?;
            if value as u64 > MAX_ANSWER {
                return Err(format!("an answer of {value} bytes is too large"));
            }
            length = Some(value);
        }
    }
}

/// One chunk of a chunked body (`None` at its end).
fn read_chunk(reader: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut size = String::new();
    if reader.read_line(&mut size).map_err(|e| e.to_string())? == 0 {
        return Ok(None);
    }
    let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|e| format!("bad chunk size: {e}"))?;
    if size == 0 {
        return Ok(None);
    }
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).map_err(|e| e.to_string())?;
    data.truncate(size);
    String::from_utf8(data).map(Some).map_err(|e| e.to_string())
}

/// Follows `GET /api/v1/events`, calling `each` with every event's JSON (and `None` for a
/// `gap`), until the gateway stops or `each` returns false.
pub(crate) fn follow(
    dir: &DataDir,
    mut each: impl FnMut(Option<Value>) -> bool,
) -> Result<(), GatewayError> {
    let stream = connect(dir)?;
    let error = |reason: String| GatewayError::Control {
        path: dir.control_path(),
        reason,
    };
    (&stream)
        .write_all(request_text("GET", "/api/v1/events", None).as_bytes())
        .map_err(|e| error(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    let (status, chunked, _) = read_head(&mut reader).map_err(error)?;
    if status != 200 || !chunked {
        return Err(error(format!("the gateway answered {status}")));
    }
    let mut pending = String::new();
    let (mut name, mut data) = (None::<String>, String::new());
    while let Some(chunk) = read_chunk(&mut reader).map_err(error)? {
        pending.push_str(&chunk);
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !data.is_empty() {
                    let event = match name.take().as_deref() {
                        Some("gap") => None,
                        _ => serde_json::from_str(&data).ok(),
                    };
                    data.clear();
                    if !each(event) {
                        return Ok(());
                    }
                }
            } else if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
    Ok(())
}
