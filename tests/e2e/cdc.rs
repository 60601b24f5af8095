//! A table fed by Debezium change events (`format: debezium`): records in
//! Debezium's Avro envelope, as its PostgreSQL connector writes them for
//! the tutorial's `inventory.customers` table (snapshot read, update,
//! delete, create again, truncate). As-of joins read the version valid at
//! each event's time, live and replayed alike. The same changes from Kafka
//! Connect's JSON converter (`format: debezium_json`), with and without its
//! `schema`/`payload` wrapping, give the same tables.

use crate::support::*;

const ORDER_SCHEMA: &str = r#"{"type": "record", "name": "Order", "fields": [
  {"name": "customer_id", "type": "long"},
  {"name": "amount", "type": "double"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;

const SPEC: &str = "name: cdc
sources:
  orders: { topic: orders, key: customer_id, event_time: ts, idle_timeout: 0s }
  # The same change stream read as events: one per change.
  changes:
    topic: dbserver1.inventory.customers
    key: id
    event_time: __source_ts_ms
    lateness: 1s      # the snapshot of 1002 comes after a later change of 1001
    idle_timeout: 0s
    format: debezium
tables:
  customers: { topic: dbserver1.inventory.customers, key: id, versioned: true, format: debezium }
features:
  buyer:
    source: orders
    join: [{ table: customers, on: customer_id, select: [first_name] }]
    derive: { unknown: \"CASE WHEN first_name IS NULL THEN 1 ELSE 0 END\" }
    aggregations:
      - { name: names, op: last_k, column: first_name, k: 5, windows: [lifetime] }
      - { name: unknown, op: sum, column: unknown, windows: [lifetime] }
      - { name: orders, op: count, windows: [lifetime] }
  history:
    source: changes
    derive: { deleted: \"CASE WHEN __op = 'd' THEN 1 ELSE 0 END\" }
    aggregations:
      - { name: changes, op: count, windows: [lifetime] }
      - { name: deletes, op: sum, column: deleted, windows: [lifetime] }
      - { name: names, op: last_k, column: first_name, k: 5, windows: [lifetime] }
";

/// A change event's value as Debezium's JSON payload (the Avro envelope's
/// fields): `op`, the rows before and after, and the source block.
fn change(op: &str, before: Option<(i64, &str)>, after: Option<(i64, &str)>, ts: i64) -> String {
    let row = |r: Option<(i64, &str)>| match r {
        Some((id, first)) => format!(
            r#"{{"id": {id}, "first_name": "{first}", "last_name": "Thomas", "email": "sally.thomas@acme.com"}}"#
        ),
        None => "null".into(),
    };
    format!(
        r#"{{"before": {}, "after": {}, "source": {{"version": "2.7.3.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": {ts}, "snapshot": "{}", "db": "postgres", "sequence": "[null,\"34495248\"]", "schema": "inventory", "table": "customers", "txId": 767, "lsn": 34495248, "xmin": null}}, "op": "{op}", "ts_ms": {}, "transaction": null}}"#,
        row(before),
        row(after),
        if op == "r" { "true" } else { "false" },
        ts + 40
    )
}

/// The JSON converter's `schema` block for `inventory.customers` changes
/// (Debezium's documentation, "change event values", PostgreSQL), beside
/// which `payload` holds the change when `schemas.enable` is on (the
/// converter's default).
const CONNECT_SCHEMA: &str = r#"{"type": "struct", "fields": [
  {"type": "struct", "fields": [
    {"type": "int32", "optional": false, "field": "id"},
    {"type": "string", "optional": false, "field": "first_name"},
    {"type": "string", "optional": false, "field": "last_name"},
    {"type": "string", "optional": false, "field": "email"}],
   "optional": true, "name": "dbserver1.inventory.customers.Value", "field": "before"},
  {"type": "struct", "fields": [
    {"type": "int32", "optional": false, "field": "id"},
    {"type": "string", "optional": false, "field": "first_name"},
    {"type": "string", "optional": false, "field": "last_name"},
    {"type": "string", "optional": false, "field": "email"}],
   "optional": true, "name": "dbserver1.inventory.customers.Value", "field": "after"},
  {"type": "struct", "fields": [
    {"type": "string", "optional": false, "field": "version"},
    {"type": "string", "optional": false, "field": "connector"},
    {"type": "string", "optional": false, "field": "name"},
    {"type": "int64", "optional": false, "field": "ts_ms"},
    {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
     "parameters": {"allowed": "true,last,false,incremental"}, "default": "false", "field": "snapshot"},
    {"type": "string", "optional": false, "field": "db"},
    {"type": "string", "optional": true, "field": "sequence"},
    {"type": "string", "optional": false, "field": "schema"},
    {"type": "string", "optional": false, "field": "table"},
    {"type": "int64", "optional": true, "field": "txId"},
    {"type": "int64", "optional": true, "field": "lsn"},
    {"type": "int64", "optional": true, "field": "xmin"}],
   "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"},
  {"type": "string", "optional": false, "field": "op"},
  {"type": "int64", "optional": true, "field": "ts_ms"}],
 "optional": false, "name": "dbserver1.inventory.customers.Envelope"}"#;

#[test]
fn a_debezium_table_gives_each_event_the_version_valid_at_its_time() {
    cdc(false);
}

#[test]
fn a_debezium_json_table_gives_each_event_the_version_valid_at_its_time() {
    cdc(true);
}

/// The CDC pipeline over Debezium's Avro envelope, or (`json`) the JSON
/// converter's records of the same changes.
fn cdc(json: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("eddy-data");
    let cmd = |args: &[&str]| {
        let mut c = eddy(&data);
        c.current_dir(d).args(args);
        c
    };
    let envelope = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/fixtures/debezium_customers_envelope.avsc"
    );
    std::fs::write(d.join("order.avsc"), ORDER_SCHEMA).unwrap();
    let spec = if json {
        let columns = "{ id: long, first_name: string, last_name: string, email: string }";
        SPEC.replace(
            "    format: debezium\n",
            &format!("    format: debezium_json\n    columns: {columns}\n"),
        )
        .replace(
            "format: debezium }",
            &format!("format: debezium_json, columns: {columns} }}"),
        )
    } else {
        SPEC.to_string()
    };
    assert_eq!(spec.matches("debezium_json").count(), 2 * usize::from(json));
    std::fs::write(d.join("cdc.yaml"), spec).unwrap();
    // Debezium keys its records by the row's key as an Avro record; eddy
    // reads the key from the row itself, so the record key does not
    // matter (and `topics produce` writes none: the topic is not compacted).
    ok(
        cmd(&["topics", "create", "dbserver1.inventory.customers"]),
        "",
    );
    ok(cmd(&["topics", "create", "orders"]), "");
    let t0 = 1_700_000_000_000i64;
    let changes = [
        change("r", None, Some((1001, "Sally")), t0 + 1000),
        change("c", None, Some((1002, "George")), t0 + 500),
        change("u", Some((1001, "Sally")), Some((1001, "Sarah")), t0 + 3000),
        change("d", Some((1001, "Sarah")), None, t0 + 5000),
        change("c", None, Some((1001, "Sally")), t0 + 7000),
        // A truncate names no row: dead-lettered with its reason.
        change("t", None, None, t0 + 9000),
    ]
    .join("\n");
    if json {
        // As the JSON converter writes them: every other one with its
        // schema (`schemas.enable=true`), the rest the bare payload.
        let connect_schema: serde_json::Value = serde_json::from_str(CONNECT_SCHEMA).unwrap();
        let records: String = changes
            .lines()
            .enumerate()
            .map(|(i, c)| {
                let payload: serde_json::Value = serde_json::from_str(c).unwrap();
                let record = if i % 2 == 0 {
                    serde_json::json!({"schema": connect_schema, "payload": payload})
                } else {
                    payload
                };
                record.to_string() + "\n"
            })
            .collect();
        ok(
            cmd(&[
                "topics",
                "produce",
                "--topic",
                "dbserver1.inventory.customers",
            ]),
            &records,
        );
    } else {
        ok(
            cmd(&[
                "topics",
                "produce",
                "--topic",
                "dbserver1.inventory.customers",
                "--schema",
                envelope,
            ]),
            &(changes + "\n"),
        );
    }
    let orders: String = [
        (1001, 2000),
        (1002, 2500),
        (1001, 4000),
        (1001, 6000),
        (1001, 8000),
    ]
    .iter()
    .map(|(c, t)| {
        format!(
            "{{\"customer_id\": {c}, \"amount\": 10.0, \"ts\": {}}}\n",
            t0 + t
        )
    })
    .collect();
    ok(
        cmd(&[
            "topics",
            "produce",
            "--topic",
            "orders",
            "--key-field",
            "customer_id",
            "--schema",
            d.join("order.avsc").to_str().unwrap(),
        ]),
        &orders,
    );
    let valid = ok(cmd(&["validate", "cdc.yaml"]), "");
    assert!(valid.contains("valid"), "{valid}");
    let run = ok(
        cmd(&[
            "run",
            "cdc.yaml",
            "--until-end",
            "--metrics-addr",
            "127.0.0.1:0",
        ]),
        "",
    );
    // The truncate, once read as a table and once as an event.
    assert!(run.contains("2 dead-lettered"), "the truncate: {run}");
    let dlq = ok(
        cmd(&[
            "topics",
            "consume",
            "--topic",
            "dbserver1.inventory.customers.dlq",
        ]),
        "",
    );
    assert!(
        dlq.contains("\"op\":\"t\"") || dlq.contains("\"op\": \"t\""),
        "{dlq}"
    );
    let rows = json_lines(&ok(
        cmd(&["topics", "consume", "--topic", "features.buyer"]),
        "",
    ));
    let last = |id: i64| {
        rows.iter()
            .rev()
            .find(|r| r["customer_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {rows:?}"))
            .clone()
    };
    // 1001 ordered as Sally (snapshot), as Sarah (after the update), while
    // deleted (no row: null), and as Sally again (created anew).
    let a = last(1001);
    assert_eq!(
        a["names_lifetime"],
        serde_json::json!(["Sally", "Sarah", "Sally"]),
        "{a}"
    );
    assert_eq!(a["unknown_lifetime"], 1, "{a}");
    assert_eq!(a["orders_lifetime"], 4, "{a}");
    assert_eq!(last(1002)["names_lifetime"], serde_json::json!(["George"]));
    // As events: every change counted in its database time order, a
    // delete carrying the row as it was (`before`).
    let history = json_lines(&ok(
        cmd(&["topics", "consume", "--topic", "features.history"]),
        "",
    ));
    let h = history.iter().rev().find(|r| r["id"] == 1001).unwrap();
    assert_eq!(h["changes_lifetime"], 4, "{h}");
    assert_eq!(h["deletes_lifetime"], 1, "{h}");
    assert_eq!(
        h["names_lifetime"],
        serde_json::json!(["Sally", "Sarah", "Sarah", "Sally"]),
        "{h}"
    );
    // A replay through the same code (the backfill path) agrees.
    for view in ["buyer", "history"] {
        let report = ok(
            cmd(&[
                "consistency",
                "cdc.yaml",
                "--view",
                view,
                "--sample",
                "10",
                "--json",
            ]),
            "",
        );
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        for f in report["features"].as_array().unwrap() {
            assert_eq!(f["mismatches"], 0, "{view}: {f}");
        }
    }
}
