//! The `models:` section: incremental learners trained by `eddy run`.
//!
//! A model learns from the events of one source. Each event is one
//! example: its features are the spec's views read for the event's key as
//! of just before the event (the same point-in-time read a backfill's
//! training set makes, so online and offline examples are identical), plus
//! raw fields of the event. The label is a SQL expression over the event.
//!
//! The spec only declares models; the learners themselves live in the
//! `eddy-training` crate, which plugs into the job through
//! [`crate::engine::job::Learners`]. Keeping the declaration here means a
//! bad model section is reported with file, line and key like every other
//! spec problem, before anything runs.

use serde::{Deserialize, Serialize};

use super::Millis;
use super::validate::{ColumnType, Columns};

mod plan;
mod shape;

pub use plan::plan;
pub(crate) use shape::shape;

/// One model.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// What learns: `ftrl` (logistic regression by FTRL-Proximal, for
    /// clicks and likes), `linear` (FTRL with squared loss, for ratings),
    /// or a recommender: `mf` (streaming matrix factorization by BPR),
    /// `cooccurrence` (item-to-item with time decay) or `popularity`
    /// (decayed counts, the fallback for new users). Required.
    pub kind: ModelKind,
    /// The source whose events are examples. Required.
    pub source: String,
    /// A SQL expression over the event's columns. For `ftrl` a boolean (or
    /// 0/1) label: required. For `linear` the number to predict: required.
    /// For recommenders, which events are positive interactions. Default
    /// (recommenders only): every event.
    #[serde(default)]
    pub label: Option<String>,
    /// Labels that arrive later, on another source (impression → click):
    /// `ftrl` only, instead of `label`. Default: none (the label is in the
    /// event).
    #[serde(default)]
    pub delayed_label: Option<DelayedLabelSpec>,
    /// A SQL condition over the source's events: only the events it holds
    /// become examples (or, for recommenders, interactions), as SQL's
    /// `WHERE` (a null condition leaves the event out). One topic often
    /// carries several kinds of event, such as views and clicks. Default:
    /// every event.
    #[serde(default)]
    pub filter: Option<String>,
    /// The item column (recommenders). Required for `mf`, `cooccurrence`
    /// and `popularity`; the user is the source's key.
    #[serde(default)]
    pub item: Option<String>,
    /// Views whose features are inputs (`ftrl`, `linear`), read for the
    /// event's key as of just before the event. Default: every view.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Raw event columns that are inputs too (`ftrl`, `linear`), and
    /// `TABLE.COLUMN` for a column a view of the source joins from a
    /// table (`items.category`: the row valid at the event's time, looked
    /// up by the view's join key). Strings and booleans are categories;
    /// numbers are numbers unless listed in `categorical`. Default: none.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Numeric inputs (event columns or features) to treat as categories,
    /// such as ids. Default: none.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Pairs of inputs crossed quadratically, like VW's `-q` (for example
    /// `[userId, genres]`). Default: none.
    #[serde(default)]
    pub crosses: Vec<[String; 2]>,
    /// Hyper-parameters; each applies to the kinds it names. Default: see
    /// [`ModelParams`].
    #[serde(default)]
    pub params: ModelParams,
    /// The compacted topic updates go to: sparse deltas after every
    /// checkpoint and a full snapshot every `snapshot_every` of them
    /// (recommenders send snapshots only). Default `models`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Syncs between full snapshots on the topic. Default 10.
    #[serde(default)]
    pub snapshot_every: Option<u64>,
    /// The topic progressive metrics go to, as JSON, after every
    /// checkpoint. Default `models.metrics`.
    #[serde(default)]
    pub metrics_topic: Option<String>,
}

/// A label that arrives after the example, on another source.
///
/// Each example's prediction and features are held until an event of
/// `source` with the same key (and the same `on` value) arrives within
/// `within` of it: a positive. When the window ends without one, the
/// example is a negative. The model learns from exactly the features it
/// predicted with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DelayedLabelSpec {
    /// The source whose events are the positive labels (clicks); it is
    /// keyed and partitioned like the model's source. It may be the
    /// model's own source when `filter` tells labels from examples.
    /// Required.
    pub source: String,
    /// A SQL condition over the label source's events: only the events it
    /// holds are labels (`event_type = 'click'`). Default: every event.
    #[serde(default)]
    pub filter: Option<String>,
    /// The attribution window, in event time. Required.
    pub within: Millis,
    /// A column both sources have, such as the item id: a label resolves
    /// the example with the same key and the same value of it. Default:
    /// the key alone (the key's latest pending example).
    #[serde(default)]
    pub on: Option<String>,
    /// Examples held at most; beyond it the oldest resolves early as a
    /// negative, and is counted. Default 1000000.
    #[serde(default)]
    pub max_pending: Option<usize>,
}

