//! Delayed labels in a training set: `eddy backfill --model M` for a model
//! whose label arrives later (a click after its view).
//!
//! The live learner holds each example until a label event with the same
//! key (and `on` value) arrives within the window, or the window ends.
//! This does the same over the replay, with the same joiner and the same
//! steps per event ([`crate::engine::delayed::feed`]), one joiner per
//! partition fed in release order; so a row's label is the one the live
//! model learned from. What it holds is the example's whole training row
//! (key, time, offset, its own columns and every feature as of just before
//! it), written once resolved.
//!
//! Where history ends, examples whose window has not ended have no label
//! yet: they are left out and counted, never written as negatives.

use std::collections::BTreeMap;

use crate::engine::delayed::DelayedPlan;
use crate::engine::delayed::{JoinKey, LabelJoiner, Resolved, feed, join_key};
use crate::engine::frame::ColumnBuilder;
use crate::engine::task::ProbedRows;
use crate::engine::value::Scalar;

use super::training::{Labeled, Labeler};

/// An example waiting for its label: its training row.
#[derive(Debug, Clone)]
pub struct Held {
    key: Scalar,
    ts: i64,
    offset: i64,
    source: usize,
    /// The event's own columns (and joined ones).
    columns: Box<[Scalar]>,
    features: Vec<Scalar>,
}

/// The delayed labels of one training set.
pub struct DelayedSet {
    plan: DelayedPlan,
    /// The label source's index among the replay's sources.
    pub source: usize,
    /// Which label-source events are labels (its `filter`, or every one).
    pub marks: Labeler,
    joiners: BTreeMap<i32, LabelJoiner<JoinKey, Held>>,
    /// Examples whose `on` column is null: they cannot be labeled.
    pub null_on: u64,
}

/// What the delayed labels came to, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelayedCounts {
    /// Examples still waiting where history ended: left out.
    pub undetermined: u64,
    /// Label events that matched no waiting example.
    pub unmatched: u64,
    /// Examples resolved early as negatives (`max_pending` reached).
    pub evicted: u64,
    /// Examples whose `on` value is null: left out.
    pub null_on: u64,
}

impl DelayedSet {
    /// Delayed labels as `plan` says; `source` is the label source's index.
    pub fn new(plan: DelayedPlan, source: usize) -> Result<DelayedSet, String> {
        let marks = Labeler::new(
            plan.filter.as_deref().unwrap_or("TRUE"),
            None,
            plan.source_columns.clone(),
        )
        .map_err(|e| format!("the delayed label's filter: {e}"))?;
        Ok(DelayedSet {
            plan,
            source,
            marks,
            joiners: BTreeMap::new(),
            null_on: 0,
        })
    }

    /// Feeds a partition's probed rows, in release order: label events of
    /// the label source resolve examples, and `examples` (the rows that
    /// are examples, with their labeled columns) wait. Returns the rows
    /// resolved, with their labels (true: the label arrived in time).
    pub fn feed(
        &mut self,
        partition: i32,
        rows: &ProbedRows,
        examples: &mut dyn FnMut(usize) -> Option<Box<[Scalar]>>,
        example_source: usize,
    ) -> (ProbedRows, Vec<Option<Labeled>>) {
        let joiner = self
            .joiners
            .entry(partition)
            .or_insert_with(|| LabelJoiner::new(self.plan.within_ms, self.plan.max_pending));
        let on = self.plan.on;
        let mut resolved: Vec<Resolved<Held>> = Vec::new();
        let mut out = ProbedRows {
            features: rows
                .features
                .iter()
                .map(ColumnBuilder::empty_like)
                .collect(),
            ..ProbedRows::default()
        };
        let mut labels = Vec::new();
        for i in 0..rows.len() {
            let mut label = None;
            if rows.sources[i] == self.source
                && let Some((Scalar::Bool(true), columns)) =
                    self.marks.take(partition, rows.offsets[i])
            {
                label = join_key(&rows.keys[i], on.map(|(_, c)| &columns[c]));
            }
            let mut example = None;
            if rows.sources[i] == example_source
                && let Some(columns) = examples(i)
            {
                match join_key(&rows.keys[i], on.map(|(c, _)| &columns[c])) {
                    Some(k) => {
                        let held = Held {
                            key: rows.keys[i].clone(),
                            ts: rows.ts[i],
                            offset: rows.offsets[i],
                            source: rows.sources[i],
                            columns,
                            features: rows.features.iter().map(|f| f.get(i)).collect(),
                        };
                        example = Some((k, held, 0.0));
                    }
                    None => self.null_on += 1,
                }
            }
            feed(joiner, rows.ts[i], label, example, &mut resolved);
            for r in resolved.drain(..) {
                let h = r.features;
                out.keys.push(h.key);
                out.ts.push(h.ts);
                out.offsets.push(h.offset);
                out.sources.push(h.source);
                for (column, v) in out.features.iter_mut().zip(h.features) {
                    column.push(v);
                }
                labels.push(Some((Scalar::Bool(r.label > 0.0), h.columns)));
            }
        }
        (out, labels)
    }

