//! The local log's producer.

use std::sync::Arc;

use super::{LocalLog, MaintenanceReport, WriterSlot, now_ms};
use crate::topic::partitioner::partition_for_key;
use crate::topic::{Producer, ProducerRecord, TopicError};

/// Producer of the local log. Records are visible to readers after `flush`
/// (or sooner, when the write buffer fills).
pub(super) struct LocalProducer {
    log: LocalLog,
    touched: Vec<WriterSlot>,
    round_robin: u32,
}

impl LocalProducer {
    pub(super) fn new(log: LocalLog) -> Self {
        LocalProducer {
            log,
            touched: Vec::new(),
            round_robin: 0,
        }
    }
}

impl Producer for LocalProducer {
    fn send(&mut self, record: ProducerRecord) -> Result<i32, TopicError> {
        let meta = self.log.meta(&record.topic)?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => {
                if !(0..meta.partitions).contains(&p) {
                    return Err(TopicError::UnknownPartition {
                        topic: record.topic,
                        partition: p,
                        partitions: meta.partitions,
                    });
                }
                p
            }
            (None, Some(key)) => partition_for_key(key, meta.partitions),
            (None, None) => {
                self.round_robin = self.round_robin.wrapping_add(1);
                (self.round_robin % meta.partitions as u32) as i32
            }
        };
        if meta.cleanup().compacts() && record.key.is_none() {
            return Err(TopicError::InvalidRecord {
                topic: record.topic,
                reason: "a compacted topic needs a key on every record".into(),
            });
        }
        let slot = self.log.writer(&record.topic, partition)?;
        let rolled = {
            let mut w = slot.lock().expect("poisoned");
            let (_, rolled) = w.append(
                record.timestamp_ms.unwrap_or_else(now_ms),
                record.key.as_deref(),
                record.value.as_deref(),
                &record.headers,
            )?;
            if rolled {
                let report = self.log.maintain_partition(&meta, &w)?;
                if report != MaintenanceReport::default() {
                    tracing::debug!(topic = %record.topic, partition, ?report, "local log maintenance");
                }
            }
            rolled
        };
        if rolled {
            self.log.notify_written();
        }
        if !self.touched.iter().any(|s| Arc::ptr_eq(s, &slot)) {
            self.touched.push(slot);
        }
        Ok(partition)
    }

    fn flush(&mut self) -> Result<(), TopicError> {
        for slot in &self.touched {
            slot.lock().expect("poisoned").flush()?;
        }
        self.log.notify_written();
        Ok(())
    }

    fn publish(&mut self) -> Result<(), TopicError> {
        for slot in &self.touched {
            slot.lock().expect("poisoned").publish()?;
        }
        self.log.notify_written();
        Ok(())
    }
}

impl Drop for LocalProducer {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "local log: flush on producer drop failed");
        }
    }
}
