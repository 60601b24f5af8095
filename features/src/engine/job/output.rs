//! Feature tables out: upserts to a compacted topic (Avro, registered as
//! `<topic>-value`) and Parquet files on object storage.

use std::sync::Arc;

use apache_avro::types::Value;
use polars::prelude::*;

use crate::avro::{AvroCodec, Encoder};
use crate::engine::frame::to_series;
use crate::engine::value::Scalar;
use crate::engine::view::FeatureRow;
use crate::spec::ColumnType;
use crate::spec::validate::ViewPlan;
use crate::store::Store;

pub use super::out_type::{OutType, feature_schema};

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
    /// Part files of `plan`'s rows under `store`.
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

    /// Buffers a row of `task`.
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

#[cfg(test)]
mod tests {
    //! The fast encoder (`flat`) against apache_avro's, over every output
    //! type.
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::RowEncoder;
    use crate::avro::AvroCodec;
    use crate::engine::value::Scalar;
    use crate::engine::view::FeatureRow;
    use crate::registry::store::SchemaStore;
    use crate::spec::validate::ViewPlan;
    use crate::topic::local::{LocalLog, LocalLogConfig};

    /// A view with every output type: long and string keys, plain, nullable
    /// and array features of each scalar type.
    fn plan(string_key: bool) -> ViewPlan {
        let spec = "name: f
sources:
  s: { topic: s, key: k, event_time: ts }
features:
  v:
    source: s
    aggregations:
      - { name: n, op: count, windows: [lifetime] }
      - { name: total, op: sum, column: x, windows: [lifetime] }
      - { name: avg, op: mean, column: x, windows: [lifetime] }
      - { name: lo, op: min, column: i, windows: [lifetime] }
      - { name: last_s, op: last, column: s, windows: [lifetime] }
      - { name: last_b, op: last, column: b, windows: [lifetime] }
      - { name: ks, op: last_k, column: s, k: 3, windows: [lifetime] }
      - { name: kx, op: first_k, column: x, k: 3, windows: [lifetime] }
      - { name: tops, op: top_k, column: tags, k: 2, windows: [lifetime] }
";
        let key = if string_key { "string" } else { "long" };
        let schema = apache_avro::Schema::parse_str(&format!(
            r#"{{"type":"record","name":"S","fields":[{{"name":"k","type":"{key}"}},{{"name":"ts","type":"long"}},
            {{"name":"x","type":"double"}},{{"name":"i","type":"long"}},{{"name":"s","type":"string"}},
            {{"name":"b","type":"boolean"}},{{"name":"tags","type":{{"type":"array","items":"string"}}}}]}}"#
        ))
        .unwrap();
        let loaded = crate::spec::parse(std::path::Path::new("f.yaml"), spec).unwrap();
        crate::spec::validate(&loaded, &|_| Ok(Some(schema.clone())))
            .unwrap()
            .remove(0)
    }

    fn scalar(kind: u8, n: i64, text: &str) -> Scalar {
        match kind {
            0 => Scalar::Null,
            1 => Scalar::Long(n),
            2 => Scalar::Double(n as f64 * 0.25),
            3 => Scalar::from(text),
            _ => Scalar::Bool(n % 2 == 0),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// The direct encoder writes exactly the bytes apache_avro writes.
        #[test]
        fn the_fast_feature_encoder_writes_what_apache_avro_writes(
            string_key in any::<bool>(),
            key in any::<i64>(),
            as_of in any::<i64>(),
            nums in prop::collection::vec(any::<i64>(), 9),
            nulls in prop::collection::vec(any::<bool>(), 9),
            texts in prop::collection::vec("[a-zé]{0,12}", 4),
            lens in prop::collection::vec(0usize..4, 3),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
            let registry = Arc::new(SchemaStore::open(Arc::new(log), "_schemas").unwrap());
            let plan = plan(string_key);
            let enc = RowEncoder::register(&AvroCodec::new(registry), &plan).unwrap();
            let maybe = |i: usize, v: Scalar| if nulls[i] { Scalar::Null } else { v };
            let list = |n: usize, kind: u8| Scalar::List((0..n).map(|j| scalar(kind, nums[j] ^ j as i64, &texts[j % 4])).collect());
            let values = vec![
                Scalar::Long(nums[0]),
                scalar(2, nums[1], ""),
                maybe(2, scalar(2, nums[2], "")),
                maybe(3, Scalar::Long(nums[3])),
                maybe(4, Scalar::from(texts[0].as_str())),
                maybe(5, scalar(4, nums[5], "")),
                list(lens[0], 3),
                list(lens[1], 2),
                list(lens[2], 3),
            ];
            let row = FeatureRow {
                key: if string_key { Scalar::from(texts[1].as_str()) } else { Scalar::Long(key) },
                as_of,
                values,
            };
            prop_assert_eq!(enc.encode(&row), enc.encode_reference(&row).unwrap());
        }
    }
}
