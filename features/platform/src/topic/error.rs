//! Errors of the topic layer.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the topic layer, grouped by who has to act (see [`TopicError::blame`]).
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The topic does not exist.
    #[error(
        "topic `{0}` does not exist; create it with `eddy topics create {0}` (eddy does not auto-create topics)"
    )]
    UnknownTopic(String),
    /// Tried to create a topic that exists.
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    /// A name Kafka would reject.
    #[error("`{0}` is not a valid topic name: use 1 to 249 characters of a-z A-Z 0-9 . _ -")]
    InvalidTopicName(String),
    /// A partition outside the topic.
    #[error("topic `{topic}` has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: i32,
        /// Partition count.
        partitions: i32,
    },
    /// Bad configuration, detected before anything was written.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record that the topic cannot take (for example no key on a compacted topic).
    #[error("record rejected by topic `{topic}`: {reason}")]
    InvalidRecord {
        /// Topic name.
        topic: String,
        /// Why.
        reason: String,
    },
    /// No broker answered.
    #[error(
        "could not reach any Kafka broker of `{brokers}` within {timeout:?} ({detail}); check --brokers / EDDY_BROKERS, the network, and TLS/SASL settings"
    )]
    BrokerUnreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// How long we waited.
        timeout: Duration,
        /// What librdkafka said.
        detail: String,
    },
    /// Kafka reported an error.
    #[error("kafka: {0}")]
    Kafka(String),
    /// An operation did not finish in time.
    #[error("timed out after {after:?} while {what}")]
    Timeout {
        /// The operation.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// Another process writes this partition of the local log.
    #[error(
        "{path} is locked by another eddy process; stop it, or point --data-dir elsewhere (only one process may write a local-log partition; any number may read)"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Data in the local log is damaged somewhere other than its tail.
    #[error(
        "local log segment {path} is damaged at byte {position}: {reason}. eddy stops rather than skip or overwrite records: restore the partition from a copy, or move it aside and replay the topic from its producers"
    )]
    Corrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte offset of the bad record.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Records of a topic that is not compacted are missing: offsets must
    /// be contiguous, and the next record on disk is past the next one
    /// wanted.
    #[error(
        "local log {dir}: offsets {from}..{to} are missing ({reason}). eddy stops rather than skip them: restore the missing segment files, or, to accept the loss, start again from a later position (for a pipeline, delete its checkpoints and backfill from an archive)"
    )]
    Missing {
        /// Partition directory.
        dir: PathBuf,
        /// First missing offset.
        from: i64,
        /// The offset found instead.
        to: i64,
        /// Why they are missing, as far as the reader can tell.
        reason: String,
    },
    /// A file-system error in the local log.
    #[error("local log I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Who has to act on an error. Used for exit codes and for deciding whether
/// to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The user's input or configuration is wrong; retrying will not help.
    User,
    /// Something outside eddy (broker, disk, network) failed; retry may help.
    Environment,
    /// A bug or corruption: report it.
    Internal,
}

impl TopicError {
    /// Who has to act.
    pub fn blame(&self) -> Blame {
        match self {
            TopicError::UnknownTopic(_)
            | TopicError::TopicExists(_)
            | TopicError::InvalidTopicName(_)
            | TopicError::UnknownPartition { .. }
            | TopicError::Config(_)
            | TopicError::InvalidRecord { .. }
            | TopicError::Locked { .. } => Blame::User,
            TopicError::BrokerUnreachable { .. }
            | TopicError::Kafka(_)
            | TopicError::Timeout { .. }
            | TopicError::Io { .. } => Blame::Environment,
            TopicError::Corrupt { .. } | TopicError::Missing { .. } => Blame::Environment,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TopicError {
        let path = path.into();
        move |source| TopicError::Io { path, source }
    }
}
