//! Every case of docs/conformance.md that the state machine alone decides, on a virtual
//! clock. The test plays the conformance tool; the connection is the DUT.

use crate::support;

/// PIN verification (§13.4.4.3).
mod pin;

use std::time::Duration;

use ship_hub::protocol::message::*;
use ship_hub::protocol::{CloseCause, ConnectionState, ProtocolConfig, Role, Timer, Trust};
use support::{TOOL_SHIP_ID, Tool, msg, params};

const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn waiting_of(message: Option<ShipMessage>) -> u32 {
    match message {
        Some(ShipMessage::ConnectionHello(ConnectionHello {
            phase: HelloPhase::Ready,
            waiting: Some(waiting),
            ..
        })) => waiting,
        other => panic!("expected hello ready with waiting, got {other:?}"),
    }
}

// ----- CMI ------------------------------------------------------------------------------------

#[test]
fn tc_ship_cmi_001_server_answers_control_typed_cmi_with_cmi_then_closes() {
    let mut tool = Tool::new(params(Role::Server, Trust::Trusted));
    tool.send_bytes(&[0x01, 0x00]);
    assert_eq!(tool.take_all(), vec![ShipMessage::Cmi]);
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_cmi_002_client_closes_silently_on_control_typed_cmi_reply() {
    let mut tool = Tool::new(params(Role::Client, Trust::Trusted));
    assert_eq!(tool.take_all(), vec![ShipMessage::Cmi]);
    tool.send_bytes(&[0x01, 0x00]);
    assert!(tool.take_all().is_empty(), "nothing further");
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_cmi_003_server_open_at_7s_closed_within_32s() {
    let mut tool = Tool::new(params(Role::Server, Trust::Trusted));
    tool.advance(7 * SECOND);
    assert!(!tool.is_closed());
    tool.advance(25 * SECOND);
    assert!(tool.is_closed());
    assert_eq!(tool.closed_cause(), Some(&CloseCause::Timeout(Timer::Cmi)));
}

#[test]
fn tc_ship_cmi_004_client_open_at_7s_closed_within_32s() {
    let mut tool = Tool::new(params(Role::Client, Trust::Trusted));
    assert_eq!(tool.take_all(), vec![ShipMessage::Cmi]);
    tool.advance(7 * SECOND);
    assert!(!tool.is_closed());
    tool.advance(25 * SECOND);
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_cmi_005_server_answers_cmi_head_1_with_cmi_then_closes() {
    let mut tool = Tool::new(params(Role::Server, Trust::Trusted));
    tool.send_bytes(&[0x00, 0x01]);
    assert_eq!(tool.take_all(), vec![ShipMessage::Cmi]);
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_cmi_006_client_closes_silently_on_cmi_head_1() {
    let mut tool = Tool::new(params(Role::Client, Trust::Trusted));
    tool.take_all();
    tool.send_bytes(&[0x00, 0x01]);
    assert!(tool.take_all().is_empty());
    assert!(tool.is_closed());
}

// ----- ROLE -----------------------------------------------------------------------------------

#[test]
fn tc_ship_role_001_server_still_open_at_7s_then_cmi_and_hello() {
    let mut tool = Tool::new(params(Role::Server, Trust::Trusted));
    tool.advance(7 * SECOND);
    assert!(!tool.is_closed());
    tool.send(&ShipMessage::Cmi);
    let sent = tool.take_all();
    assert_eq!(sent[0], ShipMessage::Cmi);
    assert!(matches!(sent[1], ShipMessage::ConnectionHello(_)));
}

#[test]
fn tc_ship_role_002_client_still_open_at_7s_then_hello() {
    let mut tool = Tool::new(params(Role::Client, Trust::Trusted));
    assert_eq!(tool.take_all(), vec![ShipMessage::Cmi]);
    tool.advance(7 * SECOND);
    assert!(!tool.is_closed());
    assert_eq!(tool.state(), ConnectionState::Initiated);
    tool.send(&ShipMessage::Cmi);
    assert!(matches!(tool.next(), Some(ShipMessage::ConnectionHello(_))));
}

// ----- HELLO ----------------------------------------------------------------------------------

#[test]
fn tc_ship_hello_001_ready_ready_enters_protocol_handshake() {
    let mut tool = Tool::through_cmi(Role::Server);
    assert!(matches!(
        tool.next(),
        Some(ShipMessage::ConnectionHello(ConnectionHello {
            phase: HelloPhase::Ready,
            ..
        }))
    ));
    tool.send(&msg::hello_ready(60_000));
    assert_eq!(tool.state(), ConnectionState::InProgress);
    assert!(
        tool.take_all().is_empty(),
        "the server waits for announceMax"
    );
    tool.send(&msg::announce_max());
    assert_eq!(tool.take_all(), vec![msg::select()]);
}

/// The DUT accepts repeated prolongation requests and *extends* its running timer by
/// T_hello_inc each time; `waiting` in its answer is the remaining time.
fn hello_002(hello_init: u64, hello_inc: u64) {
    let mut config = ProtocolConfig::default();
    config.hello_init = Duration::from_secs(hello_init);
    config.hello_inc = Duration::from_secs(hello_inc);
    let mut p = params(Role::Server, Trust::Trusted);
    p.config = config;
    let mut tool = Tool::new(p);
    tool.send(&ShipMessage::Cmi);
    assert_eq!(tool.next(), Some(ShipMessage::Cmi));
    assert_eq!(waiting_of(tool.next()), (hello_init * 1000) as u32);
    let mut deadline = hello_init; // seconds after the start
    let mut elapsed = 45;
    tool.advance(45 * SECOND);
    for round in 0..3 {
        assert!(!tool.is_closed(), "round {round}");
        tool.send(&msg::hello_prolongation_request());
        deadline += hello_inc;
        assert_eq!(
            waiting_of(tool.next()),
            ((deadline - elapsed) * 1000) as u32,
            "round {round}: extended, not restarted"
        );
        assert!(!tool.is_closed());
        tool.advance(60 * SECOND);
        elapsed += 60;
    }
    assert!(!tool.is_closed());
    tool.send(&msg::hello_ready(60_000));
    tool.send(&msg::announce_max());
    assert_eq!(tool.take_all(), vec![msg::select()]);
}

#[test]
fn tc_ship_hello_002_prolongation_extends_timer() {
    hello_002(120, 120);
}

#[test]
fn tc_ship_hello_002_prolongation_extends_timer_with_60s_timers() {
    hello_002(60, 60);
}

#[test]
fn tc_ship_hello_003_ready_carries_waiting_and_aborts_on_silence() {
    let mut tool = Tool::through_cmi(Role::Server);
    let waiting = waiting_of(tool.next());
    assert!((58_000..=240_000).contains(&waiting), "{waiting}");
    tool.advance(ms(u64::from(waiting) + 2_000));
    assert_eq!(tool.take_all(), vec![msg::hello_aborted()]);
    assert!(tool.is_closed());
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::Timeout(Timer::HelloWait))
    );
}

#[test]
fn tc_ship_hello_003_ready_after_approval_carries_waiting() {
    let mut tool = Tool::new(params(Role::Server, Trust::Pending));
    tool.send(&ShipMessage::Cmi);
    tool.take_all();
    tool.advance(30 * SECOND);
    tool.dut.approve_trust(tool.now);
    tool.pump();
    assert_eq!(waiting_of(tool.next()), 90_000);
}

#[test]
fn tc_ship_hello_004_pending_without_prolongation_is_ignored() {
    let mut tool = Tool::through_cmi(Role::Server);
    tool.take_all();
    tool.send(&msg::hello_pending(120_000));
    assert!(tool.take_all().is_empty());
    tool.advance(30 * SECOND);
    assert!(!tool.is_closed());
    tool.send(&msg::hello_ready(60_000));
    tool.send(&msg::announce_max());
    assert_eq!(tool.take_all(), vec![msg::select()]);
}

// ----- PROT -----------------------------------------------------------------------------------

#[test]
fn tc_ship_prot_001_server_selects_json_utf8_then_sends_pin_state() {
    let mut tool = Tool::through_hello(Role::Server);
    tool.send(&msg::announce_max());
    let Some(ShipMessage::ProtocolHandshake(select)) = tool.next() else {
        panic!("no select")
    };
    assert_eq!(select.handshake_type, HandshakeType::Select);
    assert_eq!(select.formats, vec!["JSON-UTF8".to_owned()]);
    assert!(select.version <= ProtocolVersion { major: 1, minor: 0 });
    tool.send(&ShipMessage::ProtocolHandshake(select));
    assert_eq!(tool.take_all(), vec![msg::pin_none()]);
}

#[test]
fn tc_ship_prot_002_client_echoes_select_then_sends_pin_state() {
    let mut tool = Tool::through_cmi(Role::Client);
    tool.take_all();
    tool.send(&msg::hello_ready(60_000));
    let Some(ShipMessage::ProtocolHandshake(announce)) = tool.next() else {
        panic!("no announceMax")
    };
    assert_eq!(announce.handshake_type, HandshakeType::AnnounceMax);
    assert_eq!(announce.version, ProtocolVersion { major: 1, minor: 0 });
    assert_eq!(announce.formats, vec!["JSON-UTF8".to_owned()]);
    tool.send(&msg::select());
    assert_eq!(tool.take_all(), vec![msg::select(), msg::pin_none()]);
}

/// A SHIP 1.1 peer: as server the engine answers an `announceMax` of 1.1 with `select` 1.0 (the
/// lower of both) and completes when the peer echoes it; as client (it announced 1.0) a `select`
/// of 1.1, above its offer, is a selection mismatch (error 3). ship-conformance negotiates as a
/// 1.1 device against ship-hub (docs/conformance.md, "SHIP version").
#[test]
fn a_ship_1_1_peer_negotiates_1_0_with_the_engine() {
    let v1_1 = ProtocolVersion { major: 1, minor: 1 };
    let mut tool = Tool::through_hello(Role::Server);
    tool.send(&ShipMessage::ProtocolHandshake(ProtocolHandshake {
        version: v1_1,
        ..ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax)
    }));
    assert_eq!(tool.next(), Some(msg::select()));
    tool.send(&msg::select());
    assert_eq!(tool.take_all(), vec![msg::pin_none()]);

    let mut tool = Tool::through_cmi(Role::Client);
    tool.take_all();
    tool.send(&msg::hello_ready(60_000));
    assert_eq!(tool.next(), Some(msg::announce_max()));
    tool.send(&ShipMessage::ProtocolHandshake(ProtocolHandshake {
        version: v1_1,
        ..ProtocolHandshake::ship_1_0(HandshakeType::Select)
    }));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::SelectionMismatch)]
    );
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_prot_003_server_silent_tool_gets_error_1() {
    let mut tool = Tool::through_hello(Role::Server);
    tool.advance(12 * SECOND);
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::Timeout)]
    );
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_prot_004_client_silent_tool_gets_error_1() {
    let mut tool = Tool::through_hello(Role::Client);
    tool.advance(12 * SECOND);
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::Timeout)]
    );
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_prot_005_server_hello_in_protocol_state_gets_error_2() {
    let mut tool = Tool::through_hello(Role::Server);
    tool.send(&msg::hello_ready(60_000));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::UnexpectedMessage)]
    );
    assert!(tool.is_closed());
}

