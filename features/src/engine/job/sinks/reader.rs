//! The in-process read API: each key's latest row per view, for serving
//! inside the pipeline's process (`eddy run --serve`) and notebooks.

use crate::engine::view::FeatureRow;

use super::{FeatureReader, JobError, Sink};

/// Keeps the [`FeatureReader`] the job hands out current.
pub struct ReadApi {
    reader: FeatureReader,
}

impl ReadApi {
    /// Keeps `reader` current.
    pub fn new(reader: FeatureReader) -> ReadApi {
        ReadApi { reader }
    }
}

impl Sink for ReadApi {
    fn rows(
        &mut self,
        partition: i32,
        rows: &[(usize, FeatureRow)],
        watermark: Option<i64>,
    ) -> Result<(), JobError> {
        self.take_rows(partition, rows.to_vec(), watermark)
    }

    fn take_rows(
        &mut self,
        partition: i32,
        rows: Vec<(usize, FeatureRow)>,
        watermark: Option<i64>,
    ) -> Result<(), JobError> {
        self.reader.update(partition, rows);
        if let Some(w) = watermark {
            self.reader.set_watermark(partition, w);
        }
        Ok(())
    }

    fn restored(&mut self, partition: i32, rows: &[(usize, FeatureRow)], watermark: i64) {
        if !rows.is_empty() {
            self.reader.update(partition, rows.iter().cloned());
            self.reader.set_watermark(partition, watermark);
        }
    }

    fn discard(&mut self, partition: i32) {
        self.reader.forget_task(partition);
    }
}
