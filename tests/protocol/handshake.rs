//! Two handshake machines pumped against each other with a virtual clock, plus single-machine
//! timeout and error paths against a scripted peer.

use crate::support;

use std::time::Duration;

use ship_hub::protocol::message::*;
use ship_hub::protocol::{
    CloseCause, ConnectionState, DetailedState, Event, PeerCloseReason, Role, SendDataError, Trust,
};
use support::{Pair, Side, Tool, msg, params, ship_id};

const SECOND: Duration = Duration::from_secs(1);

fn assert_closed_once_last(side: &Side) {
    let closed: Vec<usize> = side
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Closed(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        closed,
        vec![side.events.len() - 1],
        "Closed exactly once, last: {:?}",
        side.events
    );
}

fn completed_pair() -> Pair {
    let mut pair = Pair::new(Trust::Trusted, Trust::Trusted);
    pair.drive();
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
    assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
    pair
}

#[test]
fn happy_path_both_roles_reach_completed() {
    let pair = completed_pair();
    let expected = vec![
        ConnectionState::Initiated,
        ConnectionState::InProgress,
        ConnectionState::Trusted,
        ConnectionState::InProgress,
        ConnectionState::Pin,
        ConnectionState::InProgress,
        ConnectionState::Completed,
    ];
    assert_eq!(pair.client.states(), expected);
    // The accepting side did not dial: its CMI is handshake work (InProgress), not Initiated.
    assert_eq!(pair.server.states(), expected[1..].to_vec());
    assert_eq!(
        pair.client.conn.peer_ship_id(),
        Some(&ship_id("Server-Ship-Id"))
    );
    assert_eq!(
        pair.server.conn.peer_ship_id(),
        Some(&ship_id("Client-Ship-Id"))
    );
    assert!(
        pair.client
            .events
            .contains(&Event::PeerShipId(ship_id("Server-Ship-Id")))
    );
    assert_eq!(pair.client.conn.detailed_state(), DetailedState::Complete);
    // every timer is stopped once completed
    assert_eq!(pair.client.conn.poll_timeout(), None);
    assert_eq!(pair.server.conn.poll_timeout(), None);
    assert!(!pair.client.conn.is_closed());
}

#[test]
fn happy_path_wire_sequence() {
    let pair = completed_pair();
    let client: Vec<MessageKind> = pair
        .client
        .sent_messages()
        .iter()
        .map(|m| m.kind())
        .collect();
    let server: Vec<MessageKind> = pair
        .server
        .sent_messages()
        .iter()
        .map(|m| m.kind())
        .collect();
    use MessageKind::*;
    assert_eq!(
        client,
        vec![
            Cmi,
            ConnectionHello,
            AnnounceMax,
            Select,
            ConnectionPinState,
            AccessMethodsRequest,
            AccessMethods
        ]
    );
    assert_eq!(
        server,
        vec![
            Cmi,
            ConnectionHello,
            Select,
            ConnectionPinState,
            AccessMethodsRequest,
            AccessMethods
        ]
    );
}

#[test]
fn detailed_states_are_emitted_in_order() {
    let pair = completed_pair();
    let details: Vec<u8> = pair
        .server
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { detail, .. } => Some(detail.as_u8()),
            _ => None,
        })
        .collect();
    assert_eq!(
        details,
        vec![4, 5, 7, 8, 13, 18, 20, 21, 25, 26, 27, 31, 36, 37, 38]
    );
    let details: Vec<u8> = pair
        .client
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { detail, .. } => Some(detail.as_u8()),
            _ => None,
        })
        .collect();
    assert_eq!(
        details,
        vec![1, 2, 3, 7, 8, 13, 19, 22, 24, 26, 27, 31, 36, 37, 38]
    );
}

#[test]
fn data_flows_both_ways_untouched() {
    let mut pair = completed_pair();
    let now = pair.now;
    let payload = br#"{"datagram":[{"header":[]},{"payload":[{"cmd":[[]]}]}]}"#;
    pair.client.conn.send_data(payload, now).unwrap();
    pair.server.conn.send_data(b" [1, 2 ,3] ", now).unwrap();
    pair.drive();
    assert_eq!(pair.server.data(), vec![payload.to_vec()]);
    assert_eq!(pair.client.data(), vec![b"[1, 2 ,3]".to_vec()]);
}

