//! Re-keyed views end to end: the clickstream tutorial's `item_stats`,
//! keyed by item over events keyed by user (four partitions, so events
//! cross tasks through the repartition topic). Checked against polars
//! over the same events, live and backfilled, by `eddy consistency`, and
//! in the online stores when tests/run started them.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use serde_json::Value as Json;

use crate::clickstream::eddy_in;
use crate::support::*;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A Parquet directory's rows: the latest row per item, by item.
fn latest_rows(dir: &Path) -> BTreeMap<i64, BTreeMap<String, AnyValue<'static>>> {
    let paths: Vec<PlPath> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .map(|p| PlPath::new(p.to_str().unwrap()))
        .collect();
    assert!(!paths.is_empty(), "{}", dir.display());
    let df = LazyFrame::scan_parquet_files(paths.into(), ScanArgsParquet::default())
        .unwrap()
        .collect()
        .unwrap();
    let mut out: BTreeMap<i64, BTreeMap<String, AnyValue<'static>>> = BTreeMap::new();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    for i in 0..df.height() {
        let row: BTreeMap<String, AnyValue<'static>> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    df.column(n).unwrap().get(i).unwrap().into_static(),
                )
            })
            .collect();
        let item = row["item_id"].try_extract::<i64>().unwrap();
        let as_of = row["as_of"].try_extract::<i64>().unwrap();
        let newer = out
            .get(&item)
            .is_none_or(|r| r["as_of"].try_extract::<i64>().unwrap() <= as_of);
        if newer {
            out.insert(item, row);
        }
    }
    out
}

