//! The flow of records through a job: tasks taken and given up as the
//! consumer group assigns partitions, records offered to their task,
//! idleness, and what a task releases written to the sinks.

use std::time::Instant;

use crate::engine::task::shuffle::{Received, Shuffled};
use crate::topic::ProducerRecord;

use super::*;

impl Job {
    /// Takes the tasks the consumer group gave and drops those it took.
    pub(super) fn apply_task_changes(&mut self) -> Result<(), JobError> {
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
                        if let Some(topic) = &self.repartition {
                            check_repartition(
                                &task,
                                topic,
                                self.backend.as_ref(),
                                self.checkpointer.url(),
                            )?;
                        }
                    }
                    self.seqs.insert(task.partition, seq);
                    let mut task = *task;
                    // A bounded run finished it; a live run goes on from there.
                    if !self.options.until_end {
                        task.reopen();
                    }
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

    /// Sends re-keyed events and marks to the tasks they are for, on the
    /// repartition topic.
    fn shuffle(&mut self, messages: Vec<(i32, Shuffled)>) -> Result<(), JobError> {
        let topic = self
            .repartition
            .clone()
            .expect("re-keyed views have a topic");
        let mut producer = self.producer.lock().expect("poisoned");
        for (partition, msg) in messages {
            let key = msg.key().map(|k| k.key_text().into_bytes());
            let value = postcard::to_allocvec(&msg)
                .map_err(|e| JobError::Output(format!("encoding a re-keyed event: {e}")))?;
            let mut record = ProducerRecord::new(topic.clone(), key, Some(value));
            record.partition = Some(partition);
            // The record's timestamp is when it was sent, not the event's
            // time (in its value): retention counts from the former, and a
            // replay of last year's events must not be deleted unread.
            record.timestamp_ms = None;
            producer.send(record)?;
            self.metrics.shuffled.fetch_add(1, Ordering::Relaxed);
        }
        self.unpublished = true;
        Ok(())
    }

    /// Makes the re-keyed events and feature rows sent since the last call
    /// visible (not yet durable: the checkpoint flushes), so re-keyed views
    /// wait for the next poll and readers of feature topics for the next
    /// batch, not for the next checkpoint (the local log buffers until
    /// told).
    pub(super) fn publish_shuffled(&mut self) -> Result<(), JobError> {
        if std::mem::take(&mut self.unpublished) {
            self.producer.lock().expect("poisoned").publish()?;
        }
        Ok(())
    }

    /// Pauses the source partitions of a task with more than
    /// `max_waiting` events waiting for re-keyed views' answers, and
    /// resumes them below a quarter of it. Answers come once every task
    /// has passed an event's time, so a task that reads its partitions
    /// faster in event time than the others (fewer records per hour, a
    /// replay) would otherwise hold ever more examples in memory: a
    /// million-event replay held 0.9 M of them (2 GB). The slowest task's
    /// examples never wait on the others (every task is past their time),
    /// so the paused ones always resume. Lookups a task answers for the
    /// others do not count: they wait for it to advance.
    pub(super) fn pace_tasks(&mut self) -> Result<(), JobError> {
        if self.exchange_consumer.is_none() {
            return Ok(());
        }
        let (pause_above, resume_below) = (
            self.options.max_waiting,
            (self.options.max_waiting / 4).max(1),
        );
        let mut changes = Vec::new();
        for (p, task) in &self.tasks {
            // Its own examples: lookups it holds for others wait for it
            // to advance, so they must not pause it.
            let waiting = task.examples_waiting();
            let paused = self.paused.contains(p);
            if !paused && waiting > pause_above && !task.upstream_finished() {
                changes.push((*p, true));
            } else if paused && (waiting < resume_below || task.upstream_finished()) {
                changes.push((*p, false));
            }
        }
        for (p, pause) in changes {
            for (i, s) in self.sources.iter().enumerate() {
                self.consumer.pause(&s.topic, p, pause)?;
                if !pause {
                    // Quiet since the pause, not idle.
                    self.last_seen.insert((i, p), Instant::now());
                }
            }
            if pause {
                self.paused.insert(p);
            } else {
                self.paused.remove(&p);
            }
        }
        Ok(())
    }

    /// Reads what the repartition topic's own consumer holds, if the job
    /// has one, up to a few batches (the sources wait meanwhile); whether
    /// there was anything.
    pub(super) fn drain_exchange(&mut self) -> Result<bool, JobError> {
        let Some(mut consumer) = self.exchange_consumer.take() else {
            return Ok(false);
        };
        let mut any = false;
        let mut result = Ok(());
        for _ in 0..8 {
            let records = match consumer.poll(self.options.batch, Duration::ZERO) {
                Ok(r) => r,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            };
            any |= !records.is_empty();
            for rec in &records {
                if let Err(e) = self.receive(rec) {
                    result = Err(e);
                    break;
                }
            }
            if records.len() < self.options.batch || result.is_err() {
                break;
            }
        }
        self.exchange_consumer = Some(consumer);
        result.map(|()| any)
    }

