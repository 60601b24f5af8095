//! Maintenance of one partition of the local log: compaction (the latest
//! record per key, tombstones kept for a while) and retention (whole
//! segments older than the limit), each segment replaced by an atomic
//! rename so readers with the file open keep reading the old one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::partition::*;
use super::segment::{self, StoredRecord};
use crate::topic::TopicError;

/// Rules for [`maintain`].
pub(crate) struct Maintenance {
    pub compact: bool,
    pub delete_retention_ms: i64,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    pub now_ms: i64,
}

/// What [`maintain`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Records removed by compaction.
    pub compacted_away: u64,
    /// Segments deleted by retention (or emptied by compaction).
    pub segments_deleted: u64,
}

/// Compacts and applies retention to the closed segments of a partition.
/// The active segment is never touched, as in Kafka. Must run in the process
/// that holds the partition's writer lock.
pub(crate) fn maintain(
    writer: &PartitionWriter,
    rules: &Maintenance,
) -> Result<MaintenanceReport, TopicError> {
    let dir = writer.dir();
    let mut report = MaintenanceReport::default();
    let bases = segment::list_segments(dir).map_err(TopicError::io(dir))?;
    let mut closed: Vec<i64> = bases
        .into_iter()
        .filter(|b| *b < writer.active_base())
        .collect();

    if let Some(retention_ms) = rules.retention_ms {
        let horizon = rules.now_ms - retention_ms;
        while let Some(&base) = closed.first() {
            let path = segment::segment_path(dir, base);
            let records = segment::scan(&path)
                .map_err(TopicError::io(&path))?
                .whole(&path)?;
            let newest = records
                .iter()
                .map(|r| r.timestamp_ms)
                .max()
                .unwrap_or(i64::MIN);
            if newest >= horizon {
                break;
            }
            remove_segment(&path, &mut report)?;
            closed.remove(0);
        }
    }
    if let Some(limit) = rules.retention_bytes {
        let size = |b: &i64| {
            fs::metadata(segment::segment_path(dir, *b))
                .map(|m| m.len() as i64)
                .unwrap_or(0)
        };
        let active = fs::metadata(segment::segment_path(dir, writer.active_base()))
            .map(|m| m.len() as i64)
            .unwrap_or(0);
        let mut total: i64 = closed.iter().map(size).sum::<i64>() + active;
        while total > limit && !closed.is_empty() {
            let base = closed.remove(0);
            total -= size(&base);
            remove_segment(&segment::segment_path(dir, base), &mut report)?;
        }
    }

    if rules.compact && !closed.is_empty() {
        // The latest offset of every key, over all segments including the
        // active one: a newer record anywhere supersedes an older one.
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut all = closed.clone();
        all.push(writer.active_base());
        for base in &all {
            let path = segment::segment_path(dir, *base);
            let scan = segment::scan(&path).map_err(TopicError::io(&path))?;
            // The active segment may end in a record still being written;
            // damage anywhere else stops compaction before it rewrites.
            let records = if *base == writer.active_base() {
                match scan.damage(&path) {
                    Some(damage) => return Err(damage),
                    None => scan.records,
                }
            } else {
                scan.whole(&path)?
            };
            for r in records {
                if let Some(k) = r.key {
                    latest.insert(k, r.offset);
                }
            }
        }
        let tombstone_horizon = rules.now_ms - rules.delete_retention_ms;
        for base in closed {
            let path = segment::segment_path(dir, base);
            let records = segment::scan(&path)
                .map_err(TopicError::io(&path))?
                .whole(&path)?;
            let before = records.len();
            let kept: Vec<&StoredRecord> = records
                .iter()
                .filter(|r| match &r.key {
                    Some(k) => {
                        latest.get(k) == Some(&r.offset)
                            && (r.value.is_some() || r.timestamp_ms >= tombstone_horizon)
                    }
                    None => true,
                })
                .collect();
            if kept.len() == before {
                continue;
            }
            report.compacted_away += (before - kept.len()) as u64;
            if kept.is_empty() {
                remove_segment(&path, &mut report)?;
                continue;
            }
            let buf = segment::encode_segment(kept);
            let tmp = path.with_extension("compacting");
            let mut f = File::create(&tmp).map_err(TopicError::io(&tmp))?;
            f.write_all(&buf)
                .and_then(|_| f.sync_all())
                .map_err(TopicError::io(&tmp))?;
            fs::rename(&tmp, &path).map_err(TopicError::io(&path))?;
        }
        sync_dir(dir)?;
    }
    Ok(report)
}

fn remove_segment(path: &Path, report: &mut MaintenanceReport) -> Result<(), TopicError> {
    fs::remove_file(path).map_err(TopicError::io(path))?;
    report.segments_deleted += 1;
    Ok(())
}
