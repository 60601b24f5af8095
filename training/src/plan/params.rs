//! The learners' registry: every model kind, the `params:` each takes with
//! its defaults beside it, and the learner settings they resolve to.
//!
//! Adding a learner is one file for the learner and one variant here: the
//! kind's name, its params struct, and the arms the compiler then asks
//! for (there are no wildcard arms over kinds, so none is forgotten).
//! A kind's params are read by that kind alone: a key another kind takes
//! is named as such ("`bits` does not apply to a `mf` model"), any other
//! unknown key is an error, and both are located by file, line and key.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use eddy_features::spec::{KeyPath, Millis};

use crate::ftrl::{FtrlConfig, Loss};
pub use crate::hashing::Numeric;
use crate::recommend::cooccurrence::CoOccurrenceConfig;
use crate::recommend::mf::MfConfig;

/// The learner of a model: the spec's `kind:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic regression by FTRL-Proximal.
    Ftrl,
    /// FTRL on squared loss.
    Linear,
    /// Streaming matrix factorization (BPR).
    Mf,
    /// Item-to-item co-occurrence.
    Cooccurrence,
    /// Decayed popularity.
    Popularity,
}

impl ModelKind {
    /// Every kind, in the order messages list them.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Ftrl,
        ModelKind::Linear,
        ModelKind::Mf,
        ModelKind::Cooccurrence,
        ModelKind::Popularity,
    ];

    /// The kind as the spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Ftrl => "ftrl",
            ModelKind::Linear => "linear",
            ModelKind::Mf => "mf",
            ModelKind::Cooccurrence => "cooccurrence",
            ModelKind::Popularity => "popularity",
        }
    }

    /// The kind the spec names `name`, if any.
    pub fn named(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Recommenders learn from (user, item) interactions, not features.
    pub fn is_recommender(&self) -> bool {
        match self {
            ModelKind::Mf | ModelKind::Cooccurrence | ModelKind::Popularity => true,
            ModelKind::Ftrl | ModelKind::Linear => false,
        }
    }

    /// Reads this kind's `params:`. Problems come as (the key under
    /// `params`, message).
    pub fn params(
        &self,
        params: &serde_yaml_ng::Mapping,
    ) -> Result<Params, Vec<(KeyPath, String)>> {
        match self {
            ModelKind::Ftrl => read(*self, params).map(Params::Ftrl),
            ModelKind::Linear => read(*self, params).map(Params::Linear),
            ModelKind::Mf => read(*self, params).map(Params::Mf),
            ModelKind::Cooccurrence => read(*self, params).map(Params::Cooccurrence),
            ModelKind::Popularity => read(*self, params).map(Params::Popularity),
        }
    }

    /// Whether this kind's params take `key` (a wrongly typed value of a
    /// key the kind takes is still its key).
    fn takes(&self, key: &serde_yaml_ng::Value, value: &serde_yaml_ng::Value) -> bool {
        fn unknown<T: DeserializeOwned>(one: serde_yaml_ng::Value) -> bool {
            serde_yaml_ng::from_value::<T>(one)
                .is_err_and(|e| e.to_string().starts_with("unknown field"))
        }
        let mut one = serde_yaml_ng::Mapping::new();
        one.insert(key.clone(), value.clone());
        let one = serde_yaml_ng::Value::Mapping(one);
        !match self {
            ModelKind::Ftrl | ModelKind::Linear => unknown::<LinearParams>(one),
            ModelKind::Mf => unknown::<MfParams>(one),
            ModelKind::Cooccurrence => unknown::<CooccurrenceParams>(one),
            ModelKind::Popularity => unknown::<PopularityParams>(one),
        }
    }
}

/// `ftrl` and `linear`: FTRL-Proximal's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinearParams {
    /// The model has 2^bits weights, 1 to 30. Default 20.
    pub bits: Option<u32>,
    /// Per-coordinate learning rate scale. Default 0.2.
    pub alpha: Option<f64>,
    /// Learning rate smoothing. Default 1.
    pub beta: Option<f64>,
    /// L1 regularization (sparsity). Default 0.5.
    pub l1: Option<f64>,
    /// L2 regularization. Default 1.
    pub l2: Option<f64>,
    /// How numeric inputs enter the model: `log`, as sign(x)·ln(1 + |x|),
    /// or `raw`. Counts and sums span orders of magnitude, and raw they
    /// make the first predictions wildly overconfident; `eddy learn
    /// --numeric` offers the same choice. Default `log`.
    pub numeric: Option<Numeric>,
    /// Numbers (after `numeric`) enter standardized by the model's running
    /// mean and variance of each, saved with the model, so unscaled inputs
    /// learn as scaled ones do; `eddy learn --standardize` is the same.
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<bool>,
}

