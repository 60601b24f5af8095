//! The CLI on the embedded local log: round trips, bad input and exit codes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;

use eddy_features::avro::frame;
use eddy_features::topic::local::{LocalLog, LocalLogConfig};
use eddy_features::topic::{Backend, ProducerRecord};
use serde_json::json;

use crate::support::*;

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/event.avsc");

fn events(n: usize) -> String {
    (0..n)
        .map(|i| json!({"id": i, "name": format!("e{i}"), "score": i as f64 / 4.0, "tags": ["a"], "note": null}).to_string() + "\n")
        .collect()
}

/// `eddy topics produce --topic events --schema event.avsc`.
fn produce_avro(dir: &std::path::Path) -> std::process::Command {
    let mut produce = eddy(dir);
    produce.args(["topics", "produce", "--topic", "events", "--schema", SCHEMA]);
    produce
}

fn create(dir: &std::path::Path, topic: &str, extra: &[&str]) {
    let mut cmd = eddy(dir);
    cmd.args(["topics", "create", topic]).args(extra);
    ok(cmd, "");
}

#[test]
fn avro_produce_then_consume_round_trips_json() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &["--partitions", "3"]);
    let mut produce = eddy(dir.path());
    produce.args([
        "topics",
        "produce",
        "--topic",
        "events",
        "--key-field",
        "id",
        "--schema",
        SCHEMA,
    ]);
    ok(produce, &events(30));

    let mut consume = eddy(dir.path());
    consume.args(["topics", "consume", "--topic", "events"]);
    let mut got = json_lines(&ok(consume, ""));
    got.sort_by_key(|v| v["id"].as_i64());
    assert_eq!(got, json_lines(&events(30)));

    let mut list = eddy(dir.path());
    list.args(["topics", "list"]);
    assert_eq!(
        ok(list, "").lines().collect::<Vec<_>>(),
        vec!["_schemas", "events"]
    );
    let mut describe = eddy(dir.path());
    describe.args(["topics", "describe", "events"]);
    assert!(ok(describe, "").contains("30 records"));
}

/// No command printed a topic's schema: the field names a spec needs were
/// learned by consuming a record.
#[test]
fn topics_schema_prints_the_registered_value_schema() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    ok(produce_avro(dir.path()), &events(1));
    let mut schema = eddy(dir.path());
    schema.args(["topics", "schema", "events"]);
    let out = run(schema, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let registered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap();
    assert_eq!(printed["fields"], registered["fields"]);
    assert!(text(&out.stderr).contains("events-value version 1 (schema id 1)"));
    // A topic of raw records has none, and says so; a missing topic is 3.
    create(dir.path(), "raw", &[]);
    let mut raw = eddy(dir.path());
    raw.args(["topics", "schema", "raw"]);
    let err = fails_with(raw, "", 2);
    assert!(err.contains("has no registered value schema"), "{err}");
    let mut missing = eddy(dir.path());
    missing.args(["topics", "schema", "nope"]);
    fails_with(missing, "", 3);
}

#[test]
fn unknown_topic_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = eddy(dir.path());
    cmd.args(["topics", "consume", "--topic", "nope"]);
    assert!(fails_with(cmd, "", 3).contains("topic `nope` does not exist"));
    let mut cmd = eddy(dir.path());
    cmd.args(["topics", "produce", "--topic", "nope"]);
    fails_with(cmd, "{}\n", 3);
}

/// Bad input loses nothing: the lines before the bad one are written.
#[test]
fn a_bad_json_line_exits_6_and_keeps_the_lines_before_it() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    let input = events(3) + "{\"id\": \"not a number\"}\n" + &events(2);
    let stderr = fails_with(produce_avro(dir.path()), &input, 6);
    assert!(stderr.contains("stdin line 4"), "{stderr}");
    assert!(stderr.contains("$.id"), "names the field: {stderr}");
    let mut consume = eddy(dir.path());
    consume.args(["topics", "consume", "--topic", "events"]);
    assert_eq!(json_lines(&ok(consume, "")).len(), 3);

    let mut produce = eddy(dir.path());
    produce.args([
        "topics",
        "produce",
        "--topic",
        "events",
        "--key-field",
        "id",
    ]);
    assert!(fails_with(produce, "not json\n", 6).contains("not valid JSON"));
}

