//! Where a job's output goes: the [`Sink`] seam.
//!
//! A sink sees what the job produces: the feature rows a task releases,
//! and, if it wants them, the source records as they are read. It makes
//! them durable when the job checkpoints, task by task, before that task's
//! offsets are recorded (so nothing a checkpoint covers can be lost), and
//! drops what it holds of a task the job no longer runs (the new owner
//! replays it from the checkpoint). Every hook has a default, so a sink
//! implements only what it uses, in the spirit of Arroyo's operator trait.
//!
//! An output is one file here plus one line in [`open`]:
//! - [`topic`]: the view's compacted feature topic, Avro;
//! - [`parquet`]: the view's Parquet directory on object storage;
//! - [`redis`]: the view's rows in Redis, the online store;
//! - [`postgres`]: the view's rows in a PostgreSQL table;
//! - [`sqlite`]: the view's rows in a SQLite file (no server);
//! - [`reader`]: the in-process read API (`eddy run --serve`);
//! - [`archive`]: the raw source records, for backfills.

pub mod archive;
pub mod latest;
pub mod parquet;
pub mod postgres;
pub mod reader;
pub mod redis;
pub mod sqlite;
pub mod topic;

use std::sync::{Arc, Mutex};

use crate::avro::AvroCodec;
use crate::engine::view::FeatureRow;
use crate::spec::PipelineSpec;
use crate::spec::validate::ViewPlan;
use crate::store::Store;
use crate::topic::{Producer, Record};

use super::{FeatureReader, JobError, RunSummary};

/// One output of a job.
pub trait Sink: Send {
    /// A source record as read, before it is decoded. Default: ignored.
    fn record(&mut self, _rec: &Record) {}

    /// Feature rows task `partition` released, in order, as (view index,
    /// row); `watermark` is the task's after them.
    fn rows(
        &mut self,
        _partition: i32,
        _rows: &[(usize, FeatureRow)],
        _watermark: Option<i64>,
    ) -> Result<(), JobError> {
        Ok(())
    }

    /// As [`Sink::rows`], with the rows to keep: the job hands them to its
    /// last sink (the read API), which keeps them without a copy. Default:
    /// [`Sink::rows`].
    fn take_rows(
        &mut self,
        partition: i32,
        rows: Vec<(usize, FeatureRow)>,
        watermark: Option<i64>,
    ) -> Result<(), JobError> {
        self.rows(partition, &rows, watermark)
    }

    /// A task restored from a checkpoint, or gained from another process:
    /// its current rows. Default: ignored (they were written before).
    fn restored(&mut self, _partition: i32, _rows: &[(usize, FeatureRow)], _watermark: i64) {}

    /// Makes everything of task `partition` durable before its checkpoint
    /// number `seq` is written.
    fn flush(&mut self, _partition: i32, _seq: u64) -> Result<(), JobError> {
        Ok(())
    }

    /// Task `partition` moved to another process: forget what is not
    /// flushed.
    fn discard(&mut self, _partition: i32) {}

    /// Adds what the sink did to a run's summary.
    fn report(&self, _summary: &mut RunSummary) {}
}

/// The sinks of a job, in the order they see rows: the registration point
/// of every output. The read API comes last: it keeps the rows, and the
/// last sink gets them without a copy.
pub(super) fn open(
    spec: &PipelineSpec,
    plans: &[ViewPlan],
    codec: &AvroCodec,
    producer: Arc<Mutex<Box<dyn Producer>>>,
    reader: FeatureReader,
) -> Result<Vec<Box<dyn Sink>>, JobError> {
    let mut sinks: Vec<Box<dyn Sink>> =
        vec![Box::new(topic::FeatureTopics::new(plans, codec, producer)?)];
    for (v, plan) in plans.iter().enumerate() {
        for url in &plan.parquet {
            sinks.push(Box::new(parquet::ParquetFiles::new(
                v,
                Store::open(url)?,
                plan,
            )));
        }
        if let Some(r) = &plan.redis {
            let store = redis::RedisRows::new(&spec.name, plan, r)?;
            sinks.push(Box::new(latest::ByKey::new(v, store)));
        }
        if let Some(pg) = &plan.postgres {
            let store = postgres::PostgresRows::new(plan, pg)?;
            sinks.push(Box::new(latest::ByKey::new(v, store)));
        }
        if let Some(lite) = &plan.sqlite {
            let store = sqlite::SqliteRows::new(plan, lite);
            sinks.push(Box::new(latest::ByKey::new(v, store)));
        }
    }
    if let Some(a) = &spec.archive {
        sinks.push(Box::new(archive::Archive::new(
            Store::open(&a.url)?,
            spec.archived_topics(),
            spec.archived_tables(),
        )?));
    }
    sinks.push(Box::new(reader::ReadApi::new(reader)));
    Ok(sinks)
}
