//! The online store for real: a view written to Redis (started by
//! tests/run from Debian's redis-server), PostgreSQL and a SQLite file,
//! read back by key and compared with the feature topic, replayed without
//! moving a value back in time.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::pipeline::{Clicks, load_clicks, run_args};
use crate::support::*;

/// Every hash under `prefix*`: key → field → value.
fn hashes(con: &mut redis::Connection, prefix: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(con)
        .unwrap();
    keys.into_iter()
        .map(|k| {
            let fields: BTreeMap<String, String> =
                redis::cmd("HGETALL").arg(&k).query(con).unwrap();
            (k, fields)
        })
        .collect()
}

/// The click fixture loaded in `d`, its view writing also to `store`
/// (`redis: {...}` or `postgres: {...}`), and serving reading the user's
/// features from it (`features_from`): the spec rewritten in place.
fn clicks_with_store(
    d: &std::path::Path,
    cmd: &dyn Fn(&[&str]) -> std::process::Command,
    store: &str,
    features_from: &str,
) -> Clicks {
    let clicks = load_clicks(d, cmd, "", 2000);
    let text = std::fs::read_to_string(&clicks.spec).unwrap().replace(
        &format!("output: {{ topic: {} }}", clicks.features),
        &format!("output: {{ topic: {}, {store} }}", clicks.features),
    );
    assert!(text.contains(store), "{text}");
    let text = text
        + "models:\n  popular: { kind: popularity, source: clicks, item: item }\n\
           serving:\n  trigger: clicks\n  candidates: [popular]\n  features_from: "
        + features_from
        + "\n";
    std::fs::write(&clicks.spec, text).unwrap();
    clicks
}

/// `eddy serve`'s row of `user` in view `shopper` (retried until it
/// answers 200), checked against `row`, the feature topic's: numbers to
/// 1e-9 (PostgreSQL's JSON writes a double 0 as `0`), the rest exactly.
fn assert_served_row_equals(serve: &LiveRun, user: &str, row: &Json) {
    let (served, body) = serve.features("shopper", user);
    assert_eq!(served["as_of"], row["as_of"], "{body}");
    for (column, want) in row.as_object().unwrap() {
        if column == "user" || column == "as_of" {
            continue;
        }
        let have = &served["features"][column];
        match (have.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => {
                assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{column}: {body}")
            }
            _ => assert_eq!(have, want, "{column}: {body}"),
        }
    }
}

/// `eddy run --until-end` of `clicks` from a fresh checkpoint directory
/// (`ckpt-<n>`): a replay of everything the topics hold.
fn run_from_scratch(
    d: &std::path::Path,
    clicks: &Clicks,
    n: u32,
    cmd: &dyn Fn(&[&str]) -> std::process::Command,
) -> std::process::Command {
    let ckpt = d.join(format!("ckpt-{n}")).display().to_string();
    let args = run_args(d, clicks, &ckpt);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd(&args)
}

