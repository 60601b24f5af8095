//! A running pipeline: sources in, tasks in the middle, feature tables out.
//!
//! [`Job::open`] validates the spec against the registry, creates the output
//! topics, registers their schemas, bootstraps every table (reads it to the
//! end) and restores each task from its checkpoint. [`Job::run`] then loops:
//! poll sources, decode, offer to tasks, dead-letter what cannot be used,
//! apply table updates, advance watermarks, write what the views emit, and
//! checkpoint every `checkpoint.interval`.

pub mod checkpoint;
pub mod decode;
mod error;
mod flat;
mod flow;
mod group;
pub(crate) mod inputs;
pub mod learners;
mod learning;
pub mod metrics;
mod open;
pub mod out_type;
pub mod output;
mod positions;
mod read;
pub mod sinks;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::avro::AvroCodec;
use crate::engine::table::TableState;
use crate::engine::task::{Offer, Output, Task, TaskConfig};
use crate::registry::SchemaRegistry;
use crate::spec::validate::ViewPlan;
use crate::spec::{Columns, LoadedSpec};
use crate::store::Store;
use crate::topic::dead_letter::DeadLetterTopics;
use crate::topic::{Backend, Consumer, Producer, Record, StartOffset, TopicSpec};

pub use checkpoint::CheckpointError;
use checkpoint::Checkpointer;
pub use error::JobError;
pub use inputs::schema_lookup;
use inputs::{Inputs, Source, Table, apply_table_record, bootstrap_tables, decode_event};
pub use learners::{Learners, TableColumn};
use learning::{Learning, join_model_columns};
pub use metrics::JobMetrics;
pub(crate) use positions::{check_positions, check_repartition};
pub use read::{FeatureReader, ReadError};
pub use sinks::Sink;

/// How a job runs.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Stop once every source partition is read to the end it had when the
    /// job started, after releasing every event (a bounded run). Default:
    /// run until stopped.
    pub until_end: bool,
    /// The checkpoint location (the spec's `checkpoint.url`, or the
    /// caller's default).
    pub checkpoint_url: String,
    /// Records per poll.
    pub batch: usize,
    /// Share tasks with other processes through this consumer group (Kafka
    /// only). Default: none, this process runs every task.
    pub group: Option<String>,
    /// A task's examples waiting for re-keyed views' answers above which
    /// its source partitions are paused (resumed below a quarter of it).
    /// Default [`MAX_WAITING_EXAMPLES`].
    pub max_waiting: usize,
}

/// The default of [`JobOptions::max_waiting`]: about 30 MB of examples
/// per task.
pub const MAX_WAITING_EXAMPLES: usize = 20_000;

/// A summary of a finished run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Source records that decoded into events.
    pub events: u64,
    /// Source records that did not decode (dead-lettered, not events).
    pub undecodable: u64,
    /// Late events.
    pub late: u64,
    /// Records sent to dead-letter topics.
    pub dead_lettered: u64,
    /// Feature rows emitted.
    pub rows: u64,
    /// Tasks restored from a checkpoint.
    pub restored_tasks: usize,
    /// Damaged checkpoints passed over for an older one, one line each.
    pub checkpoint_fallbacks: Vec<String>,
    /// Parquet files written.
    pub parquet_files: Vec<String>,
    /// Online-store (Redis) rows written, and rows skipped because the
    /// store held a newer one (a replay).
    pub online_store: (u64, u64),
    /// PostgreSQL rows written, and rows skipped because the table held a
    /// newer one (a replay).
    pub postgres: (u64, u64),
    /// SQLite rows written, and rows skipped because the table held a
    /// newer one (a replay).
    pub sqlite: (u64, u64),
    /// Source records copied to the archive.
    pub archived: u64,
    /// Re-keyed events sent (rows and marks), and those received twice (an
    /// origin task replayed them after a restart) and skipped.
    pub repartition: (u64, u64),
    /// How long the run took.
    pub elapsed: Duration,
}

