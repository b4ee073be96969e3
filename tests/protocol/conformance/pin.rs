//! PIN verification (SHIP §13.4.4.3) in the engine, both roles, every transition, on the
//! virtual clock: a scripted tool against one connection, and two connections against each
//! other. Included by tests/protocol/conformance.rs.

use std::time::Duration;

use ship_hub::protocol::message::*;
use ship_hub::protocol::{
    CloseCause, Connection, ConnectionState, DetailedState, Event, Pin, PinParams, PinRequirement,
    ProtocolConfig, Role, Timer, Trust, codec,
};

use crate::support::{Pair, Tool, msg, params};

const PIN: &str = "5555AAAAFF";
const WRONG: &str = "12345678";
const SECOND: Duration = Duration::from_secs(1);

fn pin(text: &str) -> Pin {
    Pin::new(text).unwrap()
}

fn requiring(requirement: PinRequirement) -> PinParams {
    PinParams::new(requirement)
}

fn required() -> PinParams {
    requiring(PinRequirement::Required(pin(PIN)))
}

fn optional() -> PinParams {
    requiring(PinRequirement::Optional(pin(PIN)))
}

fn sending(text: &str) -> PinParams {
    let mut params = PinParams::default();
    params.peer_pin = Some(pin(text));
    params
}

fn details(tool: &Tool) -> Vec<DetailedState> {
    tool.events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { detail, .. } => Some(*detail),
            _ => None,
        })
        .collect()
}

fn pin_events(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::PinRequested { .. }
                    | Event::PinAccepted
                    | Event::PinVerified
                    | Event::PinAttemptFailed { .. }
            )
        })
        .cloned()
        .collect()
}

fn required_ok() -> ShipMessage {
    msg::pin_with(PinState::Required, PinInputPermission::Ok)
}

fn required_busy() -> ShipMessage {
    msg::pin_with(PinState::Required, PinInputPermission::Busy)
}

fn pin_ok() -> ShipMessage {
    msg::pin(PinState::PinOk)
}

/// A DUT that requires [`PIN`], past the tool's `none`: it waits for the PIN.
fn dut_requiring(role: Role, config: ProtocolConfig) -> Tool {
    let mut p = params(role, Trust::Trusted);
    p.config = config;
    let mut tool = Tool::new(p);
    tool.dut.set_pin(required());
    drive_to_pin(&mut tool, role);
    assert_eq!(tool.next(), Some(required_ok()));
    tool.send(&msg::pin_none());
    tool
}

fn drive_to_pin(tool: &mut Tool, role: Role) {
    if role == Role::Client {
        assert_eq!(tool.next(), Some(ShipMessage::Cmi));
    }
    tool.send(&ShipMessage::Cmi);
    if role == Role::Server {
        assert_eq!(tool.next(), Some(ShipMessage::Cmi));
    }
    assert!(matches!(tool.next(), Some(ShipMessage::ConnectionHello(_))));
    tool.send(&msg::hello_ready(60_000));
    match role {
        Role::Server => {
            tool.send(&msg::announce_max());
            assert_eq!(tool.next(), Some(msg::select()));
            tool.send(&msg::select());
        }
        Role::Client => {
            assert_eq!(tool.next(), Some(msg::announce_max()));
            tool.send(&msg::select());
            assert_eq!(tool.next(), Some(msg::select()));
        }
    }
}

// ----- the wire form ----------------------------------------------------------------------------

#[test]
fn s13_4_4_3_pin_messages_wire_form() {
    let encoded = |m: &ShipMessage| String::from_utf8(codec::encode(m)[1..].to_vec()).unwrap();
    assert_eq!(
        encoded(&required_ok()),
        r#"{"connectionPinState":[{"pinState":"required"},{"inputPermission":"ok"}]}"#
    );
    assert_eq!(
        encoded(&msg::pin_input(PIN)),
        r#"{"connectionPinInput":[{"pin":"5555AAAAFF"}]}"#
    );
    assert_eq!(
        encoded(&msg::pin_error()),
        r#"{"connectionPinError":[{"error":1}]}"#
    );
    assert_eq!(codec::encode(&msg::pin_input(PIN))[0], 1, "control type");
    // Plain JSON decodes too; a value that is no PIN decodes as `pin: None` (a wrong PIN).
    let decoded = codec::decode(b"\x01{\"connectionPinInput\":{\"pin\":\"xyz\"}}").unwrap();
    assert_eq!(
        decoded,
        ShipMessage::ConnectionPinInput(ConnectionPinInput { pin: None })
    );
    let decoded = codec::decode(b"\x01{\"connectionPinError\":[{\"error\":1}]}").unwrap();
    assert_eq!(decoded, msg::pin_error());
}

