//! Approximate aggregates from Apache DataSketches. They bound memory per
//! key whatever the number of events or distinct values, at a stated error.
//!
//! A sketch cannot forget one event, so a sketch aggregate is a queue of
//! *panes*, one sketch per pane, merged when read. On a hopping window a pane
//! is one hop: the window's start moves hop by hop, so whole panes leave it
//! together and the merged result covers exactly the window's events (only
//! the sketch's own error remains, no boundary error). Windows that reset
//! (tumbling, session, lifetime) use a single pane. Sliding windows have no
//! aligned panes, and the spec check refuses sketches on them.

use std::collections::VecDeque;

use datasketches::hll::{HllSketch, HllType, HllUnion};
use datasketches::tdigest::TDigestMut;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::value::Scalar;

/// log2 of the HLL register count: 4096 registers, ~1.6% relative standard
/// error, at most 4 KiB per key and window.
pub const HLL_LG_K: u8 = 12;
/// t-digest compression: rank error well under 1% at the median.
pub const TDIGEST_K: u16 = 200;

/// Serialized panes: (pane start, sketch bytes).
type SerializedPanes = Vec<(i64, Vec<u8>)>;

/// The pane of an event: its hop, or the single pane of a resetting window.
fn pane_of(hop: Option<i64>, ts: i64) -> i64 {
    hop.map_or(i64::MIN, |h| ts.div_euclid(h) * h)
}

/// A sketch type that panes can hold.
trait PaneSketch: Clone {
    fn empty() -> Self;
}

/// Panes of one sketch type, oldest first.
#[derive(Clone)]
struct Panes<S> {
    hop: Option<i64>,
    panes: VecDeque<(i64, S)>,
}

impl<S: PaneSketch> Panes<S> {
    fn new(hop: Option<i64>) -> Self {
        Panes {
            hop,
            panes: VecDeque::new(),
        }
    }

    /// The pane for an event at `ts` (events come in time order).
    fn at(&mut self, ts: i64) -> &mut S {
        let pane = pane_of(self.hop, ts);
        if self.panes.back().is_none_or(|(p, _)| *p != pane) {
            self.panes.push_back((pane, S::empty()));
        }
        &mut self.panes.back_mut().expect("just pushed").1
    }

    /// An event at `ts` left the window: with it, its whole pane.
    fn evict(&mut self, ts: i64) {
        let pane = pane_of(self.hop, ts);
        while self.panes.front().is_some_and(|(p, _)| *p <= pane) {
            self.panes.pop_front();
        }
    }
}

impl PaneSketch for HllSketch {
    fn empty() -> Self {
        HllSketch::new(HLL_LG_K, HllType::Hll8).expect("lg_k 12 is valid")
    }
}

impl PaneSketch for TDigestMut {
    fn empty() -> Self {
        TDigestMut::new(TDIGEST_K).expect("k 200 is valid")
    }
}

/// HyperLogLog distinct count.
#[derive(Clone)]
pub struct Hll {
    panes: Panes<HllSketch>,
}

impl std::fmt::Debug for Hll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll({} panes)", self.panes.panes.len())
    }
}

impl Hll {
    /// `hop`: the pane length on a hopping window, None otherwise.
    pub fn new(hop: Option<i64>) -> Hll {
        Hll {
            panes: Panes::new(hop),
        }
    }

    /// Counts a value in, at event time `ts`.
    pub fn add(&mut self, ts: i64, v: &Scalar) {
        let sketch = self.panes.at(ts);
        v.for_each_item(|item| sketch.update(item));
    }

    /// Takes out what was added at `ts`: it left the window.
    pub fn remove(&mut self, ts: i64) {
        self.panes.evict(ts);
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        self.panes.panes.clear();
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        let estimate = match self.panes.panes.len() {
            0 => 0.0,
            1 => self.panes.panes[0].1.estimate(),
            _ => {
                let mut union = HllUnion::new(HLL_LG_K).expect("lg_k 12 is valid");
                for (_, s) in &self.panes.panes {
                    union.update(s);
                }
                union.estimate()
            }
        };
        Scalar::Long(estimate.round() as i64)
    }

    /// Bytes of state held, for the state metrics.
    pub fn size_bytes(&self) -> usize {
        self.panes
            .panes
            .iter()
            .map(|(_, s)| 8 + s.estimated_size())
            .sum()
    }
}

impl Serialize for Hll {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let panes: SerializedPanes = self
            .panes
            .panes
            .iter()
            .map(|(p, sk)| (*p, sk.serialize()))
            .collect();
        (self.panes.hop, panes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hll {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (hop, panes): (Option<i64>, SerializedPanes) = Deserialize::deserialize(d)?;
        let panes = panes
            .into_iter()
            .map(|(p, bytes)| HllSketch::deserialize(&bytes).map(|s| (p, s)))
            .collect::<Result<VecDeque<_>, _>>()
            .map_err(|e| serde::de::Error::custom(format!("HLL sketch: {e}")))?;
        Ok(Hll {
            panes: Panes { hop, panes },
        })
    }
}

/// t-digest quantile.
#[derive(Debug, Clone)]
pub struct Digest {
    quantile: f64,
    panes: Panes<TDigestMut>,
}

impl std::fmt::Debug for Panes<TDigestMut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} panes", self.panes.len())
    }
}

impl Digest {
    /// `hop`: the pane length on a hopping window, None otherwise.
    pub fn new(quantile: f64, hop: Option<i64>) -> Digest {
        Digest {
            quantile,
            panes: Panes::new(hop),
        }
    }

    /// Counts a value in, at event time `ts`.
    pub fn add(&mut self, ts: i64, v: &Scalar) {
        if let Some(x) = v.as_f64()
            && x.is_finite()
        {
            self.panes.at(ts).update(x);
        }
    }

    /// Takes out what was added at `ts`: it left the window.
    pub fn remove(&mut self, ts: i64) {
        self.panes.evict(ts);
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        self.panes.panes.clear();
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        let mut merged = TDigestMut::empty();
        for (_, d) in &self.panes.panes {
            merged.merge(d);
        }
        match merged.quantile(self.quantile) {
            Ok(Some(q)) => Scalar::Double(q),
            _ => Scalar::Null,
        }
    }

    /// Bytes of state held, for the state metrics.
    pub fn size_bytes(&self) -> usize {
        self.panes
            .panes
            .iter()
            .map(|(_, d)| 8 + d.estimated_size())
            .sum()
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let panes: SerializedPanes = self
            .panes
            .panes
            .iter()
            .map(|(p, d)| (*p, d.clone().serialize()))
            .collect();
        (self.quantile, self.panes.hop, panes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (quantile, hop, panes): (f64, Option<i64>, SerializedPanes) =
            Deserialize::deserialize(d)?;
        let panes = panes
            .into_iter()
            .map(|(p, bytes)| TDigestMut::deserialize(&bytes).map(|s| (p, s)))
            .collect::<Result<VecDeque<_>, _>>()
            .map_err(|e| serde::de::Error::custom(format!("t-digest: {e}")))?;
        Ok(Digest {
            quantile,
            panes: Panes { hop, panes },
        })
    }
}
