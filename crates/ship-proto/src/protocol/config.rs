//! Roles, trust and timer configuration of one connection.

use std::time::Duration;

use crate::ShipId;

/// Which side of the connection we are (§13.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The dialling side: sends the CMI and `announceMax`.
    Client,
    /// The accepting side: answers the CMI and chooses with `select`.
    Server,
}

/// Our hello phase at the start (§13.4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trust {
    /// The peer is trusted: hello `ready`.
    Trusted,
    /// A user has to decide: hello `pending` until [`super::Connection::approve_trust`] or
    /// [`super::Connection::deny_trust`].
    Pending,
}

/// Every timer of the handshake. Defaults are the specification's recommended values
/// (SHIP §4.2 Table 1, §13.4.4.1.3); see `docs/protocol.md`.
///
/// The struct is `#[non_exhaustive]`: start from [`ProtocolConfig::default`] and assign fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtocolConfig {
    /// CMI wait (§13.4.3; permitted 10–30 s). Default 30 s.
    pub cmi_timeout: Duration,
    /// `T_hello_init`: how long we wait for the peer's `ready` (§13.4.4.1.3; permitted
    /// 60–240 s). Default 120 s.
    pub hello_init: Duration,
    /// `T_hello_inc`: how much a received prolongation request extends that wait. Default 120 s.
    pub hello_inc: Duration,
    /// `T_hello_prolong_thr_inc`: while pending, we ask for prolongation when the peer's
    /// remaining wait drops to this. Default 30 s.
    pub hello_prolong_threshold: Duration,
    /// `T_hello_prolong_waiting_gap`: how long we wait for the answer to our prolongation
    /// request before giving up. Default 15 s.
    pub hello_prolong_waiting_gap: Duration,
    /// `T_hello_prolong_min`: a peer wait shorter than this cannot be prolonged in time: we
    /// abort. Default 1 s.
    pub hello_prolong_min: Duration,
    /// Each protocol-handshake wait and the wait for the peer's first `connectionPinState`
    /// (§13.4.4.2, §13.4.4.3). Default 10 s.
    pub handshake_wait: Duration,
    /// How long the PIN step (§13.4.4.3) may go without progress once the peer's PIN state
    /// arrived: restarted by every PIN message sent or received and at the end of a penalty,
    /// paused while our own penalty runs. A person may be typing a PIN, so it is as long as
    /// `T_hello_init`. Expiry closes the connection ([`super::Timer::PinWait`]). Default 120 s.
    pub pin_wait: Duration,
    /// The penalty after the [`ProtocolConfig::pin_penalty_short_after`]-th wrong PIN
    /// (§13.4.4.3; SHIP permits 10–15 s). Default 15 s.
    pub pin_penalty_short: Duration,
    /// The penalty after the [`ProtocolConfig::pin_penalty_long_after`]-th wrong PIN and every
    /// later one. Default 90 s.
    pub pin_penalty_long: Duration,
    /// From this many consecutive wrong PINs on, each costs `pin_penalty_short`. Default 3.
    pub pin_penalty_short_after: u32,
    /// From this many consecutive wrong PINs on, each costs `pin_penalty_long`. Default 6.
    pub pin_penalty_long_after: u32,
    /// How long the peer may take to answer our access-methods request (§13.4.6). Default 10 s.
    pub access_methods_wait: Duration,
    /// Delay between our hello `aborted` and the close (4452). Default 1 s.
    pub abort_close_delay: Duration,
    /// The `maxTime` we announce in `connectionClose` and how long we wait for the confirm
    /// (§13.4.7). Default 500 ms.
    pub close_max_time: Duration,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            cmi_timeout: Duration::from_secs(30),
            hello_init: Duration::from_secs(120),
            hello_inc: Duration::from_secs(120),
            hello_prolong_threshold: Duration::from_secs(30),
            hello_prolong_waiting_gap: Duration::from_secs(15),
            hello_prolong_min: Duration::from_secs(1),
            handshake_wait: Duration::from_secs(10),
            pin_wait: Duration::from_secs(120),
            pin_penalty_short: Duration::from_secs(15),
            pin_penalty_long: Duration::from_secs(90),
            pin_penalty_short_after: 3,
            pin_penalty_long_after: 6,
            access_methods_wait: Duration::from_secs(10),
            abort_close_delay: Duration::from_secs(1),
            close_max_time: Duration::from_millis(500),
        }
    }
}

/// Everything a [`super::Connection`] needs to start.
#[derive(Debug, Clone)]
pub struct ConnectionParams {
    /// Dialling or accepting side.
    pub role: Role,
    /// Our SHIP ID, sent in `accessMethods` (§13.4.6).
    pub local_ship_id: ShipId,
    /// Our hello phase at the start.
    pub trust: Trust,
    /// The SHIP ID stored for the peer's SKI, if any: a different one closes with 4450.
    pub known_peer_ship_id: Option<ShipId>,
    /// Timers.
    pub config: ProtocolConfig,
}
