//! The on-disk format of one local-log segment file.
//!
//! A partition is a directory of segments named after the offset of their
//! first record (`00000000000000000000.log`). A segment starts with the 8-byte
//! magic `EDDYLOG1` and holds records back to back:
//!
//! ```text
//! u32 body_len | u32 crc32(body) | body
//! body = i64 offset | i64 timestamp_ms
//!      | i32 key_len (-1 = null)   | key
//!      | i32 value_len (-1 = null) | value
//!      | u32 header_count | { u32 name_len | name | i32 value_len (-1 = null) | value }*
//! ```
//!
//! All integers are little-endian. The length prefix lets a reader skip a
//! record without decoding it; the CRC lets the writer find where a crash
//! tore the tail of the active segment, and lets a reader in another process
//! tell a record that is still being written from a finished one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::topic::{Header, TopicError};

/// First bytes of every segment file (format version 1).
pub(crate) const MAGIC: &[u8; 8] = b"EDDYLOG1";
/// Length of [`MAGIC`].
pub(crate) const HEADER_LEN: u64 = MAGIC.len() as u64;
/// Length prefix plus CRC.
const FRAME_LEN: usize = 8;
/// Largest body we accept; anything larger is treated as corruption.
pub(crate) const MAX_BODY: usize = 256 * 1024 * 1024;

/// A record as stored in a segment (topic and partition come from the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

/// Appends the framed encoding of one record to `buf`.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    offset: i64,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_LEN]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    put_bytes(buf, key);
    put_bytes(buf, value);
    buf.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for h in headers {
        buf.extend_from_slice(&(h.key.len() as u32).to_le_bytes());
        buf.extend_from_slice(h.key.as_bytes());
        put_bytes(buf, h.value.as_deref());
    }
    let body_len = (buf.len() - start - FRAME_LEN) as u32;
    let crc = crc32fast::hash(&buf[start + FRAME_LEN..]);
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
        Some(b) => {
            buf.extend_from_slice(&(b.len() as i32).to_le_bytes());
            buf.extend_from_slice(b);
        }
    }
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole, valid record and the number of bytes it took.
    Record(StoredRecord, usize),
    /// The buffer ends inside a record: more bytes may still arrive.
    Incomplete,
    /// The bytes cannot be a record (bad CRC with the full length present,
    /// impossible lengths, or a body that does not parse).
    Corrupt(String),
}

/// The offset and framed length of the record at the start of `buf`, read
/// from its header without checking or copying the body. Lets readers skip
/// records they will not return (a seek into a segment) at the cost of a
/// pointer chase. `None`: fewer bytes than a header, or a length that cannot
/// be a record (callers then fall back to [`decode`], which says which).
pub(crate) fn peek(buf: &[u8]) -> Option<(i64, usize)> {
    if buf.len() < FRAME_LEN + 8 {
        return None;
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if !(20..=MAX_BODY).contains(&body_len) || buf.len() < FRAME_LEN + body_len {
        return None;
    }
    let offset = i64::from_le_bytes(buf[FRAME_LEN..FRAME_LEN + 8].try_into().expect("8 bytes"));
    Some((offset, FRAME_LEN + body_len))
}

/// The offset after the last whole, valid record of a segment, found by
/// walking record lengths and checking only the last record's CRC. `None`
/// if the segment holds no valid record.
pub(crate) fn next_offset_after(path: &Path) -> io::Result<Option<i64>> {
    let data = fs::read(path)?;
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Ok(None);
    }
    let mut pos = MAGIC.len();
    let mut last: Option<usize> = None;
    while let Some((_, used)) = peek(&data[pos..]) {
        last = Some(pos);
        pos += used;
    }
    // The walk stops at a torn tail; the last record it passed must still
    // pass its CRC.
    let Some(last) = last else { return Ok(None) };
    match decode(&data[last..]) {
        Decoded::Record(r, _) => Ok(Some(r.offset + 1)),
        // Rare (a damaged record): fall back to the full scan.
        _ => Ok(scan(path)?.records.last().map(|r| r.offset + 1)),
    }
}

