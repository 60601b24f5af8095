//! Source records to engine rows, through one seam per wire format.
//!
//! A [`RecordDecoder`] turns a record into (key, event time, columns) with
//! the checks every format shares: a tombstone is not an event, the key
//! must be set, the event time must be set and in range. How a record's
//! value becomes the columns is its [`Format`]'s: the Confluent Avro wire
//! format (`avro.rs`, with its fast path in `avro_flat.rs`) is the one
//! eddy reads for sources; tables may also hold Debezium change events
//! (`debezium.rs`), each a version of a row or its deletion. A new format is a file here implementing [`Format`],
//! opened where the decoder is made ([`RecordDecoder::new`] for Avro).
//!
//! Each source and table gets a decoder bound to the schema the spec was
//! validated against (the latest registered one), so whatever schema a
//! producer wrote with, fields arrive in one known order and the engine
//! reads them by position.

use std::sync::Arc;

use apache_avro::Schema;

use crate::engine::value::Scalar;
use crate::registry::SchemaRegistry;
use crate::spec::validate::{TimeScale, time_scale};
use crate::spec::{ColumnType, Columns, TimeUnit};
use crate::topic::Record;

mod avro;
mod avro_flat;
mod debezium;

pub use avro::{AvroFormat, to_scalar};
pub use debezium::{Change, ChangeDecoder, DebeziumEvents, envelope_row};

/// How the values of one topic's records are read: one implementation per
/// wire format.
pub trait Format: Send + Sync {
    /// The record's value as the decoder's columns, in their order; the
    /// error says why the value cannot be used.
    fn columns(&self, value: &[u8]) -> Result<Box<[Scalar]>, String>;
}

/// The positions in `record` of the fields named `names` (validated: each
/// is a field), in the order of `names`.
fn field_positions<'a>(
    record: &apache_avro::schema::RecordSchema,
    names: impl Iterator<Item = &'a String>,
) -> Vec<usize> {
    names
        .map(|c| {
            record
                .fields
                .iter()
                .position(|f| f.name == *c)
                .expect("validated column")
        })
        .collect()
}

/// The largest event time accepted, in ms either side of the epoch.
pub const MAX_EVENT_TIME: i64 = 1_000_000_000_000_000;

/// Decodes records of one topic into (key, event time, columns).
pub struct RecordDecoder {
    format: Box<dyn Format>,
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
    /// A decoder of Avro records in the Confluent wire format, read as
    /// `schema`. `key` and `time` name columns of `columns`; `time` is
    /// optional (tables without `valid_from` use the record timestamp).
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
        let key = index(key);
        let format = AvroFormat::new(registry, schema, columns);
        RecordDecoder::with_format(Box::new(format), columns, key, time)
    }

    /// A decoder of a source's records in its `format`: Avro rows, or
    /// Debezium change events read as events (the row's columns, then
    /// `__op` and `__source_ts_ms`). `schema` is the topic's (for Debezium,
    /// the envelope); the rest as [`RecordDecoder::new`].
    pub fn source(
        registry: Arc<dyn SchemaRegistry>,
        schema: Schema,
        columns: &Columns,
        key: &str,
        time: Option<(&str, TimeUnit)>,
        format: crate::spec::RecordFormat,
    ) -> RecordDecoder {
        match format {
            crate::spec::RecordFormat::Avro => {
                RecordDecoder::new(registry, schema, columns, key, time)
            }
            crate::spec::RecordFormat::Debezium | crate::spec::RecordFormat::DebeziumJson => {
                let events = crate::spec::validate::change_schema(&schema)
                    .expect("validated: a Debezium envelope");
                let Schema::Record(record) = &events else {
                    unreachable!("change_schema returns a record")
                };
                let index = |name: &str| columns.get_index_of(name).expect("validated column");
                let time = time.map(|(name, unit)| {
                    let field = record
                        .fields
                        .iter()
                        .find(|f| f.name == name)
                        .expect("validated");
                    (
                        index(name),
                        time_scale(&field.schema, unit).expect("validated time field"),
                    )
                });
                let format = DebeziumEvents::new(registry, schema, columns, format);
                RecordDecoder::with_format(Box::new(format), columns, index(key), time)
            }
        }
    }

    /// A decoder over any format: `key` and `time` are indices into
    /// `columns`, with the event time's scale.
    pub fn with_format(
        format: Box<dyn Format>,
        columns: &Columns,
        key: usize,
        time: Option<(usize, TimeScale)>,
    ) -> RecordDecoder {
        RecordDecoder {
            format,
            columns: columns.clone(),
            key,
            time,
        }
    }

    /// Decodes a record's value; the error says why it cannot be used.
    pub fn decode(&self, record: &Record) -> Result<DecodedRow, String> {
        let Some(bytes) = &record.value else {
            return Err("a tombstone (null value) where an event was expected".into());
        };
        let columns = self.format.columns(bytes)?;
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
    use crate::avro::AvroCodec;
    use crate::registry::store::SchemaStore;
    use crate::topic::local::{LocalLog, LocalLogConfig};
    use apache_avro::types::Value;

    /// "key,seconds" in UTF-8: a format that is not Avro.
    struct Text;

    impl Format for Text {
        fn columns(&self, value: &[u8]) -> Result<Box<[Scalar]>, String> {
            let text = std::str::from_utf8(value).map_err(|e| e.to_string())?;
            let (k, t) = text.split_once(',').ok_or("not `key,time`")?;
            let scalar = |s: &str| match s {
                "" => Scalar::Null,
                s => s.parse().map(Scalar::Long).unwrap_or(Scalar::Null),
            };
            Ok(vec![scalar(k), scalar(t)].into_boxed_slice())
        }
    }

    fn text_record(value: Option<&str>) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: None,
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: vec![],
        }
    }

    /// The seam: a format only turns a value into columns; the key, the
    /// event time, its unit and its range are checked alike for every
    /// format.
    #[test]
    fn a_format_other_than_avro_gets_the_same_key_and_time_checks() {
        let columns: Columns = [
            ("k".to_string(), ColumnType::Long),
            ("ts".to_string(), ColumnType::Long),
        ]
        .into_iter()
        .collect();
        let decoder =
            RecordDecoder::with_format(Box::new(Text), &columns, 0, Some((1, TimeScale::Seconds)));
        let row = decoder.decode(&text_record(Some("7,1700000000"))).unwrap();
        assert_eq!(
            (row.key, row.ts),
            (Scalar::Long(7), Some(1_700_000_000_000))
        );
        let why = |v| decoder.decode(&text_record(v)).err().unwrap();
        assert!(why(None).contains("tombstone"));
        assert!(why(Some(",1")).contains("key field `k` is null"));
        assert!(why(Some("7,")).contains("event-time field `ts` is null"));
        assert!(why(Some("7,9000000000000000")).contains("out of range"));
        assert!(why(Some("nonsense")).contains("not `key,time`"));
    }

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

