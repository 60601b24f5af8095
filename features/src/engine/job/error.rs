//! Why a job could not start or stopped, and who must act.

use crate::registry::RegistryError;
use crate::spec::SpecError;
use crate::store::StoreError;
use crate::topic::TopicError;

use super::{CheckpointError, learners};

/// Why a job could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    /// A spec problem.
    Spec(#[from] SpecError),
    #[error(transparent)]
    /// A topic could not be read or written.
    Topic(#[from] TopicError),
    #[error(transparent)]
    /// Object storage failed.
    Store(#[from] StoreError),
    #[error(transparent)]
    /// A checkpoint could not be read or written.
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    /// The models failed.
    Learners(#[from] learners::LearnerError),
    #[error("registry: {0}")]
    /// The schema registry failed.
    Registry(#[from] RegistryError),
    #[error("{0}")]
    /// A record could not be encoded or decoded.
    Avro(#[from] crate::avro::AvroError),
    #[error(
        "sources are not co-partitioned: {detail}. Views are computed per partition, so every source needs the same partition count (and the same key partitioning)"
    )]
    /// Sources differ in partitions.
    NotCoPartitioned {
        /// Which sources differ, and how.
        detail: String,
    },
    #[error("{0}")]
    /// Anything else that failed (a bug, or an unclassified failure).
    Output(String),
    /// A command-line option does not fit the spec or its data (the user
    /// must change it).
    #[error("{0}")]
    Options(String),
    /// An online store (Redis) could not be reached or written: the job
    /// stops before its checkpoint, so nothing it covers is lost.
    #[error("online store {url}: {why}")]
    OnlineStore {
        /// The store's URL, password left out.
        url: String,
        /// What failed.
        why: String,
    },
    /// An output store holds a table that does not fit the view (the
    /// spec changed): the user must migrate or drop it.
    #[error("{0}")]
    StoreMismatch(String),
    /// History a backfill must read is in neither the archive nor the
    /// topic.
    #[error("{0}")]
    HistoryGap(String),
    /// A checkpoint's position is outside what the source holds now.
    #[error(
        "task {partition} resumes `{topic}` partition {partition} at offset {at}, but the topic now holds offsets {low}..{high}: {why}. eddy stops rather than skip records or wait for offsets that may never come. If the topic was recreated or emptied on purpose, delete the pipeline's checkpoints ({url}) and rebuild (with an archive, `eddy backfill` restores the history)"
    )]
    PositionLost {
        /// The source topic.
        topic: String,
        /// The task (and partition).
        partition: i32,
        /// The offset the task resumes at.
        at: i64,
        /// The topic's first offset.
        low: i64,
        /// The topic's end offset.
        high: i64,
        /// What that means.
        why: &'static str,
        /// Where the checkpoints are.
        url: String,
    },
}

impl JobError {
    /// Who must act, kept from the error that caused it.
    pub fn blame(&self) -> crate::topic::Blame {
        match self {
            JobError::Spec(e) => e.blame(),
            JobError::Topic(e) => e.blame(),
            JobError::Store(e) => e.blame(),
            JobError::Checkpoint(e) => e.blame(),
            JobError::Registry(e) => e.blame(),
            JobError::Avro(e) => e.blame(),
            JobError::NotCoPartitioned { .. }
            | JobError::Options(_)
            | JobError::StoreMismatch(_) => crate::topic::Blame::User,
            // Data that must be read is gone: the topics or the archive.
            JobError::HistoryGap(_)
            | JobError::PositionLost { .. }
            | JobError::OnlineStore { .. } => crate::topic::Blame::Environment,
            JobError::Learners(e) => e.blame(),
            JobError::Output(_) => crate::topic::Blame::Internal,
        }
    }
}
