//! One partition of the local log: its writer, its readers, and maintenance
//! (compaction and retention).
//!
//! Durability: [`PartitionWriter::append`] buffers in memory; the buffer is
//! written to the OS when it passes 256 KiB, and written *and fsynced*
//! (`fdatasync`) by [`PartitionWriter::flush`], on every segment roll, and on
//! drop. So a record is durable once the producer's `flush()` returned; a
//! crash before that loses at most the records queued since the last flush,
//! and never corrupts earlier ones (a torn tail is cut off on the next open).
//!
//! Concurrency: one writer per partition, enforced with an exclusive `flock`
//! on `.lock` in the partition directory, so a second process gets a clear
//! error instead of interleaving bytes. Readers take no lock: they read the
//! files directly, treat a record that is still being written as "not yet",
//! and keep reading a segment that compaction replaced through their open
//! file handle (the replacement is an atomic rename).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::segment::{self, Decoded, HEADER_LEN, MAGIC, StoredRecord};
use crate::topic::{Header, TopicError};

const WRITE_BUFFER: usize = 256 * 1024;

/// The single writer of a partition.
pub(crate) struct PartitionWriter {
    dir: PathBuf,
    _lock: File,
    active: File,
    active_base: i64,
    active_len: u64,
    next_offset: i64,
    /// Offset after the last record handed to the OS (visible to readers).
    visible_next_offset: i64,
    buf: Vec<u8>,
    buffered_records: usize,
    segment_bytes: u64,
}

impl PartitionWriter {
    /// Opens the partition for writing: takes the lock, checks the active
    /// segment and cuts off a torn tail left by a crash.
    pub(crate) fn open(dir: &Path, segment_bytes: u64) -> Result<Self, TopicError> {
        fs::create_dir_all(dir).map_err(TopicError::io(dir))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(TopicError::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(TopicError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(e)) => return Err(TopicError::io(&lock_path)(e)),
        }
        let bases = segment::list_segments(dir).map_err(TopicError::io(dir))?;
        let (active_base, active, active_len, next_offset) = match bases.last() {
            None => {
                let (file, len) = create_segment(dir, 0)?;
                (0, file, len, 0)
            }
            Some(&base) => {
                let path = segment::segment_path(dir, base);
                let scan = segment::scan(&path).map_err(TopicError::io(&path))?;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(TopicError::io(&path))?;
                let mut valid_len = scan.valid_len;
                // Damage with valid records after it is not a torn write:
                // refuse to open rather than cut them off and hand their
                // offsets to new records.
                if let Some(damage) = scan.damage(&path) {
                    return Err(damage);
                }
                if let Some(why) = &scan.stopped {
                    let file_len = fs::metadata(&path).map(|m| m.len()).unwrap_or(valid_len);
                    tracing::warn!(segment = %path.display(), reason = %why, kept_records = scan.records.len(),
                        cut_bytes = file_len.saturating_sub(valid_len),
                        "local log: cutting off a torn tail (crash during write; no valid record follows it); records before it are kept");
                    if valid_len < HEADER_LEN {
                        file.set_len(0).map_err(TopicError::io(&path))?;
                        (&file).write_all(MAGIC).map_err(TopicError::io(&path))?;
                        valid_len = HEADER_LEN;
                    } else {
                        file.set_len(valid_len).map_err(TopicError::io(&path))?;
                    }
                    file.sync_all().map_err(TopicError::io(&path))?;
                }
                let next = match scan.records.last() {
                    Some(r) => r.offset + 1,
                    None => base,
                };
                (base, file, valid_len, next)
            }
        };
        let mut active = active;
        active
            .seek(SeekFrom::Start(active_len))
            .map_err(TopicError::io(dir))?;
        Ok(PartitionWriter {
            dir: dir.to_path_buf(),
            _lock: lock,
            active,
            active_base,
            active_len,
            next_offset,
            visible_next_offset: next_offset,
            buf: Vec::with_capacity(WRITE_BUFFER),
            buffered_records: 0,
            segment_bytes,
        })
    }

