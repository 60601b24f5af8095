//! `eddy backfill` end to end: the same table as the live job, history read
//! across the archive/topic seam, and training sets against an independent
//! oracle.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use polars::prelude::*;
use serde_json::{Value as Json, json};

use crate::pipeline::*;
use crate::support::*;

const ORACLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/training_set_oracle.py"
);

fn any_to_json(v: AnyValue) -> Json {
    match v {
        AnyValue::Null => Json::Null,
        AnyValue::Boolean(b) => json!(b),
        AnyValue::Int32(i) => json!(i),
        AnyValue::Int64(i) => json!(i),
        AnyValue::Float64(f) => json!(f),
        AnyValue::String(s) => json!(s),
        AnyValue::StringOwned(s) => json!(s.as_str()),
        AnyValue::List(s) => Json::Array(
            (0..s.len())
                .map(|i| any_to_json(s.get(i).unwrap()))
                .collect(),
        ),
        AnyValue::Datetime(ms, ..) => json!(ms),
        other => panic!("unexpected value {other:?}"),
    }
}

/// Every Parquet file under `dir` as JSON rows by `key`, without `as_of`.
fn parquet_table(dir: &Path, key: &str) -> BTreeMap<String, Json> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = std::fs::File::open(&path).unwrap();
        let df = ParquetReader::new(file).finish().unwrap();
        for i in 0..df.height() {
            let mut row = serde_json::Map::new();
            for c in df.get_columns() {
                if c.name() != "as_of" {
                    row.insert(c.name().to_string(), any_to_json(c.get(i).unwrap()));
                }
            }
            out.insert(row[key].to_string(), Json::Object(row));
        }
    }
    out
}

/// The latest row per key of a feature topic, without `as_of`.
fn live_table(cmd: Command, key: &str) -> BTreeMap<String, Json> {
    table(cmd, key)
        .into_iter()
        .map(|(k, mut v)| {
            v.as_object_mut().unwrap().remove("as_of");
            (k, v)
        })
        .collect()
}

/// One click per user 100..130 at `ts`, so every partition's watermark
/// moves to the same time.
fn sentinels(ts: i64) -> String {
    (100..130)
        .map(|u| json!({"user": u, "item": 0, "amount": 1.0, "ts": ts}).to_string() + "\n")
        .collect()
}

/// The same-result test on one backend: a live job stopped at watermark W,
/// and `eddy backfill --until W`, give the same feature table.
fn backfill_until_equals_live(
    dir: &Path,
    cmd: &dyn Fn(&[&str]) -> Command,
    prefix: &str,
    live_args: &[&str],
) {
    // The live job reads the clicks in four parts, so it emits rows at
    // several watermarks.
    let c = load_clicks(dir, cmd, prefix, 500);
    let topic = format!("{prefix}clicks");
    let schema = dir.join("click.avsc");
    let produce = |lines: &str| {
        ok(
            cmd(&[
                "topics",
                "produce",
                "--topic",
                &topic,
                "--key-field",
                "user",
                "--schema",
                schema.to_str().unwrap(),
            ]),
            lines,
        )
    };
    let ckpt = dir.join("ckpt").display().to_string();
    let mut args = vec![
        "run",
        c.spec.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--checkpoint-url",
        &ckpt,
    ];
    args.extend(live_args);
    let live = LiveRun::start(cmd(&args));
    live.wait_for(501.0);
    for part in 1..4 {
        produce(&clicks_between(part * 500, (part + 1) * 500));
        live.wait_for(501.0 + part as f64 * 500.0);
    }
    let sentinel_ts = BASE + 4_000_000;
    produce(&sentinels(sentinel_ts));
    live.wait_for(2031.0);
    live.stop();
    let live = live_table(cmd(&["topics", "consume", "--topic", &c.features]), "user");

    // Every task's watermark: the sentinels' time minus the 5 s lateness,
    // minus 1 ms.
    let w = (sentinel_ts - 5_001).to_string();
    let out_dir = dir.join("backfill");
    let out = ok(
        cmd(&[
            "backfill",
            c.spec.to_str().unwrap(),
            "--until",
            &w,
            "--out",
            out_dir.to_str().unwrap(),
        ]),
        "",
    );
    assert!(
        out.contains("3 late, 1 undecodable"),
        "late and undecodable records are counted as live: {out}"
    );
    let replayed = parquet_table(&out_dir.join("features/shopper"), "user");
    assert_eq!(replayed.len(), 25, "the 25 users, no sentinel: {out}");
    assert_eq!(replayed, live);

    // Online equals offline at every emitted row, not only the last.
    let report = ok(
        cmd(&[
            "consistency",
            c.spec.to_str().unwrap(),
            "--view",
            "shopper",
            "--sample",
            "60",
            "--json",
        ]),
        "",
    );
    let report: Json = serde_json::from_str(&report).unwrap();
    assert_eq!(report["sampled"], 60, "{report}");
    assert!(report["topic_rows"].as_u64().unwrap() > 60, "{report}");
    for f in report["features"].as_array().unwrap() {
        assert_eq!(f["mismatches"], 0, "{f}");
    }
}