#[test]
fn an_incompatible_schema_exits_5_and_an_invalid_one_8() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    ok(produce_avro(dir.path()), &events(1));

    let breaking = dir.path().join("breaking.avsc");
    std::fs::write(&breaking, r#"{"type":"record","name":"Event","namespace":"eddy.interop","fields":[{"name":"id","type":"string"}]}"#).unwrap();
    let mut produce = eddy(dir.path());
    produce
        .args(["topics", "produce", "--topic", "events", "--schema"])
        .arg(&breaking);
    assert!(fails_with(produce, &events(1), 5).contains("incompatible"));

    let invalid = dir.path().join("invalid.avsc");
    std::fs::write(
        &invalid,
        r#"{"type":"record","name":"Event","fields":[{"name":"id","type":"nope"}]}"#,
    )
    .unwrap();
    let mut produce = eddy(dir.path());
    produce
        .args(["topics", "produce", "--topic", "events", "--schema"])
        .arg(&invalid);
    fails_with(produce, &events(1), 8);
}

/// Wrong magic byte, unknown schema id and truncated Avro: each is reported
/// with its offset, the good records are still printed, and the exit code is 7.
#[test]
fn undecodable_records_exit_7_and_the_rest_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    ok(produce_avro(dir.path()), &events(2));
    {
        // Write the bad records with the library, as a misbehaving producer would.
        let log: Arc<dyn Backend> =
            Arc::new(LocalLog::open(LocalLogConfig::new(dir.path())).unwrap());
        let mut p = log.producer().unwrap();
        for bad in [
            b"{\"plain\": \"json\"}".to_vec(),
            frame(4242, &[2, 4]),
            frame(1, &[0x80]),
        ] {
            p.send(ProducerRecord::new("events", None, Some(bad)))
                .unwrap();
        }
        p.flush().unwrap();
    }
    ok(produce_avro(dir.path()), &events(1));

    let mut consume = eddy(dir.path());
    consume.args(["topics", "consume", "--topic", "events"]);
    let out = run(consume, "");
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        json_lines(&text(&out.stdout)).len(),
        3,
        "the good records are printed"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("offset 2: wrong magic byte"), "{stderr}");
    assert!(
        stderr.contains("offset 3: schema id 4242 is unknown"),
        "{stderr}"
    );
    assert!(
        stderr.contains("offset 4: Avro body does not decode"),
        "{stderr}"
    );
    assert!(stderr.contains("3 of 6 record(s)"), "{stderr}");

    // With a dead-letter topic, the bad records are also parked there with
    // the reason and where they came from.
    let mut consume = eddy(dir.path());
    consume.args([
        "topics",
        "consume",
        "--topic",
        "events",
        "--dead-letter-topic",
        "events.dlq",
    ]);
    let stderr = fails_with(consume, "", 7);
    assert!(stderr.contains("3 copied to events.dlq"), "{stderr}");
    let mut dlq = eddy(dir.path());
    dlq.args([
        "topics",
        "consume",
        "--topic",
        "events.dlq",
        "--envelope",
        "--format",
        "raw",
    ]);
    let parked = json_lines(&ok(dlq, ""));
    assert_eq!(parked.len(), 3);
    assert_eq!(parked[0]["value"], json!({"plain": "json"}));
    assert!(
        parked[0]["headers"]["eddy.dlq.reason"]
            .as_str()
            .unwrap()
            .contains("wrong magic byte")
    );
    let offsets: Vec<_> = parked
        .iter()
        .map(|p| p["headers"]["eddy.dlq.offset"].clone())
        .collect();
    assert_eq!(offsets, vec![json!("2"), json!("3"), json!("4")]);
    assert!(
        parked
            .iter()
            .all(|p| p["headers"]["eddy.dlq.topic"] == "events")
    );
}

#[test]
fn an_unreachable_broker_exits_4_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = eddy(dir.path());
    cmd.args([
        "--brokers",
        "127.0.0.1:1",
        "--timeout",
        "2",
        "topics",
        "list",
    ]);
    assert!(fails_with(cmd, "", 4).contains("127.0.0.1:1"));
}