    /// Appends a record and returns its offset. Returns `rolled = true` when
    /// this append closed a segment (the caller may then run maintenance).
    pub(crate) fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Result<(i64, bool), TopicError> {
        let mut rolled = false;
        let pending = self.active_len + self.buf.len() as u64;
        if pending > HEADER_LEN && pending >= self.segment_bytes {
            self.roll()?;
            rolled = true;
        }
        let offset = self.next_offset;
        segment::encode(&mut self.buf, offset, timestamp_ms, key, value, headers);
        self.next_offset += 1;
        self.buffered_records += 1;
        if self.buf.len() >= WRITE_BUFFER {
            self.write_out()?;
        }
        Ok((offset, rolled))
    }

    /// Hands buffered records to the OS, making them visible to readers.
    fn write_out(&mut self) -> Result<(), TopicError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = segment::segment_path(&self.dir, self.active_base);
        self.active
            .write_all(&self.buf)
            .map_err(TopicError::io(&path))?;
        self.active_len += self.buf.len() as u64;
        self.buf.clear();
        self.buffered_records = 0;
        self.visible_next_offset = self.next_offset;
        Ok(())
    }

    /// Writes everything appended so far to the OS (visible to readers, not
    /// yet durable).
    pub(crate) fn publish(&mut self) -> Result<(), TopicError> {
        self.write_out()
    }

    /// Writes and fsyncs everything appended so far.
    pub(crate) fn flush(&mut self) -> Result<(), TopicError> {
        self.write_out()?;
        let path = segment::segment_path(&self.dir, self.active_base);
        self.active.sync_data().map_err(TopicError::io(&path))
    }

    fn roll(&mut self) -> Result<(), TopicError> {
        self.flush()?;
        let (file, len) = create_segment(&self.dir, self.next_offset)?;
        self.active = file;
        self.active_base = self.next_offset;
        self.active_len = len;
        Ok(())
    }

    /// Offset after the last record readers can see.
    pub(crate) fn visible_high_watermark(&self) -> i64 {
        self.visible_next_offset
    }

    /// Base offset of the segment being written (never compacted or deleted).
    pub(crate) fn active_base(&self) -> i64 {
        self.active_base
    }

    /// The partition directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PartitionWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "local log: flushing on close failed");
        }
    }
}

fn create_segment(dir: &Path, base: i64) -> Result<(File, u64), TopicError> {
    let path = segment::segment_path(dir, base);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(TopicError::io(&path))?;
    file.write_all(MAGIC).map_err(TopicError::io(&path))?;
    file.sync_all().map_err(TopicError::io(&path))?;
    sync_dir(dir)?;
    Ok((file, HEADER_LEN))
}

/// Makes a file creation, rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), TopicError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(TopicError::io(dir))
}

/// Reads one partition from a given offset, following new segments as they
/// appear. Used by consumers in any process.
pub(crate) struct PartitionReader {
    dir: PathBuf,
    /// The open segment: base offset, file, bytes read from it but not yet
    /// decoded, and where in the file they end.
    current: Option<OpenSegment>,
    /// Next offset to return; records below it are skipped.
    next_offset: i64,
    /// Offsets have no holes (the topic is not compacted), so a record
    /// past `next_offset` means records are missing: a deleted or truncated
    /// segment, or retention that deleted records before they were read.
    contiguous: bool,
    /// `next_offset` is a position the caller asked for (not "from the
    /// oldest record"), so even the first record must be exactly there.
    exact: bool,
}

struct OpenSegment {
    base: i64,
    file: File,
    pending: Vec<u8>,
    pending_pos: usize,
    /// File position of `pending[0]`.
    pending_file_pos: u64,
}

impl PartitionReader {
    /// A reader from `start`, which need not exist yet (a reader of the
    /// oldest record passes 0). With `contiguous` (a topic that is not
    /// compacted), a hole in the offsets is an error rather than a skip;
    /// `exact` applies that to the first record too (a position the caller
    /// recorded, such as a checkpoint's, rather than "the oldest record").
    pub(crate) fn new(dir: PathBuf, start: i64, contiguous: bool, exact: bool) -> Self {
        PartitionReader {
            dir,
            current: None,
            next_offset: start,
            contiguous,
            exact: contiguous && exact,
        }
    }

    /// Repositions the reader at a recorded position.
    pub(crate) fn seek(&mut self, offset: i64) {
        self.next_offset = offset;
        self.current = None;
        self.exact = self.contiguous;
    }

