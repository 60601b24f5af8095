//! The output schema of a feature view: each feature's type (plain,
//! nullable or an array) and the Avro record a view's rows are written
//! as. Shared by the encoders (`output`, and its fast path `flat`) and the
//! Parquet writer.

use serde_json::json;

use crate::spec::ColumnType;
pub use crate::spec::validate::OutType;
use crate::spec::validate::ViewPlan;

/// How a feature's output type is written in Avro.
fn avro(out: &OutType) -> serde_json::Value {
    match out {
        OutType::Plain(t) => avro_type(t),
        OutType::Nullable(t) => json!(["null", avro_type(t)]),
        OutType::Array(t) => json!({"type": "array", "items": avro_type(t)}),
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
        let doc = match &f.derived {
            Some(d) => format!("derived: {}", d.sql),
            None => format!(
                "{} over {}",
                f.op.name(),
                serde_json::to_value(f.window).unwrap_or_default()
            ),
        };
        let mut field = json!({"name": f.column, "type": avro(&OutType::of(f)), "doc": doc});
        if let OutType::Nullable(_) = OutType::of(f) {
            field["default"] = serde_json::Value::Null;
        }
        fields.push(field);
    }
    json!({"type": "record", "name": plan.name, "namespace": "eddy.features",
           "doc": format!("Feature view `{}`, one upsert per key.", plan.name), "fields": fields})
    .to_string()
}
