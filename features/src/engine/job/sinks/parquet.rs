//! A view's Parquet directory: rows buffered per task and written as one
//! part file per task and checkpoint (`part-<task>-<seq>.parquet`), so a
//! restart that replays from a checkpoint rewrites the same part rather
//! than add a duplicate.

use std::sync::Arc;

use crate::engine::job::output::ParquetSink;
use crate::engine::view::FeatureRow;
use crate::spec::validate::ViewPlan;
use crate::store::Store;

use super::{JobError, RunSummary, Sink};

/// One view's Parquet output.
pub struct ParquetFiles {
    view: usize,
    files: ParquetSink,
    /// Part files written, for the summary.
    written: Vec<String>,
}

impl ParquetFiles {
    /// View `view`'s Parquet under `store`.
    pub fn new(view: usize, store: Store, plan: &ViewPlan) -> ParquetFiles {
        ParquetFiles {
            view,
            files: ParquetSink::new(store, Arc::new(plan.clone())),
            written: Vec::new(),
        }
    }
}

impl Sink for ParquetFiles {
    fn rows(
        &mut self,
        partition: i32,
        rows: &[(usize, FeatureRow)],
        _watermark: Option<i64>,
    ) -> Result<(), JobError> {
        for (v, row) in rows {
            if *v == self.view {
                self.files.push(partition, row.clone());
            }
        }
        Ok(())
    }

    fn flush(&mut self, partition: i32, seq: u64) -> Result<(), JobError> {
        if let Some(name) = self.files.flush(partition, seq)? {
            self.written.push(name);
        }
        Ok(())
    }

    fn discard(&mut self, partition: i32) {
        self.files.discard(partition);
    }

    fn report(&self, summary: &mut RunSummary) {
        summary.parquet_files.extend(self.written.iter().cloned());
    }
}
