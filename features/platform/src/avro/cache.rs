//! Avro readers and writers built once and kept.
//!
//! apache-avro's `GenericDatumReader` and `GenericDatumWriter` borrow the
//! schemas they were built from, and building one (resolving named types,
//! matching writer to reader) costs as much as decoding a small record. We
//! keep each one next to the schemas it borrows with `ouroboros` (the
//! self-referencing helper apache-avro itself depends on), so the cost is
//! paid once per schema id instead of once per record.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use ouroboros::self_referencing;

use super::AvroError;

/// A decoder for one writer schema, resolving to an optional reader schema.
#[self_referencing]
pub(crate) struct CachedDecoder {
    writer: Arc<Schema>,
    reader: Option<Arc<Schema>>,
    #[borrows(writer, reader)]
    #[covariant]
    datum: GenericDatumReader<'this>,
}

impl CachedDecoder {
    pub(crate) fn build(
        writer: Arc<Schema>,
        reader: Option<Arc<Schema>>,
    ) -> Result<Self, AvroError> {
        CachedDecoderTryBuilder {
            writer,
            reader,
            datum_builder: |w: &Arc<Schema>, r: &Option<Arc<Schema>>| {
                GenericDatumReader::builder(w)
                    .maybe_reader_schema(r.as_deref())
                    .build()
                    .map_err(|e| AvroError::Resolution(e.to_string()))
            },
        }
        .try_build()
    }

    /// The writer schema.
    pub(crate) fn writer(&self) -> &Arc<Schema> {
        self.borrow_writer()
    }

    /// Decodes one Avro body; trailing bytes are an error.
    pub(crate) fn decode(&self, body: &[u8]) -> Result<Value, AvroError> {
        super::read_whole(self.borrow_datum(), body)
    }
}

/// An encoder for one schema.
#[self_referencing]
pub(crate) struct CachedEncoder {
    schema: Arc<Schema>,
    #[borrows(schema)]
    #[covariant]
    datum: GenericDatumWriter<'this>,
}

impl CachedEncoder {
    pub(crate) fn build(schema: Arc<Schema>) -> Result<Self, AvroError> {
        CachedEncoderTryBuilder {
            schema,
            datum_builder: |s: &Arc<Schema>| {
                GenericDatumWriter::builder(s)
                    .build()
                    .map_err(|e| AvroError::Encode(e.to_string()))
            },
        }
        .try_build()
    }

    pub(crate) fn schema(&self) -> &Schema {
        self.borrow_schema()
    }

    /// Appends the Avro body of `value` to `out`.
    pub(crate) fn encode_into(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), AvroError> {
        self.borrow_datum()
            .write_value_ref(out, value)
            .map(drop)
            .map_err(|e| AvroError::Encode(e.to_string()))
    }
}
