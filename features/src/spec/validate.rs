//! Checks a spec in two passes.
//!
//! [`shape`] needs nothing but the spec: references between sections, window
//! and operator constraints, SQL that parses. [`validate`] also needs the
//! registered value schemas of the topics: it resolves every column a view
//! reads or makes to a type, and returns the [`ViewPlan`]s the engine runs.
//! SQL expressions are typed by polars itself, on an empty frame with the
//! view's columns, so validation and execution can never disagree.

use std::collections::BTreeSet;

use apache_avro::Schema;
use apache_avro::schema::UnionSchema;
use indexmap::IndexMap;
use polars::prelude::*;

use super::{AggregationSpec, KeyPath, LoadedSpec, Missing, Op, SpecProblem, TimeUnit, Window};

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
pub(crate) fn non_null(u: &UnionSchema) -> Option<&Schema> {
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

/// A resolved feature: one operator over one window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FeaturePlan {
    /// `<name>_<window suffix>`.
    pub column: String,
    /// The operator.
    pub op: Op,
    /// The window.
    pub window: Window,
    /// The input column, if any.
    pub input: Option<String>,
    /// The input column's type.
    pub input_type: Option<ColumnType>,
    /// The k of `first_k`, `last_k`, `top_k`.
    pub k: usize,
    /// The quantile of `approx_percentile`.
    pub quantile: f64,
    /// The half-life of `decayed_sum`, ms.
    pub half_life_ms: i64,
}

/// A resolved join.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JoinPlan {
    /// The table.
    pub table: String,
    /// The event's column looked up in it.
    pub on: String,
    /// (table column, type) pairs added to the event.
    pub select: Vec<(String, ColumnType)>,
    /// What an event without a match gets.
    pub missing: Missing,
}

/// Everything the engine needs to run one view.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ViewPlan {
    /// The view's name.
    pub name: String,
    /// Its source.
    pub source: String,
    /// The source's key column.
    pub key: String,
    /// Its type.
    pub key_type: ColumnType,
    /// The source record's columns.
    pub source_columns: Columns,
    /// Joins, in order.
    pub joins: Vec<JoinPlan>,
    /// (name, SQL) in order.
    pub derive: Vec<(String, String)>,
    /// The filter (SQL), if any.
    pub filter: Option<String>,
    /// Every column after joins and derives.
    pub columns: Columns,
    /// The features, in order.
    pub features: Vec<FeaturePlan>,
    /// The feature topic.
    pub output_topic: String,
    /// The Parquet URL, if any.
    pub parquet: Option<String>,
}

