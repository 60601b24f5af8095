//! `eddy serve`: events and requests in, recommendations out, on the local
//! log and on tansu; hot swaps under load; deterministic replays.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::pipeline::http_get;
use crate::support::*;

const EVENT_SCHEMA: &str = r#"{"type": "record", "name": "Rated", "fields": [
  {"name": "user_id", "type": "long"},
  {"name": "item_id", "type": "long"},
  {"name": "rating", "type": "double"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

const ITEM_SCHEMA: &str = r#"{"type": "record", "name": "Item", "fields": [
  {"name": "item_id", "type": "long"},
  {"name": "category", "type": "string"}]}"#;

/// The catalog: even items are in a category a business rule bans.
fn items() -> String {
    (0..30)
        .map(|i| {
            let c = if i % 2 == 0 { "banned" } else { "ok" };
            format!("{{\"item_id\": {i}, \"category\": \"{c}\"}}\n")
        })
        .collect()
}

const REQUEST_SCHEMA: &str = r#"{"type": "record", "name": "Request", "fields": [
  {"name": "request_id", "type": "string"},
  {"name": "user_id", "type": "string"},
  {"name": "k", "type": ["null", "int"], "default": null}]}"#;

/// The pipeline: a feature view per user and one per item, three models
/// (the ranker reads both views), and serving into `out`.
fn spec(p: &str, out: &str) -> String {
    let name = format!("serve_{}", p.trim_end_matches('.').replace(['-', '.'], "_"));
    format!(
        "name: {name}
sources:
  events: {{ topic: {p}events, key: user_id, event_time: ts, lateness: 1m, idle_timeout: 0s }}
tables:
  items: {{ topic: {p}items, key: item_id }}
features:
  user:
    source: events
    aggregations:
      - {{ name: n, op: count, windows: [lifetime] }}
      - {{ name: mean_rating, op: mean, column: rating, windows: [lifetime] }}
    output: {{ topic: {p}features.user }}
  # Keyed by item: the ranker reads it for each example from the task
  # owning the item, and serving at each candidate.
  item:
    source: events
    key: item_id
    aggregations:
      - {{ name: ratings, op: count, windows: [lifetime] }}
      - {{ name: mean_rating, op: mean, column: rating, windows: [lifetime] }}
    output: {{ topic: {p}features.item }}
checkpoint: {{ interval: 200ms }}
models:
  like:
    kind: ftrl
    source: events
    label: \"rating >= 4\"
    features: [user, item]
    columns: [item_id]
    categorical: [item_id]
    params: {{ bits: 16 }}
    topic: {p}models
    metrics_topic: {p}models.metrics
    snapshot_every: 2
  next:
    kind: cooccurrence
    source: events
    item: item_id
    label: \"rating >= 4\"
    topic: {p}models
    metrics_topic: {p}models.metrics
  popular:
    kind: popularity
    source: events
    item: item_id
    topic: {p}models
    metrics_topic: {p}models.metrics
serving:
  trigger: events
  requests: {p}requests
  candidates: [next, popular]
  ranker: like
  k: 5
  item_table: items
  rules: [\"category <> 'banned'\"]
  topic: {out}
"
    )
}

/// Ratings: user u likes the items i with (u + i) % 3 == 0, from `t0` on,
/// one a minute.
fn events(range: std::ops::Range<u64>, t0: i64) -> String {
    range
        .map(|n| {
            let (u, i) = (n % 20, (n * 7) % 30);
            let rating = if (u + i) % 3 == 0 { 5.0 } else { 2.0 };
            format!(
                "{{\"user_id\": {u}, \"item_id\": {i}, \"rating\": {rating}, \"ts\": {}}}\n",
                t0 + n as i64 * 60_000
            )
        })
        .collect()
}

const T0: i64 = 1_700_000_000_000;

struct Setup<'a> {
    dir: &'a Path,
    cmd: &'a dyn Fn(&[&str]) -> Command,
    p: String,
    spec: String,
    /// The pipeline's checkpoints, in the test's directory (on Kafka the
    /// default is `./eddy-checkpoints`, which would land in the repository).
    checkpoints: String,
}

