//! The feature topics: each view's rows, Avro, keyed by the view's key, on
//! its compacted topic.
//!
//! Records go to the job's shared producer; the job flushes that producer
//! once at the start of every checkpoint (dead letters and model updates
//! share it), so this sink has nothing to flush of its own.

use std::sync::{Arc, Mutex};

use crate::avro::AvroCodec;
use crate::engine::job::output::RowEncoder;
use crate::engine::view::FeatureRow;
use crate::spec::validate::ViewPlan;
use crate::topic::{Producer, ProducerRecord};

use super::{JobError, Sink};

/// Every view's feature topic.
pub struct FeatureTopics {
    /// Per view: its topic and its registered encoder.
    views: Vec<(String, RowEncoder)>,
    producer: Arc<Mutex<Box<dyn Producer>>>,
}

impl FeatureTopics {
    /// Registers each view's value schema.
    pub fn new(
        plans: &[ViewPlan],
        codec: &AvroCodec,
        producer: Arc<Mutex<Box<dyn Producer>>>,
    ) -> Result<FeatureTopics, JobError> {
        let views = plans
            .iter()
            .map(|plan| {
                Ok((
                    plan.output_topic.clone(),
                    RowEncoder::register(codec, plan)?,
                ))
            })
            .collect::<Result<_, JobError>>()?;
        Ok(FeatureTopics { views, producer })
    }
}

impl Sink for FeatureTopics {
    fn rows(
        &mut self,
        _partition: i32,
        rows: &[(usize, FeatureRow)],
        _watermark: Option<i64>,
    ) -> Result<(), JobError> {
        let mut producer = self.producer.lock().expect("poisoned");
        for (v, row) in rows {
            let (topic, encoder) = &self.views[*v];
            producer.send(
                ProducerRecord::new(
                    topic.clone(),
                    Some(row.key.key_text().into_bytes()),
                    Some(encoder.encode(row)),
                )
                .at(row.as_of),
            )?;
        }
        Ok(())
    }
}
