//! Differential test of re-keyed views: a view keyed by `item` over events
//! keyed by `user`, computed by several tasks that exchange events as the
//! repartition topic would carry them (each origin's messages in order,
//! origins interleaved at random), must equal the same view computed by
//! one task over the same events keyed by `item` from the start.

use std::collections::BTreeMap;
use std::sync::Arc;

use apache_avro::Schema;
use proptest::prelude::*;

use super::task::shuffle::{Shuffled, owner};
use super::task::{Offer, Output, Probe, Row, Task, TaskConfig};
use super::value::Scalar;

const SCHEMA: &str = r#"{"type":"record","name":"E","fields":[
  {"name":"user","type":"long"},
  {"name":"ts","type":"long"},
  {"name":"n","type":["null","long"]},
  {"name":"item","type":["null","string"]}
]}"#;

const AGGREGATIONS: &str = r#"
    aggregations:
      - { name: cnt, op: count, windows: [100ms, "hopping 200ms every 50ms", "tumbling 150ms", "session 30ms", lifetime] }
      - { name: sum_n, op: sum, column: n, windows: [100ms, lifetime] }
      - { name: users, op: last_k, column: user, k: 3, windows: [100ms, lifetime] }
      - { name: nd_u, op: count_distinct, column: user, windows: ["session 30ms", lifetime] }
      - { name: first_n, op: first, column: n, windows: ["tumbling 150ms", lifetime] }
    derived_features:
      n_per_event: "sum_n_lifetime / NULLIF(cnt_lifetime, 0)"
"#;

/// The view under test, re-keyed (`key: item`), or the reference: the
/// same view over a source keyed by `item`.
fn config(rekeyed: bool, partitions: i32) -> Arc<TaskConfig> {
    let spec = if rekeyed {
        format!(
            "name: r\nsources:\n  events: {{ topic: events, key: user, event_time: ts, lateness: 40ms }}\nfeatures:\n  per_item:\n    source: events\n    key: item\n{AGGREGATIONS}"
        )
    } else {
        format!(
            "name: r\nsources:\n  events: {{ topic: events, key: item, event_time: ts, lateness: 40ms }}\nfeatures:\n  per_item:\n    source: events\n{AGGREGATIONS}"
        )
    };
    let loaded = crate::spec::parse(std::path::Path::new("r.yaml"), &spec).expect("parses");
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let plans = crate::spec::validate(&loaded, &|_| Ok(Some(schema.clone()))).expect("validates");
    assert_eq!(plans[0].rekeyed, rekeyed);
    let mut cfg = TaskConfig::new(&[("events".into(), 40)], &[], &plans).unwrap();
    cfg.partitions = partitions;
    Arc::new(cfg)
}

#[derive(Debug, Clone)]
struct Ev {
    user: i64,
    ts: i64,
    n: Option<i64>,
    item: Option<&'static str>,
}

fn row(e: &Ev, key: Scalar, offset: i64) -> Row {
    Row {
        ts: e.ts,
        source: 0,
        offset,
        key,
        columns: Box::new([
            Scalar::Long(e.user),
            Scalar::Long(e.ts),
            e.n.map_or(Scalar::Null, Scalar::Long),
            e.item.map_or(Scalar::Null, |i| Scalar::Str(i.into())),
        ]),
    }
}

/// Every key's last emitted row: the final table.
fn keep(table: &mut BTreeMap<String, (i64, Vec<Scalar>)>, out: &Output) {
    for (_, r) in &out.rows {
        table.insert(r.key.key_text(), (r.as_of, r.values.clone()));
    }
}

