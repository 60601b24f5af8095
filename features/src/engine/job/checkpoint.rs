//! Checkpoints: a task's state and source offsets, together, in one object.
//!
//! Offsets live *in* the checkpoint, not in a consumer group: the state and
//! the position it corresponds to can never disagree. On restart a task
//! restores its state and resumes reading at the stored offsets; rows it
//! emits again are upserts of values already written, so a crash neither
//! loses nor double-counts an event.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::task::TaskSnapshot;
use crate::store::{Store, StoreError};

/// Bumped when the layout of a checkpoint changes.
const FORMAT: u32 = 3;
/// Checkpoints kept per task (the newest and one before it, the fallback
/// when the newest is damaged).
const KEEP: usize = 2;
/// First bytes of a checkpoint object (format 3 on): a framed,
/// checksummed postcard body.
const MAGIC: &[u8; 8] = b"EDDYCKP3";

/// A checkpoint object: `MAGIC | u32 crc32(body) LE | body`, the body the
/// postcard encoding of this struct. The checksum catches a flipped bit or
/// a truncated object that postcard would still decode into other numbers;
/// `pipeline` and the snapshot's partition catch an object copied into
/// another task's directory.
#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    /// The encoding's version (3).
    pub format: u32,
    /// A hash of the planned views: state of another spec cannot be reused.
    pub fingerprint: u32,
    /// The pipeline's name.
    pub pipeline: String,
    /// The checkpoint's number for its task.
    pub seq: u64,
    /// The task's state.
    pub task: TaskSnapshot,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    /// Object storage failed.
    Store(#[from] StoreError),
    #[error(
        "checkpoint {name} in {url} was written for a different spec (the views changed). \
         Delete that directory to start over, or give the changed pipeline a new `name`"
    )]
    /// The checkpoint was written for other views.
    SpecChanged {
        /// Where the checkpoints are.
        url: String,
        /// The checkpoint.
        name: String,
    },
    #[error(
        "no usable checkpoint for task {partition} in {url}: {damaged}. eddy does not start the task over by itself (its state would be lost): restore a checkpoint, or delete the task's directory to rebuild it from the sources"
    )]
    /// Every checkpoint of a task is damaged.
    Corrupt {
        /// Where the checkpoints are.
        url: String,
        /// The task.
        partition: i32,
        /// Each checkpoint tried, and what is wrong with it.
        damaged: String,
    },
    #[error("encoding checkpoint {name}: {why}")]
    /// A checkpoint could not be encoded.
    Encode {
        /// The checkpoint.
        name: String,
        /// Why it could not be encoded.
        why: String,
    },
}

impl CheckpointError {
    /// Who must act.
    pub fn blame(&self) -> crate::topic::Blame {
        match self {
            CheckpointError::Store(e) => e.blame(),
            CheckpointError::SpecChanged { .. } => crate::topic::Blame::User,
            // Damaged files: the disk or whoever touched them.
            CheckpointError::Corrupt { .. } => crate::topic::Blame::Environment,
            CheckpointError::Encode { .. } => crate::topic::Blame::Internal,
        }
    }
}

/// Writes and reads the checkpoints of one job.
pub struct Checkpointer {
    store: Store,
    fingerprint: u32,
    pipeline: String,
    /// Damaged checkpoints passed over on restore, one line each: reported
    /// in the run's summary and counted in its metrics.
    fallbacks: Mutex<Vec<String>>,
}

impl Checkpointer {
    /// Checkpoints of pipeline `pipeline` under `store`, for views with `fingerprint`.
    pub fn new(store: Store, pipeline: &str, fingerprint: u32) -> Checkpointer {
        Checkpointer {
            store,
            fingerprint,
            pipeline: pipeline.to_string(),
            fallbacks: Mutex::new(Vec::new()),
        }
    }

    /// Where the checkpoints are.
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
        let name = format!("{dir}/ckpt-{seq:012}.bin");
        let ckpt = Checkpoint {
            format: FORMAT,
            fingerprint: self.fingerprint,
            pipeline: self.pipeline.clone(),
            seq,
            task,
        };
        let bytes = encode(&ckpt).map_err(|why| CheckpointError::Encode {
            name: name.clone(),
            why,
        })?;
        let size = bytes.len();
        self.store.put(&name, bytes)?;
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

