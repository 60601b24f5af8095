//! Planning a model against its sources' columns and the views: its
//! label and filters typed, its inputs resolved (features, event columns,
//! table columns joined through a view), its delayed label's `on` column.

use indexmap::IndexMap;

use eddy_features::engine::delayed::DelayedPlan;
use eddy_features::engine::job::TableColumn;
use eddy_features::spec::validate::{
    ColumnType, Columns, ViewPlan, expression_type, feature_columns,
};
use eddy_features::spec::{KeyPath, LoadedSpec, SpecProblem};

use super::{InputFrom, ModelInput, ModelJoin, ModelKind, ModelPlan};

/// The name of an input: a joined `TABLE.COLUMN` is `TABLE_COLUMN`, the
/// name `eddy backfill` gives its column in a training set, so `eddy
/// learn` hashes it exactly as the live model does.
fn input_name(column: &str) -> String {
    column.replace('.', "_")
}

/// The table columns the models of each source name, in a fixed order,
/// resolved through the views that join them. Problems go to `problems`.
fn joined_columns(
    loaded: &LoadedSpec,
    source_columns: &IndexMap<String, Columns>,
    views: &[ViewPlan],
    problems: &mut Vec<SpecProblem>,
) -> IndexMap<String, Vec<ModelJoin>> {
    let mut out: IndexMap<String, Vec<ModelJoin>> = IndexMap::new();
    for (name, m) in &loaded.spec.models {
        let Some(columns) = source_columns.get(&m.source) else {
            continue;
        };
        for (i, col) in m.columns.iter().enumerate() {
            let Some((table, column)) = col.split_once('.') else {
                continue;
            };
            let at = KeyPath::default()
                .key("models")
                .key(name)
                .key("columns")
                .index(i);
            let found = views
                .iter()
                .filter(|v| v.source == m.source)
                .flat_map(|v| &v.joins)
                .filter(|j| j.table == table)
                .find_map(|j| {
                    let (_, t) = j.select.iter().find(|(c, _)| c == column)?;
                    Some((columns.get_index_of(&j.on)?, t.clone()))
                });
            let Some((on, column_type)) = found else {
                problems.push(loaded.problem(
                    &at,
                    format!(
                        "`{col}`: no view of `{}` joins `{table}` selecting `{column}`; a model reads a table column through a view's join (add `{column}` to its `select`)",
                        m.source
                    ),
                ));
                continue;
            };
            let list = out.entry(m.source.clone()).or_default();
            if !list
                .iter()
                .any(|j| j.column.table == table && j.column.column == column)
            {
                list.push(ModelJoin {
                    column: TableColumn {
                        table: table.to_string(),
                        on,
                        column: column.to_string(),
                    },
                    column_type,
                });
            }
        }
    }
    out
}

