//! Approximate aggregates from Apache DataSketches. They bound memory per
//! key whatever the number of events or distinct values, at a stated error.

use datasketches::hll::{HllSketch, HllType};
use datasketches::tdigest::TDigestMut;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::value::Scalar;

/// log2 of the HLL register count: 4096 registers, ~1.6% relative standard
/// error, at most 4 KiB per key and window.
pub const HLL_LG_K: u8 = 12;
/// t-digest compression: rank error well under 1% at the median.
pub const TDIGEST_K: u16 = 200;

/// HyperLogLog distinct count.
#[derive(Clone)]
pub struct Hll {
    sketch: HllSketch,
}

impl std::fmt::Debug for Hll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll(~{})", self.sketch.estimate())
    }
}

impl Hll {
    pub fn new() -> Hll {
        Hll {
            sketch: HllSketch::new(HLL_LG_K, HllType::Hll8).expect("lg_k 12 is valid"),
        }
    }

    pub fn add(&mut self, v: &Scalar) {
        v.for_each_item(|item| self.sketch.update(item));
    }

    pub fn reset(&mut self) {
        *self = Hll::new();
    }

    pub fn value(&self) -> Scalar {
        Scalar::Long(self.sketch.estimate().round() as i64)
    }

    pub fn size_bytes(&self) -> usize {
        self.sketch.estimated_size()
    }
}

impl Default for Hll {
    fn default() -> Self {
        Hll::new()
    }
}

impl Serialize for Hll {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.sketch.serialize())
    }
}

impl<'de> Deserialize<'de> for Hll {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        HllSketch::deserialize(&bytes)
            .map(|sketch| Hll { sketch })
            .map_err(|e| serde::de::Error::custom(format!("HLL sketch: {e}")))
    }
}

/// t-digest quantile.
#[derive(Debug, Clone)]
pub struct Digest {
    quantile: f64,
    digest: TDigestMut,
}

impl Digest {
    pub fn new(quantile: f64) -> Digest {
        Digest {
            quantile,
            digest: TDigestMut::new(TDIGEST_K).expect("k 200 is valid"),
        }
    }

    pub fn add(&mut self, v: &Scalar) {
        if let Some(x) = v.as_f64()
            && x.is_finite()
        {
            self.digest.update(x);
        }
    }

    pub fn reset(&mut self) {
        *self = Digest::new(self.quantile);
    }

    pub fn value(&self) -> Scalar {
        let mut d = self.digest.clone();
        match d.quantile(self.quantile) {
            Ok(Some(q)) => Scalar::Double(q),
            _ => Scalar::Null,
        }
    }

    pub fn size_bytes(&self) -> usize {
        self.digest.estimated_size()
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut d = self.digest.clone();
        (self.quantile, d.serialize()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (quantile, bytes): (f64, Vec<u8>) = Deserialize::deserialize(d)?;
        TDigestMut::deserialize(&bytes)
            .map(|digest| Digest { quantile, digest })
            .map_err(|e| serde::de::Error::custom(format!("t-digest: {e}")))
    }
}

fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_bytes(V)
}
