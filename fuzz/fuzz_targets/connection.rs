//! The handshake machine fed arbitrary messages and timer ticks, in both roles. The input is
//! split into records: a control byte (role/trust on the first record; afterwards what to do:
//! deliver, advance time, approve, deny, send data, close) followed by a length-prefixed
//! message. Never panics; Closed is emitted at most once and last.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ship_proto::ShipId;
use ship_proto::protocol::{
    CloseReason, Connection, ConnectionParams, Event, ProtocolConfig, Role, Transmit, Trust,
};

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut connection = Connection::new(
        ConnectionParams {
            role: if first & 1 == 0 { Role::Client } else { Role::Server },
            local_ship_id: ShipId::new("Fuzz-Ship-Id").unwrap(),
            trust: if first & 2 == 0 { Trust::Trusted } else { Trust::Pending },
            known_peer_ship_id: (first & 4 != 0).then(|| ShipId::new("Known").unwrap()),
            config: ProtocolConfig::default(),
        },
        now,
    );
    let mut closed = 0;
    while let Some((&control, tail)) = rest.split_first() {
        rest = tail;
        match control % 8 {
            0..=3 => {
                let len = usize::from(rest.first().copied().unwrap_or(0));
                let body = rest.get(1..1 + len).unwrap_or(rest.get(1..).unwrap_or(&[]));
                rest = rest.get(1 + body.len()..).unwrap_or(&[]);
                connection.handle_message(body, now);
            }
            4 => {
                now += Duration::from_millis(u64::from(control) * 997);
                connection.handle_timeout(now);
            }
            5 => {
                if control & 0x10 == 0 {
                    connection.approve_trust(now);
                } else {
                    connection.deny_trust(now);
                }
            }
            6 => {
                let _ = connection.send_data(b"{\"fuzz\":[1,2,3]}", now);
            }
            _ => {
                if control & 0x10 == 0 {
                    connection.close(CloseReason::Unspecific, now);
                } else {
                    connection.handle_transport_closed(now);
                }
            }
        }
        while let Some(transmit) = connection.poll_transmit() {
            if let Transmit::Close { reason, .. } = transmit {
                assert!(reason.len() <= 123);
            }
        }
        while let Some(event) = connection.poll_event() {
            assert_eq!(closed, 0, "event after Closed");
            if let Event::Closed(_) = event {
                closed += 1;
            }
        }
        if let Some(deadline) = connection.poll_timeout() {
            assert!(deadline >= now - Duration::from_secs(3600));
        }
    }
});
