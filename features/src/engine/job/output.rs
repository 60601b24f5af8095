//! Feature tables out: upserts to a compacted topic (Avro, registered as
//! `<topic>-value`) and Parquet files on object storage.

use std::sync::Arc;

use apache_avro::types::Value;
use polars::prelude::*;
use serde_json::json;

use crate::avro::{AvroCodec, Encoder};
use crate::engine::frame::to_series;
use crate::engine::value::Scalar;
use crate::engine::view::FeatureRow;
use crate::spec::validate::{FeaturePlan, ViewPlan};
use crate::spec::{ColumnType, Op};
use crate::store::Store;

/// The type of a feature column in the output.
#[derive(Debug, Clone, PartialEq)]
pub enum OutType {
    /// Never null.
    Plain(ColumnType),
    Nullable(ColumnType),
    /// An array, never null.
    Array(ColumnType),
}

impl OutType {
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

fn plain(v: &Scalar, t: &ColumnType) -> Value {
    match (v, t) {
        (Scalar::Long(x), ColumnType::Double) => Value::Double(*x as f64),
        (Scalar::Long(x), _) => Value::Long(*x),
        (Scalar::Double(x), _) => Value::Double(*x),
        (Scalar::Bool(b), _) => Value::Boolean(*b),
        (Scalar::Str(s), _) => Value::String(s.to_string()),
        (Scalar::List(items), ColumnType::List(inner)) => {
            Value::Array(items.iter().map(|i| plain(i, inner)).collect())
        }
        (Scalar::List(items), _) => Value::Array(items.iter().map(|i| plain(i, t)).collect()),
        (Scalar::Null, ColumnType::Long) => Value::Long(0),
        (Scalar::Null, ColumnType::Double) => Value::Double(0.0),
        (Scalar::Null, _) => Value::Null,
    }
}

fn to_avro(v: &Scalar, t: &OutType) -> Value {
    match t {
        OutType::Plain(t) => plain(v, t),
        OutType::Nullable(_) if v.is_null() => Value::Union(0, Box::new(Value::Null)),
        OutType::Nullable(t) => Value::Union(1, Box::new(plain(v, t))),
        OutType::Array(t) => match v {
            Scalar::List(items) => Value::Array(items.iter().map(|i| plain(i, t)).collect()),
            _ => Value::Array(Vec::new()),
        },
    }
}

/// Encodes a view's rows as Avro records.
pub struct RowEncoder {
    encoder: Encoder,
    key: String,
    key_type: ColumnType,
    fields: Vec<(String, OutType)>,
    types: Vec<OutType>,
}

impl RowEncoder {
    /// Registers the view's schema as `<topic>-value`.
    pub fn register(
        codec: &AvroCodec,
        plan: &ViewPlan,
    ) -> Result<RowEncoder, crate::avro::AvroError> {
        let subject = crate::registry::value_subject(&plan.output_topic);
        Ok(RowEncoder {
            encoder: codec.encoder(&subject, &feature_schema(plan))?,
            key: plan.key.clone(),
            key_type: plan.key_type.clone(),
            fields: plan
                .features
                .iter()
                .map(|f| (f.column.clone(), OutType::of(f)))
                .collect(),
            types: plan.features.iter().map(OutType::of).collect(),
        })
    }

    /// The framed Avro record of a row (the fast path, see `flat`).
    pub fn encode(&self, row: &FeatureRow) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 12 * self.types.len());
        out.push(0);
        out.extend_from_slice(&self.encoder.schema_id().to_be_bytes());
        super::flat::record(
            &mut out,
            &row.key,
            &self.key_type,
            row.as_of,
            &row.values,
            &self.types,
        );
        out
    }

    /// The same record through `apache_avro`: the reference the fast path is
    /// tested against.
    pub fn encode_reference(&self, row: &FeatureRow) -> Result<Vec<u8>, crate::avro::AvroError> {
        let mut fields = Vec::with_capacity(self.fields.len() + 2);
        fields.push((self.key.clone(), plain(&row.key, &self.key_type)));
        fields.push(("as_of".to_string(), Value::TimestampMillis(row.as_of)));
        for ((name, t), v) in self.fields.iter().zip(&row.values) {
            fields.push((name.clone(), to_avro(v, t)));
        }
        self.encoder.encode(&Value::Record(fields))
    }
}

/// Buffers a view's rows and writes them as Parquet part files.
pub struct ParquetSink {
    store: Store,
    plan: Arc<ViewPlan>,
    /// Buffered rows per task.
    rows: std::collections::BTreeMap<i32, Vec<FeatureRow>>,
}

impl ParquetSink {
    pub fn new(store: Store, plan: Arc<ViewPlan>) -> ParquetSink {
        ParquetSink {
            store,
            plan,
            rows: Default::default(),
        }
    }

    /// Forgets a task's buffered rows (the task moved to another process,
    /// which replays them from the last checkpoint).
    pub fn discard(&mut self, task: i32) {
        self.rows.remove(&task);
    }

    pub fn push(&mut self, task: i32, row: FeatureRow) {
        self.rows.entry(task).or_default().push(row);
    }

    /// Writes buffered rows to `part-<task>-<seq>.parquet`. Names are a
    /// function of the checkpoint sequence, so a job that crashed after
    /// writing a part and before its checkpoint rewrites that same part on
    /// restart instead of adding a duplicate.
    pub fn flush(&mut self, task: i32, seq: u64) -> Result<Option<String>, super::JobError> {
        let internal = |e: polars::error::PolarsError| super::JobError::Output(e.to_string());
        let rows = self.rows.remove(&task).unwrap_or_default();
        if rows.is_empty() {
            return Ok(None);
        }
        let mut columns = vec![
            to_series(
                &self.plan.key,
                &self.plan.key_type,
                rows.iter().map(|r| r.key.clone()),
            )
            .into_column(),
            Series::new(
                "as_of".into(),
                rows.iter().map(|r| r.as_of).collect::<Vec<i64>>(),
            )
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .map_err(internal)?
            .into_column(),
        ];
        for (i, f) in self.plan.features.iter().enumerate() {
            let t = OutType::of(f).column_type();
            columns.push(
                to_series(&f.column, &t, rows.iter().map(|r| r.values[i].clone())).into_column(),
            );
        }
        let mut df = DataFrame::new(columns).map_err(internal)?;
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf)
            .finish(&mut df)
            .map_err(internal)?;
        let name = format!("part-{task:05}-{seq:012}.parquet");
        // A storage failure keeps its type: who must act decides the exit
        // code.
        self.store.put(&name, buf)?;
        Ok(Some(name))
    }
}