#[test]
fn backfill_until_a_watermark_equals_the_live_table_at_it_on_the_local_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    backfill_until_equals_live(
        dir.path(),
        &|args| {
            let mut c = eddy(&data);
            c.args(args);
            c
        },
        "",
        &[],
    );
}

#[test]
fn backfill_until_a_watermark_equals_the_live_table_at_it_on_tansu() {
    let Some(brokers) = external("EDDY_TEST_KAFKA_BROKERS") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schemas = unique("schemas");
    let registry = Registry::start(dir.path(), &["--brokers", &brokers], Some(&schemas));
    let prefix = unique("bf") + ".";
    backfill_until_equals_live(
        dir.path(),
        &|args| {
            let mut c = eddy(dir.path());
            c.args(["--brokers", &brokers, "--registry", &registry.url])
                .args(args);
            c
        },
        &prefix,
        &["--standalone"],
    );
}

/// The training-set oracle: on MovieLens, `eddy backfill --labels` equals
/// an independent point-in-time join written with polars `join_asof` over
/// the raw ratings.csv (tests/interop/training_set_oracle.py).
#[test]
fn the_movielens_training_set_equals_a_polars_join_asof_over_the_raw_csv() {
    let Some(py) = external("EDDY_TEST_PYTHON") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path());
    let spec = dir.path().join("oracle.yaml");
    std::fs::write(
        &spec,
        "name: oracle
sources:
  ratings: { topic: ratings, key: user_id, event_time: timestamp, lateness: 10m }
features:
  user:
    source: ratings
    aggregations:
      - { name: n, op: count, windows: [30d, lifetime] }
      - { name: sum, op: sum, column: rating, windows: [30d, lifetime] }
      - { name: mean, op: mean, column: rating, windows: [30d, lifetime] }
      - { name: last_rating, op: last, column: rating, windows: [lifetime] }
    output: { topic: features.oracle }
",
    )
    .unwrap();
    let (out, oracle) = training_set_against_oracle(dir.path(), &py, &spec, None);
    assert!(out.contains("training set: 100837 rows"), "{out}");
    assert!(oracle.contains("100837 training rows equal"), "{oracle}");

    // --from: only 30-day windows, so the replay starts 30 days before
    // --from, and the rows from --from on are still exact.
    std::fs::write(
        &spec,
        "name: oracle_from
sources:
  ratings: { topic: ratings, key: user_id, event_time: timestamp, lateness: 10m }
features:
  user:
    source: ratings
    aggregations:
      - { name: n, op: count, windows: [30d] }
      - { name: sum, op: sum, column: rating, windows: [30d] }
      - { name: mean, op: mean, column: rating, windows: [30d] }
    output: { topic: features.oracle_from }
",
    )
    .unwrap();
    let (out, oracle) = training_set_against_oracle(
        dir.path(),
        &py,
        &spec,
        Some(("2015-01-01", 1_420_070_400_000)),
    );
    assert!(
        out.contains("before the replay's start (--from minus the longest window) skipped"),
        "{out}"
    );
    assert!(oracle.contains("(3 features)"), "{oracle}");
}

