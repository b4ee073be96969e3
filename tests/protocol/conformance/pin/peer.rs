//! PIN verification (SHIP §13.4.4.3), continued: the peer requires a PIN, two engines
//! against each other, hostile input.

use super::*;

// ----- the peer requires a PIN ----------------------------------------------------------------

#[test]
fn s13_4_4_3_peer_required_gets_our_pin_and_pin_ok_opens() {
    for role in [Role::Server, Role::Client] {
        let mut tool = Tool::through_protocol_with_pin(role, sending(PIN));
        assert_eq!(tool.next(), Some(msg::pin_none()));
        tool.send(&required_ok());
        assert_eq!(tool.take_all(), vec![msg::pin_input(PIN)]);
        assert!(details(&tool).contains(&DetailedState::PinAskProcess));
        assert_eq!(tool.state(), ConnectionState::Pin);
        tool.send(&pin_ok());
        assert_eq!(tool.take_all(), vec![msg::am_request()]);
        assert_eq!(pin_events(&tool.events), vec![Event::PinAccepted]);
        assert!(details(&tool).contains(&DetailedState::PinAskOk));
    }
}

#[test]
fn s13_4_4_3_peer_required_without_a_pin_asks_the_application() {
    let mut tool = Tool::through_protocol_with_pin(Role::Server, PinParams::default());
    tool.take_all();
    tool.send(&required_ok());
    assert!(tool.take_all().is_empty());
    assert_eq!(
        pin_events(&tool.events),
        vec![Event::PinRequested { rejected: false }]
    );
    assert_eq!(tool.dut.detailed_state(), DetailedState::PinAskInit);
    tool.dut.enter_pin(pin(PIN), tool.now);
    tool.pump();
    assert_eq!(tool.take_all(), vec![msg::pin_input(PIN)]);
}

#[test]
fn s13_4_4_3_refusing_the_pin_closes_with_pin_required() {
    let mut tool = Tool::through_protocol_with_pin(Role::Client, PinParams::default());
    tool.take_all();
    tool.send(&required_ok());
    tool.dut.refuse_pin(tool.now);
    tool.pump();
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::PinRequired(PinState::Required))
    );
    assert_eq!(tool.state(), ConnectionState::Error);
}

#[test]
fn s13_4_4_3_peer_busy_waits_for_ok_before_the_pin_goes() {
    let mut tool = Tool::through_protocol_with_pin(Role::Server, sending(PIN));
    tool.take_all();
    tool.send(&required_busy());
    assert!(tool.take_all().is_empty());
    assert_eq!(tool.dut.detailed_state(), DetailedState::PinCheckBusyWait);
    tool.advance(60 * SECOND);
    assert!(!tool.is_closed());
    tool.send(&required_ok());
    assert_eq!(tool.take_all(), vec![msg::pin_input(PIN)]);
}

#[test]
fn s13_4_4_3_rejected_pin_is_not_resent_and_the_application_is_asked() {
    let mut tool = Tool::through_protocol_with_pin(Role::Server, sending(WRONG));
    tool.take_all();
    tool.send(&required_ok());
    assert_eq!(tool.take_all(), vec![msg::pin_input(WRONG)]);
    tool.send(&msg::pin_error());
    tool.send(&required_ok());
    assert!(
        tool.take_all().is_empty(),
        "the wrong PIN is not sent again"
    );
    assert_eq!(
        pin_events(&tool.events),
        vec![Event::PinRequested { rejected: true }]
    );
    tool.dut.enter_pin(pin(PIN), tool.now);
    tool.pump();
    assert_eq!(tool.take_all(), vec![msg::pin_input(PIN)]);
    tool.send(&pin_ok());
    assert_eq!(tool.take_all(), vec![msg::am_request()]);
}

#[test]
fn s13_4_4_3_peer_in_penalty_answers_busy_and_our_pin_goes_again_at_ok() {
    let mut tool = Tool::through_protocol_with_pin(Role::Client, sending(PIN));
    tool.take_all();
    tool.send(&required_ok());
    assert_eq!(tool.take_all(), vec![msg::pin_input(PIN)]);
    // The peer did not verify it (its penalty runs): `busy`, then `ok` later.
    tool.send(&required_busy());
    assert!(tool.take_all().is_empty());
    tool.send(&required_ok());
    assert_eq!(tool.take_all(), vec![msg::pin_input(PIN)]);
}

#[test]
fn s13_4_4_3_peer_optional_without_a_pin_opens_restricted() {
    let mut tool = Tool::through_protocol_with_pin(Role::Client, PinParams::default());
    tool.take_all();
    tool.send(&msg::pin_with(PinState::Optional, PinInputPermission::Ok));
    assert_eq!(tool.take_all(), vec![msg::am_request()]);
    assert!(details(&tool).contains(&DetailedState::PinAskRestricted));
    assert!(
        pin_events(&tool.events).is_empty(),
        "an optional PIN is not asked for"
    );
}

#[test]
fn s13_4_4_3_peer_optional_gets_our_pin_and_the_verdict_arrives_in_data_exchange() {
    let mut tool = Tool::through_protocol_with_pin(Role::Server, sending(PIN));
    tool.take_all();
    tool.send(&msg::pin_with(PinState::Optional, PinInputPermission::Ok));
    assert_eq!(
        tool.take_all(),
        vec![msg::pin_input(PIN), msg::am_request()]
    );
    tool.send(&msg::am("Tool-Ship-Id"));
    tool.send(&pin_ok());
    assert_eq!(tool.state(), ConnectionState::Completed);
    assert_eq!(pin_events(&tool.events), vec![Event::PinAccepted]);
}