#[test]
fn send_data_errors_are_typed() {
    let mut pair = Pair::new(Trust::Trusted, Trust::Trusted);
    let now = pair.now;
    assert_eq!(
        pair.client.conn.send_data(b"{}", now),
        Err(SendDataError::NotReady(ConnectionState::Initiated))
    );
    pair.drive();
    assert!(matches!(
        pair.client.conn.send_data(b"{", now),
        Err(SendDataError::NotJson(_))
    ));
    assert!(matches!(
        pair.client.conn.send_data(b"\xff", now),
        Err(SendDataError::NotJson(_))
    ));
    pair.client.conn.close(CloseReason::Unspecific, now);
    assert_eq!(
        pair.client.conn.send_data(b"{}", now),
        Err(SendDataError::Closed)
    );
}

#[test]
fn pending_server_then_approve() {
    let mut pair = Pair::new(Trust::Trusted, Trust::Pending);
    pair.drive();
    assert_eq!(
        pair.server.conn.state(),
        ConnectionState::ReceivedPairingRequest
    );
    assert_eq!(pair.client.conn.state(), ConnectionState::InProgress);
    pair.advance(20 * SECOND);
    let now = pair.now;
    pair.server.conn.approve_trust(now);
    pair.drive();
    assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
    assert!(
        pair.server
            .states()
            .contains(&ConnectionState::ReceivedPairingRequest)
    );
    // our `ready` after approval carries the remaining wait: 120 s - 20 s
    let hellos: Vec<ConnectionHello> = pair
        .server
        .sent_messages()
        .into_iter()
        .filter_map(|m| match m {
            ShipMessage::ConnectionHello(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(hellos[0].phase, HelloPhase::Pending);
    assert_eq!(hellos[1].phase, HelloPhase::Ready);
    assert_eq!(hellos[1].waiting, Some(100_000));
}

#[test]
fn both_pending_then_both_approve() {
    let mut pair = Pair::new(Trust::Pending, Trust::Pending);
    pair.drive();
    assert_eq!(
        pair.client.conn.state(),
        ConnectionState::ReceivedPairingRequest
    );
    pair.advance(5 * SECOND);
    let now = pair.now;
    pair.client.conn.approve_trust(now);
    pair.drive();
    // approval completes hello only once the peer is ready too
    assert_eq!(
        pair.client.conn.detailed_state(),
        DetailedState::HelloReadyListen
    );
    pair.advance(5 * SECOND);
    let now = pair.now;
    pair.server.conn.approve_trust(now);
    pair.drive();
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
    assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
}

#[test]
fn approve_before_hello_starts_ready() {
    let mut pair = Pair::new(Trust::Trusted, Trust::Pending);
    let now = pair.now;
    pair.server.conn.approve_trust(now);
    pair.drive();
    assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
    assert!(
        !pair
            .server
            .states()
            .contains(&ConnectionState::ReceivedPairingRequest)
    );
}

#[test]
fn pending_then_deny() {
    let mut pair = Pair::new(Trust::Trusted, Trust::Pending);
    pair.drive();
    pair.advance(3 * SECOND);
    let now = pair.now;
    pair.server.conn.deny_trust(now);
    pair.drive();
    // the aborted hello went out; the close follows after the abort delay
    assert_eq!(
        pair.server.sent_messages().last(),
        Some(&msg::hello_aborted())
    );
    assert_eq!(pair.server.conn.state(), ConnectionState::None);
    assert_eq!(pair.client.conn.state(), ConnectionState::RemoteDeniedTrust);
    assert_eq!(pair.client.closed_cause(), None, "the aborting side closes");
    pair.advance(SECOND);
    assert_eq!(
        pair.client.closed_cause(),
        Some(&CloseCause::RemoteDeniedTrust)
    );
    assert_eq!(pair.server.close.as_ref().map(|c| c.0), Some(4452));
    assert_eq!(
        pair.server.closed_cause(),
        Some(&CloseCause::LocalDeniedTrust)
    );
    assert_eq!(
        pair.server.conn.detailed_state(),
        DetailedState::HelloAbortDone
    );
    assert!(pair.server.conn.is_closed());
    assert!(pair.client.conn.is_closed());
    assert_closed_once_last(&pair.server);
    assert_closed_once_last(&pair.client);
}

#[test]
fn remote_abort_is_remote_denied_trust() {
    let mut pair = Pair::new(Trust::Pending, Trust::Trusted);
    pair.drive();
    let now = pair.now;
    pair.client.conn.deny_trust(now);
    pair.advance(2 * SECOND);
    assert_eq!(pair.server.conn.state(), ConnectionState::RemoteDeniedTrust);
    assert_eq!(
        pair.server.conn.detailed_state(),
        DetailedState::HelloRemoteAbortDone
    );
    assert!(pair.server.closed_cause().unwrap().is_remote_denied_trust());
    assert!(pair.client.closed_cause().unwrap().is_local_denied_trust());
    assert_closed_once_last(&pair.server);
    assert_closed_once_last(&pair.client);
}

#[test]
fn selection_mismatch_sends_error_3() {
    // server: no JSON-UTF8 in the offer
    let mut tool = Tool::through_hello(Role::Server);
    let mut offer = ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax);
    offer.formats = vec!["XML".into()];
    tool.send(&ShipMessage::ProtocolHandshake(offer));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::SelectionMismatch)]
    );
    assert!(matches!(
        tool.closed_cause(),
        Some(CloseCause::SelectionMismatch { .. })
    ));
    assert!(tool.is_closed());
    // client: a select with a version we did not offer
    let mut tool = Tool::through_hello(Role::Client);
    let mut choice = ProtocolHandshake::ship_1_0(HandshakeType::Select);
    choice.version = ProtocolVersion { major: 2, minor: 0 };
    tool.send(&ShipMessage::ProtocolHandshake(choice));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::SelectionMismatch)]
    );
    // server: an echo that differs from our select
    let mut tool = Tool::through_hello(Role::Server);
    tool.send(&msg::announce_max());
    tool.take_all();
    let mut echo = ProtocolHandshake::ship_1_0(HandshakeType::Select);
    echo.formats.push("JSON-UTF16".into());
    tool.send(&ShipMessage::ProtocolHandshake(echo));
    assert_eq!(
        tool.take_all(),
        vec![msg::handshake_error(HandshakeErrorCode::SelectionMismatch)]
    );
    assert_eq!(tool.state(), ConnectionState::Error);
}