impl Setup<'_> {
    fn produce(&self, topic: &str, schema: Option<&str>, lines: &str) {
        let events = topic == "events";
        let topic = format!("{}{topic}", self.p);
        let mut args = vec!["topics", "produce", "--topic", &topic];
        if events {
            // Partitioned by user, as the pipeline expects.
            args.extend(["--key-field", "user_id"]);
        }
        let path;
        if let Some(s) = schema {
            path = self.dir.join(format!("{}.avsc", topic.replace('.', "_")));
            std::fs::write(&path, s).unwrap();
            args.extend(["--schema", path.to_str().unwrap()]);
        }
        ok((self.cmd)(&args), lines);
    }

    fn produce_keyed(&self, topic: &str, key: &str, schema: &str, lines: &str) {
        let topic = format!("{}{topic}", self.p);
        let path = self.dir.join(format!("{}.avsc", topic.replace('.', "_")));
        std::fs::write(&path, schema).unwrap();
        ok(
            (self.cmd)(&[
                "topics",
                "produce",
                "--topic",
                &topic,
                "--key-field",
                key,
                "--schema",
                path.to_str().unwrap(),
            ]),
            lines,
        );
    }

    /// The learner: trains and publishes the models, to the end of the
    /// events.
    fn train(&self) {
        ok(
            (self.cmd)(&[
                "run",
                &self.spec,
                "--until-end",
                "--metrics-addr",
                "127.0.0.1:0",
                "--standalone",
                "--checkpoint-url",
                &self.checkpoints,
            ]),
            "",
        );
    }

    /// Every record of `topic` (prefixed), with envelopes.
    fn consume(&self, topic: &str, want: usize) -> Vec<Json> {
        let topic = format!("{}{topic}", self.p);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = ok(
                (self.cmd)(&["topics", "consume", "--topic", &topic, "--envelope"]),
                "",
            );
            let records = json_lines(&out);
            if records.len() >= want {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {want} records on {topic}",
                records.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Topics and data, with the models trained and published.
fn setup<'a>(dir: &'a Path, cmd: &'a dyn Fn(&[&str]) -> Command, out: &str) -> Setup<'a> {
    let s = prepare(dir, cmd, out, "fallback");
    s.train();
    s
}

/// Topics and data; no model published yet.
fn prepare<'a>(
    dir: &'a Path,
    cmd: &'a dyn Fn(&[&str]) -> Command,
    out: &str,
    when_not_ready: &str,
) -> Setup<'a> {
    let p = unique("srv") + ".";
    let s = Setup {
        dir,
        cmd,
        spec: dir.join("serve.yaml").display().to_string(),
        checkpoints: dir.join("checkpoints").display().to_string(),
        p,
    };
    let text = spec(&s.p, &format!("{}{out}", s.p)).replace(
        "  k: 5\n",
        &format!("  k: 5\n  when_not_ready: {when_not_ready}\n"),
    );
    std::fs::write(&s.spec, text).unwrap();
    for (t, n) in [("events", "2"), ("requests", "2")] {
        ok(
            cmd(&[
                "topics",
                "create",
                &format!("{}{t}", s.p),
                "--partitions",
                n,
            ]),
            "",
        );
    }
    ok(
        cmd(&["topics", "create", &format!("{}items", s.p), "--compact"]),
        "",
    );
    s.produce_keyed("items", "item_id", ITEM_SCHEMA, &items());
    s.produce("events", Some(EVENT_SCHEMA), &events(0..600, T0));
    s
}

fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http_get(addr, "/healthz");
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How serving runs.
#[derive(Clone, Copy, PartialEq)]
enum Deployment {
    /// `eddy serve`, apart from the pipeline that trained the models.
    Apart,
    /// `eddy run --serve`: in the pipeline's process, with features from
    /// the job's read API and models from the learner. No model is
    /// published before it starts, and it follows neither the feature
    /// topics nor the models topic, so being ready and answering with
    /// features proves both in-process paths.
    Colocated,
}

