//! The Kafka producer: librdkafka's `BaseProducer` with delivery reports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use super::cluster::Cluster;
use super::{config_err, kafka_err};
use crate::topic::partitioner::partition_for_key;
use crate::topic::{Producer, ProducerRecord, TopicError};

#[derive(Default)]
struct DeliveryErrors {
    failed: u64,
    first: Option<String>,
}

/// Collects delivery failures; `flush` reports them.
struct DeliveryContext {
    errors: Arc<Mutex<DeliveryErrors>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, msg)) = result {
            let mut errors = self.errors.lock().expect("poisoned");
            errors.failed += 1;
            if errors.first.is_none() {
                errors.first = Some(format!("{}/{}: {e}", msg.topic(), msg.partition()));
            }
        }
    }
}

pub(crate) struct KafkaProducer {
    cluster: Arc<Cluster>,
    producer: BaseProducer<DeliveryContext>,
    errors: Arc<Mutex<DeliveryErrors>>,
    round_robin: u32,
}

impl KafkaProducer {
    pub(crate) fn new(cluster: Arc<Cluster>) -> Result<Self, TopicError> {
        let errors = Arc::new(Mutex::new(DeliveryErrors::default()));
        let producer = cluster
            .config
            .client_config()
            .create_with_context(DeliveryContext {
                errors: errors.clone(),
            })
            .map_err(config_err)?;
        Ok(KafkaProducer {
            cluster,
            producer,
            errors,
            round_robin: 0,
        })
    }
}

impl Producer for KafkaProducer {
    fn send(&mut self, record: ProducerRecord) -> Result<i32, TopicError> {
        let partitions = self.cluster.partition_count(&record.topic)?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if (0..partitions).contains(&p) => p,
            (Some(p), _) => {
                return Err(TopicError::UnknownPartition {
                    topic: record.topic,
                    partition: p,
                    partitions,
                });
            }
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => {
                self.round_robin = self.round_robin.wrapping_add(1);
                (self.round_robin % partitions as u32) as i32
            }
        };
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for h in &record.headers {
            headers = headers.insert(KHeader {
                key: &h.key,
                value: h.value.as_ref(),
            });
        }
        let mut base: BaseRecord<'_, Vec<u8>, Vec<u8>> = BaseRecord::to(&record.topic)
            .partition(partition)
            .headers(headers);
        if let Some(k) = &record.key {
            base = base.key(k);
        }
        if let Some(v) = &record.value {
            base = base.payload(v);
        }
        if let Some(ts) = record.timestamp_ms {
            base = base.timestamp(ts);
        }
        let deadline = Instant::now() + self.cluster.config.timeout;
        loop {
            match self.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    self.producer.poll(Duration::from_millis(20));
                    base = back;
                }
                Err((e, _)) => return Err(kafka_err(e)),
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(partition)
    }

    /// librdkafka sends queued records on its own threads within
    /// `linger.ms`: visibility needs no wait for acknowledgements, which
    /// `flush` does. So this only serves the delivery reports and says
    /// which records failed so far; a job polling in a loop publishes on
    /// every batch at no round trip's cost.
    fn publish(&mut self) -> Result<(), TopicError> {
        self.producer.poll(Duration::ZERO);
        self.delivery_errors()
    }

    fn flush(&mut self) -> Result<(), TopicError> {
        let timeout = self.cluster.config.timeout * 3;
        self.producer.flush(timeout).map_err(|e| match e {
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => TopicError::Timeout {
                what: format!(
                    "flushing {} queued records to {}",
                    self.producer.in_flight_count(),
                    self.cluster.config.brokers
                ),
                after: timeout,
            },
            other => kafka_err(other),
        })?;
        self.delivery_errors()
    }
}

impl KafkaProducer {
    /// The records whose delivery failed since the last call, as one error.
    fn delivery_errors(&self) -> Result<(), TopicError> {
        let mut errors = self.errors.lock().expect("poisoned");
        if let Some(first) = errors.first.take() {
            let failed = std::mem::take(&mut errors.failed);
            return Err(TopicError::Kafka(format!(
                "{failed} record(s) were not delivered; first failure: {first}"
            )));
        }
        Ok(())
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        if let Err(e) = self.producer.flush(self.cluster.config.timeout) {
            tracing::error!(error = %e, "kafka: flush on producer drop failed");
        }
    }
}
