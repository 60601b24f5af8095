//! The Kafka backend, through librdkafka (`rdkafka`).
//!
//! Works with any Kafka-compatible cluster (Apache Kafka, Redpanda, MSK,
//! Confluent Cloud, tansu). Every librdkafka property can be passed through
//! [`KafkaConfig::properties`], which is how TLS and SASL are configured:
//!
//! ```text
//! security.protocol=SASL_SSL
//! sasl.mechanisms=PLAIN            # or SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI
//! sasl.username=...
//! sasl.password=...
//! ssl.ca.location=/etc/ssl/certs/ca-certificates.crt
//! ```
//!
//! librdkafka is built from source with OpenSSL (TLS, SCRAM); GSSAPI
//! (Kerberos) needs the `sasl-gssapi` cargo feature and `libsasl2-dev`.
//!
//! Design choices, and the limits of brokers we test against:
//! - eddy picks the partition of keyed records itself with Kafka's Java
//!   murmur2 partitioner (see `partitioner`), so the two backends and Java
//!   producers agree on where a key lives.
//! - Topics are never auto-created (`allow.auto.create.topics=false`);
//!   producing to or reading a missing topic is [`TopicError::UnknownTopic`].
//! - Nothing here relies on transactions or on ListOffsets by timestamp:
//!   tansu 0.6 supports neither correctly. Positions are plain offsets.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::partitioner::partition_for_key;
use super::{
    Backend, CleanupPolicy, Consumer, Header, PartitionInfo, Producer, ProducerRecord, Record,
    StartOffset, TopicDescription, TopicError, TopicSpec, validate_topic_name,
};

/// How to reach a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list. No default.
    pub brokers: String,
    /// Any librdkafka property (`security.protocol`, `sasl.*`, `ssl.*`,
    /// `linger.ms`, ...), applied to every client eddy creates. Default empty.
    pub properties: BTreeMap<String, String>,
    /// How long to wait for the cluster to answer a metadata or admin
    /// request before failing. Default 10 s.
    pub timeout: Duration,
}

