//! The online label joiner: labels that arrive after the prediction.
//!
//! A click arrives seconds after its impression; a purchase, days later.
//! The joiner holds each prediction's features, keyed (an impression id,
//! or user and item), until its label arrives — a positive — or its
//! attribution window ends — a negative. The model then learns from
//! exactly the features it predicted with, so what it learns is what it
//! would serve.
//!
//! Time is event time: [`LabelJoiner::advance`] moves it, as the
//! watermark does. State is bounded twice over: by the window (expired
//! entries leave), and by `max_pending` (beyond it the oldest is resolved
//! as a negative early, and counted, rather than growing without limit).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A prediction with its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<F> {
    pub features: F,
    pub prediction: f64,
    /// Event time of the prediction.
    pub ts: i64,
    /// 1 if the label arrived within the window, else 0.
    pub label: f64,
}

/// Pending predictions by key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: serde::Serialize + Hash + Eq, F: serde::Serialize",
    deserialize = "K: serde::Deserialize<'de> + Hash + Eq, F: serde::Deserialize<'de>"
))]
pub struct LabelJoiner<K, F> {
    window_ms: i64,
    max_pending: usize,
    /// (key, sequence) in prediction order: deadlines are in order too.
    order: VecDeque<(K, u64)>,
    pending: HashMap<K, (u64, i64, F, f64)>,
    seq: u64,
    /// Labels that matched no pending prediction (too late, or unknown).
    pub unmatched: u64,
    /// Predictions resolved early because `max_pending` was reached.
    pub evicted: u64,
}

