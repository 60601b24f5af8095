//! `eddy backfill`: replays retained history through the operators of a
//! live job and writes the feature tables and training sets to object
//! storage.
//!
//! There is no second engine. A backfill opens the spec's inputs exactly as
//! `eddy run` does ([`crate::engine::job`]), reads every source partition
//! from the archive and then the topic ([`history`]), offers the events to
//! the same tasks, and lets them release events in event-time order under
//! the same watermarks and lateness. What differs is only what is kept:
//!
//! - the feature tables as of `--until` (every key, as the final table of a
//!   bounded run), instead of a stream of upserts;
//! - with `--labels`, a training row per label event, from the tasks'
//!   probe ([`crate::engine::task::Probe`]): the features as of just before
//!   the event, so nothing at or after its time leaks into them.
//!
//! `--from` bounds the output, not the input: the replay starts early
//! enough for every window to be full at `--from` (the longest window
//! before it; from the beginning if some window is a lifetime or a
//! session, which can reach back indefinitely).
//!
//! A backfill writes no topic: records a live job dead-lettered were
//! dead-lettered then; here they are counted in the summary.

pub mod consistency;
pub mod delayed_set;
pub mod history;
mod labels;
pub mod training;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::job::JobError;
use crate::engine::job::inputs::{Inputs, apply_table_record, bootstrap_tables, decode_event};
use crate::engine::job::output::ParquetSink;
use crate::engine::table::append_joined;
use crate::engine::task::{Offer, Output, Probe, Query, Task};
use crate::engine::value::Scalar;
use crate::registry::SchemaRegistry;
use crate::spec::validate::ViewPlan;
use crate::spec::{LoadedSpec, Window};
use crate::store::Store;
use crate::topic::Backend;

use history::{History, HistoryError};
pub use labels::LabelOptions;
use labels::LabelState;
use training::Labeled;
use write::{clear_previous, on_every_task};

/// What to replay and what to write.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Output starts at this event time (ms). Default: the beginning.
    pub from: Option<i64>,
    /// Output ends at this event time (ms), inclusive. Default: the latest
    /// event in history.
    pub until: Option<i64>,
    /// Build a training set from this source's events.
    pub labels: Option<LabelOptions>,
    /// Where to write: an object-store URL.
    pub out: String,
    /// Records per read.
    pub batch: usize,
    /// Point reads to answer during the replay (`eddy consistency`).
    pub queries: Vec<Query>,
}

/// What a backfill did.
#[derive(Debug, Clone, Default)]
pub struct BackfillSummary {
    /// Records read, from the archive and from topics.
    pub from_archive: u64,
    /// Records read from topics.
    pub from_topics: u64,
    /// Events replayed through the views.
    pub events: u64,
    /// Events the live job would also have refused: late ones, records
    /// that do not decode, rows an expression rejects, and events before
    /// the replay's start.
    pub late: u64,
    /// Records that did not decode.
    pub undecodable: u64,
    /// Rows an expression rejected.
    pub rejected: u64,
    /// Events before the replay's start, skipped.
    pub skipped_before_start: u64,
    /// Feature-table rows written, and their files.
    pub feature_rows: u64,
    /// The feature tables' files.
    pub feature_files: Vec<String>,
    /// Training rows written, and their files.
    pub training_rows: u64,
    /// The training set's files.
    pub training_files: Vec<String>,
    /// The training set's columns, in order.
    pub training_columns: Vec<String>,
    /// Label events whose label expression failed, and the first reason.
    pub labels_rejected: u64,
    /// Label events the `--label-filter` (or the model's filter) left out.
    pub labels_filtered: u64,
    /// With `--model` and a delayed label: what the labels came to.
    pub delayed: Option<delayed_set::DelayedCounts>,
    /// The first label event rejected, and why.
    pub first_label_rejection: Option<String>,
    /// History already gone and not archived, and holes in the archive,
    /// one line per partition.
    pub lost: Vec<String>,
    /// Records the archive held twice, dropped (lossless).
    pub archive_duplicates: u64,
    /// Table records read from the archive before the table topics: the
    /// versions compaction has taken from them, and the rest again
    /// (re-applying a version changes nothing).
    pub table_records_archived: u64,
    /// The first record not counted, and why.
    pub first_problem: Option<String>,
    /// Per query id: the view's values for the key as of the query's time.
    pub answers: Vec<Vec<Scalar>>,
    /// How long the replay took.
    pub elapsed: Duration,
}

