//! A link's inbox: its supervisor's commands and the application's data on their way to one
//! link task, in one small shared record.
//!
//! Why not two tokio queues, as before: a tokio queue allocates room for 32 entries when it is
//! created (about 800 bytes each for a link's commands and its data), and a held connection
//! keeps both for its whole life, nearly always empty. Here both queues are `VecDeque`s, which
//! allocate only once something waits in them, so an idle link's inbox is one allocation of
//! about 130 bytes (docs/performance.md, "Memory per held connection").
//!
//! One sending side, the supervisor's [`Inbox`], and one receiving side, the link's
//! [`InboxReceiver`]. Commands are unbounded: they are few, and the supervisor never waits to
//! give one. Data is bounded by a capacity (the hub's `max_queued_data`); the supervisor waits
//! for room with [`Room::poll_room`]. When the [`Inbox`] is dropped, the link receives the
//! commands still queued, then the end (`None`); when the receiver is dropped, whatever is
//! queued is dropped and every later send is refused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::sync::lock;

/// Creates an inbox whose data queue holds at most `capacity` payloads (at least one).
pub(crate) fn inbox<C>(capacity: usize) -> (Inbox<C>, InboxReceiver<C>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            commands: VecDeque::new(),
            data: VecDeque::new(),
            capacity: capacity.max(1),
            receiver: None,
            sender: None,
            sender_gone: false,
            receiver_gone: false,
        }),
    });
    (
        Inbox {
            room: Room {
                shared: shared.clone(),
            },
        },
        InboxReceiver { shared },
    )
}

struct Shared<C> {
    state: Mutex<State<C>>,
}

struct State<C> {
    commands: VecDeque<C>,
    data: VecDeque<Vec<u8>>,
    capacity: usize,
    /// The link, waiting for a command or data.
    receiver: Option<Waker>,
    /// The supervisor, waiting for room for data.
    sender: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

/// Keeps `cx`'s waker in `slot` (a clone only when it is another task's).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Wakes whoever waits in `waker` (taken from the state under its lock, woken after it).
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The supervisor's side of a link's inbox. Dropping it ends the link's commands.
pub(crate) struct Inbox<C> {
    room: Room<C>,
}

impl<C> Inbox<C> {
    /// Queues `command` for the link; false if the link is gone (the command is dropped).
    pub(crate) fn command(&self, command: C) -> bool {
        let mut state = lock(&self.room.shared.state);
        if state.receiver_gone {
            return false;
        }
        state.commands.push_back(command);
        let waker = state.receiver.take();
        drop(state);
        wake(waker);
        true
    }

    /// The data side, as a handle that can be kept while the supervisor is borrowed elsewhere
    /// (in its `select!`). Dropping it does not end anything.
    pub(crate) fn room(&self) -> Room<C> {
        Room {
            shared: self.room.shared.clone(),
        }
    }
}

impl<C> Drop for Inbox<C> {
    fn drop(&mut self) {
        let mut state = lock(&self.room.shared.state);
        state.sender_gone = true;
        let waker = state.receiver.take();
        drop(state);
        wake(waker);
    }
}

/// The data side of a link's inbox: waits for room and queues payloads.
pub(crate) struct Room<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Room<C> {
    /// `Ready(true)` once the data queue has room, `Ready(false)` if the link is gone;
    /// otherwise the task is woken when the link takes a payload or ends.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = lock(&self.shared.state);
        if state.receiver_gone {
            return Poll::Ready(false);
        }
        if state.data.len() < state.capacity {
            return Poll::Ready(true);
        }
        register(&mut state.sender, cx);
        Poll::Pending
    }

    /// Queues `payload` if the data queue has room and the link is there; gives it back
    /// otherwise.
    pub(crate) fn try_data(&self, payload: Vec<u8>) -> Result<(), Vec<u8>> {
        let mut state = lock(&self.shared.state);
        if state.receiver_gone || state.data.len() >= state.capacity {
            return Err(payload);
        }
        state.data.push_back(payload);
        let waker = state.receiver.take();
        drop(state);
        wake(waker);
        Ok(())
    }
}

/// The link's side of its inbox. Its methods take `&self`, so that one `select!` can wait for
/// a command and for data at once.
pub(crate) struct InboxReceiver<C> {
    shared: Arc<Shared<C>>,
}

