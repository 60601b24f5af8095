//! Local-log tests: the shared behaviour suite, plus what only the local log
//! does itself (durability, crash recovery, compaction, retention, a second
//! process reading while the first writes).

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use proptest::prelude::*;

use super::segment;
use super::*;
use crate::topic::conformance::{self, poll_n};
use crate::topic::{ProducerRecord, Record, StartOffset, read_to_end};

fn open(dir: &Path) -> LocalLog {
    LocalLog::open(LocalLogConfig::new(dir)).expect("open")
}

#[test]
fn local_log_passes_the_shared_behaviour_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(&open(dir.path()), "conf");
}

#[test]
fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic(&TopicSpec::new("t")).unwrap();
        let mut p = log.producer().unwrap();
        for i in 0..100u8 {
            p.send(ProducerRecord::new("t", Some(vec![i]), Some(vec![i; 10])))
                .unwrap();
        }
        p.flush().unwrap();
    }
    let log = open(dir.path());
    let mut p = log.producer().unwrap();
    p.send(ProducerRecord::new("t", None, Some(b"after".to_vec())))
        .unwrap();
    p.flush().unwrap();
    let all = read_to_end(&log, "t", Duration::from_secs(5)).unwrap();
    assert_eq!(all.len(), 101);
    assert_eq!(all[100].offset, 100, "offsets continue after a restart");
}

/// Regression: a crash in the middle of a write leaves a partial record at
/// the end of the active segment. Opening the partition must cut it off and
/// keep every record before it.
#[test]
fn torn_tail_is_truncated_on_open_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic(&TopicSpec::new("t")).unwrap();
        let mut p = log.producer().unwrap();
        for i in 0..5u8 {
            p.send(ProducerRecord::new("t", None, Some(vec![i; 100])))
                .unwrap();
        }
        p.flush().unwrap();
    }
    let seg = segment::segment_path(&dir.path().join("topics/t/0"), 0);
    let mut garbage = Vec::new();
    segment::encode(&mut garbage, 5, 0, None, Some(&[9; 100]), &[]);
    garbage.truncate(garbage.len() / 2);
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&garbage)
        .unwrap();

    let log = open(dir.path());
    let mut p = log.producer().unwrap();
    p.send(ProducerRecord::new("t", None, Some(b"next".to_vec())))
        .unwrap();
    p.flush().unwrap();
    let all = read_to_end(&log, "t", Duration::from_secs(5)).unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[4].value, Some(vec![4; 100]));
    assert_eq!(
        (all[5].offset, all[5].value.clone()),
        (5, Some(b"next".to_vec()))
    );
}

#[test]
fn second_writer_process_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    first.create_topic(&TopicSpec::new("t")).unwrap();
    let mut p1 = first.producer().unwrap();
    p1.send(ProducerRecord::new("t", None, Some(vec![1])))
        .unwrap();
    // A second LocalLog on the same directory stands for a second process:
    // flock conflicts between open file descriptions, even in one process.
    let second = open(dir.path());
    let err = second
        .producer()
        .unwrap()
        .send(ProducerRecord::new("t", None, Some(vec![2])))
        .unwrap_err();
    assert!(matches!(err, TopicError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("another eddy process"));
}

#[test]
fn a_second_reader_follows_the_writer_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let writer = LocalLog::open(LocalLogConfig {
        segment_bytes: 2048,
        ..LocalLogConfig::new(dir.path())
    })
    .unwrap();
    writer.create_topic(&TopicSpec::new("t")).unwrap();
    let reader_log = open(dir.path());
    let mut reader = reader_log.consumer(None).unwrap();
    reader.assign_all("t", StartOffset::Earliest).unwrap();
    let mut producer = writer.producer().unwrap();
    let mut seen = Vec::new();
    for batch in 0..10u8 {
        for i in 0..20u8 {
            producer
                .send(ProducerRecord::new(
                    "t",
                    None,
                    Some(vec![batch, i, 0, 0, 0, 0, 0, 0]),
                ))
                .unwrap();
        }
        producer.flush().unwrap();
        seen.extend(poll_n(reader.as_mut(), 20));
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.windows(2).all(|w| w[1].offset == w[0].offset + 1));
    let segments = segment::list_segments(&dir.path().join("topics/t/0")).unwrap();
    assert!(
        segments.len() > 3,
        "small segments must have rolled: {segments:?}"
    );
}