impl<K: Hash + Eq + Clone, F> LabelJoiner<K, F> {
    pub fn new(window_ms: i64, max_pending: usize) -> LabelJoiner<K, F> {
        LabelJoiner {
            window_ms,
            max_pending: max_pending.max(1),
            order: VecDeque::new(),
            pending: HashMap::new(),
            seq: 0,
            unmatched: 0,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Holds a prediction. A pending prediction with the same key is
    /// resolved as a negative first; so is the oldest one if the joiner is
    /// full. Returns what was resolved.
    pub fn predicted(&mut self, key: K, ts: i64, features: F, prediction: f64) -> Vec<Resolved<F>> {
        let mut out = Vec::new();
        if let Some((_, t, f, p)) = self.pending.remove(&key) {
            out.push(Resolved {
                features: f,
                prediction: p,
                ts: t,
                label: 0.0,
            });
        }
        while self.pending.len() >= self.max_pending {
            match self.pop_oldest() {
                Some(r) => {
                    self.evicted += 1;
                    out.push(r);
                }
                None => break,
            }
        }
        self.seq += 1;
        self.order.push_back((key.clone(), self.seq));
        self.pending
            .insert(key, (self.seq, ts, features, prediction));
        out
    }

    /// A label for `key` at `ts`: a positive if its prediction is pending
    /// and within the window.
    pub fn labeled(&mut self, key: &K, ts: i64) -> Option<Resolved<F>> {
        match self.pending.get(key) {
            Some((_, t, _, _)) if ts <= t + self.window_ms && ts >= *t => {
                let (_, t, f, p) = self.pending.remove(key).expect("present");
                Some(Resolved {
                    features: f,
                    prediction: p,
                    ts: t,
                    label: 1.0,
                })
            }
            _ => {
                self.unmatched += 1;
                None
            }
        }
    }

    /// Moves event time to `now`: predictions whose window has ended are
    /// negatives.
    pub fn advance(&mut self, now: i64) -> Vec<Resolved<F>> {
        let mut out = Vec::new();
        while let Some((key, seq)) = self.order.front() {
            match self.pending.get(key) {
                Some((s, t, _, _)) if s == seq => {
                    if t + self.window_ms >= now {
                        break;
                    }
                    out.extend(self.pop_oldest());
                }
                // Already labeled or replaced: a stale queue entry.
                _ => {
                    self.order.pop_front();
                }
            }
        }
        out
    }

    fn pop_oldest(&mut self) -> Option<Resolved<F>> {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.pending.get(&key).is_some_and(|(s, ..)| *s == seq) {
                let (_, t, f, p) = self.pending.remove(&key).expect("present");
                return Some(Resolved {
                    features: f,
                    prediction: p,
                    ts: t,
                    label: 0.0,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Learner;
    use crate::ftrl::{Ftrl, FtrlConfig, sigmoid};
    use crate::hashing::{FeatureHasher, Value};
    use crate::metrics::Progressive;
    use crate::recommend::Rng;

    #[test]
    fn labels_within_the_window_are_positives_and_the_rest_time_out_as_negatives() {
        let mut j: LabelJoiner<&str, u8> = LabelJoiner::new(1_000, 100);
        assert!(j.predicted("a", 0, 1, 0.5).is_empty());
        j.predicted("b", 100, 2, 0.5);
        j.predicted("c", 200, 3, 0.5);
        assert_eq!(j.labeled(&"b", 900).map(|r| r.label), Some(1.0));
        assert!(j.labeled(&"b", 950).is_none(), "a label joins once");
        let out = j.advance(1_150);
        assert_eq!(out.len(), 1, "only a's window has ended");
        assert_eq!((out[0].features, out[0].label), (1, 0.0));
        assert!(
            j.labeled(&"a", 1_160).is_none(),
            "too late: already a negative"
        );
        assert_eq!(j.unmatched, 2);
        // A new prediction for a pending key resolves the old one first.
        let out = j.predicted("c", 500, 4, 0.5);
        assert_eq!((out[0].features, out[0].label), (3, 0.0));
        assert_eq!(j.advance(10_000).len(), 1);
        assert!(j.is_empty());
    }

    #[test]
    fn a_full_joiner_resolves_its_oldest_early_and_stays_bounded() {
        let mut j: LabelJoiner<u32, ()> = LabelJoiner::new(i64::MAX / 2, 10);
        let mut early = 0;
        for i in 0..1_000 {
            early += j.predicted(i, i64::from(i), (), 0.1).len();
            assert!(j.len() <= 10);
        }
        assert_eq!(early, 990);
        assert_eq!(j.evicted, 990);
    }

    /// Impressions whose clicks arrive later (some after the window): the
    /// joiner plus FTRL learns P(click within the window) about as well as
    /// the Bayes-optimal predictor.
    #[test]
    fn a_model_trained_through_the_joiner_learns_delayed_clicks() {
        let mut rng = Rng(3);
        let hasher = FeatureHasher::new(16, Vec::new());
        let (nu, ni) = (FeatureHasher::namespace("u"), FeatureHasher::namespace("i"));
        let users: Vec<f64> = (0..200).map(|_| rng.normal()).collect();
        let items: Vec<f64> = (0..50).map(|_| rng.normal()).collect();
        let window = 60_000;
        let mut model = Ftrl::new(FtrlConfig {
            bits: 16,
            ..FtrlConfig::default()
        });
        let mut joiner: LabelJoiner<u64, Vec<(u32, f32)>> = LabelJoiner::new(window, 100_000);
        let (mut learned, mut bayes) = (Progressive::default(), Progressive::default());
        // (click time, impression id), in time order as they would arrive.
        let mut clicks: std::collections::BTreeSet<(i64, u64)> = Default::default();
        let learn = |r: Resolved<Vec<(u32, f32)>>, m: &mut Ftrl, l: &mut Progressive| {
            l.add(r.prediction, r.label);
            m.learn(&r.features, r.label);
        };
        for id in 0..200_000u64 {
            let ts = id as i64 * 1_000;
            while let Some(&(ct, cid)) = clicks.first() {
                if ct > ts {
                    break;
                }
                clicks.pop_first();
                if let Some(r) = joiner.labeled(&cid, ct) {
                    learn(r, &mut model, &mut learned);
                }
            }
            for r in joiner.advance(ts) {
                learn(r, &mut model, &mut learned);
            }
            let (u, i) = (
                (rng.next_u64() % 200) as usize,
                (rng.next_u64() % 50) as usize,
            );
            let p_click = sigmoid(-1.0 + 0.7 * users[u] + 0.7 * items[i]);
            // Delay: exponential, mean 30 s; past 60 s the click is too late.
            let delay = (-30_000.0 * rng.uniform().max(1e-12).ln()) as i64;
            let p_within = p_click * (1.0 - (-(window as f64) / 30_000.0).exp());
            if rng.uniform() < p_click {
                clicks.insert((ts + delay, id));
            }
            let mut b = hasher.builder();
            b.add(nu, "user", Value::Category(&u.to_string())).unwrap();
            b.add(ni, "item", Value::Category(&i.to_string())).unwrap();
            let mut x = Vec::new();
            b.finish(&mut x);
            let p = model.predict(&x);
            for r in joiner.predicted(id, ts, x, p) {
                learn(r, &mut model, &mut learned);
            }
            let y = f64::from(
                clicks
                    .iter()
                    .any(|(ct, cid)| *cid == id && *ct <= ts + window),
            );
            bayes.add(p_within, y);
        }
        let (got, best) = (learned.report(), bayes.report());
        assert!(
            joiner.len() < 100,
            "only the last window is pending: {}",
            joiner.len()
        );
        assert!(
            got.logloss / best.logloss < 1.03,
            "joined {got:?} vs Bayes-optimal {best:?}"
        );
    }
}
