//! The exchange alone: release order independent of how origins'
//! messages interleave, replays skipped, lateness after idleness.

use super::*;

fn row(origin: i32, ts: i64, offset: i64, key: i64) -> Shuffled {
    Shuffled::Row(ShuffledRow {
        view: 0,
        origin,
        ts,
        source: 0,
        offset,
        key: Scalar::Long(key),
        inputs: Box::new([Scalar::Long(offset)]),
    })
}

fn mark(origin: i32, watermark: i64, state: OriginState) -> Shuffled {
    Shuffled::Mark {
        origin,
        watermark,
        state,
    }
}

/// Each origin's messages in its order; `pick` chooses which origin's
/// next message arrives next.
fn interleave(streams: &[Vec<Shuffled>], pick: &mut dyn FnMut(usize) -> usize) -> Vec<Shuffled> {
    let mut at = vec![0; streams.len()];
    let mut out = Vec::new();
    loop {
        let open: Vec<usize> = (0..streams.len())
            .filter(|o| at[*o] < streams[*o].len())
            .collect();
        if open.is_empty() {
            return out;
        }
        let o = open[pick(open.len())];
        out.push(streams[o][at[o]].clone());
        at[o] += 1;
    }
}

/// Releases after every message; returns every (ts, origin, offset) in the
/// order released.
fn run(messages: Vec<Shuffled>, origins: i32) -> Vec<(i64, i32, i64)> {
    let mut x = Exchange::new(origins);
    let mut released = Vec::new();
    for m in messages {
        let got = x.receive(m, None);
        assert!(!matches!(got, Received::Late { .. }), "{got:?}");
        let w = x.all_finished().or(x.allowed());
        if let Some(w) = w
            && w > x.watermark
        {
            released.extend(x.release(w).into_iter().map(|r| (r.ts, r.origin, r.offset)));
        }
    }
    released
}

proptest::proptest! {
    /// Whatever order the topic interleaves origins in, the rows are
    /// released in the same order, every one of them: what makes a live
    /// re-keyed view equal to its backfill.
    #[test]
    fn release_order_does_not_depend_on_interleaving(
        times in proptest::collection::vec(proptest::collection::vec(0i64..50, 0..30), 1..4),
        seed_a in 0u64..1000,
        seed_b in 0u64..1000,
    ) {
        let origins = times.len() as i32;
        // Each origin releases its (sorted) rows in batches, each batch
        // followed by its mark, then finishes.
        let streams: Vec<Vec<Shuffled>> = times
            .iter()
            .enumerate()
            .map(|(o, ts)| {
                let mut ts = ts.clone();
                ts.sort_unstable();
                let mut out = Vec::new();
                for (i, t) in ts.iter().enumerate() {
                    out.push(row(o as i32, *t, i as i64, *t % 3));
                    // Everything up to just before this time is out (a
                    // later row may share it).
                    if i % 4 == 3 {
                        out.push(mark(o as i32, *t - 1, OriginState::Live));
                    }
                }
                out.push(mark(o as i32, ts.last().copied().unwrap_or(0), OriginState::Finished));
                out
            })
            .collect();
        let lcg = |seed: u64| {
            let mut s = seed;
            move |n: usize| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as usize) % n
            }
        };
        let a = run(interleave(&streams, &mut lcg(seed_a)), origins);
        let b = run(interleave(&streams, &mut lcg(seed_b)), origins);
        let total: usize = times.iter().map(Vec::len).sum();
        proptest::prop_assert_eq!(a.len(), total);
        proptest::prop_assert_eq!(&a, &b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        proptest::prop_assert_eq!(a, sorted);
    }
}

/// An origin restarted from an older checkpoint sends its rows again: the
/// exchange skips those it already has, and takes the new ones.
#[test]
fn rows_replayed_by_a_restarted_origin_are_skipped() {
    let mut x = Exchange::new(1);
    assert_eq!(x.receive(row(0, 10, 0, 1), Some(0)), Received::Accepted);
    assert_eq!(x.receive(row(0, 11, 1, 1), Some(1)), Received::Accepted);
    assert_eq!(x.receive(row(0, 10, 0, 1), Some(2)), Received::Duplicate);
    assert_eq!(x.receive(row(0, 11, 1, 1), Some(3)), Received::Duplicate);
    assert_eq!(x.receive(row(0, 12, 2, 1), Some(4)), Received::Accepted);
    assert_eq!(x.next_offset, Some(5));
    x.receive(mark(0, 12, OriginState::Live), Some(5));
    assert_eq!(x.release(x.allowed().unwrap()).len(), 3);
}

/// Nothing is released until every origin has been heard from: an origin
/// that said nothing yet may still send the oldest event.
#[test]
fn an_unheard_origin_holds_the_watermark_back() {
    let mut x = Exchange::new(2);
    x.receive(row(0, 5, 0, 1), None);
    x.receive(mark(0, 5, OriginState::Live), None);
    assert_eq!(x.allowed(), None);
    x.receive(mark(1, 3, OriginState::Live), None);
    assert_eq!(x.allowed(), Some(3));
    x.receive(mark(1, 9, OriginState::Idle), None);
    assert_eq!(x.allowed(), Some(5));
}