#[test]
fn a_view_in_redis_equals_its_topic_and_a_replay_does_not_move_it_back() {
    let Some(url) = external("EDDY_TEST_REDIS") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    // Serving reads the user's features from Redis, not the topics.
    let clicks = clicks_with_store(
        d,
        &cmd,
        &format!("redis: {{ url: \"{url}\", ttl: 30d }}"),
        "redis",
    );
    let name = std::fs::read_to_string(&clicks.spec)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("name: ")
        .to_string();
    let spec = clicks.spec.to_str().unwrap();
    let valid = ok(cmd(&["validate", spec]), "");
    assert!(
        valid.contains("online store for view shopper (Redis): reachable"),
        "{valid}"
    );

    let first = ok(run_from_scratch(d, &clicks, 1, &cmd), "");
    assert!(first.contains("rows written to Redis"), "{first}");

    // Each key's hash holds its latest topic row, feature by feature.
    let mut latest: BTreeMap<String, Json> = BTreeMap::new();
    for row in json_lines(&ok(
        cmd(&["topics", "consume", "--topic", &clicks.features]),
        "",
    )) {
        latest.insert(row["user"].to_string(), row);
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let prefix = format!("{name}:user=");
    let stored = hashes(&mut con, &prefix);
    assert_eq!(stored.len(), latest.len(), "one hash per key");
    for (user, row) in &latest {
        let hash = &stored[&format!("{prefix}{user}")];
        assert_eq!(hash["_ts:shopper"], row["as_of"].to_string(), "{user}");
        for (column, want) in row.as_object().unwrap() {
            if column == "user" || column == "as_of" {
                continue;
            }
            let got: Json = serde_json::from_str(&hash[&format!("shopper:{column}")]).unwrap();
            assert_eq!(&got, want, "{user} {column}");
        }
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}{user}"))
            .query(&mut con)
            .unwrap();
        assert!(ttl > 0 && ttl <= 30 * 86_400_000, "{ttl}");
    }

    // `eddy serve` with `features_from: redis` answers from the store.
    let serve = LiveRun::start(cmd(&["serve", spec, "--http", "127.0.0.1:0"]));
    let (user, row) = latest.iter().next().unwrap();
    assert_served_row_equals(&serve, user, row);
    let (_, metrics) = crate::pipeline::http_get(&serve.addr, "/metrics");
    assert!(
        metrics.contains("eddy_serve_feature_store_errors_total"),
        "{metrics}"
    );
    serve.stop();

    // A replay from scratch (no checkpoint) writes the same rows again:
    // the store ends as it was. One key holds a row newer than any the
    // replay has (as if a later run had written it): the replay's older
    // row for it is skipped, never written over it.
    let (newer_key, _) = stored.iter().next().unwrap();
    let far = 4_102_444_800_000i64; // 2100-01-01
    let _: () = redis::cmd("HSET")
        .arg(newer_key)
        .arg("_ts:shopper")
        .arg(far)
        .arg("shopper:clicks_lifetime")
        .arg("999999")
        .query(&mut con)
        .unwrap();
    let replay = ok(run_from_scratch(d, &clicks, 2, &cmd), "");
    assert!(
        replay.contains(&format!(
            "{} rows written to Redis, 1 older than what Redis held skipped",
            stored.len() - 1
        )),
        "{replay}"
    );
    let after = hashes(&mut con, &prefix);
    for (key, fields) in &stored {
        if key == newer_key {
            assert_eq!(after[key]["shopper:clicks_lifetime"], "999999");
            assert_eq!(after[key]["_ts:shopper"], far.to_string());
        } else {
            assert_eq!(&after[key], fields, "{key}");
        }
    }

    // A store that does not answer: validate says so and exits 4.
    let bad = std::fs::read_to_string(&clicks.spec)
        .unwrap()
        .replace(&url, "redis://127.0.0.1:1");
    let bad_spec = d.join("bad.yaml");
    std::fs::write(&bad_spec, bad).unwrap();
    let why = fails_with(cmd(&["validate", bad_spec.to_str().unwrap()]), "", 4);
    assert!(why.contains("the online store does not answer"), "{why}");
    // And a run whose store stops answering stops before its checkpoint,
    // with exit 4 (regression: it exited 1, as if eddy had a bug).
    let ckpt = d.join("ckpt-3").display().to_string();
    let why = fails_with(
        cmd(&[
            "run",
            bad_spec.to_str().unwrap(),
            "--until-end",
            "--metrics-addr",
            "127.0.0.1:0",
            "--checkpoint-url",
            &ckpt,
        ]),
        "",
        4,
    );
    assert!(why.contains("online store redis://127.0.0.1:1"), "{why}");
}