/// Produce events and requests to live serving, read the recommendations
/// back and check every field.
fn events_in_recommendations_out(
    dir: &Path,
    cmd: &dyn Fn(&[&str]) -> Command,
    deployment: Deployment,
) {
    let started = chrono_now();
    let s = match deployment {
        Deployment::Apart => setup(dir, cmd, "recommendations"),
        Deployment::Colocated => prepare(dir, cmd, "recommendations", "fallback"),
    };
    let args = match deployment {
        Deployment::Apart => vec!["serve", s.spec.as_str(), "--http", "127.0.0.1:0"],
        Deployment::Colocated => vec![
            "run",
            s.spec.as_str(),
            "--serve",
            "--serve-http",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--standalone",
            "--checkpoint-url",
            s.checkpoints.as_str(),
        ],
    };
    let live = LiveRun::start(cmd(&args));
    wait_ready(&live.addr);
    s.produce("events", Some(EVENT_SCHEMA), &events(600..640, T0));
    s.produce(
        "requests",
        Some(REQUEST_SCHEMA),
        "{\"request_id\": \"r1\", \"user_id\": \"3\", \"k\": 3}\n\
         {\"request_id\": \"r2\", \"user_id\": \"999\", \"k\": null}\n\
         {\"request_id\": \"r3\", \"user_id\": \"\", \"k\": null}\n",
    );
    s.produce("requests", None, "{\"request_id\": \"r4\"}\n");
    let recs = s.consume("recommendations", 42);
    let (status, pulled) = http_get(&live.addr, "/v1/recommendations/3?k=3");
    // Regression: k=0 answered one item; out-of-range k is refused.
    for bad in ["0", "1001"] {
        let (kstatus, why) = http_get(&live.addr, &format!("/v1/recommendations/3?k={bad}"));
        assert_eq!(kstatus, 400, "k={bad}: {why}");
        assert!(why.contains("k must be between 1 and 1000"), "{why}");
    }
    let (fstatus, features) = http_get(&live.addr, "/v1/features/user/3");
    let (_, metrics) = http_get(&live.addr, "/metrics");
    let stdout = live.stop();
    if deployment == Deployment::Colocated {
        assert!(
            stdout.contains(
                "serving: 40 triggers and 4 requests: 42 recommendations, 2 dead-lettered"
            ),
            "{stdout}"
        );
        assert!(stdout.contains("model like (ftrl)"), "{stdout}");
        // Regression: after a restart the read API answered "no row" for
        // every key until its next event; the restored tasks now seed it.
        // The restored rows say what each key's last row on the feature
        // topic says.
        let mut last_rows: BTreeMap<String, Json> = BTreeMap::new();
        for r in s.consume("features.user", 20) {
            last_rows.insert(r["key"].as_str().unwrap().to_string(), r["value"].clone());
        }
        let again = LiveRun::start(cmd(&args));
        wait_ready(&again.addr);
        for (user, row) in &last_rows {
            let (status, body) = http_get(&again.addr, &format!("/v1/features/user/{user}"));
            assert_eq!(status, 200, "user {user}: {body}");
            let read: Json = serde_json::from_str(&body).unwrap();
            for f in ["n_lifetime", "mean_rating_lifetime"] {
                assert!(!row[f].is_null(), "{row}");
                assert_eq!(read["features"][f], row[f], "user {user}: {read} vs {row}");
            }
        }
        let (status, body) = http_get(&again.addr, "/v1/features/user/3");
        let (_, pulled) = http_get(&again.addr, "/v1/recommendations/3?k=3");
        again.stop();
        assert_eq!(status, 200, "{body}");
        let restored: Json = serde_json::from_str(&body).unwrap();
        assert!(
            restored["features"]["n_lifetime"].as_i64().unwrap() >= 30,
            "{restored}"
        );
        let pulled: Json = serde_json::from_str(&pulled).unwrap();
        assert!(pulled["features_as_of"].as_i64().is_some(), "{pulled}");
    }

    assert_eq!(recs.len(), 42, "40 triggers and 2 good requests");
    let event_lines: Vec<Json> = events(600..640, T0)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut seen_triggers = BTreeSet::new();
    for r in &recs {
        let v = &r["value"];
        let items = v["items"].as_array().unwrap();
        let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked: {v}");
        for i in items {
            assert!(
                ["next", "popular"].contains(&i["source"].as_str().unwrap()),
                "{v}"
            );
            let item: u64 = i["item"].as_str().unwrap().parse().unwrap();
            assert_eq!(item % 2, 1, "a banned item was recommended: {v}");
            assert!(
                i["score"].as_f64().unwrap() > 0.0 && i["score"].as_f64().unwrap() < 1.0,
                "{v}"
            );
        }
        let version = v["model_version"].as_str().unwrap();
        for m in ["like@", "next@", "popular@"] {
            assert!(version.contains(m), "{v}");
        }
        assert_eq!(
            r["headers"]["eddy.lineage.model_version"],
            v["model_version"]
        );
        assert_eq!(r["key"], v["user_id"]);
        let emitted = v["emitted_at"].as_i64().unwrap();
        assert!(emitted >= started && emitted <= chrono_now(), "{v}");
        let id = v["request_id"].as_str().unwrap();
        match id {
            "r1" => {
                assert_eq!(v["user_id"], "3");
                assert_eq!(items.len(), 3, "k from the request: {v}");
                assert!(v["features_as_of"].as_i64().is_some(), "{v}");
            }
            "r2" => {
                // An unknown user gets popular items.
                assert_eq!(items.len(), 5, "{v}");
                assert!(items.iter().all(|i| i["source"] == "popular"), "{v}");
            }
            trigger => {
                // <topic>/<partition>/<offset> of the event.
                assert_eq!(r["headers"]["eddy.lineage.trigger"], trigger);
                assert!(trigger.starts_with(&format!("{}events/", s.p)), "{v}");
                seen_triggers.insert(trigger.to_string());
                assert_eq!(items.len(), 5, "{v}");
                let user = v["user_id"].as_str().unwrap().parse::<u64>().unwrap();
                let t = v["trigger_event_time"].as_i64().unwrap();
                let event = event_lines
                    .iter()
                    .find(|e| e["user_id"] == user && e["ts"] == t)
                    .unwrap_or_else(|| panic!("no event of user {user} at {t}: {v}"));
                // Nothing the user already rated, this event included.
                let rated: BTreeSet<u64> = events(0..640, T0)
                    .lines()
                    .map(|l| serde_json::from_str::<Json>(l).unwrap())
                    .filter(|e| e["user_id"] == user && e["ts"].as_i64().unwrap() <= t)
                    .map(|e| e["item_id"].as_u64().unwrap())
                    .collect();
                assert!(rated.contains(&event["item_id"].as_u64().unwrap()));
                for i in items {
                    let item: u64 = i["item"].as_str().unwrap().parse().unwrap();
                    assert!(!rated.contains(&item), "user {user} rated {item}: {v}");
                }
                assert!(v["features_as_of"].as_i64().is_some(), "{v}");
            }
        }
    }
    assert_eq!(seen_triggers.len(), 40, "one recommendation per event");
    // The malformed requests, with their reasons.
    let dlq = s.consume("requests.dlq", 2);
    let reasons: Vec<&str> = dlq
        .iter()
        .map(|d| d["headers"]["eddy.dlq.reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("`user_id` is empty")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not a Confluent-framed Avro request")),
        "{reasons:?}"
    );
    // HTTP.
    assert_eq!(status, 200, "{pulled}");
    let pulled: Json = serde_json::from_str(&pulled).unwrap();
    assert_eq!(pulled["items"].as_array().unwrap().len(), 3, "{pulled}");
    assert_eq!(fstatus, 200, "{features}");
    let features: Json = serde_json::from_str(&features).unwrap();
    assert!(
        features["features"]["n_lifetime"].as_i64().unwrap() >= 30,
        "{features}"
    );
    assert!(
        metrics.contains("eddy_serve_recommendations_total{"),
        "{metrics}"
    );
    assert!(
        crate::pipeline::metric(&metrics, "eddy_serve_dead_letters_total") == 2.0,
        "{metrics}"
    );
    // Regression: co-located serving was handed the learner's metrics
    // records too, and counted them as undecodable model updates.
    assert_eq!(
        crate::pipeline::metric(&metrics, "eddy_serve_model_updates_undecodable_total"),
        0.0,
        "{metrics}"
    );
    // Rows serving reads but cannot use are counted, and none are here.
    for counter in [
        "eddy_serve_feature_rows_undecodable_total",
        "eddy_serve_item_rows_rejected_total",
    ] {
        assert!(metrics.contains(counter), "{metrics}");
        assert_eq!(crate::pipeline::metric(&metrics, counter), 0.0, "{metrics}");
    }
}

