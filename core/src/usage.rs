//! Usage data points for Workers Analytics Engine: what a SaaS bills and
//! alerts on, per tenant.
//!
//! The Worker writes a point when a stream opens, when it ends (with why),
//! now and then while it is open (what it delivered since the last point),
//! for every channel of a publish, and for every refused request. Each point
//! has the tenant as its one index, so Analytics Engine samples per tenant
//! and a tenant's sums stay right however busy other tenants are.
//!
//! A point never carries token text, event names or event data: only the
//! tenant, stable codes, counts and, on publish points, the channel (see
//! [`Metric::Publish`]). The column layout is the contract that the SQL in
//! docs/operations.md reads; positions are only ever added, never moved.

use std::time::Duration;

use crate::channel::ChannelName;

/// The cause of a stream end when the client went away (every other end is
/// the code of the `stream-error` frame the relay sent).
pub const CLIENT_GONE: &str = "client_gone";

/// Points a stream writes while open, at most: a Worker invocation may write
/// about 250, and the stream's open and end points are two of them. What a
/// longer stream delivers after its last progress point is in its end point.
pub const MAX_PROGRESS_POINTS: u32 = 240;
const _: () = assert!(MAX_PROGRESS_POINTS + 2 <= 250, "open and end fit too");
/// Progress points per interval before the interval doubles, so that the
/// budget covers days of a stream, not hours.
const POINTS_PER_STEP: u32 = 60;

/// What a stream delivered to its client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Events written to the response.
    pub events: u64,
    /// Bytes written to the response (frames, keep-alives, everything).
    pub bytes: u64,
}

impl std::ops::Add for Delivered {
    type Output = Delivered;

    fn add(self, other: Delivered) -> Delivered {
        Delivered {
            events: self.events + other.events,
            bytes: self.bytes + other.bytes,
        }
    }
}

impl Delivered {
    fn since(self, earlier: Delivered) -> Delivered {
        Delivered {
            events: self.events.saturating_sub(earlier.events),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// One thing worth counting.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric<'a> {
    /// A stream was admitted and its response started.
    StreamOpen { channels: usize },
    /// A stream is still open: what it delivered and how long it was open
    /// since its previous point.
    StreamProgress { delivered: Delivered, seconds: f64 },
    /// A stream ended: `cause` is [`CLIENT_GONE`] or the `stream-error` code
    /// (`lagging` is a lagging cut); the rest is since its previous point.
    StreamEnd {
        cause: &'a str,
        channels: usize,
        delivered: Delivered,
        seconds: f64,
    },
    /// The events of one publish request on one channel. The channel is in
    /// the point because "top channels" needs it; its tenant is the index
    /// already and its resource id is the publisher's own name for it.
    /// `first` marks one point per request, so that requests can be counted
    /// when a batch spans channels.
    Publish {
        channel: &'a ChannelName,
        events: usize,
        bytes: usize,
        first: bool,
    },
    /// A request answered with a problem: its stable code, status and route
    /// (never the path, which may name a channel).
    Refusal {
        code: &'a str,
        status: u16,
        route: &'a str,
    },
}

/// A data point as Analytics Engine takes it: `indexes: [index]`, `blobs`,
/// `doubles`, each position one column (`blob1`, `double1`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct DataPoint<'a> {
    /// The tenant, or empty when the request was refused before it had one.
    pub index: &'a str,
    /// `kind`, `detail` (cause or code), `prefix`, `channel`, `route`.
    pub blobs: [&'a str; 5],
    /// `count`, `events`, `bytes`, `seconds`, `channels`, `status`.
    pub doubles: [f64; 6],
}

impl<'a> Metric<'a> {
    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Metric::StreamOpen { .. } => "stream_open",
            Metric::StreamProgress { .. } => "stream_progress",
            Metric::StreamEnd { .. } => "stream_end",
            Metric::Publish { .. } => "publish",
            Metric::Refusal { .. } => "refusal",
        }
    }