fn compacted_spec(name: &str) -> TopicSpec {
    let mut spec = TopicSpec::new(name).compacted();
    spec.config.insert("segment.bytes".into(), "1024".into());
    spec
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_preserves_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic(&compacted_spec("movies")).unwrap();
    let mut p = log.producer().unwrap();
    for round in 0..20u8 {
        for key in 0..5u8 {
            p.send(ProducerRecord::new(
                "movies",
                Some(vec![key]),
                Some(vec![round; 40]),
            ))
            .unwrap();
        }
    }
    // A tombstone that is recent survives compaction (delete.retention.ms).
    p.send(ProducerRecord::new("movies", Some(vec![4]), None))
        .unwrap();
    p.flush().unwrap();
    // Compaction also runs on every segment roll; this forces a last pass.
    log.maintain("movies").unwrap();

    let all = read_to_end(&log, "movies", Duration::from_secs(5)).unwrap();
    assert!(
        all.len() < 40,
        "101 records of 5 keys compact to the active segment plus 5: got {}",
        all.len()
    );
    let mut latest = std::collections::BTreeMap::new();
    for r in &all {
        latest.insert(r.key.clone().unwrap(), (r.offset, r.value.clone()));
    }
    for key in 0..4u8 {
        assert_eq!(
            latest[&vec![key]].1,
            Some(vec![19; 40]),
            "key {key} keeps its last value"
        );
        assert_eq!(
            latest[&vec![key]].0,
            95 + key as i64,
            "offsets are preserved"
        );
    }
    assert_eq!(
        latest[&vec![4]].1,
        None,
        "the tombstone is the latest for key 4"
    );
    assert!(all.windows(2).all(|w| w[0].offset < w[1].offset));
    assert!(matches!(
        p.send(ProducerRecord::new("movies", None, Some(vec![1]))),
        Err(TopicError::InvalidRecord { .. })
    ));
}

#[test]
fn retention_deletes_old_closed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut spec = TopicSpec::new("events");
    spec.retention_ms = Some(60_000);
    spec.config.insert("segment.bytes".into(), "1024".into());
    log.create_topic(&spec).unwrap();
    let now = now_ms();
    let mut p = log.producer().unwrap();
    for i in 0..100i64 {
        let ts = if i < 50 { now - 3_600_000 } else { now };
        p.send(ProducerRecord::new("events", None, Some(vec![0; 40])).at(ts))
            .unwrap();
    }
    p.flush().unwrap();
    log.maintain("events").unwrap();
    let all = read_to_end(&log, "events", Duration::from_secs(5)).unwrap();
    assert!(
        all.iter().all(|r| r.offset >= 40),
        "old segments are gone: first is {}",
        all[0].offset
    );
    assert!(
        all.iter().filter(|r| r.timestamp_ms == now).count() == 50,
        "recent records are kept"
    );
    let d = log.describe_topic("events").unwrap();
    assert_eq!(d.partitions[0].low, all[0].offset);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever is written and flushed reads back the same, in order, per
    /// partition, for any mix of sizes, keys and segment sizes.
    #[test]
    fn write_read_round_trip(
        values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)), 1..150),
        segment_bytes in 512u64..8192,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig { segment_bytes, ..LocalLogConfig::new(dir.path()) }).unwrap();
        log.create_topic(&TopicSpec::new("t")).unwrap();
        let mut p = log.producer().unwrap();
        for (i, v) in values.iter().enumerate() {
            p.send(ProducerRecord::new("t", None, v.clone()).at(i as i64)).unwrap();
        }
        p.flush().unwrap();
        let all = read_to_end(&log, "t", Duration::from_secs(5)).unwrap();
        prop_assert_eq!(all.len(), values.len());
        for (i, (r, v)) in all.iter().zip(&values).enumerate() {
            prop_assert_eq!(r.offset, i as i64);
            prop_assert_eq!(&r.value, v);
            prop_assert_eq!(r.timestamp_ms, i as i64);
        }
    }

    /// A crash can cut the active segment at any byte. Reopening keeps
    /// exactly the records that were whole before the cut and continues
    /// their offsets.
    #[test]
    fn crash_truncation_recovery(count in 1usize..40, cut_back in 0usize..200) {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path());
            log.create_topic(&TopicSpec::new("t")).unwrap();
            let mut p = log.producer().unwrap();
            for i in 0..count {
                p.send(ProducerRecord::new("t", None, Some(vec![i as u8; 13]))).unwrap();
            }
            p.flush().unwrap();
        }
        let seg = segment::segment_path(&dir.path().join("topics/t/0"), 0);
        let len = std::fs::metadata(&seg).unwrap().len();
        let cut = len.saturating_sub(cut_back as u64).max(segment::HEADER_LEN);
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut).unwrap();
        // Every record here has the same encoded length.
        let mut one = Vec::new();
        segment::encode(&mut one, 0, 0, None, Some(&[0; 13]), &[]);
        let whole = ((cut - segment::HEADER_LEN) / one.len() as u64) as usize;

        let log = open(dir.path());
        let mut p = log.producer().unwrap();
        p.send(ProducerRecord::new("t", None, Some(b"after".to_vec()))).unwrap();
        p.flush().unwrap();
        let all = read_to_end(&log, "t", Duration::from_secs(5)).unwrap();
        prop_assert_eq!(all.len(), whole + 1);
        for (i, r) in all.iter().take(whole).enumerate() {
            prop_assert_eq!(&r.value, &Some(vec![i as u8; 13]));
        }
        prop_assert_eq!(all[whole].offset, whole as i64);
    }
}

