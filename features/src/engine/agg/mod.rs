//! Aggregators: the state of one operator over one window of one key.
//!
//! Every aggregator sees a key's events in event-time order. Windows that
//! evict single events (sliding, hopping) call [`Agg::remove`] with the
//! oldest event still counted; windows that empty at once (tumbling, session)
//! call [`Agg::reset`]. Per-event work never depends on the window's length:
//!
//! * count, sum, mean, variance, decayed sum: subtract on evict;
//! * min, max: a monotonic deque (amortised O(1));
//! * top_k, count_distinct: exact counts, with a count-ordered set for top_k
//!   (O(log distinct));
//! * first/last(_k) on evicting windows read the window's retained events,
//!   so they cost O(k) when a value is read;
//! * approx_count_distinct, approx_percentile: Apache DataSketches HLL and
//!   t-digest, which cannot forget an event: one sketch per hop on hopping
//!   windows, dropped whole, one in all on windows that reset; the spec
//!   check refuses them on sliding windows.
//!
//! The enum (not a trait object) keeps dispatch cheap and lets checkpoints
//! serialise any aggregator with serde.

mod moments;
mod order;
mod sketch;

use serde::{Deserialize, Serialize};

use super::value::Scalar;
use crate::spec::Op;
use crate::spec::validate::FeaturePlan;
use crate::spec::window::Forgetting;

pub use moments::{Count, Decayed, Moments, Sum};
pub use order::{Extreme, Freq, Positional};
pub use sketch::{Digest, Hll};

/// The retained events of an evicting window, oldest first, as the values of
/// one input column.
pub trait WindowValues {
    /// Visits values from the oldest; stops when `f` returns false.
    fn oldest_first(&self, f: &mut dyn FnMut(&Scalar) -> bool);
    /// Visits values from the newest; stops when `f` returns false.
    fn newest_first(&self, f: &mut dyn FnMut(&Scalar) -> bool);
}

/// The state of one feature for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Agg {
    /// `count`.
    Count(Count),
    /// `sum`.
    Sum(Sum),
    /// `mean`, `variance`, `stddev` (boxed, as the larger ones below: a
    /// key holds an `Agg` per feature, and the enum is as large as its
    /// largest variant).
    Moments(Box<Moments>),
    /// `decayed_sum`.
    Decayed(Decayed),
    /// `min`, `max`.
    Extreme(Extreme),
    /// `first`, `last`, `first_k`, `last_k`.
    Positional(Positional),
    /// `count_distinct`, `top_k`.
    Freq(Box<Freq>),
    /// `approx_count_distinct` (HyperLogLog).
    Hll(Hll),
    /// `approx_percentile` (t-digest).
    Digest(Box<Digest>),
}

impl Agg {
    /// A fresh aggregator for `feature`.
    pub fn new(feature: &FeaturePlan) -> Agg {
        let evicts = feature.window.forgetting() == Forgetting::Evicts;
        // Sketches keep one pane per hop on hopping windows (see `sketch`).
        let hop = match feature.window {
            crate::spec::Window::Hopping { hop, .. } => Some(hop.0),
            _ => None,
        };
        let integer = matches!(feature.input_type, Some(crate::spec::ColumnType::Long));
        match feature.op {
            Op::Count => Agg::Count(Count::default()),
            Op::Sum => Agg::Sum(Sum::new(integer)),
            Op::Mean => Agg::Moments(Box::new(Moments::new(moments::Stat::Mean, evicts))),
            Op::Variance => Agg::Moments(Box::new(Moments::new(moments::Stat::Variance, evicts))),
            Op::Stddev => Agg::Moments(Box::new(Moments::new(moments::Stat::Stddev, evicts))),
            Op::DecayedSum => Agg::Decayed(Decayed::new(feature.half_life_ms)),
            Op::Min => Agg::Extreme(Extreme::new(false, evicts)),
            Op::Max => Agg::Extreme(Extreme::new(true, evicts)),
            Op::First => Agg::Positional(Positional::new(true, None, evicts)),
            Op::Last => Agg::Positional(Positional::new(false, None, evicts)),
            Op::FirstK => Agg::Positional(Positional::new(true, Some(feature.k), evicts)),
            Op::LastK => Agg::Positional(Positional::new(false, Some(feature.k), evicts)),
            Op::TopK => Agg::Freq(Box::new(Freq::new(Some(feature.k)))),
            Op::CountDistinct => Agg::Freq(Box::new(Freq::new(None))),
            Op::ApproxCountDistinct => Agg::Hll(Hll::new(hop)),
            Op::ApproxPercentile => Agg::Digest(Box::new(Digest::new(feature.quantile, hop))),
        }
    }

    /// Counts an event; `seq` numbers the key's events, `v` is the input
    /// value (`Bool(true)` for a count without a column).
    pub fn add(&mut self, seq: u64, ts: i64, v: &Scalar) {
        match self {
            Agg::Count(a) => a.add(v),
            Agg::Sum(a) => a.add(v),
            Agg::Moments(a) => a.add(v),
            Agg::Decayed(a) => a.add(ts, v),
            Agg::Extreme(a) => a.add(seq, v),
            Agg::Positional(a) => a.add(v),
            Agg::Freq(a) => a.add(v),
            Agg::Hll(a) => a.add(ts, v),
            Agg::Digest(a) => a.add(ts, v),
        }
    }

    /// Forgets the oldest counted event (evicting windows only).
    pub fn remove(&mut self, seq: u64, ts: i64, v: &Scalar) {
        match self {
            Agg::Count(a) => a.remove(v),
            Agg::Sum(a) => a.remove(v),
            Agg::Moments(a) => a.remove(v),
            Agg::Decayed(a) => a.remove(ts, v),
            Agg::Extreme(a) => a.remove(seq),
            Agg::Positional(_) => {}
            Agg::Freq(a) => a.remove(v),
            Agg::Hll(a) => a.remove(ts),
            Agg::Digest(a) => a.remove(ts),
        }
    }

    /// Empties the window.
    pub fn reset(&mut self) {
        match self {
            Agg::Count(a) => *a = Count::default(),
            Agg::Sum(a) => a.reset(),
            Agg::Moments(a) => a.reset(),
            Agg::Decayed(a) => a.reset(),
            Agg::Extreme(a) => a.reset(),
            Agg::Positional(a) => a.reset(),
            Agg::Freq(a) => a.reset(),
            Agg::Hll(a) => a.reset(),
            Agg::Digest(a) => a.reset(),
        }
    }

    /// The feature's value as of `as_of`; `window` holds the retained
    /// events' values for evicting windows.
    pub fn value(&self, as_of: i64, window: &dyn WindowValues) -> Scalar {
        match self {
            Agg::Count(a) => a.value(),
            Agg::Sum(a) => a.value(),
            Agg::Moments(a) => a.value(),
            Agg::Decayed(a) => a.value(as_of),
            Agg::Extreme(a) => a.value(),
            Agg::Positional(a) => a.value(window),
            Agg::Freq(a) => a.value(),
            Agg::Hll(a) => a.value(),
            Agg::Digest(a) => a.value(),
        }
    }

    /// Approximate bytes of state, for the state-size metric.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Agg>()
            + match self {
                Agg::Extreme(a) => a.size_bytes(),
                Agg::Moments(a) => a.size_bytes(),
                Agg::Positional(a) => a.size_bytes(),
                Agg::Freq(a) => a.size_bytes(),
                Agg::Hll(a) => a.size_bytes(),
                Agg::Digest(a) => a.size_bytes(),
                _ => 0,
            }
    }
}
