//! The seam between a running job and the models it trains.
//!
//! `eddy-features` knows nothing about learners (they live in
//! `eddy-training`, which depends on this crate, not the other way round).
//! A job with models is given a [`Learners`] and then, for every event of a
//! model's source, reads every view for the event's key as of just before
//! the event, the same point-in-time read [`crate::engine::backfill`]
//! makes for a training set, and hands those rows over in release order.
//! At each checkpoint the learners publish and save their models before
//! the tasks record their offsets, so a model is never behind the offsets
//! a restart resumes from.

use crate::engine::task::ProbedRows;
use crate::topic::{Blame, Producer};

/// Learners failed: what they were doing, who must act, and the error
/// underneath (a topic or storage error keeps its type, so the exit code
/// follows from it).
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct LearnerError {
    /// What failed, naming the model (`model `like`: saving a snapshot`).
    pub context: String,
    /// Who must act.
    pub blame: Blame,
    /// The error underneath.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl LearnerError {
    /// Who must act.
    pub fn blame(&self) -> Blame {
        self.blame
    }
}

/// A table column joined onto a source's events for its models: the
/// table row valid at the event's time, looked up by one of the event's
/// columns (null without one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableColumn {
    /// The table, by name.
    pub table: String,
    /// The source's column the table is looked up by, by index.
    pub on: usize,
    /// The table's column, by name.
    pub column: String,
}

/// Models trained inside a job.
pub trait Learners: Send {
    /// The sources (by name) whose events are examples.
    fn sources(&self) -> Vec<String>;

    /// Per source (by name): the table columns appended to each of its
    /// events, in this order, before the learners see it. No default: a
    /// wrapper that forgot to forward it handed its models events without
    /// the columns they read (`eddy run --serve` did).
    fn joined(&self) -> Vec<(String, Vec<TableColumn>)>;

    /// Whether any learner reads the views' features. If none does (only
    /// recommenders), the job does not read every view for each event.
    /// No default, for the reason `joined` has none.
    fn reads_features(&self) -> bool;

    /// Whether any learner reads a re-keyed view (at the event's key for
    /// it): each example then waits for the task owning that key to
    /// answer. No default, for the reason `joined` has none.
    fn reads_rekeyed(&self) -> bool;

    /// Tells the learners the job's sources in index order: probed rows
    /// name their source by that index.
    fn bind(&mut self, job_sources: &[String]);

    /// Learns from one task's probed events: each event's key, time,
    /// offset, source, own columns and every feature as of just before it,
    /// in the order the task released them.
    fn learn(&mut self, partition: i32, rows: ProbedRows) -> Result<(), LearnerError>;

    /// With a learner reading a re-keyed view (`reads_rekeyed`), each
    /// task's events again as they are released, their re-keyed views'
    /// columns null: the learners that read no re-keyed view learn from
    /// these and not from `learn`'s, so they do not wait for answers they
    /// do not need. No default, for the reason `joined` has none.
    fn learn_released(&mut self, partition: i32, rows: ProbedRows) -> Result<(), LearnerError>;

    /// Publishes updates and saves snapshots with the offsets learned up
    /// to. Called at every checkpoint, after outputs are flushed and before
    /// the tasks' checkpoints are written.
    fn checkpoint(&mut self, producer: &mut dyn Producer) -> Result<(), LearnerError>;

    /// The models' metrics now (the job's metrics report them under the
    /// pipeline's label).
    fn metrics(&self) -> Vec<crate::metrics::Family>;

    /// One line per model for the end-of-run summary.
    fn summary(&self) -> Vec<String>;
}
