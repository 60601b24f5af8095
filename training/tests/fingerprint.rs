//! A model's snapshot records the fingerprint of the definition it was
//! trained with, and a snapshot of another definition is refused (the
//! model retrains from the topic's history). Moving the planning of models
//! into this crate, with params read per kind, must not change the
//! fingerprint of any model defined before: these values were computed by
//! the code before the move (commit 0fd43eb).

use eddy_features::spec::validate::ColumnType;
use indexmap::IndexMap;

const SPEC: &str = "name: t
sources:
  clicks: { topic: clicks, key: user, event_time: ts }
  views: { topic: views, key: user, event_time: ts }
features:
  v:
    source: clicks
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  plain:
    kind: ftrl
    source: clicks
    label: clicked
    columns: [user, x]
  tuned:
    kind: linear
    source: clicks
    label: x
    columns: [user, item]
    categorical: [user]
    crosses: [[user, item]]
    params: { bits: 18, alpha: 0.1, l1: 0.25, numeric: raw }
  delayed:
    kind: ftrl
    source: views
    columns: [item]
    filter: \"item > 0\"
    delayed_label: { source: clicks, within: 1m, on: item, filter: clicked }
  mf:
    kind: mf
    source: clicks
    item: item
    params: { dim: 8, learning_rate: 0.01, ttl: 7d, k: 5 }
  co:
    kind: cooccurrence
    source: clicks
    item: item
    label: clicked
    params: { half_life: 1d, recent: 3, session_gap: 30m, max_neighbors: 50 }
  pop:
    kind: popularity
    source: clicks
    item: item
    params: { half_life: 2h }
";

#[test]
fn per_kind_params_left_the_fingerprint_of_every_model_defined_before_unchanged() {
    let loaded = eddy_features::spec::parse_with(
        std::path::Path::new("t.yaml"),
        SPEC,
        &[eddy_training::plan::shape],
    )
    .unwrap();
    let columns: IndexMap<String, ColumnType> = [
        ("user", ColumnType::Long),
        ("item", ColumnType::Long),
        ("x", ColumnType::Double),
        ("clicked", ColumnType::Boolean),
        ("ts", ColumnType::Long),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    let sources = IndexMap::from([
        ("clicks".to_string(), columns.clone()),
        ("views".to_string(), columns),
    ]);
    let plans = eddy_training::plan::plan(&loaded, &sources, &[]).unwrap();
    let fingerprints: Vec<(&str, u32)> = plans
        .iter()
        .map(|p| (p.name.as_str(), eddy_training::online::fingerprint(p)))
        .collect();
    assert_eq!(
        fingerprints,
        [
            ("plain", 406434521),
            ("tuned", 3813187053),
            ("delayed", 1495239545),
            ("mf", 760973035),
            ("co", 65837185),
            ("pop", 3672692959),
        ]
    );
}