/// `mf`: streaming matrix factorization's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MfParams {
    /// Embedding size. Default 32.
    pub dim: Option<usize>,
    /// SGD learning rate. Default 0.05.
    pub learning_rate: Option<f32>,
    /// L2 regularization of embeddings. Default 0.002.
    pub regularization: Option<f32>,
    /// Negatives sampled per interaction. Default 4.
    pub negatives: Option<usize>,
    /// Sightings before an id gets an embedding. Default 1.
    pub min_count: Option<u32>,
    /// Embeddings untouched this long (event time) are dropped. Default
    /// `365d`.
    pub ttl: Option<Millis>,
    /// The k of the progressive HR@k and NDCG@k. Default 10.
    pub k: Option<usize>,
    /// Score one interaction in this many for the progressive HR@k and
    /// NDCG@k (every interaction is still learned): scoring asks the model
    /// for its top k, the costly part of a step. Which ones is a hash of
    /// (user, item, time), so live runs, replays and restarts score the
    /// same ones. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_every: Option<u64>,
}

/// `cooccurrence`: item-to-item co-occurrence's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CooccurrenceParams {
    /// Half-life of an interaction's weight. Default `30d`.
    pub half_life: Option<Millis>,
    /// Recent items per user that pair with the next. Default 5.
    pub recent: Option<usize>,
    /// Engagements further apart do not pair. Default `1d`.
    pub session_gap: Option<Millis>,
    /// Neighbors kept per item. Default 200.
    pub max_neighbors: Option<usize>,
    /// The k of the progressive HR@k and NDCG@k. Default 10.
    pub k: Option<usize>,
    /// Score one interaction in this many for the progressive HR@k and
    /// NDCG@k (every interaction is still learned): scoring asks the model
    /// for its top k, the costly part of a step. Which ones is a hash of
    /// (user, item, time), so live runs, replays and restarts score the
    /// same ones. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_every: Option<u64>,
}

/// `popularity`: decayed counts' settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PopularityParams {
    /// Half-life of an interaction's weight. Default `30d`.
    pub half_life: Option<Millis>,
    /// The k of the progressive HR@k and NDCG@k. Default 10.
    pub k: Option<usize>,
    /// Score one interaction in this many for the progressive HR@k and
    /// NDCG@k (every interaction is still learned): scoring asks the model
    /// for its top k, the costly part of a step. Which ones is a hash of
    /// (user, item, time), so live runs, replays and restarts score the
    /// same ones. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_every: Option<u64>,
}

/// A model's kind with its params: the learner to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Params {
    /// Logistic regression by FTRL-Proximal.
    Ftrl(LinearParams),
    /// FTRL on squared loss.
    Linear(LinearParams),
    /// Streaming matrix factorization (BPR).
    Mf(MfParams),
    /// Item-to-item co-occurrence.
    Cooccurrence(CooccurrenceParams),
    /// Decayed popularity.
    Popularity(PopularityParams),
}

/// The k of progressive HR@k and NDCG@k when `k` is not set.
pub const DEFAULT_K: usize = 10;

/// Half-life of popularity when `half_life` is not set: 30 days.
pub const POPULARITY_HALF_LIFE_MS: i64 = 30 * 86_400_000;

/// Every key params ever had, in the order of the one struct that held
/// them all before each kind read its own: a model's fingerprint hashes
/// its params in that form, so snapshots saved then still load. A key
/// that changes what a model learns must be added here (at the end, and
/// only when set, so older fingerprints hold); `evaluate_every` is not
/// one: it changes which interactions are scored, not the model.
const FINGERPRINT_KEYS: [&str; 17] = [
    "bits",
    "alpha",
    "beta",
    "l1",
    "l2",
    "numeric",
    "dim",
    "learning_rate",
    "regularization",
    "negatives",
    "min_count",
    "ttl",
    "half_life",
    "recent",
    "session_gap",
    "max_neighbors",
    "k",
];

impl Params {
    /// The kind these are the params of.
    pub fn kind(&self) -> ModelKind {
        match self {
            Params::Ftrl(_) => ModelKind::Ftrl,
            Params::Linear(_) => ModelKind::Linear,
            Params::Mf(_) => ModelKind::Mf,
            Params::Cooccurrence(_) => ModelKind::Cooccurrence,
            Params::Popularity(_) => ModelKind::Popularity,
        }
    }

    /// The kind's params with nothing set: every default.
    pub fn defaults(kind: ModelKind) -> Params {
        match kind {
            ModelKind::Ftrl => Params::Ftrl(LinearParams::default()),
            ModelKind::Linear => Params::Linear(LinearParams::default()),
            ModelKind::Mf => Params::Mf(MfParams::default()),
            ModelKind::Cooccurrence => Params::Cooccurrence(CooccurrenceParams::default()),
            ModelKind::Popularity => Params::Popularity(PopularityParams::default()),
        }
    }

