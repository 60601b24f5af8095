//! Models reading a re-keyed view end to end: a click model whose inputs
//! are the viewed item's statistics (`item_stats`, keyed by item over
//! events keyed by user) as of just before each event. The task that
//! reads an event asks the task owning its item, through the repartition
//! topic, and the example waits for the answer. Checked against polars
//! over the same events (four partitions, so the answers cross tasks), and
//! live against `eddy learn` over `eddy backfill --model`'s training set
//! (one partition, so the live learner sees the training set's order).

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use serde_json::Value as Json;

use crate::clickstream::eddy_in;
use crate::support::*;

const DAY: i64 = 24 * 3_600_000;

/// The tutorial's sources, tables and `item_stats` view, and a model of
/// every event's click reading the item's statistics.
fn spec(dir: &Path) -> String {
    let tutorial = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/clickstream/pipeline.yaml"),
    )
    .unwrap();
    let cut = |from: &str, to: &str| -> String {
        let a = tutorial.find(from).unwrap_or_else(|| panic!("{from}"));
        let b = a + tutorial[a..].find(to).unwrap_or_else(|| panic!("{to}"));
        tutorial[a..b].to_string()
    };
    let text = format!(
        "name: item_models\n{}features:\n{}\nmodels:
  item_click:
    kind: ftrl
    source: events
    label: \"event_type = 'click'\"
    features: [item_stats]
    columns: [item_id]
    categorical: [item_id]
",
        cut("sources:\n", "features:\n"),
        cut("  item_stats:\n", "\n  # A per-(user, category)"),
    );
    let path = dir.join("item_models.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn generate(d: &Path, partitions: &str) {
    ok(
        eddy_in(
            d,
            &[
                "datasets",
                "generate",
                "clickstream",
                "--users",
                "300",
                "--items",
                "80",
                "--events",
                "20000",
                "--seed",
                "9",
                "--partitions",
                partitions,
            ],
        ),
        "",
    );
}

/// The model's last metrics record of the live run.
fn live_metrics(d: &Path) -> Json {
    json_lines(&ok(
        eddy_in(d, &["topics", "consume", "--topic", "models.metrics"]),
        "",
    ))
    .into_iter()
    .rfind(|r| r["model"] == "item_click")
    .expect("the model's metrics")
}

fn backfill_model(d: &Path, spec: &str) -> String {
    ok(
        eddy_in(
            d,
            &[
                "backfill",
                spec,
                "--model",
                "item_click",
                "--columns",
                "event_id",
                "--out",
                "training-set",
            ],
        ),
        "",
    )
}

fn read_parquet(dir: &Path) -> DataFrame {
    LazyFrame::scan_parquet(
        PlPath::new(&format!("{}/*.parquet", dir.display())),
        Default::default(),
    )
    .unwrap()
    .collect()
    .unwrap()
}