/// A name a view, model or column can have: a letter or `_`, then
/// letters, digits or `_`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `sql` parses as a SQL expression (its columns are not checked):
/// the message says why not.
pub fn sql_syntax(sql: &str) -> Result<(), String> {
    polars::sql::sql_expr(sql)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks that need only the spec.
pub(crate) fn shape(loaded: &LoadedSpec) -> Vec<SpecProblem> {
    let spec = &loaded.spec;
    let mut out = Vec::new();
    let mut problem = |path: KeyPath, msg: String| out.push(loaded.problem(&path, msg));
    let root = KeyPath::default();
    if spec.sources.is_empty() {
        problem(root.key("sources"), "define at least one source".into());
    }
    if spec.features.is_empty() {
        problem(
            root.key("features"),
            "define at least one feature view".into(),
        );
    }
    if !is_identifier(&spec.name.replace('-', "_")) {
        problem(
            root.key("name"),
            format!(
                "`{}` is not a usable name: letters, digits, `_` and `-` only",
                spec.name
            ),
        );
    }
    for (name, view) in &spec.features {
        let at = root.key("features").key(name);
        if !is_identifier(name) {
            problem(
                at.clone(),
                format!(
                    "view name `{name}` must be a letter or `_` followed by letters, digits or `_`"
                ),
            );
        }
        let Some(source) = spec.sources.get(&view.source) else {
            let known: Vec<&String> = spec.sources.keys().collect();
            problem(
                at.key("source"),
                format!(
                    "unknown source `{}`; the sources are {known:?}",
                    view.source
                ),
            );
            continue;
        };
        if let Some(key) = &view.key
            && key != &source.key
        {
            problem(
                at.key("key"),
                format!(
                    "a view is keyed by its source's key (`{}`): state is split by source partition, so a view cannot re-key",
                    source.key
                ),
            );
        }
        for (i, join) in view.join.iter().enumerate() {
            if !spec.tables.contains_key(&join.table) {
                let known: Vec<&String> = spec.tables.keys().collect();
                problem(
                    at.key("join").index(i).key("table"),
                    format!("unknown table `{}`; the tables are {known:?}", join.table),
                );
            }
        }
        for (col, sql) in &view.derive {
            if !is_identifier(col) {
                problem(
                    at.key("derive").key(col),
                    format!("`{col}` is not a column name"),
                );
            }
            if let Err(e) = polars::sql::sql_expr(sql) {
                problem(
                    at.key("derive").key(col),
                    format!("`{sql}` is not a SQL expression: {e}"),
                );
            }
        }
        if let Some(sql) = &view.filter
            && let Err(e) = polars::sql::sql_expr(sql)
        {
            problem(
                at.key("filter"),
                format!("`{sql}` is not a SQL expression: {e}"),
            );
        }
        if view.aggregations.is_empty() {
            problem(
                at.key("aggregations"),
                "define at least one aggregation".into(),
            );
        }
        let mut columns = BTreeSet::new();
        for (i, agg) in view.aggregations.iter().enumerate() {
            let at = at.key("aggregations").index(i);
            shape_aggregation(agg, &at, &mut columns, &mut problem);
        }
        if let Some(url) = &view.output.parquet
            && let Err(e) = crate::store::parse_url(url)
        {
            problem(at.key("output").key("parquet"), e.to_string());
        }
    }
    for (name, source) in &spec.sources {
        if source.lateness.0 < 0 {
            problem(
                root.key("sources").key(name).key("lateness"),
                "lateness cannot be negative".into(),
            );
        }
    }
    if spec.checkpoint.interval.0 <= 0 {
        problem(
            root.key("checkpoint").key("interval"),
            "the interval must be longer than 0".into(),
        );
    }
    if let Some(url) = &spec.checkpoint.url
        && let Err(e) = crate::store::parse_url(url)
    {
        problem(root.key("checkpoint").key("url"), e.to_string());
    }
    if let Some(archive) = &spec.archive {
        if let Err(e) = crate::store::parse_url(&archive.url) {
            problem(root.key("archive").key("url"), e.to_string());
        }
        for (i, name) in archive.sources.iter().flatten().enumerate() {
            if !spec.sources.contains_key(name) {
                let known: Vec<&String> = spec.sources.keys().collect();
                problem(
                    root.key("archive").key("sources").index(i),
                    format!("no source named `{name}`; sources are {known:?}"),
                );
            }
        }
    }
    out
}

fn shape_aggregation(
    agg: &AggregationSpec,
    at: &KeyPath,
    columns: &mut BTreeSet<String>,
    problem: &mut impl FnMut(KeyPath, String),
) {
    if !is_identifier(&agg.name) {
        problem(
            at.key("name"),
            format!("`{}` is not a feature name", agg.name),
        );
    }
    if agg.column.is_none() && agg.op != Op::Count {
        problem(
            at.key("op"),
            format!("`{}` needs a `column`", agg.op.name()),
        );
    }
    if agg.windows.is_empty() {
        problem(at.key("windows"), "list at least one window".into());
    }
    for (w, window) in agg.windows.iter().enumerate() {
        let column = format!("{}_{}", agg.name, window.suffix());
        if !columns.insert(column.clone()) {
            problem(
                at.key("windows").index(w),
                format!("feature column `{column}` is defined twice"),
            );
        }
        if agg.op.is_sketch() && matches!(window, Window::Sliding(_)) {
            problem(
                at.key("windows").index(w),
                format!(
                    "`{}` is a sketch, and a sketch cannot forget single events, so it cannot run on a sliding window; use a hopping window (like `hopping {} every 1h`), a tumbling, session or lifetime window, or an exact operator",
                    agg.op.name(),
                    match window {
                        Window::Sliding(s) => s.text(),
                        _ => String::new(),
                    }
                ),
            );
        }
    }
    let k_op = matches!(agg.op, Op::FirstK | Op::LastK | Op::TopK);
    match agg.k {
        Some(0) => problem(at.key("k"), "k must be at least 1".into()),
        Some(_) if !k_op => problem(at.key("k"), format!("`{}` takes no `k`", agg.op.name())),
        _ => {}
    }
    match agg.quantile {
        Some(q) if agg.op != Op::ApproxPercentile => {
            let _ = q;
            problem(
                at.key("quantile"),
                format!("`{}` takes no `quantile`", agg.op.name()),
            )
        }
        Some(q) if !(0.0..=1.0).contains(&q) => {
            problem(at.key("quantile"), format!("quantile {q} is not in [0, 1]"))
        }
        _ => {}
    }
    match (agg.op, agg.half_life) {
        (Op::DecayedSum, None) => problem(
            at.key("op"),
            "`decayed_sum` needs a `half_life`, like 1d".into(),
        ),
        (Op::DecayedSum, Some(h)) if h.0 <= 0 => problem(
            at.key("half_life"),
            "the half-life must be longer than 0".into(),
        ),
        (op, Some(_)) if op != Op::DecayedSum => problem(
            at.key("half_life"),
            format!("`{}` takes no `half_life`", op.name()),
        ),
        _ => {}
    }
}

/// The registered value schema of a topic, looked up by the caller.
pub type SchemaLookup<'a> = dyn Fn(&str) -> Result<Option<Schema>, String> + 'a;

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

fn field_schema<'s>(schema: &'s Schema, name: &str) -> Option<&'s Schema> {
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