#[test]
fn tc_ship_prot_006_client_hello_after_announce_max_gets_error_2() {
    let mut tool = Tool::through_hello(Role::Client);
    tool.send(&msg::hello_ready(60_000));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::UnexpectedMessage)]
    );
    assert!(tool.is_closed());
    // a malformed select stays error 3
    let mut tool = Tool::through_hello(Role::Client);
    let mut select = ProtocolHandshake::ship_1_0(HandshakeType::Select);
    select.formats = vec![];
    tool.send(&ShipMessage::ProtocolHandshake(select));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::SelectionMismatch)]
    );
    assert!(tool.is_closed());
}

// ----- PIN, TERM, AM --------------------------------------------------------------------------

#[test]
fn tc_ship_pin_001_pin_none_reaches_data_exchange() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::through_protocol(role);
        tool.send(&msg::pin_none());
        assert_eq!(tool.take_all(), vec![msg::am_request()]);
        tool.send(&msg::am_request());
        assert_eq!(tool.take_all(), vec![msg::am(&format!("{role:?}-Ship-Id"))]);
    }
}

#[test]
fn tc_ship_term_001_revoked_trust_announces_close_and_closes_by_max_time() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::established(role);
        tool.dut.deny_trust(tool.now);
        tool.pump();
        let Some(ShipMessage::ConnectionClose(close)) = tool.next() else {
            panic!("no connectionClose")
        };
        assert_eq!(close.phase, ClosePhase::Announce);
        assert!(close.reason.is_some());
        let max_time = close.max_time.expect("maxTime");
        tool.advance(ms(u64::from(max_time) + 2_000));
        assert!(tool.is_closed());
    }
}