/// Four tasks, the examples of the fastest paused often (at 50 waiting):
/// every example's item features as polars computes them. Regression: a
/// task was first paused on the lookups it answers for the others too,
/// and the slowest task, holding them, waited for itself (the run hung).
/// Regression too: an answer reaching a task that had released everything
/// made it release again, and the backfill's final table held every item
/// twice.
#[test]
fn a_models_item_features_are_the_items_as_of_each_event_across_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "4");
    let spec = spec(d);
    let valid = ok(eddy_in(d, &["validate", &spec]), "");
    assert!(
        valid.contains("model item_click (ftrl on events"),
        "{valid}"
    );
    // Tasks whose examples wait for more than 50 answers stop reading
    // until the others catch up: it changes when, never what.
    let run = ok(
        eddy_in(
            d,
            &[
                "run",
                &spec,
                "--until-end",
                "--metrics-addr",
                "127.0.0.1:0",
                "--max-waiting-examples",
                "50",
            ],
        ),
        "",
    );
    assert!(run.contains(" 0 late,"), "{run}");
    let live = live_metrics(d);
    backfill_model(d, &spec);
    // The final table holds each item once: an answer coming back to a
    // task that had released everything must not release it again.
    let table = read_parquet(&d.join("training-set/features/item_stats"));
    let items = table.column("item_id").unwrap().n_unique().unwrap();
    assert_eq!(table.height(), items, "one row per item in the final table");
    let training = read_parquet(&d.join("training-set/training"));
    assert_eq!(
        training.height() as u64,
        live["examples"].as_u64().unwrap(),
        "live learned from every event the training set holds"
    );
    assert_eq!(training.height(), 20_000, "every event is an example");

    // The reference: per example, the item's events strictly before it
    // (a probe reads as of just before the event: the live window at its
    // time, less the events at that time).
    let events = json_lines(&ok(
        eddy_in(d, &["topics", "consume", "--topic", "clickstream.events"]),
        "",
    ));
    let long = |f: &str| -> Vec<i64> { events.iter().map(|e| e[f].as_i64().unwrap()).collect() };
    let history = df![
        "item_id" => long("item_id"),
        "ts" => long("ts"),
        "event_type" => events.iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
    ]
    .unwrap();
    let examples = df![
        "event_id" => long("event_id"),
        "item_id" => long("item_id"),
        "t" => long("ts"),
    ]
    .unwrap();
    let before = col("ts").lt(col("t"));
    let day = before.clone().and(col("ts").gt(col("t") - lit(DAY)));
    let is = |t: &str| col("event_type").eq(lit(t.to_string()));
    let count = |cond: Expr, name: &str| cond.cast(DataType::Int64).sum().alias(name);
    let want = examples
        .lazy()
        .join(
            history.lazy(),
            [col("item_id")],
            [col("item_id")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("event_id")])
        .agg([
            count(is("view").and(before.clone()), "views_lifetime"),
            count(is("click").and(before), "clicks_lifetime"),
            count(is("view").and(day.clone()), "views_1d"),
            count(is("click").and(day), "clicks_1d"),
        ])
        .collect()
        .unwrap();
    let column = |df: &DataFrame, c: &str| -> Vec<AnyValue<'static>> {
        df.column(c)
            .unwrap()
            .as_materialized_series()
            .rechunk()
            .iter()
            .map(|v| v.into_static())
            .collect()
    };
    let by_event = |df: &DataFrame, cols: &[&str]| -> BTreeMap<i64, Vec<AnyValue<'static>>> {
        let ids = column(df, "event_id");
        let cols: Vec<Vec<AnyValue<'static>>> = cols.iter().map(|c| column(df, c)).collect();
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.try_extract::<i64>().unwrap(),
                    cols.iter().map(|c| c[i].clone()).collect(),
                )
            })
            .collect()
    };
    let counts = ["views_lifetime", "clicks_lifetime", "views_1d", "clicks_1d"];
    let got = by_event(
        &training,
        &[
            "views_lifetime",
            "clicks_lifetime",
            "views_1d",
            "clicks_1d",
            "ctr_1d",
            "ctr_lifetime",
        ],
    );
    let want = by_event(&want, &counts);
    assert_eq!(got.len(), want.len());
    let mut with_ctr = 0;
    for (id, expected) in &want {
        let row = &got[id];
        for (c, name) in counts.iter().enumerate() {
            assert_eq!(
                row[c].try_extract::<i64>().unwrap(),
                expected[c].try_extract::<i64>().unwrap(),
                "event {id}: {name}"
            );
        }
        let ratio = |clicks: usize, views: usize| {
            let v = expected[views].try_extract::<i64>().unwrap();
            (v != 0).then(|| expected[clicks].try_extract::<i64>().unwrap() as f64 / v as f64)
        };
        for (c, clicks, views) in [(4, 3, 2), (5, 1, 0)] {
            let value = match &row[c] {
                AnyValue::Null => None,
                v => Some(v.try_extract::<f64>().unwrap()),
            };
            assert_eq!(
                value,
                ratio(clicks, views),
                "event {id}: {}",
                ["ctr_1d", "ctr_lifetime"][c - 4]
            );
            with_ctr += usize::from(value.is_some());
        }
    }
    assert!(with_ctr > 10_000, "most events' items were viewed before");
}

