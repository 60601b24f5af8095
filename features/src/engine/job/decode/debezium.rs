//! Debezium change events as table changes: a table whose topic a
//! Debezium connector fills (`format: debezium`), in the Confluent Avro
//! wire format with Debezium's envelope.
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
use crate::spec::Columns;
pub use crate::spec::validate::envelope_row;

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

/// Decodes Debezium change events of one topic.
pub struct ChangeDecoder {
    codec: AvroCodec,
    /// Per column, the field's position in the row record.
    positions: Vec<usize>,
    key: usize,
    valid_from: ValidFrom,
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

impl ChangeDecoder {
    /// A decoder of `envelope` (validated) into `columns` (the row
    /// record's), keyed by `key`, timed by `valid_from` (a column) or the
    /// envelope's times.
    pub fn new(
        registry: Arc<dyn SchemaRegistry>,
        envelope: Schema,
        columns: &Columns,
        key: &str,
        valid_from: Option<&str>,
    ) -> ChangeDecoder {
        let row = envelope_row(&envelope).expect("validated: a Debezium envelope");
        let Schema::Record(record) = row else {
            unreachable!("envelope_row returns a record")
        };
        let positions = super::field_positions(record, columns.keys());
        let index = |name: &str| columns.get_index_of(name).expect("validated column");
        ChangeDecoder {
            positions,
            key: index(key),
            valid_from: valid_from.map_or(ValidFrom::Source, |c| ValidFrom::Column(index(c))),
            codec: AvroCodec::with_reader_schema(registry, envelope),
        }
    }

    /// The change a record's value holds, or why it cannot be applied.
    pub fn decode(&self, bytes: &[u8]) -> Result<Change, String> {
        let decoded = self.codec.decode(bytes).map_err(|e| e.to_string())?;
        let Value::Record(fields) = decoded.value else {
            return Err("the value is not an Avro record".into());
        };
        let op = match field(&fields, "op").map(unwrap_union) {
            Some(Value::String(op)) => op.clone(),
            _ => return Err("a Debezium change without `op`".into()),
        };
        let row_of = |name: &str| -> Option<Box<[Scalar]>> {
            match field(&fields, name).map(unwrap_union) {
                Some(Value::Record(row)) => Some(
                    self.positions
                        .iter()
                        .map(|p| to_scalar(&row[*p].1))
                        .collect(),
                ),
                _ => None,
            }
        };
        let (key_row, row) = match op.as_str() {
            "c" | "r" | "u" => {
                let after = row_of("after")
                    .ok_or_else(|| format!("a Debezium `{op}` change without `after`"))?;
                (after.clone(), Some(after))
            }
            "d" => (
                row_of("before").ok_or_else(|| {
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
            ValidFrom::Source => {
                let source_ts = match field(&fields, "source").map(unwrap_union) {
                    Some(Value::Record(s)) => match field(s, "ts_ms").map(unwrap_union) {
                        Some(Value::Long(t)) => Some(*t),
                        _ => None,
                    },
                    _ => None,
                };
                let envelope_ts = match field(&fields, "ts_ms").map(unwrap_union) {
                    Some(Value::Long(t)) => Some(*t),
                    _ => None,
                };
                source_ts.or(envelope_ts).ok_or(
                    "a Debezium change with neither `source.ts_ms` nor `ts_ms`: its time is unknown",
                )?
            }
        };
        Ok(Change {
            key,
            valid_from,
            row,
        })
    }
}

/// Debezium change events read as events (a source with `format:
/// debezium`): the row's columns (`after`, or `before` for a delete), then
/// `__op` and `__source_ts_ms`. A truncate names no row: refused with its
/// reason (dead-lettered by the job).
pub struct DebeziumEvents {
    codec: AvroCodec,
    /// Per row column, the field's position in the row record.
    positions: Vec<usize>,
}

impl DebeziumEvents {
    /// Events of `envelope` (validated) into `columns` (the row's columns,
    /// then `__op` and `__source_ts_ms`).
    pub fn new(
        registry: Arc<dyn SchemaRegistry>,
        envelope: Schema,
        columns: &Columns,
    ) -> DebeziumEvents {
        let row = envelope_row(&envelope).expect("validated: a Debezium envelope");
        let Schema::Record(record) = row else {
            unreachable!("envelope_row returns a record")
        };
        let positions =
            super::field_positions(record, columns.keys().take(columns.len().saturating_sub(2)));
        DebeziumEvents {
            positions,
            codec: AvroCodec::with_reader_schema(registry, envelope),
        }
    }
}

impl Format for DebeziumEvents {
    fn columns(&self, bytes: &[u8]) -> Result<Box<[Scalar]>, String> {
        let decoded = self.codec.decode(bytes).map_err(|e| e.to_string())?;
        let Value::Record(fields) = decoded.value else {
            return Err("the value is not an Avro record".into());
        };
        let op = match field(&fields, "op").map(unwrap_union) {
            Some(Value::String(op)) => op.clone(),
            _ => return Err("a Debezium change without `op`".into()),
        };
        let side = match op.as_str() {
            "c" | "r" | "u" => "after",
            "d" => "before",
            "t" => {
                return Err(
                    "a Debezium truncate: it names no row, so it is not an event of one".into(),
                );
            }
            other => return Err(format!("a Debezium change with unknown op `{other}`")),
        };
        let Some(Value::Record(row)) = field(&fields, side).map(unwrap_union) else {
            return Err(format!("a Debezium `{op}` change without `{side}`"));
        };
        let time = match field(&fields, "source").map(unwrap_union) {
            Some(Value::Record(s)) => match field(s, "ts_ms").map(unwrap_union) {
                Some(Value::Long(t)) => Scalar::Long(*t),
                _ => Scalar::Null,
            },
            _ => Scalar::Null,
        };
        Ok(self
            .positions
            .iter()
            .map(|p| to_scalar(&row[*p].1))
            .chain([Scalar::from(op.as_str()), time])
            .collect())
    }
}
