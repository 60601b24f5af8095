//! A versioned table's history outlives compaction: with an archive, the
//! job archives the table's records too, and a backfill applies the
//! archived versions before the (compacted) topic. Without that, a
//! backfill after compaction joins only the versions the topic still
//! holds, and disagrees with the live run.

use std::path::Path;

use crate::support::*;

const CLICK: &str = r#"{"type": "record", "name": "Click", "fields": [
  {"name": "user", "type": "long"},
  {"name": "item", "type": "long"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

const ITEM: &str = r#"{"type": "record", "name": "Item", "fields": [
  {"name": "item", "type": "long"},
  {"name": "category", "type": "string"},
  {"name": "since", "type": "long"},
  {"name": "note", "type": "string"}]}"#;

fn spec(archive: &Path) -> String {
    format!(
        "name: history
sources:
  clicks: {{ topic: clicks, key: user, event_time: ts, idle_timeout: 0s }}
tables:
  items: {{ topic: items, key: item, versioned: true, valid_from: since }}
features:
  shopper:
    source: clicks
    join: [{{ table: items, on: item, select: [category] }}]
    aggregations:
      - {{ name: seen, op: last_k, column: category, k: 10, windows: [lifetime] }}
archive: {{ url: \"{}\" }}
",
        archive.display()
    )
}

#[test]
fn a_backfill_after_the_table_topic_compacted_equals_the_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.current_dir(d).args(args);
        c
    };
    std::fs::write(d.join("click.avsc"), CLICK).unwrap();
    std::fs::write(d.join("item.avsc"), ITEM).unwrap();
    std::fs::write(d.join("history.yaml"), spec(&d.join("archive"))).unwrap();
    ok(cmd(&["topics", "create", "clicks"]), "");
    // Small segments (three versions fit in one) and no tombstone
    // retention: the local log compacts each time a segment rolls, as a
    // broker would over days.
    ok(
        cmd(&[
            "topics",
            "create",
            "items",
            "--compact",
            "--config",
            "segment.bytes=2500",
            "--config",
            "delete.retention.ms=0",
        ]),
        "",
    );
    let t0 = 1_700_000_000_000i64;
    let note = "x".repeat(600);
    let versions = |list: &[(&str, i64)]| -> String {
        list.iter()
            .map(|(c, t)| {
                format!(
                    "{{\"item\": 1, \"category\": \"{c}\", \"since\": {}, \"note\": \"{note}\"}}\n",
                    t0 + t
                )
            })
            .collect()
    };
    let produce_items = |lines: &str| {
        ok(
            cmd(&[
                "topics",
                "produce",
                "--topic",
                "items",
                "--key-field",
                "item",
                "--schema",
                "item.avsc",
            ]),
            lines,
        )
    };
    produce_items(&versions(&[("a", 1000), ("b", 3000), ("c", 5000)]));
    let clicks: String = [2000, 4000, 6000]
        .iter()
        .map(|t| format!("{{\"user\": 7, \"item\": 1, \"ts\": {}}}\n", t0 + t))
        .collect();
    ok(
        cmd(&[
            "topics",
            "produce",
            "--topic",
            "clicks",
            "--key-field",
            "user",
            "--schema",
            "click.avsc",
        ]),
        &clicks,
    );
    let run = ok(
        cmd(&[
            "run",
            "history.yaml",
            "--until-end",
            "--metrics-addr",
            "127.0.0.1:0",
        ]),
        "",
    );
    assert!(run.contains("3 events"), "{run}");
    let live = json_lines(&ok(
        cmd(&["topics", "consume", "--topic", "features.shopper"]),
        "",
    ));
    let want = serde_json::json!(["a", "b", "c"]);
    assert_eq!(live.last().unwrap()["seen_lifetime"], want, "{live:?}");

    // Later versions roll segments, and compaction takes a, b and c from
    // the topic.
    produce_items(&versions(&[
        ("d", 7000),
        ("e", 8000),
        ("f", 9000),
        ("g", 9500),
    ]));
    let held = ok(cmd(&["topics", "consume", "--topic", "items"]), "");
    assert!(
        !held.contains("\"category\":\"a\"") && !held.contains("\"category\":\"b\""),
        "compaction took the old versions: {held}"
    );

    // The backfill reads the archived versions first: the same table as live.
    let out = d.join("backfill");
    let report = ok(
        cmd(&["backfill", "history.yaml", "--out", out.to_str().unwrap()]),
        "",
    );
    let table = std::fs::read_dir(out.join("features/shopper"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap_or_else(|| panic!("{report}"));
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(&table).unwrap())
        .finish()
        .unwrap();
    let seen = df
        .column("seen_lifetime")
        .unwrap()
        .list()
        .unwrap()
        .get_as_series(0)
        .unwrap();
    let seen: Vec<&str> = seen.str().unwrap().into_no_null_iter().collect();
    assert_eq!(seen, ["a", "b", "c"], "{report}");
    assert!(
        report.contains("tables: 3 archived records applied"),
        "{report}"
    );
}