#[test]
fn s13_4_4_3_pin_never_in_debug_of_messages_or_events() {
    let message = codec::decode(&codec::encode(&msg::pin_input(PIN))).unwrap();
    let printed = format!("{message:?}");
    assert!(!printed.contains(PIN), "{printed}");
    // Every event of a PIN exchange, printed.
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    tool.send(&msg::pin_input(WRONG));
    tool.send(&msg::pin_input(PIN));
    let printed = format!("{:?} {:?}", tool.events, tool.dut);
    assert!(
        !printed.contains(PIN) && !printed.contains(WRONG),
        "{printed}"
    );
}

// ----- this node requires a PIN -------------------------------------------------------------------

#[test]
fn s13_4_4_3_required_announced_with_input_ok_and_data_waits_for_the_pin() {
    for role in [Role::Server, Role::Client] {
        let mut tool = dut_requiring(role, ProtocolConfig::default());
        // The peer (no PIN of its own) may already be in data exchange: its access-methods
        // request is answered, its data is not delivered, and ours does not start.
        tool.send(&msg::am_request());
        tool.send(&msg::data("{\"early\":1}"));
        assert!(matches!(
            tool.take_all().as_slice(),
            [ShipMessage::AccessMethods(_)]
        ));
        assert!(tool.data().is_empty());
        assert_eq!(tool.state(), ConnectionState::Pin);
        assert!(tool.dut.send_data(b"{}", tool.now).is_err());

        tool.send(&msg::pin_input(PIN));
        assert_eq!(tool.take_all(), vec![pin_ok(), msg::am_request()]);
        assert_eq!(pin_events(&tool.events), vec![Event::PinVerified]);
        tool.send(&msg::am("Tool-Ship-Id"));
        assert_eq!(tool.state(), ConnectionState::Completed, "{role:?}");
        assert!(!tool.dut.peer_restricted());
    }
}

#[test]
fn s13_4_4_3_pin_letters_match_in_either_case() {
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    tool.send(&msg::pin_input("5555aaaaff"));
    assert_eq!(tool.next(), Some(pin_ok()));
}

#[test]
fn s13_4_4_3_wrong_pin_answered_with_connection_pin_error() {
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    tool.send(&msg::pin_input(WRONG));
    assert_eq!(tool.take_all(), vec![msg::pin_error()]);
    // A value that is no PIN at all counts the same.
    tool.send_bytes(b"\x01{\"connectionPinInput\":[{\"pin\":\"not a pin\"}]}");
    assert_eq!(tool.take_all(), vec![msg::pin_error()]);
    assert_eq!(
        pin_events(&tool.events),
        vec![
            Event::PinAttemptFailed {
                attempts: 1,
                penalty: None
            },
            Event::PinAttemptFailed {
                attempts: 2,
                penalty: None
            },
        ]
    );
    assert_eq!(tool.state(), ConnectionState::Pin);
    tool.send(&msg::pin_input(PIN));
    assert_eq!(tool.take_all(), vec![pin_ok(), msg::am_request()]);
    assert_eq!(tool.dut.pin_attempts(), 0, "a right PIN resets the count");
}

