//! The fast path for feature records: Avro binary written directly from
//! scalars, without building `apache_avro::types::Value` trees (which
//! allocate a string per field name per row). The schema is fixed by
//! [`super::output::feature_schema`], so the layout is known: the key, then
//! `as_of`, then each feature as a plain value, a `["null", T]` union or an
//! array. The `apache_avro` path ([`super::output::RowEncoder::encode_reference`])
//! stays as the reference a property test compares this one with.

use super::output::OutType;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::super::output::RowEncoder;
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
