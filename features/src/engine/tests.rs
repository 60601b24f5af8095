//! Differential tests: the streaming engine against a plain batch
//! computation with polars over the same events.
//!
//! Random events are shuffled within the allowed lateness and cut into
//! random micro-batches. After every batch, every feature of every key, as
//! of the task's watermark, must equal what polars computes from scratch on
//! the events at or before that time. Exact operators must match exactly
//! (the float inputs are multiples of 0.5, so sums are exact too); float
//! moments within 1e-9 relative; sketches within their stated error.

use std::sync::Arc;

use apache_avro::Schema;
use polars::prelude::*;
use proptest::prelude::*;

use super::table::TableState;
use super::task::{Offer, Row, Task, TaskConfig};
use super::value::Scalar;
use crate::spec::validate::{Derived, FeaturePlan, OutType};
use crate::spec::{Op, Window};

const EVENT_SCHEMA: &str = r#"{"type":"record","name":"E","fields":[
  {"name":"user","type":"long"},
  {"name":"ts","type":"long"},
  {"name":"rating","type":["null","double"]},
  {"name":"n","type":["null","long"]},
  {"name":"item","type":["null","string"]}
]}"#;

const SPEC: &str = r#"
name: diff
sources:
  events: { topic: events, key: user, event_time: ts, lateness: 40ms }
features:
  v:
    source: events
    aggregations:
      - { name: cnt, op: count, windows: [100ms, "hopping 200ms every 50ms", "tumbling 150ms", "session 30ms", lifetime] }
      - { name: cnt_r, op: count, column: rating, windows: [100ms, lifetime] }
      - { name: sum_r, op: sum, column: rating, windows: [100ms, "hopping 200ms every 50ms", "tumbling 150ms", "session 30ms", lifetime] }
      - { name: sum_n, op: sum, column: n, windows: [100ms, lifetime] }
      - { name: mean_r, op: mean, column: rating, windows: [100ms, "tumbling 150ms", lifetime] }
      - { name: min_n, op: min, column: n, windows: [100ms, "hopping 200ms every 50ms", "session 30ms", lifetime] }
      - { name: max_r, op: max, column: rating, windows: [100ms, "tumbling 150ms", lifetime] }
      - { name: var_r, op: variance, column: rating, windows: [100ms, lifetime] }
      - { name: std_n, op: stddev, column: n, windows: [100ms, "session 30ms"] }
      - { name: first_i, op: first, column: item, windows: [100ms, "tumbling 150ms", lifetime] }
      - { name: last_i, op: last, column: item, windows: [100ms, "session 30ms", lifetime] }
      - { name: firstk_n, op: first_k, column: n, k: 3, windows: [100ms, lifetime] }
      - { name: lastk_i, op: last_k, column: item, k: 3, windows: [100ms, "tumbling 150ms", lifetime] }
      - { name: top_i, op: top_k, column: item, k: 2, windows: [100ms, "hopping 200ms every 50ms", lifetime] }
      - { name: nd_i, op: count_distinct, column: item, windows: [100ms, "session 30ms", lifetime] }
      - { name: hll_i, op: approx_count_distinct, column: item, windows: ["tumbling 150ms", "hopping 200ms every 50ms", lifetime] }
      - { name: p50_r, op: approx_percentile, column: rating, quantile: 0.5, windows: ["session 30ms", "hopping 200ms every 50ms", lifetime] }
      - { name: dec_r, op: decayed_sum, column: rating, half_life: 80ms, windows: [100ms, lifetime] }
    derived_features:
      mean_of_sums: "sum_r_100ms / NULLIF(cnt_r_100ms, 0)"
      # CAST: polars divides two longs as integers (flooring); eddy, as
      # DuckDB, gives a double. The reference is polars, so cast.
      n_per_item: "CAST(sum_n_lifetime AS DOUBLE) / NULLIF(nd_i_lifetime, 0)"
      busy: "cnt_r_lifetime > 3 AND (max_r_lifetime >= 4 OR min_n_lifetime IS NULL)"
      pick: "CASE WHEN cnt_r_100ms > 1 THEN max_r_100ms ELSE COALESCE(min_n_lifetime, -1) END"
      twice: "mean_of_sums * 2"
