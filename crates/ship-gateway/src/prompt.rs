//! Asking the user on the terminal whether to trust a peer that wants to pair.
//!
//! The gateway's events task runs on the tokio runtime and must not block, so
//! [`crate::hub_events::Follower`] hands each request to this thread and reads on (the peer
//! waits in hello `pending`). The thread shows the peer's SKI, and the name, brand,
//! model and type its mDNS record announces when they are known, reads `y`/`n`
//! from stdin and answers with [`Hub::approve`] or [`Hub::deny`]. Only used when stdin is a
//! terminal.
//!
//! Only live requests are shown: a request whose peer gave up (closed, timed out, was paired
//! another way) while it waited in the queue is dropped without a question, and a request that
//! ends while its question is on the screen is announced, saying what happened (approved with
//! `ship-gateway approve`, paired with `pair`, denied, timed out, the device gave up), and the
//! next one is shown. So a burst of short-lived strangers costs the user no questions. An
//! answer counts only for the question on the screen: a line typed before a question was shown
//! is ignored, so a `y` meant for one device never approves the next.
//!
//! A PIN question is never dropped: once trust is settled the hub asks for the PIN, and that
//! question replaces the device's trust question (on the screen or queued), and goes first. The
//! PIN is typed without echo.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ship_hub::Ski;
use ship_hub::hub::Hub;
use ship_hub::protocol::{ConnectionState, Pin};

use crate::api::live::RequestEnd;
use crate::escape::Escaped;
use crate::events::{Event, EventLog};

/// One question for the user: whether to trust a peer, or (`pin`) the PIN a trusted peer
/// requires (SHIP §13.4.4.3).
#[derive(Debug, Clone)]
pub(crate) struct PairingPrompt {
    pub(crate) ski: Ski,
    pub(crate) address: SocketAddr,
    pub(crate) name: Option<String>,
    pub(crate) brand: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) device_type: Option<String>,
    /// A PIN question, not a trust question.
    pub(crate) pin: Option<PinAsk>,
}

/// What a PIN question knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PinAsk {
    /// The peer rejected the PIN sent before.
    pub(crate) rejected: bool,
}

/// How often the request on the screen is checked for having ended.
const LIVENESS_POLL: Duration = Duration::from_millis(200);

/// How long a queued request may take to show as pending in the hub before it counts as ended.
/// The hub publishes the request before it asks, so this is only a safety margin.
const PUBLISH_GRACE: Duration = Duration::from_secs(1);