#[test]
fn tc_ship_am_001_am_reply_carries_own_ship_id() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::established(role);
        tool.send(&msg::am_request());
        assert_eq!(tool.take_all(), vec![msg::am(&format!("{role:?}-Ship-Id"))]);
    }
}

#[test]
fn tc_ship_am_001_am_request_answered_long_after_completed() {
    let mut tool = Tool::established(Role::Server);
    tool.advance(3_600 * SECOND);
    tool.send(&msg::am_request());
    assert_eq!(tool.take_all(), vec![msg::am("Server-Ship-Id")]);
    assert_eq!(tool.state(), ConnectionState::Completed);
}

// ----- AMDATA ---------------------------------------------------------------------------------

const DISCOVERY_READ: &str = r#"{"datagram":[{"header":[{"msgCounter":1},{"cmdClassifier":"read"}]},{"payload":[{"cmd":[[{"nodeManagementDetailedDiscoveryData":[]}]]}]}]}"#;
const USE_CASE_READ: &str = r#"{"datagram":[{"header":[{"msgCounter":2},{"cmdClassifier":"read"}]},{"payload":[{"cmd":[[{"nodeManagementUseCaseData":[]}]]}]}]}"#;

#[test]
fn tc_ship_amdata_001_burst_of_data_am_request_data() {
    let mut tool = Tool::established(Role::Server);
    tool.send(&msg::data(DISCOVERY_READ));
    tool.send(&msg::am_request());
    tool.send(&msg::data(USE_CASE_READ));
    assert_eq!(tool.take_all(), vec![msg::am("Server-Ship-Id")]);
    assert_eq!(
        tool.data(),
        vec![
            DISCOVERY_READ.as_bytes().to_vec(),
            USE_CASE_READ.as_bytes().to_vec()
        ]
    );
    // the application answers both reads
    tool.dut.send_data(b"{\"reply\":1}", tool.now).unwrap();
    tool.dut.send_data(b"{\"reply\":2}", tool.now).unwrap();
    tool.pump();
    assert_eq!(tool.take_all().len(), 2);
}

