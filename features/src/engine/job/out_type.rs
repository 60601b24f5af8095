//! The output schema of a feature view: each feature's type (plain,
//! nullable or an array) and the Avro record a view's rows are written
//! as. Shared by the encoders (`output`, and its fast path `flat`) and the
//! Parquet writer.

use serde_json::json;

use crate::spec::validate::{FeaturePlan, ViewPlan};
use crate::spec::{ColumnType, Op};

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

    fn avro(&self) -> serde_json::Value {
        match self {
            OutType::Plain(t) => avro_type(t),
            OutType::Nullable(t) => json!(["null", avro_type(t)]),
            OutType::Array(t) => json!({"type": "array", "items": avro_type(t)}),
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

fn avro_type(t: &ColumnType) -> serde_json::Value {
    match t {
        ColumnType::Long => json!("long"),
        ColumnType::Double => json!("double"),
        ColumnType::String => json!("string"),
        ColumnType::Boolean => json!("boolean"),
        ColumnType::List(inner) => json!({"type": "array", "items": avro_type(inner)}),
    }
}

/// The Avro schema of a view's feature records: the key, `as_of` and every
/// feature.
pub fn feature_schema(plan: &ViewPlan) -> String {
    let mut fields = vec![
        json!({"name": plan.key, "type": avro_type(&plan.key_type), "doc": "The entity key."}),
        json!({"name": "as_of", "type": {"type": "long", "logicalType": "timestamp-millis"},
               "doc": "Event time the features are valid for (the task's watermark)."}),
    ];
    for f in &plan.features {
        let mut field = json!({"name": f.column, "type": OutType::of(f).avro(),
            "doc": format!("{} over {}", f.op.name(), serde_json::to_value(f.window).unwrap_or_default())});
        if let OutType::Nullable(_) = OutType::of(f) {
            field["default"] = serde_json::Value::Null;
        }
        fields.push(field);
    }
    json!({"type": "record", "name": plan.name, "namespace": "eddy.features",
           "doc": format!("Feature view `{}`, one upsert per key.", plan.name), "fields": fields})
    .to_string()
}