impl From<HistoryError> for JobError {
    fn from(e: HistoryError) -> JobError {
        match e {
            HistoryError::Topic(t) => JobError::Topic(t),
            gap @ HistoryError::Gap { .. } => JobError::HistoryGap(gap.to_string()),
            other => JobError::Output(other.to_string()),
        }
    }
}

/// How long a backfill waits for records it knows exist before giving up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A prepared backfill.
pub struct Backfill {
    inputs: Inputs,
    tasks: BTreeMap<i32, Task>,
    history: History,
    options: BackfillOptions,
    out: Store,
    /// Events before this time are not replayed.
    start: i64,
    labels: Option<LabelState>,
    summary: BackfillSummary,
}

/// How far before `--from` the replay must start for every window to be
/// full at `--from`; None if some window reaches back indefinitely.
pub fn lookback(plans: &[ViewPlan]) -> Option<i64> {
    let mut longest = 0i64;
    // A derived feature reaches as far as the features it reads.
    for f in plans
        .iter()
        .flat_map(|p| &p.features)
        .filter(|f| f.derived.is_none())
    {
        let reach = match f.window {
            Window::Sliding(size) | Window::Tumbling(size) => size.0,
            Window::Hopping { size, .. } => size.0,
            Window::Session(_) | Window::Lifetime => return None,
        };
        longest = longest.max(reach);
    }
    Some(longest)
}

impl Backfill {
    /// Validates the spec, reads the tables and plans the replay.
    pub fn open(
        loaded: &LoadedSpec,
        backend: Arc<dyn Backend>,
        registry: Arc<dyn SchemaRegistry>,
        options: BackfillOptions,
    ) -> Result<Backfill, JobError> {
        let spec = &loaded.spec;
        let mut options = options;
        if let Some(l) = &mut options.labels {
            l.resolve_model(loaded)?;
        }
        let label_source = options.labels.as_ref().map(|l| l.source.as_str());
        if let Some(name) = label_source
            && !spec.sources.contains_key(name)
        {
            return Err(JobError::Output(format!(
                "--labels `{name}` is not a source of {}; its sources are {:?}",
                loaded.file.display(),
                spec.sources.keys().collect::<Vec<_>>()
            )));
        }
        if let (Some(f), Some(u)) = (options.from, options.until)
            && f > u
        {
            return Err(JobError::Output(format!(
                "--from ({f}) is after --until ({u})"
            )));
        }
        let mut inputs = Inputs::open(loaded, backend.as_ref(), &registry, label_source)?;
        let out = Store::open(&options.out)?;
        let mut problem = None;
        let archive = match &spec.archive {
            Some(a) => Some(Store::open(&a.url)?),
            None => None,
        };
        // A table's archived history first (versions compaction has taken
        // from the topic), in offset order, then the topic.
        let mut table_records_archived = 0;
        if let Some(store) = &archive {
            for topic in spec.archived_tables() {
                for files in crate::engine::archive::files_of(store, &topic)?.into_values() {
                    for file in files {
                        for rec in crate::engine::archive::read_file(store, &topic, &file.name)? {
                            table_records_archived += 1;
                            if let Err(reason) =
                                apply_table_record(&inputs.tables, &mut inputs.table_state, &rec)
                            {
                                problem.get_or_insert(format!(
                                    "table `{}` partition {} offset {} (archived): {reason}",
                                    rec.topic, rec.partition, rec.offset
                                ));
                            }
                        }
                    }
                }
            }
        }
        if !inputs.tables.is_empty() {
            let mut consumer = backend.consumer(None)?;
            bootstrap_tables(
                backend.as_ref(),
                consumer.as_mut(),
                &inputs.tables,
                &mut inputs.table_state,
                &mut |rec, reason| {
                    problem.get_or_insert(format!(
                        "table `{}` partition {} offset {}: {reason}",
                        rec.topic, rec.partition, rec.offset
                    ));
                },
                &mut |_| {},
            )?;
        }
        let start = match (options.from, lookback(&inputs.plans)) {
            (Some(from), Some(back)) => from.saturating_sub(back),
            _ => i64::MIN,
        };
        let tasks = (0..inputs.partitions as i32)
            .map(|p| {
                let mut task = Task::new(inputs.cfg.clone(), p);
                // Only the final table is kept: no rows while replaying.
                task.quiet = true;
                (p, task)
            })
            .collect();
        let topics: Vec<String> = inputs.sources.iter().map(|s| s.topic.clone()).collect();
        let bounds: HashMap<(usize, i32), (i64, i64)> = inputs
            .ends
            .iter()
            .map(|(k, end)| (*k, (inputs.lows.get(k).copied().unwrap_or(0), *end)))
            .collect();
        let history = History::open(backend.clone(), archive, &topics, &bounds)?;
        let labels = match &options.labels {
            None => None,
            Some(l) => Some(LabelState::open(l, loaded, &inputs, &registry, &out)?),
        };
        clear_previous(&out)?;
        Ok(Backfill {
            inputs,
            tasks,
            history,
            out,
            start,
            labels,
            summary: BackfillSummary {
                first_problem: problem,
                table_records_archived,
                ..Default::default()
            },
            options,
        })
    }