/// Several eddy processes sharing one local log: one registry process owns
/// the schemas topic, and the others use it over HTTP (only one process may
/// write a local-log partition).
struct Local {
    data: std::path::PathBuf,
    registry: Registry,
}

impl Local {
    fn new(dir: &Path) -> Local {
        let data = dir.join("eddy-data");
        let registry = Registry::start(&data, &[], None);
        Local { data, registry }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = eddy(&self.data);
        c.args(["--registry", &self.registry.url]).args(args);
        c
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn events_and_requests_in_recommendations_out_on_the_local_log() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(dir.path());
    let cmd = |args: &[&str]| local.cmd(args);
    events_in_recommendations_out(dir.path(), &cmd, Deployment::Apart);
}

#[test]
fn serving_inside_the_pipeline_reads_features_and_models_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(dir.path());
    let cmd = |args: &[&str]| local.cmd(args);
    events_in_recommendations_out(dir.path(), &cmd, Deployment::Colocated);
}

/// [`events_in_recommendations_out`] on tansu, with the registry's
/// schemas in a topic of their own.
fn on_tansu(deployment: Deployment) {
    let Some(brokers) = external("EDDY_TEST_KAFKA_BROKERS") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schemas = unique("schemas");
    let registry = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    let cmd = |args: &[&str]| {
        let mut c = eddy(dir.path());
        c.args(["--brokers", &brokers, "--registry", &registry.url])
            .args(args);
        c
    };
    events_in_recommendations_out(dir.path(), &cmd, deployment);
}

