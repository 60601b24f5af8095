//! Dead-letter topics: where records that cannot be processed go, with the
//! reason, so nothing is silently dropped.
//!
//! A dead-lettered record keeps its original key, value, timestamp and
//! headers, and gains headers that say where it came from and why:
//!
//! | header | value |
//! |---|---|
//! | `eddy.dlq.reason` | what was wrong, in words |
//! | `eddy.dlq.topic` | the source topic |
//! | `eddy.dlq.partition` | the source partition |
//! | `eddy.dlq.offset` | the source offset |
//!
//! The conventional name is `<topic>.dlq` ([`dead_letter_topic`]). The topic
//! is created (one partition, delete policy) if it does not exist.

use super::{Backend, Header, Producer, ProducerRecord, Record, TopicError, TopicSpec};

/// Header names added to dead-lettered records.
pub const REASON: &str = "eddy.dlq.reason";
/// Source topic header.
pub const SOURCE_TOPIC: &str = "eddy.dlq.topic";
/// Source partition header.
pub const SOURCE_PARTITION: &str = "eddy.dlq.partition";
/// Source offset header.
pub const SOURCE_OFFSET: &str = "eddy.dlq.offset";

/// The dead-letter topic of `topic`: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Writes records to a dead-letter topic and counts them.
pub struct DeadLetters {
    topic: String,
    producer: Box<dyn Producer>,
    count: u64,
}

impl DeadLetters {
    /// Opens (creating if needed) the dead-letter topic `topic`.
    pub fn open(backend: &dyn Backend, topic: &str) -> Result<Self, TopicError> {
        backend.ensure_topic(&TopicSpec::new(topic))?;
        Ok(DeadLetters {
            topic: topic.to_string(),
            producer: backend.producer()?,
            count: 0,
        })
    }

    /// Sends `record` with `reason`.
    pub fn send(&mut self, record: &Record, reason: &str) -> Result<(), TopicError> {
        let mut headers = record.headers.clone();
        headers.push(Header::text(REASON, reason));
        headers.push(Header::text(SOURCE_TOPIC, &record.topic));
        headers.push(Header::text(SOURCE_PARTITION, record.partition.to_string()));
        headers.push(Header::text(SOURCE_OFFSET, record.offset.to_string()));
        self.producer.send(ProducerRecord {
            topic: self.topic.clone(),
            partition: None,
            key: record.key.clone(),
            value: record.value.clone(),
            timestamp_ms: Some(record.timestamp_ms),
            headers,
        })?;
        self.count += 1;
        Ok(())
    }

    /// Records sent so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Makes every sent record durable.
    pub fn flush(&mut self) -> Result<(), TopicError> {
        self.producer.flush()
    }
}

/// The dead-letter topics of several sources, each opened on its first
/// record: what a job or a service that reads many topics keeps.
#[derive(Default)]
pub struct DeadLetterTopics {
    by_source: std::collections::HashMap<String, DeadLetters>,
}

impl DeadLetterTopics {
    /// Sends `record` to `<its topic>.dlq` with `reason`.
    pub fn send(
        &mut self,
        backend: &dyn Backend,
        record: &Record,
        reason: &str,
    ) -> Result<(), TopicError> {
        let dlq = match self.by_source.entry(record.topic.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(DeadLetters::open(
                backend,
                &dead_letter_topic(&record.topic),
            )?),
        };
        dlq.send(record, reason)
    }

    /// Flushes every dead-letter topic.
    pub fn flush(&mut self) -> Result<(), TopicError> {
        for dlq in self.by_source.values_mut() {
            dlq.flush()?;
        }
        Ok(())
    }
}