#[test]
fn server_selects_1_0_from_a_higher_offer() {
    let mut tool = Tool::through_hello(Role::Server);
    let mut offer = ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax);
    offer.version = ProtocolVersion { major: 1, minor: 7 };
    offer.formats = vec!["JSON-UTF16".into(), "JSON-UTF8".into()];
    tool.send(&ShipMessage::ProtocolHandshake(offer));
    assert_eq!(tool.take_all(), vec![msg::select()]);
}

#[test]
fn peer_handshake_error_closes() {
    let mut tool = Tool::through_hello(Role::Client);
    tool.send(&msg::handshake_error(HandshakeErrorCode::SelectionMismatch));
    assert!(tool.take_all().is_empty());
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::RemoteHandshakeError(
            HandshakeErrorCode::SelectionMismatch
        ))
    );
}

#[test]
fn pin_required_is_a_named_failure() {
    let mut tool = Tool::through_protocol(Role::Server);
    tool.send(&msg::pin(PinState::Required));
    // No PIN to send: the application is asked, and refuses.
    assert!(
        tool.events
            .contains(&Event::PinRequested { rejected: false })
    );
    tool.dut.refuse_pin(tool.now);
    tool.pump();
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::PinRequired(PinState::Required))
    );
    assert!(tool.is_closed());
    assert!(tool.closed_cause().unwrap().to_string().contains("PIN"));
}