    /// A record of the repartition topic, for the task of its partition.
    fn receive(&mut self, rec: &Record) -> Result<(), JobError> {
        let Some(task) = self.tasks.get_mut(&rec.partition) else {
            return Ok(());
        };
        let msg: Shuffled = match rec.value.as_deref().map(postcard::from_bytes) {
            Some(Ok(msg)) => msg,
            other => {
                // Only eddy writes this topic: a record it cannot read was
                // written by another version or another pipeline.
                task.receive_skipped(rec.offset);
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "no value".into(),
                };
                self.metrics
                    .shuffle_undecodable
                    .fetch_add(1, Ordering::Relaxed);
                return self.dead_letter(
                    rec,
                    &format!("not a re-keyed event of this eddy version: {why}"),
                );
            }
        };
        let ts = msg.ts();
        let lookup = matches!(msg, Shuffled::Lookup(_));
        match task.receive(msg, Some(rec.offset)) {
            Received::Accepted => {}
            Received::Duplicate => {
                self.metrics
                    .shuffle_duplicates
                    .fetch_add(1, Ordering::Relaxed);
            }
            Received::Late { watermark } => {
                self.metrics.late.fetch_add(1, Ordering::Relaxed);
                let what = if lookup {
                    "a model's read of a re-keyed view (answered with nulls)"
                } else {
                    "late after re-keying"
                };
                let reason = format!(
                    "{what}: event time {ts} is at or below the watermark {watermark} of task {}'s re-keyed views (its origin task was idle meanwhile; raise the source's `idle_timeout`)",
                    rec.partition
                );
                self.dead_letter(rec, &reason)?;
            }
        }
        Ok(())
    }

    /// A bounded run that finished a task marked it so in its checkpoint;
    /// records that arrived since then must still be read, so a task that
    /// is not at its end any more is not finished.
    pub(super) fn reopen_tasks_with_new_records(&mut self) {
        let reopen: Vec<i32> = self
            .tasks
            .iter()
            .filter(|(p, t)| t.upstream_finished() && !self.task_at_end(**p))
            .map(|(p, _)| *p)
            .collect();
        for p in reopen {
            if let Some(t) = self.tasks.get_mut(&p) {
                t.reopen();
            }
        }
    }

    /// Every source partition of task `p` is read to its end at start.
    pub(super) fn task_at_end(&self, p: i32) -> bool {
        let Some(task) = self.tasks.get(&p) else {
            return false;
        };
        (0..self.sources.len()).all(|s| {
            let end = self.ends.get(&(s, p)).copied().unwrap_or(0);
            task.inputs[s].next_offset.unwrap_or(0) >= end
        })
    }

    /// Every re-keyed event sent to this process's tasks has been read:
    /// the producer flushed, each task's repartition partition read to its
    /// end. Finished tasks send nothing more, but their last events may
    /// still be on their way to a task that finished before them (which
    /// then goes on); a bounded run that stopped here would leave them
    /// unread.
    pub(super) fn repartition_drained(&mut self) -> Result<bool, JobError> {
        let Some(topic) = &self.repartition else {
            return Ok(true);
        };
        self.producer.lock().expect("poisoned").flush()?;
        for p in self.backend.describe_topic(topic)?.partitions {
            if let Some(task) = self.tasks.get(&p.id)
                && task.repartition_offset().unwrap_or(p.low) < p.high
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every task of the pipeline, in any process, has finished.
    pub(super) fn all_tasks_finished(&self) -> Result<bool, JobError> {
        for p in 0..self.task_count {
            match self.checkpointer.latest(p)? {
                Some(c) if c.task.finished => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    pub(super) fn offer(&mut self, rec: &Record, now: Instant) -> Result<(), JobError> {
        let Some(s) = self.sources.iter().position(|s| s.topic == rec.topic) else {
            if self.repartition.as_deref() == Some(rec.topic.as_str()) {
                return self.receive(rec);
            }
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
    pub(super) fn update_idleness(&mut self, now: Instant) {
        for task in self.tasks.values_mut() {
            for (s, source) in self.sources.iter().enumerate() {
                let end = self.ends.get(&(s, task.partition)).copied().unwrap_or(0);
                let input = &mut task.inputs[s];
                let at_end = input.next_offset.unwrap_or(0) >= end;
                if self.options.until_end {
                    input.idle = at_end;
                } else if !source.idle_timeout.is_zero() && !self.paused.contains(&task.partition) {
                    // A paused partition is quiet because it is paused:
                    // idle, it would let the watermark pass its events.
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

    pub(super) fn write(&mut self, partition: i32, out: Output) -> Result<(), JobError> {
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
        if !out.shuffled.is_empty() {
            self.shuffle(out.shuffled)?;
        }
        self.metrics
            .shuffle_duplicates
            .fetch_add(out.duplicates, Ordering::Relaxed);
        let watermark = self.tasks.get(&partition).map(Task::complete_watermark);
        let n = out.rows.len() as u64;
        self.unpublished |= n > 0;
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
    pub(super) fn restored_rows(&mut self, partition: i32) {
        let Some(task) = self.tasks.get(&partition) else {
            return;
        };
        let rows = task.current_rows();
        let watermark = task.complete_watermark();
        for sink in &mut self.sinks {
            sink.restored(partition, &rows, watermark);
        }
    }
}
