//! Shared helpers for the protocol tests: a virtual clock, a `Pair` of connections pumped
//! against each other (after quinn-proto's test `Pair`), and a `Tool` that plays a scripted
//! peer against one connection (the conformance tester's role).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ship_hub::ShipId;
use ship_hub::protocol::codec;
use ship_hub::protocol::message::ShipMessage;
use ship_hub::protocol::{
    CloseCause, Connection, ConnectionParams, ConnectionState, Event, ProtocolConfig, Role,
    Transmit, Trust,
};

pub fn ship_id(text: &str) -> ShipId {
    ShipId::new(text).unwrap()
}

pub fn params(role: Role, trust: Trust) -> ConnectionParams {
    let id = match role {
        Role::Client => "Client-Ship-Id",
        Role::Server => "Server-Ship-Id",
    };
    ConnectionParams {
        role,
        local_ship_id: ship_id(id),
        trust,
        known_peer_ship_id: None,
        config: ProtocolConfig::default(),
    }
}

/// One side of a [`Pair`].
pub struct Side {
    pub conn: Connection,
    /// Messages in flight towards this side.
    pub inbox: VecDeque<Vec<u8>>,
    /// Every event this side emitted.
    pub events: Vec<Event>,
    /// Every message this side transmitted, decoded where possible.
    pub sent: Vec<Vec<u8>>,
    /// The WebSocket close this side sent.
    pub close: Option<(u16, String)>,
    /// Whether the peer's transport close reached this side.
    pub transport_closed: bool,
}

impl Side {
    fn new(conn: Connection) -> Self {
        Side {
            conn,
            inbox: VecDeque::new(),
            events: Vec::new(),
            sent: Vec::new(),
            close: None,
            transport_closed: false,
        }
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            self.events.push(event);
        }
    }

    pub fn closed_cause(&self) -> Option<&CloseCause> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(cause) => Some(cause),
            _ => None,
        })
    }

    pub fn states(&self) -> Vec<ConnectionState> {
        let mut states: Vec<ConnectionState> = Vec::new();
        for event in &self.events {
            if let Event::StateChanged { state, .. } = event
                && states.last() != Some(state)
            {
                states.push(*state);
            }
        }
        states
    }

    pub fn data(&self) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn sent_messages(&self) -> Vec<ShipMessage> {
        self.sent
            .iter()
            .filter_map(|bytes| codec::decode(bytes).ok())
            .collect()
    }
}

/// Two connections with a virtual clock between them.
pub struct Pair {
    pub now: Instant,
    pub client: Side,
    pub server: Side,
}

impl Pair {
    pub fn new(client_trust: Trust, server_trust: Trust) -> Self {
        Self::with_params(
            params(Role::Client, client_trust),
            params(Role::Server, server_trust),
        )
    }

    pub fn with_params(client: ConnectionParams, server: ConnectionParams) -> Self {
        let now = Instant::now();
        Pair {
            now,
            client: Side::new(Connection::new(client, now)),
            server: Side::new(Connection::new(server, now)),
        }
    }