/// For every state: what the DUT answers and the cause it reports for an unexpected message.
#[test]
fn unexpected_message_in_every_state() {
    use MessageKind as K;
    let hello = msg::hello_ready(60_000);
    type Setup = fn() -> Tool;
    let cases: Vec<(&str, Setup, ShipMessage, K, Vec<ShipMessage>)> = vec![
        (
            "server ExpectCmi",
            || Tool::new(params(Role::Server, Trust::Trusted)),
            hello.clone(),
            K::Cmi,
            vec![ShipMessage::Cmi],
        ),
        (
            "client ExpectCmi",
            || {
                let mut t = Tool::new(params(Role::Client, Trust::Trusted));
                t.take_all();
                t
            },
            hello.clone(),
            K::Cmi,
            vec![],
        ),
        (
            "ExpectHello",
            || {
                let mut t = Tool::through_cmi(Role::Server);
                t.take_all();
                t
            },
            msg::announce_max(),
            K::ConnectionHello,
            vec![],
        ),
        (
            "ExpectAnnounceMax",
            || Tool::through_hello(Role::Server),
            hello.clone(),
            K::AnnounceMax,
            vec![msg::handshake_error(HandshakeErrorCode::UnexpectedMessage)],
        ),
        (
            "ExpectSelect",
            || Tool::through_hello(Role::Client),
            hello.clone(),
            K::Select,
            vec![msg::handshake_error(HandshakeErrorCode::UnexpectedMessage)],
        ),
        (
            "ExpectSelectEcho",
            || {
                let mut t = Tool::through_hello(Role::Server);
                t.send(&msg::announce_max());
                t.take_all();
                t
            },
            msg::pin_none(),
            K::Select,
            vec![msg::handshake_error(HandshakeErrorCode::UnexpectedMessage)],
        ),
        (
            "ExpectPinState",
            || Tool::through_protocol(Role::Client),
            msg::am_request(),
            K::ConnectionPinState,
            vec![],
        ),
        (
            "DataExchange",
            || Tool::established(Role::Server),
            hello.clone(),
            K::Data,
            vec![],
        ),
    ];
    for (name, setup, message, expected, replies) in cases {
        let mut tool = setup();
        let got = message.kind();
        tool.send(&message);
        assert_eq!(tool.take_all(), replies, "{name}");
        assert_eq!(
            tool.closed_cause(),
            Some(&CloseCause::UnexpectedMessage { expected, got }),
            "{name}"
        );
        assert!(tool.is_closed(), "{name}");
        assert_eq!(tool.close.as_ref().map(|c| c.0), Some(4001), "{name}");
        assert_eq!(tool.state(), ConnectionState::Error, "{name}");
        assert!(
            tool.closed_cause()
                .unwrap()
                .to_string()
                .contains("expected"),
            "{name}"
        );
    }
}

#[test]
fn ship_id_mismatch_closes_with_4450() {
    let mut client = params(Role::Client, Trust::Trusted);
    client.known_peer_ship_id = Some(ship_id("Stored-Ship-Id"));
    let mut pair = Pair::with_params(client, params(Role::Server, Trust::Trusted));
    pair.drive();
    assert_eq!(pair.client.close.as_ref().map(|c| c.0), Some(4450));
    assert_eq!(
        pair.client.closed_cause(),
        Some(&CloseCause::ShipIdMismatch {
            stored: ship_id("Stored-Ship-Id"),
            received: ship_id("Server-Ship-Id")
        })
    );
    assert!(pair.client.closed_cause().unwrap().is_ship_id_mismatch());
    assert_eq!(pair.client.conn.peer_ship_id(), None);
    assert_closed_once_last(&pair.client);
    assert_closed_once_last(&pair.server);
}

#[test]
fn matching_stored_ship_id_completes() {
    let mut client = params(Role::Client, Trust::Trusted);
    client.known_peer_ship_id = Some(ship_id("Server-Ship-Id"));
    let mut pair = Pair::with_params(client, params(Role::Server, Trust::Trusted));
    pair.drive();
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
}

#[test]
fn invalid_peer_ship_id_closes() {
    let mut tool = Tool::through_pin(Role::Server);
    tool.send(&ShipMessage::AccessMethods(AccessMethods { id: None }));
    assert_eq!(tool.closed_cause(), Some(&CloseCause::InvalidShipId(None)));
}