#[test]
fn s13_4_4_3_third_wrong_pin_costs_the_short_penalty() {
    let mut tool = dut_requiring(Role::Client, ProtocolConfig::default());
    for _ in 0..2 {
        tool.send(&msg::pin_input(WRONG));
        assert_eq!(tool.take_all(), vec![msg::pin_error()]);
    }
    tool.send(&msg::pin_input(WRONG));
    assert_eq!(tool.take_all(), vec![msg::pin_error(), required_busy()]);
    assert!(details(&tool).contains(&DetailedState::PinCheckBusyInit));
    // During the penalty even the right PIN is not verified: the answer is `busy` again.
    tool.advance(14 * SECOND);
    tool.send(&msg::pin_input(PIN));
    assert_eq!(tool.take_all(), vec![required_busy()]);
    assert!(tool.received.is_empty());
    tool.advance(SECOND - Duration::from_millis(1));
    assert!(tool.take_all().is_empty(), "not before 15 s");
    tool.advance(Duration::from_millis(1));
    assert_eq!(tool.take_all(), vec![required_ok()], "ok again at 15 s");
    tool.send(&msg::pin_input(PIN));
    assert_eq!(tool.take_all(), vec![pin_ok(), msg::am_request()]);
}

#[test]
fn s13_4_4_3_sixth_and_later_wrong_pins_cost_the_long_penalty() {
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    let mut penalties = Vec::new();
    for _ in 0..7 {
        tool.send(&msg::pin_input(WRONG));
        let answer = tool.take_all();
        assert_eq!(answer[0], msg::pin_error());
        let started = tool.now;
        if answer.len() > 1 {
            assert_eq!(answer[1], required_busy());
            // Wait for `ok`, measuring on the virtual clock.
            while tool.received.is_empty() {
                tool.advance(Duration::from_millis(500));
            }
            assert_eq!(tool.take_all(), vec![required_ok()]);
            penalties.push((tool.now - started).as_secs());
        } else {
            penalties.push(0);
        }
    }
    assert_eq!(penalties, vec![0, 0, 15, 15, 15, 90, 90]);
    assert_eq!(tool.state(), ConnectionState::Pin, "still open");
}

#[test]
fn s13_4_4_3_penalty_carries_over_from_an_earlier_connection() {
    let mut p = params(Role::Server, Trust::Trusted);
    p.config = ProtocolConfig::default();
    let mut tool = Tool::new(p);
    let mut pin = required();
    pin.failed_attempts = 5;
    pin.penalty_until = Some(tool.now + 40 * SECOND);
    tool.dut.set_pin(pin);
    drive_to_pin(&mut tool, Role::Server);
    assert_eq!(tool.next(), Some(required_busy()), "starts busy");
    tool.send(&msg::pin_none());
    tool.advance(40 * SECOND);
    assert_eq!(tool.take_all(), vec![required_ok()]);
    tool.send(&msg::pin_input(WRONG));
    assert_eq!(tool.take_all(), vec![msg::pin_error(), required_busy()]);
    assert!(pin_events(&tool.events).contains(&Event::PinAttemptFailed {
        attempts: 6,
        penalty: Some(90 * SECOND)
    }));
}

/// A penalty imposed from outside the connection (the hub's limits per source address and in
/// all): `busy` at once, nothing verified meanwhile, `ok` when it ends; a shorter hold than the
/// running penalty changes nothing.
#[test]
fn s13_4_4_3_a_held_pin_input_is_busy_until_the_hold_ends() {
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    let until = tool.now + 40 * SECOND;
    tool.dut.hold_pin_input(until, tool.now);
    tool.pump();
    assert_eq!(tool.take_all(), vec![required_busy()]);
    assert!(details(&tool).contains(&DetailedState::PinCheckBusyInit));
    tool.advance(10 * SECOND);
    tool.send(&msg::pin_input(PIN));
    assert_eq!(
        tool.take_all(),
        vec![required_busy()],
        "not verified meanwhile"
    );
    // A shorter hold, or one in the past, changes nothing.
    tool.dut.hold_pin_input(tool.now + SECOND, tool.now);
    tool.dut.hold_pin_input(tool.now, tool.now);
    tool.pump();
    assert!(tool.take_all().is_empty());
    tool.advance(30 * SECOND - Duration::from_millis(1));
    assert!(tool.take_all().is_empty(), "not before the hold ends");
    assert!(!tool.is_closed(), "the PIN wait is paused while held");
    tool.advance(Duration::from_millis(1));
    assert_eq!(tool.take_all(), vec![required_ok()]);
    tool.send(&msg::pin_input(PIN));
    assert_eq!(tool.take_all(), vec![pin_ok(), msg::am_request()]);
    // Once verified, a hold changes nothing.
    tool.dut.hold_pin_input(tool.now + 40 * SECOND, tool.now);
    tool.pump();
    assert!(tool.take_all().is_empty());
}

