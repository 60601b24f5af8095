//! A model's snapshot records the fingerprint of the definition it was
//! trained with, and a snapshot of another definition is refused before it
//! is decoded (the model retrains from the topic's history).
//!
//! - Moving the planning of models into this crate, with params read per
//!   kind (issue 16), changed no fingerprint: the values of 0fd43eb.
//! - Standardized numbers (issue 17) changed the layout of a linear
//!   model's snapshot, so its fingerprint changed on purpose: an older
//!   snapshot must be refused, not misread. Recommenders kept theirs.

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

/// Every model's fingerprint, by name.
fn fingerprints() -> Vec<(String, u32)> {
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
    plans
        .iter()
        .map(|p| (p.name.clone(), eddy_training::online::fingerprint(p)))
        .collect()
}

/// The fingerprints of 0fd43eb, before both changes.
const BEFORE: [(&str, u32); 6] = [
    ("plain", 406434521),
    ("tuned", 3813187053),
    ("delayed", 1495239545),
    ("mf", 760973035),
    ("co", 65837185),
    ("pop", 3672692959),
];

#[test]
fn per_kind_params_left_the_fingerprint_of_every_recommender_defined_before_unchanged() {
    let now = fingerprints();
    for (name, before) in &BEFORE[3..] {
        assert_eq!(
            now.iter().find(|(n, _)| n == name).unwrap().1,
            *before,
            "{name}"
        );
    }
}

#[test]
fn a_linear_model_saved_before_standardized_numbers_is_refused_not_misread() {
    let now = fingerprints();
    for (name, before) in &BEFORE[..3] {
        assert_ne!(
            now.iter().find(|(n, _)| n == name).unwrap().1,
            *before,
            "{name}"
        );
    }
    // Pinned, so the next layout change is a decision too.
    let linear: Vec<(String, u32)> = now.into_iter().take(3).collect();
    assert_eq!(
        linear,
        [
            ("plain".to_string(), 3814918934),
            ("tuned".to_string(), 1764085662),
            ("delayed".to_string(), 553623981),
        ]
    );
}
