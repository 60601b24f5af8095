//! JSON <-> Avro values, guided by a schema.
//!
//! JSON input is what people type and what `jq` emits, so it is read
//! leniently where that is unambiguous and strictly where it is not:
//! - A union accepts either the plain value (`"x"`, `null`, `3`) or Avro's
//!   JSON encoding with the branch named (`{"string": "x"}`). A plain value
//!   takes the first branch it fits.
//! - A missing record field takes the schema's default; a missing field
//!   without a default, and a field the schema does not have, are errors
//!   (a typo must not silently become a default).
//! - `bytes`, `fixed` and `decimal` use Avro's JSON encoding: a string whose
//!   characters are the byte values 0-255.
//! - Timestamps, dates and times are the integers Avro stores.
//!
//! JSON output is plain: unions are unwrapped, records keep field order. This
//! is the shape `confluent-kafka`'s AvroDeserializer returns in Python.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, UuidSchema};
use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

/// A JSON value that does not fit the schema, with the path to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at `{path}`: {reason}")]
pub struct JsonError {
    /// Where, like `$.items[2].score`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl JsonError {
    /// Who must act: the JSON is the user's input.
    pub fn blame(&self) -> crate::topic::Blame {
        crate::topic::Blame::User
    }
}

/// Named types of a schema, by full name, to follow `Schema::Ref`.
pub(crate) type Names = HashMap<Name, Schema>;

/// Collects the named types defined in `schema`.
pub(crate) fn collect_names(schema: &Schema, names: &mut Names) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.clone(), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// Converts JSON to an Avro value of `schema`.
pub fn json_to_avro(json: &Json, schema: &Schema) -> Result<Value, JsonError> {
    let mut names = Names::new();
    collect_names(schema, &mut names);
    Converter { names: &names }.convert(json, schema, "$")
}

struct Converter<'a> {
    names: &'a Names,
}

