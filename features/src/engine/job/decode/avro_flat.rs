//! The fast path for source records: Avro binary read straight into
//! scalars, without building `apache_avro::types::Value` trees (which
//! allocate a string per field name per record) and without schema
//! resolution. It applies when the writer's schema is the reader's (the
//! common case: producers and the pipeline use the latest schema) and every
//! field has a type it knows; anything else goes through `apache_avro`,
//! which is also the reference a property test compares this path with.

use std::sync::Arc;

use apache_avro::Schema;

use crate::engine::value::Scalar;

/// How to read one field.
#[derive(Debug, Clone)]
enum Kind {
    Null,
    Boolean,
    /// int, long and their logical types.
    Long,
    Float,
    Double,
    String,
    Bytes,
    Enum(Arc<[Arc<str>]>),
    Array(Box<Kind>),
    Union(Vec<Kind>),
}

fn kind(schema: &Schema) -> Option<Kind> {
    Some(match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int
        | Schema::Long
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::String => Kind::String,
        Schema::Bytes => Kind::Bytes,
        Schema::Enum(e) => Kind::Enum(e.symbols.iter().map(|s| Arc::from(s.as_str())).collect()),
        Schema::Array(a) => Kind::Array(Box::new(kind(&a.items)?)),
        Schema::Union(u) => Kind::Union(u.variants().iter().map(kind).collect::<Option<_>>()?),
        _ => return None,
    })
}

/// A record layout the fast path can read: one kind per field, and where
/// each field goes (None: skipped).
#[derive(Debug)]
pub struct FlatLayout {
    fields: Vec<(Kind, Option<usize>)>,
    width: usize,
}