#[test]
fn a_bad_kafka_config_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.properties");
    std::fs::write(
        &config,
        "# TLS\nsecurity.protocol=SSL\nthis line is wrong\n",
    )
    .unwrap();
    let mut cmd = eddy(dir.path());
    cmd.args(["--brokers", "127.0.0.1:1", "--kafka-config"])
        .arg(&config)
        .args(["topics", "list"]);
    let stderr = fails_with(cmd, "", 2);
    assert!(stderr.contains("client.properties:3"), "{stderr}");

    // A property librdkafka does not know: file, line and key are named.
    std::fs::write(&config, "security.protocol=SSL\n\nsasl.mechanizms=PLAIN\n").unwrap();
    let mut cmd = eddy(dir.path());
    cmd.args(["--brokers", "127.0.0.1:1", "--kafka-config"])
        .arg(&config)
        .args(["topics", "list"]);
    let stderr = fails_with(cmd, "", 2);
    assert!(
        stderr.contains("client.properties:3: key `sasl.mechanizms`"),
        "{stderr}"
    );

    let mut cmd = eddy(dir.path());
    cmd.args([
        "--brokers",
        "127.0.0.1:1",
        "-X",
        "linger.ms=soon",
        "topics",
        "list",
    ]);
    let stderr = fails_with(cmd, "", 2);
    assert!(stderr.contains("-X linger.ms=soon"), "{stderr}");
}

/// A consumer group resumes where the last run stopped.
#[test]
fn consume_with_a_group_resumes_from_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    ok(produce_avro(dir.path()), &events(5));
    let read = |max: &str| {
        let mut c = eddy(dir.path());
        c.args([
            "topics", "consume", "--topic", "events", "--group", "g", "--max", max,
        ]);
        json_lines(&ok(c, ""))
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(read("2"), vec![0, 1]);
    assert_eq!(read("10"), vec![2, 3, 4]);
}

/// The embedded log is readable by a second process while the first writes.
#[test]
fn a_second_process_follows_a_topic_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "live", &[]);
    let mut follower = eddy(dir.path());
    follower.args([
        "topics", "consume", "--topic", "live", "--follow", "--max", "20", "--format", "raw",
    ]);
    let mut child = follower
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    watchdog(child.id());

    let log: Arc<dyn Backend> = Arc::new(LocalLog::open(LocalLogConfig::new(dir.path())).unwrap());
    let mut producer = log.producer().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for i in 0..20 {
        producer
            .send(ProducerRecord::new(
                "live",
                None,
                Some(json!({"n": i}).to_string().into_bytes()),
            ))
            .unwrap();
        producer.flush().unwrap();
        let line = lines
            .next()
            .expect("the follower prints each record")
            .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            json!({"n": i})
        );
    }
    assert!(child.wait().unwrap().success());
}

/// Consumers keep reading while producers evolve: old records resolve to the
/// reader's newer schema, the added field taking its default.
#[test]
fn old_records_resolve_to_a_newer_reader_schema() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    ok(produce_avro(dir.path()), &events(2));
    let mut v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap();
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "country", "type": "string", "default": "unknown"}));
    let reader = dir.path().join("v2.avsc");
    std::fs::write(&reader, v2.to_string()).unwrap();
    let mut consume = eddy(dir.path());
    consume
        .args(["topics", "consume", "--topic", "events", "--reader-schema"])
        .arg(&reader);
    let got = json_lines(&ok(consume, ""));
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|v| v["country"] == "unknown" && v["name"].is_string()),
        "{got:?}"
    );
}

