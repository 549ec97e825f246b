//! The Rust side of `hub.js`: a stream of one channel served by its
//! isolate's hub instead of a socket of its own (`HUB_DISPATCH_BUDGET`).
//! The member is the stream's place in the hub; what the hub hands it goes
//! to the stream's tap, and what the pump must act on comes back through
//! the tap's signals ([`super::frame_tap::TapSignal::Own`]) or [`Member::tick`].

use edgestream_core::problem::Problem;
use edgestream_core::protocol::channel::Joiner;
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::channel_client::ChannelClient;
use super::frame_tap::Tap;

/// A stream's turn at joining, as `hub.js` hands it over.
enum Turn {
    Opening(String),
    Revoked,
    /// The stream sends the join of these streams (its own first).
    Send(Vec<String>),
    /// The join it waited for failed, or did not come back within the
    /// hub's wait (`JOIN_WAIT_MS`): it asks alone.
    Alone,
}

/// What the hub found at a keep-alive.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    Nothing,
    /// The owner went silent, or nobody owns the hub: this stream attaches.
    Own,
    /// The hub dropped the stream: it did not take what it was handed.
    Dropped,
    /// A wake ran outside the stream's own request; the stream stopped.
    Misrouted,
}

pub struct Member {
    member: HubMember,
}

impl Member {
    /// Joins the hub of `channel` in this isolate. Called before the stream
    /// asks the object for its head, so it misses nothing after it.
    pub fn join(
        channel: &str,
        tap: &Tap,
        tags: &[String],
        signal: &web_sys::AbortSignal,
        keepalive_ms: u64,
        budget: u64,
    ) -> Self {
        let tags: js_sys::Array = tags.iter().map(|t| JsValue::from_str(t)).collect();
        Member {
            member: HubMember::new(
                channel,
                tap.js(),
                &tags,
                signal,
                keepalive_ms as f64,
                budget as f64,
            ),
        }
    }

    /// What the stream sees before any live event (relay text), asked of
    /// the channel's object together with the hub's other streams that join
    /// meanwhile (`HubJoin` in core).
    pub async fn opening(
        &self,
        client: &ChannelClient,
        joiner: &Joiner,
    ) -> Result<String, Problem> {
        let query = joiner.to_query();
        let turn = self.turn(&query).await;
        let (joiners, sender) = match turn {
            Turn::Opening(text) => return Ok(text),
            Turn::Revoked => return Err(Problem::revoked()),
            Turn::Alone => (vec![query], false),
            Turn::Send(joiners) => (joiners, true),
        };
        let answers = client.hub_join(self.hub(), &joiners).await;
        if sender {
            let handed: JsValue = match &answers {
                Ok(answers) => answers
                    .iter()
                    .map(|answer| answer.as_deref().map_or(JsValue::NULL, JsValue::from_str))
                    .collect::<js_sys::Array>()
                    .into(),
                Err(_) => JsValue::NULL,
            };
            self.member.answered(&handed);
        }
        answers?
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(Problem::revoked)
    }

    async fn turn(&self, joiner: &str) -> Turn {
        let turn = JsFuture::from(self.member.join(joiner))
            .await
            .unwrap_or(JsValue::UNDEFINED);
        if turn.is_null() {
            Turn::Revoked
        } else if let Some(text) = turn.as_string() {
            Turn::Opening(text)
        } else if let Ok(joiners) = turn.dyn_into::<js_sys::Array>() {
            Turn::Send(joiners.iter().filter_map(|j| j.as_string()).collect())
        } else {
            Turn::Alone
        }
    }

    /// The object's head as the stream's join answered it.
    pub fn start(&self, head: u64) {
        self.member.start(head as f64);
    }

    /// The last sequence number the hub handed out: where its socket
    /// resumes.
    pub fn position(&self) -> u64 {
        self.member.position() as u64
    }

    pub fn streams(&self) -> u64 {
        self.member.streams() as u64
    }

    /// The hub's id, which its streams' joins and its attach carry.
    pub fn hub(&self) -> u64 {
        self.member.hub_id() as u64
    }

    /// Gives the owner's new socket to the hub; false if it was not taken
    /// (the stream ended or lost the role meanwhile; the socket is closed).
    pub fn adopt(&self, socket: &web_sys::WebSocket) -> bool {
        self.member.adopt(socket)
    }

    pub fn tick(&self) -> Tick {
        match self.member.tick() {
            1 => Tick::Own,
            2 => Tick::Dropped,
            3 => Tick::Misrouted,
            _ => Tick::Nothing,
        }
    }

    pub fn leave(&self) {
        self.member.leave();
    }
}

#[wasm_bindgen(module = "/src/edge/hub.js")]
extern "C" {
    type HubMember;
    #[wasm_bindgen(constructor)]
    fn new(
        channel: &str,
        tap: &JsValue,
        tags: &js_sys::Array,
        signal: &web_sys::AbortSignal,
        keepalive_ms: f64,
        budget: f64,
    ) -> HubMember;
    #[wasm_bindgen(method)]
    fn join(this: &HubMember, joiner: &str) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    fn answered(this: &HubMember, answers: &JsValue);
    #[wasm_bindgen(method)]
    fn start(this: &HubMember, head: f64);
    #[wasm_bindgen(method)]
    fn position(this: &HubMember) -> f64;
    #[wasm_bindgen(method)]
    fn streams(this: &HubMember) -> f64;
    #[wasm_bindgen(method, js_name = hubId)]
    fn hub_id(this: &HubMember) -> f64;
    #[wasm_bindgen(method)]
    fn adopt(this: &HubMember, socket: &web_sys::WebSocket) -> bool;
    #[wasm_bindgen(method)]
    fn tick(this: &HubMember) -> u32;
    #[wasm_bindgen(method)]
    fn leave(this: &HubMember);
}