/// Backfills a MovieLens training set (`rating >= 4`, optionally from a
/// date given as text and as epoch ms) and checks it with the oracle
/// script; returns both outputs.
fn training_set_against_oracle(
    dir: &Path,
    py: &str,
    spec: &Path,
    from: Option<(&str, i64)>,
) -> (String, String) {
    let out_dir = dir.join(format!("training-{}", from.map_or("all", |f| f.0)));
    let mut cmd = eddy(&dir.join("eddy-data"));
    cmd.current_dir(dir).args([
        "backfill",
        spec.to_str().unwrap(),
        "--labels",
        "ratings",
        "--label-expr",
        "rating >= 4",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    if let Some((text, _)) = from {
        cmd.args(["--from", text]);
    }
    let out = ok(cmd, "");
    let mut oracle = Command::new(py);
    oracle
        .arg(ORACLE)
        .arg(format!("{MOVIELENS}/ratings.csv"))
        .arg(out_dir.join("training"));
    if let Some((_, ms)) = from {
        oracle.arg(ms.to_string());
    }
    let check = oracle.output().unwrap();
    assert!(
        check.status.success(),
        "the training set differs from the oracle:\n{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    (out, text(&check.stdout))
}

/// Output of `topics describe`: (low, high) of partition 0.
fn bounds(cmd: Command) -> (i64, i64) {
    let out = ok(cmd, "");
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("0"))
        .unwrap_or_else(|| panic!("no partition 0 in {out}"));
    let v: Vec<i64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[1], v[2])
}

/// The seam test: a live job archives the first 600 clicks; 600 more
/// arrive and retention deletes the oldest records. A backfill reads the
/// archive for the old range and the topic for the rest (which overlap)
/// without a gap or a duplicate, and gives the table of a backfill over a
/// topic that kept everything. When retention deletes records the archive
/// never got, history has a hole and the backfill says where.
#[test]
fn history_split_between_archive_and_topic_is_read_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    std::fs::write(dir.path().join("click.avsc"), CLICK_SCHEMA).unwrap();
    std::fs::write(dir.path().join("item.avsc"), ITEM_SCHEMA).unwrap();
    let schema = |name: &str| dir.path().join(name).display().to_string();
    // About 58 bytes a record: 4 KiB segments, and 50 kB keep ~860 records.
    ok(
        cmd(&[
            "topics",
            "create",
            "clicks",
            "--config",
            "segment.bytes=4096",
            "--retention-bytes",
            "50000",
        ]),
        "",
    );
    ok(cmd(&["topics", "create", "clicks_full"]), "");
    ok(cmd(&["topics", "create", "items", "--compact"]), "");
    let produce = |topic: &str, key: &str, avsc: &str, lines: &str| {
        ok(
            cmd(&[
                "topics",
                "produce",
                "--topic",
                topic,
                "--key-field",
                key,
                "--schema",
                &schema(avsc),
            ]),
            lines,
        );
    };
    produce("items", "item", "item.avsc", &items());
    for t in ["clicks", "clicks_full"] {
        produce(t, "user", "click.avsc", &clicks_between(0, 600));
    }
    let archive = format!("file://{}/archive", dir.path().display());
    let spec = dir.path().join("seam.yaml");
    std::fs::write(
        &spec,
        click_spec("seam", "clicks", "items", "features")
            + &format!("archive: {{ url: \"{archive}\" }}\n"),
    )
    .unwrap();
    let full_spec = dir.path().join("full.yaml");
    std::fs::write(
        &full_spec,
        click_spec("full", "clicks_full", "items", "features_full"),
    )
    .unwrap();
    let ckpt = dir.path().join("ckpt").display().to_string();
    let run = [
        "run",
        spec.to_str().unwrap(),
        "--until-end",
        "--metrics-addr",
        "127.0.0.1:0",
        "--checkpoint-url",
        &ckpt,
    ];
    let out = ok(cmd(&run), "");
    assert!(out.starts_with("600 events"), "{out}");
    assert_eq!(bounds(cmd(&["topics", "describe", "clicks"])), (0, 600));

    for t in ["clicks", "clicks_full"] {
        produce(t, "user", "click.avsc", &clicks_between(600, 1200));
    }
    let (low, high) = bounds(cmd(&["topics", "describe", "clicks"]));
    assert!(
        low > 0 && low < 600 && high == 1200,
        "retention must delete some archived records, not all: {low}..{high}"
    );
    let backfill = |spec: &Path, out: &Path| {
        ok(
            cmd(&[
                "backfill",
                spec.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]),
            "",
        )
    };
    let seam_out = dir.path().join("seam-out");
    let out = backfill(&spec, &seam_out);
    assert!(
        out.contains("1199 events")
            && out.contains("1 late")
            && out.contains("600 from the archive, 600 from topics"),
        "each record once: {out}"
    );
    let full_out = dir.path().join("full-out");
    let full = backfill(&full_spec, &full_out);
    assert!(
        full.contains("0 from the archive, 1200 from topics"),
        "{full}"
    );
    let got = parquet_table(&seam_out.join("features/shopper"), "user");
    assert_eq!(got.len(), 25);
    assert_eq!(
        got,
        parquet_table(&full_out.join("features/shopper"), "user")
    );

    // Regression: a second bounded run read nothing, since the first had
    // marked its task finished. It archives the second 600.
    let out = ok(cmd(&run), "");
    assert!(out.starts_with("600 events"), "{out}");

    // Then no job runs while 1200 more arrive: retention deletes records
    // the archive never got, and history has a hole.
    produce("clicks", "user", "click.avsc", &clicks_between(1200, 2400));
    let (low, _) = bounds(cmd(&["topics", "describe", "clicks"]));
    assert!(low > 1200, "{low}");
    let err = fails_with(
        {
            let mut c = cmd(&["backfill", spec.to_str().unwrap(), "--out"]);
            c.arg(dir.path().join("gap-out"));
            c
        },
        "",
        11,
    );
    assert!(
        err.contains(&format!(
            "history has a gap in `clicks` partition 0: the archive ends before offset 1200 but the topic now starts at offset {low}"
        )),
        "{err}"
    );
}