/// The same view upserted into PostgreSQL (started by tests/run from
/// Debian's postgresql): a row per key equal to the topic's latest, lists
/// as JSONB; a replay leaves the table as it was and skips a row older
/// than the stored one.
#[test]
fn a_view_in_postgres_equals_its_topic_and_a_replay_does_not_move_it_back() {
    let Some(url) = external("EDDY_TEST_POSTGRES") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    let table = unique("shopper").replace('-', "_");
    let clicks = clicks_with_store(
        d,
        &cmd,
        &format!("postgres: {{ url: \"{url}\", table: {table} }}"),
        // Serving reads the user's features from PostgreSQL, not the topics.
        "postgres",
    );
    let spec = clicks.spec.to_str().unwrap();
    let valid = ok(cmd(&["validate", spec]), "");
    assert!(
        valid.contains("PostgreSQL table for view shopper: reachable"),
        "{valid}"
    );
    let first = ok(run_from_scratch(d, &clicks, 1, &cmd), "");
    assert!(first.contains("postgres: "), "{first}");

    let mut latest: BTreeMap<i64, Json> = BTreeMap::new();
    for row in json_lines(&ok(
        cmd(&["topics", "consume", "--topic", &clicks.features]),
        "",
    )) {
        latest.insert(row["user"].as_i64().unwrap(), row);
    }
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // Every column as JSON, so the comparison is the topic's JSON.
    let read = |pg: &mut postgres::Client| -> BTreeMap<i64, Json> {
        pg.query(&format!("SELECT to_jsonb(t) FROM \"{table}\" t"), &[])
            .unwrap()
            .into_iter()
            .map(|r| {
                let j: Json = r.get(0);
                (j["user"].as_i64().unwrap(), j)
            })
            .collect()
    };
    let stored = read(&mut pg);
    assert_eq!(stored.len(), latest.len(), "one row per key");
    for (user, row) in &latest {
        let got = &stored[user];
        for (column, want) in row.as_object().unwrap() {
            let have = &got[column];
            match (have.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{user} {column}: {have} vs {want}"
                ),
                _ => assert_eq!(have, want, "{user} {column}"),
            }
        }
    }

    // One row made newer by hand: the replay skips its older row, and
    // leaves the others as they were.
    let (newer, _) = stored.iter().next().unwrap();
    pg.execute(
        &format!("UPDATE \"{table}\" SET as_of = 4102444800000, clicks_lifetime = 999999 WHERE \"user\" = $1"),
        &[newer],
    )
    .unwrap();
    let replay = ok(run_from_scratch(d, &clicks, 2, &cmd), "");
    assert!(
        replay.contains(&format!(
            "postgres: {} rows upserted, 1 older than the table's skipped",
            stored.len() - 1
        )),
        "{replay}"
    );
    let after = read(&mut pg);
    for (user, row) in &stored {
        if user == newer {
            assert_eq!(after[user]["clicks_lifetime"], 999999);
        } else {
            assert_eq!(&after[user], row, "{user}");
        }
    }

    // `eddy serve` with `features_from: postgres` answers from the table.
    let serve = LiveRun::start(cmd(&["serve", spec, "--http", "127.0.0.1:0"]));
    let (user, row) = latest.iter().find(|(u, _)| *u != newer).unwrap();
    assert_served_row_equals(&serve, &user.to_string(), row);
    serve.stop();

    // A table made for another version of the view (a column of another
    // type) is refused, naming the column: exit 2, the user's to resolve.
    let old_table = format!("{table}_old");
    pg.batch_execute(&format!(
        "CREATE TABLE \"{old_table}\" (\"user\" BIGINT PRIMARY KEY, as_of BIGINT NOT NULL, clicks_lifetime TEXT)"
    ))
    .unwrap();
    let spec_text = std::fs::read_to_string(&clicks.spec)
        .unwrap()
        .replace(&format!("table: {table} "), &format!("table: {old_table} "));
    std::fs::write(&clicks.spec, spec_text).unwrap();
    let why = fails_with(run_from_scratch(d, &clicks, 3, &cmd), "", 2);
    assert!(
        why.contains("does not fit")
            && why.contains("`clicks_lifetime` is text, the view writes BIGINT"),
        "{why}"
    );
}

