//! The second stage: orders the candidates of several recommenders by what
//! users did with earlier recommendations.
//!
//! Why learned: a fixed order ("the first recommender fills the slots, the
//! next one fills what is left") loses to its own best member wherever
//! the first one is confident and wrong (measured in BENCHMARKS.md: the
//! MovieLens chain below MF alone, the clickstream chain below popularity
//! alone). Which source to trust depends on the user (co-occurrence needs
//! recent items, MF needs a learned user) and on how far down a source's
//! list the candidate sits, and that can be learned from impressions.
//!
//! An impression is the pool of candidates a user was offered, each with
//! its rank in every source that proposed it; its outcome is the item the
//! user engaged with next. The pool's candidate with that item is a
//! positive, the ones shown above it and a few sampled from the rest are
//! negatives, and a logistic model (FTRL-Proximal, the same learner as the
//! spec's `ftrl` models) learns from them. An outcome outside the pool
//! teaches nothing about the order and is counted, not learned.
//!
//! The features are what rankers use: each source's rank bucket, which
//! sources agree, pairs of ranks, the item's popularity among outcomes and
//! the item itself, an optional outside score (the spec's FTRL ranker),
//! each crossed with how much the user has done (a new user's MF rank is
//! worth little). Before any impression is learned all margins are zero
//! and the order is reciprocal rank fusion, which a learned order must
//! then beat.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Rng, mix64};
use crate::Learner;
use crate::ftrl::{Ftrl, FtrlConfig, Loss};

/// A rank no source gave: the candidate is absent from that source.
const ABSENT: u16 = u16::MAX;

/// Candidates from several sources, each with its rank in every source
/// (struct of arrays: one allocation per pool, not per candidate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    sources: usize,
    /// The candidates' items, in the order they were added.
    pub items: Vec<u64>,
    /// `ranks[i * sources + s]`: item i's 0-based rank in source s.
    ranks: Vec<u16>,
    /// An outside score per candidate (a probability), if any.
    outside: Vec<Option<f32>>,
    #[serde(skip)]
    index: HashMap<u64, usize>,
}

impl Pool {
    /// An empty pool for `sources` candidate sources.
    pub fn new(sources: usize) -> Pool {
        Pool {
            sources,
            ..Pool::default()
        }
    }

    /// `source` proposes `item` at `rank` (0 is its best). An item already
    /// in the pool gains this rank; a source's second proposal of the same
    /// item keeps its better rank.
    pub fn add(&mut self, source: usize, rank: usize, item: u64) {
        if source >= self.sources {
            return;
        }
        let i = *self.index.entry(item).or_insert_with(|| {
            self.items.push(item);
            self.ranks.extend(std::iter::repeat_n(ABSENT, self.sources));
            self.outside.push(None);
            self.items.len() - 1
        });
        let r = &mut self.ranks[i * self.sources + source];
        *r = (*r).min(rank.min(ABSENT as usize - 1) as u16);
    }

    /// Sets candidate `i`'s outside score.
    pub fn set_outside(&mut self, i: usize, p: f64) {
        if let Some(o) = self.outside.get_mut(i) {
            *o = Some(p as f32);
        }
    }

    /// Candidates in the pool.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no source proposed anything.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Candidate `i`'s rank in `source`, if that source proposed it.
    pub fn rank(&self, i: usize, source: usize) -> Option<usize> {
        let r = self.ranks[i * self.sources + source];
        (r != ABSENT).then_some(r as usize)
    }

    /// The sources that proposed candidate `i`, in source order.
    pub fn proposed_by(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.sources).filter(move |&s| self.rank(i, s).is_some())
    }

    /// Reciprocal rank fusion (k = 60): the order before anything is
    /// learned.
    fn fused(&self, i: usize) -> f64 {
        (0..self.sources)
            .filter_map(|s| self.rank(i, s))
            .map(|r| 1.0 / (61.0 + r as f64))
            .sum()
    }

    /// The pool reduced to candidates `order` (in that order).
    fn select(&self, order: &[usize]) -> Pool {
        let mut out = Pool::new(self.sources);
        for &i in order {
            out.items.push(self.items[i]);
            out.ranks
                .extend_from_slice(&self.ranks[i * self.sources..(i + 1) * self.sources]);
            out.outside.push(self.outside[i]);
        }
        out
    }
}

/// What the ranker learns from: the pool a user was offered, best first
/// as ranked, and how much the user had done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    /// The candidates kept, in the order they were ranked.
    pub pool: Pool,
    /// The items shown: the first `shown` of `pool`.
    pub shown: usize,
    /// The user's number of past interactions.
    pub history: usize,
}

/// What learning from impressions has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankCounts {
    /// Impressions whose outcome was in the pool: learned from.
    pub learned: u64,
    /// Impressions whose outcome was not in the pool: they say nothing
    /// about the order, so they teach nothing (the candidate sources
    /// missed it).
    pub outside_pool: u64,
}

