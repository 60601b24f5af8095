//! The Confluent Avro wire format: a magic byte, the writer's schema id
//! and the Avro body, read as the schema the spec was validated against
//! (schema resolution through `apache_avro`), with a fast path when the
//! writer's schema is the reader's (`avro_flat.rs`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::types::Value;

use super::Format;
use super::avro_flat::FlatLayout;
use crate::avro::AvroCodec;
use crate::engine::value::Scalar;
use crate::registry::SchemaRegistry;
use crate::spec::Columns;

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

/// Avro records of one topic, read as one reader schema.
pub struct AvroFormat {
    codec: AvroCodec,
    /// The reader schema's canonical form, to recognise writers that used it.
    reader_form: String,
    reader_layout: Option<Arc<FlatLayout>>,
    /// Per writer schema id: the fast-path layout, if that writer is the
    /// reader (see `avro_flat`).
    fast: RwLock<HashMap<u32, Option<Arc<FlatLayout>>>>,
    /// Positions in the reader schema of the wanted columns.
    positions: Vec<usize>,
}

impl AvroFormat {
    /// Reads `columns` (fields of the record schema `schema`, validated)
    /// from records written with any schema the registry resolves to it.
    pub fn new(registry: Arc<dyn SchemaRegistry>, schema: Schema, columns: &Columns) -> AvroFormat {
        let Schema::Record(record) = &schema else {
            unreachable!("validated: the schema is a record")
        };
        let positions: Vec<usize> = super::field_positions(record, columns.keys());
        AvroFormat {
            reader_form: schema.canonical_form(),
            reader_layout: FlatLayout::new(&schema, &positions).map(Arc::new),
            fast: RwLock::new(HashMap::new()),
            positions,
            codec: AvroCodec::with_reader_schema(registry, schema),
        }
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
}

impl Format for AvroFormat {
    fn columns(&self, bytes: &[u8]) -> Result<Box<[Scalar]>, String> {
        if let Some(columns) = self.fast_decode(bytes) {
            return Ok(columns);
        }
        let decoded = self.codec.decode(bytes).map_err(|e| e.to_string())?;
        let Value::Record(fields) = decoded.value else {
            return Err("the value is not an Avro record".into());
        };
        Ok(self
            .positions
            .iter()
            .map(|p| to_scalar(&fields[*p].1))
            .collect())
    }
}
