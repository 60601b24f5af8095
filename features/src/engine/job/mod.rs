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
mod flat_decode;
mod group;
pub(crate) mod inputs;
pub mod learners;
mod learning;
pub mod metrics;
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
pub(crate) use positions::check_positions;
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
}

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
    /// Source records copied to the archive.
    pub archived: u64,
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
    /// The job's counters, for `/metrics`.
    pub metrics: Arc<JobMetrics>,
    /// A handle on the read API (a sink keeps it current).
    reader: FeatureReader,
    restored: usize,
    /// The models' learners, once given.
    learning: Option<Learning>,
}

/// A hash of what a checkpoint's state depends on: the views' inputs,
/// expressions and features, not where their outputs go (moving a Parquet
/// directory must not throw state away).
fn fingerprint(plans: &[ViewPlan]) -> u32 {
    let state: Vec<serde_json::Value> = plans
        .iter()
        .map(|p| {
            serde_json::json!([
                p.name,
                p.source,
                p.key,
                p.source_columns,
                p.joins,
                p.derive,
                p.filter,
                p.features
            ])
        })
        .collect();
    crc32fast::hash(serde_json::to_string(&state).unwrap_or_default().as_bytes())
}

/// A task from its checkpoint. A bounded run finished it; a live run goes on
/// from there.
fn restore(
    cfg: &Arc<TaskConfig>,
    snapshot: crate::engine::task::TaskSnapshot,
    options: &JobOptions,
) -> Task {
    let mut task = Task::restore(cfg.clone(), snapshot);
    task.finished &= options.until_end;
    task
}

