//! A spec's `params:` resolved to each learner's configuration.
//!
//! The spec states every default in its doc comments
//! (`eddy_features::spec::model::ModelParams`); the tests below check that
//! an empty `params:` gives exactly the learners' own defaults, so the two
//! cannot drift apart.

use eddy_features::spec::model::ModelParams;
use eddy_features::spec::{ModelKind, ModelPlan};

use crate::ftrl::{FtrlConfig, Loss};
use crate::recommend::cooccurrence::CoOccurrenceConfig;
use crate::recommend::mf::MfConfig;

/// Half-life of popularity when `half_life` is not set: 30 days.
pub const POPULARITY_HALF_LIFE_MS: i64 = 30 * 86_400_000;

/// The k of progressive HR@k and NDCG@k when `k` is not set.
pub const DEFAULT_K: usize = 10;

/// FTRL's settings from a model's params, defaults filled in.
pub fn ftrl(plan: &ModelPlan) -> FtrlConfig {
    let p = &plan.params;
    let d = FtrlConfig::default();
    FtrlConfig {
        bits: p.bits.unwrap_or(d.bits),
        alpha: p.alpha.unwrap_or(d.alpha),
        beta: p.beta.unwrap_or(d.beta),
        l1: p.l1.unwrap_or(d.l1),
        l2: p.l2.unwrap_or(d.l2),
        loss: match plan.kind {
            ModelKind::Linear => Loss::Squared,
            ModelKind::Ftrl => Loss::Logistic,
            // Recommenders have no FTRL; the loss is never used.
            ModelKind::Mf | ModelKind::Cooccurrence | ModelKind::Popularity => Loss::Logistic,
        },
    }
}

/// MF's settings from a model's params, defaults filled in.
pub fn mf(p: &ModelParams) -> MfConfig {
    let d = MfConfig::default();
    MfConfig {
        dim: p.dim.unwrap_or(d.dim),
        learning_rate: p.learning_rate.unwrap_or(d.learning_rate),
        regularization: p.regularization.unwrap_or(d.regularization),
        negatives: p.negatives.unwrap_or(d.negatives),
        min_count: p.min_count.unwrap_or(d.min_count),
        ttl_ms: p.ttl.map_or(d.ttl_ms, |t| t.0),
    }
}

/// Co-occurrence's settings from a model's params, defaults filled in.
pub fn cooccurrence(p: &ModelParams) -> CoOccurrenceConfig {
    let d = CoOccurrenceConfig::default();
    CoOccurrenceConfig {
        half_life_ms: p.half_life.map_or(d.half_life_ms, |h| h.0),
        recent: p.recent.unwrap_or(d.recent),
        session_gap_ms: p.session_gap.map_or(d.session_gap_ms, |g| g.0),
        max_neighbors: p.max_neighbors.unwrap_or(d.max_neighbors),
    }
}

/// Popularity's half-life (ms) from a model's params.
pub fn popularity_half_life(p: &ModelParams) -> i64 {
    p.half_life.map_or(POPULARITY_HALF_LIFE_MS, |h| h.0)
}

/// The k of a recommender's progressive HR@k and NDCG@k.
pub fn k(p: &ModelParams) -> usize {
    p.k.unwrap_or(DEFAULT_K).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_features::spec::Millis;

    /// The defaults the spec documents are the learners' own.
    #[test]
    fn empty_params_are_the_documented_defaults() {
        let none = ModelParams::default();
        let d = FtrlConfig::default();
        assert_eq!(
            (d.bits, d.alpha, d.beta, d.l1, d.l2),
            (20, 0.2, 1.0, 0.5, 1.0)
        );
        assert_eq!(mf(&none), MfConfig::default());
        let m = MfConfig::default();
        assert_eq!(
            (
                m.dim,
                m.learning_rate,
                m.regularization,
                m.negatives,
                m.min_count
            ),
            (32, 0.05, 0.002, 4, 1)
        );
        assert_eq!(m.ttl_ms, 365 * 86_400_000);
        let c = cooccurrence(&none);
        assert_eq!(c, CoOccurrenceConfig::default());
        assert_eq!(
            (c.half_life_ms, c.recent, c.session_gap_ms, c.max_neighbors),
            (30 * 86_400_000, 5, 86_400_000, 200)
        );
        assert_eq!(popularity_half_life(&none), 30 * 86_400_000);
        assert_eq!(k(&none), 10);
    }

    #[test]
    fn set_params_override_defaults() {
        let p = ModelParams {
            dim: Some(8),
            ttl: Some(Millis(1000)),
            half_life: Some(Millis(5)),
            ..ModelParams::default()
        };
        assert_eq!(mf(&p).dim, 8);
        assert_eq!(mf(&p).ttl_ms, 1000);
        assert_eq!(cooccurrence(&p).half_life_ms, 5);
        assert_eq!(popularity_half_life(&p), 5);
    }
}
