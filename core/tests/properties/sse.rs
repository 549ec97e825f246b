//! The SSE writer, read back by a WHATWG event stream reader.

use crate::checks::sse::{check_comment, check_concatenation, check_event, check_retry};
use crate::config::config;
use crate::strategies::{hostile, json_text};
use proptest::prelude::*;

proptest! {
    #![proptest_config(config(256))]

    /// Whatever id, type and data hold (CR, LF, CRLF, NUL, `data:`, leading
    /// spaces, unicode), a frame is exactly one event with those fields.
    #[test]
    fn an_event_frame_is_its_event(
        id in proptest::option::of(hostile(6)),
        event in hostile(6),
        data in prop_oneof![hostile(12), json_text()],
    ) {
        check_event(id.as_deref(), &event, &data);
    }

    /// A comment frame dispatches nothing, whatever its text.
    #[test]
    fn a_comment_is_only_a_comment(text in hostile(12)) {
        check_comment(&text);
    }

    /// A retry frame sets exactly its delay.
    #[test]
    fn a_retry_frame_sets_its_delay(ms in any::<u64>()) {
        check_retry(ms);
    }

    /// Frames appended to one buffer never bleed into each other.
    #[test]
    fn frames_stay_apart(events in proptest::collection::vec((proptest::option::of(hostile(3)), hostile(3), hostile(6)), 0..6)) {
        check_concatenation(&events);
    }
}
