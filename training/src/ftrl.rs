//! Logistic regression trained by FTRL-Proximal (McMahan et al., "Ad Click
//! Prediction: a View from the Trenches", KDD 2013, Algorithm 1).
//!
//! Why FTRL-Proximal: per-coordinate learning rates suit sparse hashed
//! features, where a rare feature must learn fast from its few examples and
//! a frequent one must settle; and its L1 term gives exact zeros, so most
//! of a large hashed vector stays unused. Weights are not stored: each is a
//! closed-form function of the coordinate's `z` and `n`, computed when an
//! example touches it.
//!
//! State is three `f32` per slot, side by side so one cache line serves a
//! feature: `z`, `√n` (the root of the summed squared gradients, kept as a
//! root because every update needs it) and the weight `w`, which is a
//! function of the other two, cached so a prediction reads one number per
//! feature. 2^bits × 12 bytes. Arithmetic is in `f64`.

use serde::{Deserialize, Serialize};

use crate::hashing::Standardizer;
use crate::{Features, Learner, TrainingError};

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FtrlConfig {
    /// Weight-vector size is 2^bits. Default 20.
    pub bits: u32,
    /// Learning rate scale. Default 0.2.
    pub alpha: f64,
    /// Learning rate smoothing. Default 1.0.
    pub beta: f64,
    /// L1 regularization (sparsity). Default 0.5.
    pub l1: f64,
    /// L2 regularization. Default 1.0.
    pub l2: f64,
    /// What is predicted: a probability (logistic loss) or a number
    /// (squared loss, for ratings). Default logistic.
    pub loss: Loss,
    /// Numbers enter standardized by the model's running mean and
    /// variance of each (see [`crate::hashing::Standardizer`]). Default
    /// true.
    pub standardize: bool,
}

/// The loss FTRL minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Loss {
    /// Logistic loss: predictions are probabilities of a 0/1 label.
    #[default]
    Logistic,
    /// Squared loss: predictions are numbers (linear regression).
    Squared,
}

impl Default for FtrlConfig {
    fn default() -> Self {
        FtrlConfig {
            bits: 20,
            alpha: 0.2,
            beta: 1.0,
            l1: 0.5,
            l2: 1.0,
            loss: Loss::Logistic,
            standardize: true,
        }
    }
}

/// The model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ftrl {
    /// The hyper-parameters it was made with.
    pub config: FtrlConfig,
    /// Per slot: z, √n, w. Stored sparse: only slots a feature ever
    /// touched, so a snapshot is proportional to the features seen, not to
    /// 2^bits (a 2^20 model of 10 k features is ~160 KB, not 12 MB, and
    /// fits a Kafka record).
    #[serde(with = "sparse_slots")]
    slots: Vec<[f32; 3]>,
    /// The running statistics numbers are standardized by (empty unless
    /// `config.standardize`).
    pub standardizer: Standardizer,
    /// Examples learned from.
    pub examples: u64,
    /// Bumped by every delta taken or applied: a replica at the same
    /// version holds the same weights.
    pub version: u64,
    /// Slots changed since the last [`Ftrl::take_delta`] (a bitmap, and the
    /// list of set bits), so a sync sends only what changed.
    #[serde(skip)]
    dirty: Vec<u64>,
    #[serde(skip)]
    touched: Vec<u32>,
}

