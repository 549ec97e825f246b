//! Presence: which subjects (the `sub` of a stream's credential) have streams
//! open on a channel, for the channels whose prefix `PRESENCE_PREFIXES`
//! names.
//!
//! The channel's object announces a subject with a `presence.joined` event
//! when its first stream opens and a `presence.left` event when its last one
//! has been closed for [`GRACE_MS`]: a browser that reconnects, or a second
//! tab, opens a stream before or soon after the other closes, and its
//! subject neither leaves nor joins again. The events are ordinary events of
//! the channel (numbered, kept in history, replayed on resume), so a client
//! that keeps a roster from them misses none; they are not part of the
//! current state, whose one-event-per-type would hand a new page an
//! arbitrary subject instead of the roster (`GET /v1/channels/{channel}/presence`
//! lists it).
//!
//! Bounds: at most [`MAX_SUBJECTS`] subjects are listed per channel; the
//! streams of further subjects are counted and the list says it is
//! truncated. A stream without a subject, or with one longer than
//! [`MAX_SUBJECT_BYTES`], is counted and never listed.
//!
//! The object keeps the announced subjects in storage (so an announced
//! subject leaves even if the object restarts meanwhile) and each socket
//! keeps its [`Seat`] (so the counts are rebuilt when the object wakes from
//! hibernation); this module decides every transition. A busy channel's
//! shards report the subjects of their streams ([`Presence::shard_roster`]),
//! which count like the channel's own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::ChannelName;
use crate::config::Settings;
use crate::problem::Problem;
use crate::protocol::channel::presence::{PresenceList, Present};

pub const JOINED: &str = "presence.joined";
pub const LEFT: &str = "presence.left";
/// Subjects listed per channel. Every one costs a storage row and a line of
/// the list, which stays well under a megabyte at this bound.
pub const MAX_SUBJECTS: usize = 1000;
/// How long a subject whose last stream closed stays present: longer than a
/// browser takes to reconnect after a dropped connection or a reload.
pub const GRACE_MS: u64 = 5000;
/// Longest subject that is listed; longer ones are counted as anonymous.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// Whether an event type belongs to presence: on a channel with presence,
/// only the relay publishes these, and they are not current state.
pub fn is_presence_event(event: &str) -> bool {
    event.starts_with("presence.")
}

/// Refuses a publish of a presence event type to a channel with presence,
/// whose presence events must be the relay's alone for a roster built from
/// them to be right.
pub fn check_publish(
    settings: &Settings,
    channel: &ChannelName,
    event: &str,
) -> Result<(), Problem> {
    if settings.has_presence(channel) && is_presence_event(event) {
        return Err(Problem::invalid_body(format!(
            "event types starting with presence. are the relay's own on channels with the prefix \"{}\" (PRESENCE_PREFIXES)",
            channel.prefix()
        )));
    }
    Ok(())
}

/// The subject as presence lists it: none for an empty or too long one.
pub fn listable(subject: Option<&str>) -> Option<&str> {
    subject.filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT_BYTES)
}

/// How a stream was counted, kept on its socket until it closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seat {
    /// Counted under its subject.
    Listed(String),
    /// Its subject did not fit the bound.
    Overflow,
    /// No subject to list.
    Anonymous,
}

/// A change the object must act on: publish the event it carries (if any)
/// and record the subject's row as [`Transition::row`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The subject's first stream: announce it.
    Joined { subject: String },
    /// The subject's last stream closed: it leaves at `at` unless a stream
    /// of it opens first.
    Leaving { subject: String, at: u64 },
    /// A stream opened within the grace period: the subject stays.
    Stayed { subject: String },
    /// The grace period passed: announce that the subject left.
    Left { subject: String },
}

/// What the object's storage holds for a subject after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// Announced, with streams open.
    Present,
    /// Announced, leaving at this instant.
    Leaving(u64),
    /// Not announced: no row.
    Gone,
}

impl Transition {
    pub fn subject(&self) -> &str {
        match self {
            Transition::Joined { subject }
            | Transition::Leaving { subject, .. }
            | Transition::Stayed { subject }
            | Transition::Left { subject } => subject,
        }
    }

