//! Random interleavings, drops, duplicates, reorderings and delays of the messages between two
//! machines, plus injected stray messages: nothing panics, and each side ends either Completed
//! or closed with a reason, within the sum of the timers (plus T_hello_inc per prolongation).

use crate::support;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ship_hub::protocol::codec;
use ship_hub::protocol::message::*;
use ship_hub::protocol::{
    Connection, ConnectionState, Event, ProtocolConfig, Role, Transmit, Trust,
};
use support::{msg, params};

#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Message(Vec<u8>),
    Close,
}

struct Node {
    conn: Connection,
    /// Towards this node.
    inbox: VecDeque<Wire>,
    closed_event: usize,
    completed: bool,
    prolongation_requests: u32,
}

impl Node {
    fn new(role: Role, trust: Trust, now: Instant) -> Self {
        Node {
            conn: Connection::new(params(role, trust), now),
            inbox: VecDeque::new(),
            closed_event: 0,
            completed: false,
            prolongation_requests: 0,
        }
    }

    fn events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            assert_eq!(self.closed_event, 0, "no event after Closed: {event:?}");
            match event {
                Event::Closed(_) => self.closed_event += 1,
                Event::StateChanged {
                    state: ConnectionState::Completed,
                    ..
                } => self.completed = true,
                _ => {}
            }
        }
    }
}

struct Net {
    now: Instant,
    start: Instant,
    nodes: [Node; 2],
}

impl Net {
    fn flush(&mut self) {
        for i in 0..2 {
            while let Some(t) = self.nodes[i].conn.poll_transmit() {
                let wire = match t {
                    Transmit::Message(bytes) => {
                        if let Ok(ShipMessage::ConnectionHello(ConnectionHello {
                            prolongation_request: Some(true),
                            ..
                        })) = codec::decode(&bytes)
                        {
                            self.nodes[1 - i].prolongation_requests += 1;
                        }
                        Wire::Message(bytes)
                    }
                    Transmit::Close { code, reason } => {
                        assert!(code >= 1000 && reason.len() <= 123);
                        Wire::Close
                    }
                };
                self.nodes[1 - i].inbox.push_back(wire);
            }
            self.nodes[i].events();
        }
    }

    fn deliver(&mut self, to: usize, wire: Wire) {
        let now = self.now;
        let node = &mut self.nodes[to];
        match wire {
            Wire::Message(bytes) => node.conn.handle_message(&bytes, now),
            Wire::Close => node.conn.handle_transport_closed(now),
        }
        node.events();
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.nodes
            .iter()
            .filter_map(|n| n.conn.poll_timeout())
            .min()
    }

    fn fire_timers(&mut self) -> bool {
        let Some(next) = self.next_timeout() else {
            return false;
        };
        self.now = self.now.max(next);
        for node in &mut self.nodes {
            node.conn.handle_timeout(self.now);
            node.events();
        }
        true
    }

    fn step(&mut self, action: u8, extra: u8) {
        self.flush();
        let to = usize::from(action & 1);
        match action >> 1 {
            // deliver in order (most likely)
            0..=39 => {
                if let Some(w) = self.nodes[to].inbox.pop_front() {
                    self.deliver(to, w);
                }
            }
            // drop
            40..=49 => {
                if let Some(Wire::Close) = self.nodes[to].inbox.front() {
                    return;
                }
                self.nodes[to].inbox.pop_front();
            }
            // duplicate
            50..=59 => {
                if let Some(w @ Wire::Message(_)) = self.nodes[to].inbox.front().cloned() {
                    self.deliver(to, w);
                }
            }
            // reorder
            60..=69 => {
                let inbox = &mut self.nodes[to].inbox;
                if inbox.len() >= 2 && !inbox.contains(&Wire::Close) {
                    inbox.swap(0, 1);
                }
            }
            // delay: let time pass
            70..=89 => {
                let step = Duration::from_millis(u64::from(extra) * 500);
                let target = self.now + step;
                while self.next_timeout().is_some_and(|t| t <= target) {
                    self.fire_timers();
                    self.flush();
                }
                self.now = target;
            }
            // the application decides
            90..=99 => {
                let now = self.now;
                if extra.is_multiple_of(4) {
                    self.nodes[to].conn.deny_trust(now);
                } else {
                    self.nodes[to].conn.approve_trust(now);
                }
            }
            100..=104 => {
                let now = self.now;
                let _ = self.nodes[to].conn.send_data(b"{\"x\":1}", now);
            }
            105..=107 => {
                let now = self.now;
                self.nodes[to].conn.close(CloseReason::Unspecific, now);
            }
            // a stray message from the peer
            _ => {
                let stray = match extra % 9 {
                    0 => codec::encode(&msg::hello_ready(u32::from(extra) * 1000)),
                    1 => codec::encode(&msg::hello_prolongation_request()),
                    2 => codec::encode(&msg::announce_max()),
                    3 => codec::encode(&msg::select()),
                    4 => codec::encode(&msg::pin_none()),
                    5 => codec::encode(&msg::am_request()),
                    6 => codec::encode(&msg::data("{}")),
                    7 => vec![0xFF, 0x00],
                    _ => vec![0x02],
                };
                if matches!(stray.as_slice(), [1, ..]) && extra % 9 == 1 {
                    self.nodes[to].prolongation_requests += 1;
                }
                self.deliver(to, Wire::Message(stray));
            }
        }
    }

