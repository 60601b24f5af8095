//! One topic API, two backends.
//!
//! A *topic* is a named, partitioned, append-only log of [`Record`]s, exactly
//! as in Kafka: every record has a partition, an offset, a timestamp, an
//! optional key, an optional value (a missing value is a tombstone on a
//! compacted topic) and headers. Tables are topics too: a compacted topic,
//! read to its end, is the latest value per key.
//!
//! The API is synchronous on purpose. Stream operators work on batches in a
//! tight loop; a blocking `poll(max, timeout)` that returns a batch is the
//! shape both librdkafka (`BaseConsumer`) and a file reader have natively, and
//! it keeps the hot path free of executor overhead. Async services (HTTP) call
//! into it from blocking tasks.
//!
//! Backends:
//! - [`local::LocalLog`]: the embedded default, a directory of segment files.
//! - [`kafka::KafkaBackend`]: any Kafka-compatible cluster via librdkafka.
//!
//! [`open_backend`] picks one from [`BackendConfig`].

pub mod dead_letter;
mod error;
pub mod kafka;
pub mod local;
pub mod partitioner;

#[cfg(test)]
pub(crate) mod conformance;

pub use error::{Blame, TopicError};

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A record header. Kafka allows a header without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is a null header value.
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// A header with a UTF-8 value.
    pub fn text(key: impl Into<String>, value: impl AsRef<str>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.as_ref().as_bytes().to_vec()),
        }
    }
}

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic the record was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition. Offsets grow but may have gaps
    /// (compaction removes records and keeps the offsets of the rest).
    pub offset: i64,
    /// Record timestamp, milliseconds since the Unix epoch (producer's create time).
    pub timestamp_ms: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in the order they were written.
    pub headers: Vec<Header>,
}

impl Record {
    /// The value of the first header named `key`, if any.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
    }
}

/// A record to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Target topic.
    pub topic: String,
    /// Target partition. `None` picks one: murmur2 of the key (as Kafka's Java
    /// producer does), or round robin for records without a key.
    pub partition: Option<i32>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` writes a tombstone.
    pub value: Option<Vec<u8>>,
    /// Timestamp in ms since the epoch; `None` uses the current wall clock.
    pub timestamp_ms: Option<i64>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl ProducerRecord {
    /// A record with a key and a value, everything else defaulted.
    pub fn new(topic: impl Into<String>, key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            key,
            value,
            ..Default::default()
        }
    }

    /// Sets the timestamp.
    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Adds headers.
    pub fn with_headers(mut self, headers: &[Header]) -> Self {
        self.headers.extend_from_slice(headers);
        self
    }
}

/// What a topic does with old records (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete records older than the retention. Kafka's default.
    #[default]
    Delete,
    /// Keep the latest record per key (a table).
    Compact,
    /// Both: compact, and delete what is older than the retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// The value Kafka uses for `cleanup.policy`.
    pub fn as_kafka(&self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Parses Kafka's `cleanup.policy` value.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts: Vec<&str> = s.split(',').map(str::trim).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["delete"] => Some(CleanupPolicy::Delete),
            ["compact"] => Some(CleanupPolicy::Compact),
            ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }

    /// True when the topic keeps the latest record per key.
    pub fn compacts(&self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// True when the topic drops records older than its retention.
    pub fn deletes(&self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_kafka())
    }
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name: 1 to 249 characters of `[a-zA-Z0-9._-]`, as Kafka requires.
    pub name: String,
    /// Partition count. Default 1.
    pub partitions: i32,
    /// Replication factor (Kafka only; the local log keeps one copy). Default 1.
    pub replication_factor: i16,
    /// `cleanup.policy`. Default `delete`.
    pub cleanup: CleanupPolicy,
    /// `retention.ms`: records older than this may be deleted. `None` keeps
    /// the backend's default (Kafka: 7 days; local log: forever).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` per partition. `None`: no size limit.
    pub retention_bytes: Option<i64>,
    /// Further topic configs, passed to Kafka as they are. The local log
    /// understands `segment.bytes` and `delete.retention.ms` and rejects others.
    pub config: BTreeMap<String, String>,
}

impl TopicSpec {
    /// A one-partition topic with the `delete` policy.
    pub fn new(name: impl Into<String>) -> Self {
        TopicSpec {
            name: name.into(),
            partitions: 1,
            replication_factor: 1,
            cleanup: CleanupPolicy::Delete,
            retention_ms: None,
            retention_bytes: None,
            config: BTreeMap::new(),
        }
    }