    pub fn row(&self) -> Row {
        match self {
            Transition::Joined { .. } | Transition::Stayed { .. } => Row::Present,
            Transition::Leaving { at, .. } => Row::Leaving(*at),
            Transition::Left { .. } => Row::Gone,
        }
    }

    /// The event to publish, as its type and data: `{"subject", "streams"}`
    /// with the subject's open streams (1 on joining, 0 on leaving).
    pub fn event(&self) -> Option<(&'static str, String)> {
        let (event, streams) = match self {
            Transition::Joined { .. } => (JOINED, 1),
            Transition::Left { .. } => (LEFT, 0),
            Transition::Leaving { .. } | Transition::Stayed { .. } => return None,
        };
        #[derive(Serialize)]
        struct Data<'a> {
            subject: &'a str,
            streams: u64,
        }
        let data = Data {
            subject: self.subject(),
            streams,
        };
        let data = serde_json::to_string(&data).expect("a string and a number always serialise");
        Some((event, data))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Subject {
    /// Streams on the channel's own object.
    streams: u64,
    /// Streams on each shard, as the shard last reported.
    shards: BTreeMap<u32, u64>,
    leaving_at: Option<u64>,
}

impl Subject {
    fn total(&self) -> u64 {
        self.streams + self.shards.values().sum::<u64>()
    }
}

/// A channel's presence: every subject here has been announced and has not
/// left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    subjects: BTreeMap<String, Subject>,
    anonymous: u64,
    overflow: u64,
    /// Streams of subjects past the bound, per shard.
    shard_overflow: BTreeMap<u32, u64>,
}

impl Presence {
    /// Rebuilds presence when the object starts: `rows` are the announced
    /// subjects storage holds (with the instant each is leaving at, if it
    /// is), `seats` those of the sockets that are still open. An announced
    /// subject without a socket starts leaving now (the object restarted and
    /// its streams are re-attaching); one with a socket stays.
    pub fn restore(
        rows: impl IntoIterator<Item = (String, Option<u64>)>,
        seats: impl IntoIterator<Item = Seat>,
        now: u64,
    ) -> (Self, Vec<Transition>) {
        let mut presence = Presence::default();
        for (subject, leaving_at) in rows {
            presence.subjects.insert(
                subject,
                Subject {
                    leaving_at,
                    ..Subject::default()
                },
            );
        }
        for seat in seats {
            match seat {
                Seat::Listed(subject) => {
                    presence.subjects.entry(subject).or_default().streams += 1;
                }
                Seat::Overflow => presence.overflow += 1,
                Seat::Anonymous => presence.anonymous += 1,
            }
        }
        let mut transitions = Vec::new();
        for (subject, entry) in &mut presence.subjects {
            match (entry.streams, entry.leaving_at) {
                (0, None) => {
                    let at = now + GRACE_MS;
                    entry.leaving_at = Some(at);
                    transitions.push(Transition::Leaving {
                        subject: subject.clone(),
                        at,
                    });
                }
                (1.., Some(_)) => {
                    entry.leaving_at = None;
                    transitions.push(Transition::Stayed {
                        subject: subject.clone(),
                    });
                }
                _ => {}
            }
        }
        (presence, transitions)
    }

    /// A stream of `subject` opened. Returns its seat, to be given back to
    /// [`Presence::close`], and the transition it causes.
    pub fn open(&mut self, subject: Option<&str>) -> (Seat, Option<Transition>) {
        let Some(subject) = listable(subject) else {
            self.anonymous += 1;
            return (Seat::Anonymous, None);
        };
        let seat = Seat::Listed(subject.to_owned());
        if let Some(entry) = self.subjects.get_mut(subject) {
            entry.streams += 1;
            let stayed = entry.leaving_at.take().map(|_| Transition::Stayed {
                subject: subject.to_owned(),
            });
            return (seat, stayed);
        }
        if self.subjects.len() >= MAX_SUBJECTS {
            self.overflow += 1;
            return (Seat::Overflow, None);
        }
        self.subjects.insert(
            subject.to_owned(),
            Subject {
                streams: 1,
                ..Subject::default()
            },
        );
        let joined = Transition::Joined {
            subject: subject.to_owned(),
        };
        (seat, Some(joined))
    }

