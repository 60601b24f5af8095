//! Checkpoints: a task's state and source offsets, together, in one object.
//!
//! Offsets live *in* the checkpoint, not in a consumer group: the state and
//! the position it corresponds to can never disagree. On restart a task
//! restores its state and resumes reading at the stored offsets; rows it
//! emits again are upserts of values already written, so a crash neither
//! loses nor double-counts an event.

use serde::{Deserialize, Serialize};

use crate::engine::task::TaskSnapshot;
use crate::store::{Store, StoreError};

/// Bumped when the layout of a checkpoint changes.
const FORMAT: u32 = 2;
/// Checkpoints kept per task (the newest and one before it).
const KEEP: usize = 2;

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// A hash of the planned views: state of another spec cannot be reused.
    pub fingerprint: u32,
    pub seq: u64,
    pub task: TaskSnapshot,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "checkpoint {name} in {url} was written for a different spec (the views changed). \
         Delete that directory to start over, or give the changed pipeline a new `name`"
    )]
    SpecChanged { url: String, name: String },
    #[error("checkpoint {name} in {url} cannot be read ({why}); delete it to start that task over")]
    Corrupt {
        url: String,
        name: String,
        why: String,
    },
}

/// Writes and reads the checkpoints of one job.
pub struct Checkpointer {
    store: Store,
    fingerprint: u32,
}

impl Checkpointer {
    pub fn new(store: Store, fingerprint: u32) -> Checkpointer {
        Checkpointer { store, fingerprint }
    }

    pub fn url(&self) -> &str {
        self.store.url()
    }

    fn dir(partition: i32) -> String {
        format!("task-{partition:05}")
    }

    /// Writes a task's checkpoint number `seq`; older ones beyond the last
    /// two are deleted.
    pub fn write(&self, seq: u64, task: TaskSnapshot) -> Result<usize, CheckpointError> {
        let dir = Self::dir(task.partition);
        let ckpt = Checkpoint {
            format: FORMAT,
            fingerprint: self.fingerprint,
            seq,
            task,
        };
        let bytes = postcard::to_allocvec(&ckpt).map_err(|e| CheckpointError::Corrupt {
            url: self.url().into(),
            name: dir.clone(),
            why: e.to_string(),
        })?;
        let size = bytes.len();
        self.store
            .put(&format!("{dir}/ckpt-{seq:012}.bin"), bytes)?;
        let names = self.names(&dir)?;
        for old in names.iter().rev().skip(KEEP) {
            self.store.delete(old)?;
        }
        Ok(size)
    }

    /// Complete checkpoint objects of a task, oldest first. Anything else in
    /// the directory (a staging file left by a crash mid-write) is ignored.
    fn names(&self, dir: &str) -> Result<Vec<String>, CheckpointError> {
        Ok(self
            .store
            .list(dir)?
            .into_iter()
            .filter(|n| {
                let file = n.rsplit('/').next().unwrap_or("");
                file.starts_with("ckpt-") && file.ends_with(".bin")
            })
            .collect())
    }

    /// The newest checkpoint of a task, if any.
    pub fn latest(&self, partition: i32) -> Result<Option<Checkpoint>, CheckpointError> {
        let names = self.names(&Self::dir(partition))?;
        let Some(name) = names.last() else {
            return Ok(None);
        };
        let Some(bytes) = self.store.get(name)? else {
            return Ok(None);
        };
        let ckpt: Checkpoint =
            postcard::from_bytes(&bytes).map_err(|e| CheckpointError::Corrupt {
                url: self.url().into(),
                name: name.clone(),
                why: e.to_string(),
            })?;
        if ckpt.format != FORMAT || ckpt.fingerprint != self.fingerprint {
            return Err(CheckpointError::SpecChanged {
                url: self.url().into(),
                name: name.clone(),
            });
        }
        Ok(Some(ckpt))
    }
}