/// Checks the spec against its topics' schemas and plans every view.
pub fn validate(
    loaded: &LoadedSpec,
    lookup: &SchemaLookup<'_>,
) -> Result<Vec<ViewPlan>, Vec<SpecProblem>> {
    let spec = &loaded.spec;
    let root = KeyPath::default();
    let mut problems = Vec::new();
    let mut schemas: IndexMap<String, Schema> = IndexMap::new();
    let mut fetch = |topic: &str, at: KeyPath, problems: &mut Vec<SpecProblem>| -> Option<Schema> {
        if let Some(s) = schemas.get(topic) {
            return Some(s.clone());
        }
        match lookup(topic) {
            Ok(Some(s)) => {
                schemas.insert(topic.to_string(), s.clone());
                Some(s)
            }
            Ok(None) => {
                problems.push(loaded.problem(&at, format!(
                    "topic `{topic}` has no registered value schema (`{topic}-value`): produce Avro to it first, or register its schema"
                )));
                None
            }
            Err(e) => {
                problems
                    .push(loaded.problem(&at, format!("cannot read the schema of `{topic}`: {e}")));
                None
            }
        }
    };
    // A topic's record schema and its usable columns, or a problem at `at`.
    let mut record = |topic: &str, at: &KeyPath, problems: &mut Vec<SpecProblem>| {
        let schema = fetch(topic, at.key("topic"), problems)?;
        match record_columns(&schema) {
            Some(columns) => Some((schema, columns)),
            None => {
                problems.push(loaded.problem(
                    &at.key("topic"),
                    "the value schema is not an Avro record".to_string(),
                ));
                None
            }
        }
    };
    let mut source_schemas = IndexMap::new();
    for (name, source) in &spec.sources {
        let at = root.key("sources").key(name);
        let Some((schema, columns)) = record(&source.topic, &at, &mut problems) else {
            continue;
        };
        match field_schema(&schema, &source.key).and_then(ColumnType::from_avro) {
            Some(ColumnType::Long | ColumnType::String) => {}
            Some(other) => problems.push(loaded.problem(
                &at.key("key"),
                format!(
                    "key `{}` is {other:?}; keys must be long or string",
                    source.key
                ),
            )),
            None => {
                problems.push(loaded.problem(&at.key("key"), unknown_column(&source.key, &columns)))
            }
        }
        match field_schema(&schema, &source.event_time) {
            Some(s) if time_scale(s, source.event_time_unit).is_some() => {}
            Some(_) => problems.push(loaded.problem(&at.key("event_time"), format!("`{}` is not a time: use a long/int of epoch ms or s, or timestamp-millis/micros", source.event_time))),
            None => problems.push(loaded.problem(&at.key("event_time"), unknown_column(&source.event_time, &columns))),
        }
        source_schemas.insert(name.clone(), columns);
    }
    let mut table_columns = IndexMap::new();
    for (name, table) in &spec.tables {
        let at = root.key("tables").key(name);
        let Some((_, columns)) = record(&table.topic, &at, &mut problems) else {
            continue;
        };
        if !columns.contains_key(&table.key) {
            problems.push(loaded.problem(&at.key("key"), unknown_column(&table.key, &columns)));
        }
        if let Some(vf) = &table.valid_from
            && columns.get(vf) != Some(&ColumnType::Long)
        {
            problems.push(loaded.problem(
                &at.key("valid_from"),
                format!("`{vf}` must be a long (or timestamp) column"),
            ));
        }
        table_columns.insert(name.clone(), columns);
    }
    let mut plans = Vec::new();
    for (name, view) in &spec.features {
        let at = root.key("features").key(name);
        let Some(source_columns) = source_schemas.get(&view.source) else {
            continue;
        };
        let source = &spec.sources[&view.source];
        let mut columns = source_columns.clone();
        let mut joins = Vec::new();
        for (i, join) in view.join.iter().enumerate() {
            let at = at.key("join").index(i);
            let Some(tcols) = table_columns.get(&join.table) else {
                continue;
            };
            let table = &spec.tables[&join.table];
            match (columns.get(&join.on), tcols.get(&table.key)) {
                (None, _) => {
                    problems.push(loaded.problem(&at.key("on"), unknown_column(&join.on, &columns)))
                }
                (Some(a), Some(b)) if a != b => problems.push(loaded.problem(
                    &at.key("on"),
                    format!(
                        "`{}` is {a:?} but the key of table `{}` is {b:?}",
                        join.on, join.table
                    ),
                )),
                _ => {}
            }
            let wanted: Vec<String> = join
                .select
                .clone()
                .unwrap_or_else(|| tcols.keys().filter(|c| **c != table.key).cloned().collect());
            let mut select = Vec::new();
            for (j, col) in wanted.iter().enumerate() {
                match tcols.get(col) {
                    None => problems.push(
                        loaded.problem(&at.key("select").index(j), unknown_column(col, tcols)),
                    ),
                    Some(_) if columns.contains_key(col) => problems.push(loaded.problem(
                        &at.key("select").index(j),
                        format!(
                            "`{col}` is already a column of the event; a join cannot replace it"
                        ),
                    )),
                    Some(t) => {
                        columns.insert(col.clone(), t.clone());
                        select.push((col.clone(), t.clone()));
                    }
                }
            }
            joins.push(JoinPlan {
                table: join.table.clone(),
                on: join.on.clone(),
                select,
                missing: join.missing,
            });
        }
        for (col, sql) in &view.derive {
            let at = at.key("derive").key(col);
            if columns.contains_key(col) {
                problems.push(loaded.problem(
                    &at,
                    format!("`{col}` is already a column; pick another name"),
                ));
                continue;
            }
            match expression_type(&columns, sql) {
                Ok(t) => {
                    columns.insert(col.clone(), t);
                }
                Err(e) => problems.push(loaded.problem(&at, e)),
            }
        }
        if let Some(sql) = &view.filter {
            match expression_type(&columns, sql) {
                Ok(ColumnType::Boolean) => {}
                Ok(t) => problems.push(loaded.problem(
                    &at.key("filter"),
                    format!("`{sql}` is {t:?}, not a boolean condition"),
                )),
                Err(e) => problems.push(loaded.problem(&at.key("filter"), e)),
            }
        }
        let mut features = Vec::new();
        for (i, agg) in view.aggregations.iter().enumerate() {
            let at = at.key("aggregations").index(i);
            let input_type = match &agg.column {
                None => None,
                Some(c) => match columns.get(c) {
                    None => {
                        problems
                            .push(loaded.problem(&at.key("column"), unknown_column(c, &columns)));
                        continue;
                    }
                    Some(t) => Some(t.clone()),
                },
            };
            if let Some(t) = &input_type
                && let Some(why) = type_problem(agg.op, t)
            {
                problems.push(loaded.problem(&at.key("column"), why));
                continue;
            }
            for window in &agg.windows {
                features.push(FeaturePlan {
                    column: format!("{}_{}", agg.name, window.suffix()),
                    op: agg.op,
                    window: *window,
                    input: agg.column.clone(),
                    input_type: input_type.clone(),
                    k: agg.k.unwrap_or(10),
                    quantile: agg.quantile.unwrap_or(0.5),
                    half_life_ms: agg.half_life.map_or(0, |h| h.0),
                });
            }
        }
        let key_type = source_columns
            .get(&source.key)
            .cloned()
            .unwrap_or(ColumnType::String);
        plans.push(ViewPlan {
            name: name.clone(),
            source: view.source.clone(),
            key: source.key.clone(),
            key_type,
            source_columns: source_columns.clone(),
            joins,
            derive: view
                .derive
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            filter: view.filter.clone(),
            columns,
            features,
            output_topic: view.output_topic(name),
            parquet: view.output.parquet.clone(),
        });
    }
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(problems)
    }
}

