//! Item-to-item co-occurrence with time decay: "users who just engaged
//! with X engage with Y next".
//!
//! When a user engages with Y, each item X among the user's last few
//! engagements (within `session_gap`) gains weight toward Y. Weights decay
//! with a half-life, kept in log space at a fixed reference time, as in
//! [`super::popularity`], so old pairings fade without ever being
//! rewritten. A user's candidates are the neighbors of their recent items,
//! scored by the sum of decayed weights. Each item keeps at most
//! `max_neighbors`, the weakest dropped first, so memory is bounded.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Recommender, log2_add};

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoOccurrenceConfig {
    /// Half-life of a pairing. Default 30 days.
    pub half_life_ms: i64,
    /// Recent items per user that pair with the next one. Default 5.
    pub recent: usize,
    /// Engagements further apart than this do not pair. Default 1 day.
    pub session_gap_ms: i64,
    /// Neighbors kept per item. Default 200.
    pub max_neighbors: usize,
}

impl Default for CoOccurrenceConfig {
    fn default() -> Self {
        CoOccurrenceConfig {
            half_life_ms: 30 * 86_400_000,
            recent: 5,
            session_gap_ms: 86_400_000,
            max_neighbors: 200,
        }
    }
}

/// The model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoOccurrence {
    /// Its settings.
    pub config: CoOccurrenceConfig,
    recent: HashMap<u64, VecDeque<(u64, i64)>>,
    /// item → neighbor → log₂ of its weight at time 0.
    neighbors: HashMap<u64, HashMap<u64, f64>>,
}

impl CoOccurrence {
    /// An empty model.
    pub fn new(config: CoOccurrenceConfig) -> CoOccurrence {
        CoOccurrence {
            config,
            recent: HashMap::new(),
            neighbors: HashMap::new(),
        }
    }

    fn pair(&mut self, from: u64, to: u64, ts: i64) {
        let add = ts as f64 / self.config.half_life_ms as f64;
        let max = self.config.max_neighbors;
        let n = self.neighbors.entry(from).or_default();
        let w = n.get(&to).map_or(add, |old| log2_add(*old, add));
        n.insert(to, w);
        if n.len() > 2 * max {
            // Keep the strongest `max`: amortized, pruned in bulk.
            let mut all: Vec<(u64, f64)> = n.drain().collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(max);
            n.extend(all);
        }
    }
}

impl Recommender for CoOccurrence {
    fn learn(&mut self, user: u64, item: u64, ts: i64) {
        let gap = self.config.session_gap_ms;
        let recent: Vec<u64> = self
            .recent
            .get(&user)
            .map(|r| {
                r.iter()
                    .filter(|(x, t)| *x != item && ts - t <= gap)
                    .map(|(x, _)| *x)
                    .collect()
            })
            .unwrap_or_default();
        for x in recent {
            self.pair(x, item, ts);
        }
        let r = self.recent.entry(user).or_default();
        r.push_back((item, ts));
        while r.len() > self.config.recent {
            r.pop_front();
        }
    }

    fn recommend(
        &self,
        user: u64,
        ts: i64,
        k: usize,
        exclude: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let Some(recent) = self.recent.get(&user) else {
            return Vec::new();
        };
        let recent: Vec<u64> = recent.iter().map(|(x, _)| *x).collect();
        self.recommend_from(&recent, ts, k, exclude)
    }
}

impl CoOccurrence {
    /// The neighbors of `recent` items (the user's latest engagements, as
    /// the caller saw them), best first. Serving passes its own, fresher
    /// view of the user's recent items than the model's last snapshot.
    pub fn recommend_from(
        &self,
        recent: &[u64],
        ts: i64,
        k: usize,
        exclude: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let now = ts as f64 / self.config.half_life_ms as f64;
        let mut scores: HashMap<u64, f64> = HashMap::new();
        let recent = &recent[recent.len().saturating_sub(self.config.recent)..];
        for x in recent {
            for (y, lw) in self.neighbors.get(x).into_iter().flatten() {
                if !exclude(*y) {
                    *scores.entry(*y).or_default() += (lw - now).exp2();
                }
            }
        }
        let mut out: Vec<(u64, f32)> = scores.into_iter().map(|(i, s)| (i, s as f32)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_engaged_next_are_recommended_and_old_pairings_fade() {
        let day = 86_400_000;
        let mut c = CoOccurrence::new(CoOccurrenceConfig {
            half_life_ms: day,
            ..CoOccurrenceConfig::default()
        });
        // Many users watch 1 then 2; long ago, many watched 1 then 3.
        for u in 0..10 {
            c.learn(u, 1, 0);
            c.learn(u, 3, 1_000);
        }
        for u in 10..13 {
            c.learn(u, 1, 20 * day);
            c.learn(u, 2, 20 * day + 1_000);
        }
        c.learn(99, 1, 20 * day + 5_000);
        let top = c.recommend(99, 20 * day + 5_000, 2, &|i| i == 1);
        assert_eq!(
            top[0].0, 2,
            "three recent pairings beat ten from 20 half-lives ago: {top:?}"
        );
        assert_eq!(top[1].0, 3);
        assert!(
            c.recommend(12345, 0, 5, &|_| false).is_empty(),
            "unknown user"
        );
    }

    #[test]
    fn each_item_keeps_a_bounded_number_of_neighbors() {
        let mut c = CoOccurrence::new(CoOccurrenceConfig {
            max_neighbors: 10,
            ..CoOccurrenceConfig::default()
        });
        for i in 0..1_000 {
            c.learn(i, 0, i as i64);
            c.learn(i, 1 + i, i as i64 + 1);
        }
        assert!(c.neighbors[&0].len() <= 20);
    }
}