/// `0123456789abcdef…` → `0123 4567 89ab …`, easier to compare with a device's display.
pub(crate) fn grouped(ski: Ski) -> String {
    let text = ski.to_string();
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The question shown for `request`. The name, brand, model and type come from the network
/// (mDNS): they are escaped, so they can neither start a line of their own nor hide the SKI.
fn question(request: &PairingPrompt) -> String {
    let name = match &request.name {
        Some(name) => Escaped(name).to_string(),
        None => "an unnamed device".to_owned(),
    };
    if let Some(ask) = request.pin {
        return format!(
            "\n{}The device {name} at {}\n  SKI {}\nrequires a PIN (8 to 16 hex digits, usually on \
             its label). Type the PIN, or an empty line to refuse: ",
            if ask.rejected {
                "The PIN sent was wrong. "
            } else {
                ""
            },
            request.address,
            grouped(request.ski)
        );
    }
    let product: Vec<String> = [&request.brand, &request.model]
        .into_iter()
        .flatten()
        .map(|text| Escaped(text).to_string())
        .collect();
    let mut about = product.join(" ");
    if let Some(kind) = &request.device_type {
        if !about.is_empty() {
            about.push_str(", ");
        }
        about.push_str(&Escaped(kind).to_string());
    }
    let about = if about.is_empty() {
        String::new()
    } else {
        format!(" ({about})")
    };
    format!(
        "\nPairing request from {name}{about} at {}\n  SKI {}\nThe name and model are what the \
         device announces (anyone can claim them): compare the SKI with the one the device \
         shows. Trust this device? [y/N] ",
        request.address,
        grouped(request.ski)
    )
}

/// The notice shown when the request on the screen ends before it was answered: what happened
/// (`end`, as far as it is known), and whether that is worth a warning (nobody decided it).
fn ended_notice(request: &PairingPrompt, end: Option<RequestEnd>, paired: bool) -> (String, bool) {
    let ski = grouped(request.ski);
    if request.pin.is_some() {
        return if paired {
            (
                format!("\nThe PIN request of {ski} was answered elsewhere; it is connected."),
                false,
            )
        } else {
            (
                format!(
                    "\nThe PIN request of {ski} ended before it was answered (it timed out or \
                     the device closed the connection)."
                ),
                true,
            )
        };
    }
    match end {
        Some(end) => (
            format!(
                "\nThe pairing request from {ski} {}{}",
                end.words(),
                if end.decided() {
                    "; no need to answer it here."
                } else {
                    "."
                }
            ),
            !end.decided(),
        ),
        None if paired => (
            format!("\nThe pairing request from {ski} was settled elsewhere: it is paired."),
            false,
        ),
        None => (
            format!(
                "\nThe pairing request from {ski} {}.",
                RequestEnd::Left.words()
            ),
            true,
        ),
    }
}

/// What the prompt thread waits for.
#[derive(Debug)]
enum Input {
    /// A new pairing request.
    Ask(PairingPrompt),
    /// A line typed on the terminal, and when it was read.
    Line(String, Instant),
    /// Stdin is closed: nobody can answer any more.
    Closed,
}

/// Whether a request still waits for the user's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// It waits (hello `pending`).
    Pending,
    /// It is over (the peer left, or it was decided another way).
    Ended,
    /// Not known yet: the hub has not published the request's state.
    Unknown,
}

fn liveness(hub: &Hub, request: &PairingPrompt) -> Liveness {
    use ConnectionState as S;
    match (request.pin.is_some(), hub.connection_state(request.ski)) {
        // A trust question waits in hello `pending`, a PIN question in the PIN step.
        (false, S::ReceivedPairingRequest) | (true, S::Pin) => Liveness::Pending,
        // The states before: the hub asked, but its state may lag for an instant.
        (false, S::Initiated | S::InProgress)
        | (true, S::Initiated | S::InProgress | S::Trusted) => Liveness::Unknown,
        _ => Liveness::Ended,
    }
}

/// What the prompt loop does to the outside world; the hub and the terminal in the gateway, a
/// recording in the tests.
trait Terminal {
    /// Whether `ski`'s request still waits.
    fn liveness(&self, request: &PairingPrompt) -> Liveness;
    /// Shows `text` on the terminal.
    fn show(&mut self, text: &str);
    /// Applies the user's answer (or a refusal when nobody can answer).
    fn answer(&mut self, request: &PairingPrompt, approve: bool);
    /// Applies the user's answer to a PIN question: the line typed (`None`: nobody can answer).
    fn answer_pin(&mut self, request: &PairingPrompt, line: Option<&str>) {
        self.answer(request, line.is_some_and(|l| !l.trim().is_empty()));
    }
    /// Reports a request that ended while it was on the screen.
    fn ended(&mut self, request: &PairingPrompt);
    /// Input is secret (a PIN): not echoed while `on`.
    fn secret_input(&mut self, _on: bool) {}
}