impl Job {
    /// Validates, creates outputs, bootstraps tables and restores tasks.
    pub fn open(
        loaded: &LoadedSpec,
        backend: Arc<dyn Backend>,
        registry: Arc<dyn SchemaRegistry>,
        options: JobOptions,
    ) -> Result<Job, JobError> {
        let spec = &loaded.spec;
        let inputs = Inputs::open(loaded, backend.as_ref(), &registry, None)?;
        let Inputs {
            plans,
            sources,
            tables,
            table_state,
            cfg,
            partitions,
            ends,
            lows,
            ..
        } = inputs;
        // Outputs.
        for plan in &plans {
            backend.ensure_topic(
                &TopicSpec::new(plan.output_topic.clone())
                    .partitions(partitions.max(1) as i32)
                    .compacted(),
            )?;
        }
        let producer: Arc<Mutex<Box<dyn Producer>>> = Arc::new(Mutex::new(backend.producer()?));
        let reader = FeatureReader::new(&plans);
        let sinks = sinks::open(
            spec,
            &plans,
            &AvroCodec::new(registry.clone()),
            producer.clone(),
            reader.clone(),
        )?;
        // Tasks, restored from their checkpoints: all of them here, or those
        // the consumer group assigns.
        let checkpointer = Arc::new(Checkpointer::new(
            Store::open(&options.checkpoint_url)?.child(&spec.name),
            &spec.name,
            fingerprint(&plans),
        ));
        let bounds: HashMap<(usize, i32), (i64, i64)> = ends
            .iter()
            .map(|(k, end)| (*k, (lows.get(k).copied().unwrap_or(0), *end)))
            .collect();
        let source_topics: Vec<String> = sources.iter().map(|s| s.topic.clone()).collect();
        let n = partitions as i32;
        let mut tasks = BTreeMap::new();
        let mut seqs = BTreeMap::new();
        let mut restored = 0;
        let mut consumer = backend.consumer(options.group.as_deref())?;
        let mut group_changes = None;
        if options.group.is_some() {
            let changes = Arc::new(Mutex::new(Vec::new()));
            let listener = group::TaskListener {
                checkpointer: checkpointer.clone(),
                cfg: cfg.clone(),
                topics: sources.iter().map(|s| s.topic.clone()).collect(),
                producer: producer.clone(),
                changes: changes.clone(),
            };
            let topics: Vec<String> = sources.iter().map(|s| s.topic.clone()).collect();
            consumer.subscribe(&topics, Arc::new(listener))?;
            group_changes = Some(changes);
        } else {
            for p in 0..n {
                let (task, seq) = match checkpointer.latest(p)? {
                    Some(c) => {
                        restored += 1;
                        let task = restore(&cfg, c.task, &options);
                        check_positions(&task, &source_topics, &bounds, checkpointer.url())?;
                        (task, c.seq + 1)
                    }
                    None => (Task::new(cfg.clone(), p), 0),
                };
                tasks.insert(p, task);
                seqs.insert(p, seq);
            }
            for (i, s) in sources.iter().enumerate() {
                let assignment: Vec<(i32, StartOffset)> = tasks
                    .values()
                    .map(|t| {
                        let start = t.inputs[i]
                            .next_offset
                            .map_or(StartOffset::Earliest, StartOffset::At);
                        (t.partition, start)
                    })
                    .collect();
                consumer.assign(&s.topic, &assignment)?;
            }
        }
        let metrics = Arc::new(JobMetrics::new());
        metrics
            .checkpoint_fallbacks
            .store(checkpointer.fallbacks().len() as u64, Ordering::Relaxed);
        let mut job = Job {
            name: spec.name.clone(),
            backend: backend.clone(),
            sources,
            tables,
            table_state,
            table_consumer: None,
            consumer,
            producer,
            sinks,
            views: plans.clone(),
            dead_letters: DeadLetterTopics::default(),
            tasks,
            seqs,
            task_count: n,
            group_changes,
            checkpointer,
            interval: Duration::from_millis(spec.checkpoint.interval.0 as u64),
            options,
            ends,
            last_seen: HashMap::default(),
            metrics,
            reader,
            restored,
            learning: None,
        };
        job.reopen_tasks_with_new_records();
        job.bootstrap_tables()?;
        let restored_tasks: Vec<i32> = job.tasks.keys().copied().collect();
        for p in restored_tasks {
            job.restored_rows(p);
        }
        Ok(job)
    }

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
        bootstrap_tables(
            self.backend.as_ref(),
            consumer.as_mut(),
            &self.tables,
            &mut self.table_state,
            &mut |rec, reason| rejected.push((rec.clone(), reason)),
        )?;
        for (rec, reason) in rejected {
            self.dead_letter(&rec, &reason)?;
        }
        self.table_consumer = Some(consumer);
        Ok(())
    }

    fn apply_table_record(&mut self, rec: &Record) -> Result<(), JobError> {
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
        self.metrics.ready.store(true, Ordering::Relaxed);
        let mut read = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let records = self
                .consumer
                .poll(self.options.batch, Duration::from_millis(100))?;
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
            let partitions: Vec<i32> = self.tasks.keys().copied().collect();
            for p in partitions {
                let at_end = self.options.until_end && self.task_at_end(p);
                let task = self.tasks.get_mut(&p).expect("listed");
                if task.finished {
                    continue;
                }
                let tables = &self.table_state;
                let mut probe = self.learning.as_mut().map(|l| l.probe(p));
                let probe_now = probe.as_deref_mut();
                let out = if at_end {
                    task.finish(None, tables, probe_now)
                } else {
                    task.advance(i64::MAX, tables, probe_now)
                };
                newly_finished |= at_end;
                let examples = probe.map(|probe| probe.rows.take());
                self.write(p, out)?;
                if let (Some(mut rows), Some(l)) = (examples, &mut self.learning)
                    && !rows.is_empty()
                {
                    join_model_columns(&mut rows, &l.joins, &self.table_state);
                    l.learners.learn(p, rows)?;
                }
            }
            progress(read);
            if newly_finished || last_checkpoint.elapsed() >= self.interval {
                self.checkpoint()?;
                last_checkpoint = Instant::now();
            }
            if self.options.until_end && self.tasks.values().all(|t| t.finished) {
                if self.group_changes.is_none() {
                    break;
                }
                // Other processes hold the other tasks: stop once every
                // task's checkpoint says it has finished.
                if last_group_check.elapsed() >= Duration::from_millis(500) {
                    last_group_check = Instant::now();
                    if self.all_tasks_finished()? {
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
            archived: 0,
            elapsed: started.elapsed(),
        };
        for sink in &self.sinks {
            sink.report(&mut summary);
        }
        Ok(summary)
    }

    /// Takes the tasks the consumer group gave and drops those it took.
    fn apply_task_changes(&mut self) -> Result<(), JobError> {
        let Some(changes) = &self.group_changes else {
            return Ok(());
        };
        let changes: Vec<group::TaskChange> =
            std::mem::take(&mut *changes.lock().expect("poisoned"));
        for change in changes {
            match change {
                group::TaskChange::Gained(task, seq) => {
                    if seq > 0 {
                        self.restored += 1;
                        // The sources as they are now: a live job's grew
                        // since it started, and the old owner read them.
                        let mut bounds = HashMap::new();
                        for (i, source) in self.sources.iter().enumerate() {
                            for p in self.backend.describe_topic(&source.topic)?.partitions {
                                bounds.insert((i, p.id), (p.low, p.high));
                            }
                        }
                        let topics: Vec<String> =
                            self.sources.iter().map(|s| s.topic.clone()).collect();
                        check_positions(&task, &topics, &bounds, self.checkpointer.url())?;
                    }
                    self.seqs.insert(task.partition, seq);
                    let mut task = *task;
                    // A bounded run finished it; a live run goes on from there.
                    task.finished &= self.options.until_end;
                    let p = task.partition;
                    self.tasks.insert(p, task);
                    self.restored_rows(p);
                    self.reopen_tasks_with_new_records();
                }
                group::TaskChange::Lost(p) => {
                    self.tasks.remove(&p);
                    self.seqs.remove(&p);
                    for sink in &mut self.sinks {
                        sink.discard(p);
                    }
                }
                group::TaskChange::Failed(why) => return Err(JobError::Output(why)),
            }
        }
        Ok(())
    }

    /// A bounded run that finished a task marked it so in its checkpoint;
    /// records that arrived since then must still be read, so a task that
    /// is not at its end any more is not finished.
    fn reopen_tasks_with_new_records(&mut self) {
        let reopen: Vec<i32> = self
            .tasks
            .iter()
            .filter(|(p, t)| t.finished && !self.task_at_end(**p))
            .map(|(p, _)| *p)
            .collect();
        for p in reopen {
            if let Some(t) = self.tasks.get_mut(&p) {
                t.finished = false;
            }
        }
    }

    /// Every source partition of task `p` is read to its end at start.
    fn task_at_end(&self, p: i32) -> bool {
        let Some(task) = self.tasks.get(&p) else {
            return false;
        };
        (0..self.sources.len()).all(|s| {
            let end = self.ends.get(&(s, p)).copied().unwrap_or(0);
            task.inputs[s].next_offset.unwrap_or(0) >= end
        })
    }

    /// Every task of the pipeline, in any process, has finished.
    fn all_tasks_finished(&self) -> Result<bool, JobError> {
        for p in 0..self.task_count {
            match self.checkpointer.latest(p)? {
                Some(c) if c.task.finished => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    fn offer(&mut self, rec: &Record, now: Instant) -> Result<(), JobError> {
        let Some(s) = self.sources.iter().position(|s| s.topic == rec.topic) else {
            return Ok(());
        };
        self.last_seen.insert((s, rec.partition), now);
        self.metrics.events_in.fetch_add(1, Ordering::Relaxed);
        let Some(task) = self.tasks.get_mut(&rec.partition) else {
            return Ok(());
        };
        for sink in &mut self.sinks {
            sink.record(rec);
        }
        match decode_event(&self.sources[s], s, rec) {
            Ok(row) => {
                let ts = row.ts;
                if let Offer::Late { watermark } = task.offer(row) {
                    self.metrics.late.fetch_add(1, Ordering::Relaxed);
                    let reason = format!(
                        "late: event time {ts} is at or below the watermark {watermark} of task {} (raise the source's `lateness` to accept such events)",
                        rec.partition
                    );
                    self.dead_letter(rec, &reason)?;
                }
            }
            Err(reason) => {
                task.skipped(s, rec.offset + 1);
                self.metrics.undecodable.fetch_add(1, Ordering::Relaxed);
                self.dead_letter(rec, &reason)?;
            }
        }
        Ok(())
    }

    /// Marks inputs idle: in a bounded run once read to their end, in a
    /// live run once quiet for the source's `idle_timeout`.
    fn update_idleness(&mut self, now: Instant) {
        for task in self.tasks.values_mut() {
            for (s, source) in self.sources.iter().enumerate() {
                let end = self.ends.get(&(s, task.partition)).copied().unwrap_or(0);
                let input = &mut task.inputs[s];
                let at_end = input.next_offset.unwrap_or(0) >= end;
                if self.options.until_end {
                    input.idle = at_end;
                } else if !source.idle_timeout.is_zero() {
                    let quiet = self
                        .last_seen
                        .get(&(s, task.partition))
                        .is_none_or(|t| now.duration_since(*t) >= source.idle_timeout);
                    if quiet && (input.max_ts.is_some() || at_end) {
                        input.idle = true;
                    }
                }
            }
        }
    }

    fn write(&mut self, partition: i32, out: Output) -> Result<(), JobError> {
        for rejected in out.rejected {
            let source = &self.sources[rejected.row.source];
            let rec = Record {
                topic: source.topic.clone(),
                partition,
                offset: rejected.row.offset,
                timestamp_ms: rejected.row.ts,
                key: Some(rejected.row.key.key_text().into_bytes()),
                // The original bytes are gone once a row is decoded: the
                // dead letter holds the decoded row as JSON.
                value: Some(
                    serde_json::Value::Object(
                        source
                            .decoder
                            .columns
                            .keys()
                            .zip(rejected.row.columns.iter())
                            .map(|(k, v)| (k.clone(), v.to_json()))
                            .collect(),
                    )
                    .to_string()
                    .into_bytes(),
                ),
                headers: Vec::new(),
            };
            self.dead_letter(&rec, &rejected.reason)?;
        }
        let watermark = self.tasks.get(&partition).map(Task::watermark);
        let n = out.rows.len() as u64;
        if let Some((last, others)) = self.sinks.split_last_mut() {
            for sink in others {
                sink.rows(partition, &out.rows, watermark)?;
            }
            last.take_rows(partition, out.rows, watermark)?;
        }
        self.metrics.rows_out.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Gives the sinks a restored or gained task's rows: without them the
    /// read API would answer "no row" for every key until its next change.
    fn restored_rows(&mut self, partition: i32) {
        let Some(task) = self.tasks.get(&partition) else {
            return;
        };
        let rows = task.current_rows();
        let watermark = task.watermark();
        for sink in &mut self.sinks {
            sink.restored(partition, &rows, watermark);
        }
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
            min_wm = min_wm.min(task.watermark());
        }
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
