//! `eddy datasets generate clickstream`: deterministic per seed, onto
//! topics that a pipeline can read, with its ground truth.

use std::path::Path;

use crate::support::*;

fn generate(data: &Path, seed: &str) -> (String, String, polars::prelude::DataFrame) {
    let mut c = eddy(data);
    c.args([
        "datasets",
        "generate",
        "clickstream",
        "--users",
        "300",
        "--items",
        "200",
        "--events",
        "5000",
        "--seed",
        seed,
        "--partitions",
        "2",
    ]);
    let out = ok(c, "");
    assert!(out.contains("Bayes-optimal logloss"), "{out}");
    let consume = |topic: &str| {
        let mut c = eddy(data);
        c.args(["topics", "consume", "--topic", topic, "--envelope"]);
        ok(c, "")
    };
    let truth = polars::prelude::ParquetReader::new(
        std::fs::File::open(data.join("clickstream-truth.parquet")).unwrap(),
    );
    use polars::prelude::SerReader as _;
    (
        consume("clickstream.events"),
        consume("clickstream.items"),
        truth.finish().unwrap(),
    )
}

#[test]
fn the_clickstream_generator_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a_events, a_items, a_truth) = generate(&dir.path().join("a"), "7");
    let (b_events, b_items, b_truth) = generate(&dir.path().join("b"), "7");
    let (c_events, _, _) = generate(&dir.path().join("c"), "8");
    // Envelopes without the record timestamps' wall clock: every field is
    // event time, so whole records compare.
    assert_eq!(a_events, b_events);
    assert_eq!(a_items, b_items);
    assert!(a_truth.equals(&b_truth));
    assert_ne!(a_events, c_events);
    let events = json_lines(&a_events);
    assert!(events.len() >= 5000, "{}", events.len());
    let kinds: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["value"]["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    // Keyed by user, and the truth covers exactly the views.
    assert!(
        events
            .iter()
            .all(|e| e["key"].as_str() == Some(e["value"]["user_id"].to_string().as_str()))
    );
    let views = events
        .iter()
        .filter(|e| e["value"]["event_type"] == "view")
        .count();
    assert_eq!(a_truth.height(), views);
    let p = a_truth.column("p_click").unwrap().f64().unwrap();
    assert!(p.into_iter().flatten().all(|x| x > 0.0 && x < 1.0));
}
