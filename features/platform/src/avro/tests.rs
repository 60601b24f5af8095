use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::*;
use crate::registry::store::SchemaStore;
use crate::topic::local::{LocalLog, LocalLogConfig};

const EVENT_V1: &str = r#"{
  "type": "record", "name": "Event", "namespace": "eddy.test",
  "fields": [
    {"name": "user_id", "type": "long"},
    {"name": "score", "type": "double"},
    {"name": "name", "type": "string"},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "counts", "type": {"type": "map", "values": "int"}},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["VIEW", "CLICK", "BUY"]}},
    {"name": "raw", "type": "bytes"},
    {"name": "ok", "type": "boolean"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
  ]
}"#;

/// v1 plus a field with a default: a BACKWARD-compatible change.
fn event_v2() -> String {
    let mut v2: Json = serde_json::from_str(EVENT_V1).unwrap();
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "country", "type": "string", "default": "unknown"}));
    v2.to_string()
}

fn codec() -> (tempfile::TempDir, AvroCodec) {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
    let store = SchemaStore::open(Arc::new(log), "_schemas").unwrap();
    (dir, AvroCodec::new(Arc::new(store)))
}

fn arb_event() -> impl Strategy<Value = Json> {
    (
        any::<i64>(),
        -1e12f64..1e12,
        "\\PC{0,12}",
        proptest::option::of("[a-z ]{0,10}"),
        proptest::collection::vec("[a-z]{1,6}", 0..4),
        proptest::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..3),
        0usize..3,
        proptest::collection::vec(any::<u8>(), 0..8),
        any::<bool>(),
        0i64..4_000_000_000_000,
    )
        .prop_map(|(user_id, score, name, note, tags, counts, kind, raw, ok, at)| {
            let kind = ["VIEW", "CLICK", "BUY"][kind];
            json!({
                "user_id": user_id, "score": score, "name": name, "note": note, "tags": tags,
                "counts": counts, "kind": kind,
                "raw": raw.iter().map(|b| char::from(*b)).collect::<String>(), "ok": ok, "at": at,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// JSON -> Avro -> Confluent frame -> Avro -> JSON is the identity.
    #[test]
    fn json_avro_round_trip(event in arb_event()) {
        let (_dir, codec) = codec();
        let encoder = codec.encoder("events-value", EVENT_V1).unwrap();
        let bytes = encoder.encode_json(&event).unwrap();
        prop_assert_eq!(bytes[0], MAGIC_BYTE);
        prop_assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), encoder.schema_id());
        let decoded = codec.decode(&bytes).unwrap();
        prop_assert_eq!(avro_to_json(&decoded.value), event);
    }

    /// Differential: the cached encoder and decoders (with and without a
    /// reader schema) give exactly what the plain, build-every-time
    /// `encode_body` / `decode_body` give.
    #[test]
    fn cached_codec_matches_the_plain_reference(event in arb_event()) {
        let (_dir, codec) = codec();
        let v1 = codec.encoder("events-value", EVENT_V1).unwrap();
        let value = json_to_avro(&event, v1.schema()).unwrap();
        let framed = v1.encode(&value).unwrap();
        prop_assert_eq!(&framed[HEADER_LEN..], &encode_body(v1.schema(), &value).unwrap()[..]);

        let plain = decode_body(v1.schema(), None, &framed[HEADER_LEN..]).unwrap();
        prop_assert_eq!(&codec.decode(&framed).unwrap().value, &plain);

        let v2 = parse_schema(&event_v2()).unwrap();
        let resolved = decode_body(v1.schema(), Some(&v2), &framed[HEADER_LEN..]).unwrap();
        let evolved = AvroCodec::with_reader_schema(codec.registry().clone(), v2);
        // Twice: the second decode goes through the cached decoder.
        prop_assert_eq!(&evolved.decode(&framed).unwrap().value, &resolved);
        prop_assert_eq!(&evolved.decode(&framed).unwrap().value, &resolved);
    }

    /// Any cut of a valid record fails to decode: a truncated record is an
    /// error, never a wrong value.
    #[test]
    fn truncated_records_are_errors(event in arb_event(), cut in any::<prop::sample::Index>()) {
        let (_dir, codec) = codec();
        let bytes = codec.encoder("events-value", EVENT_V1).unwrap().encode_json(&event).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(codec.decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn old_records_resolve_to_the_new_reader_schema() {
    let (_dir, codec) = codec();
    let v1 = codec.encoder("events-value", EVENT_V1).unwrap();
    let v2 = codec.encoder("events-value", &event_v2()).unwrap();
    assert_ne!(v1.schema_id(), v2.schema_id());
    let event = json!({"user_id": 7, "score": 1.5, "name": "a", "note": null, "tags": [], "counts": {},
        "kind": "BUY", "raw": "", "ok": true, "at": 1});
    let old = v1.encode_json(&event).unwrap();
    let evolved = AvroCodec::with_reader_schema(codec.registry().clone(), v2.schema().clone());
    let decoded = evolved.decode(&old).unwrap();
    assert_eq!(decoded.schema_id, v1.schema_id());
    assert_eq!(avro_to_json(&decoded.value)["country"], json!("unknown"));
}

#[test]
fn bad_frames_are_named_precisely() {
    let (_dir, codec) = codec();
    let encoder = codec.encoder("events-value", EVENT_V1).unwrap();
    assert!(matches!(
        codec.decode(b"{\"json\":1}"),
        Err(AvroError::BadMagic { found: b'{' })
    ));
    assert!(matches!(
        codec.decode(&[0, 0, 0]),
        Err(AvroError::TooShort { len: 3 })
    ));
    assert!(matches!(
        codec.decode(&frame(9999, &[2, 4])),
        Err(AvroError::UnknownSchemaId { id: 9999 })
    ));
    let err = codec
        .decode(&frame(encoder.schema_id(), &[0x80]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::Truncated {
                schema_id: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_bad_record());
}

#[test]
fn json_that_does_not_fit_names_the_field() {
    let schema = parse_schema(EVENT_V1).unwrap();
    let err = json_to_avro(&json!({"user_id": "seven"}), &schema).unwrap_err();
    assert_eq!(err.path, "$.user_id");
    let err = json_to_avro(
        &json!({"user_id": 1, "score": 1, "name": "n", "tags": [], "counts": {}, "kind": "NOPE", "raw": "", "ok": true, "at": 0}),
        &schema,
    )
    .unwrap_err();
    assert_eq!(err.path, "$.kind");
    let err = json_to_avro(&json!({"user_id": 1, "typo": 2}), &schema).unwrap_err();
    assert!(err.reason.contains("no field `typo`"), "{err}");
}

#[test]
fn unions_accept_plain_and_avro_json_encodings() {
    let schema = parse_schema(r#"["null", "long", "string"]"#).unwrap();
    assert_eq!(
        json_to_avro(&json!(null), &schema).unwrap(),
        Value::Union(0, Box::new(Value::Null))
    );
    assert_eq!(
        json_to_avro(&json!(5), &schema).unwrap(),
        Value::Union(1, Box::new(Value::Long(5)))
    );
    assert_eq!(
        json_to_avro(&json!({"string": "x"}), &schema).unwrap(),
        Value::Union(2, Box::new(Value::String("x".into())))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Regression: a double written as JSON text (`eddy topics produce`)
    /// reached its topic one unit in the last place off for some values
    /// (serde_json's fast float parser; 11/28 = 0.39285714285714285 read
    /// as 0.3928571428571429): the record held another number than the
    /// line. Every double's shortest text now reads back as itself.
    #[test]
    fn a_double_written_as_json_text_is_read_back_exactly(x in proptest::num::f64::NORMAL) {
        let schema = parse_schema(r#"{"type": "record", "name": "D", "fields": [{"name": "x", "type": "double"}]}"#).unwrap();
        let line = format!("{{\"x\": {}}}", serde_json::to_string(&x).unwrap());
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        let value = json_to_avro(&json, &schema).unwrap();
        let apache_avro::types::Value::Record(fields) = value else { panic!("{value:?}") };
        let apache_avro::types::Value::Double(got) = fields[0].1 else { panic!("{fields:?}") };
        prop_assert_eq!(got.to_bits(), x.to_bits(), "{}", line);
    }
}

#[test]
fn eleven_twenty_eighths_survives_json_text() {
    let back: serde_json::Value = serde_json::from_str("0.39285714285714285").unwrap();
    assert_eq!(back.as_f64().unwrap(), 11.0 / 28.0);
}