    /// The point for `tenant` (none for a request refused before its
    /// credential was verified). A publish point is always its channel's
    /// tenant's, whoever published: a platform credential's events are billed
    /// to the tenant whose channel they went to.
    pub fn point(&self, tenant: Option<&'a str>) -> DataPoint<'a> {
        let tenant = tenant.unwrap_or("");
        let kind = self.kind();
        let stream = |count: f64, delivered: &Delivered, seconds: f64, channels: usize| {
            [
                count,
                delivered.events as f64,
                delivered.bytes as f64,
                seconds,
                channels as f64,
                0.0,
            ]
        };
        match self {
            Metric::StreamOpen { channels } => DataPoint {
                index: tenant,
                blobs: [kind, "", "", "", ""],
                doubles: stream(1.0, &Delivered::default(), 0.0, *channels),
            },
            Metric::StreamProgress { delivered, seconds } => DataPoint {
                index: tenant,
                blobs: [kind, "", "", "", ""],
                doubles: stream(0.0, delivered, *seconds, 0),
            },
            Metric::StreamEnd {
                cause,
                channels,
                delivered,
                seconds,
            } => DataPoint {
                index: tenant,
                blobs: [kind, cause, "", "", ""],
                doubles: stream(1.0, delivered, *seconds, *channels),
            },
            Metric::Publish {
                channel,
                events,
                bytes,
                first,
            } => DataPoint {
                index: channel.tenant(),
                blobs: [kind, "", channel.prefix(), channel.as_str(), ""],
                doubles: [
                    f64::from(u8::from(*first)),
                    *events as f64,
                    *bytes as f64,
                    0.0,
                    1.0,
                    0.0,
                ],
            },
            Metric::Refusal {
                code,
                status,
                route,
            } => DataPoint {
                index: tenant,
                blobs: [kind, code, "", "", route],
                doubles: [1.0, 0.0, 0.0, 0.0, 0.0, f64::from(*status)],
            },
        }
    }
}

impl<'a> Metric<'a> {
    /// One channel's part of a publish request: the data of each of its
    /// events, with whether the channel had stored it before (a retried
    /// batch's idempotency key), which is not counted again.
    pub fn published<'d>(
        channel: &'a ChannelName,
        events: impl IntoIterator<Item = (&'d str, bool)>,
        first: bool,
    ) -> Self {
        let stored = events.into_iter().filter(|(_, duplicate)| !duplicate);
        let (events, bytes) =
            stored.fold((0, 0), |(n, bytes), (data, _)| (n + 1, bytes + data.len()));
        Metric::Publish {
            channel,
            events,
            bytes,
            first,
        }
    }
}

/// The wait before a stream's `written`-th progress point (from 0), or none
/// once its budget is spent: `every` for the first points, then twice that,
/// and so on.
pub fn progress_wait(every: Duration, written: u32) -> Option<Duration> {
    if written >= MAX_PROGRESS_POINTS {
        return None;
    }
    Some(every * (1u32 << (written / POINTS_PER_STEP)))
}

/// One stream's usage between its points: each point reports what was
/// delivered since the previous one, so the sum of a stream's points is all
/// it delivered, whichever of them were written.
#[derive(Clone, Debug)]
pub struct StreamMeter {
    channels: usize,
    last_ms: u64,
    reported: Delivered,
    progress_points: u32,
}

impl StreamMeter {
    pub fn open(channels: usize, now_ms: u64) -> (Self, Metric<'static>) {
        let meter = StreamMeter {
            channels,
            last_ms: now_ms,
            reported: Delivered::default(),
            progress_points: 0,
        };
        (meter, Metric::StreamOpen { channels })
    }

    /// The progress point at `now_ms`, given everything delivered so far;
    /// none once the stream's budget of progress points is spent (what it
    /// delivers from then on goes into its end point).
    pub fn progress(&mut self, now_ms: u64, total: Delivered) -> Option<Metric<'static>> {
        if self.progress_points >= MAX_PROGRESS_POINTS {
            return None;
        }
        self.progress_points += 1;
        let (delivered, seconds) = self.take(now_ms, total);
        Some(Metric::StreamProgress { delivered, seconds })
    }