"#;

fn config() -> (Arc<TaskConfig>, Vec<FeaturePlan>) {
    let loaded = crate::spec::parse(std::path::Path::new("diff.yaml"), SPEC).expect("spec parses");
    let schema = Schema::parse_str(EVENT_SCHEMA).unwrap();
    let plans =
        crate::spec::validate(&loaded, &|_| Ok(Some(schema.clone()))).expect("spec validates");
    let features = plans[0].features.clone();
    let cfg = TaskConfig::new(&[("events".into(), 40)], &[], &plans).unwrap();
    (Arc::new(cfg), features)
}

#[derive(Debug, Clone)]
struct Ev {
    user: i64,
    ts: i64,
    rating: Option<f64>,
    n: Option<i64>,
    item: Option<String>,
}

fn event() -> impl Strategy<Value = Ev> {
    (
        0i64..4,
        0i64..1_000,
        prop::option::weighted(0.9, (1i64..=10).prop_map(|h| h as f64 * 0.5)),
        prop::option::weighted(0.9, -20i64..20),
        prop::option::weighted(
            0.9,
            prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]),
        ),
    )
        .prop_map(|(user, ts, rating, n, item)| Ev {
            user,
            ts,
            rating,
            n,
            item: item.map(str::to_string),
        })
}

/// Events with their arrival jitter (within the 40 ms lateness) and the
/// sizes of the micro-batches they arrive in.
fn scenario() -> impl Strategy<Value = (Vec<(Ev, i64)>, Vec<usize>)> {
    prop::collection::vec((event(), 0i64..=40), 1..250).prop_flat_map(|evs| {
        let n = evs.len();
        (
            Just(evs),
            prop::collection::vec(1usize..40, n.div_ceil(8)..=n),
        )
    })
}

fn frame(events: &[(usize, &Ev)]) -> DataFrame {
    df![
        "seq" => events.iter().map(|(s, _)| *s as i64).collect::<Vec<_>>(),
        "user" => events.iter().map(|(_, e)| e.user).collect::<Vec<_>>(),
        "ts" => events.iter().map(|(_, e)| e.ts).collect::<Vec<_>>(),
        "rating" => events.iter().map(|(_, e)| e.rating).collect::<Vec<_>>(),
        "n" => events.iter().map(|(_, e)| e.n).collect::<Vec<_>>(),
        "item" => events.iter().map(|(_, e)| e.item.clone()).collect::<Vec<_>>(),
    ]
    .unwrap()
}

