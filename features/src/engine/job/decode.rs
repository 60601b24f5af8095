//! Avro records to engine rows.
//!
//! Each source and table gets a codec bound to the schema the spec was
//! validated against (the latest registered one), so whatever schema a
//! producer wrote with, fields arrive in one known order and the engine reads
//! them by position.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;

use std::collections::HashMap;
use std::sync::RwLock;

use super::flat_decode::FlatLayout;
use crate::avro::AvroCodec;
use crate::engine::value::Scalar;
use crate::registry::SchemaRegistry;
use crate::spec::validate::{TimeScale, time_scale};
use crate::spec::{ColumnType, Columns, TimeUnit};
use crate::topic::Record;

/// Converts one Avro value to a scalar of the column's type.
pub fn to_scalar(v: &Value) -> Scalar {
    match v {
        Value::Null => Scalar::Null,
        Value::Boolean(b) => Scalar::Bool(*b),
        Value::Int(x) | Value::Date(x) | Value::TimeMillis(x) => Scalar::Long(*x as i64),
        Value::Long(x)
        | Value::TimestampMillis(x)
        | Value::TimestampMicros(x)
        | Value::TimeMicros(x)
        | Value::LocalTimestampMillis(x)
        | Value::LocalTimestampMicros(x) => Scalar::Long(*x),
        Value::Float(x) => Scalar::Double(*x as f64),
        Value::Double(x) => Scalar::Double(*x),
        Value::String(s) => Scalar::Str(Arc::from(s.as_str())),
        Value::Enum(_, s) => Scalar::Str(Arc::from(s.as_str())),
        Value::Uuid(u) => Scalar::Str(Arc::from(u.to_string().as_str())),
        Value::Array(items) => Scalar::List(items.iter().map(to_scalar).collect()),
        Value::Union(_, inner) => to_scalar(inner),
        _ => Scalar::Null,
    }
}

/// The largest event time accepted, in ms either side of the epoch.
pub const MAX_EVENT_TIME: i64 = 1_000_000_000_000_000;

/// Decodes records of one topic into (key, event time, columns).
pub struct RecordDecoder {
    codec: AvroCodec,
    /// The reader schema's canonical form, to recognise writers that used it.
    reader_form: String,
    reader_layout: Option<Arc<FlatLayout>>,
    /// Per writer schema id: the fast-path layout, if that writer is the
    /// reader (see `flat_decode`).
    fast: RwLock<HashMap<u32, Option<Arc<FlatLayout>>>>,
    /// Positions in the reader schema of the wanted columns.
    positions: Vec<usize>,
    /// The columns a record decodes into, in order.
    pub columns: Columns,
    key: usize,
    time: Option<(usize, TimeScale)>,
}

/// A decoded record.
pub struct DecodedRow {
    /// The record's key.
    pub key: Scalar,
    /// Its event time, if the decoder reads one.
    pub ts: Option<i64>,
    /// Its columns, in the decoder's order.
    pub columns: Box<[Scalar]>,
}

impl RecordDecoder {
    /// `key` and `time` name columns of `columns`; `time` is optional
    /// (tables without `valid_from` use the record timestamp).
    pub fn new(
        registry: Arc<dyn SchemaRegistry>,
        schema: Schema,
        columns: &Columns,
        key: &str,
        time: Option<(&str, TimeUnit)>,
    ) -> RecordDecoder {
        let Schema::Record(record) = &schema else {
            unreachable!("validated: the schema is a record")
        };
        let positions: Vec<usize> = columns
            .keys()
            .map(|c| {
                record
                    .fields
                    .iter()
                    .position(|f| f.name == *c)
                    .expect("validated column")
            })
            .collect();
        let index = |name: &str| columns.get_index_of(name).expect("validated column");
        let time = time.map(|(name, unit)| {
            let field = &record.fields[record
                .fields
                .iter()
                .position(|f| f.name == name)
                .expect("validated")];
            (
                index(name),
                time_scale(&field.schema, unit).expect("validated time field"),
            )
        });
        RecordDecoder {
            key: index(key),
            time,
            reader_form: schema.canonical_form(),
            reader_layout: FlatLayout::new(&schema, &positions).map(Arc::new),
            fast: RwLock::new(HashMap::new()),
            positions,
            columns: columns.clone(),
            codec: AvroCodec::with_reader_schema(registry, schema),
        }
    }

