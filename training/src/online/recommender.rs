//! Recommenders inside a job: each positive event is a (user, item)
//! interaction, scored prequentially (the model's top k for the user
//! *before* it learns the interaction) and then learned.
//!
//! Users are the source's key and items the model's `item` column. Long
//! ids are used as they are; string ids are hashed to 64 bits and the
//! text kept, so recommendations can name the items they recommend.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::plan::{ModelPlan, Params};
use eddy_features::engine::value::Scalar;

use crate::recommend::Recommender;
use crate::recommend::cooccurrence::CoOccurrence;
use crate::recommend::eval::Prequential;
use crate::recommend::mf::StreamingMf;
use crate::recommend::popularity::Popularity;

/// One of the recommenders.
// One per model per job: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Model {
    /// Streaming matrix factorization (BPR).
    Mf(StreamingMf),
    /// Item-to-item co-occurrence.
    CoOccurrence(CoOccurrence),
    /// Decayed popularity.
    Popularity(Popularity),
}

impl Model {
    /// The recommender, to learn and recommend.
    pub fn as_recommender(&mut self) -> &mut dyn Recommender {
        match self {
            Model::Mf(m) => m,
            Model::CoOccurrence(m) => m,
            Model::Popularity(m) => m,
        }
    }

    /// The recommender, to recommend.
    pub fn recommender(&self) -> &dyn Recommender {
        match self {
            Model::Mf(m) => m,
            Model::CoOccurrence(m) => m,
            Model::Popularity(m) => m,
        }
    }
}

/// The recommender, its evaluation and the text of string ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecommenderModel {
    /// The learner.
    pub model: Model,
    /// Its prequential HR@k and NDCG@k.
    pub eval: Prequential,
    /// Interactions learned.
    pub learned: u64,
    /// String ids by their hash (empty for long ids).
    pub names: HashMap<u64, String>,
}

/// The id of a key or item value (None for a null or a non-id), shared
/// with the delayed-label joiner.
pub use eddy_features::engine::delayed::{id_of, string_id};

impl RecommenderModel {
    /// A fresh recommender of `plan`'s kind and params.
    pub fn new(plan: &ModelPlan) -> RecommenderModel {
        let model = match &plan.params {
            Params::Mf(p) => Model::Mf(StreamingMf::new(p.config())),
            Params::Cooccurrence(p) => Model::CoOccurrence(CoOccurrence::new(p.config())),
            Params::Popularity(p) => Model::Popularity(Popularity::new(p.half_life_ms())),
            // The caller dispatches on the kind: a linear model never
            // gets here.
            Params::Ftrl(_) | Params::Linear(_) => {
                unreachable!("a `{}` model is not a recommender", plan.kind().name())
            }
        };
        RecommenderModel {
            model,
            eval: Prequential::new(plan.params.k()),
            learned: 0,
            names: HashMap::new(),
        }
    }

    /// Scores (if it is one of the one in `evaluate_every` sampled), then
    /// learns, one interaction. False if the user or item is not an id
    /// (null).
    pub fn learn(&mut self, user: &Scalar, item: &Scalar, ts: i64, evaluate_every: u64) -> bool {
        let (Some(u), Some(i)) = (id_of(user), id_of(item)) else {
            return false;
        };
        for (id, v) in [(u, user), (i, item)] {
            if let Scalar::Str(s) = v {
                self.names.entry(id).or_insert_with(|| s.to_string());
            }
        }
        let score = crate::recommend::eval::sampled(u, i, ts, evaluate_every);
        self.eval
            .step(self.model.as_recommender(), None, (u, i, ts), score);
        self.learned += 1;
        true
    }

    /// Interactions the model could not learn from (ids not yet admitted by
    /// the embedding table).
    pub fn not_admitted(&self) -> u64 {
        match &self.model {
            Model::Mf(m) => m.not_admitted,
            // Co-occurrence and popularity admit every id.
            Model::CoOccurrence(_) | Model::Popularity(_) => 0,
        }
    }

    /// (metric, value) pairs: HR@k and NDCG@k.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let r = self.eval.report();
        vec![("hit_rate", r.hit_rate), ("ndcg", r.ndcg)]
    }
}