    /// Sets the partition count.
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = n;
        self
    }

    /// Makes the topic compacted.
    pub fn compacted(mut self) -> Self {
        self.cleanup = CleanupPolicy::Compact;
        self
    }

    /// Checks what every backend requires of a spec: a valid name and at
    /// least one partition.
    pub fn validate(&self) -> Result<(), TopicError> {
        validate_topic_name(&self.name)?;
        if self.partitions < 1 {
            return Err(TopicError::Config(format!(
                "topic `{}`: partitions must be at least 1",
                self.name
            )));
        }
        Ok(())
    }

    /// Every config entry as Kafka names it, including the typed fields.
    pub fn kafka_configs(&self) -> BTreeMap<String, String> {
        let mut all = self.config.clone();
        all.insert("cleanup.policy".into(), self.cleanup.as_kafka().into());
        if let Some(ms) = self.retention_ms {
            all.insert("retention.ms".into(), ms.to_string());
        }
        if let Some(bytes) = self.retention_bytes {
            all.insert("retention.bytes".into(), bytes.to_string());
        }
        all
    }
}

/// Checks a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidTopicName(name.to_string()))
    }
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition id.
    pub id: i32,
    /// First offset still stored (the log start offset).
    pub low: i64,
    /// Offset the next record will get (the high watermark).
    pub high: i64,
}

/// What [`Backend::describe_topic`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Partitions with their offset range.
    pub partitions: Vec<PartitionInfo>,
    /// Cleanup policy, when the backend reports it.
    pub cleanup: Option<CleanupPolicy>,
}

impl TopicDescription {
    /// Records between low and high, summed over partitions. On a compacted
    /// topic this is an upper bound (offsets have gaps).
    pub fn approximate_records(&self) -> i64 {
        self.partitions.iter().map(|p| p.high - p.low).sum()
    }
}

/// Where a consumer starts reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The oldest stored record.
    Earliest,
    /// Only records written after the consumer starts.
    Latest,
    /// This offset (or the next stored one after it).
    At(i64),
    /// The group's committed offset, or the fallback if none was committed.
    Committed {
        /// Where to start when the group has no committed offset.
        fallback_latest: bool,
    },
}

impl std::str::FromStr for StartOffset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" | "beginning" => Ok(StartOffset::Earliest),
            "latest" | "end" => Ok(StartOffset::Latest),
            "committed" => Ok(StartOffset::Committed {
                fallback_latest: false,
            }),
            n => n
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(StartOffset::At)
                .ok_or_else(|| {
                    format!("`{s}` is not earliest, latest, committed or an offset >= 0")
                }),
        }
    }
}

/// A topic backend. The same code above this trait runs on either backend.
pub trait Backend: Send + Sync {
    /// "local" or "kafka", for messages and metrics.
    fn kind(&self) -> &'static str;
    /// Creates a topic. Fails with [`TopicError::TopicExists`] if it exists.
    fn create_topic(&self, spec: &TopicSpec) -> Result<(), TopicError>;
    /// Names of all topics, sorted.
    fn list_topics(&self) -> Result<Vec<String>, TopicError>;
    /// Partitions and offsets of one topic; [`TopicError::UnknownTopic`] if absent.
    fn describe_topic(&self, name: &str) -> Result<TopicDescription, TopicError>;
    /// A producer for any topic of this backend.
    fn producer(&self) -> Result<Box<dyn Producer>, TopicError>;
    /// A consumer. With a group it can commit offsets and start from them.
    fn consumer(&self, group: Option<&str>) -> Result<Box<dyn Consumer>, TopicError>;