#[cfg(test)]
mod debezium_json_tests {
    //! Debezium's JSON converter: both wrappings, and a value of another
    //! type than declared named by its column.

    use super::*;
    use crate::registry::store::SchemaStore;
    use crate::spec::{DeclaredType, RecordFormat};
    use crate::topic::local::{LocalLog, LocalLogConfig};

    #[test]
    fn json_changes_read_with_or_without_their_schema_and_a_wrong_type_names_its_column() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let registry: Arc<dyn SchemaRegistry> =
            Arc::new(SchemaStore::open(Arc::new(log), "_schemas").unwrap());
        let declared: indexmap::IndexMap<String, DeclaredType> = [
            ("id".to_string(), DeclaredType::Long),
            ("name".to_string(), DeclaredType::String),
            ("score".to_string(), DeclaredType::Double),
        ]
        .into_iter()
        .collect();
        let envelope = crate::spec::validate::declared_envelope(&declared, "id").unwrap();
        let row = envelope_row(&envelope).unwrap().clone();
        let columns = crate::spec::validate::record_columns(&row).unwrap();
        let decoder = ChangeDecoder::new(
            registry,
            envelope,
            &columns,
            "id",
            None,
            RecordFormat::DebeziumJson,
        );
        let payload = r#"{"before": null, "after": {"id": 7, "name": "Sally", "score": 1.5},
            "source": {"ts_ms": 1000}, "op": "c", "ts_ms": 1040}"#;
        let wrapped = format!(r#"{{"schema": {{"type": "struct"}}, "payload": {payload}}}"#);
        for value in [payload.to_string(), wrapped] {
            let change = decoder.decode(value.as_bytes()).unwrap();
            assert_eq!(change.key, Scalar::Long(7));
            assert_eq!(change.valid_from, 1000);
            assert_eq!(
                change.row.unwrap().to_vec(),
                vec![Scalar::Long(7), Scalar::from("Sally"), Scalar::Double(1.5)]
            );
        }
        let why = decoder
            .decode(br#"{"op": "u", "after": {"id": 7, "score": "1.50"}, "ts_ms": 1}"#)
            .unwrap_err();
        assert!(why.contains("column `score` is declared Double"), "{why}");
        let why = decoder.decode(b"not json").unwrap_err();
        assert!(why.contains("not JSON"), "{why}");
    }
}
