//! The `serving:` section checked against the rest of the spec: triggers
//! and item tables exist, candidates are recommenders sharing one item
//! column, the ranker is an `ftrl` model that reads the item, rules parse.
//!
//! The section's document is `eddy_features::spec::serving`; the checks
//! live here, beside the code that serves, because they are about what
//! serving can do with the models. They run wherever a spec is loaded
//! (the binary registers [`shape`] with the spec loader) and again when a
//! service plans ([`crate::service`]).

use eddy_features::spec::{KeyPath, LoadedSpec, SpecProblem};
use eddy_training::plan::ModelKind;

/// Checks of the `serving:` section that need only the spec.
pub fn shape(loaded: &LoadedSpec) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    let mut problem = |path: KeyPath, msg: String| out.push(loaded.problem(&path, msg));
    let spec = &loaded.spec;
    let Some(s) = &spec.serving else {
        return out;
    };
    let at = KeyPath::default().key("serving");
    if s.trigger.is_none() && s.requests.is_none() {
        problem(
            at.clone(),
            "set `trigger` (a source of activity events) or `requests` (a topic of requests), or both".into(),
        );
    }
    if let Some(t) = &s.trigger
        && !spec.sources.contains_key(t)
    {
        let known: Vec<&String> = spec.sources.keys().collect();
        problem(
            at.key("trigger"),
            format!("unknown source `{t}`; the sources are {known:?}"),
        );
    }
    if s.candidates.is_empty() {
        problem(
            at.key("candidates"),
            "name at least one recommender model (`mf`, `cooccurrence` or `popularity`)".into(),
        );
    }
    let mut items = Vec::new();
    for (i, name) in s.candidates.iter().enumerate() {
        match spec.models.get(name) {
            Some(m) if ModelKind::named(&m.kind).is_some_and(|k| k.is_recommender()) => {
                items.push((i, name, m.item.clone()))
            }
            Some(m) => problem(
                at.key("candidates").index(i),
                format!(
                    "`{name}` is a `{}` model; candidates come from recommenders (`mf`, `cooccurrence`, `popularity`)",
                    m.kind
                ),
            ),
            None => {
                let known: Vec<&String> = spec.models.keys().collect();
                problem(
                    at.key("candidates").index(i),
                    format!("unknown model `{name}`; the models are {known:?}"),
                );
            }
        }
    }
    if let Some((_, first, item)) = items.first() {
        for (i, name, other) in &items[1..] {
            if other != item {
                problem(
                    at.key("candidates").index(*i),
                    format!(
                        "`{name}` recommends `{}` but `{first}` recommends `{}`: candidates must share one item column",
                        other.as_deref().unwrap_or("?"),
                        item.as_deref().unwrap_or("?")
                    ),
                );
            }
        }
    }
    if let Some(r) = &s.ranker {
        match spec.models.get(r) {
            Some(m) if ModelKind::named(&m.kind) == Some(ModelKind::Ftrl) => {
                let item = items.first().and_then(|i| i.2.clone());
                if let Some(item) = item
                    && !m.columns.contains(&item)
                {
                    problem(
                        at.key("ranker"),
                        format!(
                            "the ranker scores candidate items, so its `columns` must include the item column `{item}`"
                        ),
                    );
                }
            }
            Some(m) => problem(
                at.key("ranker"),
                format!(
                    "`{r}` is a `{}` model; the ranker is an `ftrl` model",
                    m.kind
                ),
            ),
            None => {
                let known: Vec<&String> = spec.models.keys().collect();
                problem(
                    at.key("ranker"),
                    format!("unknown model `{r}`; the models are {known:?}"),
                );
            }
        }
    }
    // The ranker reads a candidate's joined columns from the item table:
    // serving follows no other table.
    if let Some(m) = s.ranker.as_ref().and_then(|r| spec.models.get(r)) {
        for col in &m.columns {
            if let Some((table, _)) = col.split_once('.')
                && s.item_table.as_deref() != Some(table)
            {
                problem(
                    at.key("ranker"),
                    format!(
                        "the ranker reads `{col}`, a column of table `{table}`: serving reads a candidate's table columns from `item_table`, so set `item_table: {table}`"
                    ),
                );
            }
        }
    }
    // A re-keyed view the ranker reads is read at each candidate: its key
    // must be the candidates' item column.
    let item = items.first().and_then(|i| i.2.clone());
    let ranker_reads = |view: &str| {
        s.ranker
            .as_ref()
            .and_then(|r| spec.models.get(r))
            .and_then(|m| m.features.as_ref())
            .is_some_and(|f| f.iter().any(|v| v == view))
    };
    for (name, view) in &spec.features {
        if let Some(key) = view.key.as_ref().filter(|_| ranker_reads(name))
            && spec
                .sources
                .get(&view.source)
                .is_some_and(|src| *key != src.key)
            && item.as_ref().is_some_and(|i| i != key)
        {
            problem(
                at.key("ranker"),
                format!(
                    "the ranker reads view `{name}`, keyed by `{key}`: serving reads it at each candidate item, so it must be keyed by the item column `{}` (or leave it out of the ranker's `features`)",
                    item.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    if !s.rules.is_empty() && s.item_table.is_none() {
        problem(
            at.key("rules"),
            "rules read the item table: set `item_table`".into(),
        );
    }
    if let Some(t) = &s.item_table
        && !spec.tables.contains_key(t)
    {
        let known: Vec<&String> = spec.tables.keys().collect();
        problem(
            at.key("item_table"),
            format!("unknown table `{t}`; the tables are {known:?}"),
        );
    }
    use eddy_features::spec::serving::FeaturesFrom;
    if s.features_from != FeaturesFrom::Topics {
        for (name, view) in &spec.features {
            // Serving reads the views keyed like its users, and the
            // re-keyed ones (by item) its ranker reads at each candidate.
            let rekeyed = spec
                .sources
                .get(&view.source)
                .is_some_and(|src| view.key.as_ref().is_some_and(|k| *k != src.key))
                && !ranker_reads(name);
            let (store, has) = match s.features_from {
                FeaturesFrom::Redis => ("Redis", view.output.redis.is_some()),
                _ => ("PostgreSQL", view.output.postgres.is_some()),
            };
            let key = if store == "Redis" {
                "redis"
            } else {
                "postgres"
            };
            if !has && !rekeyed {
                problem(
                    at.key("features_from"),
                    format!(
                        "serving reads features from {store}, but view `{name}` has no `output.{key}`: add one, or read from `topics`"
                    ),
                );
            }
        }
    }
    if let Some(t) = s.item_table.as_ref().and_then(|t| spec.tables.get(t))
        && t.format.is_debezium()
    {
        problem(
            at.key("item_table"),
            "serving does not read Debezium change events yet: give it the table as rows (a topic of Avro rows), or leave item_table out".into(),
        );
    }
    for (i, sql) in s.rules.iter().enumerate() {
        if let Err(e) = polars::sql::sql_expr(sql) {
            problem(
                at.key("rules").index(i),
                format!("`{sql}` is not a SQL expression: {e}"),
            );
        }
    }
    if s.k == Some(0) {
        problem(at.key("k"), "must be at least 1".into());
    }
    if let Some(e) = s.exploration.epsilon
        && !(0.0..=1.0).contains(&e)
    {
        problem(
            at.key("exploration").key("epsilon"),
            format!("{e} is not a probability"),
        );
    }
    out
}
