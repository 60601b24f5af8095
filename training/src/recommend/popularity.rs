//! Popularity with exponential decay: an item's score is
//! Σ 2^(−(t − tᵢ)/half_life) over its interactions at times tᵢ.
//!
//! Every score decays by the same factor as time passes, so the ranking
//! only changes when an interaction arrives. Scores are therefore kept as
//! log₂ of the sum at a fixed reference time (time 0), where an interaction
//! at t adds 2^(t/half_life): the order never needs re-sorting, and logs
//! keep the numbers finite over decades. The ranking lives in an ordered
//! set, so the top k costs O(k).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{Recommender, log2_add};

/// Items by decayed interaction count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Popularity {
    half_life_ms: f64,
    /// Per item: log₂ of its score at time 0.
    log_score: HashMap<u64, f64>,
    /// (log score as ordered bits, item), best last.
    ranked: BTreeSet<(i64, u64)>,
}

/// A float as an integer with the same order.
fn ordered(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 { b ^ i64::MAX } else { b }
}

impl Popularity {
    /// An empty model whose counts halve every `half_life_ms` of event time.
    pub fn new(half_life_ms: i64) -> Popularity {
        Popularity {
            half_life_ms: half_life_ms.max(1) as f64,
            log_score: HashMap::new(),
            ranked: BTreeSet::new(),
        }
    }

    /// The decayed score of `item` as of `ts`.
    pub fn score(&self, item: u64, ts: i64) -> f64 {
        self.log_score
            .get(&item)
            .map_or(0.0, |l| (l - ts as f64 / self.half_life_ms).exp2())
    }

    /// Items counted.
    pub fn items(&self) -> usize {
        self.log_score.len()
    }
}

impl Recommender for Popularity {
    fn learn(&mut self, _user: u64, item: u64, ts: i64) {
        let add = ts as f64 / self.half_life_ms;
        let new = match self.log_score.get(&item) {
            Some(old) => {
                self.ranked.remove(&(ordered(*old), item));
                log2_add(*old, add)
            }
            None => add,
        };
        self.log_score.insert(item, new);
        self.ranked.insert((ordered(new), item));
    }

    fn recommend(
        &self,
        _user: u64,
        ts: i64,
        k: usize,
        exclude: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        self.ranked
            .iter()
            .rev()
            .filter(|(_, item)| !exclude(*item))
            .take(k)
            .map(|(_, item)| (*item, self.score(*item, ts) as f32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_interactions_outweigh_older_ones_by_the_half_life() {
        let day = 86_400_000;
        let mut p = Popularity::new(day);
        // Item 1: two interactions ten days ago; item 2: one today.
        p.learn(0, 1, 0);
        p.learn(0, 1, 0);
        p.learn(0, 2, 10 * day);
        let top = p.recommend(0, 10 * day, 2, &|_| false);
        assert_eq!(top[0].0, 2);
        assert!((top[0].1 - 1.0).abs() < 1e-6);
        assert!((top[1].1 - 2.0 * 2f32.powi(-10)).abs() < 1e-6);
        // Excluded items are skipped, not counted against k.
        assert_eq!(p.recommend(0, 10 * day, 1, &|i| i == 2)[0].0, 1);
    }
}
