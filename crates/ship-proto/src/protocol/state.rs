//! The connection states the application sees and the detailed protocol states (§6 of
//! docs/ship.md; the detailed numbering is the one ship-go logs, after SHIP §13.4).

/// The ten connection states an application sees (docs/ship.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum ConnectionState {
    /// No connection: after our own abort or a graceful close.
    None = 0,
    /// Paired and waiting for a dial slot (set by the hub, never by [`super::Connection`]).
    Queued = 1,
    /// CMI in progress (§13.4.3).
    Initiated = 2,
    /// We are in hello `pending`: a user must decide whether to trust the peer (§13.4.4.1).
    ReceivedPairingRequest = 3,
    /// Hello, protocol handshake or access methods running.
    InProgress = 4,
    /// Hello OK: both sides trust each other (§13.4.4.1).
    Trusted = 5,
    /// PIN exchange (§13.4.4.3).
    Pin = 6,
    /// Access methods answered: data exchange (§13.4.5, §13.4.6).
    Completed = 7,
    /// The peer aborted hello, or closed while we waited in hello.
    RemoteDeniedTrust = 8,
    /// The connection failed; [`super::Event::Closed`] carries the cause.
    Error = 9,
}

/// The detailed protocol states (SHIP §13.4), numbered as ship-go logs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum DetailedState {
    // CMI, §13.4.3
    /// CMI not started yet (§13.4.3).
    CmiInitStart = 0,
    /// Client: sending its CMI.
    CmiClientSend = 1,
    /// Client: waiting for the server's CMI.
    CmiClientWait = 2,
    /// Client: checking the server's CMI.
    CmiClientEvaluate = 3,
    /// Server: waiting for the client's CMI.
    CmiServerWait = 4,
    /// Server: checking the client's CMI.
    CmiServerEvaluate = 5,
    // Hello, §13.4.4.1
    /// Hello started (§13.4.4.1).
    Hello = 6,
    /// We are ready: sending hello `ready`.
    HelloReadyInit = 7,
    /// We are ready: waiting for the peer's `ready`.
    HelloReadyListen = 8,
    /// We were ready and our wait ran out.
    HelloReadyTimeout = 9,
    /// We are pending: sending hello `pending`.
    HelloPendingInit = 10,
    /// We are pending: the user decides (ReceivedPairingRequest).
    HelloPendingListen = 11,
    /// We were pending and a wait ran out.
    HelloPendingTimeout = 12,
    /// Both sides ready.
    HelloOk = 13,
    /// We sent hello `aborted` and close after the abort delay.
    HelloAbort = 14,
    /// Our abort is done: the connection is closed.
    HelloAbortDone = 15,
    /// The peer sent hello `aborted`.
    HelloRemoteAbortDone = 16,
    /// Closed after the peer stayed pending (unused by ship-hub).
    HelloRejected = 17,
    // Protocol handshake, §13.4.4.2
    /// Server: protocol handshake started (§13.4.4.2).
    ProtHServerInit = 18,
    /// Client: protocol handshake started, sending `announceMax`.
    ProtHClientInit = 19,
    /// Server: waiting for `announceMax`.
    ProtHServerListenProposal = 20,
    /// Server: waiting for the echo of its `select`.
    ProtHServerListenConfirm = 21,
    /// Client: waiting for `select`.
    ProtHClientListenChoice = 22,
    /// A protocol-handshake wait ran out.
    ProtHTimeout = 23,
    /// Client: protocol agreed.
    ProtHClientOk = 24,
    /// Server: protocol agreed.
    ProtHServerOk = 25,
    // PIN, §13.4.4.3
    /// PIN check started, our state sent (§13.4.4.3).
    PinCheckInit = 26,
    /// Waiting for the peer's PIN state.
    PinCheckListen = 27,
    /// The PIN step failed (the peer's PIN requirement was refused).
    PinCheckError = 28,
    /// Our PIN penalty runs: we announced `inputPermission` `busy`.
    PinCheckBusyInit = 29,
    /// The peer announced `busy`: we wait for its `ok` before sending a PIN.
    PinCheckBusyWait = 30,
    /// Both PIN requirements are satisfied: data exchange opens.
    PinCheckOk = 31,
    /// The peer requires a PIN we do not have: the application is asked.
    PinAskInit = 32,
    /// We sent a PIN and wait for the peer's verdict.
    PinAskProcess = 33,
    /// The peer's PIN is optional and we sent none: data flows, the peer restricts us.
    PinAskRestricted = 34,
    /// The peer accepted our PIN (`pinOk`).
    PinAskOk = 35,
    // Access methods, §13.4.6 (in parallel with data exchange, §13.4.5)
    /// Our access-methods request is pending; data already flows.
    AccessMethodsRequest = 36,
    /// The peer's access methods were accepted.
    Approved = 37,
    /// Data exchange with a known peer SHIP ID.
    Complete = 38,
    /// The connection failed.
    Error = 39,
}

impl DetailedState {
    /// The application state while the handshake is in this detailed state (ship-go's
    /// mapping, except that the server's CMI states are InProgress). After a close, [`super::Connection`] reports the close's own state instead
    /// (None, RemoteDeniedTrust or Error), keeping the last detailed state.
    pub fn connection_state(self) -> ConnectionState {
        use DetailedState::*;
        match self {
            // Initiated means "this side dialled; CMI in progress" (docs/ship.md §6); the
            // accepting side's CMI is already handshake work: InProgress.
            CmiInitStart | CmiClientSend | CmiClientWait | CmiClientEvaluate => {
                ConnectionState::Initiated
            }
            HelloPendingListen => ConnectionState::ReceivedPairingRequest,
            HelloOk => ConnectionState::Trusted,
            HelloAbort | HelloAbortDone => ConnectionState::None,
            HelloRemoteAbortDone | HelloRejected => ConnectionState::RemoteDeniedTrust,
            PinCheckInit | PinCheckListen | PinCheckError | PinCheckBusyInit | PinCheckBusyWait
            | PinCheckOk | PinAskInit | PinAskProcess | PinAskRestricted | PinAskOk => {
                ConnectionState::Pin
            }
            Complete => ConnectionState::Completed,
            Error => ConnectionState::Error,
            _ => ConnectionState::InProgress,
        }
    }

    /// The number ship-go logs for this state.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}
