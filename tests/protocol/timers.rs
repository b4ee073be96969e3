//! Every timer of the handshake on a virtual clock: CMI, hello (with and without
//! prolongation, and the extension arithmetic), each protocol-handshake wait, PIN, access
//! methods and the close confirm.

use crate::support;

use std::time::Duration;

use ship_hub::protocol::message::*;
use ship_hub::protocol::{
    CloseCause, ConnectionState, DetailedState, Event, ProtocolConfig, Role, Timer, Trust,
};
use support::{Pair, Tool, msg, params};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn cmi_timeout_closes_both_roles() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::new(params(role, Trust::Trusted));
        tool.take_all();
        tool.advance(Duration::from_millis(29_999));
        assert!(!tool.is_closed());
        tool.advance(Duration::from_millis(1));
        assert!(tool.is_closed(), "{role:?}");
        assert_eq!(tool.closed_cause(), Some(&CloseCause::Timeout(Timer::Cmi)));
        assert!(tool.received.is_empty());
        assert_eq!(tool.state(), ConnectionState::Error);
    }
}

#[test]
fn hello_times_out_without_prolongation() {
    // The pending client's own wait (60 s) ends before it would ask for prolongation (90 s).
    let mut client = params(Role::Client, Trust::Pending);
    client.config.hello_init = 60 * SECOND;
    let mut pair = Pair::with_params(client, params(Role::Server, Trust::Trusted));
    pair.drive();
    pair.advance(59 * SECOND);
    assert!(pair.client.close.is_none());
    pair.advance(SECOND);
    assert_eq!(
        pair.client.sent_messages().last(),
        Some(&msg::hello_aborted())
    );
    assert!(pair.client.events.contains(&Event::StateChanged {
        state: ConnectionState::InProgress,
        detail: DetailedState::HelloPendingTimeout
    }));
    assert_eq!(pair.server.conn.state(), ConnectionState::RemoteDeniedTrust);
    pair.advance(SECOND);
    assert_eq!(
        pair.client.closed_cause(),
        Some(&CloseCause::Timeout(Timer::HelloWait))
    );
    assert_eq!(pair.client.close.as_ref().map(|c| c.0), Some(4452));
    assert!(!pair.client.sent_messages().iter().any(|m| matches!(
        m,
        ShipMessage::ConnectionHello(ConnectionHello {
            prolongation_request: Some(true),
            ..
        })
    )));
}

#[test]
fn hello_prolongation_extends_the_peers_timer() {
    // Client pending with a long own wait; server ready with the defaults (120 s, +120 s).
    let mut client = params(Role::Client, Trust::Pending);
    client.config.hello_init = 600 * SECOND;
    let mut pair = Pair::with_params(client, params(Role::Server, Trust::Trusted));
    pair.drive();
    let start = pair.now;
    // The server's wait: 120 s. The client asks when 30 s are left: at 90 s.
    pair.advance(89 * SECOND);
    assert_eq!(pair.server.sent_messages().len(), 2); // CMI, hello
    pair.advance(SECOND);
    assert_eq!(
        pair.client.sent_messages().last(),
        Some(&msg::hello_prolongation_request())
    );
    // Extended, not restarted: 120 + 120 = 240 s, 150 s left at 90 s.
    assert_eq!(
        pair.server.sent_messages().last(),
        Some(&msg::hello_ready(150_000))
    );
    // Next request when 30 s are left again: 90 + 150 - 30 = 210 s -> 360 s, 150 s left.
    pair.advance(119 * SECOND);
    assert_eq!(pair.server.sent_messages().len(), 3);
    pair.advance(SECOND);
    assert_eq!(
        pair.server.sent_messages().last(),
        Some(&msg::hello_ready(150_000))
    );
    assert_eq!(pair.now - start, 210 * SECOND);
    // The user approves: done.
    let now = pair.now;
    pair.client.conn.approve_trust(now);
    pair.drive();
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
    assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
}

#[test]
fn hello_prolongation_without_answer_aborts() {
    let mut tool = Tool::new(params(Role::Server, Trust::Pending));
    tool.send(&ShipMessage::Cmi);
    tool.take_all();
    tool.send(&msg::hello_ready(40_000));
    // request at 40 - 30 = 10 s
    tool.advance(10 * SECOND);
    assert_eq!(tool.take_all(), vec![msg::hello_prolongation_request()]);
    // no answer within the waiting gap (15 s): abort
    tool.advance(15 * SECOND);
    assert_eq!(tool.take_all(), vec![msg::hello_aborted()]);
    tool.advance(SECOND);
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::Timeout(Timer::HelloProlongationReply))
    );
}

