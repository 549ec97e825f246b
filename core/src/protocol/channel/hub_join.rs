//! Streams join their isolate's hub of a channel (`POST /hub/join`), asked
//! together.
//!
//! Each stream of a hub must learn, before any live event, what it would
//! have seen first on a socket of its own: nothing but `live <head>` with a
//! usable cursor, otherwise the current state (after a `reset` when the
//! cursor was unusable). Its tags are also checked against the channel's
//! revocations. The object stays the one place that knows both; what the
//! hub saves is the request per stream. The joins that arrive in an isolate
//! while one is in flight go out in the next one, so a burst of opens (a
//! deploy that closed every stream, a page that went viral) costs the
//! object one request per isolate and round trip, not one per stream, and
//! never waits for time to pass (`hub.js`).

use super::super::query::{self, pairs, Query};
use super::super::{text, Call, ProtocolError};

pub const PATH: &str = "/hub/join";

/// The most streams one join carries; the rest wait for the next.
pub const MAX_JOINERS: usize = 64;

/// Streams that joined the hub `hub`, in the order they asked. The body is
/// `hub=<id>` and then a line per stream, each a query as
/// [`Joiner::to_query`] writes it: plain text that the hub can carry as it
/// is, and that costs the module no parser of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubJoin {
    /// The id of the hub the streams joined.
    pub hub: u64,
    pub streams: Vec<Joiner>,
}

/// One stream of a [`HubJoin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joiner {
    /// The last sequence number the stream has; none asks for the state.
    pub after: Option<u64>,
    /// The stream's tags, checked against the revocations.
    pub tags: Vec<String>,
}

impl Joiner {
    /// The form a stream hands its hub, which keeps it as it is until one
    /// of the hub's streams sends the join.
    pub fn to_query(&self) -> String {
        let mut query = Query::new();
        if let Some(after) = self.after {
            query = query.pair("after", &after.to_string());
        }
        for tag in &self.tags {
            query = query.pair("tag", tag);
        }
        query.finish()
    }

    pub fn parse(query: &str) -> Result<Self, ProtocolError> {
        let mut joiner = Joiner {
            after: None,
            tags: Vec::new(),
        };
        for (name, value) in pairs(query) {
            match name {
                "after" => joiner.after = Some(query::number("after", value)?),
                "tag" => joiner.tags.push(value.to_owned()),
                other => {
                    return Err(ProtocolError::new(format!(
                        "hub join: unknown parameter {other}"
                    )))
                }
            }
        }
        Ok(joiner)
    }
}

impl HubJoin {
    pub fn call(&self) -> Call {
        let queries: Vec<String> = self.streams.iter().map(Joiner::to_query).collect();
        HubJoin::call_of(self.hub, &queries)
    }

    /// The join of hub `hub`'s streams as the hub holds them: each one's
    /// query as [`Joiner::to_query`] wrote it.
    pub fn call_of(hub: u64, queries: &[String]) -> Call {
        let mut body = Query::new().pair("hub", &hub.to_string()).finish();
        for query in queries {
            body.push('\n');
            body.push_str(query);
        }
        Call::post(PATH, body)
    }

    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut lines = text(body, "hub join")?.split('\n');
        let hub = match lines.next().and_then(|line| line.strip_prefix("hub=")) {
            Some(hub) => query::number("hub", hub)?,
            None => return Err(ProtocolError::new("hub join: expected hub")),
        };
        let mut streams = Vec::new();
        for line in lines {
            streams.push(Joiner::parse(line)?);
        }
        if streams.is_empty() || streams.len() > MAX_JOINERS {
            return Err(ProtocolError::new(format!(
                "hub join: 1 to {MAX_JOINERS} streams, not {}",
                streams.len()
            )));
        }
        Ok(HubJoin { hub, streams })
    }

    /// Answers every stream: `revoked` says, stream by stream, whether its
    /// tags are revoked (a stream it does not cover is refused), and
    /// `opening` is what a stream resuming after `after` sees first (asked
    /// once per distinct cursor, since streams without one all see the same
    /// state).
    pub fn answer<E>(
        &self,
        revoked: &[bool],
        mut opening: impl FnMut(Option<u64>) -> Result<String, E>,
    ) -> Result<HubJoined, E> {
        // Few distinct cursors among at most MAX_JOINERS streams: a list is
        // enough to find the opening of one already asked.
        let mut openings = Vec::new();
        let mut cursors = Vec::new();
        let mut streams = Vec::with_capacity(self.streams.len());
        for (index, joiner) in self.streams.iter().enumerate() {
            if revoked.get(index) != Some(&false) {
                streams.push(None);
                continue;
            }
            let index = match cursors.iter().position(|&after| after == joiner.after) {
                Some(index) => index,
                None => {
                    openings.push(opening(joiner.after)?);
                    cursors.push(joiner.after);
                    openings.len() - 1
                }
            };
            streams.push(Some(index));
        }
        Ok(HubJoined { openings, streams })
    }
}