    /// No more faults: deliver everything in order and let timers run until nothing is left.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.flush();
            if let Some(w) = self.nodes[0].inbox.pop_front() {
                self.deliver(0, w);
                continue;
            }
            if let Some(w) = self.nodes[1].inbox.pop_front() {
                self.deliver(1, w);
                continue;
            }
            // a pending side that nobody approves ends by its own timer
            if !self.fire_timers() {
                return;
            }
        }
        panic!("did not settle");
    }
}

fn timer_sum(config: &ProtocolConfig) -> Duration {
    config.cmi_timeout
        + config.hello_init
        + config.hello_prolong_waiting_gap
        + 3 * config.handshake_wait
        + config.access_methods_wait
        + 2 * config.abort_close_delay
        + config.close_max_time
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_networks_end_completed_or_closed_with_reason(
        client_trusted in any::<bool>(),
        server_trusted in any::<bool>(),
        actions in prop::collection::vec((any::<u8>(), any::<u8>()), 0..160),
    ) {
        let trust = |t: bool| if t { Trust::Trusted } else { Trust::Pending };
        let now = Instant::now();
        let mut net = Net {
            now,
            start: now,
            nodes: [
                Node::new(Role::Client, trust(client_trusted), now),
                Node::new(Role::Server, trust(server_trusted), now),
            ],
        };
        for (action, extra) in actions {
            net.step(action, extra);
        }
        let faults_end = net.now;
        net.settle();
        for node in &net.nodes {
            let completed_and_open = node.conn.state() == ConnectionState::Completed
                && node.closed_event == 0;
            prop_assert!(
                completed_and_open || node.closed_event == 1,
                "state {:?}, closed events {}", node.conn.state(), node.closed_event
            );
            if node.closed_event == 1 {
                prop_assert!(node.conn.is_closed());
                prop_assert_eq!(node.conn.poll_timeout(), None);
            }
        }
        // Both completed, or both closed: a Completed side learns of the other's close.
        prop_assert_eq!(net.nodes[0].closed_event, net.nodes[1].closed_event);
        let config = ProtocolConfig::default();
        let prolongations = net.nodes[0].prolongation_requests + net.nodes[1].prolongation_requests;
        let bound = timer_sum(&config) + config.hello_inc * prolongations;
        // Once the network behaves, everything ends within the timers.
        let settling = net.now - faults_end;
        prop_assert!(settling <= bound, "settling took {:?} > bound {:?}", settling, bound);
    }

    #[test]
    fn fault_free_networks_settle_within_the_timer_sum(
        client_trusted in any::<bool>(),
        server_trusted in any::<bool>(),
    ) {
        let trust = |t: bool| if t { Trust::Trusted } else { Trust::Pending };
        let now = Instant::now();
        let mut net = Net {
            now,
            start: now,
            nodes: [
                Node::new(Role::Client, trust(client_trusted), now),
                Node::new(Role::Server, trust(server_trusted), now),
            ],
        };
        net.settle();
        let bound = timer_sum(&ProtocolConfig::default());
        prop_assert!(net.now - net.start <= bound);
        if client_trusted && server_trusted {
            prop_assert!(net.nodes.iter().all(|n| n.completed && n.closed_event == 0));
        } else {
            prop_assert!(net.nodes.iter().all(|n| n.closed_event == 1));
        }
    }
}
