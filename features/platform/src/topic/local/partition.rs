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

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::reader::PartitionReader;
use super::segment::{self, HEADER_LEN, MAGIC};
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