/// The prompt's loop: runs until every sender of `inputs` is gone.
fn prompt_loop(inputs: &mpsc::Receiver<Input>, terminal: &mut impl Terminal, grace: Duration) {
    let mut queue: VecDeque<PairingPrompt> = VecDeque::new();
    // The request on the screen and when it was shown.
    let mut shown: Option<(PairingPrompt, Instant)> = None;
    let mut closed = false;
    loop {
        if shown.is_none() {
            while let Some(request) = queue.pop_front() {
                if closed {
                    if request.pin.is_some() {
                        terminal.answer_pin(&request, None);
                    } else {
                        terminal.answer(&request, false);
                    }
                    continue;
                }
                if wait_until_known(terminal, &request, grace) == Liveness::Pending {
                    let since = Instant::now();
                    // Echo off before the question appears: whatever is typed once it is on
                    // the screen is never shown.
                    if request.pin.is_some() {
                        terminal.secret_input(true);
                    }
                    terminal.show(&question(&request));
                    shown = Some((request, since));
                    break;
                }
                tracing::debug!(ski = %request.ski, "pairing request ended before it was shown");
            }
        }
        let input = if shown.is_some() {
            match inputs.recv_timeout(LIVENESS_POLL) {
                Ok(input) => Some(input),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match inputs.recv() {
                Ok(input) => Some(input),
                Err(_) => return,
            }
        };
        match input {
            Some(Input::Ask(request)) if request.pin.is_some() => {
                // The hub asks for a PIN only once trust is settled: the device's trust question
                // (queued, or on the screen) is over, and so is an earlier PIN question of it.
                queue.retain(|q| q.ski != request.ski);
                if let Some((old, _)) = shown.take_if(|(s, _)| s.ski == request.ski) {
                    if old.pin.is_some() {
                        terminal.secret_input(false);
                    } else {
                        terminal.ended(&old);
                    }
                }
                // A PIN wait is short (`pin_wait`): it goes first.
                queue.push_front(request);
            }
            Some(Input::Ask(request)) => {
                let duplicate = shown.as_ref().is_some_and(|(s, _)| s.ski == request.ski)
                    || queue.iter().any(|q| q.ski == request.ski);
                if !duplicate {
                    queue.push_back(request);
                }
            }
            Some(Input::Line(text, at)) => match shown.take() {
                Some((request, since)) if at >= since && request.pin.is_some() => {
                    terminal.secret_input(false);
                    terminal.answer_pin(&request, Some(&text));
                }
                Some((request, since)) if at >= since => {
                    let approve = matches!(text.trim(), "y" | "Y" | "yes" | "YES" | "Yes");
                    terminal.answer(&request, approve);
                }
                // Typed before this question was on the screen: not an answer to it.
                other => shown = other,
            },
            Some(Input::Closed) => {
                closed = true;
                if let Some((request, _)) = shown.take() {
                    if request.pin.is_some() {
                        terminal.secret_input(false);
                        terminal.answer_pin(&request, None);
                    } else {
                        terminal.answer(&request, false);
                    }
                }
            }
            None => {
                if let Some((request, _)) = &shown
                    && terminal.liveness(request) == Liveness::Ended
                {
                    if request.pin.is_some() {
                        terminal.secret_input(false);
                    }
                    terminal.ended(request);
                    shown = None;
                }
            }
        }
    }
}

/// Waits (at most `grace`) until the request's state is known.
fn wait_until_known(
    terminal: &impl Terminal,
    request: &PairingPrompt,
    grace: Duration,
) -> Liveness {
    let started = Instant::now();
    loop {
        match terminal.liveness(request) {
            Liveness::Unknown if started.elapsed() < grace => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Liveness::Unknown => return Liveness::Ended,
            known => return known,
        }
    }
}

/// The gateway's terminal: stderr for the questions, the hub for the answers.
struct GatewayTerminal {
    hub: Hub,
    log: Arc<EventLog>,
    /// Where a "no" starts the peer's cooling-off.
    live: Arc<crate::api::live::Live>,
}

impl Terminal for GatewayTerminal {
    fn liveness(&self, request: &PairingPrompt) -> Liveness {
        liveness(&self.hub, request)
    }

    fn show(&mut self, text: &str) {
        self.log.exclusively(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
            let _ = err.flush();
        });
    }

    fn answer(&mut self, request: &PairingPrompt, approve: bool) {
        let hub = &self.hub;
        let result = if approve {
            hub.approve(request.ski)
        } else {
            hub.deny(request.ski)
        };
        match result {
            Ok(()) if approve => {
                crate::hub_events::remember_announced_name(hub, request.ski);
                self.live.end_cooling(&request.ski);
                self.log.emit(Event::Paired {
                    ski: request.ski.to_string(),
                    by: "prompt".into(),
                })
            }
            Ok(()) => {
                self.live.denied(request.ski);
                self.log.emit(Event::Info {
                    message: format!(
                        "denied {}: its pairing requests are refused without asking until it \
                         is paired (`ship-gateway pair {}`)",
                        request.ski, request.ski
                    ),
                })
            }
            Err(error) => self.log.emit(Event::Warning {
                message: format!("answer for {} came too late: {error}", request.ski),
            }),
        }
    }

    /// The PIN goes to the hub and nowhere else: the events name the peer only.
    fn answer_pin(&mut self, request: &PairingPrompt, line: Option<&str>) {
        let hub = &self.hub;
        self.live.pin_answered(&request.ski);
        let typed = line.map(str::trim).filter(|l| !l.is_empty());
        let result = match typed.map(Pin::new) {
            Some(Ok(pin)) => hub.enter_pin(request.ski, pin).map(|()| true),
            Some(Err(error)) => {
                self.log.emit(Event::Warning {
                    message: format!("not a PIN for {}: {error}; refused", request.ski),
                });
                hub.refuse_pin(request.ski).map(|()| false)
            }
            None => hub.refuse_pin(request.ski).map(|()| false),
        };
        match result {
            Ok(true) => self.log.emit(Event::Info {
                message: format!("PIN for {} sent", request.ski),
            }),
            Ok(false) => self.log.emit(Event::Info {
                message: format!("no PIN for {}: refused", request.ski),
            }),
            Err(error) => self.log.emit(Event::Warning {
                message: format!("PIN for {} came too late: {error}", request.ski),
            }),
        }
    }

    fn ended(&mut self, request: &PairingPrompt) {
        use ConnectionState as S;
        let paired = matches!(
            self.hub.connection_state(request.ski),
            S::Trusted | S::Pin | S::Completed
        );
        let end = self.live.request_end(&request.ski);
        let (notice, warn) = ended_notice(request, end, paired);
        self.show(&notice);
        let message = notice
            .trim()
            .replace(&grouped(request.ski), &request.ski.to_string());
        self.log.emit(if warn {
            Event::Warning { message }
        } else {
            Event::Info { message }
        });
    }

    fn secret_input(&mut self, on: bool) {
        echo(!on);
    }
}