/// Hands messages over in the order `pick` chooses among origins, each
/// origin's in its own order.
fn deliver(
    tasks: &mut [Task],
    queues: &mut [Vec<(i32, Shuffled)>],
    pick: &mut dyn FnMut(usize) -> usize,
) {
    loop {
        let open: Vec<usize> = (0..queues.len())
            .filter(|o| !queues[*o].is_empty())
            .collect();
        if open.is_empty() {
            return;
        }
        let o = open[pick(open.len())];
        let (to, msg) = queues[o].remove(0);
        let got = tasks[to as usize].receive(msg, None);
        assert!(
            matches!(got, super::task::shuffle::Received::Accepted),
            "{got:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rekeyed_view_over_tasks_equals_the_view_keyed_so_from_the_start(
        raw in prop::collection::vec(
            (0i64..6, 0i64..400, prop::option::weighted(0.9, -5i64..5),
             prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c", "d"])),
             0i64..=40),
            1..150),
        batches in prop::collection::vec(1usize..30, 1..40),
        partitions in 1i32..4,
        seed in 0u64..10_000,
    ) {
        // Distinct times: ties are ordered by (origin, offset) re-keyed and
        // by offset here, which this test does not try to line up.
        let evs: Vec<(Ev, i64)> = raw
            .iter()
            .enumerate()
            .map(|(i, (user, ts, n, item, jitter))| {
                (Ev { user: *user, ts: ts * 200 + i as i64, n: *n, item: *item }, *jitter * 5)
            })
            .collect();
        // Arrival: event time plus jitter, within the lateness (40 ms), so
        // no event is late in either run.
        let mut arrival: Vec<usize> = (0..evs.len()).collect();
        arrival.sort_by_key(|i| (evs[*i].0.ts + evs[*i].1.min(39), *i));

        let mut s = seed;
        let mut pick = move |n: usize| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as usize) % n
        };

        // Re-keyed: events go to the task of their user.
        let cfg = config(true, partitions);
        let mut tasks: Vec<Task> = (0..partitions).map(|p| Task::new(cfg.clone(), p)).collect();
        let mut offsets = vec![0i64; partitions as usize];
        let mut table = BTreeMap::new();
        let mut rejected = 0usize;
        let mut at = 0;
        let mut step = |tasks: &mut Vec<Task>, finish: bool, table: &mut BTreeMap<_, _>, rejected: &mut usize| {
            let mut queues: Vec<Vec<(i32, Shuffled)>> = Vec::new();
            for t in tasks.iter_mut() {
                let out = if finish && !t.upstream_finished() {
                    t.finish(None, &[], None)
                } else {
                    t.advance(i64::MAX, &[], None)
                };
                *rejected += out.rejected.len();
                keep(table, &out);
                queues.push(out.shuffled);
            }
            deliver(tasks, &mut queues, &mut pick);
        };
        for b in &batches {
            for i in arrival.iter().skip(at).take(*b) {
                let e = &evs[*i].0;
                let p = owner(&Scalar::Long(e.user), partitions) as usize;
                let r = row(e, Scalar::Long(e.user), offsets[p]);
                offsets[p] += 1;
                prop_assert_eq!(tasks[p].offer(r), Offer::Accepted);
            }
            at += b;
            step(&mut tasks, false, &mut table, &mut rejected);
        }
        for i in arrival.iter().skip(at) {
            let e = &evs[*i].0;
            let p = owner(&Scalar::Long(e.user), partitions) as usize;
            let r = row(e, Scalar::Long(e.user), offsets[p]);
            offsets[p] += 1;
            prop_assert_eq!(tasks[p].offer(r), Offer::Accepted);
        }
        // Finish every task, then let the re-keyed views hear of it.
        for _ in 0..3 {
            step(&mut tasks, true, &mut table, &mut rejected);
        }
        prop_assert!(tasks.iter().all(|t| t.finished));
        // Events without an item have no key: rejected, each of them.
        let keyless = evs.iter().filter(|(e, _)| e.item.is_none()).count();
        prop_assert_eq!(rejected, keyless);

        // The reference: one task, keyed by item from the start.
        let reference_cfg = config(false, 1);
        let mut one = Task::new(reference_cfg, 0);
        let mut expected = BTreeMap::new();
        for (offset, i) in arrival.iter().enumerate() {
            let e = &evs[*i].0;
            let Some(item) = e.item else { continue };
            prop_assert_eq!(one.offer(row(e, Scalar::Str(item.into()), offset as i64)), Offer::Accepted);
        }
        // Finished at the latest event of any task (keyless ones too: the
        // origins' watermarks passed them).
        let last = evs.iter().map(|(e, _)| e.ts).max().unwrap();
        keep(&mut expected, &one.finish(Some(last), &[], None));
        let by_key = |t: &BTreeMap<String, (i64, Vec<Scalar>)>| -> BTreeMap<String, Vec<Scalar>> {
            t.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect()
        };
        prop_assert_eq!(by_key(&table), by_key(&expected));
        for (k, (as_of, _)) in &table {
            prop_assert_eq!(*as_of, last, "key {}", k);
        }
    }
}

