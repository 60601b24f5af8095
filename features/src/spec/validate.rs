//! Checks a spec in two passes, and plans its views.
//!
//! The shape checks (`spec/shape.rs`) need nothing but the spec:
//! references between sections, window and operator constraints, SQL that
//! parses. [`validate`] also needs the registered value schemas of the
//! topics: it resolves every column a view reads or makes to a type
//! (`spec/columns.rs`), and returns the [`ViewPlan`]s the engine runs.

use apache_avro::Schema;
use indexmap::IndexMap;

use super::columns::field_schema;
pub use super::columns::{
    ColumnType, Columns, TimeScale, change_schema, declared_envelope, envelope_row,
    expression_type, record_columns, source_columns, time_scale, with_declared,
};
pub use super::plan::{Derived, FeaturePlan, JoinPlan, OutType, ViewPlan};
pub(crate) use super::shape::shape;
pub use super::shape::{is_identifier, sql_syntax};
use super::{KeyPath, LoadedSpec, Op, SpecProblem};

/// The registered value schema of a topic, looked up by the caller.
pub type SchemaLookup<'a> = dyn Fn(&str) -> Result<Option<Schema>, String> + 'a;

/// Checks the spec against its topics' schemas and plans every view.
pub fn validate(
    loaded: &LoadedSpec,
    lookup: &SchemaLookup<'_>,
) -> Result<Vec<ViewPlan>, Vec<SpecProblem>> {
    let spec = &loaded.spec;
    let root = KeyPath::default();
    let mut problems = Vec::new();
    // JSON change streams have no registered schema: the spec declares it.
    let lookup = with_declared(spec, lookup);
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
        // A Debezium source's events are its rows plus the change's op and
        // time: checked as that record.
        let (schema, columns) = match source.format {
            super::RecordFormat::Avro => (schema, columns),
            super::RecordFormat::Debezium | super::RecordFormat::DebeziumJson => {
                match change_schema(&schema) {
                    Ok(events) => {
                        let columns = record_columns(&events).unwrap_or_default();
                        (events, columns)
                    }
                    Err(why) => {
                        problems.push(loaded.problem(&at.key("format"), why));
                        continue;
                    }
                }
            }
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
        let Some((schema, columns)) = record(&table.topic, &at, &mut problems) else {
            continue;
        };
        // A Debezium table's columns are its rows', inside the envelope.
        let columns = match table.format {
            super::RecordFormat::Avro => columns,
            super::RecordFormat::Debezium | super::RecordFormat::DebeziumJson => {
                match envelope_row(&schema) {
                    Ok(row) => record_columns(row).unwrap_or_default(),
                    Err(why) => {
                        problems.push(loaded.problem(&at.key("format"), why));
                        continue;
                    }
                }
            }
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
                    derived: None,
                });
            }
        }
        derive_features(&view.derived_features, &mut features, &mut |key, why| {
            problems.push(loaded.problem(&at.key("derived_features").key(key), why))
        });
        let key = view.key.clone().unwrap_or_else(|| source.key.clone());
        let rekeyed = key != source.key;
        let key_type = match columns.get(&key) {
            Some(t @ (ColumnType::Long | ColumnType::String)) => t.clone(),
            Some(other) => {
                problems.push(loaded.problem(
                    &at.key("key"),
                    format!("`{key}` is {other:?}; a view's key must be long or string"),
                ));
                ColumnType::String
            }
            None => {
                problems.push(loaded.problem(&at.key("key"), unknown_column(&key, &columns)));
                ColumnType::String
            }
        };
        plans.push(ViewPlan {
            name: name.clone(),
            source: view.source.clone(),
            key,
            rekeyed,
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
            parquet: view.output.parquet.0.clone(),
            redis: view.output.redis.clone(),
            postgres: view.output.postgres.clone(),
            sqlite: view.output.sqlite.clone(),
        });
    }
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(problems)
    }
}

