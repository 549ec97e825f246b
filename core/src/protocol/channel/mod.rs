//! What the Worker (and the tenant's object, and a channel's shards) ask of
//! a channel's object. One request type per file, each with its call and its
//! parse; [`ChannelRequest::parse`] is the object's dispatch.

pub mod admit;
pub mod history;
pub mod hub;
pub mod hub_join;
pub mod kick;
pub mod presence;
pub mod publish;
pub mod reset;
pub mod shard;
pub mod stats;
pub mod subscribe;

pub use admit::Admit;
pub use history::History;
pub use hub::{
    HubCount, HubCounted, HubKick, HubKicked, HubMessage, HubReport, HubSeat, HubSubscribe,
};
pub use hub_join::{HubJoin, HubJoined, Joiner};
pub use kick::{Kick, Kicked};
pub use presence::{PresenceList, ShardRoster};
pub use publish::{Outcome, Publish, Published};
pub use shard::{Join, Joined};
pub use stats::ChannelStats;
pub use subscribe::{Delivery, Subscribe, ToShard};

use super::{Incoming, Method, ProtocolError};

/// A request to a channel's object, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum ChannelRequest<'a> {
    Subscribe(Subscribe),
    History(History),
    Publish(Publish<'a>),
    Kick(Kick),
    Admit(Admit),
    Stats,
    Presence,
    /// A shard's subjects changed.
    ShardRoster(ShardRoster),
    /// Drop memory and sockets, shards first (development only).
    Reset,
    /// A shard of this channel starts serving streams.
    Join(Join),
    /// The owner of a Worker isolate's hub attaches its socket.
    Hub(HubSubscribe),
    /// Streams join their isolate's hub.
    HubJoin(HubJoin),
}

impl<'a> ChannelRequest<'a> {
    pub fn parse(incoming: &Incoming<'a>) -> Result<Self, ProtocolError> {
        Ok(match (incoming.method, incoming.path) {
            (Method::Get, subscribe::PATH) => {
                ChannelRequest::Subscribe(Subscribe::parse(incoming.query)?)
            }
            (Method::Get, history::PATH) => {
                ChannelRequest::History(History::parse(incoming.query)?)
            }
            (Method::Post, publish::PATH) => {
                ChannelRequest::Publish(Publish::parse(incoming.body)?)
            }
            (Method::Post, kick::PATH) => ChannelRequest::Kick(Kick::parse(incoming.body)?),
            (Method::Get, admit::PATH) => ChannelRequest::Admit(Admit::parse(incoming.query)?),
            (Method::Get, stats::PATH) => ChannelRequest::Stats,
            (Method::Get, presence::PATH) => ChannelRequest::Presence,
            (Method::Post, presence::REPORT_PATH) => {
                ChannelRequest::ShardRoster(ShardRoster::parse(incoming.body)?)
            }
            (Method::Post, reset::PATH) => ChannelRequest::Reset,
            (Method::Post, shard::JOIN_PATH) => ChannelRequest::Join(Join::parse(incoming.body)?),
            (Method::Get, hub::PATH) => ChannelRequest::Hub(HubSubscribe::parse(incoming.query)?),
            (Method::Post, hub_join::PATH) => {
                ChannelRequest::HubJoin(HubJoin::parse(incoming.body)?)
            }
            (method, path) => {
                return Err(ProtocolError::new(format!(
                    "channel: no request {method:?} {path}"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Call;

    fn parse(call: &Call) -> ChannelRequest<'_> {
        let (path, query) = (call.path, call.query.as_str());
        let body = call.body.as_deref().unwrap_or("").as_bytes();
        ChannelRequest::parse(&Incoming {
            method: call.method,
            path,
            query,
            body,
        })
        .unwrap()
    }

    #[test]
    fn every_call_dispatches_to_its_own_request() {
        let subscribe = Subscribe {
            after: Some(3),
            delivery: Delivery::Frames,
            tags: vec!["u:1".into()],
            subject: Some("alice".into()),
        };
        assert_eq!(
            parse(&subscribe.call()),
            ChannelRequest::Subscribe(subscribe)
        );
        assert_eq!(
            parse(&History { after: 4 }.call()),
            ChannelRequest::History(History { after: 4 })
        );
        let kick = Kick {
            tag: None,
            until_ms: None,
        };
        assert_eq!(parse(&kick.call()), ChannelRequest::Kick(kick));
        assert_eq!(
            parse(&Admit { tags: vec![] }.call()),
            ChannelRequest::Admit(Admit { tags: vec![] })
        );
        assert_eq!(parse(&stats::call()), ChannelRequest::Stats);
        assert_eq!(parse(&presence::call()), ChannelRequest::Presence);
        let roster = ShardRoster {
            shard: 1,
            subjects: vec![],
        };
        assert_eq!(parse(&roster.call()), ChannelRequest::ShardRoster(roster));
        assert_eq!(parse(&reset::call()), ChannelRequest::Reset);
        assert_eq!(
            parse(&Join { shard: 2 }.call()),
            ChannelRequest::Join(Join { shard: 2 })
        );
        let hub = HubSubscribe {
            hub: 9,
            after: 2,
            streams: 3,
        };
        assert_eq!(parse(&hub.call()), ChannelRequest::Hub(hub));
        let join = HubJoin {
            hub: 9,
            streams: vec![Joiner {
                after: None,
                tags: vec!["j:01".into()],
            }],
        };
        assert_eq!(parse(&join.call()), ChannelRequest::HubJoin(join));
        let incoming = Incoming {
            method: Method::Get,
            path: "/nope",
            query: "",
            body: b"",
        };
        assert!(ChannelRequest::parse(&incoming).is_err());
        let wrong_method = Incoming {
            method: Method::Get,
            path: publish::PATH,
            query: "",
            body: b"",
        };
        assert!(ChannelRequest::parse(&wrong_method).is_err());
    }
}
