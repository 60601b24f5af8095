//! The hashing trick: named features to indices of a fixed weight vector.
//!
//! A feature is (namespace, name, value). Categorical values hash their
//! text into the index with value 1; numeric values hash only the name and
//! keep the number. Indices are MurmurHash3 (x86, 32-bit) of the namespace
//! then the name, masked to `bits` bits: a stable hash, so a model saved
//! today reads tomorrow's examples the same way (Rust's default hasher is
//! randomized per process). Collisions are the price of a bounded model;
//! with 2^bits slots well above the number of distinct features they are
//! rare and only add a little noise.
//!
//! Quadratic crosses (`user` × `genre`) multiply every feature of one
//! namespace with every feature of another, as VW's `-q`: the index mixes
//! the two indices, the value is the product.

use serde::{Deserialize, Serialize};

/// How numeric inputs of a linear model are transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Numeric {
    /// sign(x)·ln(1 + |x|).
    #[default]
    Log,
    /// As they are.
    Raw,
}

impl Numeric {
    /// `x` transformed.
    pub fn apply(&self, x: f64) -> f64 {
        match self {
            Numeric::Log => x.signum() * x.abs().ln_1p(),
            Numeric::Raw => x,
        }
    }
}

/// A feature's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A category: hashed with its text, value 1.
    Category(&'a str),
    /// A number: hashed by name only.
    Number(f64),
}

/// How examples are hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureHasher {
    /// Weight-vector size is `2^bits`.
    pub bits: u32,
    /// Namespace pairs crossed quadratically, by name.
    pub crosses: Vec<(String, String)>,
    /// The same pairs as namespace hashes.
    cross_ns: Vec<(u32, u32)>,
}

/// A feature's hashes, computed once per column rather than per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    ns: u32,
    name: u32,
}

pub use eddy_platform::hash::murmur3;

/// Mixes two indices into the index of their cross.
fn cross(a: u32, b: u32) -> u32 {
    a.wrapping_mul(0x0100_0193) ^ b
}

/// Running mean and variance of every numeric feature, by its key (the
/// hash of its namespace and name), so numbers enter a model as
/// (x − mean) / std: a feature in the hundreds of thousands (a salary, a
/// loan) then learns as well as one in [0, 1], and rescaling a feature
/// changes nothing (the statistics rescale with it). This is River's
/// `StandardScaler` inside the model: it is saved and published with the
/// weights, so a replica standardizes as the learner did.
///
/// A value is standardized by the statistics of the values before it
/// (predict, then learn, then [`Standardizer::observe`]); before two
/// distinct values have been seen a feature contributes nothing. Values
/// are clipped to ±[`Standardizer::CLIP`] standard deviations, so one
/// outlier cannot make a prediction certain; the values clipped are
/// counted ([`Standardizer::clipped`]) and reported with the model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per key, sorted by key: (count, mean, sum of squared deviations),
    /// Welford's. A model has a few numeric features, so a sorted vector
    /// is the fastest map here.
    stats: Vec<(u32, [f64; 3])>,
    /// Keys observed since the last [`Standardizer::take_touched`].
    #[serde(skip)]
    touched: Vec<u32>,
    /// Per entry of `stats`: listed in `touched` (a lookup per number
    /// instead of a scan of `touched`). Sized lazily: a decoded model has
    /// none.
    #[serde(skip)]
    dirty: Vec<bool>,
    /// Values observed beyond ±CLIP standard deviations of the values
    /// before them (so entered clipped), since this process started.
    #[serde(skip)]
    clipped: u64,
}

/// Two standardizers are equal when their statistics are (what is pending
/// for the next delta is bookkeeping).
impl PartialEq for Standardizer {
    fn eq(&self, other: &Standardizer) -> bool {
        self.stats == other.stats
    }
}

impl Standardizer {
    /// Standardized values are clipped to this many standard deviations.
    pub const CLIP: f64 = 5.0;

    /// `x` of feature `key`, standardized by the values seen so far.
    #[inline]
    pub fn scale(&self, key: u32, x: f64) -> f64 {
        match self.stats.binary_search_by_key(&key, |s| s.0) {
            Ok(i) => {
                let [n, mean, m2] = self.stats[i].1;
                if m2 > 0.0 {
                    ((x - mean) / (m2 / n).sqrt()).clamp(-Self::CLIP, Self::CLIP)
                } else {
                    0.0
                }
            }
            Err(_) => 0.0,
        }
    }