/// Decodes the record at the start of `buf`.
pub(crate) fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < FRAME_LEN {
        return Decoded::Incomplete;
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if !(20..=MAX_BODY).contains(&body_len) {
        return Decoded::Corrupt(format!("impossible record length {body_len}"));
    }
    if buf.len() < FRAME_LEN + body_len {
        return Decoded::Incomplete;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let body = &buf[FRAME_LEN..FRAME_LEN + body_len];
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt("checksum mismatch".into());
    }
    match parse_body(body) {
        Some(r) => Decoded::Record(r, FRAME_LEN + body_len),
        None => Decoded::Corrupt("record body does not parse".into()),
    }
}

fn parse_body(body: &[u8]) -> Option<StoredRecord> {
    let mut cur = Cursor { buf: body, pos: 0 };
    let offset = i64::from_le_bytes(cur.take(8)?.try_into().ok()?);
    let timestamp_ms = i64::from_le_bytes(cur.take(8)?.try_into().ok()?);
    let key = cur.nullable_bytes()?;
    let value = cur.nullable_bytes()?;
    let count = u32::from_le_bytes(cur.take(4)?.try_into().ok()?) as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name_len = u32::from_le_bytes(cur.take(4)?.try_into().ok()?) as usize;
        let name = String::from_utf8(cur.take(name_len)?.to_vec()).ok()?;
        let value = cur.nullable_bytes()?;
        headers.push(Header { key: name, value });
    }
    (cur.pos == body.len()).then_some(StoredRecord {
        offset,
        timestamp_ms,
        key,
        value,
        headers,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn nullable_bytes(&mut self) -> Option<Option<Vec<u8>>> {
        let len = i32::from_le_bytes(self.take(4)?.try_into().ok()?);
        match len {
            -1 => Some(None),
            n if n >= 0 => Some(Some(self.take(n as usize)?.to_vec())),
            _ => None,
        }
    }
}

/// Path of the segment whose first offset is `base`.
pub(crate) fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Base offsets of the segments in a partition directory, ascending.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The result of reading a whole segment file.
#[derive(Debug)]
pub(crate) struct Scan {
    pub records: Vec<StoredRecord>,
    /// Bytes of the file that hold the header and whole, valid records.
    pub valid_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
    /// Where a whole, valid record starts after the point where the scan
    /// stopped, if one does. A crash during a write can only leave a torn
    /// *tail*: bad bytes followed by a valid record are damage in the
    /// middle of the data, and cutting there would delete the records after
    /// it.
    pub resumes_at: Option<u64>,
}

impl Scan {
    /// The scan stopped at damage that valid records follow (not a torn
    /// tail), as the error to raise.
    pub(crate) fn damage(&self, path: &Path) -> Option<TopicError> {
        let resumes_at = self.resumes_at?;
        Some(TopicError::Corrupt {
            path: path.to_path_buf(),
            position: self.valid_len,
            reason: format!(
                "{}, and a valid record follows at byte {resumes_at}, so this is damage in the middle of the segment, not a torn write; nothing was changed",
                self.stopped.as_deref().unwrap_or("a bad record")
            ),
        })
    }

    /// The records of a segment that must be whole (a closed one): any
    /// stop, torn or not, is damage.
    pub(crate) fn whole(self, path: &Path) -> Result<Vec<StoredRecord>, TopicError> {
        match &self.stopped {
            None => Ok(self.records),
            Some(why) => Err(TopicError::Corrupt {
                path: path.to_path_buf(),
                position: self.valid_len,
                reason: format!(
                    "{why} in a closed segment (only the active segment can have a torn tail)"
                ),
            }),
        }
    }
}

/// The position of the first whole, valid record at or after `from` whose
/// offset is above `after` (any offset if `None`), found by trying every
/// byte position. Slow, but only run on damaged data: it tells a torn tail
/// (no valid record after the damage) from damage in the middle.
pub(crate) fn find_valid_record(data: &[u8], from: usize, after: Option<i64>) -> Option<usize> {
    (from..data.len()).find(|&pos| match decode(&data[pos..]) {
        Decoded::Record(r, _) => after.is_none_or(|a| r.offset > a),
        _ => false,
    })
}

/// Reads every valid record of a segment, stopping at the first torn or
/// corrupt one (and saying whether valid records follow it).
pub(crate) fn scan(path: &Path) -> io::Result<Scan> {
    let data = fs::read(path)?;
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        let stopped = Some(if data.len() < MAGIC.len() {
            "segment header is incomplete".to_string()
        } else {
            "segment header is not EDDYLOG1".to_string()
        });
        let resumes_at = find_valid_record(&data, 1, None).map(|p| p as u64);
        return Ok(Scan {
            records: Vec::new(),
            valid_len: 0,
            stopped,
            resumes_at,
        });
    }
    let mut pos = MAGIC.len();
    let mut records = Vec::new();
    let mut stopped = None;
    while pos < data.len() {
        match decode(&data[pos..]) {
            Decoded::Record(r, used) => {
                records.push(r);
                pos += used;
            }
            Decoded::Incomplete => {
                stopped = Some(format!("torn record at byte {pos}"));
                break;
            }
            Decoded::Corrupt(why) => {
                stopped = Some(format!("{why} at byte {pos}"));
                break;
            }
        }
    }
    let resumes_at = match stopped {
        Some(_) => {
            find_valid_record(&data, pos + 1, records.last().map(|r| r.offset)).map(|p| p as u64)
        }
        None => None,
    };
    Ok(Scan {
        records,
        valid_len: pos as u64,
        stopped,
        resumes_at,
    })
}

