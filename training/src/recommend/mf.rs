//! Streaming implicit matrix factorization, trained by BPR (Rendle et al.,
//! "BPR: Bayesian Personalized Ranking from Implicit Feedback", 2009) one
//! interaction at a time.
//!
//! The score of item i for user u is bᵢ + pᵤ·qᵢ. Each interaction (u, i) is
//! a positive; `negatives` items drawn uniformly from the admitted items
//! are negatives, and one SGD step on −ln σ(x̂ᵤᵢⱼ) with
//! x̂ᵤᵢⱼ = (bᵢ − bⱼ) + pᵤ·(qᵢ − qⱼ) moves the positive above them. There is
//! no epoch and no replay of old data: the model is whatever the stream
//! has taught it so far.
//!
//! Users and items live in two [`EmbeddingTable`]s (admission by count,
//! expiry by event time), so memory follows the active ids.

use serde::{Deserialize, Serialize};

use super::embeddings::EmbeddingTable;
use super::{Recommender, Rng};

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MfConfig {
    /// Embedding size. Default 32.
    pub dim: usize,
    /// SGD learning rate. Default 0.05.
    pub learning_rate: f32,
    /// L2 regularization. Default 0.002.
    pub regularization: f32,
    /// Negatives sampled per interaction. Default 4.
    pub negatives: usize,
    /// Sightings before an id gets an embedding. Default 1.
    pub min_count: u32,
    /// Embeddings untouched this long (event time, ms) are dropped.
    /// Default 365 days.
    pub ttl_ms: i64,
}

impl Default for MfConfig {
    fn default() -> Self {
        MfConfig {
            dim: 32,
            learning_rate: 0.05,
            regularization: 0.002,
            negatives: 4,
            min_count: 1,
            ttl_ms: 365 * 86_400_000,
        }
    }
}

/// The model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamingMf {
    /// Its settings.
    pub config: MfConfig,
    /// User embeddings.
    pub users: EmbeddingTable,
    /// Item embeddings.
    pub items: EmbeddingTable,
    /// Admitted item ids, for negative sampling (may hold expired ids,
    /// skipped when drawn).
    item_ids: Vec<u64>,
    rng: Rng,
    /// Interactions learned from.
    pub updates: u64,
    /// Interactions not learned from because the user or the item has no
    /// embedding yet (seen fewer than `min_count` times): counted, and
    /// kept out of the model.
    pub not_admitted: u64,
    last_expiry: i64,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The same dot product with eight running sums, which the compiler turns
