//! The `serving:` section: real-time recommendations onto a topic.
//!
//! `eddy serve SPEC` reads it. Triggers are the user's activity events (a
//! source) and explicit requests (a topic). Candidates come from the
//! spec's recommender models, a ranker (an `ftrl` model) orders them, and
//! the result goes to a topic as Avro. The section only declares; the
//! serving component, and the checks of this section against the models,
//! live in the `eddy-serving` crate (its `plan` module).

use serde::{Deserialize, Serialize};

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
    /// every candidate for the user. With `learned_order` its probability
    /// is one of the learned order's features; without, it is the order.
    /// Default: none.
    #[serde(default)]
    pub ranker: Option<String>,
    /// Order the candidates by a model serving trains on its own
    /// recommendations and what each user did next (which source, at
    /// which rank, for which user, leads to engagement; see
    /// `eddy_training::recommend::rank`). It starts as reciprocal rank
    /// fusion and learns from every trigger. `false`: the `ranker`'s
    /// order, or without one the first recommender's items first.
    /// Default true.
    #[serde(default)]
    pub learned_order: Option<bool>,
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
    /// Where `eddy serve` reads the user's features: `topics` (it follows
    /// the feature topics and keeps every row in memory), `redis` (it
    /// reads each request's rows from the views' `output.redis`: every
    /// view keyed like the users needs one) or `postgres` (likewise from
    /// the views' `output.postgres` tables). Default `topics`. `eddy run
    /// --serve` reads the job's tables in process either way.
    #[serde(default)]
    pub features_from: FeaturesFrom,
}

/// Where serving reads features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeaturesFrom {
    #[default]
    /// The feature topics, materialized in memory.
    Topics,
    /// The views' online store (Redis), per request.
    Redis,
    /// The views' PostgreSQL tables, per request.
    Postgres,
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
