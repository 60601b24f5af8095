//! Retained history of the sources: the archive for the old range, then
//! the topic for the tail.
//!
//! Each partition is read in offset order: its archive files are merged by
//! offset (files are split by event day, so one checkpoint's files overlap:
//! an out-of-order event just after midnight has a lower offset than the
//! previous day's last). Offsets, not timestamps, join the two halves: the
//! tail starts right after the last archived offset. A record at an offset
//! already read is a duplicate (the archive holds a record twice after a
//! crash between archiving and checkpointing) and is dropped and counted;
//! a hole in the archive's offsets is reported with its range.
//! If the topic no longer retains the offset where the archive ends, the
//! history has a hole and the backfill stops and says where.
//!
//! Only history present when the backfill starts is read: records at or
//! after each partition's end offset of that moment are left for the live
//! job, so a backfill is a bounded, repeatable run.

use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::archive::{self, ArchiveError, ArchiveFile};
use crate::store::Store;
use crate::topic::{Backend, Consumer, Record, StartOffset, TopicError};

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    /// An archive file could not be read.
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    /// A topic could not be read.
    Topic(#[from] TopicError),
    #[error(
        "history has a gap in `{topic}` partition {partition}: the archive ends before offset {archived_to} but the topic now starts at offset {low}, so offsets {archived_to}..{low} are in neither. Restore the missing archive files, or pass a later --from if that range is not needed"
    )]
    /// Offsets in neither the archive nor the topic.
    Gap {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset the archive ends before.
        archived_to: i64,
        /// The topic's first offset.
        low: i64,
    },
}

impl HistoryError {
    /// Who must act.
    pub fn blame(&self) -> crate::topic::Blame {
        match self {
            HistoryError::Archive(e) => e.blame(),
            HistoryError::Topic(e) => e.blame(),
            // Retention deleted what the archive never got.
            HistoryError::Gap { .. } => crate::topic::Blame::Environment,
        }
    }
}

/// One partition of one source.
struct Cursor {
    topic: String,
    partition: i32,
    /// Archive files not yet opened, by first offset.
    files: VecDeque<ArchiveFile>,
    /// Records of the opened archive files not yet returned, one queue per
    /// file, each in offset order. Files overlap in offsets (a checkpoint's
    /// records are split by event day, and an out-of-order event after
    /// midnight has a lower offset than the previous day's last), so they
    /// are merged by offset, never read one after another.
    open: Vec<VecDeque<Record>>,
    /// The next offset wanted; anything below it was read already.
    next: i64,
    /// Some record came from the archive.
    archived: bool,
    /// Earliest offset the topic retained when the backfill started.
    low: i64,
    /// End offset when the backfill started.
    end: i64,
    /// Records read twice (a crash between archiving and checkpointing
    /// archives them again) and dropped: the same offset, the same record.
    duplicates: u64,
    /// Holes in the archive's offsets: (first missing, first present).
    holes: Vec<(i64, i64)>,
}

impl Cursor {
    fn done(&self) -> bool {
        self.next >= self.end
    }

    /// The opened file whose next record has the lowest offset (opened
    /// queues are never empty: a drained one is dropped).
    fn front(&self) -> Option<usize> {
        (0..self.open.len()).min_by_key(|i| self.open[*i][0].offset)
    }

    /// Opens every archive file that may hold the next record in offset
    /// order: all files whose first offset is at or below the lowest
    /// buffered one (or the next file, when nothing is buffered).
    fn fill(&mut self, store: &Store) -> Result<(), ArchiveError> {
        loop {
            let head = self.front().map(|i| self.open[i][0].offset);
            let due = match (head, self.files.front()) {
                (_, None) => return Ok(()),
                (None, Some(_)) => true,
                (Some(h), Some(f)) => f.first <= h,
            };
            if !due {
                return Ok(());
            }
            let file = self.files.pop_front().expect("checked");
            let mut records = archive::read_file(store, &self.topic, &file.name)?;
            records.retain(|r| r.offset < self.end);
            records.sort_by_key(|r| r.offset);
            if !records.is_empty() {
                self.open.push(records.into());
            }
        }
    }