#[test]
fn close_announce_confirm() {
    let mut pair = completed_pair();
    let now = pair.now;
    pair.client.conn.close(CloseReason::Unspecific, now);
    pair.drive();
    assert_eq!(
        pair.client.sent_messages().last(),
        Some(&msg::close_announce(500, CloseReason::Unspecific))
    );
    assert_eq!(
        pair.server.sent_messages().last(),
        Some(&msg::close_confirm())
    );
    assert_eq!(
        pair.client.closed_cause(),
        Some(&CloseCause::LocalClose(CloseReason::Unspecific))
    );
    assert_eq!(
        pair.server.closed_cause(),
        Some(&CloseCause::RemoteClosed {
            reason: Some(PeerCloseReason::Known(CloseReason::Unspecific))
        })
    );
    assert_eq!(pair.client.close.as_ref().map(|c| c.0), Some(1000));
    assert_eq!(pair.client.conn.state(), ConnectionState::None);
    assert_eq!(pair.server.conn.state(), ConnectionState::None);
    assert!(pair.client.closed_cause().unwrap().is_graceful());
    assert!(pair.client.conn.is_closed() && pair.server.conn.is_closed());
    assert_closed_once_last(&pair.client);
    assert_closed_once_last(&pair.server);
}

/// A `connectionClose` announce whose `reason` SHIP does not define (a real device sends
/// "User close"), whose `maxTime` is no number, or whose reason is no string, in the EEBus and
/// the plain JSON form: the engine confirms at once (no time passes on the virtual clock),
/// closes with 1000 and reports the reason exactly as received, shown escaped. In hello it is
/// the end of hello (RemoteDeniedTrust), as for a known reason.
#[test]
fn close_announce_with_a_reason_ship_does_not_define_is_confirmed_and_reported_as_received() {
    let unknown = |text: &str| Some(PeerCloseReason::Unknown(text.to_owned()));
    let cases: [(&str, Option<PeerCloseReason>); 6] = [
        (
            r#"{"connectionClose":[{"phase":"announce"},{"maxTime":500},{"reason":"User close"}]}"#,
            unknown("User close"),
        ),
        (
            r#"{"connectionClose":{"phase":"announce","maxTime":500,"reason":"User close"}}"#,
            unknown("User close"),
        ),
        (
            r#"{"connectionClose":[{"phase":"announce"},{"reason":"bye\u001b[2J\u202e"}]}"#,
            unknown("bye\u{1b}[2J\u{202e}"),
        ),
        (
            r#"{"connectionClose":[{"phase":"announce"},{"reason":7}]}"#,
            unknown("7"),
        ),
        (
            r#"{"connectionClose":[{"phase":"announce"},{"maxTime":"soon"},{"reason":"unspecific"}]}"#,
            Some(PeerCloseReason::Known(CloseReason::Unspecific)),
        ),
        (
            r#"{"connectionClose":[{"phase":"announce"},{"maxTime":-1}]}"#,
            None,
        ),
    ];
    for (json, reason) in cases {
        let bytes = [&[3u8][..], json.as_bytes(), &[0]].concat();
        assert!(
            ship_hub::protocol::codec::decode(&bytes).is_err(),
            "the codec stays strict: {json}"
        );
        let mut tool = Tool::established(Role::Server);
        tool.send_bytes(&bytes);
        assert_eq!(tool.take_all(), vec![msg::close_confirm()], "{json}");
        assert_eq!(tool.close.as_ref().map(|c| c.0), Some(1000), "{json}");
        let expected = CloseCause::RemoteClosed {
            reason: reason.clone(),
        };
        assert_eq!(tool.closed_cause(), Some(&expected), "{json}");
        assert!(expected.is_graceful());
        assert_eq!(tool.state(), ConnectionState::None, "{json}");
    }
    // Shown escaped and quoted (the library's text policy), kept exact.
    let reason = PeerCloseReason::Unknown("bye\u{1b}[2J\u{202e}".to_owned());
    assert_eq!(
        CloseCause::RemoteClosed {
            reason: Some(reason.clone())
        }
        .to_string(),
        r#"closed by the peer (unknown reason "bye\x1b[2J\u{202e}")"#
    );
    assert_eq!(reason.as_received(), "bye\u{1b}[2J\u{202e}");
    assert_eq!(reason.known(), None);
    assert_eq!(
        CloseCause::RemoteClosed {
            reason: Some(CloseReason::RemovedConnection.into())
        }
        .to_string(),
        "closed by the peer (removedConnection)"
    );

    // In hello: the end of hello, confirmed too.
    let mut tool = Tool::through_cmi(Role::Client);
    assert!(matches!(tool.next(), Some(ShipMessage::ConnectionHello(_))));
    let json = r#"{"connectionClose":[{"phase":"announce"},{"reason":"User close"}]}"#;
    tool.send_bytes(&[&[3u8][..], json.as_bytes()].concat());
    assert_eq!(tool.take_all(), vec![msg::close_confirm()]);
    assert_eq!(tool.state(), ConnectionState::RemoteDeniedTrust);
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::RemoteClosed {
            reason: unknown("User close")
        })
    );

    // What stays refused: a confirm we did not wait for, another message with a bad value.
    let mut tool = Tool::established(Role::Client);
    tool.send_bytes(
        b"\x03{\"connectionClose\":[{\"phase\":\"confirm\"},{\"reason\":\"User close\"}]}",
    );
    tool.send_bytes(b"\x03{\"connectionClose\":[{\"phase\":\"bye\"}]}");
    tool.advance(10 * SECOND);
    assert!(!tool.is_closed(), "{:?}", tool.events);
}

