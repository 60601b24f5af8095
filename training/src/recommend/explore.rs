//! Exploration for cold items: without it a recommender only shows what it
//! already believes in, and a new item never gets the impressions it needs
//! to prove itself. Off by default.
//!
//! - **ε-greedy**: each slot of the ranked list is, with probability ε,
//!   given to a random cold item instead.
//! - **Thompson sampling**: each cold item's click rate is drawn from its
//!   Beta posterior (prior plus its clicks and non-clicks); the best draws
//!   take the last `slots` places. Items that look good, or are still
//!   uncertain, get shown; items that have shown they are poor fade.
//!
//! Randomness comes from a seed the caller derives from the request (for
//! example the request id), so a replay of the same requests makes the
//! same choices.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Rng;

/// How to explore. Default: off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Exploration {
    #[default]
    /// No exploration.
    Off,
    /// Each slot goes, with probability `epsilon`, to a random cold item.
    EpsilonGreedy {
        /// Probability that a slot goes to a random cold item.
        epsilon: f64,
    },
    /// The last `slots` go to cold items sampled by their Beta posterior.
    Thompson {
        /// Slots at the end of the list given to sampled cold items.
        slots: usize,
        /// Beta prior (clicks, non-clicks). Default a weak (1, 10).
        prior_clicks: f64,
        /// Beta prior's non-clicks.
        prior_misses: f64,
    },
}

/// Impressions and clicks of items, for exploration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Explorer {
    /// How to explore.
    pub mode: Exploration,
    /// Items with fewer impressions than this are cold. Default 100.
    pub cold_below: u64,
    stats: HashMap<u64, (u64, u64)>,
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang 2000).
fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        // Boost: Gamma(a) = Gamma(a + 1) · U^(1/a).
        return gamma(rng, shape + 1.0) * rng.uniform().max(1e-300).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.uniform().max(1e-300);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(a, b) draw.
fn beta(rng: &mut Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    x / (x + gamma(rng, b))
}

impl Explorer {
    /// An explorer that has seen nothing.
    pub fn new(mode: Exploration) -> Explorer {
        Explorer {
            mode,
            cold_below: 100,
            stats: HashMap::new(),
        }
    }

    /// Records that `item` was shown, and whether it was clicked.
    pub fn feedback(&mut self, item: u64, clicked: bool) {
        let s = self.stats.entry(item).or_default();
        s.0 += 1;
        s.1 += u64::from(clicked);
    }

    /// Records a click on an item already counted as shown.
    pub fn clicked(&mut self, item: u64) {
        if let Some(s) = self.stats.get_mut(&item)
            && s.1 < s.0
        {
            s.1 += 1;
        }
    }

    /// Is `item` cold (few impressions)?
    pub fn is_cold(&self, item: u64) -> bool {
        self.stats.get(&item).is_none_or(|s| s.0 < self.cold_below)
    }

    /// Re-ranks `ranked` (best first) with cold `candidates`, using `seed`.
    pub fn explore(
        &self,
        ranked: Vec<(u64, f32)>,
        candidates: &[u64],
        seed: u64,
    ) -> Vec<(u64, f32)> {
        let mut rng = Rng(seed);
        let cold: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|c| self.is_cold(*c) && !ranked.iter().any(|(r, _)| r == c))
            .collect();
        if cold.is_empty() {
            return ranked;
        }
        match self.mode {
            Exploration::Off => ranked,
            Exploration::EpsilonGreedy { epsilon } => {
                let mut pool = cold;
                let mut out = Vec::with_capacity(ranked.len());
                for (item, score) in ranked {
                    if !pool.is_empty() && rng.uniform() < epsilon {
                        let pick = pool.swap_remove((rng.next_u64() % pool.len() as u64) as usize);
                        out.push((pick, score));
                    } else {
                        out.push((item, score));
                    }
                }
                out
            }
            Exploration::Thompson {
                slots,
                prior_clicks,
                prior_misses,
            } => {
                let mut draws: Vec<(u64, f64)> = cold
                    .iter()
                    .map(|c| {
                        let (shown, clicked) = self.stats.get(c).copied().unwrap_or_default();
                        let a = prior_clicks + clicked as f64;
                        let b = prior_misses + (shown - clicked) as f64;
                        (*c, beta(&mut rng, a.max(1e-3), b.max(1e-3)))
                    })
                    .collect();
                draws.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                let keep = ranked.len().saturating_sub(slots.min(ranked.len()));
                let mut out: Vec<(u64, f32)> = ranked[..keep].to_vec();
                let floor = out.last().map_or(0.0, |x| x.1);
                out.extend(
                    draws
                        .into_iter()
                        .take(ranked.len() - keep)
                        .map(|(c, _)| (c, floor)),
                );
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked() -> Vec<(u64, f32)> {
        (0..10).map(|i| (i, 10.0 - i as f32)).collect()
    }

    #[test]
    fn off_and_epsilon_zero_change_nothing_and_epsilon_one_explores_every_slot() {
        let cold: Vec<u64> = (100..120).collect();
        assert_eq!(
            Explorer::new(Exploration::Off).explore(ranked(), &cold, 1),
            ranked()
        );
        let e0 = Explorer::new(Exploration::EpsilonGreedy { epsilon: 0.0 });
        assert_eq!(e0.explore(ranked(), &cold, 1), ranked());
        let e1 = Explorer::new(Exploration::EpsilonGreedy { epsilon: 1.0 });
        let out = e1.explore(ranked(), &cold, 1);
        assert!(out.iter().all(|(i, _)| *i >= 100), "{out:?}");
        assert_eq!(
            out,
            e1.explore(ranked(), &cold, 1),
            "same seed, same choice"
        );
    }

    #[test]
    fn thompson_sampling_favours_cold_items_that_get_clicked() {
        let mut e = Explorer::new(Exploration::Thompson {
            slots: 1,
            prior_clicks: 1.0,
            prior_misses: 10.0,
        });
        // Item 100: 30 shows, 15 clicks. Item 101: 30 shows, no click.
        for n in 0..30 {
            e.feedback(100, n % 2 == 0);
            e.feedback(101, false);
        }
        let mut wins = [0; 2];
        for seed in 0..1_000 {
            let out = e.explore(ranked(), &[100, 101], seed);
            assert_eq!(out[..9], ranked()[..9], "only the last slot explores");
            match out[9].0 {
                100 => wins[0] += 1,
                101 => wins[1] += 1,
                _ => unreachable!(),
            }
        }
        assert!(wins[0] > 950, "{wins:?}");
        // Beta draws have the right mean.
        let mut rng = Rng(9);
        let mean = (0..20_000).map(|_| beta(&mut rng, 2.0, 6.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 0.25).abs() < 0.01, "{mean}");
    }
}