/// A pipeline ready to run.
pub struct Job {
    name: String,
    backend: Arc<dyn Backend>,
    sources: Vec<Source>,
    tables: Vec<Table>,
    table_state: Vec<TableState>,
    table_consumer: Option<Box<dyn Consumer>>,
    consumer: Box<dyn Consumer>,
    /// The repartition topic's own consumer, drained before the sources
    /// are polled (a job running every task; in a consumer group the
    /// group's consumer reads it with the sources).
    exchange_consumer: Option<Box<dyn Consumer>>,
    /// Tasks whose source partitions are paused: too many of their
    /// examples wait for re-keyed views' answers (see `pace_tasks`).
    paused: std::collections::BTreeSet<i32>,
    /// Shared with the rebalance listener, which flushes it before tasks go.
    producer: Arc<Mutex<Box<dyn Producer>>>,
    /// Every output: feature topics, Parquet, the archive, the read API.
    sinks: Vec<Box<dyn Sink>>,
    /// The spec's views, planned.
    views: Vec<ViewPlan>,
    dead_letters: DeadLetterTopics,
    tasks: BTreeMap<i32, Task>,
    /// Per task: the next checkpoint number.
    seqs: BTreeMap<i32, u64>,
    /// Number of tasks of the pipeline (source partitions), over all
    /// processes.
    task_count: i32,
    /// Task changes from the consumer group (None: this process runs every
    /// task).
    group_changes: Option<Arc<Mutex<Vec<group::TaskChange>>>>,
    checkpointer: Arc<Checkpointer>,
    interval: Duration,
    options: JobOptions,
    /// Per (source, partition): the end offset at start (bounded runs).
    ends: HashMap<(usize, i32), i64>,
    /// Per (source, partition): when a record last arrived.
    last_seen: HashMap<(usize, i32), Instant, foldhash::fast::RandomState>,
    /// The repartition topic, if some view is re-keyed.
    repartition: Option<String>,
    /// Re-keyed events or feature rows were sent and not yet published.
    unpublished: bool,
    /// The job's counters, for `/metrics`.
    pub metrics: Arc<JobMetrics>,
    /// A handle on the read API (a sink keeps it current).
    reader: FeatureReader,
    restored: usize,
    /// The models' learners, once given.
    learning: Option<Learning>,
}

impl Job {
    /// The spec's views, planned against the registry's schemas.
    pub fn views(&self) -> &[ViewPlan] {
        &self.views
    }

    /// The columns of every source the job reads, by name, in the order
    /// its events carry them: what models are planned against.
    pub fn source_columns(&self) -> IndexMap<String, Columns> {
        self.sources
            .iter()
            .map(|s| (s.name.clone(), s.decoder.columns.clone()))
            .collect()
    }

    /// One line per model for a run's summary (none without models).
    pub fn model_summary(&self) -> Vec<String> {
        self.learning
            .as_ref()
            .map(|l| l.learners.summary())
            .unwrap_or_default()
    }

    /// The in-process read API over this job's feature tables.
    pub fn reader(&self) -> FeatureReader {
        self.reader.clone()
    }

    /// Where checkpoints go.
    pub fn checkpoint_url(&self) -> &str {
        self.checkpointer.url()
    }

    /// Source records at start (for progress).
    pub fn records_to_read(&self) -> u64 {
        let mut total = 0i64;
        for ((s, p), end) in &self.ends {
            let from = self
                .tasks
                .get(p)
                .and_then(|t| t.inputs[*s].next_offset)
                .unwrap_or(0);
            total += (end - from).max(0);
        }
        total as u64
    }

    fn bootstrap_tables(&mut self) -> Result<(), JobError> {
        if self.tables.is_empty() {
            return Ok(());
        }
        let mut consumer = self.backend.consumer(None)?;
        let mut rejected = Vec::new();
        let sinks = &mut self.sinks;
        bootstrap_tables(
            self.backend.as_ref(),
            consumer.as_mut(),
            &self.tables,
            &mut self.table_state,
            &mut |rec, reason| rejected.push((rec.clone(), reason)),
            // The archive keeps the tables' history too.
            &mut |rec| sinks.iter_mut().for_each(|s| s.record(rec)),
        )?;
        for (rec, reason) in rejected {
            self.dead_letter(&rec, &reason)?;
        }
        self.table_consumer = Some(consumer);
        Ok(())
    }

