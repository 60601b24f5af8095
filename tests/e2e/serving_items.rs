//! The ranker reads what describes a candidate from the item table.

use crate::support::*;

const EVENT_SCHEMA: &str = r#"{"type": "record", "name": "Viewed", "fields": [
  {"name": "user_id", "type": "long"},
  {"name": "item_id", "type": "long"},
  {"name": "price", "type": "double"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

const ITEM_SCHEMA: &str = r#"{"type": "record", "name": "Item", "fields": [
  {"name": "item_id", "type": "long"},
  {"name": "price", "type": "double"}]}"#;

const SPEC: &str = "name: priced
sources:
  events: { topic: events, key: user_id, event_time: ts, idle_timeout: 0s }
tables:
  items: { topic: items, key: item_id }
features:
  user:
    source: events
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  cheap:
    kind: ftrl
    source: events
    label: \"price < 50\"
    features: []
    # The item id as a number: it says nothing of the price, so only the
    # price can tell cheap from expensive.
    columns: [item_id, price]
    params: { bits: 14 }
  popular:
    kind: popularity
    source: events
    item: item_id
serving:
  trigger: events
  candidates: [popular]
  candidates_per_model: 20
  ranker: cheap
  # The FTRL ranker's own order is under test: here users view every item
  # in turn, so what they do next says nothing of price, and the learned
  # order (which would learn that) is off.
  learned_order: false
  k: 5
  exclude_seen: false
  item_table: items
  topic: recs
";

/// Even items cost 10, odd ones 90.
fn price(item: u64) -> f64 {
    if item.is_multiple_of(2) { 10.0 } else { 90.0 }
}

/// Produces `events` (JSON lines, keyed by `user_id`) with `schema`, runs
/// `spec` to their end (the models learn), replays serving over them, and
/// returns each recommendation's item ids after the first 100 (the models
/// have learned by then), five each.
fn top_five_after_training(
    cmd: &dyn Fn(&[&str]) -> std::process::Command,
    spec: &str,
    schema: &str,
    events: &str,
) -> Vec<(Vec<u64>, serde_json::Value)> {
    ok(
        cmd(&[
            "topics",
            "produce",
            "--topic",
            "events",
            "--key-field",
            "user_id",
            "--schema",
            schema,
        ]),
        events,
    );
    ok(
        cmd(&["run", spec, "--until-end", "--metrics-addr", "127.0.0.1:0"]),
        "",
    );
    ok(
        cmd(&[
            "serve",
            spec,
            "--http",
            "127.0.0.1:0",
            "--from-earliest",
            "--until-end",
        ]),
        "",
    );
    let recs = json_lines(&ok(cmd(&["topics", "consume", "--topic", "recs"]), ""));
    assert_eq!(recs.len(), events.lines().count());
    recs.into_iter()
        .skip(100)
        .map(|r| {
            let ids: Vec<u64> = r["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["item"].as_str().unwrap().parse().unwrap())
                .collect();
            assert_eq!(ids.len(), 5, "{r}");
            (ids, r)
        })
        .collect()
}

/// Regression: the ranker scored every candidate with the triggering
/// event's columns, so each candidate got the price of the item the user
/// was viewing, not its own, and a model that had learned "cheap is
/// liked" ranked every candidate alike. With `item_table`, an input the
/// table also has is the candidate's own value.
#[test]
fn the_ranker_scored_every_candidate_with_the_viewed_items_price() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.current_dir(d).args(args);
        c
    };
    let write = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (events_avsc, items_avsc) = (
        write("event.avsc", EVENT_SCHEMA),
        write("item.avsc", ITEM_SCHEMA),
    );
    let spec = write("priced.yaml", SPEC);
    ok(
        cmd(&["topics", "create", "events", "--partitions", "2"]),
        "",
    );
    ok(cmd(&["topics", "create", "items", "--compact"]), "");
    let items: String = (0..20)
        .map(|i| format!("{{\"item_id\": {i}, \"price\": {}}}\n", price(i)))
        .collect();
    ok(
        cmd(&[
            "topics",
            "produce",
            "--topic",
            "items",
            "--key-field",
            "item_id",
            "--schema",
            &items_avsc,
        ]),
        &items,
    );
    // Every user views every item in turn, at its price.
    let t0 = 1_700_000_000_000i64;
    let events: String = (0..800u64)
        .map(|n| {
            let (user, item) = (n % 10, (n / 10 + n) % 20);
            format!(
                "{{\"user_id\": {user}, \"item_id\": {item}, \"price\": {}, \"ts\": {}}}\n",
                price(item),
                t0 + n as i64 * 1000
            )
        })
        .collect();
    // Triggered by an expensive item or a cheap one, the top five are
    // the cheap items: the model learned that cheap is liked.
    for (ids, r) in top_five_after_training(&cmd, &spec, &events_avsc, &events) {
        for id in ids {
            assert_eq!(
                price(id),
                10.0,
                "an expensive candidate ranked in the top five: {r}"
            );
        }
    }
}