/// Resolves every model against its source's columns and the views.
/// `source_columns` holds the columns of every source by name. The checks
/// of [`super::shape`] run first: a plan is only made of a model that
/// passes them.
pub fn plan(
    loaded: &LoadedSpec,
    source_columns: &IndexMap<String, Columns>,
    views: &[ViewPlan],
) -> Result<Vec<ModelPlan>, Vec<SpecProblem>> {
    let spec = &loaded.spec;
    let mut problems = super::shape(loaded);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut plans = Vec::new();
    let features = feature_columns(views);
    let joined = joined_columns(loaded, source_columns, views, &mut problems);
    for (name, m) in &spec.models {
        let at = KeyPath::default().key("models").key(name);
        let (Some(kind), params) = (ModelKind::named(&m.kind), &m.params) else {
            // `shape` reported it.
            continue;
        };
        let params = match kind.params(params) {
            Ok(p) => p,
            // `shape` reported it.
            Err(_) => continue,
        };
        let source_joins = joined.get(&m.source).cloned().unwrap_or_default();
        let Some(columns) = source_columns.get(&m.source) else {
            continue;
        };
        let unknown =
            |what: &str, known: Vec<&String>| format!("unknown {what}; the choices are {known:?}");
        // A filter is a condition: it must give true or false.
        let mut condition = |columns: &Columns, sql: &Option<String>, key: KeyPath| {
            let sql = sql.as_ref()?;
            match expression_type(columns, sql) {
                Ok(ColumnType::Boolean) => {}
                Ok(t) => problems.push(loaded.problem(
                    &key,
                    format!("`{sql}` gives {t:?}; a filter is a condition (true or false)"),
                )),
                Err(e) => problems.push(loaded.problem(&key, e)),
            }
            Some(sql.clone())
        };
        let filter = condition(columns, &m.filter, at.key("filter"));
        let label_filter = m.delayed_label.as_ref().and_then(|d| {
            condition(
                source_columns.get(&d.source)?,
                &d.filter,
                at.key("delayed_label").key("filter"),
            )
        });
        let label = match &m.label {
            None => None,
            Some(sql) => match expression_type(columns, sql) {
                Err(e) => {
                    problems.push(loaded.problem(&at.key("label"), e));
                    None
                }
                Ok(t) => {
                    let (fits, want) = match kind {
                        ModelKind::Ftrl => (
                            matches!(t, ColumnType::Boolean) || t.is_numeric(),
                            "a boolean or a 0/1 number",
                        ),
                        ModelKind::Linear => (t.is_numeric(), "a number"),
                        ModelKind::Mf | ModelKind::Cooccurrence | ModelKind::Popularity => (
                            matches!(t, ColumnType::Boolean),
                            "a boolean (which events are positive interactions)",
                        ),
                    };
                    if !fits {
                        problems.push(loaded.problem(
                            &at.key("label"),
                            format!("`{sql}` gives {t:?}; a `{}` label is {want}", kind.name()),
                        ));
                    }
                    Some((sql.clone(), t))
                }
            },
        };
        let item = match &m.item {
            None => None,
            Some(col) => match columns.get_index_of(col) {
                Some(i) => {
                    let t = columns[i].clone();
                    if !matches!(t, ColumnType::Long | ColumnType::String) {
                        problems.push(loaded.problem(
                            &at.key("item"),
                            format!("item column `{col}` is {t:?}; items are long or string ids"),
                        ));
                    }
                    Some((i, t))
                }
                None => {
                    problems.push(loaded.problem(
                        &at.key("item"),
                        unknown(&format!("column `{col}`"), columns.keys().collect()),
                    ));
                    None
                }
            },
        };
        let delayed = match &m.delayed_label {
            None => None,
            Some(d) => {
                let at = at.key("delayed_label");
                let on = match (&d.on, source_columns.get(&d.source)) {
                    (Some(col), Some(label_columns)) => {
                        match (columns.get_index_of(col), label_columns.get_index_of(col)) {
                            (Some(a), Some(b)) if columns[a] == label_columns[b] => Some((a, b)),
                            (Some(a), Some(b)) => {
                                problems.push(loaded.problem(
                                    &at.key("on"),
                                    format!(
                                        "`{col}` is {:?} in `{}` and {:?} in `{}`; they must match",
                                        columns[a], m.source, label_columns[b], d.source
                                    ),
                                ));
                                None
                            }
                            _ => {
                                problems.push(loaded.problem(
                                    &at.key("on"),
                                    format!(
                                        "`{col}` must be a column of both `{}` and `{}`",
                                        m.source, d.source
                                    ),
                                ));
                                None
                            }
                        }
                    }
                    _ => None,
                };
                Some(DelayedPlan {
                    source: d.source.clone(),
                    filter: label_filter,
                    source_columns: source_columns.get(&d.source).cloned().unwrap_or_default(),
                    within_ms: d.within.0,
                    on,
                    max_pending: d.max_pending.unwrap_or(1_000_000),
                })
            }
        };
        let mut inputs = Vec::new();
        if !kind.is_recommender() {
            // By default the views keyed like the events; a re-keyed view
            // (an item's) is read when named, at the event's value of its
            // key, so it must be a view of the model's own source.
            let chosen: Vec<&ViewPlan> = match &m.features {
                None => views.iter().filter(|p| !p.rekeyed).collect(),
                Some(names) => {
                    let mut out = Vec::new();
                    for (i, v) in names.iter().enumerate() {
                        match views.iter().find(|p| &p.name == v) {
                            Some(p) if p.rekeyed && p.source != m.source => {
                                problems.push(loaded.problem(
                                    &at.key("features").index(i),
                                    format!(
                                        "view `{v}` is keyed by `{}` over source `{}`: a model of `{}` has no `{}` to read it at (name views of its own source)",
                                        p.key, p.source, m.source, p.key
                                    ),
                                ))
                            }
                            Some(p) => out.push(p),
                            None => problems.push(loaded.problem(
                                &at.key("features").index(i),
                                unknown(
                                    &format!("view `{v}`"),
                                    views.iter().map(|p| &p.name).collect(),
                                ),
                            )),
                        }
                    }
                    out
                }
            };
            let mut f = 0;
            for view in views {
                for _ in &view.features {
                    if chosen.iter().any(|c| c.name == view.name) {
                        let (name, t) = &features[f];
                        inputs.push(ModelInput {
                            name: name.clone(),
                            from: if view.rekeyed {
                                InputFrom::KeyedFeature(f)
                            } else {
                                InputFrom::Feature(f)
                            },
                            column_type: t.clone(),
                            categorical: false,
                        });
                    }
                    f += 1;
                }
            }
            for (i, col) in m.columns.iter().enumerate() {
                if let Some(j) = source_joins.iter().position(|j| &j.name() == col) {
                    inputs.push(ModelInput {
                        name: input_name(col),
                        from: InputFrom::Column(columns.len() + j),
                        column_type: source_joins[j].column_type.clone(),
                        categorical: false,
                    });
                    continue;
                }
                if col.contains('.') {
                    // Reported by `joined_columns`.
                    continue;
                }
                match columns.get_index_of(col) {
                    Some(_) if inputs.iter().any(|x| &x.name == col) => {
                        problems.push(loaded.problem(
                            &at.key("columns").index(i),
                            format!("`{col}` is also a feature's name; inputs need distinct names"),
                        ));
                    }
                    Some(c) => inputs.push(ModelInput {
                        name: col.clone(),
                        from: InputFrom::Column(c),
                        column_type: columns[c].clone(),
                        categorical: false,
                    }),
                    None => problems.push(loaded.problem(
                        &at.key("columns").index(i),
                        unknown(&format!("column `{col}`"), columns.keys().collect()),
                    )),
                }
            }
            let names: Vec<String> = inputs.iter().map(|x| x.name.clone()).collect();
            for (i, c) in m.categorical.iter().enumerate() {
                match inputs.iter().position(|x| x.name == input_name(c)) {
                    Some(x) => inputs[x].categorical = true,
                    None => problems.push(loaded.problem(
                        &at.key("categorical").index(i),
                        unknown(&format!("input `{c}`"), names.iter().collect()),
                    )),
                }
            }
            for (i, pair) in m.crosses.iter().enumerate() {
                for (j, c) in pair.iter().enumerate() {
                    if !names.contains(&input_name(c)) {
                        problems.push(loaded.problem(
                            &at.key("crosses").index(i).index(j),
                            unknown(&format!("input `{c}`"), names.iter().collect()),
                        ));
                    }
                }
            }
            if inputs.is_empty() {
                problems.push(loaded.problem(
                    &at,
                    "the model has no inputs: name `features` views or event `columns`",
                ));
            }
        }
        let source = &spec.sources[&m.source];
        plans.push(ModelPlan {
            name: name.clone(),
            source: m.source.clone(),
            source_topic: source.topic.clone(),
            source_columns: columns.clone(),
            label,
            delayed,
            filter,
            joined: source_joins,
            item,
            inputs,
            crosses: m
                .crosses
                .iter()
                .map(|[a, b]| (input_name(a), input_name(b)))
                .collect(),
            params,
            topic: m.topic.clone().unwrap_or_else(|| "models".to_string()),
            snapshot_every: m.snapshot_every.unwrap_or(10),
            metrics_topic: m
                .metrics_topic
                .clone()
                .unwrap_or_else(|| "models.metrics".to_string()),
        });
    }
    if problems.is_empty() {
        Ok(plans)
    } else {
        Err(problems)
    }
}
