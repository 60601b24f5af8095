//! Debezium change events as table changes: a table whose topic a
//! Debezium connector fills, in the Confluent Avro wire format
//! (`format: debezium`) or Kafka Connect's JSON converter
//! (`format: debezium_json`, with or without its `schema`/`payload`
//! wrapping; the columns are declared in the spec), with Debezium's
//! envelope.
//!
//! The envelope (Debezium's documentation, "change event values") holds
//! `before` and `after` (the row before and after the change, each null or
//! a record of the table's columns), `op` (`c` create, `r` snapshot read,
//! `u` update, `d` delete, `t` truncate), `ts_ms` (when the connector saw
//! it) and `source` (where it came from; its `ts_ms` is when the change was
//! made in the database). A change becomes one version of the row:
//! - `c`, `r`, `u`: the `after` row, valid from the change's time;
//! - `d`: the row ends (as a tombstone does), keyed by `before`;
//! - `t`: refused with a reason (a truncate names no row; it is
//!   dead-lettered and counted, never applied silently);
//!   and Debezium's tombstone after a delete (a null value) changes nothing
//!   more: the delete before it has ended the row.
//!
//! The change's time is `source.ts_ms` (the database's commit time), or the
//! envelope's `ts_ms` without it, or a column of the row (`valid_from`). So
//! a versioned table keeps every version as the database had it, and an
//! as-of join reads the row valid at each event's time.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;

use super::Format;
use super::avro::to_scalar;
use crate::avro::AvroCodec;
use crate::engine::value::Scalar;
use crate::registry::SchemaRegistry;
use crate::spec::validate::ColumnType;
pub use crate::spec::validate::envelope_row;
use crate::spec::{Columns, RecordFormat};

/// One change to a table's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The row's key.
    pub key: Scalar,
    /// When the change took effect (epoch ms).
    pub valid_from: i64,
    /// The row from then on; None: deleted.
    pub row: Option<Box<[Scalar]>>,
}

/// Where a change's time comes from.
#[derive(Debug, Clone, Copy)]
enum ValidFrom {
    /// `source.ts_ms`, else the envelope's `ts_ms`.
    Source,
    /// A column of the row.
    Column(usize),
}

/// One change event, read from either encoding: what the rest of this
/// file needs of Debezium's envelope.
struct Envelope {
    op: String,
    before: Option<Box<[Scalar]>>,
    after: Option<Box<[Scalar]>>,
    /// `source.ts_ms`: when the database made the change.
    source_ts: Option<i64>,
    /// The envelope's `ts_ms`: when the connector saw it.
    ts_ms: Option<i64>,
}

/// How a topic's change events are encoded.
enum Reader {
    /// Confluent Avro, read as the validated envelope; per row column, the
    /// field's position in the row record.
    Avro {
        codec: AvroCodec,
        positions: Vec<usize>,
    },
    /// Kafka Connect JSON: the row's columns by name, with their declared
    /// types.
    Json { columns: Vec<(String, ColumnType)> },
}

fn field<'v>(fields: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

/// A JSON value as a column of `t`; the error names the column.
fn json_scalar(v: &serde_json::Value, name: &str, t: &ColumnType) -> Result<Scalar, String> {
    use serde_json::Value as J;
    Ok(match (t, v) {
        (_, J::Null) => Scalar::Null,
        (ColumnType::Long, J::Number(n)) if n.as_i64().is_some() => {
            Scalar::Long(n.as_i64().expect("checked"))
        }
        (ColumnType::Double, J::Number(n)) => Scalar::Double(n.as_f64().unwrap_or(f64::NAN)),
        (ColumnType::String, J::String(s)) => Scalar::from(s.as_str()),
        (ColumnType::Boolean, J::Bool(b)) => Scalar::Bool(*b),
        (t, other) => {
            return Err(format!(
                "column `{name}` is declared {t:?} but the change holds {other} (Debezium's JSON converter writes decimals as text or bytes: declare them `string`, or set `decimal.handling.mode=double`)"
            ));
        }
    })
}