fn err(path: &str, reason: impl Into<String>) -> JsonError {
    JsonError {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

impl Converter<'_> {
    fn convert(&self, json: &Json, schema: &Schema, path: &str) -> Result<Value, JsonError> {
        let expected = |what: &str| err(path, format!("expected {what}, got {}", kind(json)));
        Ok(match schema {
            Schema::Null => match json {
                Json::Null => Value::Null,
                _ => return Err(expected("null")),
            },
            Schema::Boolean => Value::Boolean(json.as_bool().ok_or_else(|| expected("a boolean"))?),
            Schema::Int => Value::Int(self.int(json, path)?),
            Schema::Long => Value::Long(self.long(json, path)?),
            Schema::Float => {
                Value::Float(json.as_f64().ok_or_else(|| expected("a number"))? as f32)
            }
            Schema::Double => Value::Double(json.as_f64().ok_or_else(|| expected("a number"))?),
            Schema::String => Value::String(
                json.as_str()
                    .ok_or_else(|| expected("a string"))?
                    .to_string(),
            ),
            Schema::Bytes => Value::Bytes(latin1(json, path)?),
            Schema::Fixed(f) => {
                let bytes = latin1(json, path)?;
                if bytes.len() != f.size {
                    return Err(err(
                        path,
                        format!(
                            "fixed `{}` needs {} bytes, got {}",
                            f.name,
                            f.size,
                            bytes.len()
                        ),
                    ));
                }
                Value::Fixed(f.size, bytes)
            }
            Schema::Enum(e) => {
                let symbol = json
                    .as_str()
                    .ok_or_else(|| expected("an enum symbol (a string)"))?;
                let index = e.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                    err(
                        path,
                        format!(
                            "`{symbol}` is not a symbol of enum `{}` ({})",
                            e.name,
                            e.symbols.join(", ")
                        ),
                    )
                })?;
                Value::Enum(index as u32, symbol.to_string())
            }
            Schema::Array(a) => {
                let items = json.as_array().ok_or_else(|| expected("an array"))?;
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.convert(item, &a.items, &format!("{path}[{i}]")))
                        .collect::<Result<_, _>>()?,
                )
            }
            Schema::Map(m) => {
                let obj = json
                    .as_object()
                    .ok_or_else(|| expected("an object (an Avro map)"))?;
                Value::Map(
                    obj.iter()
                        .map(|(k, v)| {
                            Ok((
                                k.clone(),
                                self.convert(v, &m.types, &format!("{path}.{k}"))?,
                            ))
                        })
                        .collect::<Result<_, JsonError>>()?,
                )
            }
            Schema::Union(u) => return self.union(json, u.variants(), path),
            Schema::Record(r) => {
                let obj = json
                    .as_object()
                    .ok_or_else(|| expected(&format!("an object (record `{}`)", r.name)))?;
                if let Some(unknown) = obj.keys().find(|k| !r.fields.iter().any(|f| &f.name == *k))
                {
                    return Err(err(
                        path,
                        format!("record `{}` has no field `{unknown}`", r.name),
                    ));
                }
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    let fpath = format!("{path}.{}", f.name);
                    let value = match (obj.get(&f.name), &f.default) {
                        (Some(v), _) => self.convert(v, &f.schema, &fpath)?,
                        (None, Some(default)) => self.default(default, &f.schema, &fpath)?,
                        (None, None) => {
                            return Err(err(&fpath, "missing field (it has no default)"));
                        }
                    };
                    fields.push((f.name.clone(), value));
                }
                Value::Record(fields)
            }
            Schema::Date => Value::Date(self.int(json, path)?),
            Schema::TimeMillis => Value::TimeMillis(self.int(json, path)?),
            Schema::TimeMicros => Value::TimeMicros(self.long(json, path)?),
            Schema::TimestampMillis => Value::TimestampMillis(self.long(json, path)?),
            Schema::TimestampMicros => Value::TimestampMicros(self.long(json, path)?),
            Schema::TimestampNanos => Value::TimestampNanos(self.long(json, path)?),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(self.long(json, path)?),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(self.long(json, path)?),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(self.long(json, path)?),
            Schema::Uuid(inner) => {
                let text = json.as_str().ok_or_else(|| expected("a UUID string"))?;
                let uuid: apache_avro::Uuid = text
                    .parse()
                    .map_err(|e| err(path, format!("not a UUID: {e}")))?;
                match inner {
                    UuidSchema::String | UuidSchema::Bytes | UuidSchema::Fixed(_) => {
                        Value::Uuid(uuid)
                    }
                }
            }
            Schema::Decimal(_) => Value::Decimal(apache_avro::Decimal::from(latin1(json, path)?)),
            Schema::Duration(_) => {
                let bytes = latin1(json, path)?;
                let arr: [u8; 12] = bytes
                    .try_into()
                    .map_err(|_| err(path, "a duration is 12 bytes (Avro JSON encoding)"))?;
                Value::Duration(apache_avro::Duration::from(arr))
            }
            Schema::BigDecimal => {
                return Err(err(path, "big-decimal fields cannot be written from JSON"));
            }
            Schema::Ref { name } => {
                let target = self
                    .names
                    .get(name)
                    .ok_or_else(|| err(path, format!("unknown named type `{name}`")))?;
                return self.convert(json, target, path);
            }
        })
    }

    fn union(&self, json: &Json, variants: &[Schema], path: &str) -> Result<Value, JsonError> {
        // Avro's JSON encoding: {"type name": value}.
        if let Json::Object(obj) = json
            && obj.len() == 1
        {
            let (branch, inner) = obj.iter().next().expect("one entry");
            if let Some(i) = variants
                .iter()
                .position(|v| self.type_name(v).as_deref() == Some(branch.as_str()))
            {
                return Ok(Value::Union(
                    i as u32,
                    Box::new(self.convert(inner, &variants[i], path)?),
                ));
            }
        }
        let mut reasons = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            match self.convert(json, v, path) {
                Ok(value) => return Ok(Value::Union(i as u32, Box::new(value))),
                Err(e) => reasons.push(e.reason),
            }
        }
        Err(err(
            path,
            format!("fits no branch of the union: {}", reasons.join("; ")),
        ))
    }

    /// The name Avro's JSON encoding uses for a union branch.
    fn type_name(&self, schema: &Schema) -> Option<String> {
        Some(match schema {
            Schema::Null => "null".into(),
            Schema::Boolean => "boolean".into(),
            Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => "long".into(),
            Schema::Float => "float".into(),
            Schema::Double => "double".into(),
            Schema::Bytes => "bytes".into(),
            Schema::String | Schema::Uuid(_) => "string".into(),
            Schema::Array(_) => "array".into(),
            Schema::Map(_) => "map".into(),
            Schema::Record(r) => r.name.fullname(None),
            Schema::Enum(e) => e.name.fullname(None),
            Schema::Fixed(f) => f.name.fullname(None),
            Schema::Ref { name } => name.fullname(None),
            _ => return None,
        })
    }

    /// Field defaults are JSON too, but a union's default is for its first
    /// branch (Avro spec), not whichever branch fits.
    fn default(&self, json: &Json, schema: &Schema, path: &str) -> Result<Value, JsonError> {
        match schema {
            Schema::Union(u) if !u.variants().is_empty() => Ok(Value::Union(
                0,
                Box::new(self.convert(json, &u.variants()[0], path)?),
            )),
            _ => self.convert(json, schema, path),
        }
    }

    fn int(&self, json: &Json, path: &str) -> Result<i32, JsonError> {
        let n = self.long(json, path)?;
        i32::try_from(n).map_err(|_| err(path, format!("{n} does not fit an Avro int (32 bits)")))
    }

    fn long(&self, json: &Json, path: &str) -> Result<i64, JsonError> {
        match json {
            Json::Number(n) => match n.as_i64() {
                Some(i) => Ok(i),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                    _ => Err(err(path, format!("expected an integer, got {n}"))),
                },
            },
            other => Err(err(
                path,
                format!("expected an integer, got {}", kind(other)),
            )),
        }
    }
}

fn latin1(json: &Json, path: &str) -> Result<Vec<u8>, JsonError> {
    let s = json.as_str().ok_or_else(|| {
        err(
            path,
            format!("expected a string of bytes, got {}", kind(json)),
        )
    })?;
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| err(path, format!("character {c:?} is not a byte (0-255)")))
        })
        .collect()
}

fn latin1_string(bytes: &[u8]) -> Json {
    Json::String(bytes.iter().map(|b| char::from(*b)).collect())
}

/// Converts an Avro value to plain JSON.
pub fn avro_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Json::from(*i),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => Json::from(*i),
        Value::Float(f) => Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::Double(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => latin1_string(b),
        Value::String(s) => Json::String(s.clone()),
        Value::Enum(_, s) => Json::String(s.clone()),
        Value::Union(_, inner) => avro_to_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), avro_to_json(&m[k])))
                    .collect(),
            )
        }
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Decimal(d) => Vec::<u8>::try_from(d).map_or(Json::Null, |b| latin1_string(&b)),
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::Duration(d) => latin1_string(&<[u8; 12]>::from(*d)),
        Value::Uuid(u) => Json::String(u.to_string()),
    }
}