/// Every row of a SQLite table, by its key (as JSON text), column by
/// column as JSON: booleans are 0/1 there, lists JSON text.
fn sqlite_rows(
    path: &std::path::Path,
    table: &str,
    key: &str,
) -> BTreeMap<String, BTreeMap<String, Json>> {
    use rusqlite::types::ValueRef;
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut out = BTreeMap::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let mut row = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i).unwrap() {
                ValueRef::Null => Json::Null,
                ValueRef::Integer(x) => Json::from(x),
                ValueRef::Real(x) => Json::from(x),
                ValueRef::Text(t) => Json::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(_) => panic!("a blob in {n}"),
            };
            row.insert(n.clone(), v);
        }
        out.insert(row[key].to_string(), row);
    }
    out
}

/// A view in a SQLite file, the online store with no server: every key's
/// row equals its latest row on the feature topic; a replay from scratch
/// leaves the table as it was, and a row newer than the replay's is
/// skipped, counted, not overwritten.
#[test]
fn a_view_in_sqlite_equals_its_topic_and_a_replay_does_not_move_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.args(args);
        c
    };
    let db = d.join("stores/online.db");
    let clicks = clicks_with_store(
        d,
        &cmd,
        &format!("sqlite: {{ path: \"{}\" }}", db.display()),
        "topics",
    );
    let first = ok(run_from_scratch(d, &clicks, 1, &cmd), "");
    assert!(first.contains("sqlite: "), "{first}");
    let mut latest: BTreeMap<String, Json> = BTreeMap::new();
    for row in json_lines(&ok(
        cmd(&["topics", "consume", "--topic", &clicks.features]),
        "",
    )) {
        latest.insert(row["user"].to_string(), row);
    }
    let stored = sqlite_rows(&db, "shopper", "user");
    assert_eq!(stored.len(), latest.len(), "one row per key");
    let mut lists = 0;
    for (user, row) in &latest {
        let got = &stored[user];
        for (column, want) in row.as_object().unwrap() {
            let have = &got[column];
            match (want, have) {
                (Json::Array(_), Json::String(text)) => {
                    lists += 1;
                    assert_eq!(
                        &serde_json::from_str::<Json>(text).unwrap(),
                        want,
                        "{user} {column}"
                    )
                }
                (Json::Bool(b), _) => {
                    assert_eq!(have, &Json::from(i64::from(*b)), "{user} {column}")
                }
                _ => assert_eq!(have, want, "{user} {column}"),
            }
        }
    }
    assert!(lists > 0, "list features are JSON text");
    // A replay from scratch: the same rows, except the key whose row is
    // newer than any the replay has.
    let newer = stored.keys().next().unwrap().clone();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "UPDATE shopper SET as_of = 4102444800000, clicks_lifetime = 999999 WHERE user = ?1",
        [newer.parse::<i64>().unwrap()],
    )
    .unwrap();
    drop(c);
    let replay = ok(run_from_scratch(d, &clicks, 2, &cmd), "");
    assert!(
        replay.contains(&format!(
            "sqlite: {} rows upserted, 1 older than the table's skipped",
            stored.len() - 1
        )),
        "{replay}"
    );
    let after = sqlite_rows(&db, "shopper", "user");
    for (key, row) in &stored {
        if *key == newer {
            assert_eq!(after[key]["clicks_lifetime"], 999999);
        } else {
            assert_eq!(&after[key], row, "{key}");
        }
    }
    // A table made for another version of the view is refused, by column,
    // before anything is written.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("ALTER TABLE shopper RENAME COLUMN clicks_1m TO clicks_one_minute")
        .unwrap();
    drop(c);
    let err = fails_with(run_from_scratch(d, &clicks, 3, &cmd), "", 2);
    assert!(
        err.contains("SQLite table `shopper`") && err.contains("`clicks_1m` is missing"),
        "{err}"
    );
}