    /// A stream with this seat closed at `now`, and `remaining` streams with
    /// the same seat are still open. The object counts those from its
    /// sockets rather than subtracting one: an object that wakes from
    /// hibernation for a close may or may not have seen the closing socket
    /// when it rebuilt its counts.
    pub fn close(&mut self, seat: &Seat, remaining: u64, now: u64) -> Option<Transition> {
        let subject = match seat {
            Seat::Anonymous => {
                self.anonymous = remaining;
                return None;
            }
            Seat::Overflow => {
                self.overflow = remaining;
                return None;
            }
            Seat::Listed(subject) => subject,
        };
        let entry = self.subjects.get_mut(subject)?;
        entry.streams = remaining;
        if entry.total() > 0 || entry.leaving_at.is_some() {
            return None;
        }
        let at = now + GRACE_MS;
        entry.leaving_at = Some(at);
        Some(Transition::Leaving {
            subject: subject.clone(),
            at,
        })
    }

    /// A shard reported the subjects of its streams (all of them: an empty
    /// roster from a shard that joins again after it lost its sockets
    /// forgets what it held). Returns the transitions, in subject order.
    pub fn shard_roster(&mut self, shard: u32, roster: &[Present], now: u64) -> Vec<Transition> {
        let reported: BTreeMap<&str, u64> = roster
            .iter()
            .filter(|p| p.streams > 0)
            .map(|p| (p.subject.as_str(), p.streams))
            .collect();
        let held: Vec<String> = self
            .subjects
            .iter()
            .filter(|(subject, entry)| {
                entry.shards.contains_key(&shard) && !reported.contains_key(subject.as_str())
            })
            .map(|(subject, _)| subject.clone())
            .collect();
        let mut changes: BTreeMap<String, u64> =
            held.into_iter().map(|subject| (subject, 0)).collect();
        for (subject, streams) in &reported {
            changes.insert((*subject).to_owned(), *streams);
        }
        let mut overflow = 0;
        let mut transitions = Vec::new();
        for (subject, streams) in changes {
            let Some(entry) = self.subjects.get_mut(&subject) else {
                if self.subjects.len() >= MAX_SUBJECTS {
                    overflow += streams;
                    continue;
                }
                let mut entry = Subject::default();
                entry.shards.insert(shard, streams);
                self.subjects.insert(subject.clone(), entry);
                transitions.push(Transition::Joined { subject });
                continue;
            };
            let before = entry.total();
            if streams == 0 {
                entry.shards.remove(&shard);
            } else {
                entry.shards.insert(shard, streams);
            }
            match (before, entry.total()) {
                (_, 0) if entry.leaving_at.is_none() => {
                    let at = now + GRACE_MS;
                    entry.leaving_at = Some(at);
                    transitions.push(Transition::Leaving { subject, at });
                }
                (_, 1..) if entry.leaving_at.is_some() => {
                    entry.leaving_at = None;
                    transitions.push(Transition::Stayed { subject });
                }
                _ => {}
            }
        }
        if overflow > 0 {
            self.shard_overflow.insert(shard, overflow);
        } else {
            self.shard_overflow.remove(&shard);
        }
        transitions
    }

    /// The subjects whose grace period is over at `now`, which leave.
    pub fn due(&mut self, now: u64) -> Vec<Transition> {
        let gone: Vec<String> = self
            .subjects
            .iter()
            .filter(|(_, entry)| entry.leaving_at.is_some_and(|at| at <= now))
            .map(|(subject, _)| subject.clone())
            .collect();
        gone.into_iter()
            .map(|subject| {
                self.subjects.remove(&subject);
                Transition::Left { subject }
            })
            .collect()
    }

