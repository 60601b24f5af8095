//! Checks of a spec that need nothing but the spec: references between
//! sections, window and operator constraints, SQL that parses, storage
//! URLs. They run when a spec is loaded, before any topic is read; the
//! schema-aware checks come after, in `validate`.

use std::collections::BTreeSet;

use super::{AggregationSpec, KeyPath, LoadedSpec, Op, SpecProblem, Window};

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
        let Some(_) = spec.sources.get(&view.source) else {
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
        if let Some(r) = &view.output.redis {
            let at = at.key("output").key("redis");
            if let Err(e) = redis::Client::open(r.url.as_str()) {
                problem(
                    at.key("url"),
                    format!("not a Redis URL (redis://host:port/db): {e}"),
                );
            }
            if r.ttl.is_some_and(|t| t.0 <= 0) {
                problem(
                    at.key("ttl"),
                    "a TTL must be positive; leave it out for keys that never expire".into(),
                );
            }
        }
        if let Some(pg) = &view.output.postgres
            && let Err(e) = pg.url.parse::<postgres::Config>()
        {
            problem(
                at.key("output").key("postgres").key("url"),
                format!("not a PostgreSQL URL (postgresql://user@host:port/db): {e}"),
            );
        }
        if let Some(lite) = &view.output.sqlite
            && lite.path.trim().is_empty()
        {
            problem(
                at.key("output").key("sqlite").key("path"),
                "name the database file (`./eddy-data/online.db`)".into(),
            );
        }
        let urls = &view.output.parquet.0;
        for (i, url) in urls.iter().enumerate() {
            // A single URL is located at the key, one of a list by index.
            let at = match urls.len() {
                1 => at.key("output").key("parquet"),
                _ => at.key("output").key("parquet").index(i),
            };
            if let Err(e) = crate::store::parse_url(url) {
                problem(at, e.to_string());
            } else if urls[..i].contains(url) {
                problem(
                    at,
                    format!(
                        "`{url}` is listed twice: both writers would write the same part files"
                    ),
                );
            }
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
    // JSON carries no registered schema: its columns are declared, and only
    // there (an Avro topic's come from its schema).
    let declared = spec
        .sources
        .iter()
        .map(|(n, s)| (root.key("sources").key(n), s.format, s.columns.as_ref()))
        .chain(
            spec.tables
                .iter()
                .map(|(n, t)| (root.key("tables").key(n), t.format, t.columns.as_ref())),
        );
    for (at, format, columns) in declared {
        match (format, columns) {
            (super::RecordFormat::DebeziumJson, None) => problem(
                at.key("format"),
                "`debezium_json` needs `columns:` (the row's columns and types: long, double, string, boolean): JSON has no registered schema".into(),
            ),
            (super::RecordFormat::DebeziumJson, Some(c)) if c.is_empty() => {
                problem(at.key("columns"), "declare at least one column".into())
            }
            (super::RecordFormat::Avro | super::RecordFormat::Debezium, Some(_)) => problem(
                at.key("columns"),
                "`columns:` is for `format: debezium_json`; an Avro topic's columns come from its registered schema".into(),
            ),
            _ => {}
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
