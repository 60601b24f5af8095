//! What a model saves: its learner, what it has learned up to per
//! partition, what it skipped and why, and the examples waiting for a
//! delayed label; and the fingerprint of the definition it was trained
//! with, so a changed model is never resumed from an old snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::ModelPlan;

use super::{LinearModel, RecommenderModel};
use crate::joiner::LabelJoiner;

/// A model's learner.
// One per model per job: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body {
    /// FTRL, for `ftrl` and `linear`.
    Linear(LinearModel),
    /// A recommender, for `mf`, `cooccurrence` and `popularity`.
    Recommender(RecommenderModel),
}

/// Everything a model saves, so a restart continues where it stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelState {
    /// The model definition it was trained with (see [`fingerprint`]).
    pub fingerprint: u32,
    /// The learner.
    pub body: Body,
    /// Per partition: every example at or before this event time is learned.
    pub learned_until: BTreeMap<i32, i64>,
    /// Per partition: the offset after the last example learned.
    pub offsets: BTreeMap<i32, i64>,
    /// Examples not learned, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The first skipped example and why, to show the user.
    pub first_skip: Option<String>,
    /// Examples seen again after a restart and skipped (already learned).
    pub replayed: u64,
    /// Updates published: the version of a recommender (FTRL counts its
    /// own).
    pub syncs: u64,
    /// Examples waiting for their delayed label, per partition.
    pub pending: Option<Pending>,
}

/// Examples held for a delayed label, per partition, by (key, `on` value).
///
/// One joiner per partition: each partition has its own event time, and
/// one joiner for all would let a partition that runs ahead time out the
/// examples of one that lags, before their labels are read.
pub type Pending = BTreeMap<i32, Joiner>;

/// One partition's held examples: hashed features and the prediction.
pub type Joiner = LabelJoiner<(u64, u64), Vec<(u32, f32)>>;

/// Examples waiting, labels that matched nothing, examples resolved early
/// (`max_pending`), over every partition.
pub fn pending_counts(p: &Pending) -> (usize, u64, u64) {
    p.values().fold((0, 0, 0), |(n, u, e), j| {
        (n + j.len(), u + j.unmatched, e + j.evicted)
    })
}

impl ModelState {
    /// The version of the model last published.
    pub fn version(&self) -> u64 {
        match &self.body {
            Body::Linear(m) => m.ftrl.version,
            Body::Recommender(_) => self.syncs,
        }
    }

    /// Examples learned.
    pub fn examples(&self) -> u64 {
        match &self.body {
            Body::Linear(m) => m.examples(),
            Body::Recommender(m) => m.learned,
        }
    }

    /// (metric, value) pairs of the progressive validation.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        match &self.body {
            Body::Linear(m) => m.metrics(),
            Body::Recommender(m) => m.metrics(),
        }
    }

    pub(super) fn skip(&mut self, reason: &str, detail: impl FnOnce() -> String) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
        if self.first_skip.is_none() {
            self.first_skip = Some(detail());
        }
    }
}

/// A hash of what a model's learned state depends on.
pub fn fingerprint(plan: &ModelPlan) -> u32 {
    let mut definition = serde_json::json!([
        plan.kind(),
        plan.source,
        plan.label,
        plan.item,
        plan.inputs,
        plan.crosses,
        plan.params.fingerprint_json(),
    ]);
    // Added after the first release: part of the hash only when set, so
    // the models defined before keep their fingerprint. A delayed label's
    // definition names its joiner's layout (one per partition), which an
    // older snapshot does not have.
    if let Some(d) = &plan.delayed {
        definition
            .as_array_mut()
            .expect("an array")
            .push(serde_json::json!({"delayed": d, "joiner": "per-partition"}));
    }
    // Since issue 17 a linear model's snapshot also holds the statistics
    // its numbers are standardized by: another layout, so an older
    // snapshot is refused before it is decoded (the model retrains).
    if let Some(c) = plan.params.ftrl() {
        definition
            .as_array_mut()
            .expect("an array")
            .push(serde_json::json!({ "standardize": c.standardize }));
    }
    if let Some(f) = &plan.filter {
        definition
            .as_array_mut()
            .expect("an array")
            .push(serde_json::json!({ "filter": f }));
    }
    crate::hashing::murmur3(definition.to_string().as_bytes(), 0)
}
