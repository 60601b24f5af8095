//! Durations as people write them in a spec: `500ms`, `10s`, `5m`, `1h`,
//! `1d`, `1w`. Event time is kept in epoch milliseconds throughout eddy, so a
//! duration is a whole number of milliseconds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of event time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

const UNITS: [(&str, i64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl Millis {
    /// Parses `<integer><unit>`, unit one of ms, s, m, h, d, w.
    pub fn parse(text: &str) -> Result<Millis, String> {
        let t = text.trim();
        let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
        let (number, unit) = t.split_at(digits);
        let n: i64 = number.parse().map_err(|_| {
            format!("`{text}` is not a duration: write a whole number and a unit, like 10m or 30d")
        })?;
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit.trim())
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                format!("`{text}` has no known unit: use ms, s, m, h, d or w (for example 10m)")
            })?;
        n.checked_mul(scale)
            .map(Millis)
            .ok_or_else(|| format!("`{text}` is too long a duration"))
    }

    /// The shortest exact text for this duration (`86400000` → `1d`).
    pub fn text(self) -> String {
        if self.0 == 0 {
            return "0s".into();
        }
        for (unit, scale) in UNITS {
            if self.0 % scale == 0 {
                return format!("{}{unit}", self.0 / scale);
            }
        }
        unreachable!("every whole number of milliseconds is a multiple of 1 ms")
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Millis::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_unit() {
        for (text, ms) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("30d", 2_592_000_000),
            ("1w", 604_800_000),
        ] {
            assert_eq!(Millis::parse(text), Ok(Millis(ms)));
            assert_eq!(Millis(ms).text(), text);
        }
        assert_eq!(Millis(90 * 60_000).text(), "90m");
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "m",
            "1.5h",
            "-1h",
            "10 parsecs",
            "99999999999999999w",
        ] {
            assert!(Millis::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