    /// The error for records that should be at `self.next_offset` but the
    /// next one on disk is `found`.
    fn missing(&self, found: i64, why: &str) -> TopicError {
        TopicError::Missing {
            dir: self.dir.clone(),
            from: self.next_offset,
            to: found,
            reason: why.to_string(),
        }
    }

    /// Reads up to `max` records into `out`; returns how many.
    pub(crate) fn read(
        &mut self,
        max: usize,
        out: &mut Vec<StoredRecord>,
    ) -> Result<usize, TopicError> {
        let mut n = 0;
        while n < max {
            if self.current.is_none() && !self.open_segment_for(self.next_offset)? {
                break;
            }
            let seg = self.current.as_mut().expect("opened above");
            // Records before the wanted offset are skipped by their header,
            // without a CRC check or a copy.
            if let Some((offset, used)) = segment::peek(&seg.pending[seg.pending_pos..])
                && offset < self.next_offset
            {
                seg.pending_pos += used;
                continue;
            }
            match segment::decode(&seg.pending[seg.pending_pos..]) {
                Decoded::Record(r, used) => {
                    if r.offset > self.next_offset && self.exact {
                        let why = if r.offset == seg.base {
                            "the segments holding them are gone (deleted by hand, or by retention before they were read)"
                        } else {
                            "they are missing from the middle of a segment"
                        };
                        return Err(self.missing(r.offset, why));
                    }
                    let seg = self.current.as_mut().expect("opened above");
                    seg.pending_pos += used;
                    if r.offset >= self.next_offset {
                        self.next_offset = r.offset + 1;
                        self.exact = self.contiguous;
                        out.push(r);
                        n += 1;
                    }
                }
                Decoded::Incomplete => {
                    if !self.fill()? && !self.advance_segment()? {
                        break;
                    }
                }
                Decoded::Corrupt(why) => {
                    // A reader can see a record the writer is still writing.
                    // Only a bad record with more data after it is corruption.
                    let seg = self.current.as_ref().expect("opened above");
                    let at = &seg.pending[seg.pending_pos..];
                    let claimed =
                        8 + u32::from_le_bytes(at[0..4].try_into().expect("4 bytes")) as usize;
                    if at.len() > claimed {
                        let path = segment::segment_path(&self.dir, seg.base);
                        let position = seg.pending_file_pos + seg.pending_pos as u64;
                        return Err(TopicError::Corrupt {
                            path,
                            position,
                            reason: why,
                        });
                    }
                    if !self.fill()? {
                        // No more bytes: a record being written, unless a
                        // newer segment exists (this one is closed).
                        self.check_not_closed(&why)?;
                        break;
                    }
                }
            }
        }
        Ok(n)
    }

    /// Unread bytes at the end of the open segment are a record still being
    /// written, unless a newer segment exists: the writer finished this
    /// one before creating the next, so a closed segment ending inside a
    /// record was truncated or damaged, and the records in it are lost.
    fn check_not_closed(&mut self, why: &str) -> Result<(), TopicError> {
        let bases = segment::list_segments(&self.dir).map_err(TopicError::io(&self.dir))?;
        let seg = self.current.as_ref().expect("segment open");
        if !bases.iter().any(|b| *b > seg.base) {
            return Ok(());
        }
        // The last write may have landed after our last read.
        if self.fill()? {
            return Ok(());
        }
        let seg = self.current.as_ref().expect("segment open");
        let unread = seg.pending.len() - seg.pending_pos;
        Err(TopicError::Corrupt {
            path: segment::segment_path(&self.dir, seg.base),
            position: seg.pending_file_pos + seg.pending_pos as u64,
            reason: format!(
                "{why}: the closed segment ends inside a record ({unread} bytes left), so it was truncated or damaged and the records after this byte are lost"
            ),
        })
    }