    /// The next record in offset order (opening the archive files that
    /// may hold it); records at offsets already returned are duplicates,
    /// dropped and counted.
    fn pop(&mut self, store: &Store) -> Result<Option<Record>, ArchiveError> {
        loop {
            self.fill(store)?;
            let Some(i) = self.front() else {
                return Ok(None);
            };
            let rec = self.open[i].pop_front().expect("non-empty");
            if self.open[i].is_empty() {
                self.open.swap_remove(i);
            }
            if rec.offset < self.next {
                self.duplicates += 1;
                continue;
            }
            if self.archived && rec.offset > self.next {
                self.holes.push((self.next, rec.offset));
            }
            self.next = rec.offset + 1;
            self.archived = true;
            return Ok(Some(rec));
        }
    }

    /// Timestamp of the next record, once [`Cursor::fill`] ran.
    fn next_ts(&self) -> Option<i64> {
        self.front().map(|i| self.open[i][0].timestamp_ms)
    }
}

/// Reads the sources' history, archive first.
pub struct History {
    archive: Option<Store>,
    /// One per (source, partition), sources in the inputs' order.
    cursors: Vec<Cursor>,
    /// Per cursor (by index) still reading the topic: its own consumer, so
    /// every partition advances in every poll and the tasks of a replay
    /// have work at the same time.
    tail: Option<Vec<(usize, Box<dyn Consumer>)>>,
    backend: std::sync::Arc<dyn Backend>,
    /// Records returned from the archive.
    pub from_archive: u64,
    /// Records returned from the topics.
    pub from_topics: u64,
    /// History that was already gone and never archived, one line per
    /// partition.
    pub lost: Vec<String>,
}

impl History {
    /// History of `topics` (in source order); `bounds` gives per (source
    /// index, partition) the (low, end) offsets at start.
    pub fn open(
        backend: std::sync::Arc<dyn Backend>,
        archive: Option<Store>,
        topics: &[String],
        bounds: &std::collections::HashMap<(usize, i32), (i64, i64)>,
    ) -> Result<History, HistoryError> {
        let mut cursors = Vec::new();
        let mut keys: Vec<&(usize, i32)> = bounds.keys().collect();
        keys.sort();
        let mut files = std::collections::HashMap::new();
        for (s, topic) in topics.iter().enumerate() {
            if let Some(store) = &archive {
                files.insert(s, archive::files_of(store, topic)?);
            }
        }
        for &(s, p) in keys {
            let (low, end) = bounds[&(s, p)];
            let files: VecDeque<ArchiveFile> = files
                .get_mut(&s)
                .and_then(|f| f.remove(&p))
                .unwrap_or_default()
                .into();
            cursors.push(Cursor {
                topic: topics[s].clone(),
                partition: p,
                archived: false,
                files,
                open: Vec::new(),
                next: 0,
                low,
                end,
                duplicates: 0,
                holes: Vec::new(),
            });
        }
        Ok(History {
            archive,
            cursors,
            tail: None,
            backend,
            from_archive: 0,
            from_topics: 0,
            lost: Vec::new(),
        })
    }