impl FlatLayout {
    /// The layout of `schema`, keeping the fields at `positions` (in that
    /// order); None if some field has a type the fast path does not read.
    pub fn new(schema: &Schema, positions: &[usize]) -> Option<FlatLayout> {
        let Schema::Record(record) = schema else {
            return None;
        };
        let fields = record
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| Some((kind(&f.schema)?, positions.iter().position(|p| *p == i))))
            .collect::<Option<Vec<_>>>()?;
        Some(FlatLayout {
            fields,
            width: positions.len(),
        })
    }

    /// Reads a record body; None if the bytes are not a valid record.
    pub fn decode(&self, body: &[u8]) -> Option<Box<[Scalar]>> {
        let mut out = vec![Scalar::Null; self.width];
        let mut r = Reader { buf: body, pos: 0 };
        for (kind, target) in &self.fields {
            let v = r.value(kind, target.is_some())?;
            if let Some(t) = target {
                out[*t] = v;
            }
        }
        (r.pos == body.len()).then(|| out.into_boxed_slice())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Option<i64> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    /// Reads one value; builds it only if `keep` (skipped fields are read
    /// but not allocated).
    fn value(&mut self, kind: &Kind, keep: bool) -> Option<Scalar> {
        Some(match kind {
            Kind::Null => Scalar::Null,
            Kind::Boolean => match *self.take(1)?.first()? {
                0 => Scalar::Bool(false),
                1 => Scalar::Bool(true),
                _ => return None,
            },
            Kind::Long => Scalar::Long(self.varint()?),
            Kind::Float => {
                Scalar::Double(f32::from_le_bytes(self.take(4)?.try_into().ok()?) as f64)
            }
            Kind::Double => Scalar::Double(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            Kind::String => {
                let n = self.len()?;
                let bytes = self.take(n)?;
                let text = std::str::from_utf8(bytes).ok()?;
                if keep {
                    Scalar::Str(Arc::from(text))
                } else {
                    Scalar::Null
                }
            }
            Kind::Bytes => {
                let n = self.len()?;
                self.take(n)?;
                Scalar::Null
            }
            Kind::Enum(symbols) => {
                let i = self.len()?;
                Scalar::Str(symbols.get(i)?.clone())
            }
            Kind::Array(item) => {
                let mut items = Vec::new();
                loop {
                    let mut count = self.varint()?;
                    if count == 0 {
                        break;
                    }
                    if count < 0 {
                        // A negative count is followed by the block's size.
                        count = count.checked_neg()?;
                        self.varint()?;
                    }
                    for _ in 0..count {
                        items.push(self.value(item, keep)?);
                    }
                }
                if keep {
                    Scalar::List(items.into())
                } else {
                    Scalar::Null
                }
            }
            Kind::Union(branches) => {
                let i = self.len()?;
                self.value(branches.get(i)?, keep)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use proptest::prelude::*;

    use super::*;
    use crate::engine::job::decode::to_scalar;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[
      {"name":"a","type":"long"},
      {"name":"b","type":["null","double"]},
      {"name":"skip","type":"string"},
      {"name":"c","type":"string"},
      {"name":"d","type":{"type":"array","items":"string"}},
      {"name":"e","type":"boolean"},
      {"name":"f","type":{"type":"enum","name":"E","symbols":["x","y","z"]}},
      {"name":"g","type":"float"},
      {"name":"h","type":["null","int","string"]},
      {"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},
      {"name":"raw","type":"bytes"}
    ]}"#;

    proptest! {
        /// The fast decoder reads what apache_avro reads, and refuses
        /// what it cannot read rather than guessing.
        #[test]
        fn the_fast_record_decoder_reads_what_apache_avro_reads(
            a in any::<i64>(),
            b in prop::option::of(any::<f64>().prop_filter("comparable", |x| !x.is_nan())),
            skip in ".{0,8}",
            c in "[a-zé😀]{0,8}",
            d in prop::collection::vec("[a-z]{0,4}", 0..5),
            e in any::<bool>(),
            f in 0usize..3,
            g in any::<f32>().prop_filter("comparable", |x| !x.is_nan()),
            h in 0u8..3,
            hi in any::<i32>(),
            t in any::<i64>(),
            raw in prop::collection::vec(any::<u8>(), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let schema = Schema::parse_str(SCHEMA).unwrap();
            let h = match h {
                0 => Value::Union(0, Box::new(Value::Null)),
                1 => Value::Union(1, Box::new(Value::Int(hi))),
                _ => Value::Union(2, Box::new(Value::String(c.clone()))),
            };
            let value = Value::Record(vec![
                ("a".into(), Value::Long(a)),
                ("b".into(), match b { Some(x) => Value::Union(1, Box::new(Value::Double(x))), None => Value::Union(0, Box::new(Value::Null)) }),
                ("skip".into(), Value::String(skip)),
                ("c".into(), Value::String(c)),
                ("d".into(), Value::Array(d.into_iter().map(Value::String).collect())),
                ("e".into(), Value::Boolean(e)),
                ("f".into(), Value::Enum(f as u32, ["x", "y", "z"][f].into())),
                ("g".into(), Value::Float(g)),
                ("h".into(), h),
                ("t".into(), Value::TimestampMillis(t)),
                ("raw".into(), Value::Bytes(raw)),
            ]);
            let body = crate::avro::encode_body(&schema, &value).unwrap();
            let keep = [0, 1, 3, 4, 5, 6, 7, 8, 9];
            let layout = FlatLayout::new(&schema, &keep).unwrap();
            let fast = layout.decode(&body).unwrap();
            let Value::Record(fields) = crate::avro::decode_body(&schema, None, &body).unwrap() else {
                unreachable!()
            };
            let reference: Vec<Scalar> = keep.iter().map(|i| to_scalar(&fields[*i].1)).collect();
            prop_assert_eq!(fast.to_vec(), reference);
            // A cut record is refused, never misread.
            let n = cut.index(body.len().max(1));
            if n < body.len() {
                prop_assert!(layout.decode(&body[..n]).is_none());
            }
        }
    }
}