/// The batch reference: one feature for every user, as of `t`.
fn reference(df: &DataFrame, f: &FeaturePlan, t: i64, users: &[i64]) -> Vec<Scalar> {
    // Which events count: a time range, per user for sessions.
    let mut lf = df.clone().lazy().filter(col("ts").lt_eq(lit(t)));
    match f.window {
        Window::Lifetime => {}
        Window::Session(gap) => {
            // The current session of each user, computed plainly: walk each
            // user's events backwards while gaps stay below `gap`.
            let mut bounds = Vec::new();
            for u in users {
                let sorted = df
                    .clone()
                    .lazy()
                    .filter(col("user").eq(lit(*u)).and(col("ts").lt_eq(lit(t))))
                    .sort(["ts"], Default::default())
                    .collect()
                    .unwrap();
                let ts: Vec<i64> = sorted
                    .column("ts")
                    .unwrap()
                    .i64()
                    .unwrap()
                    .into_no_null_iter()
                    .collect();
                let lower = match ts.last() {
                    Some(last) if t - last < gap.0 => {
                        let mut i = ts.len() - 1;
                        while i > 0 && ts[i] - ts[i - 1] < gap.0 {
                            i -= 1;
                        }
                        ts[i]
                    }
                    _ => i64::MAX,
                };
                bounds.push(lower);
            }
            let b = df!["user" => users.to_vec(), "lower" => bounds].unwrap();
            lf = lf
                .join(
                    b.lazy(),
                    [col("user")],
                    [col("user")],
                    JoinArgs::new(JoinType::Inner),
                )
                .filter(col("ts").gt_eq(col("lower")));
        }
        w => lf = lf.filter(col("ts").gt_eq(lit(w.lower_bound(t).unwrap()))),
    }
    let lf = lf.sort(["seq"], Default::default());
    let input = f.input.clone().unwrap_or_default();
    let c = || col(input.as_str());
    let agg: Expr = match f.op {
        Op::Count if f.input.is_none() => len(),
        Op::Count => c().count(),
        Op::Sum => c().sum(),
        Op::Mean => c().mean(),
        Op::Min => c().min(),
        Op::Max => c().max(),
        Op::Variance => c().var(1),
        Op::Stddev => c().std(1),
        Op::First => c().drop_nulls().first(),
        Op::Last => c().drop_nulls().last(),
        Op::FirstK => c().drop_nulls().head(Some(f.k)).implode(),
        Op::LastK => c().drop_nulls().tail(Some(f.k)).implode(),
        Op::CountDistinct | Op::ApproxCountDistinct => c().drop_nulls().n_unique(),
        Op::ApproxPercentile => c().drop_nulls().sort(Default::default()).implode(),
        Op::DecayedSum => {
            let h = f.half_life_ms as f64;
            (c() * (lit(t) - col("ts")).cast(DataType::Float64).map(
                move |age| Ok(age.f64()?.apply_values(|a| (-a / h).exp2()).into_column()),
                |_, field| Ok(field.clone()),
            ))
            .sum()
        }
        Op::TopK => {
            // Counts per (user, item), ranked by count then item.
            let counts = lf
                .clone()
                .filter(c().is_not_null())
                .group_by([col("user"), c().alias("v")])
                .agg([len().alias("cnt")])
                .sort_by_exprs(
                    [col("user"), col("cnt"), col("v")],
                    SortMultipleOptions::default()
                        .with_order_descending_multi([false, true, false]),
                )
                .group_by_stable([col("user")])
                .agg([col("v").head(Some(f.k))])
                .collect()
                .unwrap();
            return per_user(&counts, users, "v");
        }
    };
    let out = lf
        .group_by([col("user")])
        .agg([agg.alias("v")])
        .collect()
        .unwrap();
    per_user(&out, users, "v")
}

fn per_user(out: &DataFrame, users: &[i64], column: &str) -> Vec<Scalar> {
    let keys: Vec<i64> = out
        .column("user")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let vals = out.column(column).unwrap().as_materialized_series().clone();
    users
        .iter()
        .map(|u| match keys.iter().position(|k| k == u) {
            None => Scalar::Null,
            Some(i) => any_to_scalar(vals.get(i).unwrap()),
        })
        .collect()
}

fn any_to_scalar(v: AnyValue) -> Scalar {
    match v {
        AnyValue::Null => Scalar::Null,
        AnyValue::Int64(x) => Scalar::Long(x),
        AnyValue::UInt32(x) => Scalar::Long(x as i64),
        AnyValue::UInt64(x) => Scalar::Long(x as i64),
        AnyValue::Int32(x) => Scalar::Long(x as i64),
        AnyValue::Float64(x) => Scalar::Double(x),
        AnyValue::String(s) => Scalar::from(s),
        AnyValue::StringOwned(s) => Scalar::from(s.as_str()),
        AnyValue::List(s) => Scalar::List(s.iter().map(any_to_scalar).collect()),
        other => panic!("unexpected {other:?}"),
    }
}