/// A resolved delayed label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayedPlan {
    /// The label source.
    pub source: String,
    /// Which of the label source's events are labels (SQL), if not all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The label source's columns, in the order its events carry them.
    #[serde(default)]
    pub source_columns: Columns,
    /// The attribution window, ms of event time.
    pub within_ms: i64,
    /// The `on` column's index in the model's source and in the label
    /// source.
    pub on: Option<(usize, usize)>,
    /// Examples held at most per partition.
    pub max_pending: usize,
}

/// A table column joined onto a source's events for its models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelJoin {
    /// The table.
    pub table: String,
    /// The source's column the table is looked up by (the views' join
    /// key), by index.
    pub on: usize,
    /// The table's column.
    pub column: String,
    /// Its type.
    pub column_type: ColumnType,
}

impl ModelJoin {
    /// How a model names it: `TABLE.COLUMN`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// The learner of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic regression by FTRL-Proximal.
    Ftrl,
    /// FTRL on squared loss.
    Linear,
    /// Streaming matrix factorization (BPR).
    Mf,
    /// Item-to-item co-occurrence.
    Cooccurrence,
    /// Decayed popularity.
    Popularity,
}

impl ModelKind {
    /// The kind as the spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Ftrl => "ftrl",
            ModelKind::Linear => "linear",
            ModelKind::Mf => "mf",
            ModelKind::Cooccurrence => "cooccurrence",
            ModelKind::Popularity => "popularity",
        }
    }

    /// Recommenders learn from (user, item) interactions, not features.
    pub fn is_recommender(&self) -> bool {
        matches!(
            self,
            ModelKind::Mf | ModelKind::Cooccurrence | ModelKind::Popularity
        )
    }
}

/// Hyper-parameters. Each names the kinds it applies to; setting one for
/// another kind is an error, so a typo cannot silently do nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// `ftrl`, `linear`: the model has 2^bits weights. Default 20.
    pub bits: Option<u32>,
    /// `ftrl`, `linear`: per-coordinate learning rate scale. Default 0.2.
    pub alpha: Option<f64>,
    /// `ftrl`, `linear`: learning rate smoothing. Default 1.
    pub beta: Option<f64>,
    /// `ftrl`, `linear`: L1 regularization (sparsity). Default 0.5.
    pub l1: Option<f64>,
    /// `ftrl`, `linear`: L2 regularization. Default 1.
    pub l2: Option<f64>,
    /// `ftrl`, `linear`: how numeric inputs enter the model: `log`, as
    /// sign(x)·ln(1 + |x|), or `raw`. Counts and sums span orders of
    /// magnitude, and raw they make the first predictions wildly
    /// overconfident; `eddy learn --numeric` offers the same choice.
    /// Default `log`.
    pub numeric: Option<Numeric>,
    /// `mf`: embedding size. Default 32.
    pub dim: Option<usize>,
    /// `mf`: SGD learning rate. Default 0.05.
    pub learning_rate: Option<f32>,
    /// `mf`: L2 regularization of embeddings. Default 0.002.
    pub regularization: Option<f32>,
    /// `mf`: negatives sampled per interaction. Default 4.
    pub negatives: Option<usize>,
    /// `mf`: sightings before an id gets an embedding. Default 1.
    pub min_count: Option<u32>,
    /// `mf`: embeddings untouched this long (event time) are dropped.
    /// Default `365d`.
    pub ttl: Option<Millis>,
    /// `cooccurrence`, `popularity`: half-life of an interaction's weight.
    /// Default `30d`.
    pub half_life: Option<Millis>,
    /// `cooccurrence`: recent items per user that pair with the next.
    /// Default 5.
    pub recent: Option<usize>,
    /// `cooccurrence`: engagements further apart do not pair. Default `1d`.
    pub session_gap: Option<Millis>,
    /// `cooccurrence`: neighbors kept per item. Default 200.
    pub max_neighbors: Option<usize>,
    /// Recommenders: the k of the progressive HR@k and NDCG@k. Default 10.
    pub k: Option<usize>,
}