#[test]
fn a_model_reading_an_items_view_learns_live_what_eddy_learn_learns_from_its_training_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "1");
    let spec = spec(d);
    // The task pauses itself whenever 5 examples wait: no value changes.
    ok(
        eddy_in(
            d,
            &[
                "run",
                &spec,
                "--until-end",
                "--metrics-addr",
                "127.0.0.1:0",
                "--max-waiting-examples",
                "5",
            ],
        ),
        "",
    );
    let live = live_metrics(d);
    backfill_model(d, &spec);
    let training = d.join("training-set/training");
    let report: Json = serde_json::from_str(&ok(
        eddy_in(
            d,
            &[
                "learn",
                "--input",
                training.to_str().unwrap(),
                "--label",
                "label",
                "--categorical",
                "item_id",
                "--ignore",
                "user_id,event_time,partition,offset,event_id",
                "--numeric",
                "log",
                "--json",
            ],
        ),
        "",
    ))
    .unwrap();
    assert_eq!(report["examples"], live["examples"], "{report}\n{live}");
    assert_live_equals_offline(&live, &report);
}

/// Regression: a run whose checkpoints are gone (another checkpoint
/// location, say) reads the repartition topic from its start, with an
/// earlier run's rows, lookups and answers on it. The owners skipped this
/// run's lookups as replays of the earlier run's, whose answers had come
/// before this run probed their events and were thrown away: the first
/// such example waited forever, and every one after it (a live run learned
/// nothing; the serving test's learner published no new model). Answers
/// that come early now wait for their event.
#[test]
fn a_run_without_the_earlier_runs_checkpoints_waited_forever_for_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let schema = d.join("rated.avsc");
    std::fs::write(
        &schema,
        r#"{"type": "record", "name": "Rated", "fields": [
          {"name": "user_id", "type": "long"}, {"name": "item_id", "type": "long"},
          {"name": "rating", "type": "double"},
          {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#,
    )
    .unwrap();
    let spec = d.join("rated.yaml");
    std::fs::write(
        &spec,
        "name: rated
sources:
  events: { topic: events, key: user_id, event_time: ts, lateness: 1m, idle_timeout: 0s }
features:
  item:
    source: events
    key: item_id
    aggregations: [{ name: ratings, op: count, windows: [lifetime] }]
checkpoint: { interval: 200ms }
models:
  like:
    kind: ftrl
    source: events
    label: \"rating >= 4\"
    features: [item]
    columns: [item_id]
",
    )
    .unwrap();
    let spec = spec.display().to_string();
    ok(
        eddy_in(d, &["topics", "create", "events", "--partitions", "2"]),
        "",
    );
    // One rating a minute; the watermark holds the last minute back.
    let produce = |range: std::ops::Range<u64>| {
        let lines: String = range
            .map(|n| {
                let (u, i) = (n % 20, (n * 7) % 30);
                format!(
                    "{{\"user_id\": {u}, \"item_id\": {i}, \"rating\": {}, \"ts\": {}}}\n",
                    if (u + i) % 3 == 0 { 5.0 } else { 2.0 },
                    1_700_000_000_000i64 + n as i64 * 60_000
                )
            })
            .collect();
        ok(
            eddy_in(
                d,
                &[
                    "topics",
                    "produce",
                    "--topic",
                    "events",
                    "--key-field",
                    "user_id",
                    "--schema",
                    schema.to_str().unwrap(),
                ],
            ),
            &lines,
        );
    };
    let examples = || {
        json_lines(&ok(
            eddy_in(d, &["topics", "consume", "--topic", "models.metrics"]),
            "",
        ))
        .into_iter()
        .rfind(|r| r["model"] == "like")
        .map_or(0, |r| r["examples"].as_u64().unwrap())
    };
    let run = |checkpoints: &str| {
        let url = d.join(checkpoints).display().to_string();
        eddy_in(
            d,
            &[
                "run",
                &spec,
                "--metrics-addr",
                "127.0.0.1:0",
                "--checkpoint-url",
                &url,
            ],
        )
    };
    produce(0..600);
    let mut first = run("first");
    first.arg("--until-end");
    ok(first, "");
    assert_eq!(examples(), 600);
    // Live, from no checkpoint, with 200 more ratings coming.
    let live = LiveRun::start(run("second"));
    produce(600..800);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // All but the last few the watermark holds back (a partition's
        // watermark is a minute behind its latest rating); the first
        // run's last record said 600, and this run stopped at 597.
        let learned = examples();
        if learned >= 790 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the live run learned {learned} examples of 800"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    live.stop();
}