/// Probed events' values of every view, by (event time, user): the rows a
/// model or a training set gets.
type Probed = BTreeMap<(i64, i64), Vec<Scalar>>;

fn keep_probed(probed: &mut Probed, order: &mut Vec<i64>, probe: &mut Probe) {
    let rows = probe.rows.take();
    for i in 0..rows.len() {
        let user = match &rows.keys[i] {
            Scalar::Long(u) => *u,
            Scalar::Str(item) => item.len() as i64 * -1000 - rows.offsets[i],
            other => panic!("{other:?}"),
        };
        let values = rows.features.iter().map(|c| c.get(i)).collect();
        probed.insert((rows.ts[i], user), values);
        order.push(rows.ts[i]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A model reading a re-keyed view gets, for each event, the view at
    /// the event's key as of just before it, from whichever task owns the
    /// key: equal to one task probing the view keyed so from the start,
    /// whatever the number of tasks, batching and interleaving; and each
    /// task's probed events come out in release order.
    #[test]
    fn probes_of_a_rekeyed_view_over_tasks_equal_the_view_keyed_so_from_the_start(
        raw in prop::collection::vec(
            (0i64..6, 0i64..400, prop::option::weighted(0.9, -5i64..5),
             prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c", "d"])),
             0i64..=40),
            1..120),
        batches in prop::collection::vec(1usize..30, 1..40),
        partitions in 1i32..4,
        seed in 0u64..10_000,
    ) {
        let evs: Vec<(Ev, i64)> = raw
            .iter()
            .enumerate()
            .map(|(i, (user, ts, n, item, jitter))| {
                (Ev { user: *user, ts: ts * 200 + i as i64, n: *n, item: *item }, *jitter * 5)
            })
            .collect();
        let mut arrival: Vec<usize> = (0..evs.len()).collect();
        arrival.sort_by_key(|i| (evs[*i].0.ts + evs[*i].1.min(39), *i));
        let mut s = seed;
        let mut pick = move |n: usize| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as usize) % n
        };
        let cfg = config(true, partitions);
        let mut tasks: Vec<Task> = (0..partitions).map(|p| Task::new(cfg.clone(), p)).collect();
        let mut probes: Vec<Probe> = (0..partitions)
            .map(|_| {
                let mut p = Probe::events(0, i64::MIN);
                p.lookups = true;
                p
            })
            .collect();
        let mut offsets = vec![0i64; partitions as usize];
        let mut probed = Probed::new();
        let mut orders: Vec<Vec<i64>> = vec![Vec::new(); partitions as usize];
        let mut step = |tasks: &mut Vec<Task>, probes: &mut Vec<Probe>, finish: bool, probed: &mut Probed, orders: &mut Vec<Vec<i64>>| {
            let mut queues: Vec<Vec<(i32, Shuffled)>> = Vec::new();
            for (p, t) in tasks.iter_mut().enumerate() {
                let out = if finish && !t.upstream_finished() {
                    t.finish(None, &[], Some(&mut probes[p]))
                } else {
                    t.advance(i64::MAX, &[], Some(&mut probes[p]))
                };
                keep_probed(probed, &mut orders[p], &mut probes[p]);
                queues.push(out.shuffled);
            }
            deliver(tasks, &mut queues, &mut pick);
        };
        let mut at = 0;
        for b in &batches {
            for i in arrival.iter().skip(at).take(*b) {
                let e = &evs[*i].0;
                let p = owner(&Scalar::Long(e.user), partitions) as usize;
                let r = row(e, Scalar::Long(e.user), offsets[p]);
                offsets[p] += 1;
                prop_assert_eq!(tasks[p].offer(r), Offer::Accepted);
            }
            at += b;
            step(&mut tasks, &mut probes, false, &mut probed, &mut orders);
        }
        for i in arrival.iter().skip(at) {
            let e = &evs[*i].0;
            let p = owner(&Scalar::Long(e.user), partitions) as usize;
            let r = row(e, Scalar::Long(e.user), offsets[p]);
            offsets[p] += 1;
            prop_assert_eq!(tasks[p].offer(r), Offer::Accepted);
        }
        for _ in 0..4 {
            step(&mut tasks, &mut probes, true, &mut probed, &mut orders);
        }
        prop_assert!(tasks.iter().all(|t| t.finished));
        // Every event probed once, each task's in release order.
        prop_assert_eq!(probed.len(), evs.len());
        for order in &orders {
            prop_assert!(order.is_sorted(), "{:?}", order);
        }

        // The reference: one task keyed by item, probing its events.
        let mut one = Task::new(config(false, 1), 0);
        let mut probe = Probe::events(0, i64::MIN);
        let mut by_item = Probed::new();
        for (offset, i) in arrival.iter().enumerate() {
            let e = &evs[*i].0;
            let Some(item) = e.item else { continue };
            prop_assert_eq!(one.offer(row(e, Scalar::Str(item.into()), offset as i64)), Offer::Accepted);
            let _ = one.advance(i64::MAX, &[], Some(&mut probe));
        }
        let _ = one.finish(None, &[], Some(&mut probe));
        let rows = probe.rows.take();
        for i in 0..rows.len() {
            let values: Vec<Scalar> = rows.features.iter().map(|c| c.get(i)).collect();
            by_item.insert((rows.ts[i], 0), values);
        }
        // Not vacuous: an item's lifetime count before each of its events
        // is the number of its earlier events.
        for ((ts, user), values) in &probed {
            let e = evs.iter().find(|(e, _)| e.ts == *ts && e.user == *user).expect("an event");
            if let Some(item) = e.0.item {
                let before = evs.iter().filter(|(o, _)| o.item == Some(item) && o.ts < *ts).count();
                prop_assert_eq!(&values[4], &Scalar::Long(before as i64), "cnt_lifetime at {}", ts);
            }
        }
        for ((ts, user), values) in &probed {
            let e = evs.iter().find(|(e, _)| e.ts == *ts && e.user == *user).expect("an event");
            match e.0.item {
                // No item: no key to read the view at, so nulls.
                None => prop_assert!(values.iter().all(Scalar::is_null), "{:?}", values),
                Some(_) => prop_assert_eq!(Some(values), by_item.get(&(*ts, 0)), "event at {}", ts),
            }
        }
    }
}