    /// When the next subject leaves, if one is leaving.
    pub fn next_deadline(&self) -> Option<u64> {
        self.subjects.values().filter_map(|e| e.leaving_at).min()
    }

    /// The announced subjects in order, with their open streams (0 for one
    /// in its grace period).
    pub fn list(&self) -> PresenceList {
        PresenceList {
            subjects: self
                .subjects
                .iter()
                .map(|(subject, entry)| Present {
                    subject: subject.clone(),
                    streams: entry.total(),
                })
                .collect(),
            truncated: self.overflow > 0 || !self.shard_overflow.is_empty(),
            anonymous: self.anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(subject: &str) -> Option<Transition> {
        Some(Transition::Joined {
            subject: subject.into(),
        })
    }

    fn listed(presence: &Presence) -> Vec<(String, u64)> {
        presence
            .list()
            .subjects
            .into_iter()
            .map(|p| (p.subject, p.streams))
            .collect()
    }

    #[test]
    fn the_first_stream_joins_and_a_second_tab_does_not() {
        let mut p = Presence::default();
        let (alice, t) = p.open(Some("alice"));
        assert_eq!(t, joined("alice"));
        let (_, t) = p.open(Some("bob"));
        assert_eq!(t, joined("bob"));
        let (tab, t) = p.open(Some("alice"));
        assert_eq!(t, None);
        assert_eq!(tab, alice);
        assert_eq!(listed(&p), [("alice".into(), 2), ("bob".into(), 1)]);
        // Closing one of two tabs changes only the count.
        assert_eq!(p.close(&tab, 1, 100), None);
        assert_eq!(listed(&p), [("alice".into(), 1), ("bob".into(), 1)]);
        assert_eq!(
            p.close(&alice, 0, 200),
            Some(Transition::Leaving {
                subject: "alice".into(),
                at: 200 + GRACE_MS
            })
        );
        assert_eq!(p.next_deadline(), Some(200 + GRACE_MS));
    }

    #[test]
    fn the_last_stream_leaves_only_after_the_grace_period() {
        let mut p = Presence::default();
        let (seat, _) = p.open(Some("alice"));
        p.close(&seat, 0, 1000);
        // Still present, with no stream, until the period is over.
        assert!(p.due(1000 + GRACE_MS - 1).is_empty());
        assert_eq!(listed(&p), [("alice".into(), 0)]);
        assert_eq!(
            p.due(1000 + GRACE_MS),
            [Transition::Left {
                subject: "alice".into()
            }]
        );
        assert!(listed(&p).is_empty());
        assert_eq!(p.next_deadline(), None);
        // Coming back later is a new join.
        assert_eq!(p.open(Some("alice")).1, joined("alice"));
    }

    #[test]
    fn a_reconnect_within_the_grace_period_does_not_flap() {
        let mut p = Presence::default();
        let (seat, _) = p.open(Some("alice"));
        p.close(&seat, 0, 1000);
        let (seat, t) = p.open(Some("alice"));
        assert_eq!(
            t,
            Some(Transition::Stayed {
                subject: "alice".into()
            })
        );
        assert!(p.due(1000 + GRACE_MS).is_empty());
        assert_eq!(p.next_deadline(), None);
        assert_eq!(listed(&p), [("alice".into(), 1)]);
        // The grace period starts again from the next close.
        assert!(
            matches!(p.close(&seat, 0, 9000), Some(Transition::Leaving { at, .. }) if at == 9000 + GRACE_MS)
        );
    }

    #[test]
    fn streams_without_a_listable_subject_are_counted_not_listed() {
        let mut p = Presence::default();
        let long = "x".repeat(MAX_SUBJECT_BYTES + 1);
        for subject in [None, Some(""), Some(long.as_str())] {
            assert_eq!(p.open(subject), (Seat::Anonymous, None));
        }
        let fits = "y".repeat(MAX_SUBJECT_BYTES);
        assert_eq!(p.open(Some(&fits)).1, joined(&fits));
        let list = p.list();
        assert_eq!((list.anonymous, list.subjects.len()), (3, 1));
        assert_eq!(p.close(&Seat::Anonymous, 2, 0), None);
        assert_eq!(p.list().anonymous, 2);
    }

    #[test]
    fn past_the_bound_subjects_are_counted_and_the_list_is_truncated() {
        let mut p = Presence::default();
        for i in 0..MAX_SUBJECTS {
            assert_eq!(p.open(Some(&format!("s{i}"))).1, joined(&format!("s{i}")));
        }
        assert!(!p.list().truncated);
        let (seat, t) = p.open(Some("late"));
        assert_eq!((seat.clone(), t), (Seat::Overflow, None));
        // A listed subject still opens more streams.
        assert_eq!(p.open(Some("s0")).1, None);
        let list = p.list();
        assert!(list.truncated);
        assert_eq!(list.subjects.len(), MAX_SUBJECTS);
        assert_eq!(list.subjects[0].streams, 2);
        assert_eq!(p.close(&seat, 0, 0), None);
        assert!(!p.list().truncated);
    }

    #[test]
    fn a_subject_in_its_grace_period_holds_its_place() {
        let mut p = Presence::default();
        let seats: Vec<Seat> = (0..MAX_SUBJECTS)
            .map(|i| p.open(Some(&format!("s{i}"))).0)
            .collect();
        p.close(&seats[0], 0, 0);
        assert_eq!(p.open(Some("late")).0, Seat::Overflow);
        p.due(GRACE_MS);
        assert_eq!(p.open(Some("later")).1, joined("later"));
    }

    #[test]
    fn a_close_takes_the_count_of_the_sockets_left() {
        let mut p = Presence::default();
        let (a, _) = p.open(Some("alice"));
        let _ = p.open(Some("alice"));
        // Woken for a close, the object had not counted the closing socket:
        // the count comes from the sockets, so alice still has one stream.
        let (mut woken, _) = Presence::restore([("alice".to_string(), None)], [a.clone()], 0);
        assert_eq!(woken.close(&a, 1, 0), None);
        assert_eq!(listed(&woken), [("alice".into(), 1)]);
        // A second report of the same close starts no second grace period.
        assert!(p.close(&a, 0, 10).is_some());
        assert_eq!(p.close(&a, 0, 20), None);
        assert_eq!(p.next_deadline(), Some(10 + GRACE_MS));
        assert_eq!(p.close(&Seat::Listed("nobody".into()), 0, 0), None);
        assert_eq!(p.close(&Seat::Overflow, 0, 0), None);
        assert!(!p.list().truncated);
    }

    #[test]
    fn restoring_resumes_the_grace_periods_and_the_counts() {
        let rows = vec![
            ("kept".to_string(), None),
            ("back".to_string(), Some(500)),
            ("waiting".to_string(), Some(700)),
            ("orphan".to_string(), None),
        ];
        let seats = vec![
            Seat::Listed("kept".into()),
            Seat::Listed("kept".into()),
            Seat::Listed("back".into()),
            Seat::Anonymous,
            Seat::Overflow,
        ];
        let (mut p, transitions) = Presence::restore(rows, seats, 100);
        assert_eq!(
            transitions,
            [
                Transition::Stayed {
                    subject: "back".into()
                },
                Transition::Leaving {
                    subject: "orphan".into(),
                    at: 100 + GRACE_MS
                },
            ]
        );
        assert_eq!(
            listed(&p),
            [
                ("back".into(), 1),
                ("kept".into(), 2),
                ("orphan".into(), 0),
                ("waiting".into(), 0)
            ]
        );
        let list = p.list();
        assert_eq!((list.anonymous, list.truncated), (1, true));
        assert_eq!(p.next_deadline(), Some(700));
        assert_eq!(
            p.due(700),
            [Transition::Left {
                subject: "waiting".into()
            }]
        );
    }

    #[test]
    fn publishers_may_not_publish_presence_events_where_the_relay_does() {
        let settings = Settings {
            presence_prefixes: vec!["chat".into()],
            ..Settings::default()
        };
        let tenant = "7a3e4c1b-9f2d-4e8a-b5c6-1d2e3f4a5b6c";
        let chat = ChannelName::build("chat", tenant, "r").unwrap();
        let plain = ChannelName::build("scan", tenant, "r").unwrap();
        let refused = check_publish(&settings, &chat, JOINED).unwrap_err();
        assert_eq!(refused.code, "invalid_body");
        assert!(refused.detail.contains("\"chat\""), "{}", refused.detail);
        assert!(check_publish(&settings, &chat, "presence.custom").is_err());
        assert!(check_publish(&settings, &chat, "chat.message").is_ok());
        assert!(check_publish(&settings, &plain, JOINED).is_ok());
    }

    fn roster(subjects: &[(&str, u64)]) -> Vec<Present> {
        subjects
            .iter()
            .map(|(subject, streams)| Present {
                subject: (*subject).into(),
                streams: *streams,
            })
            .collect()
    }

    #[test]
    fn streams_on_shards_count_like_the_channels_own() {
        let mut p = Presence::default();
        let (alice, _) = p.open(Some("alice"));
        assert_eq!(
            p.shard_roster(1, &roster(&[("alice", 2), ("carol", 1)]), 0),
            [Transition::Joined {
                subject: "carol".into()
            }]
        );
        assert_eq!(p.shard_roster(2, &roster(&[("carol", 1)]), 0), []);
        assert_eq!(listed(&p), [("alice".into(), 3), ("carol".into(), 2)]);
        // Alice's own stream closes; her streams on a shard keep her present.
        assert_eq!(p.close(&alice, 0, 10), None);
        // A roster replaces what the shard reported before.
        assert_eq!(
            p.shard_roster(1, &roster(&[("carol", 1)]), 20),
            [Transition::Leaving {
                subject: "alice".into(),
                at: 20 + GRACE_MS
            }]
        );
        assert_eq!(listed(&p), [("alice".into(), 0), ("carol".into(), 2)]);
        // Back on another shard within the grace period: no flap.
        assert_eq!(
            p.shard_roster(2, &roster(&[("carol", 1), ("alice", 1)]), 30),
            [Transition::Stayed {
                subject: "alice".into()
            }]
        );
        // A shard that lost its sockets reports nothing: its subjects start leaving.
        assert_eq!(p.shard_roster(2, &[], 40).len(), 1);
        assert_eq!(listed(&p), [("alice".into(), 0), ("carol".into(), 1)]);
        assert_eq!(p.due(40 + GRACE_MS).len(), 1);
        assert_eq!(listed(&p), [("carol".into(), 1)]);
    }

    #[test]
    fn shard_subjects_past_the_bound_truncate_the_list() {
        let mut p = Presence::default();
        for i in 0..MAX_SUBJECTS {
            p.open(Some(&format!("s{i}")));
        }
        assert_eq!(p.shard_roster(3, &roster(&[("late", 2), ("s1", 1)]), 0), []);
        let list = p.list();
        assert!(list.truncated);
        assert_eq!(list.subjects[1].streams, 2);
        p.shard_roster(3, &roster(&[("s1", 1)]), 0);
        assert!(!p.list().truncated);
    }

    #[test]
    fn events_carry_the_subject_and_its_streams() {
        let t = Transition::Joined {
            subject: "a\"b".into(),
        };
        assert_eq!(
            t.event(),
            Some((JOINED, r#"{"subject":"a\"b","streams":1}"#.to_string()))
        );
        assert_eq!(t.row(), Row::Present);
        let t = Transition::Left {
            subject: "a".into(),
        };
        assert_eq!(t.event().unwrap().0, LEFT);
        assert_eq!(t.row(), Row::Gone);
        let t = Transition::Leaving {
            subject: "a".into(),
            at: 9,
        };
        assert_eq!((t.event(), t.row()), (None, Row::Leaving(9)));
        assert!(is_presence_event(JOINED) && is_presence_event(LEFT));
        assert!(!is_presence_event("scan.progress") && !is_presence_event("presence"));
    }
}
