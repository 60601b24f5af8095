//! The `serving:` section: real-time recommendations onto a topic.
//!
//! `eddy serve SPEC` reads it. Triggers are the user's activity events (a
//! source) and explicit requests (a topic). Candidates come from the
//! spec's recommender models, a ranker (an `ftrl` model) orders them, and
//! the result goes to a topic as Avro. The section only declares; the
//! serving component lives in the `eddy-serving` crate.

use serde::{Deserialize, Serialize};

use super::{KeyPath, LoadedSpec, ModelKind};

/// How recommendations are made and where they go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSpec {
    /// A source whose events each ask for a recommendation for their key
    /// (the user's activity). Default: none.
    #[serde(default)]
    pub trigger: Option<String>,
    /// A topic of explicit requests: Avro records with `request_id`,
    /// `user_id`, and optional `k` and `context`. Default: none. At least
    /// one of `trigger` and `requests` is required.
    #[serde(default)]
    pub requests: Option<String>,
    /// Recommender models (`mf`, `cooccurrence`, `popularity`) that give
    /// candidates, by name, most specific first; a user none of them
    /// knows gets the last one's items (use `popularity` last). Required.
    pub candidates: Vec<String>,
    /// Candidates taken from each recommender. Default 100.
    #[serde(default)]
    pub candidates_per_model: Option<usize>,
    /// An `ftrl` model whose inputs include the item column: it scores
    /// every candidate for the user. Default: none (candidates keep their
    /// recommenders' scores, first recommender first).
    #[serde(default)]
    pub ranker: Option<String>,
    /// Items per recommendation when a request does not say. Default 10.
    #[serde(default)]
    pub k: Option<usize>,
    /// Leave out items the user has already engaged with (seen in trigger
    /// events). Default true.
    #[serde(default)]
    pub exclude_seen: Option<bool>,
    /// Items remembered per user for `exclude_seen`, newest kept. Default
    /// 1000.
    #[serde(default)]
    pub history: Option<usize>,
    /// The table of items (keyed by item id) that `rules` read, and that
    /// the ranker reads a candidate's own columns from: a ranker input
    /// that is also a column of this table (a price) is the candidate's
    /// value, not the triggering event's. Default: none; required with
    /// `rules`.
    #[serde(default)]
    pub item_table: Option<String>,
    /// Business rules: SQL conditions over the item table's columns. An
    /// item is recommended only if every rule is true for its current
    /// row (an item without a row fails them). Default: none.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Exploration for cold items. Default: off.
    #[serde(default)]
    pub exploration: ExplorationSpec,
    /// The topic recommendations go to; its value schema is registered
    /// as `<topic>-value`. Default `recommendations`.
    #[serde(default)]
    pub topic: Option<String>,
    /// What a request gets while a candidate model has not loaded yet:
    /// `fallback` (whatever models have loaded; nothing if none) or
    /// `hold` (wait until every model has loaded). Default `fallback`.
    #[serde(default)]
    pub when_not_ready: NotReady,
}

/// Exploration for cold items.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExplorationSpec {
    /// `off`, `epsilon_greedy` or `thompson`. Default `off`.
    #[serde(default)]
    pub mode: ExplorationMode,
    /// `epsilon_greedy`: the chance a slot goes to a cold item. Default 0.1.
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// `thompson`: slots at the end given to sampled cold items. Default 2.
    #[serde(default)]
    pub slots: Option<usize>,
    /// Items shown fewer times than this are cold. Default 100.
    #[serde(default)]
    pub cold_below: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
/// How exploration picks cold items.
pub enum ExplorationMode {
    #[default]
    /// No exploration.
    Off,
    /// Each slot, with probability `epsilon`, goes to a random cold item.
    EpsilonGreedy,
    /// The last slots go to cold items sampled by their click posterior.
    Thompson,
}

/// Requests before the models have loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotReady {
    #[default]
    /// Answer with what has loaded (popularity, say).
    Fallback,
    /// Wait until every model has loaded.
    Hold,
}

impl ServingSpec {
    /// The recommendations topic.
    pub fn topic(&self) -> String {
        self.topic
            .clone()
            .unwrap_or_else(|| "recommendations".to_string())
    }
}

/// Checks of the `serving:` section that need only the spec.
pub(crate) fn shape(loaded: &LoadedSpec, problem: &mut dyn FnMut(KeyPath, String)) {
    let spec = &loaded.spec;
    let Some(s) = &spec.serving else {
        return;
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
            Some(m) if m.kind.is_recommender() => items.push((i, name, m.item.clone())),
            Some(m) => problem(
                at.key("candidates").index(i),
                format!(
                    "`{name}` is a `{}` model; candidates come from recommenders (`mf`, `cooccurrence`, `popularity`)",
                    m.kind.name()
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
            Some(m) if m.kind == ModelKind::Ftrl => {
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
                    m.kind.name()
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
}