/// `n` records of 40 bytes in topic `t`, in segments of about 1 KiB.
fn segmented(dir: &Path, n: u8) -> Vec<i64> {
    let log = open(dir);
    let mut spec = TopicSpec::new("t");
    spec.config.insert("segment.bytes".into(), "1024".into());
    log.create_topic(&spec).unwrap();
    let mut p = log.producer().unwrap();
    for i in 0..n {
        p.send(ProducerRecord::new("t", None, Some(vec![i; 40])))
            .unwrap();
    }
    p.flush().unwrap();
    segment::list_segments(&dir.join("topics/t/0")).unwrap()
}

fn read_all(log: &LocalLog) -> Result<Vec<Record>, TopicError> {
    let mut c = log.consumer(None).unwrap();
    c.assign_all("t", StartOffset::Earliest)?;
    let mut out = Vec::new();
    loop {
        let got = c.poll(1000, Duration::from_millis(50))?;
        if got.is_empty() {
            return Ok(out);
        }
        out.extend(got);
    }
}

/// Regression: opening a partition for writing cut off everything after a
/// damaged record in the middle of the active segment, as if it were a
/// torn tail, and the next record reused the offset of the first one lost.
#[test]
fn opening_for_write_deleted_every_record_after_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic(&TopicSpec::new("t")).unwrap();
        let mut p = log.producer().unwrap();
        for i in 0..50u8 {
            p.send(ProducerRecord::new("t", None, Some(vec![i; 40])))
                .unwrap();
        }
        p.flush().unwrap();
    }
    let seg = segment::segment_path(&dir.path().join("topics/t/0"), 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();

    let log = open(dir.path());
    let mut p = log.producer().unwrap();
    let err = p
        .send(ProducerRecord::new("t", None, Some(b"next".to_vec())))
        .and_then(|_| p.flush())
        .unwrap_err();
    assert!(
        matches!(&err, TopicError::Corrupt { reason, .. } if reason.contains("not a torn write")),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "the segment is untouched"
    );
    // A reader stops at the damage too, rather than skipping it.
    assert!(matches!(read_all(&log), Err(TopicError::Corrupt { .. })));
}

/// Regression: a closed segment truncated in the middle of a record was
/// read up to the cut, then the reader moved on to the next segment, and a
/// bounded run exited 0 with the rest of that segment's records missing.
#[test]
fn closed_segment_truncated_mid_record_was_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let segments = segmented(dir.path(), 100);
    assert!(segments.len() >= 3, "{segments:?}");
    let closed = segment::segment_path(&dir.path().join("topics/t/0"), segments[1]);
    let len = std::fs::metadata(&closed).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&closed)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let err = read_all(&open(dir.path())).unwrap_err();
    assert!(
        matches!(&err, TopicError::Corrupt { reason, .. } if reason.contains("closed segment ends inside a record")),
        "{err}"
    );
}

/// Regression: a deleted closed segment was skipped: the reader went from
/// the segment before it to the one after it.
#[test]
fn deleted_closed_segment_was_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let segments = segmented(dir.path(), 100);
    let gone = segments[1];
    std::fs::remove_file(segment::segment_path(&dir.path().join("topics/t/0"), gone)).unwrap();
    let err = read_all(&open(dir.path())).unwrap_err();
    assert!(
        matches!(&err, TopicError::Missing { from, to, .. } if from == &gone && to == &segments[2]),
        "{err}"
    );
}

/// A position that retention has passed (records deleted before they were
/// read) is an error for a reader that asked for it, not a jump ahead.
#[test]
fn a_recorded_position_behind_the_oldest_record_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let segments = segmented(dir.path(), 100);
    std::fs::remove_file(segment::segment_path(&dir.path().join("topics/t/0"), 0)).unwrap();
    let log = open(dir.path());
    let mut c = log.consumer(None).unwrap();
    c.assign("t", &[(0, StartOffset::At(3))]).unwrap();
    let err = c.poll(10, Duration::from_millis(50)).unwrap_err();
    assert!(
        matches!(&err, TopicError::Missing { from: 3, to, .. } if to == &segments[1]),
        "{err}"
    );
    // "From the oldest record" starts where retention left the topic.
    let all = read_all(&log).unwrap();
    assert_eq!(all[0].offset, segments[1]);
    assert_eq!(all.len(), 100 - segments[1] as usize);
}

/// Compaction must not rewrite a damaged closed segment with only the
/// records before the damage.
#[test]
fn compaction_refuses_a_damaged_closed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic(&compacted_spec("c")).unwrap();
    let mut p = log.producer().unwrap();
    for i in 0..100u8 {
        p.send(ProducerRecord::new(
            "c",
            Some(vec![i % 5]),
            Some(vec![i; 40]),
        ))
        .unwrap();
    }
    p.flush().unwrap();
    let dir0 = dir.path().join("topics/c/0");
    let segments = segment::list_segments(&dir0).unwrap();
    let closed = segment::segment_path(&dir0, segments[0]);
    let mut bytes = std::fs::read(&closed).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&closed, &bytes).unwrap();
    assert!(matches!(log.maintain("c"), Err(TopicError::Corrupt { .. })));
    assert_eq!(std::fs::read(&closed).unwrap(), bytes);
}