/// into SIMD (a single running sum fixes the order of additions and stays
/// scalar). Ranking the whole catalog uses it; learning keeps `dot`, so
/// training is unchanged.
fn dot_wide(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl StreamingMf {
    /// An empty model.
    pub fn new(config: MfConfig) -> StreamingMf {
        StreamingMf {
            users: EmbeddingTable::new(config.dim, config.min_count, config.ttl_ms),
            items: EmbeddingTable::new(config.dim, config.min_count, config.ttl_ms),
            config,
            item_ids: Vec::new(),
            rng: Rng(0x00DD_BA11),
            updates: 0,
            not_admitted: 0,
            last_expiry: i64::MIN,
        }
    }

    /// The score of `item` for `user`, if both have embeddings.
    pub fn score(&self, user: u64, item: u64) -> Option<f32> {
        let (u, i) = (self.users.get(user)?, self.items.get(item)?);
        Some(i.bias + dot(&u.vector, &i.vector))
    }

    /// One BPR step: `pos` above `neg` for `user`.
    fn step(&mut self, user: u64, pos: u64, neg: u64) {
        let (lr, reg) = (self.config.learning_rate, self.config.regularization);
        let Some(u) = self.users.get(user).map(|r| r.vector.clone()) else {
            return;
        };
        let Some((i, j)) = self.items.pair_mut(pos, neg) else {
            return;
        };
        let x = (i.bias - j.bias) + dot(&u, &i.vector) - dot(&u, &j.vector);
        let g = sigmoid(-x);
        i.bias += lr * (g - reg * i.bias);
        j.bias += lr * (-g - reg * j.bias);
        let mut du = vec![0.0f32; u.len()];
        for f in 0..u.len() {
            let (qi, qj) = (i.vector[f], j.vector[f]);
            du[f] = g * (qi - qj) - reg * u[f];
            i.vector[f] += lr * (g * u[f] - reg * qi);
            j.vector[f] += lr * (-g * u[f] - reg * qj);
        }
        if let Some(user_row) = self.users.get_mut(user) {
            for (p, d) in user_row.vector.iter_mut().zip(du) {
                *p += lr * d;
            }
        }
    }
}

impl Recommender for StreamingMf {
    fn learn(&mut self, user: u64, item: u64, ts: i64) {
        let user_known = self.users.touch(user, ts);
        let had_item = self.items.get(item).is_some();
        let item_known = self.items.touch(item, ts);
        if item_known && !had_item {
            self.item_ids.push(item);
        }
        if user_known && item_known && self.item_ids.len() > 1 {
            for _ in 0..self.config.negatives {
                let j = self.item_ids[(self.rng.next_u64() % self.item_ids.len() as u64) as usize];
                if j != item {
                    self.step(user, item, j);
                }
            }
            self.updates += 1;
        } else {
            self.not_admitted += 1;
        }
        // Expire once a day of event time.
        if ts >= self.last_expiry.saturating_add(86_400_000) {
            self.last_expiry = ts;
            self.users.expire(ts);
            self.items.expire(ts);
            let items = &self.items;
            self.item_ids.retain(|id| items.get(*id).is_some());
        }
    }

    fn recommend(
        &self,
        user: u64,
        _ts: i64,
        k: usize,
        exclude: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let Some(u) = self.users.get(user) else {
            return Vec::new();
        };
        top_k(
            self.items
                .ids()
                .map(|(id, row)| (*id, row.bias + dot_wide(&u.vector, &row.vector))),
            k,
            exclude,
        )
    }
}

/// The `k` best of `scored` (id, score), best first with ties by id,
/// leaving out what `exclude` says: a bounded min-heap. Scoring is cheap;
/// the caller's filter may not be, so it runs only for items that would
/// enter the top k.
fn top_k(
    scored: impl Iterator<Item = (u64, f32)>,
    k: usize,
    exclude: &dyn Fn(u64) -> bool,
) -> Vec<(u64, f32)> {
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(OrdF32, u64)>> =
        std::collections::BinaryHeap::with_capacity(k + 1);
    for (id, s) in scored {
        if heap.len() >= k && heap.peek().is_some_and(|m| s <= m.0.0.0) {
            continue;
        }
        if exclude(id) {
            continue;
        }
        heap.push(std::cmp::Reverse((OrdF32(s), id)));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut out: Vec<(u64, f32)> = heap.into_iter().map(|r| (r.0.1, r.0.0.0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Every item's embedding in one contiguous matrix, for serving: scoring
/// the catalog is then one sequential pass over memory instead of a walk
/// through a hash map of separately allocated rows, several times faster
/// when the catalog is not already in cache. Built once per model version.
#[derive(Debug, Clone)]
pub struct ItemMatrix {
    dim: usize,
    /// Item ids, ascending (so ties break the same way in every process).
    ids: Vec<u64>,
    vectors: Vec<f32>,
    bias: Vec<f32>,
}

impl ItemMatrix {
    /// The top `k` items for `user` by the model's score, best first (ties
    /// by id), leaving out what `exclude` says; empty for an unknown user.
    pub fn recommend(
        &self,
        mf: &StreamingMf,
        user: u64,
        k: usize,
        exclude: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let Some(u) = mf.users.get(user) else {
            return Vec::new();
        };
        top_k(
            self.ids.iter().enumerate().map(|(j, id)| {
                let row = &self.vectors[j * self.dim..(j + 1) * self.dim];
                (*id, self.bias[j] + dot_wide(&u.vector, row))
            }),
            k,
            exclude,
        )
    }

    /// Items in the matrix.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the matrix holds no item.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl StreamingMf {
    /// The item embeddings as one matrix (see [`ItemMatrix`]).
    pub fn item_matrix(&self) -> ItemMatrix {
        let mut rows: Vec<(&u64, &super::embeddings::Row)> = self.items.ids().collect();
        rows.sort_by_key(|r| *r.0);
        let dim = self.config.dim;
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        for (_, r) in &rows {
            vectors.extend_from_slice(&r.vector);
        }
        ItemMatrix {
            dim,
            ids: rows.iter().map(|r| *r.0).collect(),
            bias: rows.iter().map(|r| r.1.bias).collect(),
            vectors,
        }
    }
}

/// An f32 with a total order, for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);

impl Eq for OrdF32 {}

impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(min_count: u32) -> StreamingMf {
        let mut mf = StreamingMf::new(MfConfig {
            dim: 8,
            min_count,
            ..MfConfig::default()
        });
        let mut rng = Rng(1);
        for n in 0..5_000 {
            let user = rng.next_u64() % 50;
            // Users like items of their own parity.
            let item = 2 * (rng.next_u64() % 20) + user % 2;
            mf.learn(user, item, n);
        }
        mf
    }

    #[test]
    fn a_saved_model_recommends_exactly_like_the_original() {
        let mf = trained(1);
        let bytes = postcard::to_stdvec(&mf).unwrap();
        let copy: StreamingMf = postcard::from_bytes(&bytes).unwrap();
        for user in 0..50 {
            assert_eq!(
                mf.recommend(user, 0, 10, &|_| false),
                copy.recommend(user, 0, 10, &|_| false)
            );
        }
        // And it learned the pattern.
        let top = mf.recommend(3, 0, 10, &|_| false);
        assert!(
            top.iter().filter(|(i, _)| i % 2 == 1).count() >= 8,
            "{top:?}"
        );
    }

    #[test]
    fn unknown_and_rare_ids_are_counted_and_do_not_touch_the_model() {
        let mut mf = trained(3);
        assert!(
            mf.recommend(999_999, 0, 10, &|_| false).is_empty(),
            "unknown user"
        );
        assert!(mf.score(3, 999_999).is_none(), "unknown item");
        let skipped = mf.not_admitted;
        // A brand-new user and item, seen once: counted, nothing learned.
        mf.learn(777_777, 888_888, 10_000);
        assert_eq!(mf.not_admitted, skipped + 1);
        assert!(mf.users.get(777_777).is_none() && mf.items.get(888_888).is_none());
    }
}