impl ModelParams {
    /// (key, kinds it applies to) for every key that is set.
    fn set_keys(&self) -> Vec<(&'static str, &'static [ModelKind])> {
        use ModelKind::*;
        const LINEAR: &[ModelKind] = &[Ftrl, Linear];
        let mut out = Vec::new();
        let mut check = |set: bool, key, kinds| {
            if set {
                out.push((key, kinds));
            }
        };
        check(self.bits.is_some(), "bits", LINEAR);
        check(self.alpha.is_some(), "alpha", LINEAR);
        check(self.beta.is_some(), "beta", LINEAR);
        check(self.l1.is_some(), "l1", LINEAR);
        check(self.l2.is_some(), "l2", LINEAR);
        check(self.numeric.is_some(), "numeric", LINEAR);
        check(self.dim.is_some(), "dim", &[Mf]);
        check(self.learning_rate.is_some(), "learning_rate", &[Mf]);
        check(self.regularization.is_some(), "regularization", &[Mf]);
        check(self.negatives.is_some(), "negatives", &[Mf]);
        check(self.min_count.is_some(), "min_count", &[Mf]);
        check(self.ttl.is_some(), "ttl", &[Mf]);
        check(
            self.half_life.is_some(),
            "half_life",
            &[Cooccurrence, Popularity],
        );
        check(self.recent.is_some(), "recent", &[Cooccurrence]);
        check(self.session_gap.is_some(), "session_gap", &[Cooccurrence]);
        check(
            self.max_neighbors.is_some(),
            "max_neighbors",
            &[Cooccurrence],
        );
        check(self.k.is_some(), "k", &[Mf, Cooccurrence, Popularity]);
        out
    }
}

/// How numeric inputs of a linear model are transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Numeric {
    /// sign(x)·ln(1 + |x|).
    #[default]
    Log,
    /// As they are.
    Raw,
}

impl Numeric {
    /// `x` transformed.
    pub fn apply(&self, x: f64) -> f64 {
        match self {
            Numeric::Log => x.signum() * x.abs().ln_1p(),
            Numeric::Raw => x,
        }
    }
}

/// Where a model input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputFrom {
    /// A raw event column (index into the source's columns).
    Column(usize),
    /// A feature (index into every feature of every view, view after view,
    /// each in its feature order: the order of a probe's columns).
    Feature(usize),
}

/// One input of a linear model: a namespace of hashed features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInput {
    /// The namespace: the column's or feature's name.
    pub name: String,
    /// Where the value comes from.
    pub from: InputFrom,
    /// Its type.
    pub column_type: ColumnType,
    /// Hash the value as a category even if it is a number.
    pub categorical: bool,
}