/// The terminal's settings before the prompt turned echo off (to restore them exactly).
static SAVED_TERMIOS: std::sync::Mutex<Option<rustix::termios::Termios>> =
    std::sync::Mutex::new(None);

/// Turns the echo of typed input on stdin (a terminal) off or back on: a PIN is not shown
/// while it is typed. The line end is still echoed, so the screen moves on.
fn echo(on: bool) {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut saved = SAVED_TERMIOS.lock().unwrap_or_else(|e| e.into_inner());
    if on {
        if let Some(original) = saved.take() {
            let _ = tcsetattr(&stdin, OptionalActions::Now, &original);
        }
        return;
    }
    let Ok(current) = tcgetattr(&stdin) else {
        return;
    };
    let mut quiet = current.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    if tcsetattr(&stdin, OptionalActions::Now, &quiet).is_ok() && saved.is_none() {
        *saved = Some(current);
    }
}

/// Puts the terminal back as it was (echo on), if a PIN question turned echo off: called when
/// the gateway stops.
pub(crate) fn restore_terminal() {
    echo(true);
}

/// Starts the prompt thread; it ends when every sender is dropped.
pub(crate) fn start(
    hub: Hub,
    log: Arc<EventLog>,
    live: Arc<crate::api::live::Live>,
) -> std::io::Result<mpsc::Sender<PairingPrompt>> {
    let (tx, requests) = mpsc::channel::<PairingPrompt>();
    let (inputs_tx, inputs) = mpsc::channel::<Input>();
    let forward = inputs_tx.clone();
    std::thread::Builder::new()
        .name("pairing-requests".into())
        .spawn(move || {
            for request in requests {
                if forward.send(Input::Ask(request)).is_err() {
                    break;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("pairing-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                let input = match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => Input::Closed,
                    Ok(_) => Input::Line(line, Instant::now()),
                };
                let last = matches!(input, Input::Closed);
                if inputs_tx.send(input).is_err() || last {
                    break;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("pairing-prompt".into())
        .spawn(move || {
            let mut terminal = GatewayTerminal { hub, log, live };
            prompt_loop(&inputs, &mut terminal, PUBLISH_GRACE);
        })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::live::Via;
    use std::collections::HashMap;

    #[test]
    fn skis_are_shown_in_groups_of_four() {
        let ski: ship_hub::Ski = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        assert_eq!(
            super::grouped(ski),
            "0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567"
        );
    }

    fn request(n: u8, name: Option<&str>) -> PairingPrompt {
        PairingPrompt {
            ski: Ski::from_bytes([n; 20]),
            address: "127.0.0.1:4711".parse().unwrap(),
            name: name.map(str::to_owned),
            brand: None,
            model: None,
            device_type: None,
            pin: None,
        }
    }

    #[test]
    fn the_question_shows_brand_model_and_type_when_known() {
        let mut asked = request(7, Some("Garage wallbox"));
        asked.brand = Some("Demo Brand".into());
        asked.model = Some("WB-22".into());
        asked.device_type = Some("EVSE".into());
        let text = question(&asked);
        assert!(
            text.contains("Pairing request from Garage wallbox (Demo Brand WB-22, EVSE) at"),
            "{text}"
        );
        asked.brand = None;
        asked.device_type = None;
        assert!(
            question(&asked).contains("from Garage wallbox (WB-22) at"),
            "{}",
            question(&asked)
        );
        let plain = question(&request(7, None));
        assert!(plain.contains("from an unnamed device at"), "{plain}");
    }

    #[test]
    fn a_hostile_brand_model_or_type_cannot_forge_lines_or_hide_the_ski() {
        let hostile = "X\n  SKI 0000 0000\x1b[2J\u{202e}evil";
        let mut asked = request(7, Some("Wallbox"));
        asked.brand = Some(hostile.into());
        asked.model = Some(hostile.into());
        asked.device_type = Some(hostile.into());
        let text = question(&asked);
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        let ski_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  SKI")).collect();
        assert_eq!(
            ski_lines,
            ["  SKI 0707 0707 0707 0707 0707 0707 0707 0707 0707 0707"]
        );
        assert_eq!(
            text.matches("X\\n  SKI 0000 0000\\x1b[2J\\u{202e}evil")
                .count(),
            3,
            "{text}"
        );
    }

    #[test]
    fn a_hostile_name_cannot_forge_lines_or_hide_the_ski() {
        let text = question(&request(
            7,
            Some("Wallbox\n  SKI 0000 0000\x1b[2J\u{202e}evil"),
        ));
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        // The only line that starts with "  SKI" is the real one.
        let ski_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  SKI")).collect();
        assert_eq!(
            ski_lines,
            ["  SKI 0707 0707 0707 0707 0707 0707 0707 0707 0707 0707"]
        );
        assert!(
            text.contains("Wallbox\\n  SKI 0000 0000\\x1b[2J\\u{202e}evil"),
            "{text}"
        );
    }

    /// A recording terminal whose requests are pending while their SKI is in `pending`.
    #[derive(Default)]
    struct Recording {
        pending: Arc<std::sync::Mutex<HashMap<Ski, bool>>>,
        shown: Vec<Ski>,
        answers: Vec<(Ski, bool)>,
        pins: Vec<(Ski, Option<String>)>,
        ended: Vec<Ski>,
        /// Tells the test that a question is on the screen.
        on_show: Option<mpsc::Sender<Ski>>,
    }

    impl Terminal for Recording {
        fn liveness(&self, request: &PairingPrompt) -> Liveness {
            match self.pending.lock().unwrap().get(&request.ski) {
                Some(true) => Liveness::Pending,
                _ => Liveness::Ended,
            }
        }
        fn show(&mut self, text: &str) {
            let ski = self
                .pending
                .lock()
                .unwrap()
                .keys()
                .copied()
                .find(|ski| text.contains(&grouped(*ski)))
                .expect("a question names a known SKI");
            self.shown.push(ski);
            if let Some(tx) = &self.on_show {
                let _ = tx.send(ski);
            }
        }
        fn answer(&mut self, request: &PairingPrompt, approve: bool) {
            self.answers.push((request.ski, approve));
        }
        fn answer_pin(&mut self, request: &PairingPrompt, line: Option<&str>) {
            self.pins.push((request.ski, line.map(str::to_owned)));
        }
        fn ended(&mut self, request: &PairingPrompt) {
            self.ended.push(request.ski);
        }
    }

    #[test]
    fn twenty_requests_that_ended_in_the_queue_are_never_shown() {
        let (tx, rx) = mpsc::channel();
        let (shown_tx, shown_rx) = mpsc::channel();
        let mut terminal = Recording {
            on_show: Some(shown_tx),
            ..Recording::default()
        };
        let pending = terminal.pending.clone();
        // The first request is live and on the screen while twenty others queue behind it.
        pending.lock().unwrap().insert(request(1, None).ski, true);
        for n in 2..22 {
            pending.lock().unwrap().insert(request(n, None).ski, true);
        }
        let user = std::thread::spawn(move || {
            tx.send(Input::Ask(request(1, None))).unwrap();
            assert_eq!(shown_rx.recv().unwrap(), request(1, None).ski);
            for n in 2..22 {
                tx.send(Input::Ask(request(n, None))).unwrap();
            }
            // All twenty strangers leave, then the first one too.
            for n in 2..22 {
                pending.lock().unwrap().insert(request(n, None).ski, false);
            }
            pending.lock().unwrap().insert(request(1, None).ski, false);
            // A live one comes; its question is answered.
            pending.lock().unwrap().insert(request(30, None).ski, true);
            tx.send(Input::Ask(request(30, None))).unwrap();
            assert_eq!(shown_rx.recv().unwrap(), request(30, None).ski);
            tx.send(Input::Line("y\n".into(), Instant::now())).unwrap();
        });
        prompt_loop(&rx, &mut terminal, Duration::from_millis(50));
        user.join().unwrap();
        assert_eq!(
            terminal.shown,
            [request(1, None).ski, request(30, None).ski]
        );
        assert_eq!(terminal.ended, [request(1, None).ski]);
        assert_eq!(terminal.answers, [(request(30, None).ski, true)]);
    }

    #[test]
    fn a_line_typed_before_the_question_is_not_an_answer() {
        let (tx, rx) = mpsc::channel();
        let mut terminal = Recording::default();
        terminal
            .pending
            .lock()
            .unwrap()
            .insert(request(1, None).ski, true);
        let early = Instant::now();
        tx.send(Input::Ask(request(1, None))).unwrap();
        tx.send(Input::Line("y\n".into(), early)).unwrap();
        tx.send(Input::Closed).unwrap();
        drop(tx);
        prompt_loop(&rx, &mut terminal, Duration::from_millis(50));
        assert_eq!(terminal.shown, [request(1, None).ski]);
        // Stdin closed with the question unanswered: refused.
        assert_eq!(terminal.answers, [(request(1, None).ski, false)]);
    }

    /// Finding (issue 23): a device that requires a PIN first asked to be trusted; once that
    /// request was satisfied elsewhere (`approve`, `pair`), the hub asked for the PIN, and the
    /// prompt dropped that question as a duplicate of the trust question still on the screen.
    #[test]
    fn a_pin_question_replaces_the_trust_question_of_the_same_device() {
        let (tx, rx) = mpsc::channel();
        let (shown_tx, shown_rx) = mpsc::channel();
        let mut terminal = Recording {
            on_show: Some(shown_tx),
            ..Recording::default()
        };
        let trust = request(1, Some("Heat pump"));
        let mut pin = request(1, Some("Heat pump"));
        pin.pin = Some(PinAsk { rejected: false });
        terminal.pending.lock().unwrap().insert(trust.ski, true);
        let user = std::thread::spawn(move || {
            tx.send(Input::Ask(trust)).unwrap();
            assert_eq!(shown_rx.recv().unwrap(), request(1, None).ski);
            // Approved elsewhere: the hub asks for the PIN at once (the trust question is
            // still on the screen).
            tx.send(Input::Ask(pin)).unwrap();
            assert_eq!(shown_rx.recv().unwrap(), request(1, None).ski);
            tx.send(Input::Line("5555AAAAFF\n".into(), Instant::now()))
                .unwrap();
        });
        prompt_loop(&rx, &mut terminal, Duration::from_millis(50));
        user.join().unwrap();
        assert_eq!(terminal.shown.len(), 2, "the PIN question was shown");
        assert_eq!(
            terminal.ended,
            [request(1, None).ski],
            "the trust question ended"
        );
        assert_eq!(
            terminal.pins,
            [(request(1, None).ski, Some("5555AAAAFF\n".to_owned()))]
        );
        assert!(terminal.answers.is_empty());
    }

    #[test]
    fn the_ended_notice_says_what_happened() {
        let asked = request(1, None);
        let (text, warn) = ended_notice(&asked, Some(RequestEnd::Approved(Via::Command)), true);
        assert!(
            text.contains("was approved with `ship-gateway approve`") && !warn,
            "{text}"
        );
        let (text, warn) = ended_notice(&asked, Some(RequestEnd::Paired(Via::Http)), true);
        assert!(text.contains("paired over the HTTP API") && !warn, "{text}");
        let (text, warn) = ended_notice(&asked, Some(RequestEnd::TimedOut), false);
        assert!(text.contains("timed out") && warn, "{text}");
        let (text, warn) = ended_notice(&asked, None, false);
        assert!(text.contains("the device gave up") && warn, "{text}");
    }

    #[test]
    fn a_pin_question_takes_the_typed_line_and_a_closed_stdin_refuses() {
        let (tx, rx) = mpsc::channel();
        let (shown_tx, shown_rx) = mpsc::channel();
        let mut terminal = Recording {
            on_show: Some(shown_tx),
            ..Recording::default()
        };
        let mut first = request(1, Some("Heat pump"));
        first.pin = Some(PinAsk { rejected: false });
        let mut second = request(2, None);
        second.pin = Some(PinAsk { rejected: true });
        terminal.pending.lock().unwrap().insert(first.ski, true);
        terminal.pending.lock().unwrap().insert(second.ski, true);
        assert!(question(&second).contains("The PIN sent was wrong"));
        assert!(question(&first).contains("requires a PIN"));
        let user = std::thread::spawn(move || {
            tx.send(Input::Ask(first)).unwrap();
            shown_rx.recv().unwrap();
            tx.send(Input::Line("5555 AAAA FF\n".into(), Instant::now()))
                .unwrap();
            tx.send(Input::Ask(second)).unwrap();
            shown_rx.recv().unwrap();
            tx.send(Input::Closed).unwrap();
        });
        prompt_loop(&rx, &mut terminal, Duration::from_millis(50));
        user.join().unwrap();
        assert_eq!(
            terminal.pins,
            [
                (request(1, None).ski, Some("5555 AAAA FF\n".to_owned())),
                (request(2, None).ski, None)
            ]
        );
        assert!(terminal.answers.is_empty());
    }
}
