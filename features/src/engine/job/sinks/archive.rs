//! The archive: every source and table record the job reads, raw
//! (undecodable ones too), copied to Parquet on object storage at each
//! checkpoint, so a backfill can read history that topics no longer
//! retain (a table's versions that compaction removed). Written before
//! the checkpoint records the offsets: archived records are never ahead
//! of them.

use crate::engine::archive::ArchiveSink;
use crate::store::Store;
use crate::topic::Record;

use super::{JobError, RunSummary, Sink};

/// The spec's `archive:`.
pub struct Archive {
    files: ArchiveSink,
}

impl Archive {
    /// An archive of `topics` and table topics `tables` under `store`.
    pub fn new(
        store: Store,
        topics: Vec<String>,
        tables: Vec<String>,
    ) -> Result<Archive, JobError> {
        Ok(Archive {
            files: ArchiveSink::new(store, topics).with_tables(tables)?,
        })
    }
}

impl Sink for Archive {
    fn record(&mut self, rec: &Record) {
        self.files.push(rec);
    }

    fn flush(&mut self, partition: i32, _seq: u64) -> Result<(), JobError> {
        self.files.flush(partition)?;
        Ok(())
    }

    fn discard(&mut self, partition: i32) {
        self.files.discard(partition);
    }

    fn report(&self, summary: &mut RunSummary) {
        summary.archived += self.files.archived;
    }
}