    /// The end point, given everything the stream delivered.
    pub fn end<'a>(&mut self, now_ms: u64, total: Delivered, cause: &'a str) -> Metric<'a> {
        let (delivered, seconds) = self.take(now_ms, total);
        Metric::StreamEnd {
            cause,
            channels: self.channels,
            delivered,
            seconds,
        }
    }

    fn take(&mut self, now_ms: u64, total: Delivered) -> (Delivered, f64) {
        let delivered = total.since(self.reported);
        let seconds = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.reported = total;
        self.last_ms = self.last_ms.max(now_ms);
        (delivered, seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
    const B: &str = "11111111-2222-4333-8444-555555555555";

    fn delivered(events: u64, bytes: u64) -> Delivered {
        Delivered { events, bytes }
    }

    #[test]
    fn every_kind_has_its_own_name_and_the_tenant_as_its_one_index() {
        let channel = ChannelName::build("scan", A, "r1").unwrap();
        let metrics = [
            Metric::StreamOpen { channels: 1 },
            Metric::StreamProgress {
                delivered: delivered(1, 2),
                seconds: 3.0,
            },
            Metric::StreamEnd {
                cause: CLIENT_GONE,
                channels: 1,
                delivered: delivered(1, 2),
                seconds: 3.0,
            },
            Metric::Publish {
                channel: &channel,
                events: 1,
                bytes: 1,
                first: true,
            },
            Metric::Refusal {
                code: "invalid_token",
                status: 401,
                route: "/v1/stream",
            },
        ];
        let kinds: Vec<&str> = metrics.iter().map(|m| m.point(Some(A)).blobs[0]).collect();
        assert_eq!(
            kinds,
            [
                "stream_open",
                "stream_progress",
                "stream_end",
                "publish",
                "refusal"
            ]
        );
        for metric in &metrics {
            assert_eq!(metric.point(Some(A)).index, A);
            assert_eq!(metric.point(Some(A)).blobs[0], metric.kind());
        }
    }

    #[test]
    fn a_publish_point_belongs_to_its_channels_tenant_whoever_published() {
        let channel = ChannelName::build("scan", B, "job-7").unwrap();
        let point = Metric::Publish {
            channel: &channel,
            events: 3,
            bytes: 120,
            first: false,
        }
        .point(Some(A));
        assert_eq!(point.index, B);
        assert_eq!(
            point.blobs,
            ["publish", "", "scan", channel.as_str(), ""],
            "the prefix and the channel, for top channels"
        );
        assert_eq!(point.doubles, [0.0, 3.0, 120.0, 0.0, 1.0, 0.0]);
        let first = Metric::Publish {
            channel: &channel,
            events: 1,
            bytes: 5,
            first: true,
        }
        .point(None);
        assert_eq!(first.doubles[0], 1.0, "one request counted per publish");
    }

    #[test]
    fn a_publish_counts_the_events_it_stored_and_their_data_bytes() {
        let channel = ChannelName::build("scan", A, "r").unwrap();
        let metric = Metric::published(
            &channel,
            [("{\"pct\":1}", false), ("retried", true), ("ünï", false)],
            true,
        );
        assert_eq!(
            metric,
            Metric::Publish {
                channel: &channel,
                events: 2,
                bytes: 9 + 5,
                first: true
            }
        );
    }

    #[test]
    fn a_refusal_without_a_tenant_has_an_empty_index_and_its_code_and_status() {
        let point = Metric::Refusal {
            code: "channel_forbidden",
            status: 403,
            route: "/v1/publish",
        }
        .point(None);
        assert_eq!(point.index, "");
        assert_eq!(
            point.blobs,
            ["refusal", "channel_forbidden", "", "", "/v1/publish"]
        );
        assert_eq!(point.doubles, [1.0, 0.0, 0.0, 0.0, 0.0, 403.0]);
    }

    #[test]
    fn stream_points_add_up_to_what_the_stream_delivered() {
        let (mut meter, open) = StreamMeter::open(2, 1_000);
        assert_eq!(
            open.point(Some(A)).doubles,
            [1.0, 0.0, 0.0, 0.0, 2.0, 0.0],
            "an open counts one stream of two channels"
        );
        let first = meter.progress(61_000, delivered(10, 900)).unwrap();
        assert_eq!(
            first,
            Metric::StreamProgress {
                delivered: delivered(10, 900),
                seconds: 60.0
            }
        );
        assert_eq!(first.point(Some(A)).doubles[0], 0.0, "not another stream");
        let second = meter.progress(121_500, delivered(25, 2_000)).unwrap();
        assert_eq!(
            second,
            Metric::StreamProgress {
                delivered: delivered(15, 1_100),
                seconds: 60.5
            }
        );
        let end = meter.end(122_000, delivered(26, 2_100), "lagging");
        assert_eq!(
            end,
            Metric::StreamEnd {
                cause: "lagging",
                channels: 2,
                delivered: delivered(1, 100),
                seconds: 0.5
            }
        );
        let point = end.point(Some(A));
        assert_eq!(point.blobs, ["stream_end", "lagging", "", "", ""]);
        assert_eq!(point.doubles, [1.0, 1.0, 100.0, 0.5, 2.0, 0.0]);
    }

    #[test]
    fn a_clock_that_goes_back_counts_no_negative_time_and_no_time_twice() {
        let (mut meter, _) = StreamMeter::open(1, 10_000);
        let back = meter.progress(9_000, delivered(1, 1)).unwrap();
        assert_eq!(
            back,
            Metric::StreamProgress {
                delivered: delivered(1, 1),
                seconds: 0.0
            }
        );
        let end = meter.end(11_000, delivered(1, 1), CLIENT_GONE);
        assert_eq!(
            end,
            Metric::StreamEnd {
                cause: CLIENT_GONE,
                channels: 1,
                delivered: delivered(0, 0),
                seconds: 1.0
            }
        );
    }

    #[test]
    fn progress_stops_at_its_budget_and_the_end_point_carries_the_rest() {
        let (mut meter, _) = StreamMeter::open(1, 0);
        let mut written = 0;
        let mut at = 0;
        while let Some(wait) = progress_wait(Duration::from_secs(300), written) {
            at += wait.as_millis() as u64;
            assert!(meter
                .progress(at, delivered(u64::from(written), 0))
                .is_some());
            written += 1;
        }
        assert_eq!(written, MAX_PROGRESS_POINTS);
        assert_eq!(meter.progress(at + 1, delivered(1_000, 0)), None);
        let Metric::StreamEnd { delivered: d, .. } =
            meter.end(at + 2, delivered(1_000, 0), "kicked")
        else {
            panic!("an end point")
        };
        assert_eq!(d.events, 1_000 - u64::from(MAX_PROGRESS_POINTS - 1));
    }

    #[test]
    fn the_progress_interval_doubles_so_the_budget_covers_days() {
        let every = Duration::from_secs(300);
        assert_eq!(progress_wait(every, 0), Some(every));
        assert_eq!(progress_wait(every, POINTS_PER_STEP - 1), Some(every));
        assert_eq!(progress_wait(every, POINTS_PER_STEP), Some(every * 2));
        assert_eq!(progress_wait(every, 3 * POINTS_PER_STEP), Some(every * 8));
        assert_eq!(progress_wait(every, MAX_PROGRESS_POINTS), None);
        let covered: Duration = (0..MAX_PROGRESS_POINTS)
            .map_while(|k| progress_wait(every, k))
            .sum();
        assert!(covered >= Duration::from_secs(3 * 86_400), "{covered:?}");
    }
}
