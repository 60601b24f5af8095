//! What every Kafka client of one backend shares: metadata and watermarks.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, config_err, kafka_err};
use crate::topic::{TopicError, validate_topic_name};

/// Metadata and watermark lookups for one cluster, shared by the backend,
/// its producers and its consumers.
pub(crate) struct Cluster {
    pub(crate) config: KafkaConfig,
    /// A group-less consumer for metadata and ListOffsets requests.
    meta: BaseConsumer,
    /// A group-less consumer that fetches the last batch of a partition to
    /// learn its true high watermark (see [`Cluster::watermarks`]).
    probe: Mutex<BaseConsumer>,
    partition_counts: Mutex<HashMap<String, i32>>,
}

fn group_less(config: &KafkaConfig, purpose: &str) -> Result<BaseConsumer, TopicError> {
    config
        .consumer_config()
        .set("group.id", format!("eddy-{purpose}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(config_err)
}

impl Cluster {
    pub(crate) fn connect(config: KafkaConfig) -> Result<Self, TopicError> {
        let meta = group_less(&config, "metadata")?;
        let probe = Mutex::new(group_less(&config, "watermarks")?);
        meta.fetch_metadata(None, config.timeout)
            .map_err(|e| TopicError::BrokerUnreachable {
                brokers: config.brokers.clone(),
                timeout: config.timeout,
                detail: e.to_string(),
            })?;
        Ok(Cluster {
            config,
            meta,
            probe,
            partition_counts: Mutex::new(HashMap::new()),
        })
    }

    fn unreachable_or(&self, e: KafkaError) -> TopicError {
        match e {
            KafkaError::MetadataFetch(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown,
            ) => TopicError::BrokerUnreachable {
                brokers: self.config.brokers.clone(),
                timeout: self.config.timeout,
                detail: e.to_string(),
            },
            other => kafka_err(other),
        }
    }

    /// The brokers answer a metadata request now.
    pub(crate) fn reachable(&self) -> bool {
        self.meta
            .fetch_metadata(None, self.config.timeout.min(Duration::from_secs(5)))
            .is_ok()
    }

    /// All topic names, sorted.
    pub(crate) fn topic_names(&self) -> Result<Vec<String>, TopicError> {
        let md = self
            .meta
            .fetch_metadata(None, self.config.timeout)
            .map_err(|e| self.unreachable_or(e))?;
        let mut names: Vec<String> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partition ids of a topic, sorted; [`TopicError::UnknownTopic`] if absent.
    pub(crate) fn partition_ids(&self, topic: &str) -> Result<Vec<i32>, TopicError> {
        validate_topic_name(topic)?;
        // Asking for all topics rather than this one never triggers broker
        // side auto-creation.
        let md = self
            .meta
            .fetch_metadata(None, self.config.timeout)
            .map_err(|e| self.unreachable_or(e))?;
        let Some(t) = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
        else {
            return Err(TopicError::UnknownTopic(topic.to_string()));
        };
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        if ids.is_empty() {
            return Err(TopicError::UnknownTopic(topic.to_string()));
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Partition count, cached (partitions are never removed).
    pub(crate) fn partition_count(&self, topic: &str) -> Result<i32, TopicError> {
        if let Some(n) = self.partition_counts.lock().expect("poisoned").get(topic) {
            return Ok(*n);
        }
        let n = self.partition_ids(topic)?.len() as i32;
        self.partition_counts
            .lock()
            .expect("poisoned")
            .insert(topic.to_string(), n);
        Ok(n)
    }

    /// `(low, high)` per partition, in the order of `ids`.
    ///
    /// ListOffsets gives `low` and a first `high`. On Apache Kafka that
    /// `high` is exact. tansu 0.6 answers with the last batch's base offset
    /// plus one, so we fetch from `high - 1` and read the high watermark that
    /// the Fetch response carries (librdkafka caches it; we read it with
    /// `rd_kafka_get_watermark_offsets`). The larger of the two is the truth
    /// on both brokers.
    pub(crate) fn watermarks(
        &self,
        topic: &str,
        ids: &[i32],
    ) -> Result<Vec<(i64, i64)>, TopicError> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(
                self.meta
                    .fetch_watermarks(topic, id, self.config.timeout)
                    .map_err(kafka_err)?,
            );
        }
        let to_confirm: BTreeMap<i32, i64> = ids
            .iter()
            .zip(&out)
            .filter(|(_, (low, high))| high > low)
            .map(|(id, (_, high))| (*id, *high))
            .collect();
        if to_confirm.is_empty() {
            return Ok(out);
        }
        let probe = self.probe.lock().expect("poisoned");
        let mut tpl = TopicPartitionList::new();
        for (&id, &high) in &to_confirm {
            tpl.add_partition_offset(topic, id, Offset::Offset(high - 1))
                .map_err(kafka_err)?;
        }
        probe.assign(&tpl).map_err(kafka_err)?;
        let mut pending: Vec<i32> = to_confirm.keys().copied().collect();
        let deadline = Instant::now() + self.config.timeout;
        while !pending.is_empty() && Instant::now() < deadline {
            match probe.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    use rdkafka::message::Message as _;
                    let partition = m.partition();
                    pending.retain(|p| *p != partition);
                }
                Some(Err(e)) => return Err(kafka_err(e)),
                None => {}
            }
        }
        if !pending.is_empty() {
            // A partition whose last offset is a transaction marker (Apache
            // Kafka with transactional producers) delivers no record; its
            // ListOffsets answer is exact there. Keep the larger of that and
            // whatever the last fetch reported.
            tracing::warn!(
                topic,
                ?pending,
                "kafka: no record to confirm the high watermark; using ListOffsets"
            );
        }
        let ctopic = CString::new(topic).expect("validated topic names have no NUL");
        for (i, &id) in ids.iter().enumerate() {
            if to_confirm.contains_key(&id) {
                let (mut low, mut high) = (0i64, 0i64);
                // SAFETY: the client pointer is valid while `probe` is
                // borrowed; the topic is a NUL-terminated C string that
                // outlives the call; low/high are valid out-pointers. The
                // function only reads librdkafka's cached fetch state.
                let err = unsafe {
                    rdkafka_sys::rd_kafka_get_watermark_offsets(
                        probe.client().native_ptr(),
                        ctopic.as_ptr(),
                        id,
                        &mut low,
                        &mut high,
                    )
                };
                if err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    && high > out[i].1
                {
                    out[i].1 = high;
                }
            }
        }
        probe.unassign().map_err(kafka_err)?;
        Ok(out)
    }
}
