//! Interop with the real Python `confluent-kafka` client: its
//! SchemaRegistryClient and Avro serializers against `eddy registry serve`,
//! its producer and consumer against the broker.

use std::process::Command;

use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/confluent_interop.py"
);
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/event.avsc");

fn python(python: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn confluent_kafka_and_eddy_read_each_others_avro() {
    let (Some(brokers), Some(py)) = (
        external("EDDY_TEST_KAFKA_BROKERS"),
        external("EDDY_TEST_PYTHON"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The registry keeps its schemas on the local log; records go to Kafka.
    let registry = Registry::start(&dir.path().join("registry"), &[], None);
    let kafka = |args: &[&str]| {
        let mut c = eddy(dir.path());
        c.args(["--brokers", &brokers, "--registry", &registry.url])
            .args(args);
        c
    };

    // confluent-kafka writes, eddy reads.
    let from_python = unique("from-python");
    ok(kafka(&["topics", "create", &from_python]), "");
    let sent = python(
        &py,
        &[
            "produce",
            "--brokers",
            &brokers,
            "--registry",
            &registry.url,
            "--topic",
            &from_python,
            "--count",
            "25",
        ],
    );
    let read = ok(kafka(&["topics", "consume", "--topic", &from_python]), "");
    assert_eq!(json_lines(&read), json_lines(&sent));
    assert_eq!(json_lines(&sent).len(), 25);

    // eddy writes, confluent-kafka reads.
    let from_eddy = unique("from-eddy");
    ok(kafka(&["topics", "create", &from_eddy]), "");
    let lines: String = json_lines(&sent)
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect();
    ok(
        kafka(&[
            "topics", "produce", "--topic", &from_eddy, "--schema", SCHEMA,
        ]),
        &lines,
    );
    let got = python(
        &py,
        &[
            "consume",
            "--brokers",
            &brokers,
            "--registry",
            &registry.url,
            "--topic",
            &from_eddy,
            "--count",
            "25",
        ],
    );
    assert_eq!(json_lines(&got), json_lines(&sent));

    // Schema evolution through confluent-kafka's client: an added field with
    // a default is accepted, one without is rejected with Confluent's 409.
    let subject = format!("{from_python}-value");
    let evolve = json_lines(&python(
        &py,
        &["evolve", "--registry", &registry.url, "--subject", &subject],
    ));
    assert!(evolve[0]["compatible_id"].as_u64().is_some(), "{evolve:?}");
    assert_eq!(evolve[0]["incompatible"]["http_status"], 409, "{evolve:?}");
    assert_eq!(evolve[0]["incompatible"]["error_code"], 409, "{evolve:?}");
}

/// A notebook can read the embedded log's files directly, with nothing but
/// Python's standard library (notebooks/eddy_log.py).
#[test]
fn python_reads_the_local_log_files_that_eddy_writes() {
    let Some(py) = external("EDDY_TEST_PYTHON") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut create = eddy(dir.path());
    create.args(["topics", "create", "notes", "--partitions", "2"]);
    ok(create, "");
    let lines: String = (0..50)
        .map(|i| format!("{{\"user\":\"u{}\",\"n\":{i}}}\n", i % 7))
        .collect();
    let mut produce = eddy(dir.path());
    produce.args([
        "topics",
        "produce",
        "--topic",
        "notes",
        "--key-field",
        "user",
        "--timestamp-field",
        "n",
    ]);
    ok(produce, &lines);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/notebooks/eddy_log.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(dir.path())
        .arg("notes")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let from_python = json_lines(&text(&out.stdout));
    let mut consume = eddy(dir.path());
    consume.args([
        "topics",
        "consume",
        "--topic",
        "notes",
        "--envelope",
        "--format",
        "raw",
    ]);
    let from_eddy = json_lines(&ok(consume, ""));
    let key = |v: &serde_json::Value| (v["partition"].as_i64(), v["offset"].as_i64());
    let mut a: Vec<_> = from_python
        .iter()
        .map(|v| {
            (
                key(v),
                v["key"].clone(),
                v["timestamp"].clone(),
                v["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut b: Vec<_> = from_eddy
        .iter()
        .map(|v| {
            (
                key(v),
                v["key"].clone(),
                v["timestamp"].clone(),
                v["value"].to_string(),
            )
        })
        .collect();
    a.sort_by_key(|x| x.0);
    b.sort_by_key(|x| x.0);
    assert_eq!(a.len(), 50);
    assert_eq!(a, b);
}