/// The features polars computes from the events for each item as of its
/// row's `as_of`: sliding windows cover `(as_of - size, as_of]`.
fn polars_reference(events: &[Json], as_of: &BTreeMap<i64, i64>) -> DataFrame {
    let pick = |f: &str| -> Vec<i64> { events.iter().map(|e| e[f].as_i64().unwrap()).collect() };
    let events = df![
        "item_id" => pick("item_id"),
        "user_id" => pick("user_id"),
        "ts" => pick("ts"),
        "event_type" => events.iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
    ]
    .unwrap();
    let rows = df![
        "item_id" => as_of.keys().copied().collect::<Vec<_>>(),
        "as_of" => as_of.values().copied().collect::<Vec<_>>(),
    ]
    .unwrap();
    let within = |size: i64| col("ts").gt(col("as_of") - lit(size));
    let is = |t: &str| col("event_type").eq(lit(t.to_string()));
    let count = |cond: Expr, name: &str| cond.cast(DataType::Int64).sum().alias(name);
    events
        .lazy()
        .join(
            rows.lazy(),
            [col("item_id")],
            [col("item_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col("ts").lt_eq(col("as_of")))
        .group_by([col("item_id")])
        .agg([
            count(is("view").and(within(HOUR)), "views_1h"),
            count(is("view").and(within(DAY)), "views_1d"),
            count(is("view"), "views_lifetime"),
            count(is("click").and(within(HOUR)), "clicks_1h"),
            count(is("click").and(within(DAY)), "clicks_1d"),
            count(is("click"), "clicks_lifetime"),
            col("user_id")
                .filter(within(DAY))
                .n_unique()
                .cast(DataType::Int64)
                .alias("shoppers_1d"),
        ])
        .sort(["item_id"], Default::default())
        .collect()
        .unwrap()
}

fn ratio(num: i64, den: i64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

#[test]
fn a_per_item_view_keyed_away_from_its_source_equals_polars_live_backfilled_and_in_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        eddy_in(
            d,
            &[
                "datasets",
                "generate",
                "clickstream",
                "--users",
                "400",
                "--items",
                "120",
                "--events",
                "30000",
                "--seed",
                "5",
            ],
        ),
        "",
    );
    // The tutorial spec, with its online stores turned on where tests/run
    // started them.
    let tutorial = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/clickstream/pipeline.yaml");
    let mut text = std::fs::read_to_string(tutorial).unwrap();
    let redis = external("EDDY_TEST_REDIS");
    let postgres = external("EDDY_TEST_POSTGRES");
    let table = unique("item_stats").replace('-', "_");
    if let Some(url) = &redis {
        let old = "      # redis: { url: \"redis://127.0.0.1:6379\", ttl: 30d }";
        assert!(text.contains(old), "the tutorial shows the Redis store");
        text = text.replace(old, &format!("      redis: {{ url: \"{url}\", ttl: 30d }}"));
    }
    if let Some(url) = &postgres {
        let old = "      # postgres: { url: \"postgresql://eddy@127.0.0.1/postgres\", table: item_stats }";
        assert!(
            text.contains(old),
            "the tutorial shows the PostgreSQL store"
        );
        text = text.replace(
            old,
            &format!("      postgres: {{ url: \"{url}\", table: {table} }}"),
        );
    }
    let spec = d.join("pipeline.yaml");
    std::fs::write(&spec, text).unwrap();
    let spec = spec.to_str().unwrap();

    let run = ok(eddy_in(d, &["run", spec, "--until-end"]), "");
    assert!(
        run.contains(" 0 late,"),
        "no event is late, so polars sees the same events: {run}"
    );

    // Live: the latest row per item, against polars over every event.
    let live = latest_rows(&d.join("eddy-data/parquet/item_stats"));
    let events = json_lines(&ok(
        eddy_in(d, &["topics", "consume", "--topic", "clickstream.events"]),
        "",
    ));
    assert_eq!(events.len(), 30_000);
    let items: std::collections::BTreeSet<i64> = events
        .iter()
        .map(|e| e["item_id"].as_i64().unwrap())
        .collect();
    assert_eq!(live.len(), items.len(), "one row per item");
    let as_of: BTreeMap<i64, i64> = live
        .iter()
        .map(|(k, r)| (*k, r["as_of"].try_extract::<i64>().unwrap()))
        .collect();
    let want = polars_reference(&events, &as_of);
    let long = |c: &str, i: usize| want.column(c).unwrap().i64().unwrap().get(i).unwrap();
    let mut with_ctr = 0;
    for i in 0..want.height() {
        let item = long("item_id", i);
        let got = &live[&item];
        for c in [
            "views_1h",
            "views_1d",
            "views_lifetime",
            "clicks_1h",
            "clicks_1d",
            "clicks_lifetime",
            "shoppers_1d",
        ] {
            assert_eq!(
                got[c].try_extract::<i64>().unwrap(),
                long(c, i),
                "item {item} {c}"
            );
        }
        for (c, num, den) in [
            ("ctr_1d", "clicks_1d", "views_1d"),
            ("ctr_lifetime", "clicks_lifetime", "views_lifetime"),
        ] {
            let expected = ratio(long(num, i), long(den, i));
            let value = match &got[c] {
                AnyValue::Null => None,
                v => Some(v.try_extract::<f64>().unwrap()),
            };
            assert_eq!(value, expected, "item {item} {c}");
            with_ctr += usize::from(expected.is_some());
        }
    }
    assert!(with_ctr > 0, "some items were viewed");

    // Backfilled: the same table, column for column.
    ok(eddy_in(d, &["backfill", spec, "--out", "bf"]), "");
    let backfilled = latest_rows(&d.join("bf/features/item_stats"));
    assert_eq!(backfilled, live, "the backfill equals the live run");

    // `eddy consistency` replays and compares the live topic's rows.
    let report = ok(
        eddy_in(
            d,
            &[
                "consistency",
                spec,
                "--view",
                "item_stats",
                "--sample",
                "200",
                "--json",
            ],
        ),
        "",
    );
    let report: Json = serde_json::from_str(&report).unwrap();
    let features = report["features"].as_array().unwrap();
    assert!(
        features.iter().any(|f| f.to_string().contains("ctr_1d")),
        "{report}"
    );
    for f in features {
        assert_eq!(f["mismatches"], 0, "{f}");
    }

    // The online stores hold each item's latest row.
    let topic_rows: BTreeMap<i64, Json> = json_lines(&ok(
        eddy_in(d, &["topics", "consume", "--topic", "features.item_stats"]),
        "",
    ))
    .into_iter()
    .map(|r| (r["item_id"].as_i64().unwrap(), r))
    .collect();
    assert_eq!(topic_rows.len(), items.len());

    // Serving's read API answers the re-keyed view by its own key (an
    // item), from the feature topic it follows.
    let serve = LiveRun::start(eddy_in(d, &["serve", spec, "--http", "127.0.0.1:0"]));
    let (item, row) = topic_rows.iter().next().unwrap();
    let (served, body) = serve.features("item_stats", &item.to_string());
    assert_eq!(served["as_of"], row["as_of"], "{body}");
    for column in ["views_1d", "clicks_lifetime", "ctr_1d", "category_lifetime"] {
        assert_eq!(served["features"][column], row[column], "{column}: {body}");
    }
    serve.stop();

    // The tutorial's own online store: a SQLite file, no server.
    let lite = rusqlite::Connection::open(d.join("eddy-data/online.db")).unwrap();
    let mut stmt = lite
        .prepare("SELECT item_id, as_of, views_1d, ctr_1d FROM item_stats")
        .unwrap();
    let stored: Vec<(i64, i64, i64, Option<f64>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), topic_rows.len(), "a row per item");
    for (item, as_of, views, ctr) in stored {
        let row = &topic_rows[&item];
        assert_eq!(Json::from(as_of), row["as_of"], "{item}");
        assert_eq!(Json::from(views), row["views_1d"], "{item}");
        assert_eq!(ctr, row["ctr_1d"].as_f64(), "{item}");
    }

    if let Some(url) = &redis {
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        for (item, row) in &topic_rows {
            let hash: BTreeMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("clickstream:item_id={item}"))
                .query(&mut con)
                .unwrap();
            assert_eq!(hash["_ts:item_stats"], row["as_of"].to_string(), "{item}");
            let ctr: Json = serde_json::from_str(&hash["item_stats:ctr_1d"]).unwrap();
            assert_eq!(ctr, row["ctr_1d"], "{item}");
        }
    }
    if let Some(url) = &postgres {
        let mut pg = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let stored: BTreeMap<i64, Json> = pg
            .query(&format!("SELECT to_jsonb(t) FROM \"{table}\" t"), &[])
            .unwrap()
            .into_iter()
            .map(|r| {
                let j: Json = r.get(0);
                (j["item_id"].as_i64().unwrap(), j)
            })
            .collect();
        assert_eq!(stored.len(), topic_rows.len());
        for (item, row) in &topic_rows {
            assert_eq!(stored[item]["views_1d"], row["views_1d"], "{item}");
            // PostgreSQL's JSON writes a double 0 as `0`.
            assert_eq!(
                stored[item]["ctr_1d"].as_f64(),
                row["ctr_1d"].as_f64(),
                "{item}"
            );
        }
    }
}