    /// FTRL's settings (`ftrl`, `linear`), defaults filled in; None for a
    /// recommender.
    pub fn ftrl(&self) -> Option<FtrlConfig> {
        let (p, loss) = match self {
            Params::Ftrl(p) => (p, Loss::Logistic),
            Params::Linear(p) => (p, Loss::Squared),
            Params::Mf(_) | Params::Cooccurrence(_) | Params::Popularity(_) => return None,
        };
        let d = FtrlConfig::default();
        Some(FtrlConfig {
            bits: p.bits.unwrap_or(d.bits),
            alpha: p.alpha.unwrap_or(d.alpha),
            beta: p.beta.unwrap_or(d.beta),
            l1: p.l1.unwrap_or(d.l1),
            l2: p.l2.unwrap_or(d.l2),
            loss,
            standardize: p.standardize.unwrap_or(d.standardize),
        })
    }

    /// How a linear model's numeric inputs are transformed (`log` for
    /// recommenders, which have none).
    pub fn numeric(&self) -> Numeric {
        match self {
            Params::Ftrl(p) | Params::Linear(p) => p.numeric.unwrap_or_default(),
            Params::Mf(_) | Params::Cooccurrence(_) | Params::Popularity(_) => Numeric::default(),
        }
    }

    /// The k of a recommender's progressive HR@k and NDCG@k.
    pub fn k(&self) -> usize {
        let k = match self {
            Params::Mf(p) => p.k,
            Params::Cooccurrence(p) => p.k,
            Params::Popularity(p) => p.k,
            Params::Ftrl(_) | Params::Linear(_) => None,
        };
        k.unwrap_or(DEFAULT_K).max(1)
    }

    /// A recommender scores one interaction in this many for its
    /// progressive metrics (1: every one).
    pub fn evaluate_every(&self) -> u64 {
        let every = match self {
            Params::Mf(p) => p.evaluate_every.unwrap_or(10),
            Params::Cooccurrence(p) => p.evaluate_every.unwrap_or(10),
            Params::Popularity(p) => p.evaluate_every.unwrap_or(1),
            Params::Ftrl(_) | Params::Linear(_) => 1,
        };
        every.max(1)
    }

    /// The params as a model's fingerprint hashes them (see
    /// `FINGERPRINT_KEYS`).
    pub fn fingerprint_json(&self) -> serde_json::Value {
        let own = match self {
            Params::Ftrl(p) | Params::Linear(p) => serde_json::to_value(p),
            Params::Mf(p) => serde_json::to_value(p),
            Params::Cooccurrence(p) => serde_json::to_value(p),
            Params::Popularity(p) => serde_json::to_value(p),
        };
        let mut all: serde_json::Map<String, serde_json::Value> = FINGERPRINT_KEYS
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::Null))
            .collect();
        if let Ok(serde_json::Value::Object(own)) = own {
            for (k, v) in own {
                if let Some(slot) = all.get_mut(&k) {
                    *slot = v;
                }
            }
        }
        serde_json::Value::Object(all)
    }
}

impl MfParams {
    /// MF's settings, defaults filled in.
    pub fn config(&self) -> MfConfig {
        let d = MfConfig::default();
        MfConfig {
            dim: self.dim.unwrap_or(d.dim),
            learning_rate: self.learning_rate.unwrap_or(d.learning_rate),
            regularization: self.regularization.unwrap_or(d.regularization),
            negatives: self.negatives.unwrap_or(d.negatives),
            min_count: self.min_count.unwrap_or(d.min_count),
            ttl_ms: self.ttl.map_or(d.ttl_ms, |t| t.0),
        }
    }
}

impl CooccurrenceParams {
    /// Co-occurrence's settings, defaults filled in.
    pub fn config(&self) -> CoOccurrenceConfig {
        let d = CoOccurrenceConfig::default();
        CoOccurrenceConfig {
            half_life_ms: self.half_life.map_or(d.half_life_ms, |h| h.0),
            recent: self.recent.unwrap_or(d.recent),
            session_gap_ms: self.session_gap.map_or(d.session_gap_ms, |g| g.0),
            max_neighbors: self.max_neighbors.unwrap_or(d.max_neighbors),
        }
    }
}

impl PopularityParams {
    /// The half-life, ms, default filled in.
    pub fn half_life_ms(&self) -> i64 {
        self.half_life.map_or(POPULARITY_HALF_LIFE_MS, |h| h.0)
    }
}