const LIKED_SCHEMA: &str = r#"{"type": "record", "name": "Rated", "fields": [
  {"name": "user_id", "type": "long"},
  {"name": "item_id", "type": "long"},
  {"name": "liked", "type": "long"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

/// A ranker whose only clue is an item's own view (`item_stats`, keyed by
/// item over events keyed by user): how often the item was liked. Even
/// items are always liked, odd ones never.
fn liked_spec(name: &str, store: &str, features_from: &str) -> String {
    format!(
        "name: {name}
sources:
  events: {{ topic: events, key: user_id, event_time: ts, idle_timeout: 0s }}
features:
  item_stats:
    source: events
    key: item_id
    aggregations: [{{ name: liked, op: mean, column: liked, windows: [lifetime] }}]
    output: {{ topic: features.item_stats{store} }}
models:
  like:
    kind: ftrl
    source: events
    label: \"liked = 1\"
    features: [item_stats]
    # The id as a number says nothing of even or odd: only the item's
    # view can tell liked from not.
    columns: [item_id]
    params: {{ bits: 14 }}
  popular:
    kind: popularity
    source: events
    item: item_id
serving:
  trigger: events
  candidates: [popular]
  candidates_per_model: 20
  ranker: like
  learned_order: false
  k: 5
  exclude_seen: false
  topic: recs
  features_from: {features_from}
"
    )
}

/// The ranker reads a re-keyed view at each candidate: every candidate is
/// scored with its own item's row (from the feature topic, or from Redis
/// when tests/run started it), so the top five are the liked items
/// whatever the trigger. Reading the triggering item's row (or none)
/// would score every candidate alike.
#[test]
fn the_ranker_reads_an_items_view_at_each_candidate() {
    let mut stores = vec![(String::new(), "topics")];
    if let Some(url) = external("EDDY_TEST_REDIS") {
        stores.push((format!(", redis: {{ url: \"{url}\" }}"), "redis"));
    }
    for (store, features_from) in stores {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let data = d.join("eddy-data");
        let cmd = |args: &[&str]| {
            let mut c = eddy(&data);
            c.current_dir(d).args(args);
            c
        };
        let avsc = d.join("rated.avsc");
        std::fs::write(&avsc, LIKED_SCHEMA).unwrap();
        let spec = d.join("liked.yaml");
        let name = unique("liked").replace('-', "_");
        std::fs::write(&spec, liked_spec(&name, &store, features_from)).unwrap();
        let spec = spec.display().to_string();
        ok(
            cmd(&["topics", "create", "events", "--partitions", "2"]),
            "",
        );
        let t0 = 1_700_000_000_000i64;
        let events: String = (0..800u64)
            .map(|n| {
                let (user, item) = (n % 10, (n / 10 + n) % 20);
                format!(
                    "{{\"user_id\": {user}, \"item_id\": {item}, \"liked\": {}, \"ts\": {}}}\n",
                    u64::from(item.is_multiple_of(2)),
                    t0 + n as i64 * 1000
                )
            })
            .collect();
        let recs = top_five_after_training(&cmd, &spec, avsc.to_str().unwrap(), &events);
        for (ids, r) in recs {
            for id in ids {
                assert!(
                    id.is_multiple_of(2),
                    "features from {features_from}: an item never liked ranked in the top five: {r}"
                );
            }
        }
    }
}