impl<C> InboxReceiver<C> {
    /// The next command; `Ready(None)` once the [`Inbox`] is dropped and every command queued
    /// before was taken.
    pub(crate) fn poll_command(&self, cx: &mut Context<'_>) -> Poll<Option<C>> {
        let mut state = lock(&self.shared.state);
        if let Some(command) = state.commands.pop_front() {
            return Poll::Ready(Some(command));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        register(&mut state.receiver, cx);
        Poll::Pending
    }

    /// The next payload; `Ready(None)` once the [`Inbox`] is dropped and the queue is empty.
    pub(crate) fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut state = lock(&self.shared.state);
        if let Some(payload) = state.data.pop_front() {
            let waker = state.sender.take();
            drop(state);
            wake(waker);
            return Poll::Ready(Some(payload));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        register(&mut state.receiver, cx);
        Poll::Pending
    }

    /// The next payload if one is queued.
    pub(crate) fn try_data(&self) -> Option<Vec<u8>> {
        let mut state = lock(&self.shared.state);
        let payload = state.data.pop_front()?;
        let waker = state.sender.take();
        drop(state);
        wake(waker);
        Some(payload)
    }
}

impl<C> Drop for InboxReceiver<C> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.receiver_gone = true;
        let commands = std::mem::take(&mut state.commands);
        let data = std::mem::take(&mut state.data);
        let waker = state.sender.take();
        drop(state);
        drop((commands, data));
        wake(waker);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::inbox;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn commands_arrive_in_order_and_end_after_the_inbox_is_dropped() {
        let (inbox, receiver) = inbox::<u8>(4);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(receiver.poll_command(&mut cx), Poll::Pending);
        assert!(inbox.command(1));
        assert_eq!(woken(&count), 1, "a command wakes the waiting link");
        assert!(inbox.command(2));
        drop(inbox);
        assert_eq!(receiver.poll_command(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(receiver.poll_command(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(receiver.poll_command(&mut cx), Poll::Ready(None));
        assert_eq!(receiver.poll_data(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn data_is_bounded_and_taking_a_payload_wakes_a_sender_waiting_for_room() {
        let (inbox, receiver) = inbox::<u8>(2);
        let room = inbox.room();
        let (sender_count, sender_waker) = counting();
        let (link_count, link_waker) = counting();
        let mut sender_cx = Context::from_waker(&sender_waker);
        let mut link_cx = Context::from_waker(&link_waker);
        assert_eq!(receiver.poll_data(&mut link_cx), Poll::Pending);
        assert_eq!(room.poll_room(&mut sender_cx), Poll::Ready(true));
        assert_eq!(room.try_data(vec![1]), Ok(()));
        assert_eq!(woken(&link_count), 1, "data wakes the waiting link");
        assert_eq!(room.try_data(vec![2]), Ok(()));
        assert_eq!(room.try_data(vec![3]), Err(vec![3]), "full at the capacity");
        assert_eq!(room.poll_room(&mut sender_cx), Poll::Pending);
        assert_eq!(receiver.try_data(), Some(vec![1]));
        assert_eq!(woken(&sender_count), 1, "taking a payload makes room");
        assert_eq!(room.poll_room(&mut sender_cx), Poll::Ready(true));
        assert_eq!(room.try_data(vec![3]), Ok(()));
        assert_eq!(receiver.poll_data(&mut link_cx), Poll::Ready(Some(vec![2])));
        assert_eq!(receiver.poll_data(&mut link_cx), Poll::Ready(Some(vec![3])));
        assert_eq!(receiver.try_data(), None);
    }

    #[test]
    fn a_gone_link_refuses_commands_and_data_and_wakes_a_waiting_sender() {
        let (inbox, receiver) = inbox::<u8>(1);
        let room = inbox.room();
        assert_eq!(room.try_data(vec![1]), Ok(()));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(room.poll_room(&mut cx), Poll::Pending);
        drop(receiver);
        assert_eq!(woken(&count), 1);
        assert_eq!(room.poll_room(&mut cx), Poll::Ready(false));
        assert!(!inbox.command(1));
        assert_eq!(room.try_data(vec![2]), Err(vec![2]));
    }

    #[test]
    fn dropping_a_room_handle_does_not_end_the_commands() {
        let (inbox, receiver) = inbox::<u8>(1);
        drop(inbox.room());
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(receiver.poll_command(&mut cx), Poll::Pending);
        assert!(inbox.command(7));
        assert_eq!(receiver.poll_command(&mut cx), Poll::Ready(Some(7)));
    }
}
