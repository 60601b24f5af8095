//! The `models:` section as the spec's document: what a model declares.
//!
//! Only the document lives here. What a kind means, which `params:` it
//! takes and how a model is planned against its source's columns and the
//! views belong to the learners, in `eddy-training` (its `plan` module),
//! so a new learner touches one crate. The job reads a model's `source`
//! and `delayed_label.source` from here to know which sources to read.

use serde::{Deserialize, Serialize};

use super::Millis;

/// One model.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// What learns: `ftrl` (logistic regression by FTRL-Proximal, for
    /// clicks and likes), `linear` (FTRL with squared loss, for ratings),
    /// or a recommender: `mf` (streaming matrix factorization by BPR),
    /// `cooccurrence` (item-to-item with time decay) or `popularity`
    /// (decayed counts, the fallback for new users). The learners register
    /// their kinds in `eddy-training`. Required.
    pub kind: String,
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
    /// Hyper-parameters of the model's kind. Each kind's learner reads its
    /// own (a key another kind takes is named as such, an unknown key is
    /// an error); their defaults are documented with the learners
    /// (`eddy_training::plan::params`). Default: none set.
    #[serde(default)]
    pub params: serde_yaml_ng::Mapping,
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

impl ModelSpec {
    /// The sources this model reads: its examples' and its labels'.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.source.as_str())
            .chain(self.delayed_label.as_ref().map(|d| d.source.as_str()))
    }
}