#[test]
fn events_and_requests_in_recommendations_out_on_tansu() {
    on_tansu(Deployment::Apart);
}

#[test]
fn serving_inside_the_pipeline_on_tansu() {
    on_tansu(Deployment::Colocated);
}

/// The learner keeps publishing new model versions while requests and
/// events pour in: every one is answered once, and the answers span
/// several versions. Then two replays of the same history with the final
/// models emit the same recommendations.
#[test]
fn a_hot_swap_under_load_loses_no_request_and_a_replay_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(dir.path());
    let cmd = |args: &[&str]| local.cmd(args);
    let s = setup(dir.path(), &cmd, "recommendations");
    let learner = LiveRun::start(cmd(&["run", &s.spec, "--metrics-addr", "127.0.0.1:0"]));
    let server = LiveRun::start(cmd(&["serve", &s.spec, "--http", "127.0.0.1:0"]));
    wait_ready(&server.addr);
    let mut ids = BTreeSet::new();
    for batch in 0..10u64 {
        let from = 600 + batch * 20;
        s.produce("events", Some(EVENT_SCHEMA), &events(from..from + 20, T0));
        let requests: String = (0..20)
            .map(|i| {
                let id = format!("load-{batch}-{i}");
                ids.insert(id.clone());
                format!(
                    "{{\"request_id\": \"{id}\", \"user_id\": \"{}\", \"k\": null}}\n",
                    i % 20
                )
            })
            .collect();
        s.produce("requests", Some(REQUEST_SCHEMA), &requests);
        std::thread::sleep(Duration::from_millis(150));
    }
    let recs = s.consume("recommendations", 400);
    learner.stop();
    server.stop();
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    let mut versions = BTreeSet::new();
    for r in &recs {
        *answered
            .entry(r["value"]["request_id"].as_str().unwrap().to_string())
            .or_default() += 1;
        versions.insert(r["value"]["model_version"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert_eq!(answered.get(id), Some(&1), "request {id}");
    }
    assert_eq!(
        recs.len(),
        400,
        "200 events and 200 requests, each answered once"
    );
    assert!(versions.len() >= 2, "no swap under load: {versions:?}");

    // Replays: the same inputs and model versions, the same output.
    let replay = |out: &str| -> Vec<Json> {
        let path = dir.path().join(format!("{out}.yaml"));
        std::fs::write(&path, spec(&s.p, &format!("{}{out}", s.p))).unwrap();
        ok(
            cmd(&[
                "serve",
                path.to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
                "--from-earliest",
                "--until-end",
            ]),
            "",
        );
        s.consume(out, 1000)
            .into_iter()
            .map(|mut r| {
                r["value"].as_object_mut().unwrap().remove("emitted_at");
                json_pair(&r)
            })
            .collect()
    };
    let (a, b) = (replay("replay1"), replay("replay2"));
    assert_eq!(a.len(), 1000, "800 events and 200 requests");
    assert_eq!(a, b);
}

/// (key, value, headers) of a record, for comparing replays.
fn json_pair(r: &Json) -> Json {
    serde_json::json!([r["partition"], r["key"], r["value"], r["headers"]])
}

/// Before any model is published, `/healthz` says what is missing; a
/// request is answered with what has loaded (nothing: no items) under
/// `fallback`, and waits for the models under `hold`.
#[test]
fn before_the_models_load_healthz_is_not_ready_and_requests_get_the_fallback_or_wait() {
    for mode in ["fallback", "hold"] {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::new(dir.path());
        let cmd = |args: &[&str]| local.cmd(args);
        let s = prepare(dir.path(), &cmd, "recommendations", mode);
        let live = LiveRun::start(cmd(&["serve", &s.spec, "--http", "127.0.0.1:0"]));
        let (status, body) = http_get(&live.addr, "/healthz");
        assert_eq!(status, 503, "{mode}: {body}");
        assert!(body.contains("no update yet for models"), "{body}");
        s.produce(
            "requests",
            Some(REQUEST_SCHEMA),
            "{\"request_id\": \"early\", \"user_id\": \"3\", \"k\": null}\n",
        );
        if mode == "fallback" {
            let early = s.consume("recommendations", 1);
            assert_eq!(early[0]["value"]["request_id"], "early");
            assert_eq!(early[0]["value"]["items"], serde_json::json!([]), "{mode}");
            assert_eq!(early[0]["value"]["model_version"], "", "{mode}");
            // It says why it has no item.
            let why = early[0]["value"]["fewer_items_because"]
                .as_str()
                .unwrap_or("");
            assert!(why.starts_with("0 of 5: no candidate model ("), "{why}");
        } else {
            std::thread::sleep(Duration::from_millis(500));
            let out = ok(
                cmd(&[
                    "topics",
                    "consume",
                    "--topic",
                    &format!("{}recommendations", s.p),
                ]),
                "",
            );
            assert!(
                out.trim().is_empty(),
                "hold answered before the models: {out}"
            );
        }
        s.train();
        wait_ready(&live.addr);
        s.produce(
            "requests",
            Some(REQUEST_SCHEMA),
            "{\"request_id\": \"late\", \"user_id\": \"3\", \"k\": null}\n",
        );
        let recs = s.consume("recommendations", 2);
        live.stop();
        for r in &recs {
            let v = &r["value"];
            if mode == "hold" || v["request_id"] == "late" {
                assert_eq!(v["items"].as_array().unwrap().len(), 5, "{mode}: {v}");
                assert!(v["fewer_items_because"].is_null(), "{v}");
                assert!(
                    v["model_version"].as_str().unwrap().contains("like@"),
                    "{v}"
                );
            }
        }
    }
}

/// Exploration on: with ε = 1 and every item cold, each slot goes to a
/// cold candidate outside the ranked top k, marked `explore`; the rules
/// still hold, and the choice is the same for the same request id.
#[test]
fn exploration_gives_slots_to_cold_items_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(dir.path());
    let cmd = |args: &[&str]| local.cmd(args);
    let s = setup(dir.path(), &cmd, "recommendations");
    let text = std::fs::read_to_string(&s.spec).unwrap().replace(
        "  k: 5\n",
        "  k: 5\n  exploration: { mode: epsilon_greedy, epsilon: 1.0, cold_below: 1000000 }\n",
    );
    std::fs::write(&s.spec, text).unwrap();
    s.produce(
        "requests",
        Some(REQUEST_SCHEMA),
        "{\"request_id\": \"x1\", \"user_id\": \"3\", \"k\": null}\n\
         {\"request_id\": \"x1\", \"user_id\": \"3\", \"k\": null}\n",
    );
    ok(
        cmd(&[
            "serve",
            &s.spec,
            "--http",
            "127.0.0.1:0",
            "--from-earliest",
            "--until-end",
        ]),
        "",
    );
    let recs = s.consume("recommendations", 602);
    let answers: Vec<&serde_json::Value> = recs
        .iter()
        .map(|r| &r["value"])
        .filter(|v| v["request_id"] == "x1")
        .collect();
    assert_eq!(answers.len(), 2);
    for v in &answers {
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 5, "{v}");
        assert!(items.iter().all(|i| i["source"] == "explore"), "{v}");
        let ids: BTreeSet<&str> = items.iter().map(|i| i["item"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 5, "distinct: {v}");
        assert!(
            ids.iter().all(|i| i.parse::<u64>().unwrap() % 2 == 1),
            "rules hold: {v}"
        );
    }
    assert_eq!(
        answers[0]["items"], answers[1]["items"],
        "same request id, same draw"
    );
}

