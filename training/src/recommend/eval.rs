//! Prequential (test-then-train) evaluation of recommenders: at each
//! interaction, the model's top k for the user, computed *before* it learns
//! the interaction, is scored against the item the user actually chose;
//! then the model learns it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::Recommender;

/// Whether the interaction (user, item, ts) is one of the one in `every`
/// scored: a hash of the three, so the choice does not depend on the
/// order, the partitioning or a restart (a replay scores the same ones).
pub fn sampled(user: u64, item: u64, ts: i64, every: u64) -> bool {
    if every <= 1 {
        return true;
    }
    // The three, mixed in turn.
    use super::mix64;
    let h = mix64(mix64(mix64(user) ^ item) ^ ts as u64);
    h.is_multiple_of(every)
}

/// Running HR@k and NDCG@k.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Prequential {
    /// The k of HR@k and NDCG@k.
    pub k: usize,
    /// Items each user has interacted with: never recommended again.
    seen: HashMap<u64, HashSet<u64>>,
    evaluated: u64,
    hits: u64,
    ndcg: f64,
}

/// HR@k and NDCG@k over the evaluated interactions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RankReport {
    /// Interactions scored.
    pub evaluated: u64,
    /// HR@k: the share of interactions whose item was in the top k.
    pub hit_rate: f64,
    /// NDCG@k.
    pub ndcg: f64,
}

impl Prequential {
    /// An evaluation at `k`.
    pub fn new(k: usize) -> Prequential {
        Prequential {
            k,
            seen: HashMap::new(),
            evaluated: 0,
            hits: 0,
            ndcg: 0.0,
        }
    }

    /// Scores `model`'s recommendation for this interaction (if `score`),
    /// with `fallback` for users `model` cannot serve; then teaches both.
    pub fn step(
        &mut self,
        model: &mut (dyn Recommender + '_),
        fallback: Option<&mut (dyn Recommender + '_)>,
        (user, item, ts): (u64, u64, i64),
        score: bool,
    ) {
        let seen = self.seen.entry(user).or_default();
        if score && !seen.contains(&item) {
            let exclude = |i: u64| seen.contains(&i);
            let mut top = model.recommend(user, ts, self.k, &exclude);
            if top.is_empty()
                && let Some(f) = &fallback
            {
                top = f.recommend(user, ts, self.k, &exclude);
            }
            self.evaluated += 1;
            if let Some(rank) = top.iter().position(|(i, _)| *i == item) {
                self.hits += 1;
                self.ndcg += 1.0 / (rank as f64 + 2.0).log2();
            }
        }
        seen.insert(item);
        model.learn(user, item, ts);
        if let Some(f) = fallback {
            f.learn(user, item, ts);
        }
    }

    /// The metrics so far.
    pub fn report(&self) -> RankReport {
        let n = self.evaluated.max(1) as f64;
        RankReport {
            evaluated: self.evaluated,
            hit_rate: self.hits as f64 / n,
            ndcg: self.ndcg / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sampled;

    /// One in `every`, the same ones every time, whatever the order.
    #[test]
    fn sampling_picks_one_in_every_and_always_the_same_ones() {
        let picked: Vec<(u64, u64, i64)> = (0..100_000u64)
            .map(|n| (n % 611, n / 7, n as i64 * 1000))
            .filter(|(u, i, t)| sampled(*u, *i, *t, 10))
            .collect();
        assert!((9_500..10_500).contains(&picked.len()), "{}", picked.len());
        assert!(picked.iter().all(|(u, i, t)| sampled(*u, *i, *t, 10)));
        assert!((0..1000).all(|n| sampled(n, n, n as i64, 1)));
    }
}
