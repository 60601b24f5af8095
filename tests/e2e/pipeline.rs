//! `eddy run` and `eddy validate`: feature pipelines end to end, on the
//! embedded log and on a real broker.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::support::*;

pub(crate) const MOVIELENS_SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/movielens/pipeline.yaml"
);
pub(crate) const MOVIELENS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/movielens-small");

/// The latest row per key of a feature topic: the table it holds.
pub(crate) fn table(cmd: Command, key: &str) -> BTreeMap<String, Json> {
    json_lines(&ok(cmd, ""))
        .into_iter()
        .map(|row| (row[key].to_string(), row))
        .collect()
}

fn consume(mut cmd: Command, topic: &str) -> Command {
    cmd.args(["topics", "consume", "--topic", topic]);
    cmd
}

pub(crate) fn quickstart(dir: &Path) {
    let mut cmd = eddy(&dir.join("eddy-data"));
    cmd.current_dir(dir)
        // No live tail: these tests compare the topics with the CSV files.
        .args(["quickstart", "--dataset", MOVIELENS, "--tail", "0"]);
    ok(cmd, "");
}

fn run_spec(dir: &Path, spec: &Path) -> Command {
    let mut cmd = eddy(&dir.join("eddy-data"));
    cmd.current_dir(dir).arg("run").arg(spec).args([
        "--until-end",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    cmd
}

#[test]
fn movielens_pipeline_features_match_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    // Quickstart ran this pipeline already: start it over from nothing.
    std::fs::remove_dir_all(dir.path().join("eddy-data/checkpoints")).unwrap();
    std::fs::remove_dir_all(dir.path().join("eddy-data/parquet")).unwrap();
    let out = ok(run_spec(dir.path(), Path::new(MOVIELENS_SPEC)), "");
    assert!(out.starts_with("100837 events"), "{out}");
    assert!(out.contains("0 late"), "{out}");
    let rows = table(
        consume(
            eddy(&dir.path().join("eddy-data")),
            "features.user_activity",
        ),
        "user_id",
    );

    // Recompute user 1's lifetime features from the CSV files.
    let movies = std::fs::read_to_string(format!("{MOVIELENS}/movies.csv")).unwrap();
    let mut genres: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut reader = csv::Reader::from_reader(movies.as_bytes());
    for rec in reader.records() {
        let rec = rec.unwrap();
        let g = rec[2]
            .split('|')
            .filter(|g| *g != "(no genres listed)")
            .map(str::to_string)
            .collect();
        genres.insert(rec[0].parse().unwrap(), g);
    }
    let ratings = std::fs::read_to_string(format!("{MOVIELENS}/ratings.csv")).unwrap();
    let mut mine: Vec<(i64, i64, f64)> = Vec::new();
    for line in ratings.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[0] == "1" {
            mine.push((
                f[3].parse::<i64>().unwrap() * 1000,
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            ));
        }
    }
    mine.sort_by_key(|(ts, movie, _)| (*ts, *movie));
    let row = &rows["1"];
    assert_eq!(row["ratings_count_lifetime"], json!(mine.len()));
    let mean = mine.iter().map(|r| r.2).sum::<f64>() / mine.len() as f64;
    assert!(
        (row["avg_rating_lifetime"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{row}"
    );
    let last10: Vec<i64> = mine.iter().rev().take(10).rev().map(|r| r.1).collect();
    assert_eq!(row["recent_movies_lifetime"], json!(last10));
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, movie, _) in &mine {
        for g in &genres[movie] {
            *counts.entry(g).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, i64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top3: Vec<&str> = ranked.iter().take(3).map(|(g, _)| *g).collect();
    assert_eq!(row["top_genres_lifetime"], json!(top3));
    let distinct = row["distinct_movies_lifetime"].as_i64().unwrap();
    assert!(
        (distinct - mine.len() as i64).abs() <= (mine.len() as i64 / 20).max(1),
        "{row}"
    );
    // Every user has a row, and a Parquet part per task was written.
    let users: std::collections::BTreeSet<&str> = ratings
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(rows.len(), users.len());
    // Parts are written at each checkpoint, so a slow run has more of them.
    let parts: Vec<String> = std::fs::read_dir(dir.path().join("eddy-data/parquet/user_activity"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for task in 0..4 {
        let prefix = format!("part-{task:05}-");
        assert!(
            parts
                .iter()
                .any(|p| p.starts_with(&prefix) && p.ends_with(".parquet")),
            "no Parquet part of task {task}: {parts:?}"
        );
    }
}

#[test]
fn a_pipeline_killed_mid_stream_ends_with_the_table_of_an_uninterrupted_run() {
    let spec_text = std::fs::read_to_string(MOVIELENS_SPEC)
        .unwrap()
        .replace(
            "name: movielens",
            // A name of its own: quickstart's run of `movielens` has finished.
            "name: crash\ncheckpoint: { interval: 100ms }",
        )
        // And a view re-keyed by movie: its events cross tasks through the
        // repartition topic, which the kills cut at any point.
        .replace(
            "\nmodels:",
            "\n  movie_stats:
    source: ratings
    key: movie_id
    aggregations:
      - { name: ratings, op: count, windows: [1d, 30d, lifetime] }
      - { name: avg_rating, op: mean, column: rating, windows: [30d, lifetime] }
      - { name: raters, op: last_k, column: user_id, k: 5, windows: [lifetime] }
    output: { topic: features.movie_stats }

models:",
        )
        // Which the click model reads as of each rating, from the task
        // owning the movie: examples wait for answers, which the kills
        // also cut.
        .replace(
            "features: [user_activity]",
            "features: [user_activity, movie_stats]",
        );
    assert!(spec_text.contains("features: [user_activity, movie_stats]"));
    let whole = tempfile::tempdir().unwrap();
    let cut = tempfile::tempdir().unwrap();
    for d in [whole.path(), cut.path()] {
        quickstart(d);
        std::fs::write(d.join("spec.yaml"), &spec_text).unwrap();
    }
    let uncut = ok(run_spec(whole.path(), &whole.path().join("spec.yaml")), "");

    // SIGKILL at several points, each once the run has written a new
    // checkpoint (so every restart resumes mid-stream, however slow the
    // machine), at a different delay after it.
    let ckpts = cut.path().join("eddy-data/checkpoints/crash");
    let names = || -> std::collections::BTreeSet<String> {
        let Ok(tasks) = std::fs::read_dir(&ckpts) else {
            return Default::default();
        };
        tasks
            .flatten()
            .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
            .map(|f| f.path().display().to_string())
            .collect()
    };
    let mut killed = 0;
    for extra_ms in [0, 40, 90, 150] {
        let before = names();
        let mut cmd = run_spec(cut.path(), &cut.path().join("spec.yaml"));
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        watchdog(child.id());
        while child.try_wait().unwrap().is_none() && names().is_subset(&before) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(extra_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed >= 1, "no run was still going when killed");
    let last = ok(run_spec(cut.path(), &cut.path().join("spec.yaml")), "");
    assert!(
        last.contains("resumed"),
        "the final run resumed from checkpoints: {last}"
    );
    let a = table(
        consume(
            eddy(&whole.path().join("eddy-data")),
            "features.user_activity",
        ),
        "user_id",
    );
    let b = table(
        consume(
            eddy(&cut.path().join("eddy-data")),
            "features.user_activity",
        ),
        "user_id",
    );
    assert_eq!(a.len(), b.len());
    for (k, row) in &a {
        assert_eq!(Some(row), b.get(k), "user {k}");
    }
    let movies = |d: &Path| {
        table(
            consume(eddy(&d.join("eddy-data")), "features.movie_stats"),
            "movie_id",
        )
    };
    let (a, b) = (movies(whole.path()), movies(cut.path()));
    assert!(!a.is_empty());
    assert_eq!(a, b, "the re-keyed view survived the kills");
    // Every rating is an example of the model reading it, learned once
    // across the kills: none lost waiting for its movie's answer, none
    // learned twice after a restart.
    let examples =
        |d: &Path| crate::models::last_metrics(&d.join("eddy-data"), "like")["examples"].clone();
    let ratings = std::fs::read_to_string(format!("{MOVIELENS}/ratings.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert!(
        uncut.contains(&format!("model like (ftrl): {ratings} examples")),
        "{uncut}"
    );
    assert!(last.contains("model like (ftrl): "), "{last}");
    assert_eq!(examples(whole.path()), ratings as u64);
    assert_eq!(examples(cut.path()), ratings as u64);
    // The recommenders read no re-keyed view: they learn each rating as
    // it is released, not once `like`'s answers are in, and once too.
    let popular =
        |d: &Path| crate::models::last_metrics(&d.join("eddy-data"), "popular")["examples"].clone();
    assert_eq!(popular(whole.path()), popular(cut.path()));
    assert!(popular(whole.path()).as_u64().unwrap() > 0);
}

fn validate(dir: &Path, spec: &Path) -> Command {
    let mut cmd = eddy(&dir.join("eddy-data"));
    cmd.current_dir(dir).arg("validate").arg(spec);
    cmd
}

#[test]
fn validate_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        "name: bad\nsources:\n  ratings: { topic: ratings, key: user_id, event_time: timestamp }\nfeatures:\n  v:\n    source: ratings\n    aggregations:\n      - { name: a, op: mean, column: nope, windows: [1h] }\n      - { name: b, op: sum, column: user_id, windows: [1h] }\n      - { name: c, op: approx_count_distinct, column: movie_id, windows: [1d] }\n",
    )
    .unwrap();
    let err = fails_with(validate(dir.path(), &spec), "", 2);
    assert!(
        err.contains("bad.yaml:10: key `features.v.aggregations[2].windows[0]`"),
        "{err}"
    );
    assert!(
        !err.contains("aggregations[1]"),
        "a sum of a long is fine: {err}"
    );
    let err = {
        std::fs::write(
            &spec,
            std::fs::read_to_string(&spec)
                .unwrap()
                .replace("[1d]", "[lifetime]"),
        )
        .unwrap();
        fails_with(validate(dir.path(), &spec), "", 2)
    };
    assert!(
        err.contains("bad.yaml:8: key `features.v.aggregations[0].column`: unknown column `nope`"),
        "{err}"
    );
    // The archive names a source that does not exist.
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("column: nope", "column: rating")
            + "archive:\n  url: \"file:///tmp/a\"\n  sources: [ratings, clicks]\n",
    )
    .unwrap();
    let err = fails_with(validate(dir.path(), &spec), "", 2);
    assert!(
        err.contains("bad.yaml:13: key `archive.sources[1]`: no source named `clicks`"),
        "{err}"
    );
    std::fs::write(&spec, "name: bad\nsources: {}\nfeatures: {}\nsurprise: 1\n").unwrap();
    let err = fails_with(validate(dir.path(), &spec), "", 2);
    assert!(
        err.contains("bad.yaml:4") && err.contains("unknown field `surprise`"),
        "{err}"
    );
    let out = ok(validate(dir.path(), Path::new(MOVIELENS_SPEC)), "");
    assert!(out.contains("ratings_count_30d"), "{out}");
}

pub(crate) const CLICK_SCHEMA: &str = r#"{"type":"record","name":"Click","fields":[
  {"name":"user","type":"long"},{"name":"item","type":"long"},
  {"name":"amount","type":"double"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
pub(crate) const ITEM_SCHEMA: &str = r#"{"type":"record","name":"Item","fields":[
  {"name":"item","type":"long"},{"name":"category","type":"string"},{"name":"since","type":"long"}]}"#;
pub(crate) const BASE: i64 = 1_700_000_000_000;

/// Clicks within the 5 s lateness, three late ones, and items with a
/// category change half-way.
pub(crate) fn click_events(n: i64) -> (String, String) {
    (clicks_between(0, n), items())
}

/// Clicks number `from` to `to` (exclusive) of the fixture.
pub(crate) fn clicks_between(from: i64, to: i64) -> String {
    let mut clicks = String::new();
    for i in from..to {
        let jitter = (i * 31) % 4000;
        let ts = if [1000, 1500, 1900].contains(&i) {
            BASE
        } else {
            BASE + i * 1000 - jitter
        };
        let amount = if i % 50 == 0 {
            -1.0
        } else {
            ((i % 17) * 5) as f64
        };
        clicks += &json!({"user": (i * 7) % 25, "item": (i * 13) % 20, "amount": amount, "ts": ts})
            .to_string();
        clicks.push('\n');
    }
    clicks
}

pub(crate) fn items() -> String {
    let mut items = String::new();
    for item in 0..20 {
        items += &json!({"item": item, "category": format!("c{}", item % 4), "since": BASE - 1})
            .to_string();
        items.push('\n');
    }
    items += &json!({"item": 3, "category": "sale", "since": BASE + 1_000_000}).to_string();
    items.push('\n');
    items
}

pub(crate) fn click_spec(name: &str, clicks: &str, items: &str, features: &str) -> String {
    format!(
        "name: {name}
sources:
  clicks: {{ topic: {clicks}, key: user, event_time: ts, lateness: 5s }}
tables:
  items: {{ topic: {items}, key: item, versioned: true, valid_from: since }}
features:
  shopper:
    source: clicks
    join: [{{ table: items, on: item, select: [category] }}]
    derive: {{ big: \"amount > 50\" }}
    filter: \"amount >= 0\"
    aggregations:
      - {{ name: clicks, op: count, windows: [1m, 10m, lifetime] }}
      - {{ name: big, op: count_distinct, column: big, windows: [10m] }}
      - {{ name: spend, op: sum, column: amount, windows: [10m, \"tumbling 1h\"] }}
      - {{ name: top_cat, op: top_k, column: category, k: 2, windows: [lifetime] }}
      - {{ name: last_items, op: last_k, column: item, k: 3, windows: [10m] }}
      - {{ name: max_amount, op: max, column: amount, windows: [\"hopping 10m every 1m\"] }}
    output: {{ topic: {features} }}
  # Keyed by item over clicks keyed by user: every test of this fixture
  # runs the repartition topic too.
  per_item:
    source: clicks
    key: item
    join: [{{ table: items, on: item, select: [category] }}]
    aggregations:
      - {{ name: clicks, op: count, windows: [10m, lifetime] }}
      - {{ name: spend, op: sum, column: amount, windows: [10m] }}
      - {{ name: buyers, op: last_k, column: user, k: 3, windows: [lifetime] }}
      - {{ name: category, op: last, column: category, windows: [lifetime] }}
    output: {{ topic: {features}.per_item }}
checkpoint: {{ interval: 200ms }}
"
    )
}

/// Loads the click fixture through `cmd` (a factory of eddy commands on one
/// backend), runs the pipeline to the end and returns the feature table and
/// the dead-letter records.
/// The click fixture loaded on one backend, with its spec written.
pub(crate) struct Clicks {
    pub spec: std::path::PathBuf,
    pub features: String,
    pub dlq: String,
}

/// Loads `n` clicks (and the items table) through `cmd` (a factory of eddy
/// commands on one backend) and writes the spec.
pub(crate) fn load_clicks(
    dir: &Path,
    cmd: &dyn Fn(&[&str]) -> Command,
    prefix: &str,
    n: i64,
) -> Clicks {
    let (clicks, items) = click_events(n);
    let (ct, it, ft) = (
        format!("{prefix}clicks"),
        format!("{prefix}items"),
        format!("{prefix}features"),
    );
    std::fs::write(dir.join("click.avsc"), CLICK_SCHEMA).unwrap();
    std::fs::write(dir.join("item.avsc"), ITEM_SCHEMA).unwrap();
    ok(cmd(&["topics", "create", &ct, "--partitions", "3"]), "");
    ok(cmd(&["topics", "create", &it, "--compact"]), "");
    let produce = |topic: &str, key: &str, schema: Option<&Path>, lines: &str| {
        let mut args = vec!["topics", "produce", "--topic", topic, "--key-field", key];
        let s;
        if let Some(p) = schema {
            s = p.display().to_string();
            args.extend(["--schema", &s]);
        }
        ok(cmd(&args), lines);
    };
    produce(&it, "item", Some(&dir.join("item.avsc")), &items);
    produce(&ct, "user", Some(&dir.join("click.avsc")), &clicks);
    // A record that is not Avro at all: dead-lettered, not fatal.
    produce(&ct, "user", None, "{\"user\": 3}\n");
    let spec = dir.join("clicks.yaml");
    std::fs::write(
        &spec,
        click_spec(&unique("clicks").replace('-', "_"), &ct, &it, &ft),
    )
    .unwrap();
    Clicks {
        spec,
        features: ft,
        dlq: format!("{ct}.dlq"),
    }
}

pub(crate) fn run_args<'a>(dir: &'a Path, c: &'a Clicks, ckpt: &'a str) -> Vec<String> {
    let _ = dir;
    [
        "run",
        c.spec.to_str().unwrap(),
        "--until-end",
        "--metrics-addr",
        "127.0.0.1:0",
        "--checkpoint-url",
        ckpt,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Loads the 2000-click fixture, runs the pipeline to the end and returns
/// the feature table and the dead-letter records.
fn run_clicks(
    dir: &Path,
    cmd: &dyn Fn(&[&str]) -> Command,
    prefix: &str,
) -> (BTreeMap<String, Json>, Vec<Json>) {
    let c = load_clicks(dir, cmd, prefix, 2000);
    let ckpt = dir.join("ckpt").display().to_string();
    let args = run_args(dir, &c, &ckpt);
    let out = ok(
        cmd(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        "",
    );
    assert!(
        out.contains("3 late, 1 undecodable records, 4 dead-lettered"),
        "{out}"
    );
    let rows = table(cmd(&["topics", "consume", "--topic", &c.features]), "user");
    let dlq = json_lines(&ok(
        cmd(&[
            "topics",
            "consume",
            "--topic",
            &c.dlq,
            "--envelope",
            "--format",
            "raw",
        ]),
        "",
    ));
    (rows, dlq)
}

#[test]
fn the_click_pipeline_dead_letters_bad_and_late_events_and_joins_as_of_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let (rows, dlq) = run_clicks(
        dir.path(),
        &|args| {
            let mut c = eddy(&data);
            c.args(args);
            c
        },
        "",
    );
    assert_eq!(rows.len(), 25);
    assert_eq!(dlq.len(), 4);
    let reasons: Vec<String> = dlq.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("late: event time"))
            .count(),
        3,
        "{reasons:?}"
    );
    // The as-of join: item 3 is `sale` from BASE + 1000 s on, `c3` before.
    let mut counts: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for i in 0..2000i64 {
        let (user, item, ts) = (
            (i * 7) % 25,
            (i * 13) % 20,
            BASE + i * 1000 - (i * 31) % 4000,
        );
        if i % 50 == 0 {
            continue; // filtered (amount < 0), late ones included
        }
        let cat = if item == 3 && ts >= BASE + 1_000_000 {
            "sale".to_string()
        } else {
            format!("c{}", item % 4)
        };
        *counts.entry(user).or_default().entry(cat).or_default() += 1;
    }
    for (user, cats) in counts {
        let mut ranked: Vec<(String, i64)> = cats.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> = ranked.into_iter().take(2).map(|c| c.0).collect();
        assert_eq!(
            rows[&user.to_string()]["top_cat_lifetime"],
            json!(top),
            "user {user}"
        );
    }
    for row in rows.values() {
        assert!(row["clicks_lifetime"].as_i64().unwrap() > 0, "{row}");
    }
}

#[test]
fn the_same_pipeline_on_tansu_gives_the_same_table_as_on_the_local_log() {
    let Some(brokers) = external("EDDY_TEST_KAFKA_BROKERS") else {
        return;
    };
    let local = tempfile::tempdir().unwrap();
    let data = local.path().join("eddy-data");
    let (want, _) = run_clicks(
        local.path(),
        &|args| {
            let mut c = eddy(&data);
            c.args(args);
            c
        },
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    let schemas = unique("schemas");
    let registry = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    let prefix = unique("pipe") + ".";
    let (got, dlq) = run_clicks(
        dir.path(),
        &|args| {
            let mut c = eddy(dir.path());
            c.args(["--brokers", &brokers, "--registry", &registry.url])
                .args(args);
            c
        },
        &prefix,
    );
    assert_eq!(dlq.len(), 4);
    assert_eq!(want, got);
}

#[test]
fn two_processes_in_a_group_on_tansu_with_one_stopped_halfway_give_the_table_of_one() {
    let Some(brokers) = external("EDDY_TEST_KAFKA_BROKERS") else {
        return;
    };
    const N: i64 = 30_000;
    // The reference: one process on the local log.
    let local = tempfile::tempdir().unwrap();
    let data = local.path().join("eddy-data");
    let on_local = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    let lc = load_clicks(local.path(), &on_local, "", 2 * N);
    let ckpt = local.path().join("ckpt").display().to_string();
    let args = run_args(local.path(), &lc, &ckpt);
    ok(
        on_local(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        "",
    );
    let want = table(
        on_local(&["topics", "consume", "--topic", &lc.features]),
        "user",
    );
    let per_item = |c: &crate::pipeline::Clicks| format!("{}.per_item", c.features);
    let want_items = table(
        on_local(&["topics", "consume", "--topic", &per_item(&lc)]),
        "item",
    );
    assert!(!want_items.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let schemas = unique("schemas");
    let registry = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    let on_kafka = |args: &[&str]| {
        let mut c = eddy(dir.path());
        c.args(["--brokers", &brokers, "--registry", &registry.url])
            .args(args);
        c
    };
    // Half the clicks now, half while A runs.
    let kc = load_clicks(dir.path(), &on_kafka, &(unique("group") + "."), N);
    let ckpt = dir.path().join("ckpt").display().to_string();
    let bounded = run_args(dir.path(), &kc, &ckpt);
    let live: Vec<&str> = bounded
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--until-end")
        .collect();
    let bounded: Vec<&str> = bounded.iter().map(String::as_str).collect();
    // Each process's log, read as it is written.
    let spawn = |name: &str, args: &[&str]| {
        let mut cmd = on_kafka(args);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("EDDY_LOG", "eddy_features=info");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        watchdog(child.id());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        (child, log)
    };
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // A runs live with every task, and gets the second half while it runs.
    // B joins with --until-end: the group moves some tasks to B, restored
    // from A's checkpoints. A is then stopped (SIGTERM: it checkpoints and
    // leaves), B restores A's tasks, finishes every task and stops.
    let (mut a, a_log) = spawn("a", &live);
    wait_for("a to get its tasks", &|| {
        a_log.lock().unwrap().contains("task assigned")
    });
    ok(
        on_kafka(&[
            "topics",
            "produce",
            "--topic",
            kc.dlq.trim_end_matches(".dlq"),
            "--key-field",
            "user",
            "--schema",
            dir.path().join("click.avsc").to_str().unwrap(),
        ]),
        &clicks_between(N, 2 * N),
    );
    let (mut b, b_log) = spawn("b", &bounded);
    wait_for("the group to move tasks from a to b", &|| {
        a_log.lock().unwrap().contains("task revoked")
            && b_log.lock().unwrap().contains("task assigned")
    });
    assert!(
        a.try_wait().unwrap().is_none(),
        "a (live) stopped by itself"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(a.id().to_string())
        .status();
    assert!(a.wait().unwrap().success(), "a stops cleanly on SIGTERM");
    let b_status = b.wait().unwrap();
    let (a_log, b_log) = (a_log.lock().unwrap().clone(), b_log.lock().unwrap().clone());
    assert!(b_status.success(), "b failed: {b_log}");
    // B restored tasks from A's checkpoints: at the rebalance, and after A
    // left.
    assert!(
        b_log.matches("restored=true").count() >= 2,
        "b: {b_log}\na: {a_log}"
    );
    let got = table(
        on_kafka(&["topics", "consume", "--topic", &kc.features]),
        "user",
    );
    assert_eq!(want.len(), got.len());
    for (k, row) in &want {
        assert_eq!(Some(row), got.get(k), "user {k}");
    }
    // The re-keyed view crossed tasks in two processes through the
    // repartition topic, and came out as one process's.
    let got_items = table(
        on_kafka(&["topics", "consume", "--topic", &per_item(&kc)]),
        "item",
    );
    assert_eq!(want_items, got_items);
}

/// A plain HTTP GET on loopback: (status, body).
pub(crate) fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

pub(crate) fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(name) && l.contains('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn a_live_run_serves_metrics_stops_on_ctrl_c_and_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let on_local = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    let c = load_clicks(dir.path(), &on_local, "", 2000);
    let ckpt = dir.path().join("ckpt").display().to_string();
    let live = LiveRun::start(on_local(&[
        "run",
        c.spec.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--checkpoint-url",
        &ckpt,
    ]));
    let addr = live.addr.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http_get(&addr, "/metrics");
        assert_eq!(status, 200);
        if metric(&body, "eddy_events_in_total") == 2001.0
            && metric(&body, "eddy_feature_rows_total") > 0.0
        {
            assert_eq!(metric(&body, "eddy_events_late_total"), 3.0, "{body}");
            assert_eq!(metric(&body, "eddy_dead_letters_total"), 4.0, "{body}");
            assert_eq!(metric(&body, "eddy_ready"), 1.0, "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never all read: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    let out = live.stop();
    // The record that is not Avro is read but is not an event.
    assert!(out.contains("2000 events"), "{out}");
    assert!(out.contains("1 undecodable records"), "{out}");

    // More events arrive; a bounded run resumes at the checkpointed offsets
    // (reading only the new ones) and ends with the same table as one run
    // over everything.
    ok(
        on_local(&[
            "topics",
            "produce",
            "--topic",
            "clicks",
            "--key-field",
            "user",
            "--schema",
            dir.path().join("click.avsc").to_str().unwrap(),
        ]),
        &clicks_between(2000, 3000),
    );
    let args = run_args(dir.path(), &c, &ckpt);
    let out = ok(
        on_local(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        "",
    );
    assert!(
        out.starts_with("1000 events") && out.contains("resumed 3 tasks"),
        "{out}"
    );
    let got = table(
        on_local(&["topics", "consume", "--topic", &c.features]),
        "user",
    );

    let whole = tempfile::tempdir().unwrap();
    let wdata = whole.path().join("eddy-data");
    let on_whole = |args: &[&str]| {
        let mut c = eddy(&wdata);
        c.args(args);
        c
    };
    let wc = load_clicks(whole.path(), &on_whole, "", 3000);
    let wckpt = whole.path().join("ckpt").display().to_string();
    let args = run_args(whole.path(), &wc, &wckpt);
    ok(
        on_whole(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        "",
    );
    let want = table(
        on_whole(&["topics", "consume", "--topic", &wc.features]),
        "user",
    );
    assert_eq!(want, got);
}

/// Regression: live, a re-keyed view saw its events only when the job
/// checkpointed (the local log buffers what is sent until told), so with a
/// long checkpoint interval it stayed empty for that long. Now the events
/// go out every poll.
#[test]
fn a_live_rekeyed_view_waited_for_the_next_checkpoint_to_see_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let on_local = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    let c = load_clicks(dir.path(), &on_local, "", 2000);
    let text = std::fs::read_to_string(&c.spec).unwrap().replace(
        "checkpoint: { interval: 200ms }",
        "checkpoint: { interval: 1h }",
    );
    assert!(text.contains("interval: 1h"));
    std::fs::write(&c.spec, text).unwrap();
    let ckpt = dir.path().join("ckpt").display().to_string();
    let live = LiveRun::start(on_local(&[
        "run",
        c.spec.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--checkpoint-url",
        &ckpt,
    ]));
    let topic = format!("{}.per_item", c.features);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = json_lines(&ok(on_local(&["topics", "consume", "--topic", &topic]), ""));
        if let Some(row) = rows.first() {
            assert!(row["clicks_lifetime"].as_i64().unwrap() > 0, "{row}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the per-item view never got a row before the checkpoint"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = http_get(&live.addr, "/metrics");
    assert!(metric(&metrics, "eddy_repartition_records_total") > 0.0);
    live.stop();
}
