//! A channel object's side of its isolates' hubs (`hub.js`): what it keeps
//! on each hub's socket, the joins of hubs that have not attached yet, and
//! the questions it asks every hub at once (how many streams a kick ended,
//! how many streams each serves for stats). What counts is decided in
//! `edgestream_core::hubs`; this file does the I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use edgestream_core::hubs::{self, Joining};
use edgestream_core::protocol::channel::{HubCount, HubKick, HubSeat};
use futures_channel::oneshot;
use futures_util::future::select;
use worker::{State, WebSocket};

use super::fanout::HUB_TAG;

/// How long the object waits for every hub to answer. A hub whose owner is
/// handing the socket on answers late or never: a kick still ends its
/// streams, and stats take its last report.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Hubs {
    next: u64,
    waiting: HashMap<u64, Question>,
    joining: Joining,
}

/// A question sent to `left` more hubs than have answered it.
struct Question {
    left: usize,
    answers: Vec<(u64, u64)>,
    done: Option<oneshot::Sender<()>>,
}

/// The hub a socket belongs to and its last report; none for a stream's own
/// socket.
pub fn seat(socket: &WebSocket) -> Option<HubSeat> {
    socket.deserialize_attachment::<HubSeat>().ok().flatten()
}

impl Hubs {
    /// `streams` streams joined hub `hub`, before that hub's owner may have
    /// attached.
    pub fn joined(&mut self, state: &State, hub: u64, streams: u64, now_ms: u64) {
        let attached = state
            .get_websockets_with_tag(HUB_TAG)
            .iter()
            .filter_map(seat)
            .any(|seat| seat.hub == hub);
        self.joining.joined(hub, streams, attached, now_ms);
    }

    /// Hub `hub` attached: from now on its socket holds its count.
    pub fn attached(&mut self, hub: u64) {
        self.joining.attached(hub);
    }

    /// A hub answered question `id` with `number` (streams ended, or served).
    pub fn answered(&mut self, id: u64, hub: u64, number: u64) {
        let Some(question) = self.waiting.get_mut(&id) else {
            return;
        };
        question.answers.push((hub, number));
        question.left = question.left.saturating_sub(1);
        if question.left == 0 {
            if let Some(done) = question.done.take() {
                let _ = done.send(());
            }
        }
    }
}

/// Sends every hub the question `notice(id)` and waits until each has
/// answered or [`ANSWER_WAIT`] is over: the answers that came, as (hub,
/// number).
async fn ask(
    hubs: &RefCell<Hubs>,
    sockets: &[WebSocket],
    notice: impl Fn(u64) -> String,
) -> Vec<(u64, u64)> {
    if sockets.is_empty() {
        return Vec::new();
    }
    let (id, done) = {
        let mut hubs = hubs.borrow_mut();
        hubs.next += 1;
        let id = hubs.next;
        let (tx, done) = oneshot::channel();
        hubs.waiting.insert(
            id,
            Question {
                left: sockets.len(),
                answers: Vec::new(),
                done: Some(tx),
            },
        );
        (id, done)
    };
    let text = notice(id);
    for socket in sockets {
        // A socket that fails here is closing; its hub attaches again.
        let _ = socket.send_with_str(&text);
    }
    let _ = select(done, worker::Delay::from(ANSWER_WAIT)).await;
    hubs.borrow_mut()
        .waiting
        .remove(&id)
        .map_or_else(Vec::new, |question| question.answers)
}

/// Tells every hub the tag a kick names; the streams the hubs ended.
pub async fn kick(hubs: &RefCell<Hubs>, state: &State, tag: &str) -> u64 {
    let sockets = state.get_websockets_with_tag(HUB_TAG);
    let answers = ask(hubs, &sockets, |id| {
        HubKick {
            kick: tag.to_owned(),
            id,
        }
        .to_json()
    })
    .await;
    answers.iter().map(|(_, closed)| closed).sum()
}

/// The streams the channel's hubs serve now: each attached hub's answer (or
/// last report), and the joins of hubs that have not attached yet.
pub async fn streams(hubs: &RefCell<Hubs>, state: &State, now_ms: u64) -> u64 {
    let sockets = state.get_websockets_with_tag(HUB_TAG);
    let answers = ask(hubs, &sockets, |count| HubCount { count }.to_json()).await;
    let seats: Vec<(u64, u64)> = sockets
        .iter()
        .filter_map(seat)
        .map(|seat| (seat.hub, seat.streams))
        .collect();
    hubs::attached_streams(&seats, &answers) + hubs.borrow_mut().joining.streams(now_ms)
}
