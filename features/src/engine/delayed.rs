//! Delayed labels: labels that arrive after their example.
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

//!
//! The online learner (`eddy run`) and the training sets of `eddy backfill
//! --model` resolve delayed labels with this one module, so a model
//! trained offline sees the labels the live one learned from: the same
//! keys ([`join_key`]), the same order of steps per event ([`feed`]), one
//! joiner per partition, fed in release order.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use super::value::Scalar;
use crate::hash::murmur3;
use crate::spec::Columns;

/// A model's delayed label, resolved against its sources: what a joiner
/// needs, live and in a training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayedPlan {
    /// The label source.
    pub source: String,
    /// Which of the label source's events are labels (SQL), if not all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The label source's columns, in the order its events carry them.
    #[serde(default)]
    pub source_columns: Columns,
    /// The attribution window, ms of event time.
    pub within_ms: i64,
    /// The `on` column's index in the model's source and in the label
    /// source.
    pub on: Option<(usize, usize)>,
    /// Examples held at most per partition.
    pub max_pending: usize,
}

/// A joiner key: the event's key and its `on` column, as ids.
pub type JoinKey = (u64, u64);

/// A stable id for a long or string value; None for anything else (null).
pub fn id_of(value: &Scalar) -> Option<u64> {
    match value {
        Scalar::Long(v) => Some(*v as u64),
        Scalar::Str(s) => Some(string_id(s)),
        _ => None,
    }
}

/// A stable 64-bit id for a string (two MurmurHash3 seeds).
pub fn string_id(s: &str) -> u64 {
    (u64::from(murmur3(s.as_bytes(), 0x9747_b28c)) << 32) | u64::from(murmur3(s.as_bytes(), 1))
}

/// The joiner key of an event: its key, and the value of the `on` column
/// if the label names one. None when that value is null: such an event
/// can neither wait for a label nor be one.
pub fn join_key(key: &Scalar, on: Option<&Scalar>) -> Option<JoinKey> {
    let k = id_of(key).unwrap_or(0);
    match on {
        None => Some((k, 0)),
        Some(v) => id_of(v).map(|v| (k, v)),
    }
}

/// Feeds one event of a partition, in release order: event time moves to
/// `ts` (examples whose window ended are negatives), then a `label`
/// resolves its example (a positive), then an `example` (key, what to
/// hold, prediction) waits for its own label. An event may be both.
/// Whatever resolved is appended to `out`.
pub fn feed<F>(
    joiner: &mut LabelJoiner<JoinKey, F>,
    ts: i64,
    label: Option<JoinKey>,
    example: Option<(JoinKey, F, f64)>,
    out: &mut Vec<Resolved<F>>,
) {
    out.extend(joiner.advance(ts));
    if let Some(k) = label {
        out.extend(joiner.labeled(&k, ts));
    }
    if let Some((k, held, prediction)) = example {
        out.extend(joiner.predicted(k, ts, held, prediction));
    }
}

/// A prediction with its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<F> {
    /// What was held with the prediction.
    pub features: F,
    /// The prediction made when the example arrived.
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
    /// A joiner whose labels count within `window_ms`, holding at most `max_pending` examples.
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

    /// Examples waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no example waits.
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

    #[test]
    fn a_null_on_value_has_no_join_key_and_strings_have_stable_ids() {
        assert_eq!(join_key(&Scalar::Long(7), None), Some((7, 0)));
        assert_eq!(join_key(&Scalar::Long(7), Some(&Scalar::Null)), None);
        let a = join_key(&Scalar::Long(7), Some(&Scalar::Str("x".into())));
        assert_eq!(
            a,
            join_key(&Scalar::Long(7), Some(&Scalar::Str("x".into())))
        );
        assert_ne!(
            a,
            join_key(&Scalar::Long(7), Some(&Scalar::Str("y".into())))
        );
    }

    #[test]
    fn an_event_that_is_label_and_example_resolves_first_then_waits() {
        let mut j = LabelJoiner::new(100, 10);
        let mut out = Vec::new();
        feed(&mut j, 0, None, Some(((1, 0), "a", 0.5)), &mut out);
        feed(&mut j, 50, Some((1, 0)), Some(((1, 0), "b", 0.5)), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].features, out[0].label), ("a", 1.0));
        feed(&mut j, 500, None, None, &mut out);
        assert_eq!((out[1].features, out[1].label), ("b", 0.0));
    }
}
