//! What goes on the recommendations topic, and what requests look like.

use apache_avro::types::Value;

use eddy_features::avro::{AvroCodec, AvroError, Encoder};
use eddy_features::topic::Header;

use crate::engine::Recommendation;

/// The value schema of the recommendations topic.
pub const RECOMMENDATION_SCHEMA: &str = r#"{
  "type": "record",
  "name": "Recommendation",
  "namespace": "eddy.serving",
  "doc": "Ranked items for one user, emitted by eddy serve for one trigger event or request.",
  "fields": [
    {"name": "request_id", "type": "string", "doc": "The request's id, or <topic>/<partition>/<offset> of the triggering event."},
    {"name": "user_id", "type": "string", "doc": "The user (the sources' key), as text."},
    {"name": "items", "doc": "Best first.", "type": {"type": "array", "items": {
      "type": "record", "name": "RankedItem", "fields": [
        {"name": "item", "type": "string", "doc": "The item id, as text."},
        {"name": "score", "type": "double", "doc": "The learned order's probability that the user engages with the item next; with learned_order false, the ranker's probability, or the proposing recommender's score without one."},
        {"name": "source", "type": "string", "doc": "The recommender that proposed the item, or `explore`."}
      ]}}},
    {"name": "model_version", "type": "string", "doc": "name@version of every model used, comma-separated."},
    {"name": "features_as_of", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null,
     "doc": "When the user's features were valid (null: no features were read)."},
    {"name": "trigger_event_time", "type": {"type": "long", "logicalType": "timestamp-millis"},
     "doc": "Event time of the trigger (for a request: the latest event time serving had seen)."},
    {"name": "emitted_at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "Wall-clock time of emission."},
    {"name": "as_of_trigger", "type": ["null", "boolean"], "default": null,
     "doc": "true: every feature and model used was as of the trigger (nothing at or after a trigger event's time had counted). false: serving's state had run ahead of the trigger (a replay): do not score this recommendation offline as if it had been made live. null: written by an eddy that did not say."},
    {"name": "fewer_items_because", "type": ["null", "string"], "default": null,
     "doc": "Why `items` holds fewer than the k asked for (null: it does not)."}
  ]
}"#;

/// Encodes recommendations with the registered schema.
pub struct RecommendationEncoder {
    encoder: Encoder,
}

impl RecommendationEncoder {
    /// Registers the schema as `<topic>-value`.
    pub fn register(codec: &AvroCodec, topic: &str) -> Result<Self, AvroError> {
        Ok(RecommendationEncoder {
            encoder: codec.encoder(
                &eddy_features::registry::value_subject(topic),
                RECOMMENDATION_SCHEMA,
            )?,
        })
    }

    /// The framed Avro value.
    pub fn encode(&self, r: &Recommendation, emitted_at: i64) -> Result<Vec<u8>, AvroError> {
        let items = r
            .items
            .iter()
            .map(|i| {
                Value::Record(vec![
                    ("item".into(), Value::String(i.item.clone())),
                    ("score".into(), Value::Double(i.score)),
                    ("source".into(), Value::String(i.source.clone())),
                ])
            })
            .collect();
        self.encoder.encode(&Value::Record(vec![
            ("request_id".into(), Value::String(r.request_id.clone())),
            ("user_id".into(), Value::String(r.user_id.clone())),
            ("items".into(), Value::Array(items)),
            (
                "model_version".into(),
                Value::String(r.model_version.clone()),
            ),
            (
                "features_as_of".into(),
                match r.features_as_of {
                    Some(t) => Value::Union(1, Box::new(Value::TimestampMillis(t))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            (
                "trigger_event_time".into(),
                Value::TimestampMillis(r.trigger_event_time),
            ),
            ("emitted_at".into(), Value::TimestampMillis(emitted_at)),
            (
                "as_of_trigger".into(),
                Value::Union(1, Box::new(Value::Boolean(r.as_of_trigger))),
            ),
            (
                "fewer_items_because".into(),
                match &r.fewer_because {
                    Some(why) => Value::Union(1, Box::new(Value::String(why.clone()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
        ]))
    }
}

/// Lineage headers: where the recommendation came from.
pub fn lineage(r: &Recommendation, trigger: &str) -> Vec<Header> {
    let h = |k: &str, v: String| Header {
        key: k.to_string(),
        value: Some(v.into_bytes()),
    };
    let mut out = vec![
        h("eddy.lineage.trigger", trigger.to_string()),
        h("eddy.lineage.model_version", r.model_version.clone()),
        h(
            "eddy.lineage.trigger_event_time",
            r.trigger_event_time.to_string(),
        ),
    ];
    if let Some(t) = r.features_as_of {
        out.push(h("eddy.lineage.features_as_of", t.to_string()));
    }
    out.push(h("eddy.lineage.as_of_trigger", r.as_of_trigger.to_string()));
    out
}

/// An explicit request, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFields {
    /// The request's id.
    pub request_id: String,
    /// The user, as text.
    pub user_id: String,
    /// How many items, if the request says.
    pub k: Option<usize>,
}

/// Reads a request record's fields; Err is why it is not a request (it
/// goes to the dead-letter topic with that reason).
pub fn request_fields(value: &Value) -> Result<RequestFields, String> {
    let Value::Record(fields) = value else {
        return Err("a request is an Avro record with request_id, user_id and optional k".into());
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| match v {
                Value::Union(_, inner) => inner.as_ref().clone(),
                other => other.clone(),
            })
    };
    let text = |name: &str| -> Result<String, String> {
        match get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(Value::Long(v)) => Ok(v.to_string()),
            Some(Value::Int(v)) => Ok(v.to_string()),
            Some(Value::Null) | None => Err(format!("the request has no `{name}`")),
            Some(Value::String(_)) => Err(format!("`{name}` is empty")),
            Some(other) => Err(format!("`{name}` is {other:?}; use a string or a long")),
        }
    };
    let k = match get("k") {
        None | Some(Value::Null) => None,
        Some(Value::Int(k)) if k > 0 => Some(k as usize),
        Some(Value::Long(k)) if k > 0 => Some(k as usize),
        Some(other) => return Err(format!("`k` is {other:?}; use a positive int")),
    };
    Ok(RequestFields {
        request_id: text("request_id")?,
        user_id: text("user_id")?,
        k,
    })
}