/// Compiles a view's `derived_features` over its features (and the
/// derived ones before each), appending them; `problem(name, why)` for
/// each that cannot be.
fn derive_features(
    derived: &IndexMap<String, String>,
    features: &mut Vec<FeaturePlan>,
    problem: &mut dyn FnMut(&str, String),
) {
    for (name, sql) in derived {
        if features.iter().any(|f| f.column == *name) {
            problem(
                name,
                format!("`{name}` is already a feature of the view; pick another name"),
            );
            continue;
        }
        let columns: Vec<(String, Result<ColumnType, String>)> = features
            .iter()
            .map(|f| {
                let t = match OutType::of(f) {
                    OutType::Plain(t) | OutType::Nullable(t) => Ok(t),
                    OutType::Array(_) => Err(format!(
                        "is a list ({}): derived features read numbers, text and booleans",
                        f.op.name()
                    )),
                };
                (f.column.clone(), t)
            })
            .collect();
        match crate::engine::expr::compile(sql, &columns) {
            Ok((expr, ty)) => features.push(FeaturePlan::derived(
                name.clone(),
                Derived {
                    sql: sql.clone(),
                    expr,
                    ty,
                },
            )),
            Err(why) => problem(name, why),
        }
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
                (name, OutType::of(f).column_type())
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
    fn derived_features_follow_the_aggregations_typed_by_their_sql() {
        let plans = plan(
            "  v:
    source: events
    derive: { viewed: \"kind = 'view'\" }
    aggregations:
      - { name: views, op: count, windows: [1d] }
      - { name: clicks, op: count, windows: [1d] }
      - { name: spend, op: sum, column: price, windows: [1d] }
    derived_features:
      ctr_1d: \"clicks_1d / NULLIF(views_1d, 0)\"
      busy_1d: \"views_1d > 10\"
      twice_ctr_1d: \"ctr_1d * 2\"
",
        )
        .unwrap();
        let f = &plans[0].features;
        let names: Vec<&str> = f.iter().map(|f| f.column.as_str()).collect();
        assert_eq!(
            names,
            [
                "views_1d",
                "clicks_1d",
                "spend_1d",
                "ctr_1d",
                "busy_1d",
                "twice_ctr_1d"
            ]
        );
        assert_eq!(OutType::of(&f[3]), OutType::Nullable(ColumnType::Double));
        assert_eq!(OutType::of(&f[4]), OutType::Nullable(ColumnType::Boolean));
        assert_eq!(f[5].derived.as_ref().unwrap().sql, "ctr_1d * 2");
        // Derived features reach no further back than what they read.
        assert_eq!(crate::engine::backfill::lookback(&plans), Some(86_400_000));
    }

    /// Each mistake is located by file, line and the derived feature's key.
    #[test]
    fn debezium_json_without_columns_and_columns_on_avro_are_located() {
        let text = "name: t
sources:
  events: { topic: events, key: user, event_time: ts, columns: { user: long } }
tables:
  customers: { topic: customers, key: id, format: debezium_json }
features: {}
";
        let e = crate::spec::parse(Path::new("j.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "j.yaml:3: key `sources.events.columns`: `columns:` is for `format: debezium_json`"
            ),
            "{e}"
        );
        assert!(
            e.contains("j.yaml:5: key `tables.customers.format`: `debezium_json` needs `columns:`"),
            "{e}"
        );
    }

    #[test]
    fn a_view_keyed_by_a_joined_or_derived_column_is_rekeyed_and_a_bad_key_is_located() {
        let plans = plan(
            "  by_category:
    source: events
    join: [{ table: items, on: item, select: [category] }]
    key: category
    aggregations: [{ name: n, op: count, windows: [1d] }]
  by_pair:
    source: events
    derive: { pair: \"CAST(item AS VARCHAR) || ':' || kind\" }
    key: pair
    aggregations: [{ name: n, op: count, windows: [1d] }]
  by_user:
    source: events
    key: user
    aggregations: [{ name: n, op: count, windows: [1d] }]
",
        )
        .unwrap();
        let keyed: Vec<(&str, bool, &ColumnType)> = plans
            .iter()
            .map(|p| (p.key.as_str(), p.rekeyed, &p.key_type))
            .collect();
        assert_eq!(
            keyed,
            [
                ("category", true, &ColumnType::String),
                ("pair", true, &ColumnType::String),
                ("user", false, &ColumnType::Long),
            ]
        );
        let e = plan(
            "  v:
    source: events
    key: nope
    aggregations: [{ name: n, op: count, windows: [1d] }]
  w:
    source: events
    key: price
    aggregations: [{ name: n, op: count, windows: [1d] }]
",
        )
        .unwrap_err();
        assert!(
            e.contains("v.yaml:9: key `features.v.key`: unknown column `nope`"),
            "{e}"
        );
        assert!(
            e.contains("v.yaml:13: key `features.w.key`: `price` is Double; a view's key must be long or string"),
            "{e}"
        );
    }

    #[test]
    fn a_derived_feature_that_cannot_be_computed_is_located_and_says_why() {
        let e = plan(
            "  v:
    source: events
    aggregations:
      - { name: views, op: count, windows: [1d] }
      - { name: cats, op: top_k, column: kind, windows: [1d] }
    derived_features:
      ctr: \"clicks_1d / views_1d\"
      views_1d: \"1\"
      odd: \"cats_1d + 1\"
      bad: \"views_1d +\"
",
        )
        .unwrap_err();
        for (key, says) in [
            (
                "features.v.derived_features.ctr",
                "unknown column `clicks_1d`",
            ),
            ("features.v.derived_features.views_1d", "already a feature"),
            ("features.v.derived_features.odd", "is a list (top_k)"),
            ("features.v.derived_features.bad", "not a SQL expression"),
        ] {
            let line = e
                .lines()
                .find(|l| l.contains(key))
                .unwrap_or_else(|| panic!("{key}: {e}"));
            assert!(line.contains(says), "{line}");
            assert!(line.contains("v.yaml:"), "{line}");
        }
    }

    #[test]
    fn parquet_takes_one_url_or_a_list_and_refuses_one_listed_twice() {
        let one = plan(
            "  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [1h] }]
    output: { parquet: \"file:///tmp/a\" }
",
        )
        .unwrap();
        assert_eq!(one[0].parquet, ["file:///tmp/a"]);
        let two = plan(
            "  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [1h] }]
    output: { parquet: [\"file:///tmp/a\", \"s3://b/a\"] }
",
        )
        .unwrap();
        assert_eq!(two[0].parquet, ["file:///tmp/a", "s3://b/a"]);
        let e = plan(
            "  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [1h] }]
    output: { parquet: [\"s3://b/a\", \"s3://b/a\", \"ftp://x\"] }
",
        )
        .unwrap_err();
        assert!(
            e.contains("features.v.output.parquet[1]") && e.contains("listed twice"),
            "{e}"
        );
        assert!(e.contains("features.v.output.parquet[2]"), "{e}");
        let e = plan(
            "  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [1h] }]
    output: { parquet: { url: x } }
",
        )
        .unwrap_err();
        assert!(e.contains("a URL or a list of URLs"), "{e}");
    }

    /// `format: debezium` on a topic whose schema is not Debezium's
    /// envelope is refused at the key, saying what an envelope has.
    #[test]
    fn a_debezium_table_whose_schema_is_not_an_envelope_is_located() {
        let text = "name: t
sources:
  events: { topic: events, key: user, event_time: ts }
tables:
  items: { topic: items, key: item, format: debezium }
features:
  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [1h] }]
";
        let loaded = crate::spec::parse(Path::new("v.yaml"), text).unwrap();
        let lookup = |topic: &str| -> Result<Option<Schema>, String> {
            Ok(Some(
                Schema::parse_str(if topic == "events" { EVENT } else { ITEM }).unwrap(),
            ))
        };
        let e = validate(&loaded, &lookup).unwrap_err();
        let e: Vec<String> = e.iter().map(|p| p.to_string()).collect();
        assert!(
            e.iter().any(|p| p.contains("tables.items.format") && p.contains("not a Debezium envelope")),
            "{e:?}"
        );
    }

    /// The stores' settings are checked where the spec is loaded, each
    /// located at its key.
    #[test]
    fn a_bad_online_store_setting_is_located_at_its_key() {
        let e = plan(
            "  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [1h] }]
    output:
      redis: { url: \"http//nowhere\", ttl: 0s }
      postgres: { url: \"postgresql://eddy@127.0.0.1:notaport/db\" }
      sqlite: { path: \" \" }
",
        )
        .unwrap_err();
        for key in [
            "features.v.output.redis.url",
            "features.v.output.redis.ttl",
            "features.v.output.postgres.url",
            "features.v.output.sqlite.path",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        assert!(e.contains("v.yaml:"), "{e}");
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
