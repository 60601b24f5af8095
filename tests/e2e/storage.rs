//! Object storage for real: a pipeline whose Parquet outputs, archive,
//! task checkpoints and model snapshots live on an S3-compatible server
//! (seaweedfs, started by tests/run), configured exactly as README's
//! "Object storage" section says, and resumed from there.

use std::process::Command;

use crate::pipeline::{CLICK_SCHEMA, ITEM_SCHEMA, click_spec, clicks_between, items};
use crate::support::*;

/// The S3 endpoint and bucket tests/run serves (`http://HOST:PORT/BUCKET`).
fn s3() -> Option<(String, String)> {
    let url = external("EDDY_TEST_S3")?;
    let (endpoint, bucket) = url.rsplit_once('/').expect("http://host:port/bucket");
    Some((endpoint.to_string(), bucket.to_string()))
}

/// An eddy command on the local log in `dir`, pointed at the S3 endpoint
/// as README says: an endpoint, a region, and credentials (any values for
/// a server without authentication).
fn eddy_s3(dir: &std::path::Path, endpoint: &str) -> Command {
    let mut c = eddy(&dir.join("eddy-data"));
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "eddy")
        .env("AWS_SECRET_ACCESS_KEY", "eddy-secret");
    c
}

/// Objects under `prefix` of the bucket, through seaweedfs's filer (its
/// S3 buckets live under /buckets on port 8888).
fn objects(bucket: &str, prefix: &str) -> Vec<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect("127.0.0.1:8888").unwrap();
    write!(
        stream,
        "GET /buckets/{bucket}/{prefix}/?limit=1000 HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    if !body
        .split_once(' ')
        .is_some_and(|(_, rest)| rest.starts_with("200"))
    {
        return Vec::new();
    }
    let json: serde_json::Value = body
        .find('{')
        .and_then(|i| serde_json::from_str(&body[i..]).ok())
        .unwrap_or_default();
    json["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["FullPath"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn parquet_archive_checkpoints_and_model_snapshots_on_s3_and_a_resume_from_them() {
    let Some((endpoint, bucket)) = s3() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("s3");
    let base = format!("s3://{bucket}/{prefix}");
    let cmd = |args: &[&str]| {
        let mut c = eddy_s3(dir.path(), &endpoint);
        c.args(args);
        c
    };
    std::fs::write(dir.path().join("click.avsc"), CLICK_SCHEMA).unwrap();
    std::fs::write(dir.path().join("item.avsc"), ITEM_SCHEMA).unwrap();
    ok(
        cmd(&["topics", "create", "clicks", "--partitions", "2"]),
        "",
    );
    ok(cmd(&["topics", "create", "items", "--compact"]), "");
    let produce = |topic: &str, key: &str, avsc: &str, lines: &str| {
        let schema = dir.path().join(avsc).display().to_string();
        let mut args = vec!["topics", "produce", "--topic", topic, "--key-field", key];
        args.extend(["--schema", &schema]);
        if topic == "clicks" {
            args.extend(["--timestamp-field", "ts"]);
        }
        ok(cmd(&args), lines);
    };
    produce("items", "item", "item.avsc", &items());
    // Parquet to S3 and to a local directory at once: each gets every part.
    let local = dir.path().join("local-parquet");
    let spec_text = click_spec("ons3", "clicks", "items", "features")
        .replace(
            "output: { topic: features }",
            &format!(
                "output: {{ topic: features, parquet: [\"{base}/features\", \"{}\"] }}",
                local.display()
            ),
        )
        .replace(
            "checkpoint: { interval: 200ms }",
            &format!("checkpoint: {{ url: \"{base}/checkpoints\", interval: 200ms }}"),
        )
        + &format!(
            "archive: {{ url: \"{base}/archive\" }}\n\
             models:\n  popular: {{ kind: popularity, source: clicks, item: item }}\n"
        );
    let spec = dir.path().join("ons3.yaml");
    std::fs::write(&spec, spec_text).unwrap();
    let spec = spec.to_str().unwrap();

    produce("clicks", "user", "click.avsc", &clicks_between(0, 1000));
    // Every storage URL is checked by validate.
    let out = ok(cmd(&["validate", spec]), "");
    assert_eq!(
        out.matches("reachable and writable").count(),
        4,
        "checkpoints, archive, Parquet twice: {out}"
    );

    let run_until_end = || {
        let out = run(
            cmd(&["run", spec, "--until-end", "--metrics-addr", "127.0.0.1:0"]),
            "",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (first, _) = run_until_end();
    assert!(first.starts_with("1000 events"), "{first}");
    // A second run resumes its tasks and its model from S3.
    produce("clicks", "user", "click.avsc", &clicks_between(1000, 2000));
    let (second, err) = run_until_end();
    assert!(
        second.starts_with("1000 events"),
        "only the new ones: {second}"
    );
    assert!(
        second.contains("resumed 2 tasks from checkpoints"),
        "{second}"
    );
    assert!(
        err.contains(&format!(
            "model `popular` resumes from its latest snapshot in {base}/checkpoints/ons3/models"
        )),
        "{err}"
    );
    for (what, want) in [
        ("features", ".parquet"),
        ("archive/clicks", "date="),
        ("checkpoints/ons3/task-00000", "ckpt-"),
        ("checkpoints/ons3/models/popular", ".bin"),
    ] {
        let listed = objects(&bucket, &format!("{prefix}/{what}"));
        assert!(
            listed.iter().any(|o| o.contains(want)),
            "{what}: {listed:?}"
        );
    }
    // The same part files in both Parquet locations.
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let mut on_s3: Vec<String> = objects(&bucket, &format!("{prefix}/features"))
        .iter()
        .map(|o| name(o))
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    on_s3.sort();
    on_disk.sort();
    assert!(!on_disk.is_empty());
    assert_eq!(on_s3, on_disk);
    // A backfill reads the archive back from S3 and writes there too.
    let out = ok(
        cmd(&["backfill", spec, "--out", &format!("{base}/backfill")]),
        "",
    );
    assert!(
        out.contains("2000 from the archive, 0 from topics"),
        "{out}"
    );
    assert!(!objects(&bucket, &format!("{prefix}/backfill/features/shopper")).is_empty());
}

/// Storage errors name what to do and exit 2 (the user's to fix) or 4 (an
/// endpoint that does not answer), never 1.
#[test]
fn storage_errors_say_what_to_do_and_exit_2_or_4() {
    let Some((endpoint, bucket)) = s3() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("click.avsc"), CLICK_SCHEMA).unwrap();
    let spec = |url: &str| {
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            click_spec("bad", "clicks", "items", "features").replace(
                "checkpoint: { interval: 200ms }",
                &format!("checkpoint: {{ url: \"{url}\", interval: 200ms }}"),
            ),
        )
        .unwrap();
        path
    };
    let mut c = eddy(&dir.path().join("eddy-data"));
    c.args(["topics", "create", "clicks"]);
    ok(c, "");
    let mut c = eddy(&dir.path().join("eddy-data"));
    c.args(["topics", "create", "items", "--compact"]);
    ok(c, "");
    let validate = |endpoint: &str, url: &str, creds: bool, code: i32| -> String {
        let mut c = eddy_s3(dir.path(), endpoint);
        if !creds {
            c.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY");
        }
        c.arg("validate").arg(spec(url));
        fails_with(c, "", code)
    };
    // The registry has no schema for these topics yet: give it one.
    let mut c = eddy(&dir.path().join("eddy-data"));
    c.args(["topics", "produce", "--topic", "clicks", "--schema"])
        .arg(dir.path().join("click.avsc"));
    ok(c, &clicks_between(0, 1));
    std::fs::write(dir.path().join("item.avsc"), ITEM_SCHEMA).unwrap();
    let mut c = eddy(&dir.path().join("eddy-data"));
    c.args([
        "topics",
        "produce",
        "--topic",
        "items",
        "--key-field",
        "item",
        "--schema",
    ])
    .arg(dir.path().join("item.avsc"));
    ok(c, &items());

    let good = format!("s3://{bucket}/{}", unique("errors"));
    let err = validate(&endpoint, &good, false, 2);
    assert!(err.contains("No credentials were found"), "{err}");
    let err = validate(&endpoint, "s3://no-such-bucket-for-eddy/x", true, 2);
    assert!(
        err.contains("The bucket does not exist") || err.contains("not allowed"),
        "{err}"
    );
    let err = validate("http://127.0.0.1:1", &good, true, 4);
    assert!(err.contains("The endpoint does not answer"), "{err}");

    // Regression: inside `eddy run`, a Parquet output that could not be
    // written reached the exit code as a bare string, so a bucket that does
    // not exist exited 1 ("a bug"). It keeps its type now: exit 2, saying
    // what to do.
    let path = dir.path().join("bad-parquet.yaml");
    std::fs::write(
        &path,
        click_spec("badpq", "clicks", "items", "features").replace(
            "output: { topic: features }",
            "output: { topic: features, parquet: \"s3://no-such-bucket-for-eddy/x\" }",
        ),
    )
    .unwrap();
    // Events that make rows (the first click is filtered out).
    let mut c = eddy(&dir.path().join("eddy-data"));
    c.args(["topics", "produce", "--topic", "clicks", "--schema"])
        .arg(dir.path().join("click.avsc"));
    ok(c, &clicks_between(1, 40));
    let mut c = eddy_s3(dir.path(), &endpoint);
    c.arg("run")
        .arg(&path)
        .args(["--until-end", "--metrics-addr", "127.0.0.1:0"]);
    let err = fails_with(c, "", 2);
    assert!(
        err.contains("The bucket does not exist") || err.contains("not allowed"),
        "{err}"
    );
}