/// Regression: a training set held key, time, label and view features
/// only, so a click model could not learn from the event's own item or
/// price, and every label event became a row. `--columns` keeps the named
/// columns of the label event (a name already taken gets `event_`), and
/// `--label-filter` keeps the label events a condition selects.
#[test]
fn training_sets_could_not_hold_the_label_events_own_columns_or_select_them() {
    let shop = crate::faults::Shop::new(2, &[]);
    shop.clicks(0, 2000);
    let out_dir = shop.dir.path().join("set");
    let out = ok(
        shop.labels(
            "set",
            &[
                "--label-filter",
                "item < 10",
                "--columns",
                "item,amount,user,items.category",
            ],
        ),
        "",
    );
    assert!(
        out.contains("label events left out by --label-filter"),
        "{out}"
    );
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(out_dir.join("training")).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        frames.push(ParquetReader::new(file).finish().unwrap());
    }
    let mut df = frames.pop().unwrap();
    for f in frames {
        df.vstack_mut_owned(f).unwrap();
    }
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        names[..9],
        [
            "user",
            "event_time",
            "partition",
            "offset",
            "label",
            "item",
            "amount",
            "event_user",
            "items_category"
        ],
        "{names:?}"
    );
    // Only clicks on items 0..9 (of 20), and each row's own item and label.
    let item = df.column("item").unwrap().i64().unwrap().clone();
    let amount = df.column("amount").unwrap().f64().unwrap().clone();
    let label = df.column("label").unwrap().bool().unwrap().clone();
    assert!(df.height() > 500 && df.height() < 1500, "{}", df.height());
    let category = df.column("items_category").unwrap().str().unwrap().clone();
    let time = df
        .column("event_time")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    for i in 0..df.height() {
        let it = item.get(i).unwrap();
        assert!(it < 10);
        assert_eq!(label.get(i), Some(amount.get(i).unwrap() > 50.0));
        // The item's category as of the event (joined as the views join
        // it): item 3 is on sale from BASE + 1,000,000 on.
        let want = if it == 3 && time.get(i).unwrap() >= BASE + 1_000_000 {
            "sale".to_string()
        } else {
            format!("c{}", it % 4)
        };
        assert_eq!(category.get(i), Some(want.as_str()), "row {i}");
    }
    let err = fails_with(shop.labels("set", &["--columns", "price"]), "", 2);
    assert!(
        err.contains("--columns: `price` is not a column of `clicks`"),
        "{err}"
    );
}
