//! Serving inside the pipeline's process (`eddy run --serve`).
//!
//! Apart from the pipeline, serving learns everything from topics: the
//! feature topics for the ranker's inputs, the models topic for the
//! models. In the same process it can skip both round trips:
//!
//! - features come from the job's in-process read API
//!   ([`FeatureReader`]), as soon as a task releases a row;
//! - models come from the learner: [`colocate`] wraps the job's
//!   [`Learners`] so that every update a checkpoint publishes is also
//!   handed to serving's model loader, once the publish has been flushed.
//!
//! The hand-off carries the very records written to the models topic, and
//! the loader applies them exactly as it applies records read from there:
//! the same decoding, the same version checks, the same swap between
//! batches. So a co-located service and a separate one on the same topic
//! serve the same model versions; only the delay differs. Handing over
//! after the flush means serving never runs a model a restart would lose.

use std::sync::mpsc::{Receiver, Sender, channel};

use eddy_features::engine::job::FeatureReader;
use eddy_features::engine::job::learners::{LearnerError, Learners};
use eddy_features::engine::task::ProbedRows;
use eddy_features::spec::validate::ViewPlan;
use eddy_features::topic::{Producer, ProducerRecord, Record, TopicError, now_ms};
use eddy_training::plan::ModelPlan;

/// What a co-located service reads instead of topics.
pub struct Colocated {
    /// The job's feature tables.
    pub reader: FeatureReader,
    /// Model updates, as published by the learner at each checkpoint.
    pub models: Receiver<Vec<Record>>,
    /// The job's plans of the views and the models: serving in the same
    /// process uses them rather than plan the spec a second time.
    pub plans: (Vec<ViewPlan>, Vec<ModelPlan>),
}

/// Wraps `learners` so that what they publish also reaches serving, and
/// returns what to open the service with.
pub fn colocate(
    learners: Box<dyn Learners>,
    reader: FeatureReader,
    plans: (Vec<ViewPlan>, Vec<ModelPlan>),
) -> (Box<dyn Learners>, Colocated) {
    let (tx, rx) = channel();
    (
        Box::new(Tapped {
            inner: learners,
            tx,
        }),
        Colocated {
            reader,
            models: rx,
            plans,
        },
    )
}

/// Learners whose published updates are copied to serving.
struct Tapped {
    inner: Box<dyn Learners>,
    tx: Sender<Vec<Record>>,
}

impl Learners for Tapped {
    fn sources(&self) -> Vec<String> {
        self.inner.sources()
    }

    fn joined(
        &self,
    ) -> Vec<(
        String,
        Vec<eddy_features::engine::job::learners::TableColumn>,
    )> {
        self.inner.joined()
    }

    fn reads_features(&self) -> bool {
        self.inner.reads_features()
    }

    fn reads_rekeyed(&self) -> bool {
        self.inner.reads_rekeyed()
    }

    fn bind(&mut self, job_sources: &[String]) {
        self.inner.bind(job_sources)
    }

    fn learn(&mut self, partition: i32, rows: ProbedRows) -> Result<(), LearnerError> {
        self.inner.learn(partition, rows)
    }

    fn learn_released(&mut self, partition: i32, rows: ProbedRows) -> Result<(), LearnerError> {
        self.inner.learn_released(partition, rows)
    }

    fn checkpoint(&mut self, producer: &mut dyn Producer) -> Result<(), LearnerError> {
        let mut tee = Tee {
            inner: producer,
            sent: Vec::new(),
        };
        self.inner.checkpoint(&mut tee)?;
        // The learners flush before returning: the records are durable.
        // A service that has stopped no longer listens; the job goes on.
        if !tee.sent.is_empty() {
            let _ = self.tx.send(tee.sent);
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<eddy_features::metrics::Family> {
        self.inner.metrics()
    }

    fn summary(&self) -> Vec<String> {
        self.inner.summary()
    }
}

/// A producer that writes through and keeps a copy of each record, as a
/// reader of its topic would see it (offsets are unknown here: -1).
struct Tee<'a> {
    inner: &'a mut dyn Producer,
    sent: Vec<Record>,
}

impl Producer for Tee<'_> {
    fn send(&mut self, record: ProducerRecord) -> Result<i32, TopicError> {
        let copy = (
            record.topic.clone(),
            record.timestamp_ms,
            record.key.clone(),
            record.value.clone(),
            record.headers.clone(),
        );
        let partition = self.inner.send(record)?;
        let (topic, ts, key, value, headers) = copy;
        self.sent.push(Record {
            topic,
            partition,
            offset: -1,
            timestamp_ms: ts.unwrap_or_else(now_ms),
            key,
            value,
            headers,
        });
        Ok(partition)
    }

    fn flush(&mut self) -> Result<(), TopicError> {
        self.inner.flush()
    }

    fn publish(&mut self) -> Result<(), TopicError> {
        self.inner.publish()
    }
}
