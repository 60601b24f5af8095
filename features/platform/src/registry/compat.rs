//! Compatibility levels and the checks behind them.
//!
//! A new schema is checked against earlier ones with Avro's schema-resolution
//! rules (apache-avro's `SchemaCompatibility`):
//! - BACKWARD: consumers on the new schema read data written with the
//!   previous one (new reads old). The default, as in Confluent.
//! - FORWARD: consumers on the previous schema read data written with the
//!   new one (old reads new).
//! - FULL: both.
//! - `*_TRANSITIVE`: against every live version, not only the latest.
//! - NONE: no check.
//!
//! Only a *full* resolution counts as compatible. A partial one (an enum
//! symbol or union branch the reader lacks) can fail on some records, and
//! Confluent rejects it too.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Serialize};

use super::RegistryError;

/// A subject's compatibility rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No checks.
    None,
    /// New reads the latest. The default.
    #[default]
    Backward,
    /// New reads every live version.
    BackwardTransitive,
    /// The latest reads new.
    Forward,
    /// Every live version reads new.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every live version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// All levels, for documentation and tests.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// Confluent's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn backward(&self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn forward(&self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// True when the rule applies to every live version, not just the latest.
    pub fn transitive(&self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Checks `new` against `existing` (oldest first, live versions only).
    /// Returns the reasons it fails; empty means compatible.
    pub fn check(&self, new: &Schema, existing: &[(i32, &Schema)]) -> Vec<String> {
        let against: &[(i32, &Schema)] = if self.transitive() {
            existing
        } else {
            existing.last().map(std::slice::from_ref).unwrap_or(&[])
        };
        let mut problems = Vec::new();
        for (version, old) in against {
            if self.backward()
                && let Some(why) = incompatibility(old, new)
            {
                problems.push(format!(
                    "new schema cannot read data written with version {version}: {why}"
                ));
            }
            if self.forward()
                && let Some(why) = incompatibility(new, old)
            {
                problems.push(format!(
                    "version {version} cannot read data written with the new schema: {why}"
                ));
            }
        }
        problems
    }
}

/// Why a reader with `reader` cannot read everything written with `writer`.
fn incompatibility(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(
            "only partly readable (an enum symbol or union branch is missing on the reader side)"
                .into(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| RegistryError::InvalidCompatibilityLevel(s.to_string()))
    }
}