/// Column names of every feature of `plans`: the feature's own name, or
/// `<view>__<feature>` where two views share a name (Feast's convention).
pub fn feature_columns(plans: &[ViewPlan]) -> Vec<(String, ColumnType)> {
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for p in plans {
        for f in &p.features {
            *count.entry(f.column.as_str()).or_default() += 1;
        }
    }
    plans
        .iter()
        .flat_map(|p| {
            let count = &count;
            p.features.iter().map(move |f| {
                let name = if count[f.column.as_str()] > 1 {
                    format!("{}__{}", p.name, f.column)
                } else {
                    f.column.clone()
                };
                (
                    name,
                    crate::engine::job::output::OutType::of(f).column_type(),
                )
            })
        })
        .collect()
}

fn unknown_column(name: &str, columns: &Columns) -> String {
    let known: Vec<&String> = columns.keys().collect();
    format!("unknown column `{name}`; the columns here are {known:?}")
}

/// Why `op` cannot aggregate a column of type `t`, if it cannot.
fn type_problem(op: Op, t: &ColumnType) -> Option<String> {
    let numeric = matches!(
        op,
        Op::Sum
            | Op::Mean
            | Op::Min
            | Op::Max
            | Op::Variance
            | Op::Stddev
            | Op::ApproxPercentile
            | Op::DecayedSum
    );
    if numeric && !t.is_numeric() {
        return Some(format!(
            "`{}` needs a numeric column, and this one is {t:?}",
            op.name()
        ));
    }
    let elementwise = matches!(
        op,
        Op::TopK | Op::CountDistinct | Op::ApproxCountDistinct | Op::Count
    );
    if matches!(t, ColumnType::List(_)) && !elementwise {
        return Some(format!(
            "`{}` cannot aggregate a list column; top_k, count_distinct and approx_count_distinct count its elements",
            op.name()
        ));
    }
    None
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

#[cfg(test)]
mod tests {
    //! Planning views against the registry's schemas: what a plan holds,
    //! and each kind of problem named by file, line and key.

    use std::path::Path;

    use super::*;

    const EVENT: &str = r#"{"type": "record", "name": "E", "fields": [
      {"name": "user", "type": "long"},
      {"name": "item", "type": "long"},
      {"name": "price", "type": ["null", "double"]},
      {"name": "kind", "type": "string"},
      {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

    const ITEM: &str = r#"{"type": "record", "name": "I", "fields": [
      {"name": "item", "type": "long"},
      {"name": "category", "type": "string"}]}"#;

    /// Plans `views` (the `features:` section) over source `events` and
    /// table `items`.
    fn plan(views: &str) -> Result<Vec<ViewPlan>, String> {
        let text = format!(
            "name: t
sources:
  events: {{ topic: events, key: user, event_time: ts }}
tables:
  items: {{ topic: items, key: item }}
features:
{views}"
        );
        let loaded = crate::spec::parse(Path::new("v.yaml"), &text).map_err(|e| e.to_string())?;
        let lookup = |topic: &str| -> Result<Option<Schema>, String> {
            Ok(match topic {
                "events" => Some(Schema::parse_str(EVENT).unwrap()),
                "items" => Some(Schema::parse_str(ITEM).unwrap()),
                _ => None,
            })
        };
        validate(&loaded, &lookup).map_err(|problems| {
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn a_view_plan_holds_its_joins_derived_columns_and_typed_features() {
        let plans = plan(
            "  shopper:
    source: events
    join: [{ table: items, on: item, select: [category] }]
    derive: { spent: \"price * 2\", viewed: \"kind = 'view'\" }
    filter: \"price >= 0\"
    aggregations:
      - { name: n, op: count, windows: [1h, lifetime] }
      - { name: spend, op: sum, column: spent, windows: [1d] }
      - { name: cats, op: top_k, column: category, k: 2, windows: [lifetime] }
",
        )
        .unwrap();
        let p = &plans[0];
        assert_eq!(p.name, "shopper");
        assert_eq!(p.key, "user");
        assert_eq!(p.key_type, ColumnType::Long);
        assert_eq!(
            p.joins[0].select,
            [("category".to_string(), ColumnType::String)]
        );
        assert_eq!(p.columns["spent"], ColumnType::Double);
        assert_eq!(p.columns["viewed"], ColumnType::Boolean);
        let names: Vec<&str> = p.features.iter().map(|f| f.column.as_str()).collect();
        assert_eq!(names, ["n_1h", "n_lifetime", "spend_1d", "cats_lifetime"]);
        assert_eq!(p.features[2].input_type, Some(ColumnType::Double));
        assert_eq!(p.features[3].k, 2);
        assert_eq!(p.output_topic, "features.shopper");
    }

    #[test]
    fn an_unknown_column_names_its_key_and_the_columns_there_are() {
        let e = plan(
            "  v:
    source: events
    aggregations: [{ name: s, op: sum, column: nope, windows: [1h] }]
",
        )
        .unwrap_err();
        assert!(e.contains("v.yaml:"), "{e}");
        assert!(e.contains("features.v.aggregations[0].column"), "{e}");
        assert!(e.contains("nope"), "{e}");
        assert!(e.contains("price"), "the columns there are: {e}");
    }

    #[test]
    fn an_operator_that_does_not_fit_its_column_type_is_refused() {
        let e = plan(
            "  v:
    source: events
    aggregations: [{ name: s, op: sum, column: kind, windows: [1h] }]
",
        )
        .unwrap_err();
        assert!(e.contains("features.v.aggregations[0]"), "{e}");
    }

    #[test]
    fn a_join_of_an_unknown_table_or_column_is_refused() {
        let e = plan(
            "  v:
    source: events
    join: [{ table: nope, on: item, select: [category] }]
    aggregations: [{ name: n, op: count, windows: [1h] }]
",
        )
        .unwrap_err();
        assert!(e.contains("features.v.join[0]"), "{e}");
        let e = plan(
            "  v:
    source: events
    join: [{ table: items, on: item, select: [colour] }]
    aggregations: [{ name: n, op: count, windows: [1h] }]
",
        )
        .unwrap_err();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn a_derived_column_that_is_not_sql_names_its_key() {
        let e = plan(
            "  v:
    source: events
    derive: { x: \"price +\" }
    aggregations: [{ name: n, op: count, windows: [1h] }]
",
        )
        .unwrap_err();
        assert!(e.contains("features.v.derive.x"), "{e}");
    }
}
