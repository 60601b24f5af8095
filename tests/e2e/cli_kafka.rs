//! The same CLI on a real Kafka broker (tansu in CI), with the built-in
//! registry keeping its schemas in a Kafka topic.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::*;

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/event.avsc");

fn events(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"id": i, "name": format!("k{i}"), "score": 0.5, "tags": [], "note": "x"})
                .to_string()
                + "\n"
        })
        .collect()
}

/// An eddy command on the broker, with the given registry.
fn on_kafka(dir: &Path, brokers: &str, registry: &Registry, args: &[&str]) -> Command {
    let mut c = eddy(dir);
    c.args(["--brokers", brokers, "--registry", &registry.url])
        .args(args);
    c
}

#[test]
fn produce_and_consume_on_kafka_through_a_registry_stored_in_kafka() {
    let Some(brokers) = external("EDDY_TEST_KAFKA_BROKERS") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schemas = unique("schemas");
    let registry = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    let kafka = |args: &[&str]| on_kafka(dir.path(), &brokers, &registry, args);

    let topic = unique("cli");
    ok(
        kafka(&["topics", "create", &topic, "--partitions", "3"]),
        "",
    );
    ok(
        kafka(&[
            "topics",
            "produce",
            "--topic",
            &topic,
            "--key-field",
            "id",
            "--schema",
            SCHEMA,
        ]),
        &events(40),
    );
    let describe = ok(kafka(&["topics", "describe", &topic]), "");
    assert!(
        describe.contains("40 records"),
        "high watermarks count every record: {describe}"
    );

    let mut got = json_lines(&ok(kafka(&["topics", "consume", "--topic", &topic]), ""));
    got.sort_by_key(|v| v["id"].as_i64());
    assert_eq!(got, json_lines(&events(40)));

    let group = unique("group");
    let first = json_lines(&ok(
        kafka(&[
            "topics", "consume", "--topic", &topic, "--group", &group, "--max", "10",
        ]),
        "",
    ));
    let rest = json_lines(&ok(
        kafka(&["topics", "consume", "--topic", &topic, "--group", &group]),
        "",
    ));
    assert_eq!(
        (first.len(), rest.len()),
        (10, 30),
        "the group resumes after its commits"
    );

    let latest = ok(
        kafka(&["topics", "consume", "--topic", &topic, "--from", "latest"]),
        "",
    );
    assert!(latest.is_empty(), "nothing after the end: {latest}");
}

#[test]
fn the_registry_topic_on_kafka_survives_a_registry_restart() {
    let Some(brokers) = external("EDDY_TEST_KAFKA_BROKERS") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("restart");
    let schemas = unique("schemas");
    let first = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    ok(
        on_kafka(dir.path(), &brokers, &first, &["topics", "create", &topic]),
        "",
    );
    ok(
        on_kafka(
            dir.path(),
            &brokers,
            &first,
            &["topics", "produce", "--topic", &topic, "--schema", SCHEMA],
        ),
        &events(2),
    );
    drop(first);

    let second = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    let out = ok(
        on_kafka(
            dir.path(),
            &brokers,
            &second,
            &["topics", "consume", "--topic", &topic],
        ),
        "",
    );
    assert_eq!(
        json_lines(&out),
        json_lines(&events(2)),
        "schema ids resolve after the restart"
    );
}