#[test]
fn tc_ship_amdata_002_data_flows_while_own_am_request_is_pending() {
    let mut tool = Tool::through_pin(Role::Client); // our AM request is out, unanswered
    tool.send(&msg::data(DISCOVERY_READ));
    tool.send(&msg::am_request());
    tool.send(&msg::data(USE_CASE_READ));
    assert_eq!(tool.take_all(), vec![msg::am("Client-Ship-Id")]);
    assert_eq!(tool.data().len(), 2, "delivered at once, not held back");
    tool.dut.send_data(b"{\"reply\":1}", tool.now).unwrap();
    tool.dut.send_data(b"{\"reply\":2}", tool.now).unwrap();
    tool.pump();
    assert_eq!(tool.take_all().len(), 2);
    assert_ne!(tool.state(), ConnectionState::Completed);
    tool.advance(8 * SECOND);
    tool.send(&msg::am(TOOL_SHIP_ID));
    assert_eq!(tool.state(), ConnectionState::Completed);
    assert!(!tool.is_closed());
}

#[test]
fn tc_ship_amdata_003_am_answered_while_our_spine_read_is_unanswered() {
    let mut tool = Tool::established(Role::Client);
    tool.dut
        .send_data(DISCOVERY_READ.as_bytes(), tool.now)
        .unwrap();
    tool.pump();
    assert!(matches!(tool.next(), Some(ShipMessage::Data(_))));
    tool.send(&msg::am_request());
    assert_eq!(tool.take_all(), vec![msg::am("Client-Ship-Id")]);
    tool.advance(5 * SECOND);
    tool.send(&msg::data(r#"{"late":"reply"}"#));
    assert_eq!(tool.data(), vec![br#"{"late":"reply"}"#.to_vec()]);
    assert!(!tool.is_closed());
}

#[test]
fn tc_ship_amdata_004_own_am_request_sent_once() {
    let mut tool = Tool::through_protocol(Role::Server);
    tool.send(&msg::pin_none());
    tool.send(&msg::am_request());
    tool.send(&msg::am(TOOL_SHIP_ID));
    tool.send(&msg::am_request());
    tool.advance(120 * SECOND);
    tool.send(&msg::am(TOOL_SHIP_ID));
    let requests = tool
        .take_all()
        .into_iter()
        .filter(|m| *m == ShipMessage::AccessMethodsRequest)
        .count();
    assert_eq!(requests, 1);
    assert!(!tool.is_closed());
}

// ----- MSG ------------------------------------------------------------------------------------

#[test]
fn tc_ship_msg_001_empty_data_value_is_ignored_and_am_still_answered() {
    let mut tool = Tool::established(Role::Server);
    tool.send_bytes(&[0x02]);
    tool.advance(3 * SECOND);
    assert!(!tool.is_closed());
    tool.send(&msg::am_request());
    assert_eq!(tool.take_all(), vec![msg::am("Server-Ship-Id")]);
}

#[test]
fn tc_ship_msg_002_unknown_type_is_ignored_and_am_still_answered() {
    let mut tool = Tool::established(Role::Client);
    tool.send_bytes(&[0xFF, 0x00]);
    tool.advance(3 * SECOND);
    assert!(!tool.is_closed());
    tool.send(&msg::am_request());
    assert_eq!(tool.take_all(), vec![msg::am("Client-Ship-Id")]);
}

#[test]
fn tc_ship_msg_003_whitespace_padded_am_request_is_answered() {
    let mut tool = Tool::established(Role::Server);
    tool.send_bytes(
        b"\x01 \t\r\n{ \t\r\n\"accessMethodsRequest\" \t\r\n: \t\r\n[ \t\r\n] \t\r\n} \t\r\n",
    );
    assert_eq!(tool.take_all(), vec![msg::am("Server-Ship-Id")]);
}