    /// What the labels came to; examples still waiting are left out.
    pub fn counts(&self) -> DelayedCounts {
        let mut c = DelayedCounts {
            null_on: self.null_on,
            ..DelayedCounts::default()
        };
        for j in self.joiners.values() {
            c.undetermined += j.len() as u64;
            c.unmatched += j.unmatched;
            c.evicted += j.evicted;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ColumnType;
    use proptest::prelude::*;

    /// (ts step, user, item, is click) per event, in release order.
    type Events = Vec<(i64, i64, i64, bool)>;

    const WITHIN: i64 = 50;

    /// The plain definition: a view is clicked if the next event of the
    /// same (user, item) after it, view or click, is a click within the
    /// window. Unknown (None) if nothing resolves it and history ends
    /// inside its window.
    fn reference(events: &[(i64, i64, i64, bool)]) -> Vec<(usize, Option<bool>)> {
        let last = events.last().map_or(0, |e| e.0);
        let mut out = Vec::new();
        for (i, &(ts, user, item, click)) in events.iter().enumerate() {
            if click {
                continue;
            }
            let next = events[i + 1..]
                .iter()
                .find(|e| (e.1, e.2) == (user, item) || e.0 > ts + WITHIN);
            let label = match next {
                Some(e) if e.0 > ts + WITHIN => Some(false),
                Some(e) => Some(e.3),
                None if last > ts + WITHIN => Some(false),
                None => None,
            };
            out.push((i, label));
        }
        out
    }

    fn rows(events: &[(i64, i64, i64, bool)]) -> (ProbedRows, Vec<Box<[Scalar]>>) {
        let mut r = ProbedRows {
            features: vec![ColumnBuilder::new(&ColumnType::Long, 0)],
            ..ProbedRows::default()
        };
        let mut columns = Vec::new();
        for (i, &(ts, user, item, click)) in events.iter().enumerate() {
            r.keys.push(Scalar::Long(user));
            r.ts.push(ts);
            r.offsets.push(i as i64);
            r.sources.push(0);
            // The "feature" is the event's index, to find the row again.
            r.features[0].push(Scalar::Long(i as i64));
            let kind = if click { "click" } else { "view" };
            columns.push(
                vec![
                    Scalar::Long(user),
                    Scalar::Long(item),
                    Scalar::Str(kind.into()),
                ]
                .into_boxed_slice(),
            );
        }
        (r, columns)
    }

    fn set() -> DelayedSet {
        let source_columns = [
            ("user", ColumnType::Long),
            ("item", ColumnType::Long),
            ("kind", ColumnType::String),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
        let plan = DelayedPlan {
            source: "events".into(),
            filter: Some("kind = 'click'".into()),
            source_columns,
            within_ms: WITHIN,
            on: Some((1, 1)),
            max_pending: 1_000_000,
        };
        DelayedSet::new(plan, 0).unwrap()
    }

    fn events() -> impl Strategy<Value = Events> {
        prop::collection::vec((0i64..30, 0i64..3, 0i64..3, any::<bool>()), 0..200).prop_map(
            |steps| {
                let mut ts = 0;
                steps
                    .into_iter()
                    .map(|(step, u, i, c)| {
                        ts += step;
                        (ts, u, i, c)
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// The training set's labels, fed in batches of any size, are the
        /// plain definition's; unknown ones are left out and counted.
        #[test]
        fn delayed_labels_of_a_training_set_match_the_plain_definition(
            events in events(),
            batch in 1usize..50,
        ) {
            let mut d = set();
            let (all, columns) = rows(&events);
            let mut got = Vec::new();
            let mut start = 0;
            while start < events.len() {
                let end = (start + batch).min(events.len());
                let mut part = ProbedRows {
                    features: vec![ColumnBuilder::new(&ColumnType::Long, 0)],
                    ..ProbedRows::default()
                };
                for i in start..end {
                    part.keys.push(all.keys[i].clone());
                    part.ts.push(all.ts[i]);
                    part.offsets.push(all.offsets[i]);
                    part.sources.push(0);
                    part.features[0].push(all.features[0].get(i));
                }
                d.marks.label(
                    (start..end)
                        .map(|i| (0, i as i64, columns[i].clone()))
                        .collect(),
                );
                let mut example = |i: usize| {
                    let c = &columns[start + i];
                    (c[2] == Scalar::Str("view".into())).then(|| c.clone())
                };
                let (out, labels) = d.feed(0, &part, &mut example, 0);
                for (j, l) in labels.into_iter().enumerate() {
                    let Scalar::Long(i) = out.features[0].get(j) else { panic!() };
                    let Some((Scalar::Bool(b), _)) = l else { panic!() };
                    got.push((i as usize, Some(b)));
                }
                start = end;
            }
            let mut want = reference(&events);
            let unknown = want.iter().filter(|w| w.1.is_none()).count() as u64;
            want.retain(|w| w.1.is_some());
            got.sort();
            prop_assert_eq!(got, want);
            prop_assert_eq!(d.counts().undetermined, unknown);
        }
    }
}