    /// The index of `key` in `stats`, added empty if new.
    fn index(&mut self, key: u32) -> usize {
        self.dirty.resize(self.stats.len(), false);
        match self.stats.binary_search_by_key(&key, |s| s.0) {
            Ok(i) => i,
            Err(i) => {
                self.stats.insert(i, (key, [0.0; 3]));
                self.dirty.insert(i, false);
                i
            }
        }
    }

    /// The statistics of `key`, added empty if new.
    fn entry(&mut self, key: u32) -> &mut [f64; 3] {
        let i = self.index(key);
        &mut self.stats[i].1
    }

    /// Counts the values of one example (after it was learned).
    pub fn observe(&mut self, numbers: &[(u32, f64)]) {
        for (key, x) in numbers {
            let i = self.index(*key);
            let [n, mean, m2] = &mut self.stats[i].1;
            if *m2 > 0.0 && (x - *mean).abs() > Self::CLIP * (*m2 / *n).sqrt() {
                self.clipped += 1;
            }
            *n += 1.0;
            let d = x - *mean;
            *mean += d / *n;
            *m2 += d * (x - *mean);
            if !self.dirty[i] {
                self.dirty[i] = true;
                self.touched.push(*key);
            }
        }
    }

    /// The statistics changed since the last call, for a delta.
    pub fn take_touched(&mut self) -> Vec<(u32, [f64; 3])> {
        let mut keys = std::mem::take(&mut self.touched);
        keys.sort_unstable();
        keys.into_iter()
            .map(|k| {
                let i = self.index(k);
                self.dirty[i] = false;
                (k, self.stats[i].1)
            })
            .collect()
    }

    /// Applies statistics taken from another model ([`Standardizer::take_touched`]).
    pub fn apply(&mut self, changed: &[(u32, [f64; 3])]) {
        for (k, v) in changed {
            *self.entry(*k) = *v;
        }
    }

    /// Values that entered clipped, since this process started: counted
    /// when observed, against the statistics they were standardized by.
    pub fn clipped(&self) -> u64 {
        self.clipped
    }

    /// Numeric features with statistics.
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    /// No numeric feature seen yet.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }
}

/// Features of one example being built: call [`Builder::add`] per feature,
/// then [`Builder::finish`].
pub struct Builder<'h> {
    hasher: &'h FeatureHasher,
    mask: u32,
    /// (namespace hash, index, value) before crosses.
    plain: Vec<(u32, u32, f32)>,
    /// Standardizes numbers, when the model does, and collects the raw
    /// numbers (key, value) for [`Standardizer::observe`].
    standardizer: Option<(&'h Standardizer, &'h mut Vec<(u32, f64)>)>,
}

impl FeatureHasher {
    /// A hasher into 2^`bits` slots, crossing each named pair of namespaces.
    pub fn new(bits: u32, crosses: Vec<(String, String)>) -> FeatureHasher {
        FeatureHasher {
            bits: bits.clamp(1, 30),
            cross_ns: crosses
                .iter()
                .map(|(a, b)| (FeatureHasher::namespace(a), FeatureHasher::namespace(b)))
                .collect(),
            crosses,
        }
    }

    /// The hashes of feature `name` in namespace `namespace`.
    pub fn slot(namespace: &str, name: &str) -> Slot {
        let ns = FeatureHasher::namespace(namespace);
        Slot {
            ns,
            name: murmur3(name.as_bytes(), ns),
        }
    }

    /// The seed of a namespace.
    pub fn namespace(name: &str) -> u32 {
        murmur3(name.as_bytes(), 0)
    }

    /// Starts an example (with the constant bias feature).
    pub fn builder(&self) -> Builder<'_> {
        self.builder_with(None)
    }

    /// Starts an example whose numbers are standardized, when given a
    /// standardizer and a buffer: the buffer (cleared) receives the raw
    /// numbers, for [`Standardizer::observe`] once the example is learned.
    /// None: numbers as they are.
    pub fn builder_with<'a>(
        &'a self,
        standardizer: Option<(&'a Standardizer, &'a mut Vec<(u32, f64)>)>,
    ) -> Builder<'a> {
        let standardizer = standardizer.map(|(s, numbers)| {
            numbers.clear();
            (s, numbers)
        });
        let mut b = Builder {
            hasher: self,
            mask: (1u32 << self.bits) - 1,
            plain: Vec::with_capacity(16),
            standardizer,
        };
        let ns = FeatureHasher::namespace("");
        b.plain.push((ns, murmur3(b"__bias", ns) & b.mask, 1.0));
        b
    }
}