    fn apply_table_record(&mut self, rec: &Record) -> Result<(), JobError> {
        for sink in &mut self.sinks {
            sink.record(rec);
        }
        match apply_table_record(&self.tables, &mut self.table_state, rec) {
            Ok(()) => Ok(()),
            Err(reason) => self.dead_letter(rec, &reason),
        }
    }

    fn dead_letter(&mut self, rec: &Record, reason: &str) -> Result<(), JobError> {
        self.dead_letters.send(self.backend.as_ref(), rec, reason)?;
        self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Runs until `stop` is set (then checkpoints) or, in a bounded run,
    /// until every task has finished. `progress` is called after every poll
    /// with the number of records read so far.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<RunSummary, JobError> {
        let started = Instant::now();
        let mut last_checkpoint = Instant::now();
        let mut last_group_check = Instant::now();
        let mut last_marks = Instant::now();
        self.metrics.ready.store(true, Ordering::Relaxed);
        let mut read = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let exchanged = self.drain_exchange()?;
            // With exchange records in hand, the sources are not waited for.
            let wait = if exchanged { 0 } else { 100 };
            let records = self
                .consumer
                .poll(self.options.batch, Duration::from_millis(wait))?;
            self.apply_task_changes()?;
            read += records.len() as u64;
            let now = Instant::now();
            for rec in &records {
                self.offer(rec, now)?;
            }
            if let Some(mut tc) = self.table_consumer.take() {
                let updates = tc.poll(10_000, Duration::ZERO);
                self.table_consumer = Some(tc);
                for rec in updates? {
                    self.apply_table_record(&rec)?;
                }
            }
            self.update_idleness(now);
            self.metrics
                .broker_outages
                .store(self.consumer.outages(), Ordering::Relaxed);
            let mut newly_finished = false;
            // Watermark marks to the re-keyed views' owners go out at most
            // every MARK_INTERVAL_MS (states, like finished, at once).
            let marks_due = last_marks.elapsed()
                >= Duration::from_millis(crate::engine::task::MARK_INTERVAL_MS);
            if marks_due {
                last_marks = Instant::now();
            }
            let partitions: Vec<i32> = self.tasks.keys().copied().collect();
            for p in partitions {
                let at_end = self.options.until_end && self.task_at_end(p);
                let task = self.tasks.get_mut(&p).expect("listed");
                if task.finished {
                    continue;
                }
                task.marks_due = marks_due;
                let tables = &self.table_state;
                let mut probe = self.learning.as_mut().map(|l| l.probe(p));
                let probe_now = probe.as_deref_mut();
                let finishing = at_end && !task.upstream_finished();
                let out = if finishing {
                    task.finish(None, tables, probe_now)
                } else {
                    task.advance(i64::MAX, tables, probe_now)
                };
                // A task that finished checkpoints at once. Not one whose
                // re-keyed views or waiting examples finish later, in an
                // advance: its models would publish a version that had
                // learned none of the examples still waiting for answers
                // (serving, holding requests until every model has a
                // version, answered from those empty versions).
                newly_finished |= task.finished;
                let examples = probe.map(|probe| (probe.rows.take(), probe.released.take()));
                self.write(p, out)?;
                if let (Some((mut rows, mut released)), Some(l)) = (examples, &mut self.learning) {
                    if !released.is_empty() {
                        join_model_columns(&mut released, &l.joins, &self.table_state);
                        l.learners.learn_released(p, released)?;
                    }
                    if !rows.is_empty() {
                        join_model_columns(&mut rows, &l.joins, &self.table_state);
                        l.learners.learn(p, rows)?;
                    }
                }
            }
            self.publish_shuffled()?;
            self.pace_tasks()?;
            progress(read);
            if newly_finished || last_checkpoint.elapsed() >= self.interval {
                self.checkpoint()?;
                last_checkpoint = Instant::now();
            }
            if self.options.until_end && self.tasks.values().all(|t| t.finished) {
                if self.group_changes.is_none() {
                    if self.repartition_drained()? {
                        break;
                    }
                    continue;
                }
                // Other processes hold the other tasks: stop once every
                // task's checkpoint says it has finished.
                if last_group_check.elapsed() >= Duration::from_millis(500) {
                    last_group_check = Instant::now();
                    if self.all_tasks_finished()? && self.repartition_drained()? {
                        break;
                    }
                }
            }
        }
        self.checkpoint()?;
        let mut summary = RunSummary {
            // Records that did not decode are not events: they are counted
            // apart and dead-lettered.
            events: self.metrics.events_in.load(Ordering::Relaxed)
                - self.metrics.undecodable.load(Ordering::Relaxed),
            undecodable: self.metrics.undecodable.load(Ordering::Relaxed),
            late: self.metrics.late.load(Ordering::Relaxed),
            dead_lettered: self.metrics.dead_lettered.load(Ordering::Relaxed),
            rows: self.metrics.rows_out.load(Ordering::Relaxed),
            restored_tasks: self.restored,
            checkpoint_fallbacks: self.checkpointer.fallbacks(),
            parquet_files: Vec::new(),
            online_store: (0, 0),
            postgres: (0, 0),
            sqlite: (0, 0),
            archived: 0,
            repartition: (
                self.metrics.shuffled.load(Ordering::Relaxed),
                self.metrics.shuffle_duplicates.load(Ordering::Relaxed),
            ),
            elapsed: started.elapsed(),
        };
        for sink in &self.sinks {
            sink.report(&mut summary);
        }
        Ok(summary)
    }

    /// Flushes outputs, then writes every task's checkpoint: outputs are
    /// durable before the offsets that produced them are recorded.
    pub fn checkpoint(&mut self) -> Result<(), JobError> {
        self.producer.lock().expect("poisoned").flush()?;
        if let Some(l) = &mut self.learning {
            let mut producer = self.producer.lock().expect("poisoned");
            l.learners.checkpoint(producer.as_mut())?;
            *self.metrics.models.lock().expect("poisoned") = l.learners.metrics();
        }
        self.dead_letters.flush()?;
        let mut state_bytes = 0;
        let mut keys = 0;
        let mut waiting = 0;
        let mut min_wm = i64::MAX;
        for (p, task) in &self.tasks {
            let seq = self.seqs[p];
            for sink in &mut self.sinks {
                sink.flush(*p, seq)?;
            }
            self.checkpointer.write(seq, task.snapshot())?;
            self.seqs.insert(*p, seq + 1);
            self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
            for v in 0..self.views.len() {
                state_bytes += task.view(v).size_bytes();
                keys += task.view(v).len();
            }
            min_wm = min_wm.min(task.complete_watermark());
            waiting += task.lookups_waiting();
        }
        self.metrics
            .lookups_waiting
            .store(waiting as u64, Ordering::Relaxed);
        self.metrics
            .state_bytes
            .store(state_bytes as u64, Ordering::Relaxed);
        self.metrics.keys.store(keys as u64, Ordering::Relaxed);
        // Tasks gained from the group may have fallen back since.
        self.metrics.checkpoint_fallbacks.store(
            self.checkpointer.fallbacks().len() as u64,
            Ordering::Relaxed,
        );
        self.metrics.watermark_ms.store(
            if min_wm == i64::MAX { i64::MIN } else { min_wm },
            Ordering::Relaxed,
        );
        let mut lag = Vec::new();
        for (s, source) in self.sources.iter().enumerate() {
            if let Ok(d) = self.backend.describe_topic(&source.topic) {
                for p in d.partitions {
                    let at = self
                        .tasks
                        .get(&p.id)
                        .and_then(|t| t.inputs[s].next_offset)
                        .unwrap_or(p.low);
                    lag.push((source.topic.clone(), p.id, (p.high - at).max(0)));
                }
            }
        }
        *self.metrics.lag.lock().expect("poisoned") = lag;
        tracing::debug!(pipeline = %self.name, state_bytes, keys, "checkpointed");
        Ok(())
    }
}