/// Serde for the slot vector: its length, then (index, slot) for every slot
/// that is not all zero.
mod sparse_slots {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(slots: &[[f32; 3]], s: S) -> Result<S::Ok, S::Error> {
        let used: Vec<(u32, [f32; 3])> = slots
            .iter()
            .enumerate()
            .filter(|(_, v)| v.iter().any(|x| *x != 0.0))
            .map(|(i, v)| (i as u32, *v))
            .collect();
        (slots.len() as u64, used).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[f32; 3]>, D::Error> {
        let (len, used): (u64, Vec<(u32, [f32; 3])>) = Deserialize::deserialize(d)?;
        if len > 1 << 30 {
            return Err(serde::de::Error::custom(format!(
                "{len} weights: more than 2^30"
            )));
        }
        let mut slots = vec![[0.0f32; 3]; len as usize];
        for (i, v) in used {
            let slot = slots
                .get_mut(i as usize)
                .ok_or_else(|| serde::de::Error::custom(format!("slot {i} of {len}")))?;
            *slot = v;
        }
        Ok(slots)
    }
}

/// The slots an update changed: what a serving replica needs to catch up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FtrlDelta {
    /// The version this delta applies to.
    pub base: u64,
    /// The version after it.
    pub version: u64,
    /// (slot, [z, √n, w]).
    pub slots: Vec<(u32, [f32; 3])>,
    /// The standardizer's statistics that changed.
    pub stats: Vec<(u32, [f64; 3])>,
}

/// Probabilities are kept away from 0 and 1 by this much, so one confident
/// mistake cannot make the logloss infinite.
pub const CLIP: f64 = 1e-15;

/// The logistic function, 1 / (1 + e^-x).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x.clamp(-35.0, 35.0)).exp())
}

impl Ftrl {
    /// A model with every weight at zero.
    pub fn new(config: FtrlConfig) -> Ftrl {
        let size = 1usize << config.bits.clamp(1, 30);
        Ftrl {
            config,
            slots: vec![[0.0; 3]; size],
            standardizer: Standardizer::default(),
            examples: 0,
            version: 0,
            dirty: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// The weight for `z` and `√n`: the closed form of FTRL-Proximal.
    #[inline]
    fn weight(&self, z: f64, sqrt_n: f64) -> f64 {
        let c = &self.config;
        if z.abs() <= c.l1 {
            return 0.0;
        }
        -(z - z.signum() * c.l1) / ((c.beta + sqrt_n) / c.alpha + c.l2)
    }

    /// The slots changed since the last call, as a delta from the current
    /// version to the next (which becomes current).
    pub fn take_delta(&mut self) -> FtrlDelta {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        for t in &touched {
            self.dirty[*t as usize / 64] = 0;
        }
        let delta = FtrlDelta {
            base: self.version,
            version: self.version + 1,
            slots: touched
                .into_iter()
                .map(|i| (i, self.slots[i as usize]))
                .collect(),
            stats: self.standardizer.take_touched(),
        };
        self.version += 1;
        delta
    }

    /// Applies a delta taken from a model at this model's version; false
    /// (and nothing changed) if the versions do not line up.
    pub fn apply_delta(&mut self, delta: &FtrlDelta) -> bool {
        if delta.base != self.version
            || delta
                .slots
                .iter()
                .any(|(i, _)| *i as usize >= self.slots.len())
        {
            return false;
        }
        for (i, s) in &delta.slots {
            self.slots[*i as usize] = *s;
        }
        self.standardizer.apply(&delta.stats);
        self.version = delta.version;
        true
    }

    fn mark(&mut self, i: usize) {
        if self.dirty.is_empty() {
            self.dirty = vec![0; self.slots.len().div_ceil(64)];
        }
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.dirty[word] & bit == 0 {
            self.dirty[word] |= bit;
            self.touched.push(i as u32);
        }
    }

    /// The standardizer for building an example (None when the model
    /// takes numbers as they are).
    pub fn standardizer(&self) -> Option<&Standardizer> {
        self.config.standardize.then_some(&self.standardizer)
    }

    /// Counts an example's raw numbers once it is learned (or, for a
    /// delayed label, once it is predicted), so the next examples are
    /// standardized with them.
    pub fn observe(&mut self, numbers: &[(u32, f64)]) {
        if self.config.standardize && !numbers.is_empty() {
            self.standardizer.observe(numbers);
        }
    }

    /// Non-zero weights (how sparse the model is).
    pub fn non_zero(&self) -> usize {
        self.slots.iter().filter(|s| s[2] != 0.0).count()
    }

    /// The model as bytes (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a model always serializes")
    }

    /// A model from [`Ftrl::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Ftrl, TrainingError> {
        let m: Ftrl =
            postcard::from_bytes(bytes).map_err(|e| TrainingError::Snapshot(e.to_string()))?;
        let size = 1usize << m.config.bits.clamp(1, 30);
        if m.slots.len() != size {
            return Err(TrainingError::Snapshot(format!(
                "{} weights for {} bits",
                m.slots.len(),
                m.config.bits
            )));
        }
        Ok(m)
    }

