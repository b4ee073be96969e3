//! Double connections, decided as pure functions (SHIP §12.2.3, docs/ship.md §7).
//!
//! Two nodes that find each other at once both dial; a node that rebooted leaves a stale
//! ("zombie") connection on the other side and dials again. Both raise one question: which
//! connection to a SKI survives. ship-hub's rule is the specification's, made fast and
//! starvation-proof:
//!
//! 1. The node with the **bigger SKI** decides and keeps the **most recent** connection (by the
//!    time its TCP connection started), closing every older one at once.
//! 2. The node with the **smaller SKI** never closes on its own first: it pings the older
//!    connections and waits a grace period (3 s); then it closes what did not answer, and of
//!    what is left keeps the most recent. A zombie is gone within the grace period, while a
//!    healthy double connection is normally settled by the bigger side long before.
//!
//! Because only one side acts on a live double connection, the two sides cannot close the two
//! different connections at once (the starvation that two eager rules produce).

use std::time::Instant;

use crate::Ski;
use crate::hub::runtime::handover::LinkId;

/// What the arbitration needs to know about one live link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkFacts {
    pub(crate) id: LinkId,
    /// When its TCP connection was accepted or dialled.
    pub(crate) started: Instant,
    /// Reached data exchange.
    pub(crate) completed: bool,
    /// Answered the last arbitration ping (links never pinged count as answering).
    pub(crate) answered_ping: bool,
}

/// The decision when a link joins others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arbitration {
    /// Close these links now (we have the bigger SKI).
    Close(Vec<LinkId>),
    /// Ping these (older) links and call [`after_grace`] when the grace period ends (we have
    /// the smaller SKI).
    PingAndWait(Vec<LinkId>),
}

/// The link to keep: the most recent; on equal start times the higher id (the later admitted).
fn newest(live: &[LinkFacts]) -> Option<LinkId> {
    live.iter().max_by_key(|l| (l.started, l.id)).map(|l| l.id)
}

/// Decides what to do when `live` (which includes the new link) holds more than one link to the
/// peer `remote`, seen from the node `local`.
pub(crate) fn on_new_link(local: Ski, remote: Ski, live: &[LinkFacts]) -> Arbitration {
    let keep = newest(live);
    let others: Vec<LinkId> = live
        .iter()
        .map(|l| l.id)
        .filter(|id| Some(*id) != keep)
        .collect();
    if local > remote {
        Arbitration::Close(others)
    } else {
        Arbitration::PingAndWait(others)
    }
}

/// After the grace period, on the smaller-SKI side: the links to close. Those that did not
/// answer go first; of the rest only the most recent stays.
pub(crate) fn after_grace(live: &[LinkFacts]) -> Vec<LinkId> {
    if live.len() < 2 {
        return Vec::new();
    }
    let answered: Vec<LinkFacts> = live.iter().copied().filter(|l| l.answered_ping).collect();
    let keep = newest(if answered.is_empty() { live } else { &answered });
    live.iter()
        .map(|l| l.id)
        .filter(|id| Some(*id) != keep)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::Duration;

    fn ski(byte: u8) -> Ski {
        Ski::from_bytes([byte; 20])
    }

    /// A live link `id` whose TCP connection started `started_ms` after a common base.
    fn link(id: LinkId, started_ms: u64, answered: bool) -> LinkFacts {
        static BASE: OnceLock<Instant> = OnceLock::new();
        LinkFacts {
            id,
            started: *BASE.get_or_init(Instant::now) + Duration::from_millis(started_ms),
            completed: false,
            answered_ping: answered,
        }
    }

    #[test]
    fn bigger_ski_keeps_the_most_recent_and_closes_the_rest() {
        let live = [link(1, 0, true), link(2, 5, true)];
        assert_eq!(
            on_new_link(ski(9), ski(1), &live),
            Arbitration::Close(vec![1])
        );
    }

    #[test]
    fn bigger_ski_closes_a_new_link_that_started_earlier() {
        // Our dial started before the peer's incoming connection but finished after it.
        let live = [link(1, 5, true), link(2, 0, true)];
        assert_eq!(
            on_new_link(ski(9), ski(1), &live),
            Arbitration::Close(vec![2])
        );
    }

    #[test]
    fn smaller_ski_only_pings_the_older_links() {
        let live = [link(1, 0, true), link(2, 5, true)];
        assert_eq!(
            on_new_link(ski(1), ski(9), &live),
            Arbitration::PingAndWait(vec![1])
        );
    }

    #[test]
    fn after_grace_closes_the_silent_zombie() {
        let live = [link(1, 0, false), link(2, 5, true)];
        assert_eq!(after_grace(&live), vec![1]);
    }

    #[test]
    fn after_grace_keeps_the_newest_of_the_answering() {
        let live = [link(1, 0, true), link(2, 5, true), link(3, 9, false)];
        // 3 is the newest but did not answer: it goes, and of 1 and 2 the newer stays.
        let mut closed = after_grace(&live);
        closed.sort();
        assert_eq!(closed, vec![1, 3]);
    }

    #[test]
    fn one_link_needs_no_decision() {
        assert!(after_grace(&[link(1, 0, false)]).is_empty());
    }

    #[test]
    fn both_sides_agree_on_the_survivor_for_crossing_dials() {
        // Seen from the bigger side A: its own dial (id 1) and B's incoming (id 2). Only A acts;
        // B pings and waits, and by the end of the grace period A's choice is all that is left.
        for (a_dial_ms, b_dial_ms) in [(0u64, 1u64), (1, 0), (0, 0), (7, 3)] {
            let a_view = [link(1, a_dial_ms, true), link(2, b_dial_ms, true)];
            let Arbitration::Close(closed_by_a) = on_new_link(ski(9), ski(1), &a_view) else {
                panic!("the bigger side decides")
            };
            assert_eq!(closed_by_a.len(), 1);
            let b_decision = on_new_link(ski(1), ski(9), &a_view);
            assert!(matches!(b_decision, Arbitration::PingAndWait(_)));
        }
    }
}
