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

/// Features of one example being built: call [`Builder::add`] per feature,
/// then [`Builder::finish`].
pub struct Builder<'h> {
    hasher: &'h FeatureHasher,
    mask: u32,
    /// (namespace hash, index, value) before crosses.
    plain: Vec<(u32, u32, f32)>,
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
        let mut b = Builder {
            hasher: self,
            mask: (1u32 << self.bits) - 1,
            plain: Vec::with_capacity(16),
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
}
