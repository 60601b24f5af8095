//! The local log's consumer: one reader per assigned partition, woken at
//! once by writes in this process and every `poll_interval` for writes by
//! other processes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::partition;
use super::reader::PartitionReader;
use super::{LocalLog, groups};
use crate::topic::{Consumer, Record, StartOffset, TopicError};

struct AssignedPartition {
    topic: Arc<str>,
    partition: i32,
    reader: PartitionReader,
    /// Not read until resumed.
    paused: bool,
}

/// Consumer of the local log.
pub(super) struct LocalConsumer {
    log: LocalLog,
    group: Option<String>,
    readers: Vec<AssignedPartition>,
    next: usize,
}

impl LocalConsumer {
    pub(super) fn new(log: LocalLog, group: Option<&str>) -> Self {
        LocalConsumer {
            log,
            group: group.map(str::to_string),
            readers: Vec::new(),
            next: 0,
        }
    }

    /// Where to start, and whether that is a recorded position (which must
    /// still exist) rather than "the oldest record".
    fn start_offset(
        &mut self,
        topic: &str,
        partition: i32,
        start: StartOffset,
    ) -> Result<(i64, bool), TopicError> {
        let dir = self.log.topic_dir(topic).join(partition.to_string());
        Ok(match start {
            StartOffset::Earliest => (0, false),
            StartOffset::At(o) => (o, true),
            StartOffset::Latest => (self.high_watermark(topic, partition, &dir)?, true),
            StartOffset::Committed { fallback_latest } => match self.committed(topic, partition)? {
                Some(o) => (o, true),
                None if fallback_latest => (self.high_watermark(topic, partition, &dir)?, true),
                None => (0, false),
            },
        })
    }

    fn high_watermark(&self, topic: &str, partition: i32, dir: &Path) -> Result<i64, TopicError> {
        let own = self
            .log
            .shared
            .writers
            .lock()
            .expect("poisoned")
            .get(&(topic.to_string(), partition))
            .cloned();
        match own {
            Some(w) => Ok(w.lock().expect("poisoned").visible_high_watermark()),
            None => Ok(partition::offsets_on_disk(dir)?.1),
        }
    }
}

impl Consumer for LocalConsumer {
    fn assign(&mut self, topic: &str, partitions: &[(i32, StartOffset)]) -> Result<(), TopicError> {
        let meta = self.log.meta(topic)?;
        let name: Arc<str> = Arc::from(topic);
        for &(partition, start) in partitions {
            if !(0..meta.partitions).contains(&partition) {
                return Err(TopicError::UnknownPartition {
                    topic: topic.into(),
                    partition,
                    partitions: meta.partitions,
                });
            }
            let (offset, exact) = self.start_offset(topic, partition, start)?;
            self.readers
                .retain(|r| !(&*r.topic == topic && r.partition == partition));
            let dir = self.log.topic_dir(topic).join(partition.to_string());
            let contiguous = !meta.cleanup().compacts();
            self.readers.push(AssignedPartition {
                topic: name.clone(),
                partition,
                reader: PartitionReader::new(dir, offset, contiguous, exact),
                paused: false,
            });
        }
        Ok(())
    }

    fn pause(&mut self, topic: &str, partition: i32, paused: bool) -> Result<(), TopicError> {
        match self
            .readers
            .iter_mut()
            .find(|r| &*r.topic == topic && r.partition == partition)
        {
            Some(r) => {
                r.paused = paused;
                Ok(())
            }
            None => Err(TopicError::Config(format!(
                "pause on {topic}/{partition}, which this consumer is not assigned"
            ))),
        }
    }

    fn assign_all(&mut self, topic: &str, start: StartOffset) -> Result<(), TopicError> {
        let meta = self.log.meta(topic)?;
        let all: Vec<(i32, StartOffset)> = (0..meta.partitions).map(|p| (p, start)).collect();
        self.assign(topic, &all)
    }

    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, TopicError> {
        let deadline = Instant::now() + timeout;
        let mut stored = Vec::new();
        let mut out = Vec::new();
        loop {
            let seen = *self.log.shared.written.0.lock().expect("poisoned");
            let n = self.readers.len();
            for i in 0..n {
                if out.len() >= max {
                    break;
                }
                let idx = (self.next + i) % n;
                let a = &mut self.readers[idx];
                if a.paused {
                    continue;
                }
                stored.clear();
                a.reader.read(max - out.len(), &mut stored)?;
                out.extend(stored.drain(..).map(|r| Record {
                    topic: a.topic.to_string(),
                    partition: a.partition,
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                }));
            }
            if n > 0 {
                self.next = (self.next + 1) % n;
            }
            let now = Instant::now();
            if !out.is_empty() || now >= deadline {
                return Ok(out);
            }
            let wait = (deadline - now).min(self.log.shared.config.poll_interval);
            let (lock, cvar) = &self.log.shared.written;
            let guard = lock.lock().expect("poisoned");
            if *guard == seen {
                let _ = cvar.wait_timeout(guard, wait).expect("poisoned");
            }
        }
    }

    fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), TopicError> {
        match self
            .readers
            .iter_mut()
            .find(|r| &*r.topic == topic && r.partition == partition)
        {
            Some(r) => {
                r.reader.seek(offset);
                Ok(())
            }
            None => Err(TopicError::Config(format!(
                "seek on {topic}/{partition}, which this consumer is not assigned"
            ))),
        }
    }

    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<(), TopicError> {
        let group = self
            .group
            .as_deref()
            .ok_or_else(|| TopicError::Config("commit needs a consumer group".into()))?;
        groups::commit(self.log.dir(), group, offsets)
    }

    fn committed(&mut self, topic: &str, partition: i32) -> Result<Option<i64>, TopicError> {
        let Some(group) = self.group.as_deref() else {
            return Ok(None);
        };
        Ok(groups::load(self.log.dir(), group)?
            .get(&groups::slot(topic, partition))
            .copied())
    }
}
