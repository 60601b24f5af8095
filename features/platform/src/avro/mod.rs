//! Avro in the Confluent wire format, with schema resolution.
//!
//! A framed record is `0x00 | schema id (u32, big-endian) | Avro binary body`.
//! The id names the *writer's* schema in a registry. A consumer decodes with
//! the writer's schema and resolves the result against the *reader's* schema
//! it expects (Avro schema resolution: added fields take their defaults,
//! removed ones are skipped, ints widen to longs...). That is how a pipeline
//! keeps reading while producers evolve their schemas.
//!
//! Writer schemas are fetched once per id and cached: ids are immutable.

mod cache;
pub mod json;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::registry::{RegistryError, SchemaRegistry};
use crate::topic::Blame;

pub use json::{JsonError, avro_to_json, json_to_avro};

/// The first byte of a Confluent-framed record.
pub const MAGIC_BYTE: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Frames an Avro body with its schema id.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a framed record into schema id and body.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), AvroError> {
    match bytes.first() {
        None => Err(AvroError::TooShort { len: 0 }),
        Some(&b) if b != MAGIC_BYTE => Err(AvroError::BadMagic { found: b }),
        Some(_) if bytes.len() < HEADER_LEN => Err(AvroError::TooShort { len: bytes.len() }),
        Some(_) => {
            let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
            Ok((id, &bytes[HEADER_LEN..]))
        }
    }
}

/// True when `bytes` look like a Confluent-framed record.
pub fn looks_framed(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[0] == MAGIC_BYTE
}