/// The learned second stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnedRanker {
    model: Ftrl,
    /// Outcomes per item: its popularity among what users engaged with.
    outcomes: HashMap<u64, u32>,
    /// Candidates kept per impression (the best ranked).
    keep: usize,
    /// Negatives sampled per impression beyond those shown.
    sampled: usize,
    rng: Rng,
    /// What learning has done.
    pub counts: RankCounts,
}

/// `⌊log₂(n + 1)⌋`, at most `cap`: ranks and counts by order of magnitude.
fn bucket(n: usize, cap: u64) -> u64 {
    (usize::BITS - (n + 1).leading_zeros() - 1).min(cap as u32) as u64
}

/// A feature: its kind and parts hashed to one slot.
fn slot(kind: u64, a: u64, b: u64, c: u64) -> (u32, f32) {
    let h = mix64(kind.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix64(a ^ mix64(b ^ mix64(c))));
    (h as u32, 1.0)
}

impl Default for LearnedRanker {
    fn default() -> Self {
        LearnedRanker::new()
    }
}

impl LearnedRanker {
    /// An untrained ranker: it orders by reciprocal rank fusion until it
    /// has learned.
    pub fn new() -> LearnedRanker {
        LearnedRanker {
            model: Ftrl::new(FtrlConfig {
                bits: 20,
                alpha: 0.1,
                beta: 1.0,
                l1: 0.1,
                l2: 1.0,
                loss: Loss::Logistic,
                standardize: false,
            }),
            outcomes: HashMap::new(),
            keep: 50,
            sampled: 10,
            rng: Rng(0x5EED),
            counts: RankCounts::default(),
        }
    }

    /// Candidate `i`'s features for a user with `history` interactions.
    fn features(&self, pool: &Pool, i: usize, history: usize, out: &mut Vec<(u32, f32)>) {
        out.clear();
        let user = bucket(history, 10);
        let item = pool.items[i];
        let sources = pool.sources as u64;
        out.push(slot(1, 0, 0, 0));
        out.push(slot(2, user, 0, 0));
        let mut agree = 0;
        for s in 0..pool.sources {
            let r = pool.rank(i, s).map_or(15, |r| bucket(r, 12));
            agree += u64::from(r != 15);
            out.push(slot(3, s as u64, r, 0));
            out.push(slot(4, s as u64, r, user));
            for t in s + 1..pool.sources {
                let q = pool.rank(i, t).map_or(15, |r| bucket(r, 12));
                out.push(slot(5, (s as u64) << 8 | t as u64, r, q));
            }
        }
        out.push(slot(6, agree, sources, user));
        let popular = bucket(self.outcomes.get(&item).copied().unwrap_or(0) as usize, 15);
        out.push(slot(7, popular, 0, 0));
        out.push(slot(8, popular, user, 0));
        out.push(slot(9, item, 0, 0));
        if let Some(p) = pool.outside[i] {
            let b = (f64::from(p) * 10.0).clamp(0.0, 9.0) as u64;
            out.push(slot(10, b, 0, 0));
            out.push(slot(11, b, user, 0));
        }
    }

