//! Models trained inside `eddy run` (the spec's `models:`): online equals
//! offline, restarts resume exactly, and updates and metrics reach their
//! topics.

use std::path::Path;
use std::process::Command;

use eddy_training::Learner as _;
use serde_json::Value as Json;

use crate::pipeline::MOVIELENS;
use crate::support::*;

const RATING_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/movielens/rating.avsc"
);

/// MovieLens ratings as JSON lines in event-time order, and the index of
/// the first rating of a later second than the one before it near the
/// middle (a split there leaves no rating of the first part's last
/// instant to the second part, where it would be late).
fn ratings_in_time_order() -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(format!("{MOVIELENS}/ratings.csv")).unwrap();
    let mut rows: Vec<(i64, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let ts: i64 = f[3].parse::<i64>().unwrap() * 1000;
            (
                ts,
                format!(
                    "{{\"user_id\": {}, \"movie_id\": {}, \"rating\": {}, \"timestamp\": {ts}}}",
                    f[0], f[1], f[2]
                ),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut split = rows.len() / 2;
    while rows[split].0 == rows[split - 1].0 {
        split += 1;
    }
    (rows.into_iter().map(|r| r.1).collect(), split)
}

const SPEC: &str = "name: models_e2e
sources:
  ratings: { topic: ratings1, key: user_id, event_time: timestamp, lateness: 10m }
features:
  user:
    source: ratings
    aggregations:
      - { name: n, op: count, windows: [30d, lifetime] }
      - { name: mean, op: mean, column: rating, windows: [30d, lifetime] }
      - { name: last_rating, op: last, column: rating, windows: [lifetime] }
    output: { topic: features.models_e2e }
models:
  like:
    kind: ftrl
    source: ratings
    label: \"rating >= 4\"
    columns: [user_id]
    categorical: [user_id]
    crosses: [[user_id, last_rating_lifetime]]
    params: { bits: 18 }
    snapshot_every: 3
  popular:
    kind: popularity
    source: ratings
    item: movie_id
    label: \"rating >= 4\"
";

fn cmd(data: &Path, args: &[&str]) -> Command {
    let mut c = eddy(data);
    c.args(args);
    c
}

fn produce(data: &Path, lines: &[String]) {
    ok(
        cmd(
            data,
            &[
                "topics",
                "produce",
                "--topic",
                "ratings1",
                "--key-field",
                "user_id",
                "--schema",
                RATING_SCHEMA,
            ],
        ),
        &(lines.join("\n") + "\n"),
    );
}

/// The last metrics record of `model` on `models.metrics`.
pub(crate) fn last_metrics(data: &Path, model: &str) -> Json {
    let out = ok(
        cmd(
            data,
            &[
                "topics",
                "consume",
                "--topic",
                "models.metrics",
                "--from",
                "earliest",
            ],
        ),
        "",
    );
    json_lines(&out)
        .into_iter()
        .rfind(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no metrics of `{model}` in {out}"))
}

/// The whole loop on the embedded log, over MovieLens in one partition:
/// - a model trained live in two bounded runs (the second resuming from
///   the first's snapshot) has exactly the progressive logloss of
///   `eddy learn` over the backfill's training set: the same examples, in
///   the same order, with the same features as of just before each;
/// - a replica that follows the models topic holds the saved model;
/// - metrics reach the metrics topic.
#[test]
fn a_model_trained_live_across_a_restart_equals_eddy_learn_over_the_backfill_training_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let (ratings, split) = ratings_in_time_order();
    ok(
        cmd(
            &data,
            &["topics", "create", "ratings1", "--partitions", "1"],
        ),
        "",
    );
    let spec = dir.path().join("models.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let spec = spec.to_str().unwrap();
    let run = || {
        let mut c = cmd(
            &data,
            &["run", spec, "--until-end", "--metrics-addr", "127.0.0.1:0"],
        );
        c.current_dir(dir.path());
        run(c, "")
    };

    produce(&data, &ratings[..split]);
    let first = run();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first_out = text(&first.stdout);
    assert!(
        first_out.contains(&format!("model like (ftrl): {split} examples")),
        "{first_out}"
    );
    let after_first = last_metrics(&data, "like");
    assert_eq!(after_first["examples"], split as u64);

    produce(&data, &ratings[split..]);
    let second = run();
    assert!(second.status.success(), "{}", text(&second.stderr));
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains("model `like` resumes from its latest snapshot"),
        "{stderr}"
    );
    let live = last_metrics(&data, "like");
    assert_eq!(live["examples"], ratings.len() as u64, "{live}");
    assert_eq!(live["replayed"], 0, "{live}");
    assert_eq!(live["skipped"], serde_json::json!({}), "{live}");
    let popular = last_metrics(&data, "popular");
    let hr = popular["metrics"]["hit_rate"].as_f64().unwrap();
    assert!(hr > 0.0 && hr < 1.0, "{popular}");

    // A live run serves the resumed model's metrics to Prometheus.
    let mut c = cmd(&data, &["run", spec, "--metrics-addr", "127.0.0.1:0"]);
    c.current_dir(dir.path());
    let live_run = LiveRun::start(c);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let body = loop {
        let (status, body) = crate::pipeline::http_get(&live_run.addr, "/metrics");
        assert_eq!(status, 200);
        if body.contains("eddy_model_examples_total{") {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no model metrics: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    live_run.stop();
    let examples = body
        .lines()
        .find(|l| l.starts_with("eddy_model_examples_total{") && l.contains("model=\"like\""))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        examples.ends_with(&format!(" {}", ratings.len())),
        "{examples}"
    );
    assert!(
        body.contains(
            "eddy_model_logloss{pipeline=\"models_e2e\",model=\"like\",kind=\"ftrl\"} 0."
        ),
        "{body}"
    );
    assert!(body.contains("eddy_model_hit_rate{pipeline=\"models_e2e\",model=\"popular\",kind=\"popularity\",k=\"10\"} 0."), "{body}");

    // Offline: the backfill's training set through `eddy learn`.
    let out_dir = dir.path().join("backfill");
    let mut backfill = cmd(
        &data,
        &[
            "backfill",
            spec,
            "--labels",
            "ratings",
            "--label-expr",
            "rating >= 4",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    backfill.current_dir(dir.path());
    ok(backfill, "");
    let training = dir.path().join("training.parquet");
    concat_parquet(&out_dir.join("training"), &training);
    let report: Json = serde_json::from_str(&ok(
        cmd(
            &data,
            &[
                "learn",
                "--input",
                training.to_str().unwrap(),
                "--label",
                "label",
                "--categorical",
                "user_id",
                "--ignore",
                "event_time,partition,offset",
                "--cross",
                "user_id,last_rating_lifetime",
                "--bits",
                "18",
                "--numeric",
                "log",
                "--json",
            ],
        ),
        "",
    ))
    .unwrap();
    assert_eq!(report["examples"], ratings.len() as u64, "{report}");
    assert_live_equals_offline(&live, &report);

    // The models topic: a replica that reads it from the start holds the
    // model that was saved last, weight for weight.
    let log = eddy_features::topic::local::LocalLog::open(
        eddy_features::topic::local::LocalLogConfig::new(&data),
    )
    .unwrap();
    let records =
        eddy_features::topic::read_to_end(&log, "models", std::time::Duration::from_secs(10))
            .unwrap();
    let mut replica = eddy_training::lifecycle::Replica::new("like");
    for r in &records {
        replica.apply(r).unwrap();
    }
    // (The live run above published once more, on start.)
    let latest = last_metrics(&data, "like");
    assert_eq!(latest["examples"], live["examples"]);
    assert_eq!(
        replica.version(),
        latest["version"].as_u64(),
        "{} records on the models topic",
        records.len()
    );
    let store = eddy_features::store::Store::open(
        &data
            .join("checkpoints/models_e2e/models")
            .display()
            .to_string(),
    )
    .unwrap();
    let (bytes, offsets) = eddy_training::lifecycle::ModelStore::new(&store, "like")
        .latest_bytes()
        .unwrap()
        .expect("a saved snapshot");
    assert_eq!(
        offsets[&("ratings1".to_string(), 0)],
        ratings.len() as i64,
        "the snapshot records the offsets it learned up to"
    );
    let state: eddy_training::online::ModelState = postcard::from_bytes(&bytes).unwrap();
    let eddy_training::online::Body::Linear(saved) = state.body else {
        panic!("like is linear");
    };
    let served = replica.model.as_ref().unwrap();
    let mut rng = eddy_training::recommend::Rng(7);
    for _ in 0..200 {
        let x: Vec<(u32, f32)> = (0..6)
            .map(|_| ((rng.next_u64() % (1 << 18)) as u32, rng.uniform() as f32))
            .collect();
        assert_eq!(
            served.predict(&x).to_bits(),
            saved.ftrl.predict(&x).to_bits()
        );
    }
}

/// Every `part-*.parquet` of `dir`, in order, as one file.
fn concat_parquet(dir: &Path, out: &Path) {
    use polars::prelude::*;
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    let mut all: Option<DataFrame> = None;
    for p in parts {
        let df = ParquetReader::new(std::fs::File::open(p).unwrap())
            .finish()
            .unwrap();
        all = Some(match all {
            None => df,
            Some(a) => a.vstack(&df).unwrap(),
        });
    }
    let mut all = all.expect("training files");
    ParquetWriter::new(std::fs::File::create(out).unwrap())
        .finish(&mut all)
        .unwrap();
}

/// A bad `models:` section is refused with file, line and key, before
/// anything runs.
#[test]
fn a_bad_models_section_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    ok(
        cmd(
            &data,
            &["topics", "create", "ratings1", "--partitions", "1"],
        ),
        "",
    );
    let (ratings, _) = ratings_in_time_order();
    produce(&data, &ratings[..10]);
    let spec = dir.path().join("bad.yaml");
    let bad = SPEC
        .replace("params: { bits: 18 }", "params: { bits: 18, dim: 8 }")
        .replace(
            "crosses: [[user_id, last_rating_lifetime]]",
            "crosses: [[user_id, genre]]",
        );
    std::fs::write(&spec, &bad).unwrap();
    // Shape first: a parameter of another kind.
    let err = fails_with(cmd(&data, &["validate", spec.to_str().unwrap()]), "", 2);
    assert!(
        err.contains(
            "bad.yaml:20: key `models.like.params.dim`: `dim` does not apply to a `ftrl` model"
        ),
        "{err}"
    );
    // Then against the schema: an unknown input in a cross.
    std::fs::write(&spec, bad.replace(", dim: 8", "")).unwrap();
    let err = fails_with(cmd(&data, &["validate", spec.to_str().unwrap()]), "", 2);
    assert!(
        err.contains("key `models.like.crosses[0][1]`: unknown input `genre`"),
        "{err}"
    );
    // A valid spec lists its models.
    std::fs::write(dir.path().join("good.yaml"), SPEC).unwrap();
    let out = ok(
        cmd(
            &data,
            &["validate", dir.path().join("good.yaml").to_str().unwrap()],
        ),
        "",
    );
    assert!(
        out.contains("model like (ftrl on ratings → models): 6 inputs, label `rating >= 4`"),
        "{out}"
    );
    assert!(
        out.contains("model popular (popularity on ratings → models): item movie_id"),
        "{out}"
    );
}
