//! The archive: raw source records copied to Parquet on object storage, so
//! a backfill can reach further back than the topics' retention.
//!
//! Layout, one directory per topic and per UTC day of the record timestamp:
//!
//! ```text
//! <url>/<topic>/date=2024-05-01/part-00003-00000000000000120000.parquet
//!                                    ^partition ^offset of its first record
//! ```
//!
//! Each file holds the records of one partition in offset order, exactly as
//! read: partition, offset, timestamp, key, value (the Confluent wire bytes,
//! undecoded, so a record that could not be decoded is kept too) and headers.
//!
//! Files are written when the job checkpoints, before the checkpoint
//! records the offsets. A job that crashes between the two re-reads those
//! records and archives them again, so the archive may hold a record twice;
//! readers deduplicate by (partition, offset), which is also how a backfill
//! joins the archive to the topic without a gap or a duplicate at the seam.
//! Offsets, not timestamps, locate the seam: tansu answers
//! ListOffsets-by-timestamp wrongly, and timestamps need not be unique.

use std::collections::BTreeMap;
use std::io::Cursor;

use polars::prelude::*;

use crate::store::{Store, StoreError};
use crate::topic::{Header, Record};

/// Why the archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    /// Object storage failed.
    Store(#[from] StoreError),
    #[error(
        "archive file `{file}` is not readable: {message}. Move it aside if it is not an eddy archive file"
    )]
    /// A file that is not an archive file.
    Corrupt {
        /// The file.
        file: String,
        /// What is wrong with it.
        message: String,
    },
    #[error("writing the archive: {0}")]
    /// Records could not be encoded.
    Write(String),
}

impl From<ArchiveError> for crate::engine::job::JobError {
    fn from(e: ArchiveError) -> Self {
        match e {
            // Storage keeps its type, so its exit code follows who must act.
            ArchiveError::Store(s) => crate::engine::job::JobError::Store(s),
            other => crate::engine::job::JobError::Output(other.to_string()),
        }
    }
}

impl ArchiveError {
    /// Who must act.
    pub fn blame(&self) -> crate::topic::Blame {
        match self {
            ArchiveError::Store(e) => e.blame(),
            // A file that is not an archive file: someone put it there.
            ArchiveError::Corrupt { .. } => crate::topic::Blame::User,
            ArchiveError::Write(_) => crate::topic::Blame::Internal,
        }
    }
}

/// Buffers records read by a job and writes them at checkpoints.
pub struct ArchiveSink {
    store: Store,
    topics: Vec<String>,
    /// Table topics: read whole by every process at every start, so only
    /// records above what the archive holds are kept (`table_high`), and
    /// they are written at every checkpoint, whichever task's.
    tables: Vec<String>,
    /// Per table (topic, partition): the highest offset archived.
    table_high: BTreeMap<(String, i32), i64>,
    /// Per (topic, partition): records since the last flush.
    buffers: BTreeMap<(String, i32), Vec<Record>>,
    /// Records archived so far.
    pub archived: u64,
}

impl ArchiveSink {
    /// An archive of `topics` at `store`.
    pub fn new(store: Store, topics: Vec<String>) -> ArchiveSink {
        ArchiveSink {
            store,
            topics,
            tables: Vec::new(),
            table_high: BTreeMap::new(),
            buffers: BTreeMap::new(),
            archived: 0,
        }
    }

    /// Archives the records of table topics `tables` too: their history,
    /// which compaction would otherwise take from backfills. Reads the
    /// archive's last file of each of their partitions, so records it
    /// already holds are not written again (a table is read from its start
    /// at every start, and after compaction those records would otherwise
    /// be written again under the same file names, with fewer records).
    pub fn with_tables(mut self, tables: Vec<String>) -> Result<ArchiveSink, ArchiveError> {
        for topic in &tables {
            for (partition, files) in files_of(&self.store, topic)? {
                if let Some(last) = files.last() {
                    let high = read_file(&self.store, topic, &last.name)?
                        .iter()
                        .map(|r| r.offset)
                        .max()
                        .unwrap_or(last.first);
                    self.table_high.insert((topic.clone(), partition), high);
                }
            }
        }
        self.tables = tables;
        Ok(self)
    }

    /// Keeps a record for the next flush (if its topic is archived).
    pub fn push(&mut self, rec: &Record) {
        if self.tables.contains(&rec.topic) {
            let high = self
                .table_high
                .entry((rec.topic.clone(), rec.partition))
                .or_insert(i64::MIN);
            if rec.offset > *high {
                *high = rec.offset;
                self.buffers
                    .entry((rec.topic.clone(), rec.partition))
                    .or_default()
                    .push(rec.clone());
            }
            return;
        }
        if self.topics.contains(&rec.topic) {
            self.buffers
                .entry((rec.topic.clone(), rec.partition))
                .or_default()
                .push(rec.clone());
        }
    }

