//! Sharing a pipeline's tasks between processes through a consumer group.
//!
//! The group assigns source partitions; partition number `p` of every
//! source is task `p` (the range assignor keeps co-partitioned topics
//! together). When a process gains a task, the listener restores it from
//! its checkpoint *inside* the rebalance callback, so the partition's
//! fetch starts at the checkpointed offsets and nothing is processed before
//! the state is there. When it loses one, the listener flushes the producer
//! (so none of its rows can land after the new owner's) and the task's state
//! is dropped: the new owner restores the last checkpoint and replays from
//! its offsets, and the rows it emits again are upserts of the same values.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::checkpoint::Checkpointer;
use crate::engine::task::{Task, TaskConfig};
use crate::topic::{Producer, RebalanceListener, StartOffset};

/// A change to this process's tasks, applied by the job after a poll.
pub enum TaskChange {
    /// Restored (or new) task and its next checkpoint number.
    Gained(Box<Task>, u64),
    Lost(i32),
    /// Restoring failed; the job stops with this message.
    Failed(String),
}

pub struct TaskListener {
    pub checkpointer: Arc<Checkpointer>,
    pub cfg: Arc<TaskConfig>,
    /// Source topics, by source index.
    pub topics: Vec<String>,
    /// The repartition topic (re-keyed views), read from the task's offset.
    pub repartition: Option<String>,
    pub producer: Arc<Mutex<Box<dyn Producer>>>,
    pub changes: Arc<Mutex<Vec<TaskChange>>>,
}

impl RebalanceListener for TaskListener {
    fn assigned(&self, partitions: &[(String, i32)]) -> Vec<StartOffset> {
        let numbers: BTreeSet<i32> = partitions.iter().map(|(_, p)| *p).collect();
        let mut tasks = std::collections::BTreeMap::new();
        let mut changes = self.changes.lock().expect("poisoned");
        for p in numbers {
            let (task, seq) = match self.checkpointer.latest(p) {
                Ok(Some(c)) => (Task::restore(self.cfg.clone(), c.task), c.seq + 1),
                Ok(None) => (Task::new(self.cfg.clone(), p), 0),
                Err(e) => {
                    changes.push(TaskChange::Failed(format!("restoring task {p}: {e}")));
                    (Task::new(self.cfg.clone(), p), 0)
                }
            };
            tracing::info!(task = p, restored = seq > 0, "task assigned");
            tasks.insert(p, (task, seq));
        }
        let starts = partitions
            .iter()
            .map(|(topic, p)| {
                let task = &tasks[p].0;
                let next = if self.repartition.as_ref() == Some(topic) {
                    task.repartition_offset()
                } else {
                    let s = self.topics.iter().position(|t| t == topic);
                    s.and_then(|s| task.inputs[s].next_offset)
                };
                next.map_or(StartOffset::Earliest, StartOffset::At)
            })
            .collect();
        for (_, (task, seq)) in tasks {
            changes.push(TaskChange::Gained(Box::new(task), seq));
        }
        starts
    }

    fn revoked(&self, partitions: &[(String, i32)]) {
        if let Err(e) = self.producer.lock().expect("poisoned").flush() {
            tracing::error!(error = %e, "flushing feature rows before giving tasks away failed");
        }
        let numbers: BTreeSet<i32> = partitions.iter().map(|(_, p)| *p).collect();
        let mut changes = self.changes.lock().expect("poisoned");
        for p in numbers {
            tracing::info!(task = p, "task revoked");
            changes.push(TaskChange::Lost(p));
        }
    }
}
