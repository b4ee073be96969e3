//! The gateway's HTTP API (`run --http ADDR`), tested against a real `ship-gateway` process with
//! a real HTTP client (ureq) and, where a test must send what no client library sends (a forged
//! `Host`, a half-sent request), raw HTTP over TCP. Loopback only, except the `#[ignore]`d test
//! that binds an address of the private test namespace (run by `bash .ci/test`).

mod gateway_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_support::*;
use serde_json::Value;

/// An HTTP client that reports 4xx/5xx as responses, not errors.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A gateway serving the API on an OS-chosen loopback port.
struct Gateway {
    running: Running,
    http: String,
    ski: String,
    agent: ureq::Agent,
}

impl Gateway {
    fn start(dir: &Path, extra: &[&str]) -> Gateway {
        let mut args = vec!["--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut running = Running::start(dir, &args);
        let listening = running.event("listening");
        let http = listening["http"].as_str().expect("http address").to_owned();
        let ski = listening["ski"].as_str().unwrap().to_owned();
        Gateway {
            running,
            http,
            ski,
            agent: agent(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// (status, body as JSON or Null) of a request with an optional JSON body.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let url = self.url(path);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            ("POST", None) => self.agent.post(&url).send_empty(),
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .content_type("application/json")
                .send(body),
            _ => unreachable!(),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Asserts an error answer: `status` and the stable `code`, with a message for people.
    fn assert_error(&self, method: &str, path: &str, body: Option<&str>, status: u16, code: &str) {
        let (got, value) = self.call(method, path, body);
        assert_eq!(got, status, "{method} {path}: {value}");
        assert_eq!(value["code"], code, "{method} {path}: {value}");
        assert!(
            value["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{value}"
        );
    }
}

/// Sends raw bytes and reads the whole answer (the request must say `Connection: close`).
fn raw(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Sends raw bytes and reads the answer's status line and headers only (for a stream).
fn raw_head(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

#[test]
fn every_operation_of_the_openapi_description_is_served() {
    let tmp = tempdir();
    let gateway = Gateway::start(tmp.path(), &[]);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string("docs/openapi.json").unwrap()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let concrete = path.replace("{ski}", OTHER_SKI);
            if concrete.ends_with("/events") {
                // A stream: only its head is read.
                let head = raw_head(
                    &gateway.http,
                    &format!(
                        "GET {concrete}?after=999999 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                        gateway.http
                    ),
                );
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                assert!(head.contains("text/event-stream"), "{head}");
            } else {
                let body = (method == "POST").then_some("{}");
                let (status, value) = gateway.call(&method, &concrete, body);
                assert!(
                    status != 405 && value["code"] != "not_found",
                    "{method} {path} is in docs/openapi.json but not routed: {status} {value}"
                );
                let documented = item[method.to_lowercase()]["responses"]
                    .as_object()
                    .unwrap();
                assert!(
                    documented.contains_key(&status.to_string()),
                    "{method} {path} answered {status}, which docs/openapi.json does not list"
                );
            }
            operations += 1;
        }
    }
    assert_eq!(operations, 11);
    // And what is not described is not served.
    gateway.assert_error("GET", "/api/v1/nothing", None, 404, "not_found");
}

#[test]
fn every_route_answers_and_every_bad_input_gets_a_4xx_with_a_stable_code() {
    let tmp = tempdir();
    let gateway = Gateway::start(tmp.path(), &[]);

    let (status, value) = gateway.call("GET", "/api/v1/status", None);
    assert_eq!(status, 200);
    assert_eq!(value["ski"], gateway.ski.as_str());
    assert!(value["ship_id"].as_str().unwrap().starts_with("ship-gateway-"));
    assert_eq!(value["counters"]["paired"], 0);
    assert!(value["version"].is_string() && value["uptime_s"].is_u64());

    assert_eq!(gateway.call("GET", "/api/v1/peers", None), (200, Value::Array(vec![])));
    assert_eq!(gateway.call("GET", "/api/v1/visible", None), (200, Value::Array(vec![])));
    assert_eq!(gateway.call("GET", "/api/v1/requests", None), (200, Value::Array(vec![])));

    // Pair: 201 with the peer; listed; the event log says so.
    let body = format!(
        "{{\"ski\":\"{OTHER_SKI}\",\"name\":\"Garage wallbox\",\"ship_id\":\"Wallbox-1\",\"address\":\"127.0.0.1:9\"}}"
    );
    let (status, peer) = gateway.call("POST", "/api/v1/peers", Some(&body));
    assert_eq!(status, 201, "{peer}");
    assert_eq!(peer["ski"], OTHER_SKI);
    assert_eq!(peer["name"], "Garage wallbox");
    assert_eq!(peer["ship_id"], "Wallbox-1");
    assert_eq!(peer["last_address"], "127.0.0.1:9");
    let (_, peers) = gateway.call("GET", "/api/v1/peers", None);
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
    let state = peers[0]["state"].as_str().unwrap();
    assert!(
        ["Queued", "Initiated", "InProgress", "Error", "None"].contains(&state),
        "{state}"
    );

    // Bad input: 4xx with a stable code, never 500.
    gateway.assert_error("POST", "/api/v1/peers", Some("{\"ski\":\"12\"}"), 400, "bad_ski");
    gateway.assert_error(
        "POST",
        "/api/v1/peers",
        Some(&format!("{{\"ski\":\"{}\"}}", gateway.ski)),
        400,
        "own_ski",
    );
    gateway.assert_error(
        "POST",
        "/api/v1/peers",
        Some(&format!("{{\"ski\":\"{OTHER_SKI}\",\"address\":\"nowhere\"}}")),
        400,
        "bad_address",
    );
    gateway.assert_error(
        "POST",
        "/api/v1/peers",
        Some(&format!("{{\"ski\":\"{OTHER_SKI}\",\"name\":\"a\\nb\"}}")),
        400,
        "bad_name",
    );
    gateway.assert_error("POST", "/api/v1/peers", Some("not json"), 400, "bad_request");
    gateway.assert_error(
        "POST",
        "/api/v1/peers",
        Some(&format!("{{\"ski\":\"{OTHER_SKI}\",\"extra\":1}}")),
        400,
        "bad_request",
    );
    let (status, value) = {
        let mut response = gateway
            .agent
            .post(gateway.url("/api/v1/peers"))
            .content_type("text/plain")
            .send(format!("{{\"ski\":\"{OTHER_SKI}\"}}"))
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), serde_json::from_str::<Value>(&text).unwrap())
    };
    assert_eq!((status, value["code"].as_str()), (415, Some("unsupported_media_type")));
    let huge = format!("{{\"ski\":\"{}\"}}", "a".repeat(300 * 1024));
    gateway.assert_error("POST", "/api/v1/peers", Some(&huge), 413, "body_too_large");

    gateway.assert_error("DELETE", "/api/v1/peers/xyz", None, 400, "bad_ski");
    let unknown = "0202020202020202020202020202020202020202";
    gateway.assert_error(
        "DELETE",
        &format!("/api/v1/peers/{unknown}"),
        None,
        404,
        "not_paired",
    );
    gateway.assert_error(
        "POST",
        &format!("/api/v1/requests/{unknown}/approve"),
        None,
        404,
        "no_request",
    );
    gateway.assert_error(
        "POST",
        &format!("/api/v1/requests/{unknown}/deny"),
        None,
        404,
        "no_request",
    );
    gateway.assert_error(
        "POST",
        &format!("/api/v1/peers/{OTHER_SKI}/data"),
        Some("{\"datagram\":{}}"),
        409,
        "not_connected",
    );
    let too_big = format!("{{\"x\":\"{}\"}}", "a".repeat(110 * 1024));
    gateway.assert_error(
        "POST",
        &format!("/api/v1/peers/{OTHER_SKI}/data"),
        Some(&too_big),
        413,
        "payload_too_large",
    );
    let mut response = gateway
        .agent
        .get(gateway.url("/api/v1/events"))
        .header("Last-Event-ID", "yesterday")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.contains("\"bad_event_id\""), "{text}");

    // Unpair: 204; gone from the list.
    let (status, _) = gateway.call("DELETE", &format!("/api/v1/peers/{OTHER_SKI}"), None);
    assert_eq!(status, 204);
    assert_eq!(gateway.call("GET", "/api/v1/peers", None).1, Value::Array(vec![]));

    // Metrics: the Prometheus text format.
    let mut response = gateway.agent.get(gateway.url("/metrics")).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.contains("# TYPE ship_handshakes_total counter"), "{text}");
    assert!(text.contains("ship_handshakes_total{outcome=\"completed\"} 0"), "{text}");
    assert!(text.contains("ship_connections 0"), "{text}");
}