    /// Records of history to read (for progress).
    pub fn records_to_read(&self) -> u64 {
        self.history.len()
    }

    /// Replays history and writes the outputs. `progress` is called after
    /// every read with the number of records read so far.
    pub fn run(mut self, progress: &mut dyn FnMut(u64)) -> Result<BackfillSummary, JobError> {
        let started = Instant::now();
        let cap = self.options.until.unwrap_or(i64::MAX);
        // One probe per task: a query is answered by whichever task holds
        // its key.
        let mut probes: BTreeMap<i32, Probe> = self
            .tasks
            .keys()
            .map(|p| {
                let mut probe = Probe::queries(self.options.queries.clone());
                probe.split_rekeyed(&self.inputs.cfg);
                if let Some(l) = &self.labels {
                    // A training set of a re-keyed view reads it at the
                    // event's key for it.
                    probe.lookups = l.lookups;
                    probe.sources = vec![l.source];
                    if let Some((d, _)) = &l.delayed
                        && d.source != l.source
                    {
                        probe.sources.push(d.source);
                    }
                    probe.from = self.options.from.unwrap_or(i64::MIN);
                }
                (*p, probe)
            })
            .collect();
        let mut read = 0u64;
        // Where the time goes, for `-vv`.
        let mut phases = [Duration::ZERO; 5];
        let mut last_progress = Instant::now();
        while !self.history.done() {
            let t0 = Instant::now();
            let records = self.history.poll(self.options.batch)?;
            phases[0] += t0.elapsed();
            if !records.is_empty() {
                last_progress = Instant::now();
            } else if last_progress.elapsed() > STALL_TIMEOUT {
                return Err(JobError::Output(format!(
                    "no record read for {} s although history is not read to its end ({}); is the broker reachable?",
                    STALL_TIMEOUT.as_secs(),
                    self.history.unfinished().join(", ")
                )));
            }
            let t0 = Instant::now();
            read += records.len() as u64;
            let mut label_events = Vec::new();
            let mut delayed_events = Vec::new();
            for rec in &records {
                let Some(s) = self
                    .inputs
                    .sources
                    .iter()
                    .position(|s| s.topic == rec.topic)
                else {
                    continue;
                };
                let Some(task) = self.tasks.get_mut(&rec.partition) else {
                    continue;
                };
                if task.watermark() >= cap {
                    // Past --until: an event at or before it would be late
                    // now, and one after it never counts.
                    continue;
                }
                let row = match decode_event(&self.inputs.sources[s], s, rec) {
                    Ok(row) => row,
                    Err(reason) => {
                        self.summary.undecodable += 1;
                        self.summary.first_problem.get_or_insert(format!(
                            "`{}` partition {} offset {}: {reason}",
                            rec.topic, rec.partition, rec.offset
                        ));
                        task.skipped(s, rec.offset + 1);
                        continue;
                    }
                };
                if row.ts < self.start {
                    self.summary.skipped_before_start += 1;
                    task.skipped(s, rec.offset + 1);
                    continue;
                }
                if let Some(l) = &self.labels
                    && row.ts <= cap
                {
                    if l.source == s
                        && let Ok(d) = l.decoder.decode(rec)
                    {
                        if l.delayed.as_ref().is_some_and(|(d, _)| d.source == s) {
                            delayed_events.push((rec.partition, rec.offset, d.columns.clone()));
                        }
                        label_events.push((rec.partition, rec.offset, d.columns));
                    } else if let Some((d, Some(decoder))) = &l.delayed
                        && d.source == s
                        && let Ok(d) = decoder.decode(rec)
                    {
                        delayed_events.push((rec.partition, rec.offset, d.columns));
                    }
                }
                match task.offer(row) {
                    Offer::Accepted => self.summary.events += 1,
                    Offer::Late { .. } => self.summary.late += 1,
                }
            }
            phases[1] += t0.elapsed();
            let t0 = Instant::now();
            if let Some(l) = &mut self.labels {
                l.labeler.label(label_events);
                if let Some((d, _)) = &mut l.delayed {
                    d.marks.label(delayed_events);
                }
            }
            phases[2] += t0.elapsed();
            let t0 = Instant::now();
            // A partition read to its end no longer holds the watermark back.
            for task in self.tasks.values_mut() {
                for (s, source) in self.inputs.sources.iter().enumerate() {
                    task.inputs[s].idle =
                        self.history.partition_done(&source.topic, task.partition);
                }
            }
            let tables = &self.inputs.table_state;
            let mut outs = on_every_task(&mut self.tasks, &mut probes, |task, probe| {
                task.advance(cap, tables, Some(probe))
            });
            self.exchange(&mut outs);
            phases[3] += t0.elapsed();
            let t0 = Instant::now();
            for (p, out) in outs {
                let probe = probes.get_mut(&p).expect("one per task");
                self.take(p, out, probe, None)?;
            }
            phases[4] += t0.elapsed();
            progress(read);
        }
        tracing::debug!(
            poll = ?phases[0],
            offer = ?phases[1],
            label = ?phases[2],
            advance = ?phases[3],
            write = ?phases[4],
            "replay phases"
        );
        // The final tables, as of --until (or the last event).
        let mut sinks: Vec<ParquetSink> = self
            .inputs
            .plans
            .iter()
            .map(|plan| {
                ParquetSink::new(
                    self.out.child(&format!("features/{}", plan.name)),
                    Arc::new(plan.clone()),
                )
            })
            .collect();
        let tables = &self.inputs.table_state;
        let until = self.options.until;
        let mut outs = on_every_task(&mut self.tasks, &mut probes, |task, probe| {
            task.finish(until, tables, Some(probe))
        });
        // Re-keyed views finish once every task's last events and final
        // mark have reached them: one more step.
        let mut steps = 0;
        loop {
            self.exchange(&mut outs);
            for (p, out) in outs {
                let probe = probes.get_mut(&p).expect("one per task");
                self.take(p, out, probe, Some(&mut sinks))?;
            }
            if self.tasks.values().all(|t| t.finished) {
                break;
            }
            steps += 1;
            // Finish, the owners' last release (answering lookups), the
            // answers' return: three steps at most.
            if steps > 4 {
                return Err(JobError::Output(
                    "internal: re-keyed views did not finish after every task had".into(),
                ));
            }
            let tables = &self.inputs.table_state;
            outs = on_every_task(&mut self.tasks, &mut probes, |task, probe| {
                task.advance(cap, tables, Some(probe))
            });
        }
        for p in self.tasks.keys().copied().collect::<Vec<_>>() {
            for (v, sink) in sinks.iter_mut().enumerate() {
                if let Some(name) = sink.flush(p, 0)? {
                    self.summary.feature_files.push(format!(
                        "{}/features/{}/{name}",
                        self.out.url(),
                        self.inputs.plans[v].name
                    ));
                }
            }
        }
        if let Some(l) = &mut self.labels {
            l.writer.finish().map_err(JobError::Output)?;
            self.summary.training_rows = l.writer.written;
            self.summary.training_files = l.writer.files.clone();
            self.summary.training_columns = l.writer.columns();
            self.summary.labels_rejected = l.labeler.rejected;
            self.summary.labels_filtered = l.labeler.filtered;
            self.summary.first_label_rejection = l.labeler.first_rejection.clone();
            if let Some((d, _)) = &l.delayed {
                self.summary.delayed = Some(d.counts());
                self.summary.labels_rejected += d.marks.rejected;
                if self.summary.first_label_rejection.is_none() {
                    self.summary.first_label_rejection = d.marks.first_rejection.clone();
                }
            }
        }
        // A query no task holds state for reads the empty windows.
        let mut answers: Vec<Option<Vec<Scalar>>> = vec![None; self.options.queries.len()];
        for probe in probes.into_values() {
            for (id, values) in probe.answers {
                if values.is_some() {
                    answers[id] = values;
                }
            }
        }
        self.summary.answers = answers
            .into_iter()
            .zip(&self.options.queries)
            .map(|(a, q)| {
                a.unwrap_or_else(|| {
                    crate::engine::keyed::empty_values(&self.inputs.cfg.views[q.view].layout)
                })
            })
            .collect();
        self.summary.from_archive = self.history.from_archive;
        self.summary.from_topics = self.history.from_topics;
        self.summary.lost = self.history.incomplete();
        self.summary.archive_duplicates = self.history.duplicates();
        self.summary.elapsed = started.elapsed();
        self.write_manifest()?;
        Ok(self.summary)
    }
}
