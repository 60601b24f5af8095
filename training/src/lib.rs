//! Incremental learners: models that learn from every event as it arrives.
//!
//! Nothing here retrains in batch. Every learner implements [`Learner`]:
//! predict an example, then learn from it. Progressive validation falls out
//! of that order: each example is scored *before* the model has seen it,
//! so the running metrics ([`metrics::Progressive`]) measure exactly what a
//! model serving live traffic would have scored, with no holdout set.
//!
//! - [`hashing`]: sparse features from named columns, by the hashing trick,
//!   with namespaces and quadratic crosses (Vowpal Wabbit's model of input).
//! - [`ftrl`]: logistic regression trained by FTRL-Proximal (McMahan et al.
//!   2013), the click/like model.
//! - [`batch`]: the linfa logistic regression that online learning is
//!   measured against.
//! - [`metrics`]: logloss, accuracy, AUC and RMSE over progressive
//!   predictions.
//! - [`joiner`]: holds predictions until their delayed label arrives or
//!   their attribution window ends (a negative).
//! - [`lifecycle`]: versioned snapshots on object storage, and sparse
//!   deltas plus periodic snapshots on a compacted models topic, which
//!   serving replicas follow.
//! - [`plan`] (feature `online`): the spec's `models:` checked and
//!   planned, and the registry of kinds and their params.
//! - [`online`] (feature `online`): the spec's `models:`, trained inside
//!   `eddy run` from point-in-time probed events, published and
//!   snapshotted at every checkpoint.
//! - [`recommend`]: popularity with decay and streaming matrix
//!   factorization, with prequential HR@k and NDCG@k.

#![warn(missing_docs)]

pub mod batch;
pub mod ftrl;
pub mod hashing;
#[cfg(feature = "online")]
pub mod joiner;
pub mod lifecycle;
pub mod metrics;
#[cfg(feature = "online")]
pub mod online;
#[cfg(feature = "online")]
pub mod plan;
pub mod recommend;

pub use ftrl::{Ftrl, FtrlConfig};
pub use hashing::{FeatureHasher, Value};
pub use metrics::Progressive;

/// Why an example was not learned from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("feature `{feature}` is {value}: a NaN or infinite value would poison the weights")]
    /// An input is NaN or infinite.
    NotFinite {
        /// The input's name.
        feature: String,
        /// Its value.
        value: f64,
    },
    /// The label is not a finite number.
    #[error("the label is {0}: a label must be a finite number (0/1 for a classifier)")]
    BadLabel(f64),
}

impl Rejected {
    /// Who must act: the data is the user's (an example is skipped and
    /// counted by reason, never learned from).
    pub fn blame(&self) -> eddy_platform::topic::Blame {
        match self {
            Rejected::NotFinite { .. } | Rejected::BadLabel(_) => eddy_platform::topic::Blame::User,
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error(
        "model snapshot is unreadable ({0}): it was written by another version of eddy, or is damaged"
    )]
    /// A model snapshot does not decode.
    Snapshot(String),
    /// The batch model could not be fitted.
    #[error("fitting the batch model failed: {0}")]
    Fit(String),
}

impl TrainingError {
    /// Who must act.
    pub fn blame(&self) -> eddy_platform::topic::Blame {
        match self {
            // Written by another version, or damaged on disk.
            TrainingError::Snapshot(_) => eddy_platform::topic::Blame::Environment,
            TrainingError::Fit(_) => eddy_platform::topic::Blame::User,
        }
    }
}

/// One hashed example: feature indices and values.
pub type Features = [(u32, f32)];

/// A model that learns one example at a time.
///
/// `learn` returns the prediction made *before* the update, so a caller
/// gets progressive validation for free.
pub trait Learner {
    /// The prediction for an example (a probability for classifiers).
    fn predict(&self, x: &Features) -> f64;

    /// Predicts, then learns from the label `y`; returns the prediction.
    fn learn(&mut self, x: &Features, y: f64) -> f64;

    /// Learns a mini-batch in order; returns the predictions.
    fn learn_batch(&mut self, batch: &[(&Features, f64)]) -> Vec<f64> {
        batch.iter().map(|(x, y)| self.learn(x, *y)).collect()
    }
}
