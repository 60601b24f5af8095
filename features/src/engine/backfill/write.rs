//! What a backfill keeps and writes: each task's final rows to the
//! sinks and its probed label events to the training set, spread over the
//! machine's cores in task order, the manifest beside the outputs, and an
//! earlier run's files cleared first.

use super::*;

impl Backfill {
    /// Keeps what a task gave: final rows into `sinks`, probed label events
    /// into the training set; counts rejected rows.
    pub(super) fn take(
        &mut self,
        partition: i32,
        out: Output,
        probe: &mut Probe,
        sinks: Option<&mut Vec<ParquetSink>>,
    ) -> Result<(), JobError> {
        for r in &out.rejected {
            self.summary.rejected += 1;
            self.summary.first_problem.get_or_insert(format!(
                "partition {partition} offset {}: {}",
                r.row.offset, r.reason
            ));
        }
        if let Some(sinks) = sinks {
            for (v, row) in out.rows {
                self.summary.feature_rows += 1;
                sinks[v].push(partition, row);
            }
        }
        if let Some(l) = &mut self.labels {
            let rows = probe.rows.take();
            let tables = &self.inputs.table_state;
            let joined = &l.joined;
            let labeler = &mut l.labeler;
            // A label event's label and its own columns, with the table
            // columns joined as of its time.
            let mut labeled = |o: i64, ts: i64| -> Option<Labeled> {
                let (label, cols) = labeler.take(partition, o)?;
                if joined.is_empty() {
                    return Some((label, cols));
                }
                let joins = joined.iter().map(|(t, on, c, _)| (*t, *on, *c));
                Some((label, append_joined(tables, joins, cols, ts)))
            };
            let (rows, labels) = match &mut l.delayed {
                None => {
                    let labels = rows
                        .offsets
                        .iter()
                        .zip(&rows.ts)
                        .map(|(o, ts)| labeled(*o, *ts))
                        .collect();
                    (rows, labels)
                }
                Some((d, _)) => {
                    // Examples are the label source's events its filter
                    // keeps; their label comes later.
                    let mut example = |i: usize| match labeled(rows.offsets[i], rows.ts[i]) {
                        Some((Scalar::Bool(true), cols)) => Some(cols),
                        _ => None,
                    };
                    d.feed(partition, &rows, &mut example, l.source)
                }
            };
            l.writer
                .push(partition, rows, labels)
                .map_err(JobError::Output)?;
        }
        Ok(())
    }

    /// Hands each task's re-keyed events and marks to the tasks they are
    /// for, in task order: the repartition topic of a live job, in memory.
    /// The receiving side is the live one, so the order it releases in is
    /// the same.
    pub(super) fn exchange(&mut self, outs: &mut [(i32, Output)]) {
        for (_, out) in outs.iter_mut() {
            for (to, msg) in std::mem::take(&mut out.shuffled) {
                let Some(task) = self.tasks.get_mut(&to) else {
                    continue;
                };
                let row = match &msg {
                    crate::engine::task::shuffle::Shuffled::Row(r) => Some(r.as_row()),
                    _ => None,
                };
                if let crate::engine::task::shuffle::Received::Late { watermark } =
                    task.receive(msg, None)
                {
                    self.summary.late += 1;
                    if let Some(r) = row {
                        self.summary.first_problem.get_or_insert(format!(
                            "partition {to}: a re-keyed event at {} came after the watermark {watermark}",
                            r.ts
                        ));
                    }
                }
            }
        }
    }

    /// `manifest.json` next to the outputs: what was replayed and where
    /// everything went, for notebooks and for the next person.
    pub(super) fn write_manifest(&self) -> Result<(), JobError> {
        let s = &self.summary;
        let manifest = serde_json::json!({
            "from": self.options.from,
            "until": self.options.until,
            "labels": self.options.labels.as_ref().map(|l| serde_json::json!({"source": l.source, "expr": l.expr, "filter": l.filter, "model": l.model})),
            "events": s.events,
            "late": s.late,
            "undecodable": s.undecodable,
            "rejected": s.rejected,
            "feature_rows": s.feature_rows,
            "feature_files": s.feature_files,
            "training_rows": s.training_rows,
            "training_files": s.training_files,
            "training_columns": s.training_columns,
            "views": self.inputs.plans.iter().map(|p| &p.name).collect::<Vec<_>>(),
        });
        self.out
            .put(
                "manifest.json",
                serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
            )
            .map_err(JobError::Store)
    }
}

/// Runs `step` on every task with its probe, spread over the machine's
/// cores. Tasks are independent: each owns its state, and tables are only
/// read during a replay (they were loaded before it started). Outputs come
/// back in task order, so what is written does not depend on threads.
pub(super) fn on_every_task<F>(
    tasks: &mut BTreeMap<i32, Task>,
    probes: &mut BTreeMap<i32, Probe>,
    step: F,
) -> Vec<(i32, Output)>
where
    F: Fn(&mut Task, &mut Probe) -> Output + Sync,
{
    let mut work: Vec<(i32, &mut Task, &mut Probe)> = tasks
        .iter_mut()
        .zip(probes.values_mut())
        .map(|((p, t), probe)| (*p, t, probe))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads <= 1 || work.len() <= 1 {
        return work
            .into_iter()
            .map(|(p, t, probe)| (p, step(t, probe)))
            .collect();
    }
    let chunk = work.len().div_ceil(threads);
    let step = &step;
    std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks_mut(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter_mut()
                        .map(|(p, t, probe)| (*p, step(t, probe)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a replay thread panicked"))
            .collect()
    })
}

/// Removes the files of an earlier backfill to the same place, so the
/// output holds this run only. Only eddy's own files are touched.
pub(super) fn clear_previous(out: &Store) -> Result<(), JobError> {
    for name in out.list("")? {
        let ours = name == "manifest.json"
            || ((name.starts_with("features/") || name.starts_with("training/"))
                && name.ends_with(".parquet"));
        if ours {
            out.delete(&name)?;
        }
    }
    Ok(())
}