    /// Forgets what was read from `partition` (its task moved to another
    /// process, which will read and archive it again).
    pub fn discard(&mut self, partition: i32) {
        let tables = &self.tables;
        self.buffers
            .retain(|(t, p), _| *p != partition || tables.contains(t));
    }

    /// Writes the buffered records of `partition`: one file per topic and
    /// day. Returns the files written.
    pub fn flush(&mut self, partition: i32) -> Result<Vec<String>, ArchiveError> {
        let keys: Vec<(String, i32)> = self
            .buffers
            .keys()
            .filter(|(t, p)| *p == partition || self.tables.contains(t))
            .cloned()
            .collect();
        let mut written = Vec::new();
        for key in keys {
            let records = self.buffers.remove(&key).unwrap_or_default();
            let mut by_day: BTreeMap<String, Vec<Record>> = BTreeMap::new();
            for r in records {
                by_day.entry(utc_date(r.timestamp_ms)).or_default().push(r);
            }
            for (day, records) in by_day {
                let name = format!(
                    "{}/date={day}/part-{:05}-{:020}.parquet",
                    key.0, key.1, records[0].offset
                );
                self.store.put(&name, encode(&records)?)?;
                self.archived += records.len() as u64;
                written.push(name);
            }
        }
        Ok(written)
    }
}

/// One archive file of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    /// The source partition.
    pub partition: i32,
    /// Offset of its first record.
    pub first: i64,
    /// Path under the archive's root.
    pub name: String,
}

/// The archive files of `topic`, per partition, in offset order.
pub fn files_of(
    store: &Store,
    topic: &str,
) -> Result<BTreeMap<i32, Vec<ArchiveFile>>, ArchiveError> {
    let mut out: BTreeMap<i32, Vec<ArchiveFile>> = BTreeMap::new();
    for name in store.list(topic)? {
        let Some(file) = name.rsplit('/').next() else {
            continue;
        };
        let Some(stem) = file
            .strip_prefix("part-")
            .and_then(|s| s.strip_suffix(".parquet"))
        else {
            continue;
        };
        let Some((p, first)) = stem.split_once('-') else {
            continue;
        };
        let (Ok(partition), Ok(first)) = (p.parse::<i32>(), first.parse::<i64>()) else {
            continue;
        };
        out.entry(partition).or_default().push(ArchiveFile {
            partition,
            first,
            name,
        });
    }
    for files in out.values_mut() {
        files.sort_by_key(|f| f.first);
    }
    Ok(out)
}

/// Reads one archive file back into records of `topic`.
pub fn read_file(store: &Store, topic: &str, name: &str) -> Result<Vec<Record>, ArchiveError> {
    let corrupt = |message: String| ArchiveError::Corrupt {
        file: format!("{}/{name}", store.url()),
        message,
    };
    let bytes = store
        .get(name)?
        .ok_or_else(|| corrupt("it disappeared while being read".into()))?;
    let df = ParquetReader::new(Cursor::new(bytes.to_vec()))
        .finish()
        .map_err(|e| corrupt(e.to_string()))?;
    let col = |n: &str| df.column(n).map_err(|e| corrupt(e.to_string()));
    let partition = col("partition")?
        .i32()
        .map_err(|e| corrupt(e.to_string()))?;
    let offset = col("offset")?.i64().map_err(|e| corrupt(e.to_string()))?;
    let ts = col("timestamp")?
        .cast(&DataType::Int64)
        .map_err(|e| corrupt(e.to_string()))?;
    let ts = ts.i64().map_err(|e| corrupt(e.to_string()))?;
    let key = col("key")?.binary().map_err(|e| corrupt(e.to_string()))?;
    let value = col("value")?.binary().map_err(|e| corrupt(e.to_string()))?;
    let headers = col("headers")?
        .binary()
        .map_err(|e| corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        out.push(Record {
            topic: topic.to_string(),
            partition: partition
                .get(i)
                .ok_or_else(|| corrupt("null partition".into()))?,
            offset: offset.get(i).ok_or_else(|| corrupt("null offset".into()))?,
            // eddy writes neither as null: a null one is damage, not a
            // record at time 0 or without headers.
            timestamp_ms: ts
                .get(i)
                .ok_or_else(|| corrupt(format!("null timestamp at row {i}")))?,
            key: key.get(i).map(<[u8]>::to_vec),
            value: value.get(i).map(<[u8]>::to_vec),
            headers: headers
                .get(i)
                .and_then(decode_headers)
                .ok_or_else(|| corrupt(format!("bad headers at row {i}")))?,
        });
    }
    Ok(out)
}