/// What an empty window reads as, per operator (polars has no row for it).
fn empty(f: &FeaturePlan) -> Scalar {
    match f.op {
        Op::Count | Op::CountDistinct | Op::ApproxCountDistinct => Scalar::Long(0),
        Op::Sum if f.input_type == Some(crate::spec::ColumnType::Long) => Scalar::Long(0),
        Op::Sum | Op::DecayedSum => Scalar::Double(0.0),
        Op::FirstK | Op::LastK | Op::TopK => Scalar::List(Arc::from(Vec::new())),
        _ => Scalar::Null,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn check(f: &FeaturePlan, got: &Scalar, want: &Scalar, t: i64, user: i64) {
    let want = if want.is_null() {
        empty(f)
    } else {
        want.clone()
    };
    let ctx = || {
        format!(
            "{} of user {user} as of {t}: engine {got:?}, polars {want:?}",
            f.column
        )
    };
    if f.derived.is_some() {
        match (got, &want) {
            (Scalar::Double(a), Scalar::Double(b)) => assert!(close(*a, *b), "{}", ctx()),
            (a, b) => assert_eq!(a, b, "{}", ctx()),
        }
        return;
    }
    match f.op {
        Op::Mean | Op::Variance | Op::Stddev | Op::DecayedSum => match (got, &want) {
            (Scalar::Double(a), Scalar::Double(b)) => assert!(close(*a, *b), "{}", ctx()),
            (a, b) => assert_eq!(a, b, "{}", ctx()),
        },
        Op::ApproxCountDistinct => {
            let (Scalar::Long(a), Scalar::Long(b)) = (got, &want) else {
                panic!("{}", ctx())
            };
            // HLL at lg_k 12 is exact in its small-cardinality modes; allow
            // three standard errors anyway.
            assert!(
                (a - b).abs() as f64 <= (0.05 * *b as f64).max(1.0),
                "{}",
                ctx()
            );
        }
        Op::ApproxPercentile => {
            let Scalar::List(sorted) = &want else {
                assert_eq!(got, &Scalar::Null, "{}", ctx());
                return;
            };
            if sorted.is_empty() {
                assert_eq!(got, &Scalar::Null, "{}", ctx());
                return;
            }
            // The estimate must lie between the exact values at ranks
            // q - 0.1 and q + 0.1 (t-digest is near-exact at this size).
            let at = |q: f64| {
                sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
                    .clone()
            };
            let (lo, hi) = (
                at((f.quantile - 0.1).max(0.0)),
                at((f.quantile + 0.1).min(1.0)),
            );
            assert!(
                &lo <= got && got <= &hi,
                "{}: outside [{lo:?}, {hi:?}]",
                ctx()
            );
        }
        _ => assert_eq!(got, &want, "{}", ctx()),
    }
}

/// A derived feature by polars' SQL over the reference values of the
/// features before it (per user).
fn derived_reference(d: &Derived, before: &[FeaturePlan], wants: &[Vec<Scalar>]) -> Vec<Scalar> {
    let columns: Vec<Column> = before
        .iter()
        .zip(wants)
        .filter_map(|(f, values)| match OutType::of(f) {
            OutType::Plain(t) | OutType::Nullable(t) => Some(
                crate::engine::frame::to_series(&f.column, &t, values.iter().cloned())
                    .into_column(),
            ),
            OutType::Array(_) => None,
        })
        .collect();
    let out = DataFrame::new(columns)
        .unwrap()
        .lazy()
        .select([polars::sql::sql_expr(&d.sql).unwrap().alias("r")])
        .collect()
        .unwrap();
    crate::engine::frame::from_series(out.column("r").unwrap().as_materialized_series(), &d.ty)
        .unwrap()
}

fn run_scenario(events: &[(Ev, i64)], batches: &[usize]) {
    let (cfg, features) = config();
    let mut task = Task::new(cfg, 0);
    // Offsets are arrival positions; arrival order is time plus jitter.
    let mut arrival: Vec<(usize, &Ev, i64)> = events
        .iter()
        .enumerate()
        .map(|(i, (e, j))| (i, e, e.ts + j))
        .collect();
    arrival.sort_by_key(|(i, _, at)| (*at, *i));
    let tables: Vec<TableState> = Vec::new();
    let users: Vec<i64> = (0..4).collect();
    let mut offered: Vec<(usize, &Ev)> = Vec::new();
    let mut cursor: usize = 0;
    for size in batches.iter().copied().chain(std::iter::once(usize::MAX)) {
        let end = cursor.saturating_add(size).min(arrival.len());
        for (offset, (_, e, _)) in arrival[cursor..end].iter().enumerate() {
            let row = event_row(
                e.user,
                e.ts,
                (cursor + offset) as i64,
                [
                    e.rating.map_or(Scalar::Null, Scalar::Double),
                    e.n.map_or(Scalar::Null, Scalar::Long),
                    e.item.as_deref().map_or(Scalar::Null, Scalar::from),
                ],
            );
            assert_eq!(
                task.offer(row),
                Offer::Accepted,
                "no event is late within the lateness"
            );
            offered.push((cursor + offset, e));
        }
        cursor = end;
        let last = cursor >= arrival.len();
        let out = if last {
            task.finish(None, &tables, None)
        } else {
            task.advance(i64::MAX, &tables, None)
        };
        assert!(out.rejected.is_empty());
        let t = task.watermark();
        if t == i64::MIN {
            continue;
        }
        // Release order is (time, offset): the reference sorts by that too.
        let mut ordered: Vec<(usize, &Ev)> = offered.clone();
        ordered.sort_by_key(|(off, e)| (e.ts, *off));
        let seqd: Vec<(usize, &Ev)> = ordered
            .iter()
            .enumerate()
            .map(|(s, (_, e))| (s, *e))
            .collect();
        let df = frame(&seqd);
        // Per feature, per user: the reference value (an empty window's
        // where polars has no row), which derived features read.
        let mut wants: Vec<Vec<Scalar>> = Vec::new();
        for (fi, f) in features.iter().enumerate() {
            let want = match &f.derived {
                Some(d) => derived_reference(d, &features[..fi], &wants),
                None => reference(&df, f, t, &users)
                    .into_iter()
                    .map(|w| if w.is_null() { empty(f) } else { w })
                    .collect(),
            };
            wants.push(want.clone());
            for (u, user) in users.iter().enumerate() {
                let got = &task.view(0).values(&Scalar::Long(*user), t)[fi];
                check(f, got, &want[u], t, *user);
            }
        }
        // Emitted rows agree with the state they were read from.
        for (_, row) in out.rows {
            assert_eq!(row.as_of, t);
            assert_eq!(row.values, task.view(0).values(&row.key, t));
        }
        if last {
            break;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn streaming_windows_equal_a_batch_polars_computation((events, batches) in scenario()) {
        run_scenario(&events, &batches);
    }
}

/// An event of the test schema: user `key` at `ts`, then rating, n, item.
fn event_row(key: i64, ts: i64, offset: i64, rest: [Scalar; 3]) -> Row {
    let [rating, n, item] = rest;
    Row {
        ts,
        source: 0,
        offset,
        key: Scalar::Long(key),
        columns: vec![Scalar::Long(key), Scalar::Long(ts), rating, n, item].into(),
    }
}

#[test]
fn an_event_at_or_below_the_watermark_is_late_and_not_counted() {
    let (cfg, _) = config();
    let mut task = Task::new(cfg, 0);
    let row = |ts: i64, offset: i64| {
        event_row(
            1,
            ts,
            offset,
            [Scalar::Double(1.0), Scalar::Null, Scalar::Null],
        )
    };
    assert_eq!(task.offer(row(1_000, 0)), Offer::Accepted);
    task.advance(i64::MAX, &[], None);
    assert_eq!(task.watermark(), 1_000 - 40 - 1);
    // Exactly at the lateness bound: still on time.
    assert_eq!(task.offer(row(960, 1)), Offer::Accepted);
    assert_eq!(task.offer(row(959, 2)), Offer::Late { watermark: 959 });
    task.finish(None, &[], None);
    assert_eq!(
        task.view(0).values(&Scalar::Long(1), 1_000)[0],
        Scalar::Long(2)
    );
}

#[test]
fn windows_expire_as_time_passes_without_new_events() {
    let (cfg, features) = config();
    let mut task = Task::new(cfg, 0);
    let row = |key: i64, ts: i64, offset: i64| {
        event_row(
            key,
            ts,
            offset,
            [Scalar::Double(2.0), Scalar::Null, Scalar::Null],
        )
    };
    task.offer(row(1, 100, 0));
    task.offer(row(2, 120, 1));
    let out = task.advance(i64::MAX, &[], None);
    assert!(
        out.rows.is_empty(),
        "nothing is released before the watermark passes it"
    );
    // Only user 2 gets events; user 1's 100 ms window must still expire.
    task.offer(row(2, 300, 2));
    let out = task.advance(i64::MAX, &[], None);
    let cnt_100ms = features
        .iter()
        .position(|f| f.column == "cnt_100ms")
        .unwrap();
    let user1 = out
        .rows
        .iter()
        .find(|(_, r)| r.key == Scalar::Long(1))
        .expect("user 1 re-emitted by its timer");
    assert_eq!(user1.1.values[cnt_100ms], Scalar::Long(0));
    assert_eq!(user1.1.as_of, 300 - 41);
}

#[test]
fn a_checkpointed_task_continues_exactly_like_one_never_stopped() {
    let (cfg, _) = config();
    let mut a = Task::new(cfg.clone(), 0);
    let row = |key: i64, ts: i64, offset: i64| {
        let rest = [
            Scalar::Double((ts % 7) as f64 * 0.5),
            Scalar::Long(ts % 5),
            Scalar::from(["a", "b", "c"][(ts % 3) as usize]),
        ];
        event_row(key, ts, offset, rest)
    };
    let events: Vec<(i64, i64)> = (0..300).map(|i| (i % 3, (i * 37) % 1000 + i * 3)).collect();
    let mut sorted = events.clone();
    sorted.sort_by_key(|(_, ts)| *ts);
    for (i, (k, ts)) in sorted.iter().take(150).enumerate() {
        a.offer(row(*k, *ts, i as i64));
    }
    a.advance(i64::MAX, &[], None);
    let bytes = postcard::to_allocvec(&a.snapshot()).unwrap();
    let mut b = Task::restore(cfg, postcard::from_bytes(&bytes).unwrap());
    for (i, (k, ts)) in sorted.iter().enumerate().skip(150) {
        a.offer(row(*k, *ts, i as i64));
        b.offer(row(*k, *ts, i as i64));
    }
    let (oa, ob) = (a.finish(None, &[], None), b.finish(None, &[], None));
    assert_eq!(oa.rows, ob.rows);
    for k in 0..3 {
        assert_eq!(
            a.view(0).values(&Scalar::Long(k), a.watermark()),
            b.view(0).values(&Scalar::Long(k), b.watermark())
        );
    }
}

/// A view over (user, item, ts) joined with an items table, `missing` as
/// given, counting events and the last category seen.
fn join_task(missing: &str) -> Task {
    let spec = format!(
        "name: j
sources:
  events: {{ topic: events, key: user, event_time: ts }}
tables:
  items: {{ topic: items, key: item, versioned: true }}
features:
  v:
    source: events
    join: [{{ table: items, on: item, select: [cat], missing: {missing} }}]
    aggregations:
      - {{ name: n, op: count, windows: [lifetime] }}
      - {{ name: cat, op: last, column: cat, windows: [lifetime] }}
"
    );
    let loaded = crate::spec::parse(std::path::Path::new("j.yaml"), &spec).unwrap();
    let events = Schema::parse_str(
        r#"{"type":"record","name":"E","fields":[{"name":"user","type":"long"},{"name":"item","type":"long"},{"name":"ts","type":"long"}]}"#,
    )
    .unwrap();
    let items = Schema::parse_str(
        r#"{"type":"record","name":"I","fields":[{"name":"item","type":"long"},{"name":"cat","type":"string"}]}"#,
    )
    .unwrap();
    let plans = crate::spec::validate(&loaded, &|t| {
        Ok(Some(if t == "items" {
            items.clone()
        } else {
            events.clone()
        }))
    })
    .unwrap();
    let cfg = TaskConfig::new(
        &[("events".into(), 0)],
        &[("items".into(), vec!["item".into(), "cat".into()])],
        &plans,
    )
    .unwrap();
    Task::new(Arc::new(cfg), 0)
}

fn join_row(item: i64, ts: i64, offset: i64) -> Row {
    Row {
        ts,
        source: 0,
        offset,
        key: Scalar::Long(7),
        columns: vec![Scalar::Long(7), Scalar::Long(item), Scalar::Long(ts)].into(),
    }
}

#[test]
fn joins_read_the_version_valid_at_event_time_and_missing_rows_give_null_or_drop() {
    let mut table = TableState::new(true);
    table.upsert(
        Scalar::Long(1),
        100,
        Some(vec![Scalar::Long(1), Scalar::from("old")].into()),
    );
    table.upsert(
        Scalar::Long(1),
        200,
        Some(vec![Scalar::Long(1), Scalar::from("new")].into()),
    );
    let tables = [table];
    for (missing, count) in [("null", 4), ("drop", 2)] {
        let mut task = join_task(missing);
        task.offer(join_row(1, 90, 0)); // before the first version: missing
        task.offer(join_row(1, 150, 1)); // reads "old"
        task.offer(join_row(2, 160, 2)); // no such item
        task.offer(join_row(1, 250, 3)); // reads "new"
        task.finish(None, &tables, None);
        let values = task.view(0).values(&Scalar::Long(7), 250);
        assert_eq!(values[0], Scalar::Long(count), "missing: {missing}");
        assert_eq!(values[1], Scalar::from("new"));
        // The event at 150 saw the version valid then.
        let mut early = join_task(missing);
        early.offer(join_row(1, 150, 0));
        early.finish(None, &tables, None);
        assert_eq!(
            early.view(0).values(&Scalar::Long(7), 150)[1],
            Scalar::from("old")
        );
    }
}

#[test]
fn a_row_that_breaks_an_expression_is_rejected_alone_and_the_batch_still_counts() {
    let spec = "name: x
sources:
  events: { topic: events, key: user, event_time: ts }
features:
  v:
    source: events
    derive: { n: \"CAST(s AS BIGINT)\" }
    filter: \"n > 0\"
    aggregations:
      - { name: total, op: sum, column: n, windows: [lifetime] }
";
    let loaded = crate::spec::parse(std::path::Path::new("x.yaml"), spec).unwrap();
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"E","fields":[{"name":"user","type":"long"},{"name":"s","type":"string"},{"name":"ts","type":"long"}]}"#,
    )
    .unwrap();
    let plans = crate::spec::validate(&loaded, &|_| Ok(Some(schema.clone()))).unwrap();
    let cfg = Arc::new(TaskConfig::new(&[("events".into(), 0)], &[], &plans).unwrap());
    let mut task = Task::new(cfg, 0);
    for (i, s) in ["12", "not a number", "30", "-5"].iter().enumerate() {
        task.offer(Row {
            ts: 10 + i as i64,
            source: 0,
            offset: i as i64,
            key: Scalar::Long(1),
            columns: vec![
                Scalar::Long(1),
                Scalar::from(*s),
                Scalar::Long(10 + i as i64),
            ]
            .into(),
        });
    }
    let out = task.finish(None, &[], None);
    assert_eq!(out.rejected.len(), 1, "{:?}", out.rejected);
    assert_eq!(out.rejected[0].row.offset, 1);
    assert!(
        out.rejected[0].reason.contains("CAST(s AS BIGINT)"),
        "{}",
        out.rejected[0].reason
    );
    assert_eq!(
        task.view(0).values(&Scalar::Long(1), 13)[0],
        Scalar::Long(42)
    );
}

/// The leakage test: a label event and a feature event at the same time.
/// The training row of the label must count neither of them, nor anything
/// later, however the events are cut into batches.
#[test]
fn a_probed_event_sees_only_strictly_earlier_events_not_one_at_its_own_time() {
    use super::task::Probe;
    let (cfg, features) = config();
    let col = |name: &str| features.iter().position(|f| f.column == name).unwrap();
    let (lifetime, last_100ms) = (col("cnt_lifetime"), col("cnt_100ms"));
    let row = |ts: i64, offset: i64| {
        event_row(
            1,
            ts,
            offset,
            [Scalar::Double(1.0), Scalar::Null, Scalar::Null],
        )
    };
    let events = [row(400, 0), row(500, 1), row(500, 2), row(650, 3)];
    for cut in 0..=events.len() {
        let mut task = Task::new(cfg.clone(), 0);
        let mut probe = Probe::events(0, i64::MIN);
        for (i, e) in events.iter().enumerate() {
            task.offer(e.clone());
            if i + 1 == cut {
                task.advance(i64::MAX, &[], Some(&mut probe));
            }
        }
        task.finish(None, &[], Some(&mut probe));
        let rows = &probe.rows;
        let seen: Vec<(i64, i64, Scalar, Scalar)> = (0..rows.len())
            .map(|i| {
                (
                    rows.ts[i],
                    rows.offsets[i],
                    rows.features[lifetime].get(i),
                    rows.features[last_100ms].get(i),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (400, 0, Scalar::Long(0), Scalar::Long(0)),
                // Both events at 500 see only the one at 400, not each
                // other; and the 100 ms window at 500 is (400, 500), as
                // live: the event at exactly 500 - 100 has left it.
                (500, 1, Scalar::Long(1), Scalar::Long(0)),
                (500, 2, Scalar::Long(1), Scalar::Long(0)),
                // At 650 the 100 ms window holds (550, 650): nothing.
                (650, 3, Scalar::Long(3), Scalar::Long(0)),
            ],
            "batches cut after event {cut}"
        );
    }
}

#[test]
fn a_backfill_until_a_time_counts_nothing_after_it_and_probes_from_its_start() {
    use super::task::Probe;
    let (cfg, features) = config();
    let lifetime = features
        .iter()
        .position(|f| f.column == "cnt_lifetime")
        .unwrap();
    let mut task = Task::new(cfg, 0);
    let mut probe = Probe::events(0, 450);
    for (i, ts) in [400, 500, 600, 700, 900].into_iter().enumerate() {
        let r = event_row(
            1,
            ts,
            i as i64,
            [Scalar::Double(1.0), Scalar::Null, Scalar::Null],
        );
        task.offer(r);
        task.advance(650, &[], Some(&mut probe));
    }
    assert!(task.watermark() <= 650);
    let out = task.finish(Some(650), &[], Some(&mut probe));
    let probed: Vec<i64> = probe.rows.ts.clone();
    assert_eq!(probed, vec![500, 600], "labels in [from, until] only");
    let (_, last) = out.rows.last().expect("the final table");
    assert_eq!(last.as_of, 650);
    assert_eq!(last.values[lifetime], Scalar::Long(3));
}

/// Regression: a training row counted an event the live window had already
/// evicted. The probe read as of `t - 1`, whose 100 ms window is
/// `(t - 101, t - 1]` and so holds an event at exactly `t - 100`; the live
/// window at `t` is `(t - 100, t]`. A training row must hold what the live
/// table holds at `t` less the events at `t`, for every window kind, with
/// events placed on the boundaries (times are multiples of 10 ms, the
/// windows multiples of 50 ms).
#[test]
fn training_row_counted_an_event_the_live_window_had_evicted() {
    use super::task::Probe;
    let (cfg, _) = config();
    let boundary_events = prop::collection::vec((0i64..3, 0i64..60, 1i64..=4), 1..60);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&boundary_events, |mut events| {
            // In time order: these are about boundaries, not lateness.
            events.sort_by_key(|e| e.1);
            let rows: Vec<Row> = events
                .iter()
                .enumerate()
                .map(|(i, (user, t, r))| {
                    event_row(
                        *user,
                        t * 10,
                        i as i64,
                        [
                            Scalar::Double(*r as f64 * 0.5),
                            Scalar::Long(*r),
                            Scalar::Str(format!("i{r}").into()),
                        ],
                    )
                })
                .collect();
            let mut task = Task::new(cfg.clone(), 0);
            let mut probe = Probe::events(0, i64::MIN);
            for r in &rows {
                task.offer(r.clone());
            }
            task.finish(None, &[], Some(&mut probe));
            let probed = &probe.rows;
            prop_assert_eq!(probed.ts.len(), rows.len());
            for i in 0..probed.ts.len() {
                let (t, offset) = (probed.ts[i], probed.offsets[i]);
                let key = rows[offset as usize].key.clone();
                // The live table at watermark t, fed every event before t.
                let mut live = Task::new(cfg.clone(), 0);
                for r in rows.iter().filter(|r| r.ts < t) {
                    live.offer(r.clone());
                }
                live.release_to(t, &[], None);
                let expected = live.view(0).values(&key, t);
                let got: Vec<Scalar> = probed.features.iter().map(|c| c.get(i)).collect();
                prop_assert_eq!(got, expected, "label at {} (offset {})", t, offset);
            }
            Ok(())
        })
        .unwrap();
}