    /// The pool's candidates best first: indices with their margins
    /// (log-odds), ties broken by reciprocal rank fusion, then by item id.
    pub fn rank(&self, pool: &Pool, history: usize) -> Vec<(usize, f64)> {
        let mut x = Vec::new();
        let mut scored: Vec<(usize, f64, f64)> = (0..pool.len())
            .map(|i| {
                self.features(pool, i, history, &mut x);
                (i, self.model.margin(&x), pool.fused(i))
            })
            .collect();
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(b.2.total_cmp(&a.2))
                .then(pool.items[a.0].cmp(&pool.items[b.0]))
        });
        scored.into_iter().map(|(i, m, _)| (i, m)).collect()
    }

    /// The impression to remember for `pool` ranked as `order`, of which
    /// the first `shown` were shown: the best `keep` candidates.
    pub fn impression(
        &self,
        pool: &Pool,
        order: &[(usize, f64)],
        shown: usize,
        history: usize,
    ) -> Impression {
        let kept: Vec<usize> = order
            .iter()
            .take(self.keep.max(shown))
            .map(|o| o.0)
            .collect();
        Impression {
            pool: pool.select(&kept),
            shown: shown.min(kept.len()),
            history,
        }
    }

    /// An item users engaged with (every outcome, impression or not).
    pub fn engaged(&mut self, item: u64) {
        let n = self.outcomes.entry(item).or_default();
        *n = n.saturating_add(1);
    }

    /// Learns from `imp` whose outcome was `item`: true if the item was in
    /// the pool (learned), false if not (counted in
    /// [`RankCounts::outside_pool`]).
    pub fn learn(&mut self, imp: &Impression, item: u64) -> bool {
        let Some(pos) = imp.pool.items.iter().position(|i| *i == item) else {
            self.counts.outside_pool += 1;
            return false;
        };
        self.counts.learned += 1;
        let mut x = Vec::new();
        self.features(&imp.pool, pos, imp.history, &mut x);
        self.model.learn(&x, 1.0);
        // Negatives: what was shown instead, and a sample of the rest.
        let mut negatives: Vec<usize> = (0..imp.shown).filter(|&i| i != pos).collect();
        let rest = imp.pool.len().saturating_sub(imp.shown);
        for _ in 0..self.sampled.min(rest) {
            let i = imp.shown + (self.rng.next_u64() % rest as u64) as usize;
            if i != pos && !negatives.contains(&i) {
                negatives.push(i);
            }
        }
        for i in negatives {
            self.features(&imp.pool, i, imp.history, &mut x);
            self.model.learn(&x, 0.0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(lists: &[&[u64]]) -> Pool {
        let mut p = Pool::new(lists.len());
        for (s, list) in lists.iter().enumerate() {
            for (r, item) in list.iter().enumerate() {
                p.add(s, r, *item);
            }
        }
        p
    }

    fn items(p: &Pool, order: &[(usize, f64)]) -> Vec<u64> {
        order.iter().map(|o| p.items[o.0]).collect()
    }

    #[test]
    fn a_pool_merges_an_item_proposed_by_several_sources() {
        let p = pool(&[&[1, 2, 3], &[3, 4]]);
        assert_eq!(p.items, [1, 2, 3, 4]);
        assert_eq!(p.rank(2, 0), Some(2));
        assert_eq!(p.rank(2, 1), Some(0));
        assert_eq!(p.rank(3, 0), None);
        assert_eq!(p.proposed_by(2).collect::<Vec<_>>(), [0, 1]);
    }

    /// Untrained, the order is reciprocal rank fusion: an item both
    /// sources propose comes first, then by rank (equal ranks: the lower
    /// id first).
    #[test]
    fn before_learning_the_order_is_reciprocal_rank_fusion() {
        let p = pool(&[&[1, 2, 3], &[3, 4, 5]]);
        let r = LearnedRanker::new();
        assert_eq!(items(&p, &r.rank(&p, 0)), [3, 1, 2, 4, 5]);
    }

    /// The second source is always right, the first never: after some
    /// impressions the ranker puts the second source's best first, and
    /// an impression whose outcome is outside the pool is counted, not
    /// learned.
    #[test]
    fn it_learns_which_source_to_trust() {
        let mut r = LearnedRanker::new();
        let mut rng = Rng(3);
        for _ in 0..300 {
            let a: Vec<u64> = (0..10).map(|_| rng.next_u64() % 1000).collect();
            let b: Vec<u64> = (0..10).map(|_| 1000 + rng.next_u64() % 1000).collect();
            let p = pool(&[&a, &b]);
            let order = r.rank(&p, 5);
            let imp = r.impression(&p, &order, 3, 5);
            assert!(r.learn(&imp, b[0]));
            r.engaged(b[0]);
        }
        let p = pool(&[&[1, 2, 3], &[7001, 7002, 7003]]);
        assert_eq!(items(&p, &r.rank(&p, 5))[0], 7001);
        let imp = r.impression(&p, &r.rank(&p, 5), 3, 5);
        assert!(!r.learn(&imp, 99));
        assert_eq!(
            r.counts,
            RankCounts {
                learned: 300,
                outside_pool: 1
            }
        );
    }

    /// Which source wins depends on the user: new users engage with the
    /// first source's best, users with a long history with the second's.
    #[test]
    fn which_source_to_trust_can_depend_on_the_users_history() {
        let mut r = LearnedRanker::new();
        let mut rng = Rng(5);
        for n in 0..2000 {
            let a: Vec<u64> = (0..10).map(|_| rng.next_u64() % 1000).collect();
            let b: Vec<u64> = (0..10).map(|_| 1000 + rng.next_u64() % 1000).collect();
            let p = pool(&[&a, &b]);
            let history = if n % 2 == 0 { 0 } else { 500 };
            let order = r.rank(&p, history);
            let imp = r.impression(&p, &order, 3, history);
            r.learn(&imp, if history == 0 { a[0] } else { b[0] });
        }
        let p = pool(&[&[1, 2], &[7001, 7002]]);
        assert_eq!(items(&p, &r.rank(&p, 0))[0], 1);
        assert_eq!(items(&p, &r.rank(&p, 500))[0], 7001);
    }

    #[test]
    fn a_ranker_round_trips_through_its_snapshot() {
        let mut r = LearnedRanker::new();
        let p = pool(&[&[1, 2, 3], &[3, 4]]);
        let order = r.rank(&p, 2);
        let imp = r.impression(&p, &order, 2, 2);
        r.learn(&imp, 4);
        r.engaged(4);
        let bytes = serde_json::to_vec(&r).unwrap();
        let back: LearnedRanker = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.rank(&p, 2), r.rank(&p, 2));
        assert_eq!(back.counts, r.counts);
    }
}