/// The object's answer to a [`HubJoin`]: for each of its streams, in order,
/// the index of its opening (relay text) in `openings`, or none when the
/// stream is revoked. As text: a line of the indices (`-` for none), then
/// each opening as its length in bytes on a line and the text after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubJoined {
    pub openings: Vec<String>,
    pub streams: Vec<Option<usize>>,
}

impl HubJoined {
    pub fn to_text(&self) -> String {
        let indices: Vec<String> = self
            .streams
            .iter()
            .map(|index| index.map_or_else(|| "-".to_owned(), |i| i.to_string()))
            .collect();
        let mut out = indices.join(" ");
        for opening in &self.openings {
            out.push('\n');
            out.push_str(&opening.len().to_string());
            out.push('\n');
            out.push_str(opening);
        }
        out
    }

    /// The answer to a join of `count` streams.
    pub fn parse(body: &[u8], count: usize) -> Result<Self, ProtocolError> {
        let malformed = || ProtocolError::new("hub joined: not one opening or refusal per stream");
        let body = text(body, "hub joined")?;
        let (indices, mut rest) = body.split_once('\n').unwrap_or((body, ""));
        let mut streams = Vec::new();
        for index in indices.split(' ') {
            streams.push(match index {
                "-" => None,
                index => Some(query::number("opening", index)? as usize),
            });
        }
        let mut openings = Vec::new();
        while !rest.is_empty() {
            let (length, after) = rest.split_once('\n').ok_or_else(malformed)?;
            let length = query::number("length", length)? as usize;
            let opening = after.get(..length).ok_or_else(malformed)?;
            openings.push(opening.to_owned());
            let tail = &after[length..];
            rest = match tail.strip_prefix('\n') {
                Some(next) => next,
                None if tail.is_empty() => tail,
                None => return Err(malformed()),
            };
        }
        let in_range = streams.iter().flatten().all(|&i| i < openings.len());
        if streams.len() != count || !in_range {
            return Err(malformed());
        }
        Ok(HubJoined { openings, streams })
    }

