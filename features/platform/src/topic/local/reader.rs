//! Reading one partition of the local log: follows new segments as the
//! writer rolls them, treats a record still being written as "not yet",
//! and keeps reading a segment compaction replaced through its open file
//! handle (the replacement is an atomic rename). Readers take no lock.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use super::segment::{self, Decoded, HEADER_LEN, MAGIC, StoredRecord};
use crate::topic::TopicError;

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

    pub(super) fn open_segment(&mut self, base: i64) -> Result<bool, TopicError> {
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