/// A validated model, resolved against the sources and views.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelPlan {
    /// The model's name.
    pub name: String,
    /// What learns.
    pub kind: ModelKind,
    /// The examples' source.
    pub source: String,
    /// That source's topic.
    pub source_topic: String,
    /// The source's columns, in the order events carry them.
    pub source_columns: Columns,
    /// The label SQL and its type, if any.
    pub label: Option<(String, ColumnType)>,
    /// The delayed label, if the label is not in the event.
    pub delayed: Option<DelayedPlan>,
    /// Which of the source's events are examples (SQL), if not all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Table columns joined onto every event of the source, as of its
    /// time, for the models of the source that name them: the same list,
    /// in the same order, in every model of the source. An input
    /// `Column(c)` with `c` past the source's columns is
    /// `joined[c - source_columns.len()]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<ModelJoin>,
    /// The item column's index and type (recommenders).
    pub item: Option<(usize, ColumnType)>,
    /// The inputs of a linear model.
    pub inputs: Vec<ModelInput>,
    /// Crossed pairs of inputs, by name.
    pub crosses: Vec<(String, String)>,
    /// Hyper-parameters as the spec gives them.
    pub params: ModelParams,
    /// The models topic.
    pub topic: String,
    /// Syncs between full snapshots.
    pub snapshot_every: u64,
    /// The metrics topic.
    pub metrics_topic: String,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn problems(models: &str) -> String {
        let text = format!(
            "name: t
sources:
  a: {{ topic: a, key: k, event_time: ts }}
  b: {{ topic: b, key: k, event_time: ts }}
features:
  v:
    source: a
    aggregations: [{{ name: n, op: count, windows: [lifetime] }}]
models:
{models}"
        );
        match crate::spec::parse(Path::new("m.yaml"), &text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn model_shape_problems_name_file_line_and_key() {
        let p = problems(
            "  m:\n    kind: linear\n    source: a\n    delayed_label: { source: a, within: 0s }\n    columns: [x]\n",
        );
        assert!(
            p.contains("m.yaml:13: key `models.m.delayed_label`: a delayed label is a click after an impression: it applies to `ftrl`"),
            "{p}"
        );
        assert!(
            p.contains("key `models.m.delayed_label.source`: labels from the examples' own source need `delayed_label.filter`"),
            "{p}"
        );
        assert!(
            p.contains(
                "key `models.m.delayed_label.within`: the attribution window must be longer than 0"
            ),
            "{p}"
        );
        let p = problems(
            "  r:\n    kind: mf\n    source: c\n    columns: [x]\n    params: { bits: 3 }\n",
        );
        assert!(
            p.contains("m.yaml:11: key `models.r.kind`: a `mf` model needs `item:`"),
            "{p}"
        );
        assert!(
            p.contains("key `models.r.source`: unknown source `c`"),
            "{p}"
        );
        assert!(
            p.contains("key `models.r.columns`: a `mf` recommender learns from (user, item) pairs"),
            "{p}"
        );
        assert!(
            p.contains("key `models.r.params.bits`: `bits` does not apply to a `mf` model"),
            "{p}"
        );
        let p = problems(
            "  f:\n    kind: ftrl\n    source: a\n    columns: [x]\n    params: { nope: 1 }\n",
        );
        assert!(p.contains("models.f.params"), "{p}");
        assert!(p.contains("unknown field `nope`"), "{p}");
        assert!(problems("  f:\n    kind: ftrl\n    source: a\n    label: \"x > 1\"\n    delayed_label: { source: b, within: 1m }\n").contains("not both"));
        assert_eq!(
            problems(
                "  f:\n    kind: ftrl\n    source: a\n    delayed_label: { source: b, within: 1m, on: item }\n"
            ),
            ""
        );
        // Views and clicks on one topic: the filters tell them apart.
        assert_eq!(
            problems(
                "  f:\n    kind: ftrl\n    source: a\n    filter: \"kind = 'view'\"\n    delayed_label: { source: a, within: 1m, filter: \"kind = 'click'\" }\n"
            ),
            ""
        );
    }

    /// Plans `models` against sources `a` and `b`, each with columns
    /// `k` (long), `kind` (string) and `x` (double).
    fn plan_problems(models: &str) -> String {
        use crate::spec::validate::ColumnType;
        let text = format!(
            "name: t\nsources:\n  a: {{ topic: a, key: k, event_time: ts }}\n  b: {{ topic: b, key: k, event_time: ts }}\nfeatures:\n  v:\n    source: a\n    aggregations: [{{ name: n, op: count, windows: [lifetime] }}]\nmodels:\n{models}"
        );
        let loaded = crate::spec::parse(Path::new("m.yaml"), &text).expect("shape");
        let columns: crate::spec::validate::Columns = [
            ("k", ColumnType::Long),
            ("kind", ColumnType::String),
            ("x", ColumnType::Double),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
        let sources = [("a", &columns), ("b", &columns)]
            .into_iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        match super::plan(&loaded, &sources, &[]) {
            Ok(plans) => format!(
                "{:?}",
                plans
                    .iter()
                    .map(|p| (&p.filter, p.delayed.as_ref().map(|d| &d.filter)))
                    .collect::<Vec<_>>()
            ),
            Err(problems) => problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn a_filter_that_is_not_a_condition_names_its_key() {
        let p = plan_problems(
            "  f:\n    kind: ftrl\n    source: a\n    columns: [x]\n    filter: \"x + 1\"\n    delayed_label: { source: a, within: 1m, filter: \"nope = 1\" }\n",
        );
        assert!(
            p.contains("key `models.f.filter`: `x + 1` gives Double; a filter is a condition"),
            "{p}"
        );
        assert!(p.contains("key `models.f.delayed_label.filter`"), "{p}");
        assert!(p.contains("nope"), "{p}");
        let p = plan_problems(
            "  f:\n    kind: ftrl\n    source: a\n    label: \"x > 1\"\n    columns: [items.category]\n",
        );
        assert!(
            p.contains("key `models.f.columns[0]`: `items.category`: no view of `a` joins `items` selecting `category`"),
            "{p}"
        );
        let ok = plan_problems(
            "  f:\n    kind: ftrl\n    source: a\n    columns: [x]\n    filter: \"kind = 'view'\"\n    delayed_label: { source: a, within: 1m, filter: \"kind = 'click'\" }\n",
        );
        assert_eq!(
            ok,
            r#"[(Some("kind = 'view'"), Some(Some("kind = 'click'")))]"#
        );
    }
}
