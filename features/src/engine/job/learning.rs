//! Models trained inside the job: the learners, the probes that read every
//! view for their events as of just before each, and the table columns
//! their inputs join.

use std::collections::BTreeMap;

use crate::engine::table::{TableState, append_joined};
use crate::engine::task::{Probe, ProbedRows};

use super::{Job, JobError, Learners};

/// Learners and what feeds them.
pub(super) struct Learning {
    pub(super) learners: Box<dyn Learners>,
    /// The sources (indices) whose events are examples.
    sources: Vec<usize>,
    /// One probe per task.
    probes: BTreeMap<i32, Probe>,
    /// Per source (index): the table columns its models read, as (table,
    /// the source's join column, the table's column), appended to each
    /// event's columns as of its time.
    pub(super) joins: Vec<Vec<(usize, usize, usize)>>,
    /// Whether any learner reads features (else views are not probed).
    reads_features: bool,
    /// Whether any learner reads a re-keyed view (examples wait for them).
    reads_rekeyed: bool,
}

/// Appends to each event's columns the table columns its source's models
/// read, each from the table row valid at the event's time (null without
/// one), as `eddy backfill --columns TABLE.COLUMN` writes them.
pub(super) fn join_model_columns(
    rows: &mut ProbedRows,
    joins: &[Vec<(usize, usize, usize)>],
    tables: &[TableState],
) {
    for i in 0..rows.len() {
        let Some(joins) = joins.get(rows.sources[i]).filter(|j| !j.is_empty()) else {
            continue;
        };
        let columns = std::mem::take(&mut rows.columns[i]);
        rows.columns[i] = append_joined(tables, joins.iter().copied(), columns, rows.ts[i]);
    }
}

impl Learning {
    pub(super) fn probe(&mut self, partition: i32) -> &mut Probe {
        let sources = &self.sources;
        let read_views = self.reads_features;
        let lookups = self.reads_rekeyed;
        self.probes.entry(partition).or_insert_with(|| {
            let mut probe = Probe::events(usize::MAX, i64::MIN);
            probe.sources = sources.clone();
            probe.keep_columns = true;
            probe.read_views = read_views;
            probe.lookups = lookups;
            // The models that read no re-keyed view learn without waiting.
            probe.release_too = lookups;
            probe
        })
    }
}

impl Job {
    /// Trains `learners` from now on: every event of their sources is
    /// probed (every view read for its key as of just before it) and
    /// handed over in release order.
    pub fn set_learners(&mut self, mut learners: Box<dyn Learners>) -> Result<(), JobError> {
        let names: Vec<String> = self.sources.iter().map(|s| s.name.clone()).collect();
        learners.bind(&names);
        let mut sources = Vec::new();
        for name in learners.sources() {
            match self.sources.iter().position(|s| s.name == name) {
                Some(i) => sources.push(i),
                None => {
                    return Err(JobError::Output(format!(
                        "a model learns from source `{name}`, which this job does not read"
                    )));
                }
            }
        }
        *self.metrics.models.lock().expect("poisoned") = learners.metrics();
        let mut joins = vec![Vec::new(); self.sources.len()];
        for (source, columns) in learners.joined() {
            let Some(s) = self.sources.iter().position(|s| s.name == source) else {
                return Err(JobError::Output(format!(
                    "a model joins table columns onto source `{source}`, which this job does not read"
                )));
            };
            joins[s] = columns
                .iter()
                .map(|j| {
                    let t = self.tables.iter().position(|t| t.name == j.table);
                    let c = t.and_then(|t| self.tables[t].decoder.columns.get_index_of(&j.column));
                    match (t, c) {
                        (Some(t), Some(c)) => Ok((t, j.on, c)),
                        _ => Err(JobError::Output(format!(
                            "a model of `{source}` reads `{}.{}`, which the job's tables do not have",
                            j.table, j.column
                        ))),
                    }
                })
                .collect::<Result<_, _>>()?;
        }
        self.learning = Some(Learning {
            reads_features: learners.reads_features(),
            reads_rekeyed: learners.reads_rekeyed(),
            learners,
            sources,
            probes: BTreeMap::new(),
            joins,
        });
        Ok(())
    }
}