/// One event feeds two re-keyed views whose keys the same task owns: both
/// count it. (Their rows had the same position, so the second was taken
/// for a replay of the first and skipped.)
#[test]
fn two_rekeyed_views_of_one_event_owned_by_one_task_both_count_it() {
    let spec = "name: r\nsources:\n  events: { topic: events, key: user, event_time: ts, lateness: 40ms }\nfeatures:\n  per_item:\n    source: events\n    key: item\n    aggregations: [{ name: cnt, op: count, windows: [lifetime] }]\n  per_item_too:\n    source: events\n    key: item\n    aggregations: [{ name: cnt, op: count, windows: [lifetime] }]\n";
    let loaded = crate::spec::parse(std::path::Path::new("r.yaml"), spec).expect("parses");
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let plans = crate::spec::validate(&loaded, &|_| Ok(Some(schema.clone()))).expect("validates");
    let cfg = Arc::new(TaskConfig::new(&[("events".into(), 40)], &[], &plans).unwrap());
    let mut task = Task::new(cfg, 0);
    for (offset, ts) in [10, 20, 30].into_iter().enumerate() {
        let e = Ev {
            user: 1,
            ts,
            n: None,
            item: Some("a"),
        };
        assert_eq!(
            task.offer(row(&e, Scalar::Long(1), offset as i64)),
            Offer::Accepted
        );
    }
    let mut table: BTreeMap<(usize, String), Vec<Scalar>> = BTreeMap::new();
    let mut out = task.finish(None, &[], None);
    for _ in 0..3 {
        for (v, r) in &out.rows {
            table.insert((*v, r.key.key_text()), r.values.clone());
        }
        for (_, msg) in std::mem::take(&mut out.shuffled) {
            let got = task.receive(msg, None);
            assert!(
                matches!(got, super::task::shuffle::Received::Accepted),
                "{got:?}"
            );
        }
        out = task.advance(i64::MAX, &[], None);
    }
    assert!(task.finished);
    assert_eq!(table[&(0, "a".into())], [Scalar::Long(3)]);
    assert_eq!(table[&(1, "a".into())], [Scalar::Long(3)]);
}