    /// Records in history (an estimate for progress: archived records are
    /// counted from offset 0).
    pub fn len(&self) -> u64 {
        self.cursors
            .iter()
            .map(|c| {
                let from = if c.files.is_empty() { c.low } else { 0 };
                (c.end - from).max(0) as u64
            })
            .sum()
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every partition is read to its end.
    pub fn done(&self) -> bool {
        self.cursors.iter().all(Cursor::done)
    }

    /// The partitions not read to their end, as `topic[partition] at
    /// offset/end`.
    pub fn unfinished(&self) -> Vec<String> {
        self.cursors
            .iter()
            .filter(|c| !c.done())
            .map(|c| format!("{}[{}] at {}/{}", c.topic, c.partition, c.next, c.end))
            .collect()
    }

    /// Archived records read twice and dropped (lossless: the same offset
    /// of the same partition is the same record).
    pub fn duplicates(&self) -> u64 {
        self.cursors.iter().map(|c| c.duplicates).sum()
    }

    /// Everything history could not give, one line per partition: offsets
    /// past retention and never archived, and holes inside the archive.
    pub fn incomplete(&self) -> Vec<String> {
        let mut out = self.lost.clone();
        for c in &self.cursors {
            if c.holes.is_empty() {
                continue;
            }
            let missing: i64 = c.holes.iter().map(|(a, b)| b - a).sum();
            let ranges: Vec<String> = c
                .holes
                .iter()
                .take(5)
                .map(|(a, b)| format!("{a}..{b}"))
                .collect();
            out.push(format!(
                "`{}` partition {}: the archive has no records at {} offsets ({}{}): an archive file is missing, or the topic is compacted",
                c.topic,
                c.partition,
                missing,
                ranges.join(", "),
                if c.holes.len() > 5 { ", …" } else { "" }
            ));
        }
        out
    }

    /// Partition `partition` of `topic` is read to its end.
    pub fn partition_done(&self, topic: &str, partition: i32) -> bool {
        self.cursors
            .iter()
            .find(|c| c.topic == topic && c.partition == partition)
            .is_none_or(Cursor::done)
    }

    /// Up to `max` more records. From the archive, the partition whose
    /// next record is oldest goes first, so sources and partitions advance
    /// together in time and few events wait for the watermark.
    pub fn poll(&mut self, max: usize) -> Result<Vec<Record>, HistoryError> {
        if let Some(store) = &self.archive {
            let mut out = Vec::new();
            while out.len() < max {
                for c in &mut self.cursors {
                    c.fill(store)?;
                }
                let Some(c) = self
                    .cursors
                    .iter_mut()
                    .filter_map(|c| c.next_ts().map(|ts| (ts, c)))
                    .min_by_key(|(ts, _)| *ts)
                    .map(|(_, c)| c)
                else {
                    break;
                };
                let take = (max - out.len()).min(1_000);
                for _ in 0..take {
                    match c.pop(store)? {
                        Some(rec) => out.push(rec),
                        None => break,
                    }
                }
            }
            if !out.is_empty() {
                self.from_archive += out.len() as u64;
                return Ok(out);
            }
            // The archive is read: the topics take over.
            self.archive = None;
            self.start_tail()?;
        }
        if self.tail.is_none() {
            self.start_tail()?;
        }
        let tail = self.tail.as_mut().expect("started");
        tail.retain(|(c, _)| !self.cursors[*c].done());
        if tail.is_empty() {
            return Ok(Vec::new());
        }
        let share = (max / tail.len()).max(1);
        let mut out = Vec::new();
        for (i, (c, consumer)) in tail.iter_mut().enumerate() {
            // Wait a little on the first partition only, so an idle poll
            // does not spin and a busy one does not wait for each.
            let wait = if i == 0 && out.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            let cursor = &mut self.cursors[*c];
            for rec in consumer.poll(share, wait)? {
                if rec.offset >= cursor.next && rec.offset < cursor.end {
                    cursor.next = rec.offset + 1;
                    out.push(rec);
                }
            }
        }
        self.from_topics += out.len() as u64;
        Ok(out)
    }

    /// Assigns the topics from where the archive stopped.
    fn start_tail(&mut self) -> Result<(), HistoryError> {
        let mut tail = Vec::new();
        for (i, c) in self.cursors.iter_mut().enumerate() {
            if c.archived && c.next < c.low {
                return Err(HistoryError::Gap {
                    topic: c.topic.clone(),
                    partition: c.partition,
                    archived_to: c.next,
                    low: c.low,
                });
            }
            if !c.archived {
                if c.low > 0 {
                    self.lost.push(format!(
                        "`{}` partition {}: offsets 0..{} ({} records) are past retention and not archived",
                        c.topic, c.partition, c.low, c.low
                    ));
                }
                c.next = c.next.max(c.low);
            }
            if c.done() {
                continue;
            }
            let mut consumer = self.backend.consumer(None)?;
            consumer.assign(&c.topic, &[(c.partition, StartOffset::At(c.next))])?;
            tail.push((i, consumer));
        }
        self.tail = Some(tail);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::engine::archive::ArchiveSink;
    use crate::topic::local::{LocalLog, LocalLogConfig};
    use crate::topic::{ProducerRecord, TopicSpec};

    const DAY: i64 = 86_400_000;

    /// A topic of `n` records around UTC midnight, out of order by up to a
    /// minute, all of them archived by one flush (so split into two
    /// overlapping day files), and a history over it.
    fn archived(n: i64, flushes: usize) -> (tempfile::TempDir, Arc<dyn Backend>, Store) {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn Backend> =
            Arc::new(LocalLog::open(LocalLogConfig::new(dir.path())).unwrap());
        log.create_topic(&TopicSpec::new("clicks")).unwrap();
        let mut producer = log.producer().unwrap();
        for i in 0..n {
            // Every third event arrives a minute late.
            let ts = 10 * DAY - n / 2 * 1000 + i * 1000 - if i % 3 == 0 { 60_000 } else { 0 };
            let mut rec = ProducerRecord::new("clicks", None, Some(vec![i as u8])).at(ts);
            rec.partition = Some(0);
            producer.send(rec).unwrap();
        }
        producer.flush().unwrap();
        let store = Store::open("memory://history").unwrap();
        let mut consumer = log.consumer(None).unwrap();
        consumer
            .assign_all("clicks", StartOffset::Earliest)
            .unwrap();
        let mut records = Vec::new();
        while records.len() < n as usize {
            records.extend(consumer.poll(1000, Duration::from_millis(100)).unwrap());
        }
        let mut sink = ArchiveSink::new(store.clone(), vec!["clicks".into()]);
        for f in 0..flushes {
            // Later flushes archive again from a quarter in (a crash
            // between archiving and checkpointing).
            for r in &records[f * records.len() / 4..] {
                sink.push(r);
            }
            sink.flush(0).unwrap();
        }
        (dir, log, store)
    }

    fn read_all(log: Arc<dyn Backend>, store: Store, n: i64) -> (Vec<i64>, History) {
        let bounds = HashMap::from([((0usize, 0i32), (0i64, n))]);
        let mut history = History::open(log, Some(store), &["clicks".into()], &bounds).unwrap();
        let mut offsets = Vec::new();
        while !history.done() {
            let got = history.poll(97).unwrap();
            assert!(!got.is_empty() || history.done(), "history stalled");
            offsets.extend(got.iter().map(|r| r.offset));
        }
        (offsets, history)
    }

    /// Regression: archive files are split by event day, so an
    /// out-of-order event just after midnight has a lower offset than the
    /// previous day's last, and reading the files one after another took
    /// it for a duplicate and dropped it.
    #[test]
    fn archive_backfill_dropped_events_across_utc_midnight() {
        let n = 400;
        let (_dir, log, store) = archived(n, 1);
        let files = archive::files_of(&store, "clicks").unwrap();
        assert_eq!(files[&0].len(), 2, "one file per day");
        let (offsets, history) = read_all(log, store, n);
        assert_eq!(offsets, (0..n).collect::<Vec<_>>());
        assert_eq!(history.from_archive, n as u64);
        assert_eq!(history.duplicates(), 0);
        assert!(history.incomplete().is_empty());
    }

    /// Records archived twice (a crash between archiving and checkpointing)
    /// are read once and counted.
    #[test]
    fn records_archived_twice_are_read_once_and_counted() {
        let n = 300;
        let (_dir, log, store) = archived(n, 2);
        let stored: usize = archive::files_of(&store, "clicks").unwrap()[&0]
            .iter()
            .map(|f| archive::read_file(&store, "clicks", &f.name).unwrap().len())
            .sum();
        assert!(stored > n as usize);
        let (offsets, history) = read_all(log, store, n);
        assert_eq!(offsets, (0..n).collect::<Vec<_>>());
        assert_eq!(history.duplicates(), (stored - n as usize) as u64);
    }

    /// A deleted archive file is a hole, reported with its range, not a
    /// silent skip (the topic still has the records after the archive).
    #[test]
    fn a_deleted_archive_file_is_reported_as_a_hole() {
        let n = 400;
        let (_dir, log, store) = archived(n, 1);
        let files = archive::files_of(&store, "clicks").unwrap();
        // The second day's file: what it held is missing from the middle
        // of the offsets (day one's file also holds the late events after
        // midnight).
        let gone = &files[&0][1];
        let held: std::collections::BTreeSet<i64> =
            archive::read_file(&store, "clicks", &gone.name)
                .unwrap()
                .iter()
                .map(|r| r.offset)
                .collect();
        store.delete(&gone.name).unwrap();
        let (offsets, history) = read_all(log, store, n);
        let read: std::collections::BTreeSet<i64> = offsets.iter().copied().collect();
        assert_eq!(read.len(), offsets.len(), "no offset twice");
        let union: Vec<i64> = read.union(&held).copied().collect();
        assert_eq!(union, (0..n).collect::<Vec<_>>());
        let missing = n as usize - read.len();
        assert!(missing > 0);
        let incomplete = history.incomplete();
        assert_eq!(incomplete.len(), 1, "{incomplete:?}");
        assert!(
            incomplete[0].contains(&format!("the archive has no records at {missing} offsets")),
            "{incomplete:?}"
        );
    }
}