fn encode(records: &[Record]) -> Result<Vec<u8>, ArchiveError> {
    let write = |e: PolarsError| ArchiveError::Write(e.to_string());
    let timestamp = Series::new(
        "timestamp".into(),
        records.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
    )
    .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
    .map_err(write)?;
    let headers: Vec<Vec<u8>> = records.iter().map(|r| encode_headers(&r.headers)).collect();
    let mut df = DataFrame::new(vec![
        Series::new(
            "partition".into(),
            records.iter().map(|r| r.partition).collect::<Vec<_>>(),
        )
        .into_column(),
        Series::new(
            "offset".into(),
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        )
        .into_column(),
        timestamp.into_column(),
        Series::new(
            "key".into(),
            records.iter().map(|r| r.key.as_deref()).collect::<Vec<_>>(),
        )
        .into_column(),
        Series::new(
            "value".into(),
            records
                .iter()
                .map(|r| r.value.as_deref())
                .collect::<Vec<_>>(),
        )
        .into_column(),
        Series::new(
            "headers".into(),
            headers.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        )
        .into_column(),
    ])
    .map_err(write)?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .finish(&mut df)
        .map_err(write)?;
    Ok(buf)
}

/// Headers as bytes: per header, a u32 key length, the key, an i32 value
/// length (-1 for a null value) and the value, all big-endian. Parquet has
/// lists of structs, but this keeps the polars build small.
fn encode_headers(headers: &[Header]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in headers {
        out.extend_from_slice(&(h.key.len() as u32).to_be_bytes());
        out.extend_from_slice(h.key.as_bytes());
        match &h.value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out
}

fn decode_headers(mut bytes: &[u8]) -> Option<Vec<Header>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let klen = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let key = String::from_utf8(bytes.get(4..4 + klen)?.to_vec()).ok()?;
        bytes = &bytes[4 + klen..];
        let vlen = i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
        bytes = &bytes[4..];
        let value = if vlen < 0 {
            None
        } else {
            let v = bytes.get(..vlen as usize)?.to_vec();
            bytes = &bytes[vlen as usize..];
            Some(v)
        };
        out.push(Header { key, value });
    }
    Some(out)
}

/// `YYYY-MM-DD` of a UTC epoch-millisecond time.
pub fn utc_date(ms: i64) -> String {
    let (y, m, d) = utc_civil(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// (year, month, day) of a UTC epoch-millisecond time (Howard Hinnant's
/// days-to-civil algorithm).
pub fn utc_civil(ms: i64) -> (i64, i64, i64) {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, ts: i64) -> Record {
        Record {
            topic: "clicks".into(),
            partition: 2,
            offset,
            timestamp_ms: ts,
            key: (offset % 2 == 0).then(|| format!("k{offset}").into_bytes()),
            value: (offset % 3 != 0).then(|| vec![0, 0, 0, 0, 1, offset as u8]),
            headers: if offset == 1 {
                vec![
                    Header::text("eddy-trace", "abc"),
                    Header {
                        key: "null".into(),
                        value: None,
                    },
                ]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_714_521_599_999), "2024-04-30");
        assert_eq!(utc_date(1_714_521_600_000), "2024-05-01");
    }

    #[test]
    fn records_round_trip_through_the_archive_split_by_day() {
        let store = Store::open("memory://archive").unwrap();
        let mut sink = ArchiveSink::new(store.clone(), vec!["clicks".into()]);
        let day = 86_400_000;
        let records: Vec<Record> = (0..6).map(|o| record(o, 10 * day + o * day / 3)).collect();
        for r in &records {
            sink.push(r);
        }
        sink.push(&Record {
            topic: "other".into(),
            ..record(9, 0)
        });
        let written = sink.flush(2).unwrap();
        assert_eq!(
            written,
            vec![
                "clicks/date=1970-01-11/part-00002-00000000000000000000.parquet",
                "clicks/date=1970-01-12/part-00002-00000000000000000003.parquet",
            ]
        );
        let files = files_of(&store, "clicks").unwrap();
        let mut back = Vec::new();
        for f in &files[&2] {
            back.extend(read_file(&store, "clicks", &f.name).unwrap());
        }
        assert_eq!(back, records);
        assert_eq!(sink.archived, 6);
    }
}