    pub fn side(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Moves transmits of `from` into the other side's inbox. Returns whether anything moved.
    fn flush(&mut self, from: Role) -> bool {
        let (src, dst) = match from {
            Role::Client => (&mut self.client, &mut self.server),
            Role::Server => (&mut self.server, &mut self.client),
        };
        let mut moved = false;
        while let Some(transmit) = src.conn.poll_transmit() {
            moved = true;
            match transmit {
                Transmit::Message(bytes) => {
                    src.sent.push(bytes.clone());
                    dst.inbox.push_back(bytes);
                }
                Transmit::Close { code, reason } => {
                    src.close = Some((code, reason));
                    // The close frame travels behind the messages already in flight.
                    dst.inbox.push_back(Vec::from(&b"<close>"[..]));
                }
            }
        }
        src.collect_events();
        moved
    }

    /// Delivers one message from `to`'s inbox. Returns whether anything was delivered.
    fn deliver_one(&mut self, to: Role) -> bool {
        let now = self.now;
        let side = self.side(to);
        let Some(bytes) = side.inbox.pop_front() else {
            return false;
        };
        if bytes == b"<close>" {
            side.transport_closed = true;
            side.conn.handle_transport_closed(now);
        } else {
            side.conn.handle_message(&bytes, now);
        }
        side.collect_events();
        true
    }

    /// Pumps messages both ways until nothing moves.
    pub fn drive(&mut self) {
        loop {
            let mut progress = self.flush(Role::Client);
            progress |= self.flush(Role::Server);
            progress |= self.deliver_one(Role::Server);
            progress |= self.deliver_one(Role::Client);
            if !progress {
                break;
            }
        }
    }

    /// The earliest timer of either side.
    pub fn next_timeout(&self) -> Option<Instant> {
        [
            self.client.conn.poll_timeout(),
            self.server.conn.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances the virtual clock by `duration`, firing timers on the way.
    pub fn advance(&mut self, duration: Duration) {
        let target = self.now + duration;
        self.drive();
        while let Some(next) = self.next_timeout().filter(|t| *t <= target) {
            self.now = next.max(self.now);
            let now = self.now;
            self.client.conn.handle_timeout(now);
            self.server.conn.handle_timeout(now);
            self.drive();
        }
        self.now = target;
    }
}

/// A scripted peer (the conformance tool) against one connection under test (the DUT).
pub struct Tool {
    pub now: Instant,
    pub dut: Connection,
    /// Messages the DUT sent that the test has not looked at yet.
    pub received: VecDeque<Vec<u8>>,
    pub events: Vec<Event>,
    pub close: Option<(u16, String)>,
}

impl Tool {
    pub fn new(params: ConnectionParams) -> Self {
        let now = Instant::now();
        let mut tool = Tool {
            now,
            dut: Connection::new(params, now),
            received: VecDeque::new(),
            events: Vec::new(),
            close: None,
        };
        tool.pump();
        tool
    }

    pub fn with_config(role: Role, trust: Trust, config: ProtocolConfig) -> Self {
        let mut p = params(role, trust);
        p.config = config;
        Self::new(p)
    }

    pub fn pump(&mut self) {
        while let Some(transmit) = self.dut.poll_transmit() {
            match transmit {
                Transmit::Message(bytes) => self.received.push_back(bytes),
                Transmit::Close { code, reason } => self.close = Some((code, reason)),
            }
        }
        while let Some(event) = self.dut.poll_event() {
            self.events.push(event);
        }
    }

    /// The tool sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.dut.handle_message(bytes, self.now);
        self.pump();
    }

    /// The tool sends a message.
    pub fn send(&mut self, message: &ShipMessage) {
        self.send_bytes(&codec::encode(message));
    }

    /// Advances the clock by `duration`, firing the DUT's timers on the way.
    pub fn advance(&mut self, duration: Duration) {
        let target = self.now + duration;
        while let Some(next) = self.dut.poll_timeout().filter(|t| *t <= target) {
            self.now = next.max(self.now);
            self.dut.handle_timeout(self.now);
            self.pump();
        }
        self.now = target;
    }

    /// The next message the DUT sent, decoded.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<ShipMessage> {
        let bytes = self.received.pop_front()?;
        Some(
            codec::decode(&bytes).unwrap_or_else(|e| panic!("DUT sent undecodable {bytes:?}: {e}")),
        )
    }

    /// Takes every message the DUT sent so far.
    pub fn take_all(&mut self) -> Vec<ShipMessage> {
        std::iter::from_fn(|| self.next()).collect()
    }

    /// Whether the DUT has sent its WebSocket close.
    pub fn is_closed(&self) -> bool {
        self.close.is_some()
    }

    pub fn closed_cause(&self) -> Option<&CloseCause> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(cause) => Some(cause),
            _ => None,
        })
    }

    pub fn state(&self) -> ConnectionState {
        self.dut.state()
    }

    pub fn data(&self) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }
}

// ----- message constructors -----------------------------------------------------------------

pub mod msg {
    use serde_json::value::RawValue;
    use ship_hub::protocol::message::*;

