//! Retained history of the sources: the archive for the old range, then
//! the topic for the tail.
//!
//! Each partition is read in offset order. Offsets, not timestamps, join
//! the two halves: the tail starts right after the last archived offset,
//! and any record at or below an offset already read is dropped (the
//! archive may hold a record twice after a crash, and files may overlap).
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
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(
        "history has a gap in `{topic}` partition {partition}: the archive ends before offset {archived_to} but the topic now starts at offset {low}, so offsets {archived_to}..{low} are in neither. Restore the missing archive files, or pass a later --from if that range is not needed"
    )]
    Gap {
        topic: String,
        partition: i32,
        archived_to: i64,
        low: i64,
    },
}

/// One partition of one source.
struct Cursor {
    topic: String,
    partition: i32,
    /// Archive files not yet read.
    files: VecDeque<ArchiveFile>,
    /// Records of the current archive file not yet returned.
    buffered: VecDeque<Record>,
    /// The next offset wanted; anything below it was read already.
    next: i64,
    /// Some record came from the archive.
    archived: bool,
    /// Earliest offset the topic retained when the backfill started.
    low: i64,
    /// End offset when the backfill started.
    end: i64,
}

impl Cursor {
    fn done(&self) -> bool {
        self.next >= self.end
    }

    /// Loads archive files until a record is buffered or none are left.
    fn fill(&mut self, store: &Store) -> Result<(), ArchiveError> {
        while self.buffered.is_empty() {
            let Some(file) = self.files.pop_front() else {
                return Ok(());
            };
            let records = archive::read_file(store, &self.topic, &file.name)?;
            self.buffered.extend(
                records
                    .into_iter()
                    .filter(|r| r.offset >= self.next && r.offset < self.end),
            );
        }
        Ok(())
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
                buffered: VecDeque::new(),
                next: 0,
                low,
                end,
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
                    .filter(|c| !c.buffered.is_empty())
                    .min_by_key(|c| c.buffered[0].timestamp_ms)
                else {
                    break;
                };
                let take = (max - out.len()).min(1_000).min(c.buffered.len());
                for rec in c.buffered.drain(..take) {
                    if rec.offset >= c.next {
                        c.next = rec.offset + 1;
                        c.archived = true;
                        out.push(rec);
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
                        "`{}` partition {}: offsets 0..{} are past retention and not archived",
                        c.topic, c.partition, c.low
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