    /// Decodes a record's value; the error says why it cannot be used.
    pub fn decode(&self, record: &Record) -> Result<DecodedRow, String> {
        let Some(bytes) = &record.value else {
            return Err("a tombstone (null value) where an event was expected".into());
        };
        let columns = match self.fast_decode(bytes) {
            Some(columns) => columns,
            None => {
                let decoded = self.codec.decode(bytes).map_err(|e| e.to_string())?;
                let Value::Record(fields) = decoded.value else {
                    return Err("the value is not an Avro record".into());
                };
                self.positions
                    .iter()
                    .map(|p| to_scalar(&fields[*p].1))
                    .collect()
            }
        };
        let key = columns[self.key].clone();
        if key.is_null() {
            return Err(format!(
                "the key field `{}` is null",
                self.columns.get_index(self.key).map_or("", |c| c.0)
            ));
        }
        let ts = match self.time {
            None => None,
            Some((i, scale)) => match columns[i] {
                Scalar::Long(t) => Some(match scale {
                    TimeScale::Millis => t,
                    TimeScale::Micros => t.div_euclid(1000),
                    TimeScale::Seconds => t.saturating_mul(1000),
                }),
                _ => {
                    return Err(format!(
                        "the event-time field `{}` is null",
                        self.columns.get_index(i).map_or("", |c| c.0)
                    ));
                }
            },
        };
        // Window arithmetic adds window lengths to event times; a time
        // beyond ±10^15 ms (about 31,700 years from 1970) is a unit mistake,
        // not an event, and must not overflow it.
        if let Some(t) = ts
            && !(-MAX_EVENT_TIME..=MAX_EVENT_TIME).contains(&t)
        {
            return Err(format!(
                "event time {t} ms is out of range (±{MAX_EVENT_TIME}); check the field's unit (event_time_unit)"
            ));
        }
        Ok(DecodedRow { key, ts, columns })
    }

    /// The fast path, when the writer's schema is the reader's; None sends
    /// the record through `apache_avro` (which also words any error).
    fn fast_decode(&self, bytes: &[u8]) -> Option<Box<[Scalar]>> {
        let (id, body) = crate::avro::unframe(bytes).ok()?;
        let cached = self.fast.read().expect("poisoned").get(&id).cloned();
        let layout = match cached {
            Some(layout) => layout,
            None => {
                let layout = match self.codec.writer_schema(id) {
                    Ok(writer) if writer.canonical_form() == self.reader_form => {
                        self.reader_layout.clone()
                    }
                    _ => None,
                };
                self.fast
                    .write()
                    .expect("poisoned")
                    .insert(id, layout.clone());
                layout
            }
        }?;
        layout.decode(body)
    }

    /// The key of a record from its key bytes (for tombstones).
    pub fn key_from_bytes(&self, bytes: &[u8]) -> Option<Scalar> {
        let text = std::str::from_utf8(bytes).ok()?;
        match self.columns.get_index(self.key)?.1 {
            ColumnType::Long => text.trim().parse().ok().map(Scalar::Long),
            _ => Some(Scalar::from(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::store::SchemaStore;
    use crate::topic::local::{LocalLog, LocalLogConfig};

    #[test]
    fn an_event_time_of_i64_max_is_refused_not_overflowed() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let registry: Arc<dyn SchemaRegistry> =
            Arc::new(SchemaStore::open(Arc::new(log), "_schemas").unwrap());
        let text = r#"{"type":"record","name":"E","fields":[{"name":"k","type":"long"},{"name":"ts","type":"long"}]}"#;
        let schema = Schema::parse_str(text).unwrap();
        let columns: Columns = [
            ("k".to_string(), ColumnType::Long),
            ("ts".to_string(), ColumnType::Long),
        ]
        .into_iter()
        .collect();
        let decoder = RecordDecoder::new(
            registry.clone(),
            schema,
            &columns,
            "k",
            Some(("ts", TimeUnit::Ms)),
        );
        let enc = AvroCodec::new(registry).encoder("e-value", text).unwrap();
        let record = |ts: i64| Record {
            topic: "e".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: None,
            value: Some(
                enc.encode(&Value::Record(vec![
                    ("k".into(), Value::Long(1)),
                    ("ts".into(), Value::Long(ts)),
                ]))
                .unwrap(),
            ),
            headers: vec![],
        };
        assert_eq!(
            decoder.decode(&record(1_700_000_000_000)).unwrap().ts,
            Some(1_700_000_000_000)
        );
        for bad in [i64::MAX, i64::MIN, MAX_EVENT_TIME + 1] {
            let err = decoder.decode(&record(bad)).err().unwrap();
            assert!(err.contains("out of range"), "{err}");
        }
    }
}
