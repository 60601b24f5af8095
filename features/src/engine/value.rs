//! Values flowing through the engine: one cell of an event or of a feature.
//!
//! Events arrive as Avro and leave as Avro, but the operators in between see
//! only this small set of types (the ones [`ColumnType`] names). Floats get a
//! total order and a hash by their bits, so they can be counted, ranked and
//! de-duplicated like any other value.
//!
//! [`ColumnType`]: crate::spec::ColumnType

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum Scalar {
    #[default]
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer (timestamps too).
    Long(i64),
    /// A 64-bit float.
    Double(f64),
    /// Text.
    Str(Arc<str>),
    /// A list (Avro arrays, `top_k` and `last_k` features).
    List(Arc<[Scalar]>),
}

impl Scalar {
    /// Whether it is [`Scalar::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// The value as a float, for numeric operators.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Long(v) => Some(*v as f64),
            Scalar::Double(v) => Some(*v),
            _ => None,
        }
    }

    /// Calls `f` on the value, or on each element of a list: operators that
    /// count items treat a list as its elements.
    pub fn for_each_item(&self, mut f: impl FnMut(&Scalar)) {
        match self {
            Scalar::Null => {}
            Scalar::List(items) => items.iter().filter(|i| !i.is_null()).for_each(f),
            other => f(other),
        }
    }

    /// The value as text, for keys of records.
    pub fn key_text(&self) -> String {
        match self {
            Scalar::Null => String::new(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Long(v) => v.to_string(),
            Scalar::Double(v) => v.to_string(),
            Scalar::Str(s) => s.to_string(),
            Scalar::List(items) => items
                .iter()
                .map(|i| i.key_text())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The value as JSON (for dead letters and debugging output).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Null => serde_json::Value::Null,
            Scalar::Bool(b) => (*b).into(),
            Scalar::Long(v) => (*v).into(),
            Scalar::Double(v) => {
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into)
            }
            Scalar::Str(s) => s.as_ref().into(),
            Scalar::List(items) => items.iter().map(Scalar::to_json).collect(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Scalar::Null => 0,
            Scalar::Bool(_) => 1,
            Scalar::Long(_) | Scalar::Double(_) => 2,
            Scalar::Str(_) => 3,
            Scalar::List(_) => 4,
        }
    }

    /// Approximate heap and inline bytes, for the state-size metric.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Scalar>()
            + match self {
                Scalar::Str(s) => s.len(),
                Scalar::List(items) => items.iter().map(Scalar::size_bytes).sum(),
                _ => 0,
            }
    }
}

impl PartialEq for Scalar {
    /// Same-type comparisons directly (hash-map lookups call this for every
    /// event); mixed types through [`Ord`], where a long equals the double
    /// of the same value.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Scalar::Long(a), Scalar::Long(b)) => a == b,
            (Scalar::Str(a), Scalar::Str(b)) => a == b,
            (Scalar::Null, Scalar::Null) => true,
            (Scalar::Bool(a), Scalar::Bool(b)) => a == b,
            (Scalar::Double(a), Scalar::Double(b)) => a.total_cmp(b) == Ordering::Equal,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Scalar {}

impl PartialOrd for Scalar {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Nulls first; numbers compare by value across long and double (with
/// `f64::total_cmp`), then strings, then lists.
impl Ord for Scalar {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Scalar::Null, Scalar::Null) => Ordering::Equal,
            (Scalar::Bool(a), Scalar::Bool(b)) => a.cmp(b),
            (Scalar::Long(a), Scalar::Long(b)) => a.cmp(b),
            (Scalar::Str(a), Scalar::Str(b)) => a.cmp(b),
            (Scalar::List(a), Scalar::List(b)) => a.iter().cmp(b.iter()),
            (a, b) if a.rank() == 2 && b.rank() == 2 => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Hash for Scalar {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Scalar::Null => state.write_u8(0),
            Scalar::Bool(b) => b.hash(state),
            // A long and the double of the same value are equal, so they
            // must hash alike: integers hash as themselves, and doubles that
            // hold an integer hash as that integer.
            Scalar::Long(v) => v.hash(state),
            Scalar::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => (*v as i64).hash(state),
            Scalar::Double(v) => v.to_bits().hash(state),
            Scalar::Str(s) => s.hash(state),
            Scalar::List(items) => items.hash(state),
        }
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Long(v)
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Double(v)
    }
}

impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::Str(v.into())
    }
}