// ----- two engines ------------------------------------------------------------------------------

fn pair(client: PinParams, server: PinParams) -> Pair {
    let mut pair = Pair::new(Trust::Trusted, Trust::Trusted);
    pair.client.conn.set_pin(client);
    pair.server.conn.set_pin(server);
    pair.drive();
    pair
}

#[test]
fn s13_4_4_3_two_engines_pair_with_a_pin_in_both_directions() {
    for (client, server) in [(sending(PIN), required()), (required(), sending(PIN))] {
        let pair = pair(client, server);
        assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
        assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
    }
    // Both require, both know the other's PIN.
    let mut both = required();
    both.peer_pin = Some(pin(PIN));
    let pair = pair(both.clone(), both);
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
    assert_eq!(pair.server.conn.state(), ConnectionState::Completed);
}

#[test]
fn s13_4_4_3_two_engines_with_a_wrong_pin_do_not_reach_data_exchange() {
    let mut pair = pair(sending(WRONG), required());
    assert_eq!(pair.client.conn.state(), ConnectionState::Pin);
    assert_eq!(pair.server.conn.state(), ConnectionState::Pin);
    assert!(pin_events(&pair.client.events).contains(&Event::PinRequested { rejected: true }));
    pair.client.conn.refuse_pin(pair.now);
    pair.drive();
    assert_eq!(
        pair.client.closed_cause(),
        Some(&CloseCause::PinRequired(PinState::Required))
    );
    assert!(pair.server.data().is_empty());
}

#[test]
fn s13_4_4_3_connection_debug_hides_the_pins() {
    let mut p = required();
    p.peer_pin = Some(pin(PIN));
    let mut connection = Connection::new(
        params(Role::Client, Trust::Trusted),
        std::time::Instant::now(),
    );
    connection.set_pin(p);
    let printed = format!("{connection:?}");
    assert!(!printed.contains(PIN), "{printed}");
}

#[test]
fn s13_4_4_3_optional_pin_entered_later_in_data_exchange_unrestricts() {
    let mut pair = pair(PinParams::default(), optional());
    assert_eq!(pair.client.conn.state(), ConnectionState::Completed);
    assert!(pair.server.conn.peer_restricted());
    let now = pair.now;
    pair.client.conn.enter_pin(pin(PIN), now);
    pair.drive();
    assert!(
        !pair.server.conn.peer_restricted(),
        "{:?}",
        pair.client.sent_messages()
    );
    assert!(pin_events(&pair.server.events).contains(&Event::PinVerified));
    assert!(pin_events(&pair.client.events).contains(&Event::PinAccepted));
}

/// Hostile input: ten thousand wrong PINs at once cost the verifying node three
/// `connectionPinError`s; everything after the third is answered `busy`, unverified, and the
/// right PIN in the flood is not accepted either.
#[test]
fn s13_4_4_3_a_flood_of_pins_is_answered_busy_after_the_third() {
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    for n in 0..10_000u32 {
        let text = if n == 5_000 {
            PIN.to_owned()
        } else {
            format!("{n:08X}")
        };
        tool.send(&msg::pin_input(&text));
    }
    let sent = tool.take_all();
    let errors = sent.iter().filter(|m| **m == msg::pin_error()).count();
    let busy = sent.iter().filter(|m| **m == required_busy()).count();
    assert_eq!(errors, 3);
    assert_eq!(
        busy,
        1 + 9_997,
        "one busy at the penalty, one per PIN during it"
    );
    assert!(!sent.contains(&pin_ok()));
    assert_eq!(tool.dut.pin_attempts(), 3);
    assert_eq!(tool.state(), ConnectionState::Pin);
}

/// Hostile input: a `pin` that is no string is undecodable: before the peer's PIN state it
/// closes (unexpected bytes in the handshake); after it, it is ignored like any undecodable
/// message of a peer that may be in data exchange already. A `pin` of 17 digits or of
/// 100 KB of text is a wrong PIN.
#[test]
fn s13_4_4_3_malformed_pin_inputs() {
    let number = b"\x01{\"connectionPinInput\":[{\"pin\":12345678}]}";
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    tool.send_bytes(number);
    assert!(tool.take_all().is_empty());
    assert_eq!(tool.state(), ConnectionState::Pin);
    tool.send_bytes(b"\x01{\"connectionPinInput\":[{\"pin\":\"not hex!\"}]}");
    assert_eq!(tool.take_all(), vec![msg::pin_error()]);
    let long = format!(
        "\x01{{\"connectionPinInput\":[{{\"pin\":\"{}\"}}]}}",
        "A".repeat(100_000)
    );
    tool.send_bytes(long.as_bytes());
    tool.send_bytes(b"\x01{\"connectionPinInput\":[{\"pin\":\"0123456789ABCDEF0\"}]}");
    assert_eq!(
        tool.take_all(),
        vec![msg::pin_error(), msg::pin_error(), required_busy()]
    );

    let mut early = Tool::through_protocol_with_pin(Role::Server, required());
    early.take_all();
    early.send_bytes(number);
    assert!(matches!(early.closed_cause(), Some(CloseCause::Decode(_))));
}
