//! The plans validation produces: what the engine runs for each view
//! (its source, joins, derived columns, filter and features) and the type
//! each feature is written as. Types only; `validate` makes them.

use super::{ColumnType, Columns, Missing, Op, Window};

/// A resolved feature: one operator over one window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FeaturePlan {
    /// `<name>_<window suffix>`.
    pub column: String,
    /// The operator.
    pub op: Op,
    /// The window.
    pub window: Window,
    /// The input column, if any.
    pub input: Option<String>,
    /// The input column's type.
    pub input_type: Option<ColumnType>,
    /// The k of `first_k`, `last_k`, `top_k`.
    pub k: usize,
    /// The quantile of `approx_percentile`.
    pub quantile: f64,
    /// The half-life of `decayed_sum`, ms.
    pub half_life_ms: i64,
    /// A derived feature (`derived_features`): computed from the view's
    /// other values, not aggregated (its `op` and `window` are unused).
    /// Not serialized when none, so the plans of views without derived
    /// features, and the checkpoint fingerprints made of them, are what
    /// they were before derived features existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<Derived>,
}

/// A derived feature's SQL, compiled, and its type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Derived {
    /// The SQL, as written.
    pub sql: String,
    /// The compiled expression over the view's values.
    pub expr: crate::engine::expr::Expr,
    /// Its type (the column is nullable).
    pub ty: ColumnType,
}

impl FeaturePlan {
    /// A derived feature named `column`.
    pub fn derived(column: String, derived: Derived) -> FeaturePlan {
        FeaturePlan {
            column,
            op: Op::Last,
            window: Window::Lifetime,
            input: None,
            input_type: None,
            k: 0,
            quantile: 0.0,
            half_life_ms: 0,
            derived: Some(derived),
        }
    }
}

/// A resolved join.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JoinPlan {
    /// The table.
    pub table: String,
    /// The event's column looked up in it.
    pub on: String,
    /// (table column, type) pairs added to the event.
    pub select: Vec<(String, ColumnType)>,
    /// What an event without a match gets.
    pub missing: Missing,
}

/// Everything the engine needs to run one view.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ViewPlan {
    /// The view's name.
    pub name: String,
    /// Its source.
    pub source: String,
    /// The view's key column: the source's key, or the column it is
    /// re-keyed by.
    pub key: String,
    /// Keyed by another column than its source's key: its events go
    /// through the repartition topic (skipped when false, so plans of
    /// views that do not re-key serialize as before).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rekeyed: bool,
    /// Its type.
    pub key_type: ColumnType,
    /// The source record's columns.
    pub source_columns: Columns,
    /// Joins, in order.
    pub joins: Vec<JoinPlan>,
    /// (name, SQL) in order.
    pub derive: Vec<(String, String)>,
    /// The filter (SQL), if any.
    pub filter: Option<String>,
    /// Every column after joins and derives.
    pub columns: Columns,
    /// The features, in order.
    pub features: Vec<FeaturePlan>,
    /// The feature topic.
    pub output_topic: String,
    /// The Parquet URLs (none, one or several: each gets every part file).
    pub parquet: Vec<String>,
    /// The online store, if any.
    pub redis: Option<super::RedisSpec>,
    /// The PostgreSQL table, if any.
    pub postgres: Option<super::PostgresSpec>,
    /// The SQLite table, if any.
    pub sqlite: Option<super::SqliteSpec>,
}

/// The type of a feature column in the output.
#[derive(Debug, Clone, PartialEq)]
pub enum OutType {
    /// Never null.
    Plain(ColumnType),
    /// May be null.
    Nullable(ColumnType),
    /// An array, never null.
    Array(ColumnType),
}

impl OutType {
    /// The output type of feature `f`.
    pub fn of(f: &FeaturePlan) -> OutType {
        if let Some(d) = &f.derived {
            return OutType::Nullable(d.ty.clone());
        }
        let input = f.input_type.clone().unwrap_or(ColumnType::Long);
        let element = match &input {
            ColumnType::List(inner) => (**inner).clone(),
            other => other.clone(),
        };
        match f.op {
            Op::Count | Op::CountDistinct | Op::ApproxCountDistinct => {
                OutType::Plain(ColumnType::Long)
            }
            Op::Sum if input == ColumnType::Long => OutType::Plain(ColumnType::Long),
            Op::Sum | Op::DecayedSum => OutType::Plain(ColumnType::Double),
            Op::Mean | Op::Variance | Op::Stddev | Op::ApproxPercentile => {
                OutType::Nullable(ColumnType::Double)
            }
            Op::Min | Op::Max | Op::First | Op::Last => OutType::Nullable(input),
            Op::FirstK | Op::LastK => OutType::Array(input),
            Op::TopK => OutType::Array(element),
        }
    }

    /// The column type of the Parquet column.
    pub fn column_type(&self) -> ColumnType {
        match self {
            OutType::Plain(t) | OutType::Nullable(t) => t.clone(),
            OutType::Array(t) => ColumnType::List(Box::new(t.clone())),
        }
    }
}