/// An idle origin does not hold others back; if it comes back with an
/// event older than what was released, that event is late, and said so.
#[test]
fn an_event_from_an_origin_back_from_idle_below_the_watermark_is_late() {
    let mut x = Exchange::new(2);
    x.receive(mark(1, i64::MIN, OriginState::Idle), None);
    x.receive(row(0, 20, 0, 1), None);
    x.receive(mark(0, 20, OriginState::Live), None);
    assert_eq!(x.release(x.allowed().unwrap()).len(), 1);
    assert_eq!(
        x.receive(row(1, 15, 0, 1), None),
        Received::Late { watermark: 20 }
    );
}

/// Every message survives the repartition topic's encoding.
#[test]
fn messages_round_trip_through_postcard() {
    let answer = Shuffled::Answer(Answer {
        view: 2,
        ts: 9,
        source: 1,
        offset: 4,
        values: Some(vec![Scalar::Long(3), Scalar::Null]),
    });
    for m in [
        row(3, -5, 7, 42),
        mark(1, i64::MIN, OriginState::Unknown),
        lookup(2, 8, 1),
        answer,
    ] {
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Shuffled>(&bytes).unwrap(), m);
    }
}

/// Regression: a second bounded run (new records after a finished one)
/// finished the re-keyed views at once, on the origins' `Finished` marks of
/// the first run, and stopped before the new rows arrived: they were never
/// counted. A row from a finished origin means it runs again.
#[test]
fn a_finished_exchange_waits_for_an_origin_that_runs_again() {
    let mut x = Exchange::new(2);
    x.receive(mark(0, 10, OriginState::Finished), None);
    x.receive(mark(1, 12, OriginState::Finished), None);
    let end = x.all_finished().unwrap();
    x.release(end);
    x.finished = true;
    // The same mark again changes nothing.
    x.receive(mark(1, 12, OriginState::Finished), None);
    assert!(x.finished);
    // The next run: origin 0 sends a row.
    assert_eq!(x.receive(row(0, 20, 5, 1), None), Received::Accepted);
    assert!(!x.finished);
    assert_eq!(x.all_finished(), None, "origin 0 runs again");
    x.receive(mark(0, 20, OriginState::Finished), None);
    assert_eq!(x.all_finished(), Some(20));
    assert_eq!(x.release(20).len(), 1);
}

fn lookup(origin: i32, ts: i64, offset: i64) -> Shuffled {
    Shuffled::Lookup(Lookup {
        view: 0,
        origin,
        ts,
        source: 0,
        offset,
        key: Scalar::Long(7),
    })
}

/// A model's read of a re-keyed view that reaches the owner after its
/// watermark passed the event (the asking task was idle meanwhile) cannot
/// be answered as of just before the event: it is answered without values,
/// counted late where it arrived, and the waiting event goes on with nulls
/// rather than wait forever.
#[test]
fn a_lookup_after_the_watermark_is_answered_with_nulls_and_counted_late() {
    let mut owner = Exchange::new(2);
    owner.receive(mark(0, 100, OriginState::Live), None);
    owner.receive(mark(1, i64::MIN, OriginState::Idle), None);
    let w = owner.allowed().unwrap();
    owner.release(w);
    assert_eq!(
        owner.receive(lookup(1, 50, 3), None),
        Received::Late { watermark: 100 }
    );
    let (to, answer) = owner.answers.pop().expect("an answer");
    assert_eq!((to, answer.values.clone()), (1, None));

    let mut asking = Exchange::new(2);
    asking.waiting.push_back(Waiting {
        row: Row {
            ts: 50,
            source: 0,
            offset: 3,
            key: Scalar::Long(1),
            columns: Box::new([]),
        },
        values: vec![Scalar::Long(9), Scalar::Null],
        missing: vec![(0, 1, 1)],
    });
    assert!(asking.ready().is_empty(), "waits for its answer");
    assert_eq!(
        asking.receive(Shuffled::Answer(answer.clone()), None),
        Received::Accepted
    );
    let ready = asking.ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].values, [Scalar::Long(9), Scalar::Null]);
    // The same answer again (the owner replayed it) finds nobody waiting:
    // kept in case its event comes, dropped once the watermark passes it.
    assert_eq!(
        asking.receive(Shuffled::Answer(answer), None),
        Received::Accepted
    );
    assert_eq!(asking.prune_early(49), 0);
    assert_eq!(asking.prune_early(50), 1);
    assert_eq!(asking.take_early(50, 0, 3, 0), None);
}

/// Probed events leave in whole timestamps: a model that learned part of
/// a time's events would skip the rest as replays after a restart.
#[test]
fn waiting_events_leave_a_whole_timestamp_at_a_time() {
    let mut x = Exchange::new(1);
    for (offset, ts) in [(0, 10), (1, 10), (2, 20)] {
        x.waiting.push_back(Waiting {
            row: Row {
                ts,
                source: 0,
                offset,
                key: Scalar::Long(1),
                columns: Box::new([]),
            },
            values: vec![Scalar::Null],
            missing: vec![(0, 0, 1)],
        });
    }
    let answer = |ts, offset| {
        Shuffled::Answer(Answer {
            view: 0,
            ts,
            source: 0,
            offset,
            values: Some(vec![Scalar::Long(offset)]),
        })
    };
    x.receive(answer(10, 0), None);
    x.receive(answer(20, 2), None);
    assert!(x.ready().is_empty(), "the second event at 10 still waits");
    x.receive(answer(10, 1), None);
    let ready: Vec<i64> = x.ready().iter().map(|w| w.row.offset).collect();
    assert_eq!(ready, [0, 1, 2]);
    assert!(x.waiting.is_empty());
}