impl Reader {
    fn new(
        registry: Arc<dyn SchemaRegistry>,
        envelope: Schema,
        columns: &[(String, ColumnType)],
        format: RecordFormat,
    ) -> Reader {
        if format == RecordFormat::DebeziumJson {
            return Reader::Json {
                columns: columns.to_vec(),
            };
        }
        let row = envelope_row(&envelope).expect("validated: a Debezium envelope");
        let Schema::Record(record) = row else {
            unreachable!("envelope_row returns a record")
        };
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        Reader::Avro {
            positions: super::field_positions(record, names.iter()),
            codec: AvroCodec::with_reader_schema(registry, envelope),
        }
    }

    fn read(&self, bytes: &[u8]) -> Result<Envelope, String> {
        match self {
            Reader::Avro { codec, positions } => {
                let decoded = codec.decode(bytes).map_err(|e| e.to_string())?;
                let Value::Record(fields) = decoded.value else {
                    return Err("the value is not an Avro record".into());
                };
                let op = match field(&fields, "op").map(unwrap_union) {
                    Some(Value::String(op)) => op.clone(),
                    _ => return Err("a Debezium change without `op`".into()),
                };
                let row_of = |name: &str| match field(&fields, name).map(unwrap_union) {
                    Some(Value::Record(row)) => {
                        Some(positions.iter().map(|p| to_scalar(&row[*p].1)).collect())
                    }
                    _ => None,
                };
                let long = |v: Option<&Value>| match v.map(unwrap_union) {
                    Some(Value::Long(t)) => Some(*t),
                    _ => None,
                };
                let source_ts = match field(&fields, "source").map(unwrap_union) {
                    Some(Value::Record(s)) => long(field(s, "ts_ms")),
                    _ => None,
                };
                Ok(Envelope {
                    before: row_of("before"),
                    after: row_of("after"),
                    source_ts,
                    ts_ms: long(field(&fields, "ts_ms")),
                    op,
                })
            }
            Reader::Json { columns } => {
                let value: serde_json::Value = serde_json::from_slice(bytes)
                    .map_err(|e| format!("not JSON (format: debezium_json): {e}"))?;
                // With `schemas.enable` (the converter's default) the
                // change is the `payload` beside its `schema`.
                let payload = match value.get("payload") {
                    Some(p) if value.get("schema").is_some() => p,
                    _ => &value,
                };
                let op = match payload.get("op") {
                    Some(serde_json::Value::String(op)) => op.clone(),
                    _ => return Err("a Debezium change without `op`".into()),
                };
                let row_of = |name: &str| -> Result<Option<Box<[Scalar]>>, String> {
                    match payload.get(name) {
                        Some(row @ serde_json::Value::Object(_)) => columns
                            .iter()
                            .map(|(c, t)| json_scalar(&row[c.as_str()], c, t))
                            .collect::<Result<_, _>>()
                            .map(Some),
                        _ => Ok(None),
                    }
                };
                Ok(Envelope {
                    before: row_of("before")?,
                    after: row_of("after")?,
                    source_ts: payload
                        .get("source")
                        .and_then(|s| s.get("ts_ms"))
                        .and_then(serde_json::Value::as_i64),
                    ts_ms: payload.get("ts_ms").and_then(serde_json::Value::as_i64),
                    op,
                })
            }
        }
    }
}

/// The names and types of `columns`, in order.
fn typed(columns: &Columns) -> Vec<(String, ColumnType)> {
    columns
        .iter()
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
}

/// Decodes Debezium change events of one topic.
pub struct ChangeDecoder {
    reader: Reader,
    key: usize,
    valid_from: ValidFrom,
}