/// A whole segment file of `records`: the magic, then each record framed.
/// Compaction rewrites segments with it.
pub(crate) fn encode_segment<'r>(records: impl IntoIterator<Item = &'r StoredRecord>) -> Vec<u8> {
    let mut buf = MAGIC.to_vec();
    for r in records {
        encode(
            &mut buf,
            r.offset,
            r.timestamp_ms,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = StoredRecord> {
        let bytes = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        let header = (
            "[a-z]{0,8}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        )
            .prop_map(|(key, value)| Header { key, value });
        (
            any::<i64>(),
            any::<i64>(),
            bytes.clone(),
            bytes,
            proptest::collection::vec(header, 0..4),
        )
            .prop_map(|(offset, timestamp_ms, key, value, headers)| StoredRecord {
                offset,
                timestamp_ms,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn round_trip(records in proptest::collection::vec(arb_record(), 0..20)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.log");
            fs::write(&path, encode_segment(&records)).unwrap();
            let scan = scan(&path).unwrap();
            prop_assert_eq!(scan.stopped, None);
            prop_assert_eq!(scan.records, records);
        }

        /// A crash can leave any prefix of the last write on disk. Every
        /// record that was fully written before the cut must survive.
        #[test]
        fn torn_tail_keeps_whole_records(
            records in proptest::collection::vec(arb_record(), 1..12),
            cut in any::<prop::sample::Index>(),
        ) {
            let full = encode_segment(&records);
            let cut = HEADER_LEN as usize + cut.index(full.len() - HEADER_LEN as usize);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.log");
            fs::write(&path, &full[..cut]).unwrap();
            let scan = scan(&path).unwrap();
            let mut ends = vec![HEADER_LEN as usize];
            let mut buf = Vec::new();
            for r in &records {
                encode(&mut buf, r.offset, r.timestamp_ms, r.key.as_deref(), r.value.as_deref(), &r.headers);
                ends.push(HEADER_LEN as usize + buf.len());
            }
            let whole = ends.iter().filter(|e| **e <= cut).count() - 1;
            prop_assert_eq!(&scan.records[..], &records[..whole]);
            prop_assert_eq!(scan.valid_len as usize, ends[whole]);
        }

        /// Walking record headers finds the same end as decoding everything,
        /// however the tail is torn.
        #[test]
        fn header_walk_agrees_with_the_full_scan(
            records in proptest::collection::vec(arb_record(), 0..12),
            cut in any::<prop::sample::Index>(),
        ) {
            let full = encode_segment(&records);
            let cut = HEADER_LEN as usize + cut.index(full.len() - HEADER_LEN as usize + 1);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.log");
            fs::write(&path, &full[..cut.min(full.len())]).unwrap();
            let expected = scan(&path).unwrap().records.last().map(|r| r.offset + 1);
            prop_assert_eq!(next_offset_after(&path).unwrap(), expected);
        }

        /// A flipped bit is caught by the checksum, never returned as data.
        #[test]
        fn flipped_bit_is_detected(record in arb_record(), bit in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            encode(&mut buf, record.offset, record.timestamp_ms, record.key.as_deref(), record.value.as_deref(), &record.headers);
            let bit = bit.index(buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!matches!(decode(&buf), Decoded::Record(r, _) if r == record));
        }
    }
}