    /// Each stream's opening, or none for a revoked one.
    pub fn into_answers(self) -> Vec<Option<String>> {
        self.streams
            .iter()
            .map(|index| index.map(|i| self.openings[i].clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joiner(after: Option<u64>, tags: &[&str]) -> Joiner {
        Joiner {
            after,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn round_trips() {
        let join = HubJoin {
            hub: (1 << 53) - 1,
            streams: vec![
                joiner(None, &[]),
                joiner(Some(7), &["u:0a", "j:ff"]),
                joiner(Some(u64::MAX), &["u:0a"]),
            ],
        };
        let call = join.call();
        assert!(!call.upgrade);
        assert_eq!(call.path, PATH);
        assert_eq!(
            HubJoin::parse(call.body.as_deref().unwrap().as_bytes()),
            Ok(join.clone())
        );
        for stream in &join.streams {
            assert_eq!(Joiner::parse(&stream.to_query()).as_ref(), Ok(stream));
        }
        assert_eq!(joiner(None, &[]).to_query(), "");
        assert_eq!(
            join.call().body.unwrap(),
            format!(
                "hub={}\n\nafter=7&tag=u:0a&tag=j:ff\nafter={}&tag=u:0a",
                (1u64 << 53) - 1,
                u64::MAX
            )
        );
        let joined = HubJoined {
            openings: vec!["live 3".into(), "reset 3\nlive 3".into(), "".into()],
            streams: vec![Some(0), None, Some(1), Some(0), Some(2)],
        };
        assert_eq!(
            joined.to_text(),
            "0 - 1 0 2\n6\nlive 3\n14\nreset 3\nlive 3\n0\n"
        );
        assert_eq!(
            HubJoined::parse(joined.to_text().as_bytes(), 5),
            Ok(joined.clone())
        );
        let refused = HubJoined {
            openings: vec![],
            streams: vec![None],
        };
        assert_eq!(
            HubJoined::parse(refused.to_text().as_bytes(), 1),
            Ok(refused)
        );
        assert_eq!(
            joined.into_answers(),
            vec![
                Some("live 3".into()),
                None,
                Some("reset 3\nlive 3".into()),
                Some("live 3".into()),
                Some("".into())
            ]
        );
    }

    #[test]
    fn streams_with_one_cursor_share_one_opening_and_revoked_ones_get_none() {
        let join = HubJoin {
            hub: 1,
            streams: vec![
                joiner(None, &["u:a"]),
                joiner(Some(2), &["u:b"]),
                joiner(None, &["u:revoked"]),
                joiner(None, &["u:c"]),
                joiner(Some(2), &["u:d", "j:revoked"]),
                joiner(Some(5), &[]),
            ],
        };
        let revoked: Vec<bool> = join
            .streams
            .iter()
            .map(|j| j.tags.iter().any(|t| t.ends_with("revoked")))
            .collect();
        let mut asked = Vec::new();
        let joined = join
            .answer(&revoked, |after| {
                asked.push(after);
                Ok::<_, ()>(format!("opening after {after:?}"))
            })
            .unwrap();
        assert_eq!(asked, vec![None, Some(2), Some(5)]);
        assert_eq!(
            joined.streams,
            vec![Some(0), Some(1), None, Some(0), None, Some(2)]
        );
        assert_eq!(
            join.answer(&[false; 6], |_| Err("no state")),
            Err("no state")
        );
        let all_revoked = join.answer(&[true; 6], |_| Err("not asked")).unwrap();
        assert!(all_revoked.openings.is_empty());
        assert!(all_revoked.streams.iter().all(Option::is_none));
        // A stream the list does not cover is refused: the check fails closed.
        let unchecked = join
            .answer(&[false; 2], |_| Ok::<_, ()>(String::new()))
            .unwrap();
        assert_eq!(
            unchecked.streams,
            vec![Some(0), Some(1), None, None, None, None]
        );
    }

    #[test]
    fn malformed_joins_and_answers_are_refused() {
        let many = HubJoin {
            hub: 1,
            streams: vec![joiner(None, &[]); MAX_JOINERS + 1],
        };
        let many = many.call().body.unwrap();
        for body in [
            "",
            "hub=1",
            "after=1\nhub=1",
            "hub=-1\n",
            "hub=x\n",
            "hub=1\nafter=-1",
            "hub=1\nafter=",
            "hub=1\nsubject=a",
            "hub=1\nframes",
            &many,
        ] {
            assert!(HubJoin::parse(body.as_bytes()).is_err(), "{body}");
        }
        let full = &many[..many.rfind('\n').unwrap()];
        assert_eq!(
            HubJoin::parse(full.as_bytes()).unwrap().streams.len(),
            MAX_JOINERS
        );
        assert!(
            HubJoin::parse("hub=1\n".as_bytes()).is_ok(),
            "one stream without a cursor or tags"
        );
        for (body, streams) in [
            ("", 1),
            ("0\n6\nlive 1", 2),
            ("1\n6\nlive 1", 1),
            ("0", 1),
            ("x\n6\nlive 1", 1),
            ("-1\n6\nlive 1", 1),
            ("0\n7\nlive 1", 1),
            ("0\n5\nlive 1", 1),
            ("0\n6\nlive 1x", 1),
            ("0\nsix\nlive 1", 1),
            ("0 \n6\nlive 1", 1),
        ] {
            assert!(
                HubJoined::parse(body.as_bytes(), streams).is_err(),
                "{body:?}"
            );
        }
        assert!(HubJoined::parse(b"-", 1).is_ok());
        assert!(HubJoined::parse(b"0\n6\nlive 1", 1).is_ok());
    }
}