#[test]
fn close_flushes_queued_data_first() {
    let mut pair = completed_pair();
    let now = pair.now;
    for i in 0..3 {
        pair.client
            .conn
            .send_data(format!("{{\"n\":{i}}}").as_bytes(), now)
            .unwrap();
    }
    pair.client.conn.close(CloseReason::Unspecific, now);
    pair.drive();
    assert_eq!(
        pair.server.data(),
        vec![
            b"{\"n\":0}".to_vec(),
            b"{\"n\":1}".to_vec(),
            b"{\"n\":2}".to_vec()
        ]
    );
    let kinds: Vec<MessageKind> = pair
        .client
        .sent_messages()
        .iter()
        .map(|m| m.kind())
        .collect();
    assert_eq!(
        &kinds[kinds.len() - 4..],
        &[
            MessageKind::Data,
            MessageKind::Data,
            MessageKind::Data,
            MessageKind::ConnectionClose
        ]
    );
    assert!(pair.server.closed_cause().unwrap().is_graceful());
}

#[test]
fn remote_close_during_handshake_is_confirmed() {
    let mut tool = Tool::through_hello(Role::Server);
    tool.send(&msg::close_announce(500, CloseReason::Unspecific));
    assert_eq!(tool.take_all(), vec![msg::close_confirm()]);
    assert!(tool.is_closed());
    assert_eq!(tool.state(), ConnectionState::None);
}

#[test]
fn transport_closed_reports_once() {
    let mut pair = completed_pair();
    let now = pair.now;
    pair.client.conn.handle_transport_closed(now);
    pair.client.conn.handle_transport_closed(now);
    while let Some(e) = pair.client.conn.poll_event() {
        pair.client.events.push(e);
    }
    assert_eq!(
        pair.client.closed_cause(),
        Some(&CloseCause::TransportClosed)
    );
    assert_closed_once_last(&pair.client);
    assert!(pair.client.conn.is_closed());
    assert_eq!(pair.client.conn.poll_transmit(), None);
    assert_eq!(pair.client.conn.poll_timeout(), None);
}

#[test]
fn transport_closed_in_hello_is_remote_denied_trust() {
    let mut tool = Tool::through_cmi(Role::Server);
    tool.dut.handle_transport_closed(tool.now);
    while let Some(e) = tool.dut.poll_event() {
        tool.events.push(e);
    }
    assert_eq!(tool.state(), ConnectionState::RemoteDeniedTrust);
    assert_eq!(tool.closed_cause(), Some(&CloseCause::TransportClosed));
}

#[test]
fn deny_after_hello_announces_removed_connection() {
    let mut tool = Tool::established(Role::Client);
    tool.dut.deny_trust(tool.now);
    tool.pump();
    assert_eq!(
        tool.take_all(),
        vec![msg::close_announce(500, CloseReason::RemovedConnection)]
    );
}

#[test]
fn connection_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ship_hub::protocol::Connection>();
    assert_send_sync::<Event>();
    assert_send_sync::<CloseCause>();
}