impl Builder<'_> {
    /// Adds a feature of namespace `ns` (from [`FeatureHasher::namespace`]).
    /// A non-finite number is refused.
    pub fn add(&mut self, ns: u32, name: &str, value: Value) -> Result<(), f64> {
        let slot = Slot {
            ns,
            name: murmur3(name.as_bytes(), ns),
        };
        match value {
            Value::Category(text) => {
                self.category(slot, text.as_bytes());
                Ok(())
            }
            Value::Number(x) => self.number(slot, x),
        }
    }

    /// Adds the category `text` of a feature.
    #[inline]
    pub fn category(&mut self, slot: Slot, text: &[u8]) {
        self.plain
            .push((slot.ns, murmur3(text, slot.name) & self.mask, 1.0));
    }

    /// Adds a numeric feature; a NaN or infinity is refused (and returned).
    #[inline]
    pub fn number(&mut self, slot: Slot, x: f64) -> Result<(), f64> {
        if !x.is_finite() {
            return Err(x);
        }
        let x = match &mut self.standardizer {
            Some((s, numbers)) => {
                numbers.push((slot.name, x));
                s.scale(slot.name, x)
            }
            None => x,
        };
        if x != 0.0 {
            self.plain.push((slot.ns, slot.name & self.mask, x as f32));
        }
        Ok(())
    }

    /// The hashed features, crosses included, into `out` (cleared first).
    pub fn finish(self, out: &mut Vec<(u32, f32)>) {
        out.clear();
        out.extend(self.plain.iter().map(|(_, i, v)| (*i, *v)));
        for (na, nb) in &self.hasher.cross_ns {
            for (ns_a, ia, va) in &self.plain {
                if ns_a != na {
                    continue;
                }
                for (ns_b, ib, vb) in &self.plain {
                    if ns_b == nb {
                        out.push((cross(*ia, *ib) & self.mask, va * vb));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_the_reference_vectors() {
        // From the reference implementation's test suite (SMHasher).
        assert_eq!(murmur3(b"", 0), 0);
        assert_eq!(murmur3(b"", 1), 0x514E_28B7);
        assert_eq!(murmur3(b"hello", 0), 0x248B_FA47);
        assert_eq!(murmur3(b"Hello, world!", 1234), 0xFAF6_CDB3);
        assert_eq!(
            murmur3(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2FA8_26CD
        );
    }

    #[test]
    fn crosses_multiply_every_pair_of_the_two_namespaces() {
        let h = FeatureHasher::new(18, vec![("u".into(), "g".into())]);
        let (u, g) = (FeatureHasher::namespace("u"), FeatureHasher::namespace("g"));
        let mut b = h.builder();
        b.add(u, "user", Value::Category("7")).unwrap();
        b.add(g, "genre", Value::Category("drama")).unwrap();
        b.add(g, "genre", Value::Category("crime")).unwrap();
        b.add(g, "score", Value::Number(0.5)).unwrap();
        let mut out = Vec::new();
        b.finish(&mut out);
        // Bias, 4 plain features, and user × 3 genre features.
        assert_eq!(out.len(), 1 + 4 + 3);
        assert!(out.iter().all(|(i, _)| *i < 1 << 18));
        assert_eq!(out.last().unwrap().1, 0.5);
        let mut again = Vec::new();
        let mut b = h.builder();
        b.add(u, "user", Value::Category("7")).unwrap();
        b.add(g, "genre", Value::Category("drama")).unwrap();
        b.add(g, "genre", Value::Category("crime")).unwrap();
        b.add(g, "score", Value::Number(0.5)).unwrap();
        b.finish(&mut again);
        assert_eq!(out, again, "hashing is deterministic");
    }

    #[test]
    fn a_nan_or_infinite_number_is_refused() {
        let h = FeatureHasher::new(10, Vec::new());
        let mut b = h.builder();
        assert!(b.add(1, "x", Value::Number(f64::NAN)).is_err());
        assert_eq!(
            b.add(1, "x", Value::Number(f64::INFINITY)),
            Err(f64::INFINITY)
        );
    }

    /// A value beyond ±5 standard deviations enters clipped, and is
    /// counted: nothing is clipped silently.
    #[test]
    fn an_outlier_enters_clipped_and_is_counted() {
        let mut s = Standardizer::default();
        let key = 7;
        for x in [1.0, 3.0, 1.0, 3.0] {
            s.observe(&[(key, x)]);
        }
        // Mean 2, standard deviation 1.
        assert_eq!(s.scale(key, 4.0), 2.0);
        assert_eq!(s.scale(key, 1000.0), Standardizer::CLIP);
        assert_eq!(s.clipped(), 0);
        s.observe(&[(key, 1000.0)]);
        assert_eq!(s.clipped(), 1);
        s.observe(&[(key, 2.0)]);
        assert_eq!(s.clipped(), 1);
    }
}