    /// The newest good checkpoint of a task, if it has any. A damaged one
    /// (bad checksum, truncated, or another task's or pipeline's) is passed
    /// over for the one before it, loudly: a warning, and a line in
    /// [`Checkpointer::fallbacks`]. A task whose checkpoints are all damaged
    /// is an error, never a silent start from nothing.
    pub fn latest(&self, partition: i32) -> Result<Option<Checkpoint>, CheckpointError> {
        let names = self.names(&Self::dir(partition))?;
        let mut damaged = Vec::new();
        for name in names.iter().rev() {
            let Some(bytes) = self.store.get(name)? else {
                continue;
            };
            match self.check(&bytes, partition) {
                Ok(ckpt) => {
                    if !damaged.is_empty() {
                        let line = format!(
                            "task {partition}: passed over {} (restored {name} instead, so the task replays from an older position)",
                            damaged.join("; ")
                        );
                        let mut fallbacks = self.fallbacks.lock().expect("poisoned");
                        if !fallbacks.contains(&line) {
                            tracing::warn!(url = self.url(), "checkpoint fallback: {line}");
                            fallbacks.push(line);
                        }
                    }
                    return Ok(Some(ckpt));
                }
                Err(Damage::SpecChanged) => {
                    return Err(CheckpointError::SpecChanged {
                        url: self.url().into(),
                        name: name.clone(),
                    });
                }
                Err(Damage::Bad(why)) => damaged.push(format!("{name} ({why})")),
            }
        }
        if damaged.is_empty() {
            Ok(None)
        } else {
            Err(CheckpointError::Corrupt {
                url: self.url().into(),
                partition,
                damaged: damaged.join("; "),
            })
        }
    }

    /// Damaged checkpoints passed over so far, one line each.
    pub fn fallbacks(&self) -> Vec<String> {
        self.fallbacks.lock().expect("poisoned").clone()
    }

    fn check(&self, bytes: &[u8], partition: i32) -> Result<Checkpoint, Damage> {
        let ckpt = decode(bytes).map_err(Damage::Bad)?;
        if ckpt.format != FORMAT || ckpt.fingerprint != self.fingerprint {
            return Err(Damage::SpecChanged);
        }
        if ckpt.pipeline != self.pipeline {
            return Err(Damage::Bad(format!(
                "it belongs to pipeline `{}`",
                ckpt.pipeline
            )));
        }
        if ckpt.task.partition != partition {
            return Err(Damage::Bad(format!(
                "it belongs to task {}",
                ckpt.task.partition
            )));
        }
        Ok(ckpt)
    }
}

/// What is wrong with one checkpoint object.
enum Damage {
    /// Written for other views (or by another format): a user decision.
    SpecChanged,
    /// Damaged or misplaced: the previous checkpoint may serve.
    Bad(String),
}

/// Marks the exchange appended after the body, with its format's version:
/// its shape changes as re-keying grows (lookups came second), and a
/// checkpoint must say which one it holds rather than decode into
/// something else.
const EXCHANGE_TAG: &[u8] = b"EXCH2";