/// `tail -f | eddy topics produce`: records of a slow stream become visible
/// while stdin is still open, not only at its end.
#[test]
fn a_slow_stdin_stream_is_flushed_while_it_is_still_open() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "slow", &[]);
    let mut produce = eddy(dir.path());
    produce
        .args(["topics", "produce", "--topic", "slow"])
        .stdin(Stdio::piped());
    let mut producer = produce.spawn().unwrap();
    watchdog(producer.id());
    let mut stdin = producer.stdin.take().unwrap();
    for i in 0..3 {
        writeln!(stdin, "{{\"n\": {i}}}").unwrap();
    }
    stdin.flush().unwrap();

    let mut consume = eddy(dir.path());
    consume.args([
        "topics", "consume", "--topic", "slow", "--follow", "--max", "3",
    ]);
    let got = json_lines(&ok(consume, ""));
    assert_eq!(got, vec![json!({"n": 0}), json!({"n": 1}), json!({"n": 2})]);
    drop(stdin);
    assert!(producer.wait().unwrap().success());
}

/// Crash test: SIGKILL a producer in the middle of a large write. The log
/// reopens, what survived is a gap-free prefix of what was sent, and the
/// next producer continues the offsets.
#[test]
fn a_killed_producer_leaves_a_log_that_reopens_cleanly() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "crash", &[]);
    let mut produce = eddy(dir.path());
    produce
        .args(["topics", "produce", "--topic", "crash"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null());
    let mut producer = produce.spawn().unwrap();
    let mut stdin = producer.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..2_000_000u64 {
            if writeln!(stdin, "{{\"n\": {i}, \"pad\": \"{}\"}}", "x".repeat(40)).is_err() {
                return;
            }
        }
    });
    // Kill once some records are on disk, while it is still writing.
    let segment = dir.path().join("topics/crash/0/00000000000000000000.log");
    let deadline = std::time::Instant::now() + PROCESS_DEADLINE;
    while std::fs::metadata(&segment).map_or(0, |m| m.len()) < 2_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the producer never wrote 2 MB"
        );
        assert!(
            producer.try_wait().unwrap().is_none(),
            "the producer exited before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    producer.kill().unwrap();
    producer.wait().unwrap();
    writer.join().unwrap();

    let mut consume = eddy(dir.path());
    consume.args(["topics", "consume", "--topic", "crash"]);
    let survived = json_lines(&ok(consume, ""));
    assert!(!survived.is_empty());
    for (i, v) in survived.iter().enumerate() {
        assert_eq!(v["n"], json!(i), "records survive as a gap-free prefix");
    }

    let mut again = eddy(dir.path());
    again.args(["topics", "produce", "--topic", "crash"]);
    ok(again, "{\"n\": \"after\"}\n");
    let mut last = eddy(dir.path());
    last.args([
        "topics",
        "consume",
        "--topic",
        "crash",
        "--from",
        &survived.len().to_string(),
        "--envelope",
    ]);
    let tail = json_lines(&ok(last, ""));
    assert_eq!(tail.len(), 1);
    assert_eq!(
        tail[0]["offset"],
        json!(survived.len()),
        "offsets continue after the crash"
    );
    assert_eq!(tail[0]["value"]["n"], json!("after"));
}

#[test]
fn an_unreachable_registry_exits_4_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), "events", &[]);
    let mut produce = eddy(dir.path());
    produce.args([
        "--registry",
        "http://127.0.0.1:1",
        "topics",
        "produce",
        "--topic",
        "events",
        "--schema",
        SCHEMA,
    ]);
    let stderr = fails_with(produce, &events(1), 4);
    assert!(stderr.contains("http://127.0.0.1:1"), "{stderr}");
}

/// Inside `eddy run` a broker that cannot be reached is the environment's
/// problem, as in every other command: exit 4, naming the broker. (Issue
/// 16: storage and Kafka failures inside `eddy run` used to exit 1, "a
/// bug".)
#[test]
fn eddy_run_with_an_unreachable_broker_exits_4_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("p.yaml");
    std::fs::write(
        &spec,
        "name: p\nsources:\n  clicks: { topic: clicks, key: user, event_time: ts }\nfeatures:\n  v:\n    source: clicks\n    aggregations: [{ name: n, op: count, windows: [lifetime] }]\n",
    )
    .unwrap();
    let mut cmd = eddy(dir.path());
    cmd.args(["--brokers", "127.0.0.1:1", "--timeout", "2", "run"])
        .arg(&spec)
        .args(["--until-end", "--metrics-addr", "127.0.0.1:0"]);
    assert!(fails_with(cmd, "", 4).contains("127.0.0.1:1"));
}
