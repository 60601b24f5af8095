//! Committed consumer-group offsets of the local log.
//!
//! One small JSON file per group (`groups/<group>.json`), replaced atomically
//! (write to a temporary file, fsync, rename, fsync the directory), so a crash
//! leaves either the old or the new offsets, never a mix. The local log serves
//! one process; two processes committing for the same group overwrite each
//! other's files (the last commit wins), which is why scale-out is Kafka's job.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::partition::sync_dir;
use crate::topic::TopicError;

/// The offsets of one group: `topic/partition` -> next offset to read.
pub(crate) type GroupOffsets = BTreeMap<String, i64>;

fn group_file(root: &Path, group: &str) -> PathBuf {
    // Group names are free text in Kafka; keep the file name safe.
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join("groups").join(format!("{safe}.json"))
}

pub(crate) fn slot(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

pub(crate) fn load(root: &Path, group: &str) -> Result<GroupOffsets, TopicError> {
    let path = group_file(root, group);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TopicError::Corrupt {
            path: path.clone(),
            position: e.column() as u64,
            reason: format!("group offsets are not valid JSON: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GroupOffsets::new()),
        Err(e) => Err(TopicError::io(&path)(e)),
    }
}

pub(crate) fn commit(
    root: &Path,
    group: &str,
    offsets: &[(String, i32, i64)],
) -> Result<(), TopicError> {
    let path = group_file(root, group);
    let dir = path.parent().expect("groups dir");
    fs::create_dir_all(dir).map_err(TopicError::io(dir))?;
    let mut all = load(root, group)?;
    for (topic, partition, offset) in offsets {
        all.insert(slot(topic, *partition), *offset);
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(TopicError::io(&tmp))?;
    f.write_all(&serde_json::to_vec_pretty(&all).expect("map of strings to ints serializes"))
        .and_then(|_| f.sync_all())
        .map_err(TopicError::io(&tmp))?;
    fs::rename(&tmp, &path).map_err(TopicError::io(&path))?;
    sync_dir(dir)
}
