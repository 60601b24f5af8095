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
//! - High watermarks are not taken from ListOffsets alone: tansu 0.6 answers
//!   "latest" with the base offset of the last record batch plus one, which
//!   is short by the size of that batch. [`cluster::Cluster`] confirms the
//!   watermark with a fetch (see there); on Apache Kafka both agree.

mod cluster;
mod consumer;
mod group;
mod producer;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use self::cluster::Cluster;

/// How far before a wanted offset a fetch starts: tansu 0.6 answers a
/// fetch from the middle of a batch with the next batch, skipping the rest
/// of the one holding the offset, so the consumer (and the group's
/// assignment) reads from up to this many records earlier and drops what
/// comes before the offset it wants (see `consumer`).
pub(crate) const REWIND: i64 = 10_000;

/// Where a fetch for `next` starts: [`REWIND`] records earlier, or 0.
pub(crate) fn rewound(next: i64) -> i64 {
    (next - REWIND).max(0)
}
use super::{
    Backend, CleanupPolicy, Consumer, PartitionInfo, Producer, TopicDescription, TopicError,
    TopicSpec,
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
    /// How long a running consumer waits for brokers that stopped
    /// answering (librdkafka reconnects meanwhile) before it fails with
    /// [`TopicError::BrokerUnreachable`](crate::topic::TopicError). Default
    /// 300 s.
    pub outage_timeout: Duration,
}

impl KafkaConfig {
    /// Defaults for these brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            outage_timeout: Duration::from_secs(300),
        }
    }

    /// Checks one librdkafka property (name and value) without creating a
    /// client, so a bad property can be reported with where it came from.
    /// Returns librdkafka's own explanation.
    pub fn validate_property(key: &str, value: &str) -> Result<(), String> {
        let mut c = ClientConfig::new();
        c.set(key, value);
        c.create_native_config().map(drop).map_err(|e| match e {
            KafkaError::ClientConfig(_, description, _, _) => description,
            other => other.to_string(),
        })
    }

    /// The configuration for eddy's consumers: [`KafkaConfig::client_config`]
    /// plus consumer defaults the user's properties may override.
    ///
    /// `fetch.wait.max.ms` defaults to 50 (librdkafka: 500). It bounds how
    /// long a broker may hold a fetch when there is little data; tansu holds
    /// fetches for about 250 ms even when records are waiting, which made a
    /// 20,000-record topic take seconds to read. On Apache Kafka it only
    /// means more (cheap) empty fetches on an idle partition.
    pub(crate) fn consumer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        if !self.properties.contains_key("fetch.wait.max.ms") {
            c.set("fetch.wait.max.ms", "50");
        }
        c
    }

    /// A librdkafka configuration with the brokers and every pass-through property.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // Fail fast on an unreachable cluster instead of retrying forever.
        c.set(
            "socket.connection.setup.timeout.ms",
            self.timeout.as_millis().to_string(),
        );
        c.set("allow.auto.create.topics", "false");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

pub(crate) fn kafka_err(e: KafkaError) -> TopicError {
    TopicError::Kafka(e.to_string())
}

pub(crate) fn config_err(e: KafkaError) -> TopicError {
    TopicError::Config(format!("librdkafka rejected the client configuration: {e}"))
}

/// The Kafka backend: admin, metadata, producers and consumers for one cluster.
pub struct KafkaBackend {
    admin: AdminClient<DefaultClientContext>,
    cluster: Arc<Cluster>,
}

impl KafkaBackend {
    /// Connects and checks that the cluster answers within `config.timeout`.
    pub fn connect(config: KafkaConfig) -> Result<Self, TopicError> {
        let admin: AdminClient<DefaultClientContext> =
            config.client_config().create().map_err(config_err)?;
        let cluster = Arc::new(Cluster::connect(config)?);
        Ok(KafkaBackend { admin, cluster })
    }

    fn config(&self) -> &KafkaConfig {
        &self.cluster.config
    }

    fn cleanup_policy(&self, topic: &str) -> Option<CleanupPolicy> {
        let opts = AdminOptions::new().request_timeout(Some(self.config().timeout));
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
        spec.validate()?;
        let configs = spec.kafka_configs();
        let mut topic = NewTopic::new(
            &spec.name,
            spec.partitions,
            TopicReplication::Fixed(spec.replication_factor.into()),
        );
        for (k, v) in &configs {
            topic = topic.set(k, v);
        }
        let timeout = self.config().timeout;
        let opts = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
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
        // Wait until metadata shows the topic, so a producer created right
        // after sees it.
        let deadline = Instant::now() + timeout;
        loop {
            match self.cluster.partition_ids(&spec.name) {
                Ok(p) if p.len() as i32 == spec.partitions => return Ok(()),
                Ok(_) | Err(TopicError::UnknownTopic(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(_) | Err(TopicError::UnknownTopic(_)) => {
                    return Err(TopicError::Timeout {
                        what: format!("waiting for topic `{}` to appear in metadata", spec.name),
                        after: timeout,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn list_topics(&self) -> Result<Vec<String>, TopicError> {
        self.cluster.topic_names()
    }

    fn describe_topic(&self, name: &str) -> Result<TopicDescription, TopicError> {
        let ids = self.cluster.partition_ids(name)?;
        let watermarks = self.cluster.watermarks(name, &ids)?;
        let partitions = ids
            .iter()
            .zip(watermarks)
            .map(|(&id, (low, high))| PartitionInfo { id, low, high })
            .collect();
        Ok(TopicDescription {
            name: name.to_string(),
            partitions,
            cleanup: self.cleanup_policy(name),
        })
    }

    fn producer(&self) -> Result<Box<dyn Producer>, TopicError> {
        Ok(Box::new(producer::KafkaProducer::new(
            self.cluster.clone(),
        )?))
    }

    fn consumer(&self, group: Option<&str>) -> Result<Box<dyn Consumer>, TopicError> {
        Ok(Box::new(consumer::KafkaConsumer::new(
            self.cluster.clone(),
            group,
        )?))
    }
}
