//! The fast path for feature records: Avro binary written directly from
//! scalars, without building `apache_avro::types::Value` trees (which
//! allocate a string per field name per row). The schema is fixed by
//! [`super::output::feature_schema`], so the layout is known: the key, then
//! `as_of`, then each feature as a plain value, a `["null", T]` union or an
//! array. The `apache_avro` path ([`super::output::RowEncoder::encode_reference`])
//! stays as the reference a property test compares this one with.

use super::out_type::OutType;
use crate::engine::value::Scalar;
use crate::spec::ColumnType;

fn long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

fn plain(out: &mut Vec<u8>, v: &Scalar, t: &ColumnType) {
    match t {
        ColumnType::Long => long(
            out,
            match v {
                Scalar::Long(x) => *x,
                Scalar::Double(x) => *x as i64,
                _ => 0,
            },
        ),
        ColumnType::Double => out.extend_from_slice(&v.as_f64().unwrap_or(0.0).to_le_bytes()),
        ColumnType::Boolean => out.push(u8::from(matches!(v, Scalar::Bool(true)))),
        ColumnType::String => {
            let text = match v {
                Scalar::Str(s) => s.as_ref(),
                _ => "",
            };
            long(out, text.len() as i64);
            out.extend_from_slice(text.as_bytes());
        }
        ColumnType::List(inner) => array(out, v, inner),
    }
}

fn array(out: &mut Vec<u8>, v: &Scalar, item: &ColumnType) {
    if let Scalar::List(items) = v
        && !items.is_empty()
    {
        long(out, items.len() as i64);
        for i in items.iter() {
            plain(out, i, item);
        }
    }
    long(out, 0);
}

/// Appends one value of output type `t`.
pub fn value(out: &mut Vec<u8>, v: &Scalar, t: &OutType) {
    match t {
        OutType::Plain(t) => plain(out, v, t),
        OutType::Nullable(_) if v.is_null() => long(out, 0),
        OutType::Nullable(t) => {
            long(out, 1);
            plain(out, v, t);
        }
        OutType::Array(t) => array(out, v, t),
    }
}

/// Appends a whole feature record body.
pub fn record(
    out: &mut Vec<u8>,
    key: &Scalar,
    key_type: &ColumnType,
    as_of: i64,
    values: &[Scalar],
    types: &[OutType],
) {
    plain(out, key, key_type);
    long(out, as_of);
    for (v, t) in values.iter().zip(types) {
        value(out, v, t);
    }
}