    /// The prediction for a margin.
    fn link(&self, margin: f64) -> f64 {
        match self.config.loss {
            Loss::Logistic => sigmoid(margin),
            Loss::Squared => margin,
        }
    }

    /// The example's log-odds (its linear score): what a ranking needs,
    /// without the link.
    pub fn margin(&self, x: &Features) -> f64 {
        let mask = self.slots.len() - 1;
        x.iter()
            .map(|(i, v)| f64::from(self.slots[*i as usize & mask][2]) * f64::from(*v))
            .sum()
    }
}

impl Learner for Ftrl {
    fn predict(&self, x: &Features) -> f64 {
        self.link(self.margin(x))
    }

    fn learn(&mut self, x: &Features, y: f64) -> f64 {
        let mask = self.slots.len() - 1;
        // Both losses have the gradient (prediction − label)·x.
        let p = self.link(self.margin(x));
        let g = p - y;
        let alpha = self.config.alpha;
        for (i, v) in x {
            let i = *i as usize & mask;
            let [z, sqrt_n, w] = self.slots[i].map(f64::from);
            let gi = g * f64::from(*v);
            let sqrt_n_new = (sqrt_n * sqrt_n + gi * gi).sqrt();
            let sigma = (sqrt_n_new - sqrt_n) / alpha;
            let z_new = z + gi - sigma * w;
            let w_new = self.weight(z_new, sqrt_n_new);
            self.slots[i] = [z_new as f32, sqrt_n_new as f32, w_new as f32];
            self.mark(i);
        }
        self.examples += 1;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::{FeatureHasher, Value};
    use crate::metrics::Progressive;
    use crate::recommend::Rng;

    /// A click stream whose true probability is known: a bias, a user
    /// effect, an item effect, a user-group × item-category interaction
    /// (only learnable through a cross) and a numeric feature.
    /// (features, label, true probability).
    type Labeled = (Vec<(u32, f32)>, f64, f64);

    fn stream(n: usize, seed: u64) -> Vec<Labeled> {
        let mut rng = Rng(seed);
        let users: Vec<f64> = (0..500).map(|_| 0.5 * rng.normal()).collect();
        let items: Vec<f64> = (0..100).map(|_| 0.5 * rng.normal()).collect();
        let hasher = FeatureHasher::new(20, vec![("g".into(), "c".into())]);
        let (nu, ni, ng, nc, nx) = (
            FeatureHasher::namespace("u"),
            FeatureHasher::namespace("i"),
            FeatureHasher::namespace("g"),
            FeatureHasher::namespace("c"),
            FeatureHasher::namespace("x"),
        );
        (0..n)
            .map(|_| {
                let u = (rng.next_u64() % 500) as usize;
                let i = (rng.next_u64() % 100) as usize;
                let (group, cat) = (u % 4, i % 5);
                let x = 2.0 * rng.uniform() - 1.0;
                let inter = if group == cat % 4 { 0.8 } else { -0.4 };
                let p = sigmoid(-1.0 + users[u] + items[i] + inter + 0.7 * x);
                let y = f64::from(rng.uniform() < p);
                let mut b = hasher.builder();
                b.add(nu, "user", Value::Category(&u.to_string())).unwrap();
                b.add(ni, "item", Value::Category(&i.to_string())).unwrap();
                b.add(ng, "group", Value::Category(&group.to_string()))
                    .unwrap();
                b.add(nc, "cat", Value::Category(&cat.to_string())).unwrap();
                b.add(nx, "x", Value::Number(x)).unwrap();
                let mut f = Vec::new();
                b.finish(&mut f);
                (f, y, p)
            })
            .collect()
    }

    #[test]
    fn progressive_logloss_comes_within_a_few_percent_of_the_bayes_optimum() {
        let data = stream(300_000, 7);
        let mut model = Ftrl::new(FtrlConfig::default());
        let mut learned = Progressive::default();
        let mut bayes = Progressive::default();
        for (x, y, p) in &data {
            learned.add(model.learn(x, *y), *y);
            bayes.add(*p, *y);
        }
        let (got, best) = (learned.report(), bayes.report());
        let ratio = got.logloss / best.logloss;
        assert!(
            ratio < 1.03,
            "progressive logloss {:.4} vs Bayes-optimal {:.4} (ratio {ratio:.4})",
            got.logloss,
            best.logloss
        );
        assert!(got.auc > best.auc - 0.02, "{got:?} vs {best:?}");
    }

    #[test]
    fn a_saved_model_predicts_exactly_like_the_original() {
        let data = stream(20_000, 11);
        let mut model = Ftrl::new(FtrlConfig {
            bits: 16,
            ..FtrlConfig::default()
        });
        for (x, y, _) in &data[..10_000] {
            model.learn(x, *y);
        }
        let copy = Ftrl::from_bytes(&model.to_bytes()).unwrap();
        for (x, _, _) in &data[10_000..] {
            assert_eq!(model.predict(x).to_bits(), copy.predict(x).to_bits());
        }
        assert!(Ftrl::from_bytes(&model.to_bytes()[..100]).is_err());
    }

    #[test]
    fn a_replica_fed_snapshot_then_deltas_predicts_exactly_like_the_learner() {
        let data = stream(30_000, 5);
        let config = FtrlConfig {
            bits: 16,
            ..FtrlConfig::default()
        };
        let mut learner = Ftrl::new(config);
        for (x, y, _) in &data[..5_000] {
            learner.learn(x, *y);
        }
        learner.take_delta();
        let mut replica = Ftrl::from_bytes(&learner.to_bytes()).unwrap();
        let mut sizes = Vec::new();
        for chunk in data[5_000..].chunks(5_000) {
            for (x, y, _) in chunk {
                learner.learn(x, *y);
            }
            let delta = learner.take_delta();
            sizes.push(delta.slots.len());
            assert!(replica.apply_delta(&delta));
            assert!(!replica.apply_delta(&delta), "a delta applies once");
            for (x, _, _) in &data[..100] {
                assert_eq!(learner.predict(x).to_bits(), replica.predict(x).to_bits());
            }
        }
        assert_eq!(replica.version, learner.version);
        assert!(
            sizes.iter().all(|s| *s < 1 << 14),
            "deltas carry only touched slots: {sizes:?}"
        );
    }

    /// Raw numbers of a dense stream: three features on very different
    /// scales and offsets (a salary, an age, a rate), the label logistic
    /// in their standardized values. (raw values, label).
    fn dense(n: usize, seed: u64) -> Vec<([f64; 3], f64)> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let (a, b, c) = (rng.normal(), rng.normal(), rng.normal());
                let p = sigmoid(0.3 + 1.5 * a - 1.0 * b + 0.5 * c);
                let raw = [80_000.0 + 20_000.0 * a, 40.0 + 12.0 * b, 0.5 + 0.01 * c];
                (raw, f64::from(rng.uniform() < p))
            })
            .collect()
    }

    /// Progressive predictions of a standardizing model over `rows`, each
    /// raw value multiplied by `scale`.
    fn standardized_run(rows: &[([f64; 3], f64)], scale: [f64; 3]) -> (Vec<f64>, Ftrl) {
        let hasher = FeatureHasher::new(16, Vec::new());
        let slots = ["salary", "age", "rate"].map(|n| FeatureHasher::slot(n, n));
        let mut model = Ftrl::new(FtrlConfig {
            bits: 16,
            ..FtrlConfig::default()
        });
        let (mut x, mut numbers, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for (raw, y) in rows {
            let mut b = hasher.builder_with(model.standardizer().map(|s| (s, &mut numbers)));
            for j in 0..3 {
                b.number(slots[j], raw[j] * scale[j]).unwrap();
            }
            b.finish(&mut x);
            out.push(model.learn(&x, *y));
            model.observe(&numbers);
        }
        (out, model)
    }

    /// Rescaling a feature rescales its mean and standard deviation with
    /// it: the model sees the same standardized values. By a power of two
    /// the predictions are bit for bit the same; by 1000 they agree to
    /// rounding.
    #[test]
    fn standardized_numbers_make_the_model_invariant_to_rescaling_a_feature() {
        let rows = dense(20_000, 3);
        let (base, model) = standardized_run(&rows, [1.0, 1.0, 1.0]);
        // Not vacuous: the numbers carry the signal, and the model used it.
        let mut m = Progressive::default();
        for (p, (_, y)) in base.iter().zip(&rows) {
            m.add(*p, *y);
        }
        assert_eq!(model.standardizer.len(), 3);
        assert!(m.report().logloss < 0.5, "{:?}", m.report());
        let (pow2, _) = standardized_run(&rows, [1024.0, 1.0 / 64.0, 8.0]);
        assert!(
            base.iter()
                .zip(&pow2)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let (thousand, _) = standardized_run(&rows, [1e-3, 1000.0, 1.0]);
        let worst = base
            .iter()
            .zip(&thousand)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "{worst}");
    }

    /// Unscaled numbers (a salary in the tens of thousands) learn as well
    /// as the same numbers standardized beforehand, and far better than
    /// raw numbers into a model that does not standardize.
    #[test]
    fn an_unscaled_dense_stream_learns_as_well_as_a_prescaled_one() {
        let rows = dense(30_000, 9);
        let logloss = |p: &[f64]| {
            let mut m = Progressive::default();
            for (p, (_, y)) in p.iter().zip(&rows) {
                m.add(*p, *y);
            }
            m.report().logloss
        };
        let (standardized, _) = standardized_run(&rows, [1.0, 1.0, 1.0]);
        let hasher = FeatureHasher::new(16, Vec::new());
        let slots = ["salary", "age", "rate"].map(|n| FeatureHasher::slot(n, n));
        let run = |prescale: bool| {
            let mut model = Ftrl::new(FtrlConfig {
                bits: 16,
                standardize: false,
                ..FtrlConfig::default()
            });
            let mut x = Vec::new();
            let (mean, sd) = ([80_000.0, 40.0, 0.5], [20_000.0, 12.0, 0.01]);
            rows.iter()
                .map(|(raw, y)| {
                    let mut b = hasher.builder();
                    for j in 0..3 {
                        let v = if prescale {
                            (raw[j] - mean[j]) / sd[j]
                        } else {
                            raw[j]
                        };
                        b.number(slots[j], v).unwrap();
                    }
                    b.finish(&mut x);
                    model.learn(&x, *y)
                })
                .collect::<Vec<f64>>()
        };
        let (standardized, prescaled, raw) = (
            logloss(&standardized),
            logloss(&run(true)),
            logloss(&run(false)),
        );
        assert!(
            standardized < prescaled * 1.02,
            "{standardized} vs {prescaled}"
        );
        assert!(raw > 2.0 * standardized, "raw {raw} vs {standardized}");
    }

    /// The statistics travel with the weights: a saved model and a replica
    /// following deltas standardize exactly as the learner does.
    #[test]
    fn a_saved_model_and_a_replica_standardize_as_the_learner_does() {
        let rows = dense(12_000, 4);
        let (_, learner_at_half) = standardized_run(&rows[..6_000], [1.0, 1.0, 1.0]);
        let mut learner = learner_at_half.clone();
        learner.take_delta();
        let mut replica = Ftrl::from_bytes(&learner.to_bytes()).unwrap();
        assert_eq!(replica.standardizer, learner.standardizer);
        // Learn the second half, then ship it as one delta.
        let hasher = FeatureHasher::new(16, Vec::new());
        let slots = ["salary", "age", "rate"].map(|n| FeatureHasher::slot(n, n));
        let (mut x, mut numbers) = (Vec::new(), Vec::new());
        for (raw, y) in &rows[6_000..] {
            let mut b = hasher.builder_with(learner.standardizer().map(|s| (s, &mut numbers)));
            for j in 0..3 {
                b.number(slots[j], raw[j]).unwrap();
            }
            b.finish(&mut x);
            learner.learn(&x, *y);
            learner.observe(&numbers);
        }
        let delta = learner.take_delta();
        assert_eq!(delta.stats.len(), 3);
        assert!(replica.apply_delta(&delta));
        assert_eq!(replica.standardizer, learner.standardizer);
        let saved = Ftrl::from_bytes(&learner.to_bytes()).unwrap();
        for (raw, _) in &rows[..200] {
            let build = |m: &Ftrl| {
                let mut numbers = Vec::new();
                let mut b = hasher.builder_with(m.standardizer().map(|s| (s, &mut numbers)));
                for j in 0..3 {
                    b.number(slots[j], raw[j]).unwrap();
                }
                let mut x = Vec::new();
                b.finish(&mut x);
                m.predict(&x).to_bits()
            };
            assert_eq!(build(&learner), build(&replica));
            assert_eq!(build(&learner), build(&saved));
        }
    }

    #[test]
    fn with_squared_loss_it_learns_ratings_down_to_the_noise() {
        let mut rng = Rng(21);
        let users: Vec<f64> = (0..300).map(|_| 0.5 * rng.normal()).collect();
        let items: Vec<f64> = (0..100).map(|_| 0.5 * rng.normal()).collect();
        let hasher = FeatureHasher::new(18, Vec::new());
        let (nu, ni) = (FeatureHasher::namespace("u"), FeatureHasher::namespace("i"));
        let mut model = Ftrl::new(FtrlConfig {
            bits: 18,
            loss: Loss::Squared,
            l1: 0.0,
            ..FtrlConfig::default()
        });
        let (mut sq, mut late, mut n) = (0.0, 0.0, 0.0);
        for k in 0..200_000 {
            let (u, i) = (
                (rng.next_u64() % 300) as usize,
                (rng.next_u64() % 100) as usize,
            );
            let noise = 0.3 * rng.normal();
            let y = 3.5 + users[u] + items[i] + noise;
            let mut b = hasher.builder();
            b.add(nu, "user", Value::Category(&u.to_string())).unwrap();
            b.add(ni, "item", Value::Category(&i.to_string())).unwrap();
            let mut x = Vec::new();
            b.finish(&mut x);
            let p = model.learn(&x, y);
            sq += (p - y) * (p - y);
            if k >= 150_000 {
                late += (p - y) * (p - y);
                n += 1.0;
            }
        }
        let (all, end) = ((sq / 200_000.0f64).sqrt(), (late / n).sqrt());
        // The noise has σ = 0.3: the last quarter's progressive RMSE gets
        // close to it; predicting the mean would give about 0.78.
        assert!(
            end < 0.31,
            "late progressive RMSE {end} (whole stream {all})"
        );
    }

    #[test]
    fn l1_keeps_unused_and_weak_coordinates_at_exactly_zero() {
        let data = stream(50_000, 3);
        let mut model = Ftrl::new(FtrlConfig::default());
        for (x, y, _) in &data {
            model.learn(x, *y);
        }
        let used = model.non_zero();
        assert!(used > 100 && used < 2_000, "{used} non-zero weights");
    }
}