impl KafkaConfig {
    /// Defaults for these brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // Fail fast on an unreachable cluster instead of retrying forever.
        c.set(
            "socket.connection.setup.timeout.ms",
            self.timeout.as_millis().to_string(),
        );
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

fn kafka_err(e: KafkaError) -> TopicError {
    TopicError::Kafka(e.to_string())
}

/// The Kafka backend: admin, metadata, producers and consumers for one cluster.
pub struct KafkaBackend {
    config: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
    /// A group-less consumer used for metadata and watermarks.
    meta: BaseConsumer,
    partitions: Arc<Mutex<HashMap<String, i32>>>,
}

impl KafkaBackend {
    /// Connects and checks that the cluster answers within `config.timeout`.
    pub fn connect(config: KafkaConfig) -> Result<Self, TopicError> {
        let admin: AdminClient<DefaultClientContext> =
            config.client_config().create().map_err(|e| {
                TopicError::Config(format!("librdkafka rejected the client configuration: {e}"))
            })?;
        let meta: BaseConsumer = config
            .client_config()
            .set("group.id", "eddy-metadata")
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .create()
            .map_err(|e| {
                TopicError::Config(format!("librdkafka rejected the client configuration: {e}"))
            })?;
        meta.fetch_metadata(None, config.timeout)
            .map_err(|e| TopicError::BrokerUnreachable {
                brokers: config.brokers.clone(),
                timeout: config.timeout,
                detail: e.to_string(),
            })?;
        Ok(KafkaBackend {
            config,
            admin,
            meta,
            partitions: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn describe_partitions(&self, topic: &str) -> Result<Vec<i32>, TopicError> {
        validate_topic_name(topic)?;
        let md = self
            .meta
            .fetch_metadata(None, self.config.timeout)
            .map_err(|e| self.unreachable(e))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Err(TopicError::UnknownTopic(topic.to_string()));
        };
        if t.error().is_some() || t.partitions().is_empty() {
            return Err(TopicError::UnknownTopic(topic.to_string()));
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn unreachable(&self, e: KafkaError) -> TopicError {
        match e {
            KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut)
            | KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure)
            | KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown) => {
                TopicError::BrokerUnreachable {
                    brokers: self.config.brokers.clone(),
                    timeout: self.config.timeout,
                    detail: e.to_string(),
                }
            }
            other => kafka_err(other),
        }
    }

    fn cleanup_policy(&self, topic: &str) -> Option<CleanupPolicy> {
        let opts = AdminOptions::new().request_timeout(Some(self.config.timeout));
        let spec = ResourceSpecifier::Topic(topic);
        let results =
            futures_executor::block_on(self.admin.describe_configs([&spec], &opts)).ok()?;
        let resource = results.into_iter().next()?.ok()?;
        let entry = resource.get("cleanup.policy")?;
        CleanupPolicy::parse(entry.value.as_deref()?)
    }
}

impl Backend for KafkaBackend {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn create_topic(&self, spec: &TopicSpec) -> Result<(), TopicError> {
        validate_topic_name(&spec.name)?;
        if spec.partitions < 1 {
            return Err(TopicError::Config(format!(
                "topic `{}`: partitions must be at least 1",
                spec.name
            )));
        }
        let configs = spec.kafka_configs();
        let mut topic = NewTopic::new(
            &spec.name,
            spec.partitions,
            TopicReplication::Fixed(spec.replication_factor.into()),
        );
        for (k, v) in &configs {
            topic = topic.set(k, v);
        }
        let opts = AdminOptions::new()
            .operation_timeout(Some(self.config.timeout))
            .request_timeout(Some(self.config.timeout));
        let results = futures_executor::block_on(self.admin.create_topics([&topic], &opts))
            .map_err(kafka_err)?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(TopicError::TopicExists(name));
                }
                Err((name, code)) => {
                    return Err(TopicError::Kafka(format!(
                        "creating topic `{name}`: {code}"
                    )));
                }
            }
        }
        // Wait until the cluster's metadata shows the topic, so that a
        // producer created right after sees it.
        let deadline = Instant::now() + self.config.timeout;
        loop {
            match self.describe_partitions(&spec.name) {
                Ok(p) if p.len() as i32 == spec.partitions => return Ok(()),
                Ok(_) | Err(TopicError::UnknownTopic(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(_) | Err(TopicError::UnknownTopic(_)) => {
                    return Err(TopicError::Timeout {
                        what: format!("waiting for topic `{}` to appear in metadata", spec.name),
                        after: self.config.timeout,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn list_topics(&self) -> Result<Vec<String>, TopicError> {
        let md = self
            .meta
            .fetch_metadata(None, self.config.timeout)
            .map_err(|e| self.unreachable(e))?;
        let mut names: Vec<String> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    fn describe_topic(&self, name: &str) -> Result<TopicDescription, TopicError> {
        let ids = self.describe_partitions(name)?;
        let mut partitions = Vec::with_capacity(ids.len());
        for id in ids {
            let (low, high) = self
                .meta
                .fetch_watermarks(name, id, self.config.timeout)
                .map_err(kafka_err)?;
            partitions.push(PartitionInfo { id, low, high });
        }
        Ok(TopicDescription {
            name: name.to_string(),
            partitions,
            cleanup: self.cleanup_policy(name),
        })
    }

    fn producer(&self) -> Result<Box<dyn Producer>, TopicError> {
        let errors = Arc::new(Mutex::new(DeliveryErrors::default()));
        let producer: BaseProducer<DeliveryContext> = self
            .config
            .client_config()
            .set("allow.auto.create.topics", "false")
            .create_with_context(DeliveryContext {
                errors: errors.clone(),
            })
            .map_err(|e| {
                TopicError::Config(format!(
                    "librdkafka rejected the producer configuration: {e}"
                ))
            })?;
        Ok(Box::new(KafkaProducer {
            backend: self.shared_view(),
            producer,
            errors,
            round_robin: 0,
        }))
    }

    fn consumer(&self, group: Option<&str>) -> Result<Box<dyn Consumer>, TopicError> {
        let group_id = match group {
            Some(g) => g.to_string(),
            // librdkafka needs a group id even for manual assignment; this
            // one never commits.
            None => format!("eddy-reader-{}-{}", std::process::id(), next_reader_id()),
        };
        let consumer: BaseConsumer = self
            .config
            .client_config()
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| {
                TopicError::Config(format!(
                    "librdkafka rejected the consumer configuration: {e}"
                ))
            })?;
        Ok(Box::new(KafkaConsumer {
            backend: self.shared_view(),
            consumer,
            has_group: group.is_some(),
            assignment: BTreeMap::new(),
        }))
    }
}

fn next_reader_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What producers and consumers need from the backend: metadata lookups.
/// A separate small struct so they do not borrow the backend.
#[derive(Clone)]
struct SharedView {
    config: KafkaConfig,
    partitions: Arc<Mutex<HashMap<String, i32>>>,
}

impl KafkaBackend {
    fn shared_view(&self) -> SharedView {
        SharedView {
            config: self.config.clone(),
            partitions: self.partitions.clone(),
        }
    }
}

impl SharedView {
    fn partition_count_with(
        &self,
        topic: &str,
        fetch: impl FnOnce(&str, Duration) -> Result<i32, TopicError>,
    ) -> Result<i32, TopicError> {
        if let Some(n) = self.partitions.lock().expect("poisoned").get(topic) {
            return Ok(*n);
        }
        validate_topic_name(topic)?;
        let n = fetch(topic, self.config.timeout)?;
        if n == 0 {
            return Err(TopicError::UnknownTopic(topic.to_string()));
        }
        self.partitions
            .lock()
            .expect("poisoned")
            .insert(topic.to_string(), n);
        Ok(n)
    }
}

/// Partition count of `topic` from a metadata request; 0 if it does not exist.
fn metadata_partitions<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, TopicError> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka_err)?;
    Ok(md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32))
}

#[derive(Default)]
struct DeliveryErrors {
    failed: u64,
    first: Option<String>,
}

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

struct KafkaProducer {
    backend: SharedView,
    producer: BaseProducer<DeliveryContext>,
    errors: Arc<Mutex<DeliveryErrors>>,
    round_robin: u32,
}

impl KafkaProducer {
    fn partitions(&self, topic: &str) -> Result<i32, TopicError> {
        self.backend.partition_count_with(topic, |t, timeout| {
            metadata_partitions(self.producer.client(), t, timeout)
        })
    }
}

impl Producer for KafkaProducer {
    fn send(&mut self, record: ProducerRecord) -> Result<i32, TopicError> {
        let partitions = self.partitions(&record.topic)?;
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
        let deadline = Instant::now() + self.backend.config.timeout;
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

    fn flush(&mut self) -> Result<(), TopicError> {
        let timeout = self.backend.config.timeout * 3;
        self.producer.flush(timeout).map_err(|e| match e {
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => TopicError::Timeout {
                what: format!(
                    "flushing {} queued records to {}",
                    self.producer.in_flight_count(),
                    self.backend.config.brokers
                ),
                after: timeout,
            },
            other => kafka_err(other),
        })?;
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
        if let Err(e) = self.producer.flush(self.backend.config.timeout) {
            tracing::error!(error = %e, "kafka: flush on producer drop failed");
        }
    }
}

struct KafkaConsumer {
    backend: SharedView,
    consumer: BaseConsumer,
    has_group: bool,
    /// The full assignment: librdkafka's `assign` replaces it as a whole.
    assignment: BTreeMap<(String, i32), Offset>,
}

impl KafkaConsumer {
    fn partitions(&self, topic: &str) -> Result<i32, TopicError> {
        self.backend.partition_count_with(topic, |t, timeout| {
            metadata_partitions(self.consumer.client(), t, timeout)
        })
    }

    fn reassign(&mut self) -> Result<(), TopicError> {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &self.assignment {
            tpl.add_partition_offset(t, *p, *o).map_err(kafka_err)?;
        }
        self.consumer.assign(&tpl).map_err(kafka_err)
    }
}

impl Consumer for KafkaConsumer {
    fn assign(&mut self, topic: &str, partitions: &[(i32, StartOffset)]) -> Result<(), TopicError> {
        let count = self.partitions(topic)?;
        for &(p, start) in partitions {
            if !(0..count).contains(&p) {
                return Err(TopicError::UnknownPartition {
                    topic: topic.into(),
                    partition: p,
                    partitions: count,
                });
            }
            let offset = match start {
                StartOffset::Earliest => Offset::Beginning,
                StartOffset::Latest => Offset::End,
                StartOffset::At(o) => Offset::Offset(o),
                StartOffset::Committed { fallback_latest } => match self.committed(topic, p)? {
                    Some(o) => Offset::Offset(o),
                    None if fallback_latest => Offset::End,
                    None => Offset::Beginning,
                },
            };
            self.assignment.insert((topic.to_string(), p), offset);
        }
        self.reassign()
    }

    fn assign_all(&mut self, topic: &str, start: StartOffset) -> Result<(), TopicError> {
        let count = self.partitions(topic)?;
        let all: Vec<(i32, StartOffset)> = (0..count).map(|p| (p, start)).collect();
        self.assign(topic, &all)
    }

    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, TopicError> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while out.len() < max {
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => return Err(kafka_err(e)),
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| Header {
                                    key: h.key.to_string(),
                                    value: h.value.map(<[u8]>::to_vec),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        headers,
                    });
                }
            }
            if out.is_empty() && Instant::now() >= deadline {
                break;
            }
        }
        // Remember positions so a later `assign` of another topic does not
        // rewind partitions already being read.
        for r in &out {
            self.assignment
                .insert((r.topic.clone(), r.partition), Offset::Offset(r.offset + 1));
        }
        Ok(out)
    }

    fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), TopicError> {
        let key = (topic.to_string(), partition);
        if !self.assignment.contains_key(&key) {
            return Err(TopicError::Config(format!(
                "seek on {topic}/{partition}, which this consumer is not assigned"
            )));
        }
        self.assignment.insert(key, Offset::Offset(offset));
        // Re-assigning is reliable even before the first fetch, where
        // librdkafka's seek fails with "erroneous state".
        self.reassign()
    }

    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<(), TopicError> {
        if !self.has_group {
            return Err(TopicError::Config("commit needs a consumer group".into()));
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(kafka_err)?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(kafka_err)
    }

    fn committed(&mut self, topic: &str, partition: i32) -> Result<Option<i64>, TopicError> {
        if !self.has_group {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let got = self
            .consumer
            .committed_offsets(tpl, self.backend.config.timeout)
            .map_err(kafka_err)?;
        Ok(got
            .find_partition(topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
    }
}
