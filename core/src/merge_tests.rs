use super::*;

const A: &str = "scan:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:a";
const B: &str = "scan:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:b";

/// The (id, event, data) of every frame written, in order.
fn frames(out: &str) -> Vec<(String, String, String)> {
    out.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|frame| {
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_owned()))
                    .unwrap_or_default()
            };
            (field("id:"), field("event:"), field("data:"))
        })
        .collect()
}

fn seqs(out: &str) -> Vec<u64> {
    frames(out)
        .iter()
        .filter(|(id, _, _)| !id.is_empty())
        .map(|(id, _, _)| id.rsplit(':').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_fresh_stream_gets_the_state_then_live_events() {
    let mut merge = Merge::new(&[A], &[None]);
    let mut out = String::new();
    merge
        .live(
            &mut out,
            0,
            "2 scan.progress {\"pct\":2}\n3 scan.done null\nlive 3",
        )
        .unwrap();
    assert!(merge.is_live(0));
    assert_eq!(merge.wants_page(), None);
    merge.live(&mut out, 0, "4 scan.progress 4").unwrap();
    assert_eq!(seqs(&out), [2, 3, 4]);
    assert_eq!(
        frames(&out)[0].0,
        "scan%3A0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19%3Aa:2"
    );
}

#[test]
fn a_channel_with_no_events_starts_live_at_its_head() {
    let mut merge = Merge::new(&[A], &[None]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 0").unwrap();
    assert_eq!(merge.position(0), Some(0));
    merge.live(&mut out, 0, "1 a 1").unwrap();
    assert_eq!(seqs(&out), [1]);
}

#[test]
fn a_resume_pages_the_gap_while_live_events_wait_then_nothing_twice() {
    let mut merge = Merge::new(&[A], &[Some(2)]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 6").unwrap();
    assert!(!merge.is_live(0));
    // Published while the stream pages: held.
    merge.live(&mut out, 0, "7 a 7").unwrap();
    assert!(merge.held_bytes() > 0);
    assert_eq!(merge.wants_page(), Some((0, 2)));
    assert_eq!(merge.wants_page(), None, "one page at a time");
    assert!(!merge.page(&mut out, 0, "3 a 3\n4 a 4").unwrap());
    assert_eq!(merge.wants_page(), Some((0, 4)));
    // The page overlaps what is held: nothing is written twice.
    assert!(merge.page(&mut out, 0, "5 a 5\n6 a 6\n7 a 7").unwrap());
    assert_eq!(merge.held_bytes(), 0);
    assert_eq!(seqs(&out), [3, 4, 5, 6, 7]);
    assert!(merge.is_live(0));
}

#[test]
fn a_live_message_past_the_next_sequence_number_is_a_gap_to_page() {
    let mut merge = Merge::new(&[A], &[Some(4)]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 4").unwrap();
    merge.live(&mut out, 0, "5 a 5").unwrap();
    // 6 and 7 went missing (a failed shard push, a re-attach).
    merge.live(&mut out, 0, "8 a 8\n9 a 9").unwrap();
    merge.live(&mut out, 0, "10 a 10").unwrap();
    assert_eq!(merge.wants_page(), Some((0, 5)));
    assert!(merge.page(&mut out, 0, "6 a 6\n7 a 7").unwrap());
    assert_eq!(seqs(&out), [5, 6, 7, 8, 9, 10]);
}

#[test]
fn a_re_attach_resumes_from_where_the_stream_is() {
    let mut merge = Merge::new(&[A], &[None]);
    let mut out = String::new();
    merge.live(&mut out, 0, "1 a 1\nlive 1").unwrap();
    merge.live(&mut out, 0, "2 a 2").unwrap();
    // The object restarted; the new socket says where the channel is.
    merge.live(&mut out, 0, "live 2").unwrap();
    assert!(merge.is_live(0));
    merge.live(&mut out, 0, "live 4").unwrap();
    assert_eq!(merge.wants_page(), Some((0, 2)));
    assert!(merge.page(&mut out, 0, "3 a 3\n4 a 4").unwrap());
    assert_eq!(seqs(&out), [1, 2, 3, 4]);
}

#[test]
fn a_channel_is_live_only_after_its_socket_said_where_the_channel_is() {
    // A resume: the cursor is known, but the object has not answered yet.
    let mut merge = Merge::new(&[A], &[Some(24)]);
    let mut out = String::new();
    assert!(!merge.is_live(0));
    merge.live(&mut out, 0, "live 24").unwrap();
    assert!(merge.is_live(0));
    // A re-attach. The object counted 25..=28 in its head when it accepted
    // the socket and flushes their frames after the opening: the live path
    // must stay held until the gap is paged, or it writes them twice.
    merge.attached(0);
    assert!(!merge.is_live(0));
    merge.live(&mut out, 0, "live 28").unwrap();
    assert!(!merge.is_live(0));
    assert_eq!(merge.wants_page(), Some((0, 24)));
    assert!(merge
        .page(&mut out, 0, "25 a 1\n26 a 2\n27 a 3\n28 a 4")
        .unwrap());
    assert!(merge.is_live(0));
    assert_eq!(merge.position(0), Some(28));
    assert_eq!(seqs(&out), [25, 26, 27, 28]);
}

#[test]
fn a_reset_names_the_channel_and_sends_the_state_at_or_below_the_head() {
    let mut merge = Merge::new(&[A, B], &[Some(1), Some(9)]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 500").unwrap();
    merge.live(&mut out, 1, "live 9").unwrap();
    assert_eq!(merge.wants_page(), Some((0, 1)));
    assert!(merge
        .page(&mut out, 0, "reset 500\n480 a.x 1\n500 a.y 2")
        .unwrap());
    let written = frames(&out);
    assert_eq!(written[0].1, "stream-reset");
    assert_eq!(written[0].2, format!("{{\"channels\":[\"{A}\"]}}"));
    assert_eq!(written.len(), 3);
    // Ids name both channels; the reset channel's position is its head.
    assert!(
        written[2]
            .0
            .ends_with(":500,scan%3A0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19%3Ab:9"),
        "{}",
        written[2].0
    );
}

#[test]
fn the_live_path_of_a_one_channel_stream_reports_gaps_and_positions() {
    let mut merge = Merge::new(&[A], &[None]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 3").unwrap();
    // Frames up to 5 went out through the live path.
    merge.delivered(0, 5);
    merge.delivered(0, 4);
    assert_eq!(merge.position(0), Some(5));
    merge.gap(0, 9);
    assert_eq!(merge.wants_page(), Some((0, 5)));
    assert!(!merge.page(&mut out, 0, "6 a 6\n7 a 7").unwrap());
    assert_eq!(merge.wants_page(), Some((0, 7)));
    assert!(merge.page(&mut out, 0, "8 a 8").unwrap());
    assert_eq!(seqs(&out), [6, 7, 8]);
}

#[test]
fn an_empty_page_ends_a_catch_up_that_history_cannot_fill() {
    let mut merge = Merge::new(&[A], &[Some(2)]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 5").unwrap();
    assert_eq!(merge.wants_page(), Some((0, 2)));
    assert!(merge.page(&mut out, 0, "").unwrap());
    assert!(merge.is_live(0));
}

#[test]
fn a_failed_page_is_asked_for_again() {
    let mut merge = Merge::new(&[A], &[Some(2)]);
    let mut out = String::new();
    merge.live(&mut out, 0, "live 5").unwrap();
    assert_eq!(merge.wants_page(), Some((0, 2)));
    merge.page_failed();
    assert_eq!(merge.wants_page(), Some((0, 2)));
}

#[test]
fn a_bad_record_is_reported_and_the_rest_still_delivered() {
    let mut merge = Merge::new(&[A], &[Some(0)]);
    let mut out = String::new();
    assert_eq!(
        merge.live(&mut out, 0, "1 a 1\nnonsense\n2 a 2"),
        Err(BadRecord)
    );
    assert_eq!(seqs(&out), [1, 2]);
}

#[test]
fn counts_each_event_written_once_whatever_arrives_twice() {
    let mut merge = Merge::new(&[A, B], &[Some(1), None]);
    let mut out = String::new();
    merge.live(&mut out, 0, "2 a 2\n3 a 3").unwrap();
    // Sent again on a re-attach: already delivered, not written again.
    merge.live(&mut out, 0, "2 a 2\n3 a 3\n4 a 4").unwrap();
    merge.live(&mut out, 1, "live 7").unwrap();
    merge.live(&mut out, 1, "8 b 8").unwrap();
    assert_eq!(seqs(&out), [2, 3, 4, 8]);
    assert_eq!(merge.events_written(), 4);
}