/// Regression: a replay answered every trigger with features and models
/// newer than the trigger and did not say so, so scoring the
/// recommendations topic offline scored on leaked data. Each record now
/// says whether it was as of its trigger, and the summary counts those that
/// were not.
#[test]
fn replayed_recommendations_did_not_say_they_used_state_newer_than_their_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::new(dir.path());
    let cmd = |args: &[&str]| local.cmd(args);
    // Models and features trained on events 0..600.
    let s = setup(dir.path(), &cmd, "recommendations");
    // 20 later events, which nothing has learned yet.
    s.produce("events", Some(EVENT_SCHEMA), &events(600..620, T0));
    let path = dir.path().join("replay.yaml");
    std::fs::write(&path, spec(&s.p, &format!("{}replay", s.p))).unwrap();
    let out = ok(
        cmd(&[
            "serve",
            path.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--from-earliest",
            "--until-end",
        ]),
        "",
    );
    let recs = s.consume("replay", 620);
    assert_eq!(recs.len(), 620);
    let mut ahead = 0;
    for r in &recs {
        let v = &r["value"];
        let trigger = v["trigger_event_time"].as_i64().unwrap();
        let as_of = v["as_of_trigger"]
            .as_bool()
            .unwrap_or_else(|| panic!("{v}"));
        // The first 600 triggers were learned by the models serving used.
        assert_eq!(as_of, trigger >= T0 + 600 * 60_000, "{v}");
        if let Some(f) = v["features_as_of"].as_i64() {
            assert!(as_of <= (f < trigger), "features after the trigger: {v}");
        }
        let header = r["headers"]["eddy.lineage.as_of_trigger"].as_str();
        assert_eq!(header, Some(if as_of { "true" } else { "false" }), "{r}");
        ahead += usize::from(!as_of);
    }
    assert_eq!(ahead, 600);
    assert!(
        out.contains(
            "warning: 600 of 620 recommendations used features or models newer than their trigger"
        ),
        "{out}"
    );
}