/// A hold given before the PIN step starts is announced as the step starts.
#[test]
fn s13_4_4_3_a_hold_before_the_pin_step_starts_busy() {
    let mut p = params(Role::Server, Trust::Trusted);
    p.config = ProtocolConfig::default();
    let mut tool = Tool::new(p);
    tool.dut.set_pin(required());
    let until = tool.now + 20 * SECOND;
    tool.dut.hold_pin_input(until, tool.now);
    tool.pump();
    drive_to_pin(&mut tool, Role::Server);
    assert_eq!(tool.next(), Some(required_busy()), "starts busy");
    tool.send(&msg::pin_none());
    tool.advance(20 * SECOND);
    assert_eq!(tool.take_all(), vec![required_ok()]);
}

#[test]
fn s13_4_4_3_pin_step_without_progress_times_out() {
    let mut tool = dut_requiring(Role::Server, ProtocolConfig::default());
    tool.advance(119 * SECOND);
    assert!(!tool.is_closed());
    tool.advance(SECOND);
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::Timeout(Timer::PinWait))
    );
}

#[test]
fn s13_4_4_3_pin_wait_pauses_during_our_penalty() {
    let mut config = ProtocolConfig::default();
    config.pin_wait = 20 * SECOND;
    config.pin_penalty_short_after = 1;
    config.pin_penalty_short = 60 * SECOND;
    let mut tool = dut_requiring(Role::Server, config);
    tool.send(&msg::pin_input(WRONG));
    assert_eq!(tool.take_all(), vec![msg::pin_error(), required_busy()]);
    tool.advance(59 * SECOND);
    assert!(!tool.is_closed(), "the penalty is not the peer's delay");
    tool.advance(SECOND);
    assert_eq!(tool.take_all(), vec![required_ok()]);
    tool.advance(20 * SECOND);
    assert_eq!(
        tool.closed_cause(),
        Some(&CloseCause::Timeout(Timer::PinWait))
    );
}

// ----- this node's PIN is optional --------------------------------------------------------------

#[test]
fn s13_4_4_3_optional_opens_at_once_and_restricts_until_the_pin() {
    for role in [Role::Client, Role::Server] {
        let mut tool = Tool::through_protocol_with_pin(role, optional());
        assert_eq!(
            tool.next(),
            Some(msg::pin_with(PinState::Optional, PinInputPermission::Ok))
        );
        tool.send(&msg::pin_none());
        assert_eq!(tool.take_all(), vec![msg::am_request()]);
        tool.send(&msg::am("Tool-Ship-Id"));
        assert_eq!(tool.state(), ConnectionState::Completed);
        assert!(tool.dut.peer_restricted());
        // The PIN arrives in data exchange.
        tool.send(&msg::pin_input(WRONG));
        assert_eq!(tool.take_all(), vec![msg::pin_error()]);
        assert!(tool.dut.peer_restricted());
        tool.send(&msg::pin_input(PIN));
        assert_eq!(tool.take_all(), vec![pin_ok()]);
        assert!(!tool.dut.peer_restricted());
        assert_eq!(tool.state(), ConnectionState::Completed, "stayed completed");
    }
}

#[test]
fn s13_4_4_3_pin_messages_stay_unexpected_when_no_pin_is_in_play() {
    let mut tool = Tool::established(Role::Server);
    tool.send(&msg::pin_input(PIN));
    assert!(matches!(
        tool.closed_cause(),
        Some(CloseCause::UnexpectedMessage { .. })
    ));
}

/// The peer requires a PIN; two engines; hostile input.
mod peer;
