//! Models planned: the spec's `models:` checked and resolved against the
//! sources' columns and the views, by the crate whose learners run them.
//!
//! A model learns from the events of one source. Each event is one
//! example: its features are the spec's views read for the event's key as
//! of just before the event (the same point-in-time read a backfill's
//! training set makes, so online and offline examples are identical), plus
//! raw fields of the event. The label is a SQL expression over the event.
//!
//! The spec's document (`eddy_features::spec::ModelSpec`) only declares.
//! Here, [`shape`] checks what needs the spec alone (registered with the
//! spec loader, so a bad model is reported with file, line and key like
//! every other spec problem, before anything runs), [`params`] is the
//! registry of kinds and their params, and [`plan`] resolves each model
//! against its source's columns and the views.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use eddy_features::engine::delayed::DelayedPlan;
use eddy_features::engine::job::TableColumn;
use eddy_features::spec::validate::{SchemaLookup, source_columns};
use eddy_features::spec::{ColumnType, Columns, LoadedSpec, SpecProblem, ViewPlan};

pub mod params;
mod resolve;
mod shape;

pub use params::{ModelKind, Numeric, Params};
pub use resolve::plan;
pub use shape::shape;

/// A table column joined onto a source's events for its models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelJoin {
    /// The table, the source's column it is looked up by (the views' join
    /// key, by index) and the table's column.
    pub column: TableColumn,
    /// Its type.
    pub column_type: ColumnType,
}

impl ModelJoin {
    /// How a model names it: `TABLE.COLUMN`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.column.table, self.column.column)
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
    /// A feature of a re-keyed view (same index), read at the event's value
    /// of the view's key (an item's click-through rate as of a click on
    /// it): the task owning that key answers, so each example waits for it.
    /// Serving reads it at each candidate.
    KeyedFeature(usize),
}

impl InputFrom {
    /// The feature's index, if the input is a feature.
    pub fn feature(self) -> Option<usize> {
        match self {
            InputFrom::Feature(f) | InputFrom::KeyedFeature(f) => Some(f),
            InputFrom::Column(_) => None,
        }
    }
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
    /// What learns, with its hyper-parameters as the spec gives them.
    pub params: Params,
    /// The models topic.
    pub topic: String,
    /// Syncs between full snapshots.
    pub snapshot_every: u64,
    /// The metrics topic.
    pub metrics_topic: String,
}

impl ModelPlan {
    /// What learns.
    pub fn kind(&self) -> ModelKind {
        self.params.kind()
    }
}

/// [`eddy_features::spec::validate`], then the `models:` section against
/// the sources' columns (from their registered schemas) and the views.
pub fn validate_with_models(
    loaded: &LoadedSpec,
    lookup: &SchemaLookup<'_>,
) -> Result<(Vec<ViewPlan>, Vec<ModelPlan>), Vec<SpecProblem>> {
    let views = eddy_features::spec::validate(loaded, lookup)?;
    // JSON change streams have no registered schema: the spec declares it.
    let lookup = eddy_features::spec::validate::with_declared(&loaded.spec, lookup);
    let mut columns: IndexMap<String, Columns> = IndexMap::new();
    for m in loaded.spec.models.values() {
        for name in m.sources() {
            if let Some(source) = loaded.spec.sources.get(name)
                && let Ok(Some(schema)) = lookup(&source.topic)
                && let Some(c) = source_columns(&schema, source.format)
            {
                columns.insert(name.to_string(), c);
            }
        }
    }
    let models = plan(loaded, &columns, &views)?;
    Ok((views, models))
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
        match eddy_features::spec::parse_with(Path::new("m.yaml"), &text, &[super::shape]) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    /// A model reads a re-keyed view of its own source at the event's key
    /// for it; one of another source has no such key: refused, located.
    /// By default a model reads only the views keyed like its events.
    #[test]
    fn a_model_reads_a_rekeyed_view_of_its_source_and_another_sources_is_located() {
        let text = "name: t
sources:
  a: { topic: a, key: k, event_time: ts }
  b: { topic: b, key: k, event_time: ts }
features:
  v:
    source: a
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
  per_item:
    source: a
    key: item
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  m:
    kind: ftrl
    source: a
    label: \"x > 0\"
    features: [v, per_item]
  default:
    kind: ftrl
    source: a
    label: \"x > 0\"
  other:
    kind: ftrl
    source: b
    label: \"x > 0\"
    features: [per_item]
    columns: [x]
";
        let schema = apache_avro::Schema::parse_str(
            r#"{"type": "record", "name": "A", "fields": [
              {"name": "k", "type": "long"}, {"name": "item", "type": "long"},
              {"name": "x", "type": "long"}, {"name": "ts", "type": "long"}]}"#,
        )
        .unwrap();
        let loaded = eddy_features::spec::parse(Path::new("m.yaml"), text).unwrap();
        let e = super::validate_with_models(&loaded, &|_| Ok(Some(schema.clone()))).unwrap_err();
        let e: Vec<String> = e.iter().map(|p| p.to_string()).collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(
                "m.yaml:27: key `models.other.features[0]`: view `per_item` is keyed by `item` over source `a`: a model of `b` has no `item` to read it at"
            ),
            "{e:?}"
        );
        let fixed = text.replace("    features: [per_item]\n", "");
        let loaded = eddy_features::spec::parse(Path::new("m.yaml"), &fixed).unwrap();
        let (_, models) =
            super::validate_with_models(&loaded, &|_| Ok(Some(schema.clone()))).unwrap();
        let from = |name: &str| -> Vec<super::InputFrom> {
            let m = models.iter().find(|m| m.name == name).unwrap();
            m.inputs.iter().map(|i| i.from).collect()
        };
        assert_eq!(
            from("m"),
            [
                super::InputFrom::Feature(0),
                super::InputFrom::KeyedFeature(1)
            ]
        );
        assert_eq!(from("default"), [super::InputFrom::Feature(0)]);
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
        use eddy_features::spec::validate::ColumnType;
        let text = format!(
            "name: t\nsources:\n  a: {{ topic: a, key: k, event_time: ts }}\n  b: {{ topic: b, key: k, event_time: ts }}\nfeatures:\n  v:\n    source: a\n    aggregations: [{{ name: n, op: count, windows: [lifetime] }}]\nmodels:\n{models}"
        );
        let loaded = eddy_features::spec::parse_with(Path::new("m.yaml"), &text, &[super::shape])
            .expect("shape");
        let columns: eddy_features::spec::validate::Columns = [
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