    /// Creates the topic unless it exists. Returns true if it created it.
    fn ensure_topic(&self, spec: &TopicSpec) -> Result<bool, TopicError> {
        match self.create_topic(spec) {
            Ok(()) => Ok(true),
            Err(TopicError::TopicExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Writes records.
pub trait Producer: Send {
    /// Queues a record and returns the partition it goes to. The record is
    /// durable (and visible to every reader) once [`Producer::flush`] returns.
    fn send(&mut self, record: ProducerRecord) -> Result<i32, TopicError>;
    /// Waits until every queued record is written; reports the first failure.
    fn flush(&mut self) -> Result<(), TopicError>;
    /// Makes every queued record visible to readers as soon as possible,
    /// without waiting for durability where a backend tells the two apart:
    /// the local log writes to the OS here and fsyncs only in `flush`.
    /// Latency-bound writers (serving) publish per batch and flush now and
    /// then. Default: `flush`.
    fn publish(&mut self) -> Result<(), TopicError> {
        self.flush()
    }
}

/// Wall-clock epoch milliseconds (record timestamps, `emitted_at`).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads records.
pub trait Consumer: Send {
    /// Reads these partitions of `topic`, each from its start offset. Replaces
    /// any earlier assignment of this topic's partitions.
    fn assign(&mut self, topic: &str, partitions: &[(i32, StartOffset)]) -> Result<(), TopicError>;
    /// Reads every partition of `topic`, each from the same start offset.
    fn assign_all(&mut self, topic: &str, start: StartOffset) -> Result<(), TopicError>;
    /// Returns up to `max` records, waiting up to `timeout` for the first one.
    /// An empty batch means nothing arrived in time.
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, TopicError>;
    /// Moves an assigned partition to `offset`.
    fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), TopicError>;
    /// Stops (`paused`) or resumes reading an assigned partition. A paused
    /// partition returns no records; resumed, it goes on with the record
    /// after the last one returned. A reader that runs ahead of the others
    /// waits this way, rather than read records it can only hold.
    fn pause(&mut self, topic: &str, partition: i32, paused: bool) -> Result<(), TopicError>;
    /// Commits, for this consumer's group, the next offset to read.
    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<(), TopicError>;
    /// The group's committed offset for a partition, if any.
    fn committed(&mut self, topic: &str, partition: i32) -> Result<Option<i64>, TopicError>;
    /// Broker outages this consumer has waited through (or waits through
    /// now) since it was created. Default 0: a backend without brokers has
    /// none.
    fn outages(&self) -> u64 {
        0
    }
    /// Joins this consumer's group and lets the group assign the partitions
    /// of `topics`, telling `listener` of every change. Backends that cannot
    /// share partitions between processes (the local log) refuse.
    fn subscribe(
        &mut self,
        topics: &[String],
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<(), TopicError> {
        let _ = (topics, listener);
        Err(TopicError::Config(
            "this backend cannot share partitions through a consumer group".into(),
        ))
    }
}

/// Hears about a subscribed consumer's partition changes. Both methods run
/// inside [`Consumer::poll`], on the polling thread, while the group waits:
/// whatever they do is done before the group moves on.
pub trait RebalanceListener: Send + Sync {
    /// Partitions were assigned to this consumer; returns where to start
    /// reading each (only `Earliest` and `At` are supported here).
    fn assigned(&self, partitions: &[(String, i32)]) -> Vec<StartOffset>;
    /// Partitions are being taken away; after this returns another consumer
    /// may read them.
    fn revoked(&self, partitions: &[(String, i32)]);
}

/// How to reach a backend.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// The embedded log in this directory.
    Local(local::LocalLogConfig),
    /// A Kafka-compatible cluster.
    Kafka(kafka::KafkaConfig),
}

impl BackendConfig {
    /// The local log at `dir` with default settings.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        BackendConfig::Local(local::LocalLogConfig::new(dir))
    }
}

/// Opens the configured backend. For Kafka this contacts the brokers and
/// fails within the configured timeout if none answers.
pub fn open_backend(config: &BackendConfig) -> Result<Arc<dyn Backend>, TopicError> {
    Ok(match config {
        BackendConfig::Local(c) => Arc::new(local::LocalLog::open(c.clone())?),
        BackendConfig::Kafka(c) => Arc::new(kafka::KafkaBackend::connect(c.clone())?),
    })
}

/// Reads a whole topic from `start` up to its high watermarks as of the call.
/// Tables are bootstrapped this way before a stream starts.
pub fn read_to_end(
    backend: &dyn Backend,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>, TopicError> {
    let description = backend.describe_topic(topic)?;
    let mut ends: BTreeMap<i32, i64> = description
        .partitions
        .iter()
        .filter(|p| p.high > p.low)
        .map(|p| (p.id, p.high))
        .collect();
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    let mut consumer = backend.consumer(None)?;
    consumer.assign_all(topic, StartOffset::Earliest)?;
    let deadline = std::time::Instant::now() + timeout;
    while !ends.is_empty() {
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(TopicError::Timeout {
                what: format!("reading `{topic}` to its end"),
                after: timeout,
            });
        }
        for r in consumer.poll(10_000, (deadline - now).min(Duration::from_millis(500)))? {
            if let Some(&end) = ends.get(&r.partition) {
                if r.offset + 1 >= end {
                    ends.remove(&r.partition);
                }
                if r.offset < end {
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
}