/// Encodes `value` (already shaped to `schema`) as an Avro body.
pub fn encode_body(schema: &Schema, value: &Value) -> Result<Vec<u8>, AvroError> {
    let writer = GenericDatumWriter::builder(schema)
        .build()
        .map_err(|e| AvroError::Encode(e.to_string()))?;
    let mut out = Vec::new();
    writer
        .write_value_ref(&mut out, value)
        .map_err(|e| AvroError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes an Avro body written with `writer`, resolved to `reader` if given.
pub fn decode_body(
    writer: &Schema,
    reader: Option<&Schema>,
    body: &[u8],
) -> Result<Value, AvroError> {
    let datum = GenericDatumReader::builder(writer)
        .maybe_reader_schema(reader)
        .build()
        .map_err(|e| AvroError::Resolution(e.to_string()))?;
    read_whole(&datum, body)
}

/// Reads one value that must use all of `body`.
pub(crate) fn read_whole(datum: &GenericDatumReader<'_>, body: &[u8]) -> Result<Value, AvroError> {
    let mut cursor = body;
    let value = datum
        .read_value(&mut cursor)
        .map_err(|e| AvroError::InvalidBody(e.to_string()))?;
    if !cursor.is_empty() {
        return Err(AvroError::InvalidBody(format!(
            "{} bytes left over after the record",
            cursor.len()
        )));
    }
    Ok(value)
}

/// Parses an Avro schema from JSON text.
pub fn parse_schema(text: &str) -> Result<Schema, AvroError> {
    Schema::parse_str(text).map_err(|e| AvroError::InvalidSchema(e.to_string()))
}

/// Encodes and decodes framed records through a registry.
///
/// A codec may be bound to a *reader schema* ([`AvroCodec::with_reader_schema`]):
/// every value it decodes is then resolved to that schema, whatever schema
/// wrote it. Decoders are built once per writer schema id and cached (ids are
/// immutable), which halves the cost of a decode compared with building the
/// resolution for every record.
pub struct AvroCodec {
    registry: Arc<dyn SchemaRegistry>,
    reader: Option<Arc<Schema>>,
    decoders: RwLock<HashMap<u32, Arc<cache::CachedDecoder>>>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The writer's schema id.
    pub schema_id: u32,
    /// The value (resolved to the reader schema, if the codec has one).
    pub value: Value,
}

impl AvroCodec {
    /// A codec over `registry` that decodes values as their writers wrote them.
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        AvroCodec {
            registry,
            reader: None,
            decoders: RwLock::new(HashMap::new()),
        }
    }

    /// A codec that resolves every decoded value to `reader`.
    pub fn with_reader_schema(registry: Arc<dyn SchemaRegistry>, reader: Schema) -> Self {
        AvroCodec {
            registry,
            reader: Some(Arc::new(reader)),
            decoders: RwLock::new(HashMap::new()),
        }
    }

    /// The registry behind this codec.
    pub fn registry(&self) -> &Arc<dyn SchemaRegistry> {
        &self.registry
    }

    /// Registers `schema_text` under `subject` and returns an encoder for it.
    pub fn encoder(&self, subject: &str, schema_text: &str) -> Result<Encoder, AvroError> {
        let schema = Arc::new(parse_schema(schema_text)?);
        let id = self
            .registry
            .register(subject, schema_text)
            .map_err(AvroError::Registry)?;
        Ok(Encoder {
            id,
            cached: Arc::new(cache::CachedEncoder::build(schema)?),
        })
    }

    /// The writer schema with this id.
    pub fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, AvroError> {
        Ok(self.decoder(id)?.writer().clone())
    }

    fn decoder(&self, id: u32) -> Result<Arc<cache::CachedDecoder>, AvroError> {
        if let Some(d) = self.decoders.read().expect("poisoned").get(&id) {
            return Ok(d.clone());
        }
        let text = self.registry.schema_by_id(id).map_err(|e| match e {
            RegistryError::SchemaNotFound(_) => AvroError::UnknownSchemaId { id },
            other => AvroError::Registry(other),
        })?;
        let writer = Arc::new(parse_schema(&text)?);
        let decoder = Arc::new(cache::CachedDecoder::build(writer, self.reader.clone())?);
        self.decoders
            .write()
            .expect("poisoned")
            .insert(id, decoder.clone());
        Ok(decoder)
    }

    /// Decodes a framed record (resolved to the codec's reader schema, if any).
    pub fn decode(&self, bytes: &[u8]) -> Result<Decoded, AvroError> {
        let (schema_id, body) = unframe(bytes)?;
        let value = self
            .decoder(schema_id)?
            .decode(body)
            .map_err(|e| e.with_schema_id(schema_id))?;
        Ok(Decoded { schema_id, value })
    }
}

/// Encodes values of one registered schema.
#[derive(Clone)]
pub struct Encoder {
    id: u32,
    cached: Arc<cache::CachedEncoder>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// The registered schema id.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        self.cached.schema()
    }

    /// Encodes an Avro value as a framed record.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(64);
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&self.id.to_be_bytes());
        self.cached.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Converts JSON to the schema, then encodes it.
    pub fn encode_json(&self, json: &serde_json::Value) -> Result<Vec<u8>, AvroError> {
        let value = json_to_avro(json, self.schema()).map_err(AvroError::Json)?;
        self.encode(&value)
    }
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// Not Confluent-framed.
    #[error(
        "wrong magic byte {found:#04x}: the record is not in the Confluent Avro wire format (expected 0x00)"
    )]
    BadMagic {
        /// The first byte.
        found: u8,
    },
    /// Shorter than the 5-byte header.
    #[error("record of {len} bytes is too short for the Confluent wire format (5-byte header)")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// The registry does not know the id.
    #[error(
        "schema id {id} is unknown to the schema registry: was the record produced against another registry?"
    )]
    UnknownSchemaId {
        /// The id.
        id: u32,
    },
    /// The body does not decode with the writer's schema (truncated or garbage).
    #[error("Avro body does not decode{}: {reason}", .schema_id.map(|id| format!(" with schema id {id}")).unwrap_or_default())]
    Truncated {
        /// Writer schema id, when known.
        schema_id: Option<u32>,
        /// What the decoder said.
        reason: String,
    },
    /// Same as `Truncated` before the schema id is attached.
    #[error("Avro body does not decode: {0}")]
    InvalidBody(String),
    /// Writer and reader schemas do not resolve.
    #[error("writer and reader schemas do not resolve: {0}")]
    Resolution(String),
    /// JSON input does not match the schema.
    #[error("JSON does not match the schema {0}")]
    Json(#[source] JsonError),
    /// A value could not be encoded.
    #[error("value does not encode with the schema: {0}")]
    Encode(String),
    /// The schema text is not a valid Avro schema.
    #[error("invalid Avro schema: {0}")]
    InvalidSchema(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(RegistryError),
}

impl AvroError {
    fn with_schema_id(self, id: u32) -> Self {
        match self {
            AvroError::InvalidBody(reason) => AvroError::Truncated {
                schema_id: Some(id),
                reason,
            },
            other => other,
        }
    }

    /// True when the record itself is bad (dead-letter it, keep going), as
    /// opposed to a failing registry or a wrong configuration.
    pub fn is_bad_record(&self) -> bool {
        matches!(
            self,
            AvroError::BadMagic { .. }
                | AvroError::TooShort { .. }
                | AvroError::UnknownSchemaId { .. }
                | AvroError::Truncated { .. }
                | AvroError::InvalidBody(_)
                | AvroError::Json(_)
                | AvroError::Encode(_)
        )
    }

    /// Who has to act.
    pub fn blame(&self) -> Blame {
        match self {
            AvroError::Registry(e) => e.blame(),
            _ => Blame::User,
        }
    }
}

#[cfg(test)]
mod tests;
