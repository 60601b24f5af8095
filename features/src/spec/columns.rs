//! Columns and their types: what a view, a label or a model input can
//! read. Types come from the topics' registered Avro schemas, and SQL
//! expressions are typed by polars itself, on an empty frame with the
//! columns, so validation and execution can never disagree.

use apache_avro::Schema;
use apache_avro::schema::UnionSchema;
use indexmap::IndexMap;
use polars::prelude::*;

use super::TimeUnit;

/// The type of a column a view can use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColumnType {
    /// 64-bit integer.
    Long,
    /// 64-bit float.
    Double,
    /// Text.
    String,
    /// True or false.
    Boolean,
    /// An array of a scalar type; `top_k` and the distinct counts count its
    /// elements.
    List(Box<ColumnType>),
}

impl ColumnType {
    /// Long or double.
    pub fn is_numeric(&self) -> bool {
        matches!(self, ColumnType::Long | ColumnType::Double)
    }

    /// The polars type of the column.
    pub fn dtype(&self) -> DataType {
        match self {
            ColumnType::Long => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::String => DataType::String,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::List(inner) => DataType::List(Box::new(inner.dtype())),
        }
    }

    /// The column type of a polars type, if eddy can aggregate it.
    pub fn from_dtype(dtype: &DataType) -> Option<ColumnType> {
        Some(match dtype {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => ColumnType::Long,
            DataType::Float32 | DataType::Float64 => ColumnType::Double,
            DataType::String => ColumnType::String,
            DataType::Boolean => ColumnType::Boolean,
            DataType::List(inner) => match ColumnType::from_dtype(inner)? {
                ColumnType::List(_) => return None,
                scalar => ColumnType::List(Box::new(scalar)),
            },
            _ => return None,
        })
    }

    /// The type of one Avro field, if eddy can use it.
    pub fn from_avro(schema: &Schema) -> Option<ColumnType> {
        Some(match schema {
            Schema::Int
            | Schema::Long
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros => ColumnType::Long,
            Schema::Float | Schema::Double => ColumnType::Double,
            Schema::String | Schema::Enum(_) | Schema::Uuid(_) => ColumnType::String,
            Schema::Boolean => ColumnType::Boolean,
            Schema::Array(items) => match ColumnType::from_avro(&items.items)? {
                ColumnType::List(_) => return None,
                scalar => ColumnType::List(Box::new(scalar)),
            },
            Schema::Union(u) => ColumnType::from_avro(non_null(u)?)?,
            _ => return None,
        })
    }
}

/// The one non-null branch of `["null", T]`.
fn non_null(u: &UnionSchema) -> Option<&Schema> {
    let mut branches = u.variants().iter().filter(|s| !matches!(s, Schema::Null));
    let one = branches.next()?;
    branches.next().is_none().then_some(one)
}

/// Named, typed columns, in order.
pub type Columns = IndexMap<String, ColumnType>;

/// How the engine reads event time from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeScale {
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Seconds.
    Seconds,
}

/// The columns of an Avro record schema; None for anything else.
pub fn record_columns(schema: &Schema) -> Option<Columns> {
    let Schema::Record(record) = schema else {
        return None;
    };
    Some(
        record
            .fields
            .iter()
            .filter_map(|f| Some((f.name.clone(), ColumnType::from_avro(&f.schema)?)))
            .collect(),
    )
}

pub(crate) fn field_schema<'s>(schema: &'s Schema, name: &str) -> Option<&'s Schema> {
    let Schema::Record(record) = schema else {
        return None;
    };
    record
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| &f.schema)
}

/// How event time is read from a field of this Avro type.
pub fn time_scale(schema: &Schema, unit: TimeUnit) -> Option<TimeScale> {
    match schema {
        Schema::TimestampMillis => Some(TimeScale::Millis),
        Schema::TimestampMicros => Some(TimeScale::Micros),
        Schema::Int | Schema::Long => Some(match unit {
            TimeUnit::Ms => TimeScale::Millis,
            TimeUnit::S => TimeScale::Seconds,
        }),
        Schema::Union(u) => time_scale(non_null(u)?, unit),
        _ => None,
    }
}

/// The type of a SQL expression over `columns`, as polars computes it.
pub fn expression_type(columns: &Columns, sql: &str) -> Result<ColumnType, String> {
    let expr =
        polars::sql::sql_expr(sql).map_err(|e| format!("`{sql}` is not a SQL expression: {e}"))?;
    let schema: Schema_ = columns
        .iter()
        .map(|(n, t)| Field::new(n.as_str().into(), t.dtype()))
        .collect();
    let mut lf = DataFrame::empty_with_schema(&schema)
        .lazy()
        .select([expr.alias("__eddy_out")]);
    let out = lf
        .collect_schema()
        .map_err(|e| format!("`{sql}`: {}", first_line(&e.to_string())))?;
    let dtype = out.get("__eddy_out").cloned().unwrap_or(DataType::Null);
    ColumnType::from_dtype(&dtype)
        .ok_or_else(|| format!("`{sql}` gives {dtype}, which eddy cannot aggregate"))
}