impl ChangeDecoder {
    /// A decoder of `envelope` (validated; for JSON, the declared one) into
    /// `columns` (the row record's), keyed by `key`, timed by `valid_from`
    /// (a column) or the envelope's times.
    pub fn new(
        registry: Arc<dyn SchemaRegistry>,
        envelope: Schema,
        columns: &Columns,
        key: &str,
        valid_from: Option<&str>,
        format: RecordFormat,
    ) -> ChangeDecoder {
        let index = |name: &str| columns.get_index_of(name).expect("validated column");
        ChangeDecoder {
            key: index(key),
            valid_from: valid_from.map_or(ValidFrom::Source, |c| ValidFrom::Column(index(c))),
            reader: Reader::new(registry, envelope, &typed(columns), format),
        }
    }

    /// The change a record's value holds, or why it cannot be applied.
    pub fn decode(&self, bytes: &[u8]) -> Result<Change, String> {
        let Envelope {
            op,
            before,
            after,
            source_ts,
            ts_ms,
        } = self.reader.read(bytes)?;
        let (key_row, row) = match op.as_str() {
            "c" | "r" | "u" => {
                let after =
                    after.ok_or_else(|| format!("a Debezium `{op}` change without `after`"))?;
                (after.clone(), Some(after))
            }
            "d" => (
                before.ok_or_else(|| {
                    "a Debezium delete without `before`: the table's key is unknown (set the table's REPLICA IDENTITY so deletes carry the key)".to_string()
                })?,
                None,
            ),
            "t" => {
                return Err(
                    "a Debezium truncate: it names no row, so eddy cannot apply it to a table of rows by key; re-snapshot the table instead".into(),
                );
            }
            other => return Err(format!("a Debezium change with unknown op `{other}`")),
        };
        let key = key_row[self.key].clone();
        if key.is_null() {
            return Err("a Debezium change whose key column is null".into());
        }
        let valid_from = match self.valid_from {
            ValidFrom::Column(c) => match &key_row[c] {
                Scalar::Long(t) => *t,
                _ => return Err("the change's `valid_from` column is null".into()),
            },
            ValidFrom::Source => source_ts.or(ts_ms).ok_or(
                "a Debezium change with neither `source.ts_ms` nor `ts_ms`: its time is unknown",
            )?,
        };
        Ok(Change {
            key,
            valid_from,
            row,
        })
    }
}

/// Debezium change events read as events (a source with `format:
/// debezium` or `debezium_json`): the row's columns (`after`, or `before`
/// for a delete), then `__op` and `__source_ts_ms`. A truncate names no
/// row: refused with its reason (dead-lettered by the job).
pub struct DebeziumEvents {
    reader: Reader,
}

impl DebeziumEvents {
    /// Events of `envelope` (validated) into `columns` (the row's columns,
    /// then `__op` and `__source_ts_ms`).
    pub fn new(
        registry: Arc<dyn SchemaRegistry>,
        envelope: Schema,
        columns: &Columns,
        format: RecordFormat,
    ) -> DebeziumEvents {
        let mut row = typed(columns);
        row.truncate(row.len().saturating_sub(2));
        DebeziumEvents {
            reader: Reader::new(registry, envelope, &row, format),
        }
    }
}

impl Format for DebeziumEvents {
    fn columns(&self, bytes: &[u8]) -> Result<Box<[Scalar]>, String> {
        let Envelope {
            op,
            before,
            after,
            source_ts,
            ..
        } = self.reader.read(bytes)?;
        let (side, row) = match op.as_str() {
            "c" | "r" | "u" => ("after", after),
            "d" => ("before", before),
            "t" => {
                return Err(
                    "a Debezium truncate: it names no row, so it is not an event of one".into(),
                );
            }
            other => return Err(format!("a Debezium change with unknown op `{other}`")),
        };
        let row = row.ok_or_else(|| format!("a Debezium `{op}` change without `{side}`"))?;
        let time = source_ts.map_or(Scalar::Null, Scalar::Long);
        Ok(row
            .into_vec()
            .into_iter()
            .chain([Scalar::from(op.as_str()), time])
            .collect())
    }
}