    /// Reads more bytes of the open segment. False if the file has none.
    fn fill(&mut self) -> Result<bool, TopicError> {
        let seg = self.current.as_mut().expect("segment open");
        if seg.pending_pos > 0 {
            seg.pending_file_pos += seg.pending_pos as u64;
            seg.pending.drain(..seg.pending_pos);
            seg.pending_pos = 0;
        }
        let before = seg.pending.len();
        // Grow the buffer by what the file holds beyond it (up to 1 MiB),
        // not by a fixed 1 MiB: at the tail of a live topic a poll finds a
        // few bytes or none, and zeroing a megabyte per partition per poll
        // was most of the cost of a tailing consumer.
        let end = seg.pending_file_pos + before as u64;
        let want = match seg.file.metadata() {
            Ok(m) => (m.len().saturating_sub(end) as usize).min(1024 * 1024),
            Err(_) => 64 * 1024,
        };
        if want == 0 {
            return Ok(false);
        }
        seg.pending.resize(before + want, 0);
        let read = seg.file.read(&mut seg.pending[before..]);
        let read = match read {
            Ok(n) => n,
            Err(e) => {
                seg.pending.truncate(before);
                return Err(TopicError::io(segment::segment_path(&self.dir, seg.base))(
                    e,
                ));
            }
        };
        seg.pending.truncate(before + read);
        Ok(read > 0)
    }

    /// At the end of the open segment: moves to the next one if a newer
    /// segment exists (which means the open one is complete).
    fn advance_segment(&mut self) -> Result<bool, TopicError> {
        let bases = segment::list_segments(&self.dir).map_err(TopicError::io(&self.dir))?;
        let base = self.current.as_ref().expect("segment open").base;
        let Some(&next) = bases.iter().find(|b| **b > base) else {
            return Ok(false);
        };
        // The writer finished this segment before it created the next one,
        // but our last read may have raced with its final write.
        if self.fill()? {
            return Ok(true);
        }
        let seg = self.current.as_ref().expect("segment open");
        if seg.pending_pos < seg.pending.len() {
            self.check_not_closed("a torn record")?;
            return Ok(true);
        }
        self.current = None;
        self.open_segment(next)?;
        Ok(true)
    }

    /// Opens the segment that holds `offset` (or the first after it).
    fn open_segment_for(&mut self, offset: i64) -> Result<bool, TopicError> {
        let bases = match segment::list_segments(&self.dir) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(TopicError::io(&self.dir)(e)),
        };
        let Some(first) = bases.first() else {
            return Ok(false);
        };
        let base = bases.iter().rev().find(|b| **b <= offset).unwrap_or(first);
        self.open_segment(*base)
    }

    fn open_segment(&mut self, base: i64) -> Result<bool, TopicError> {
        let path = segment::segment_path(&self.dir, base);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            // Deleted by retention or compaction between listing and opening.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(TopicError::io(&path)(e)),
        };
        let mut magic = [0u8; 8];
        match file.read_exact(&mut magic) {
            Ok(()) if &magic == MAGIC => {}
            // A segment that is being created: nothing to read yet.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Ok(()) => {
                return Err(TopicError::Corrupt {
                    path,
                    position: 0,
                    reason: "segment header is not EDDYLOG1".into(),
                });
            }
            Err(e) => return Err(TopicError::io(&path)(e)),
        }
        self.current = Some(OpenSegment {
            base,
            file,
            pending: Vec::new(),
            pending_pos: 0,
            pending_file_pos: HEADER_LEN,
        });
        Ok(true)
    }
}

/// First and next offsets of a partition as stored on disk: (low, high).
pub(crate) fn offsets_on_disk(dir: &Path) -> Result<(i64, i64), TopicError> {
    let bases = match segment::list_segments(dir) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(TopicError::io(dir)(e)),
    };
    let Some(&last) = bases.last() else {
        return Ok((0, 0));
    };
    let path = segment::segment_path(dir, last);
    let high = segment::next_offset_after(&path)
        .map_err(TopicError::io(&path))?
        .unwrap_or(last);
    let low = first_offset(dir, &bases)?.unwrap_or(high);
    Ok((low, high))
}

fn first_offset(dir: &Path, bases: &[i64]) -> Result<Option<i64>, TopicError> {
    for &base in bases {
        let mut reader = PartitionReader::new(dir.to_path_buf(), base, false, false);
        let mut out = Vec::new();
        if reader.open_segment(base)? && reader.read(1, &mut out)? == 1 {
            return Ok(Some(out[0].offset));
        }
    }
    Ok(None)
}

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
            let mut buf = MAGIC.to_vec();
            for r in kept {
                segment::encode(
                    &mut buf,
                    r.offset,
                    r.timestamp_ms,
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &r.headers,
                );
            }
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
