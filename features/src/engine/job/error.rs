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
    Spec(#[from] SpecError),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Learners(#[from] learners::LearnerError),
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Avro(#[from] crate::avro::AvroError),
    #[error(
        "sources are not co-partitioned: {detail}. Views are computed per partition, so every source needs the same partition count (and the same key partitioning)"
    )]
    NotCoPartitioned { detail: String },
    #[error("{0}")]
    Output(String),
    /// A command-line option does not fit the spec or its data (the user
    /// must change it).
    #[error("{0}")]
    Options(String),
    /// History a backfill must read is in neither the archive nor the
    /// topic.
    #[error("{0}")]
    HistoryGap(String),
    /// A checkpoint's position is outside what the source holds now.
    #[error(
        "task {partition} resumes `{topic}` partition {partition} at offset {at}, but the topic now holds offsets {low}..{high}: {why}. eddy stops rather than skip records or wait for offsets that may never come. If the topic was recreated or emptied on purpose, delete the pipeline's checkpoints ({url}) and rebuild (with an archive, `eddy backfill` restores the history)"
    )]
    PositionLost {
        topic: String,
        partition: i32,
        at: i64,
        low: i64,
        high: i64,
        why: &'static str,
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
            JobError::NotCoPartitioned { .. } | JobError::Options(_) => crate::topic::Blame::User,
            // Data that must be read is gone: the topics or the archive.
            JobError::HistoryGap(_) | JobError::PositionLost { .. } => {
                crate::topic::Blame::Environment
            }
            JobError::Learners(e) => e.blame(),
            JobError::Output(_) => crate::topic::Blame::Internal,
        }
    }
}