/// Reads `params` as kind `kind`'s struct `T`: every problem, located by
/// its key under `params`.
fn read<T: DeserializeOwned>(
    kind: ModelKind,
    params: &serde_yaml_ng::Mapping,
) -> Result<T, Vec<(KeyPath, String)>> {
    let mut problems = Vec::new();
    // Keys of another kind first: the message says whose they are.
    let mut own = serde_yaml_ng::Mapping::new();
    for (key, value) in params {
        let name = key.as_str().unwrap_or("?").to_string();
        let unknown = !kind.takes(key, value);
        let others: Vec<&str> = ModelKind::ALL
            .iter()
            .filter(|k| **k != kind && k.takes(key, value))
            .map(ModelKind::name)
            .collect();
        if unknown && !others.is_empty() {
            problems.push((
                KeyPath::default().key(&name),
                format!(
                    "`{name}` does not apply to a `{}` model; it applies to {others:?}",
                    kind.name()
                ),
            ));
        } else {
            own.insert(key.clone(), value.clone());
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let value = serde_yaml_ng::Value::Mapping(own);
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut at = KeyPath::default();
        for segment in e.path().iter() {
            at = match segment {
                serde_path_to_error::Segment::Map { key } => at.key(key),
                serde_path_to_error::Segment::Seq { index } => at.index(*index),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => at,
            };
        }
        vec![(at, e.into_inner().to_string())]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> serde_yaml_ng::Mapping {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    /// The defaults the params document are the learners' own.
    #[test]
    fn empty_params_are_the_documented_defaults() {
        let d = Params::defaults(ModelKind::Ftrl).ftrl().unwrap();
        assert_eq!(
            (d.bits, d.alpha, d.beta, d.l1, d.l2, d.loss),
            (20, 0.2, 1.0, 0.5, 1.0, Loss::Logistic)
        );
        let d = Params::defaults(ModelKind::Linear).ftrl().unwrap();
        assert_eq!(d.loss, Loss::Squared);
        let m = MfParams::default().config();
        assert_eq!(m, MfConfig::default());
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
        let c = CooccurrenceParams::default().config();
        assert_eq!(c, CoOccurrenceConfig::default());
        assert_eq!(
            (c.half_life_ms, c.recent, c.session_gap_ms, c.max_neighbors),
            (30 * 86_400_000, 5, 86_400_000, 200)
        );
        assert_eq!(PopularityParams::default().half_life_ms(), 30 * 86_400_000);
        for kind in ModelKind::ALL {
            assert_eq!(Params::defaults(kind).k(), 10);
            assert_eq!(Params::defaults(kind).kind(), kind);
            assert_eq!(ModelKind::named(kind.name()), Some(kind));
        }
    }

    #[test]
    fn set_params_override_defaults() {
        let p = ModelKind::Mf
            .params(&mapping("{ dim: 8, ttl: 1s, k: 3 }"))
            .unwrap();
        let Params::Mf(mf) = &p else { panic!("{p:?}") };
        assert_eq!((mf.config().dim, mf.config().ttl_ms, p.k()), (8, 1000, 3));
        let p = ModelKind::Cooccurrence
            .params(&mapping("{ half_life: 5ms }"))
            .unwrap();
        let Params::Cooccurrence(c) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(c.config().half_life_ms, 5);
        let p = ModelKind::Popularity
            .params(&mapping("{ half_life: 5ms }"))
            .unwrap();
        let Params::Popularity(c) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(c.half_life_ms(), 5);
    }

    /// Each kind reads its own keys: another kind's key is named as such,
    /// a key of no kind is unknown, a bad value names its key.
    #[test]
    fn a_key_of_another_kind_a_typo_and_a_bad_value_are_told_apart() {
        let e = ModelKind::Mf.params(&mapping("{ bits: 3 }")).unwrap_err();
        assert_eq!(e[0].0.to_string(), "bits");
        assert_eq!(
            e[0].1,
            "`bits` does not apply to a `mf` model; it applies to [\"ftrl\", \"linear\"]"
        );
        let e = ModelKind::Ftrl
            .params(&mapping("{ half_life: 1d }"))
            .unwrap_err();
        assert!(
            e[0].1
                .ends_with("it applies to [\"cooccurrence\", \"popularity\"]"),
            "{e:?}"
        );
        let e = ModelKind::Ftrl.params(&mapping("{ nope: 1 }")).unwrap_err();
        assert!(e[0].1.starts_with("unknown field `nope`"), "{e:?}");
        let e = ModelKind::Ftrl
            .params(&mapping("{ bits: many }"))
            .unwrap_err();
        assert_eq!(e[0].0.to_string(), "bits");
        assert!(e[0].1.contains("invalid type"), "{e:?}");
    }
}