    pub fn hello(
        phase: HelloPhase,
        waiting: Option<u32>,
        prolongation: Option<bool>,
    ) -> ShipMessage {
        ShipMessage::ConnectionHello(ConnectionHello {
            phase,
            waiting,
            prolongation_request: prolongation,
        })
    }
    pub fn hello_ready(waiting: u32) -> ShipMessage {
        hello(HelloPhase::Ready, Some(waiting), None)
    }
    pub fn hello_pending(waiting: u32) -> ShipMessage {
        hello(HelloPhase::Pending, Some(waiting), None)
    }
    pub fn hello_prolongation_request() -> ShipMessage {
        hello(HelloPhase::Pending, None, Some(true))
    }
    pub fn hello_aborted() -> ShipMessage {
        hello(HelloPhase::Aborted, None, None)
    }
    pub fn announce_max() -> ShipMessage {
        ShipMessage::ProtocolHandshake(ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax))
    }
    pub fn select() -> ShipMessage {
        ShipMessage::ProtocolHandshake(ProtocolHandshake::ship_1_0(HandshakeType::Select))
    }
    pub fn handshake_error(code: HandshakeErrorCode) -> ShipMessage {
        ShipMessage::ProtocolHandshakeError(ProtocolHandshakeError { error: code })
    }
    pub fn pin(state: PinState) -> ShipMessage {
        ShipMessage::ConnectionPinState(ConnectionPinState {
            pin_state: state,
            input_permission: None,
        })
    }
    pub fn pin_none() -> ShipMessage {
        pin(PinState::None)
    }
    pub fn pin_with(state: PinState, permission: PinInputPermission) -> ShipMessage {
        ShipMessage::ConnectionPinState(ConnectionPinState {
            pin_state: state,
            input_permission: Some(permission),
        })
    }
    pub fn pin_input(text: &str) -> ShipMessage {
        ShipMessage::ConnectionPinInput(ConnectionPinInput {
            pin: Some(ship_hub::protocol::Pin::new(text).unwrap()),
        })
    }
    pub fn pin_error() -> ShipMessage {
        ShipMessage::ConnectionPinError(ConnectionPinError::WRONG_PIN)
    }
    pub fn am_request() -> ShipMessage {
        ShipMessage::AccessMethodsRequest
    }
    pub fn am(id: &str) -> ShipMessage {
        ShipMessage::AccessMethods(AccessMethods {
            id: Some(id.to_owned()),
        })
    }
    pub fn data(payload: &str) -> ShipMessage {
        ShipMessage::Data(Data {
            protocol_id: "ee1.0".to_owned(),
            payload: RawValue::from_string(payload.to_owned()).unwrap(),
            extension: None,
        })
    }
    pub fn close_announce(max_time: u32, reason: CloseReason) -> ShipMessage {
        ShipMessage::ConnectionClose(ConnectionClose {
            phase: ClosePhase::Announce,
            max_time: Some(max_time),
            reason: Some(reason),
        })
    }
    pub fn close_confirm() -> ShipMessage {
        ShipMessage::ConnectionClose(ConnectionClose {
            phase: ClosePhase::Confirm,
            max_time: None,
            reason: None,
        })
    }
}

pub const TOOL_SHIP_ID: &str = "Tool-Ship-Id";

impl Tool {
    /// A trusting DUT in `role`, driven through CMI; the DUT's hello is left unread.
    pub fn through_cmi(role: Role) -> Self {
        let mut tool = Tool::new(params(role, Trust::Trusted));
        if role == Role::Client {
            assert_eq!(tool.next(), Some(ShipMessage::Cmi));
        }
        tool.send(&ShipMessage::Cmi);
        if role == Role::Server {
            assert_eq!(tool.next(), Some(ShipMessage::Cmi));
        }
        tool
    }

    /// Through hello: the DUT's hello and (client) announceMax are consumed.
    pub fn through_hello(role: Role) -> Self {
        let mut tool = Self::through_cmi(role);
        assert!(matches!(tool.next(), Some(ShipMessage::ConnectionHello(_))));
        tool.send(&msg::hello_ready(60_000));
        if role == Role::Client {
            assert_eq!(tool.next(), Some(msg::announce_max()));
        }
        tool
    }

    /// Through the protocol handshake: the DUT's select/echo and PIN state are consumed.
    pub fn through_protocol(role: Role) -> Self {
        let mut tool = Self::through_hello(role);
        match role {
            Role::Server => {
                tool.send(&msg::announce_max());
                assert_eq!(tool.next(), Some(msg::select()));
                tool.send(&msg::select());
            }
            Role::Client => {
                tool.send(&msg::select());
                assert_eq!(tool.next(), Some(msg::select()));
            }
        }
        assert_eq!(tool.next(), Some(msg::pin_none()));
        tool
    }

    /// Through the protocol handshake with a DUT whose PIN side is `pin`: the DUT's select/echo
    /// are consumed, its PIN state is left unread.
    pub fn through_protocol_with_pin(role: Role, pin: ship_hub::protocol::PinParams) -> Self {
        let mut tool = Tool::new(params(role, Trust::Trusted));
        tool.dut.set_pin(pin);
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
        tool
    }

    /// Through PIN: the DUT's access-methods request is consumed, not yet answered.
    pub fn through_pin(role: Role) -> Self {
        let mut tool = Self::through_protocol(role);
        tool.send(&msg::pin_none());
        assert_eq!(tool.next(), Some(msg::am_request()));
        tool
    }

    /// Established: the DUT's access-methods request answered, state Completed.
    pub fn established(role: Role) -> Self {
        let mut tool = Self::through_pin(role);
        tool.send(&msg::am(TOOL_SHIP_ID));
        assert_eq!(tool.state(), ConnectionState::Completed);
        assert!(tool.received.is_empty());
        tool
    }
}