type Schema_ = polars::prelude::Schema;

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// The record schema of the rows inside a Debezium envelope (`before`'s or
/// `after`'s), or why `schema` is not an envelope.
pub fn envelope_row(schema: &Schema) -> Result<&Schema, String> {
    let Schema::Record(envelope) = schema else {
        return Err("the value schema is not an Avro record".into());
    };
    let field = |name: &str| envelope.fields.iter().find(|f| f.name == name);
    if !field("op").is_some_and(|f| matches!(f.schema, Schema::String)) {
        return Err(
            "not a Debezium envelope: it has no string field `op` (Debezium's change events have before, after, source, op, ts_ms)"
                .into(),
        );
    }
    // `before` defines the row record; `after` usually refers to it by name.
    for name in ["before", "after"] {
        if let Some(Schema::Union(u)) = field(name).map(|f| &f.schema)
            && let Some(row) = u.variants().iter().find(|v| matches!(v, Schema::Record(_)))
        {
            return Ok(row);
        }
    }
    Err("not a Debezium envelope: neither `before` nor `after` is a nullable record of the table's columns".into())
}

/// The record a Debezium source's events read as: the row's fields, then
/// `__op` (c, r, u or d) and `__source_ts_ms` (the change's time in the
/// database, epoch ms): Debezium's own names for them in its
/// `ExtractNewRecordState` transform.
pub fn change_schema(envelope: &Schema) -> Result<Schema, String> {
    let row = envelope_row(envelope)?;
    let mut json = serde_json::to_value(row).map_err(|e| e.to_string())?;
    let fields = json["fields"]
        .as_array_mut()
        .ok_or("the row schema is not a record")?;
    for reserved in ["__op", "__source_ts_ms"] {
        if fields.iter().any(|f| f["name"] == reserved) {
            return Err(format!("the row already has a column `{reserved}`"));
        }
    }
    fields.push(serde_json::json!({"name": "__op", "type": "string"}));
    fields.push(serde_json::json!({"name": "__source_ts_ms", "type": "long"}));
    Schema::parse(&json).map_err(|e| e.to_string())
}

/// A source's columns: its record's, or for Debezium change events the
/// row's plus `__op` and `__source_ts_ms` ([`change_schema`]).
pub fn source_columns(schema: &Schema, format: super::RecordFormat) -> Option<Columns> {
    match format {
        super::RecordFormat::Avro => record_columns(schema),
        super::RecordFormat::Debezium | super::RecordFormat::DebeziumJson => {
            record_columns(&change_schema(schema).ok()?)
        }
    }
}

/// The Debezium envelope (as an Avro schema) of a topic whose columns the
/// spec declares (`format: debezium_json`): so a JSON change stream is
/// checked, planned and typed by the same code as an Avro one. Every column
/// is nullable but the key, as Debezium writes a table's primary key.
pub fn declared_envelope(
    columns: &IndexMap<String, super::DeclaredType>,
    key: &str,
) -> Result<Schema, String> {
    let fields: Vec<serde_json::Value> = columns
        .iter()
        .map(|(name, t)| {
            let t = match t {
                super::DeclaredType::Long => "long",
                super::DeclaredType::Double => "double",
                super::DeclaredType::String => "string",
                super::DeclaredType::Boolean => "boolean",
            };
            if name == key {
                serde_json::json!({"name": name, "type": t})
            } else {
                serde_json::json!({"name": name, "type": ["null", t], "default": null})
            }
        })
        .collect();
    let json = serde_json::json!({
        "type": "record", "name": "Envelope", "namespace": "eddy.debezium_json",
        "fields": [
            {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": fields}], "default": null},
            {"name": "after", "type": ["null", "Value"], "default": null},
            {"name": "source", "type": ["null", {"type": "record", "name": "Source", "fields": [
                {"name": "ts_ms", "type": ["null", "long"], "default": null}]}], "default": null},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": null}
        ]
    });
    Schema::parse(&json).map_err(|e| e.to_string())
}

/// `lookup` with the declared envelopes of the spec's `debezium_json`
/// topics in front: those have no registered schema.
pub fn with_declared<'a>(
    spec: &super::PipelineSpec,
    lookup: &'a dyn Fn(&str) -> Result<Option<Schema>, String>,
) -> impl Fn(&str) -> Result<Option<Schema>, String> + 'a {
    let mut declared: std::collections::HashMap<String, Schema> = Default::default();
    let sources = spec
        .sources
        .values()
        .map(|s| (&s.topic, s.format, &s.columns, &s.key));
    let tables = spec
        .tables
        .values()
        .map(|t| (&t.topic, t.format, &t.columns, &t.key));
    for (topic, format, columns, key) in sources.chain(tables) {
        if format == super::RecordFormat::DebeziumJson
            && let Some(columns) = columns
            && !declared.contains_key(topic)
            && let Ok(schema) = declared_envelope(columns, key)
        {
            declared.insert(topic.clone(), schema);
        }
    }
    move |topic: &str| match declared.get(topic) {
        Some(s) => Ok(Some(s.clone())),
        None => lookup(topic),
    }
}
