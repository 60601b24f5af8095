//! Interop with kcat, the standard Kafka command-line client: records that
//! eddy writes read back byte for byte in kcat, and the other way round.

use std::process::Command;

use crate::support::*;

fn kcat(kcat: &str, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new(kcat);
    cmd.args(args);
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn kcat_reads_what_eddy_writes_and_eddy_reads_what_kcat_writes() {
    let (Some(brokers), Some(kcat_bin)) = (
        external("EDDY_TEST_KAFKA_BROKERS"),
        external("EDDY_TEST_KCAT"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kafka = |args: &[&str]| {
        let mut c = eddy(dir.path());
        c.args(["--brokers", &brokers]).args(args);
        c
    };

    let topic = unique("to-kcat");
    ok(kafka(&["topics", "create", &topic]), "");
    let lines: String = (0..10)
        .map(|i| format!("{{\"user\":\"u{i}\",\"n\":{i}}}\n"))
        .collect();
    ok(
        kafka(&[
            "topics",
            "produce",
            "--topic",
            &topic,
            "--key-field",
            "user",
        ]),
        &lines,
    );
    let seen = kcat(
        &kcat_bin,
        &[
            "-b", &brokers, "-C", "-t", &topic, "-e", "-q", "-f", "%k\t%s\n",
        ],
        "",
    );
    let expected: String = (0..10)
        .map(|i| format!("u{i}\t{{\"user\":\"u{i}\",\"n\":{i}}}\n"))
        .collect();
    assert_eq!(seen, expected);

    let topic = unique("from-kcat");
    ok(kafka(&["topics", "create", &topic]), "");
    let input: String = (0..10).map(|i| format!("key{i}:value {i}\n")).collect();
    kcat(
        &kcat_bin,
        &["-b", &brokers, "-P", "-t", &topic, "-K", ":"],
        &input,
    );
    let records = json_lines(&ok(
        kafka(&[
            "topics",
            "consume",
            "--topic",
            &topic,
            "--envelope",
            "--format",
            "raw",
        ]),
        "",
    ));
    let got: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = (0..10)
        .map(|i| (format!("key{i}"), format!("value {i}")))
        .collect();
    assert_eq!(got, want);
}