#[test]
fn peer_wait_below_minimum_aborts() {
    let mut tool = Tool::new(params(Role::Server, Trust::Pending));
    tool.send(&ShipMessage::Cmi);
    tool.take_all();
    tool.send(&msg::hello_ready(500));
    assert_eq!(tool.take_all(), vec![msg::hello_aborted()]);
    tool.advance(SECOND);
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::PeerWaitTooShort { waiting_ms: 500 })
    );
}

#[test]
fn short_peer_wait_asks_for_prolongation_at_once() {
    let mut tool = Tool::new(params(Role::Server, Trust::Pending));
    tool.send(&ShipMessage::Cmi);
    tool.take_all();
    tool.send(&msg::hello_ready(20_000));
    tool.advance(Duration::ZERO);
    assert_eq!(tool.take_all(), vec![msg::hello_prolongation_request()]);
    tool.send(&msg::hello_ready(140_000));
    tool.advance(109 * SECOND);
    assert!(tool.take_all().is_empty());
    tool.advance(SECOND);
    assert_eq!(tool.take_all(), vec![msg::hello_prolongation_request()]);
}

#[test]
fn protocol_handshake_waits_time_out_with_error_1() {
    // server waiting for announceMax
    let mut tool = Tool::through_hello(Role::Server);
    tool.advance(Duration::from_millis(9_999));
    assert!(!tool.is_closed());
    tool.advance(Duration::from_millis(1));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::Timeout)]
    );
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::Timeout(Timer::ProtocolHandshake))
    );
    // client waiting for select
    let mut tool = Tool::through_hello(Role::Client);
    tool.advance(10 * SECOND);
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::Timeout)]
    );
    assert!(tool.is_closed());
    // server waiting for the select echo
    let mut tool = Tool::through_hello(Role::Server);
    tool.advance(5 * SECOND);
    tool.send(&msg::announce_max());
    assert_eq!(tool.take_all(), vec![msg::select()]);
    tool.advance(Duration::from_millis(9_999)); // the wait restarted with the select
    assert!(!tool.is_closed());
    tool.advance(Duration::from_millis(1));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::Timeout)]
    );
    assert!(tool.is_closed());
    assert!(tool.closed_cause().unwrap().is_timeout());
}

#[test]
fn pin_state_wait_times_out() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::through_protocol(role);
        tool.advance(10 * SECOND);
        assert!(tool.is_closed());
        assert_eq!(
            tool.closed_cause(),
            Some(&CloseCause::Timeout(Timer::PinState))
        );
    }
}

#[test]
fn access_methods_wait_times_out() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::through_pin(role);
        tool.advance(Duration::from_millis(9_999));
        assert!(!tool.is_closed());
        tool.advance(Duration::from_millis(1));
        assert_eq!(
            tool.closed_cause(),
            Some(&CloseCause::Timeout(Timer::AccessMethods))
        );
    }
}

#[test]
fn close_without_confirm_ends_at_max_time() {
    let mut config = ProtocolConfig::default();
    config.close_max_time = Duration::from_millis(2_000);
    let mut p = params(Role::Server, Trust::Trusted);
    p.config = config;
    let mut tool = Tool::new(p);
    tool.send(&ShipMessage::Cmi);
    tool.send(&msg::hello_ready(60_000));
    tool.send(&msg::announce_max());
    tool.send(&msg::select());
    tool.send(&msg::pin_none());
    tool.send(&msg::am("Tool"));
    tool.take_all();
    tool.dut.close(CloseReason::RemovedConnection, tool.now);
    tool.pump();
    assert_eq!(
        tool.take_all(),
        vec![msg::close_announce(2_000, CloseReason::RemovedConnection)]
    );
    tool.advance(Duration::from_millis(1_999));
    assert!(!tool.is_closed());
    tool.advance(Duration::from_millis(1));
    assert!(tool.is_closed());
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::LocalClose(CloseReason::RemovedConnection))
    );
}