/// The body is the checkpoint, then (tasks with re-keyed views) the task's
/// exchange after [`EXCHANGE_TAG`]: appended rather than a field, so
/// checkpoints of older eddy versions, which end after the checkpoint,
/// still decode.
fn encode(ckpt: &Checkpoint) -> Result<Vec<u8>, String> {
    let mut body = postcard::to_allocvec(ckpt).map_err(|e| e.to_string())?;
    if let Some(x) = &ckpt.task.exchange {
        body.extend_from_slice(EXCHANGE_TAG);
        body.extend(postcard::to_allocvec(x).map_err(|e| e.to_string())?);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(if bytes.len() < 12 {
            format!("only {} bytes", bytes.len())
        } else {
            "not an eddy checkpoint of format 3 (written by an older eddy, or damaged)".into()
        });
    }
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let body = &bytes[12..];
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch: the object was damaged or truncated".into());
    }
    let (mut ckpt, mut rest): (Checkpoint, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| format!("does not decode: {e}"))?;
    if !rest.is_empty() {
        let Some(tagged) = rest.strip_prefix(EXCHANGE_TAG) else {
            return Err("its re-keyed views' exchange was written by an eddy before lookups (November 2026); replay from the topics with a new checkpoint location".into());
        };
        let (exchange, after) = postcard::take_from_bytes(tagged)
            .map_err(|e| format!("its exchange does not decode: {e}"))?;
        ckpt.task.exchange = Some(exchange);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the checkpoint", rest.len()));
    }
    Ok(ckpt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::task::{Task, TaskConfig};
    use std::sync::Arc;

    fn snapshot(partition: i32) -> TaskSnapshot {
        let cfg = TaskConfig::new(&[("events".into(), 0)], &[], &[]).unwrap();
        Task::new(Arc::new(cfg), partition).snapshot()
    }

    fn stored(ck: &Checkpointer, name: &str) -> Vec<u8> {
        ck.store.get(name).unwrap().unwrap().to_vec()
    }

    fn setup() -> Checkpointer {
        let ck = Checkpointer::new(Store::open("memory://ckpt").unwrap(), "p", 7);
        ck.write(1, snapshot(0)).unwrap();
        ck.write(2, snapshot(0)).unwrap();
        ck.write(1, snapshot(1)).unwrap();
        ck
    }

    const NEWEST: &str = "task-00000/ckpt-000000000002.bin";

    /// The exchange (re-keyed views: rows to release, lookups to answer,
    /// probed events waiting for answers) rides after the body with its
    /// version; one written before lookups existed (no tag) is refused by
    /// name rather than decoded into other fields.
    #[test]
    fn the_exchange_round_trips_and_an_untagged_one_is_refused_by_name() {
        use crate::engine::task::Row;
        use crate::engine::task::shuffle::{Exchange, Waiting};
        use crate::engine::value::Scalar;
        let mut snap = snapshot(0);
        let mut x = Exchange::new(2);
        x.waiting.push_back(Waiting {
            row: Row {
                ts: 5,
                source: 0,
                offset: 1,
                key: Scalar::Long(3),
                columns: Box::new([Scalar::Str("a".into())]),
            },
            values: vec![Scalar::Null],
            missing: vec![(0, 0, 1)],
        });
        snap.exchange = Some(x);
        let ck = Checkpointer::new(Store::open("memory://ckpt-x").unwrap(), "p", 7);
        ck.write(1, snap).unwrap();
        let back = ck.latest(0).unwrap().unwrap();
        let waiting = &back.task.exchange.as_ref().unwrap().waiting;
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].row.columns[0], Scalar::Str("a".into()));

        let bytes = stored(&ck, "task-00000/ckpt-000000000001.bin");
        let body = &bytes[12..];
        let at = body
            .windows(EXCHANGE_TAG.len())
            .rposition(|w| w == EXCHANGE_TAG)
            .unwrap();
        let mut old = body[..at].to_vec();
        old.extend_from_slice(&body[at + EXCHANGE_TAG.len()..]);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&crc32fast::hash(&old).to_le_bytes());
        framed.extend_from_slice(&old);
        let err = decode(&framed).err().unwrap();
        assert!(err.contains("written by an eddy before lookups"), "{err}");
    }

    /// Regression: 3 of 35 single-bit flips in a checkpoint were accepted
    /// and changed features; now every flip of every bit is refused, and
    /// the task falls back to the checkpoint before.
    #[test]
    fn bit_flipped_checkpoint_was_accepted() {
        let ck = setup();
        let good = stored(&ck, NEWEST);
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            ck.store.put(NEWEST, bad).unwrap();
            let back = ck.latest(0).unwrap().expect("the previous one");
            assert_eq!(back.seq, 1, "bit {bit}");
        }
        assert!(!ck.fallbacks().is_empty());
    }

    #[test]
    fn truncated_checkpoint_falls_back_to_the_previous_one() {
        let ck = setup();
        let good = stored(&ck, NEWEST);
        for len in [0, 5, 11, 12, good.len() / 2, good.len() - 1] {
            ck.store.put(NEWEST, good[..len].to_vec()).unwrap();
            assert_eq!(ck.latest(0).unwrap().unwrap().seq, 1, "cut at {len}");
        }
        assert!(
            ck.fallbacks()[0].contains("passed over"),
            "{:?}",
            ck.fallbacks()
        );
    }

    /// Regression: task 1's checkpoint placed as task 0's was accepted (and
    /// the bounded run never finished).
    #[test]
    fn checkpoint_of_another_task_was_accepted() {
        let ck = setup();
        let other = stored(&ck, "task-00001/ckpt-000000000001.bin");
        ck.store.put(NEWEST, other).unwrap();
        let back = ck.latest(0).unwrap().unwrap();
        assert_eq!((back.seq, back.task.partition), (1, 0));
        assert!(ck.fallbacks()[0].contains("belongs to task 1"));
    }

    #[test]
    fn every_checkpoint_damaged_is_an_error_not_a_fresh_start() {
        let ck = setup();
        for name in ck.names("task-00000").unwrap() {
            ck.store.put(&name, b"EDDYCKP3garbage".to_vec()).unwrap();
        }
        let err = match ck.latest(0) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("accepted checkpoint {:?}", c.map(|c| c.seq)),
        };
        assert!(err.contains("no usable checkpoint for task 0"), "{err}");
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn a_checkpoint_of_another_spec_is_not_passed_over() {
        let ck = setup();
        let other = Checkpointer::new(ck.store.clone(), "p", 8);
        assert!(matches!(
            other.latest(0),
            Err(CheckpointError::SpecChanged { .. })
        ));
    }
}
