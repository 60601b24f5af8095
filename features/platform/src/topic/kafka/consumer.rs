//! The Kafka consumer: librdkafka's `BaseConsumer` with manual assignment.
//!
//! Start offsets are resolved by eddy, not by librdkafka: "latest" becomes
//! the confirmed high watermark (see `cluster`), and "committed" becomes the
//! group's committed offset, so both backends start at the same place.
//!
//! Starting in the middle of a record batch. Kafka answers a fetch at offset
//! `o` with the whole batch that contains `o`, and the client drops the
//! records before `o`. tansu 0.6 answers with the first batch whose *base*
//! offset is at least `o`: the rest of the batch holding `o` is silently
//! skipped (and it can send a batch more than once). So this consumer:
//! - fetches from up to [`super::REWIND`] records before the offset it wants and
//!   drops every record below it (which also drops repeated batches);
//! - checks the first record it gets: if that is already past the wanted
//!   offset while something before it may exist, the rewind was too short
//!   (a huge batch) and it restarts the partition from the beginning.
//!
//! On Apache Kafka this costs at most [`super::REWIND`] records read and dropped per
//! explicit start or seek; starting from the beginning, from "latest", or
//! continuing a partition costs nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use super::cluster::Cluster;
use super::group::{Change, GroupContext};
use super::{config_err, kafka_err, rewound};
use crate::topic::{Consumer, Header, RebalanceListener, Record, StartOffset, TopicError};

/// Where a partition is.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The next offset to hand out; records below it are dropped.
    next: i64,
    /// True once we know no record at or after `next` was skipped.
    verified: bool,
}

pub(crate) struct KafkaConsumer {
    cluster: Arc<Cluster>,
    consumer: BaseConsumer<GroupContext>,
    has_group: bool,
    /// The group assigns partitions (see `group`).
    subscribed: bool,
    positions: BTreeMap<(String, i32), Position>,
    /// Partitions paused by the caller: what librdkafka had fetched for
    /// them is dropped, and fetched again from `next` on resuming.
    paused: std::collections::BTreeSet<(String, i32)>,
    /// Since when the brokers fail to answer, and how many errors, while
    /// librdkafka reconnects (see [`KafkaConsumer::outage`]).
    outage: Option<Outage>,
    /// Outages begun since the consumer was created.
    outages: u64,
}

/// A broker outage in progress.
struct Outage {
    since: Instant,
    errors: u64,
    last_warned: Instant,
    first: String,
}

/// Errors librdkafka recovers from by itself (it reconnects and retries):
/// a broker restarting, a network blip, a leader moving.
fn transient(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::BrokerNotAvailable
                | C::Resolve
        )
    )
}

fn next_reader_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl KafkaConsumer {
    pub(crate) fn new(cluster: Arc<Cluster>, group: Option<&str>) -> Result<Self, TopicError> {
        let group_id = match group {
            Some(g) => g.to_string(),
            // librdkafka needs a group id even for manual assignment; this
            // one never commits.
            None => format!("eddy-reader-{}-{}", std::process::id(), next_reader_id()),
        };
        let consumer: BaseConsumer<GroupContext> = cluster
            .config
            .consumer_config()
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Co-partitioned topics must be assigned alike: the range
            // assignor gives a member the same partition numbers of every
            // topic with the same partition count.
            .set("partition.assignment.strategy", "range")
            .create_with_context(GroupContext::default())
            .map_err(config_err)?;
        Ok(KafkaConsumer {
            cluster,
            consumer,
            has_group: group.is_some(),
            subscribed: false,
            positions: BTreeMap::new(),
            paused: Default::default(),
            outage: None,
            outages: 0,
        })
    }

    /// A transient broker error: logged (with a count, at most every 5 s)
    /// while librdkafka reconnects, and an error only once the brokers have
    /// been gone for longer than the configured outage timeout.
    fn outage(&mut self, e: KafkaError) -> Result<(), TopicError> {
        let now = Instant::now();
        if self.outage.is_none() {
            self.outages += 1;
        }
        let outage = self.outage.get_or_insert_with(|| {
            tracing::warn!(error = %e, brokers = %self.cluster.config.brokers,
                "kafka: brokers not answering; librdkafka reconnects, eddy waits (up to {:?})",
                self.cluster.config.outage_timeout);
            Outage {
                since: now,
                errors: 0,
                last_warned: now,
                first: e.to_string(),
            }
        });
        outage.errors += 1;
        let gone = now.duration_since(outage.since);
        if gone > self.cluster.config.outage_timeout {
            return self.outage_over();
        }
        if now.duration_since(outage.last_warned) >= Duration::from_secs(5) {
            outage.last_warned = now;
            tracing::warn!(errors = outage.errors, seconds = gone.as_secs(), last = %e,
                "kafka: brokers still not answering");
        }
        Ok(())
    }

    /// The outage has lasted past its timeout: over if the brokers answer
    /// a metadata request now (errors can be stale, and an idle topic sends
    /// no record to prove it), otherwise the end of the run.
    fn outage_over(&mut self) -> Result<(), TopicError> {
        let Some(outage) = &self.outage else {
            return Ok(());
        };
        if outage.since.elapsed() <= self.cluster.config.outage_timeout {
            return Ok(());
        }
        if self.cluster.reachable() {
            Self::recovered(&mut self.outage);
            return Ok(());
        }
        let gone = outage.since.elapsed();
        Err(TopicError::BrokerUnreachable {
            brokers: self.cluster.config.brokers.clone(),
            timeout: self.cluster.config.outage_timeout,
            detail: format!(
                "gone for {:.0} s during a run, {} errors, first: {}; raise --broker-outage-timeout to wait longer",
                gone.as_secs_f64(),
                outage.errors,
                outage.first
            ),
        })
    }

    /// A record arrived: an outage in progress is over.
    fn recovered(outage: &mut Option<Outage>) {
        if let Some(o) = outage.take() {
            tracing::warn!(
                seconds = format!("{:.1}", o.since.elapsed().as_secs_f64()),
                errors = o.errors,
                "kafka: brokers answer again; reading resumes where it stopped"
            );
        }
    }

    /// (Re)starts fetching one partition so that `next` is the next record
    /// handed out. `boundary` says `next` is known to start a batch (the
    /// beginning, or a confirmed high watermark).
    fn start(
        &mut self,
        topic: &str,
        partition: i32,
        next: i64,
        boundary: bool,
    ) -> Result<(), TopicError> {
        let fetch_from = if boundary { next } else { rewound(next) };
        let verified = boundary || fetch_from == 0;
        self.fetch_from(topic, partition, fetch_from, Position { next, verified })
    }

    /// Points librdkafka's fetcher for one partition at `fetch_from`.
    fn fetch_from(
        &mut self,
        topic: &str,
        partition: i32,
        fetch_from: i64,
        position: Position,
    ) -> Result<(), TopicError> {
        let key = (topic.to_string(), partition);
        if self.subscribed {
            // The group owns the assignment: move the fetcher instead.
            let offset = if fetch_from == 0 {
                Offset::Beginning
            } else {
                Offset::Offset(fetch_from)
            };
            self.consumer
                .seek(topic, partition, offset, self.cluster.config.timeout)
                .map_err(kafka_err)?;
            self.positions.insert(key, position);
            return Ok(());
        }
        if self.positions.contains_key(&key) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            self.consumer
                .incremental_unassign(&tpl)
                .map_err(kafka_err)?;
        }
        let offset = if fetch_from == 0 {
            Offset::Beginning
        } else {
            Offset::Offset(fetch_from)
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, offset)
            .map_err(kafka_err)?;
        self.consumer.incremental_assign(&tpl).map_err(kafka_err)?;
        self.positions.insert(key, position);
        Ok(())
    }
}

/// Applies what rebalances decided since the last poll.
fn apply_group_changes(
    consumer: &BaseConsumer<GroupContext>,
    positions: &mut BTreeMap<(String, i32), Position>,
) {
    let changes: Vec<Change> =
        std::mem::take(&mut *consumer.context().changes.lock().expect("poisoned"));
    for change in changes {
        match change {
            Change::Assigned {
                topic,
                partition,
                next,
                verified,
            } => {
                positions.insert((topic, partition), Position { next, verified });
            }
            Change::Revoked { topic, partition } => {
                positions.remove(&(topic, partition));
            }
        }
    }
}

impl Consumer for KafkaConsumer {
    fn subscribe(
        &mut self,
        topics: &[String],
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<(), TopicError> {
        if !self.has_group {
            return Err(TopicError::Config(
                "subscribing needs a consumer group".into(),
            ));
        }
        *self.consumer.context().listener.lock().expect("poisoned") = Some(listener);
        self.subscribed = true;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&names).map_err(kafka_err)
    }

    fn assign(&mut self, topic: &str, partitions: &[(i32, StartOffset)]) -> Result<(), TopicError> {
        let count = self.cluster.partition_count(topic)?;
        if let Some(&(p, _)) = partitions.iter().find(|(p, _)| !(0..count).contains(p)) {
            return Err(TopicError::UnknownPartition {
                topic: topic.into(),
                partition: p,
                partitions: count,
            });
        }
        let need_latest: Vec<i32> = partitions
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    StartOffset::Latest
                        | StartOffset::Committed {
                            fallback_latest: true
                        }
                )
            })
            .map(|(p, _)| *p)
            .collect();
        let latest: BTreeMap<i32, i64> = if need_latest.is_empty() {
            BTreeMap::new()
        } else {
            need_latest
                .iter()
                .copied()
                .zip(
                    self.cluster
                        .watermarks(topic, &need_latest)?
                        .into_iter()
                        .map(|(_, h)| h),
                )
                .collect()
        };
        for &(p, start) in partitions {
            let (next, boundary) = match start {
                StartOffset::Earliest => (0, true),
                StartOffset::Latest => (latest[&p], true),
                StartOffset::At(o) => (o, o == 0),
                StartOffset::Committed { fallback_latest } => match self.committed(topic, p)? {
                    Some(o) => (o, o == 0),
                    None if fallback_latest => (latest[&p], true),
                    None => (0, true),
                },
            };
            self.start(topic, p, next, boundary)?;
        }
        Ok(())
    }

    fn assign_all(&mut self, topic: &str, start: StartOffset) -> Result<(), TopicError> {
        let count = self.cluster.partition_count(topic)?;
        let all: Vec<(i32, StartOffset)> = (0..count).map(|p| (p, start)).collect();
        self.assign(topic, &all)
    }

    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>, TopicError> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        self.outage_over()?;
        while out.len() < max {
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let polled = self.consumer.poll(wait);
            if self.subscribed {
                apply_group_changes(&self.consumer, &mut self.positions);
            }
            match polled {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) if transient(&e) => {
                    self.outage(e)?;
                    // Nothing is lost: the fetch position has not moved.
                    if Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
                Some(Err(e)) => return Err(kafka_err(e)),
                Some(Ok(m)) => {
                    Self::recovered(&mut self.outage);
                    let key = (m.topic().to_string(), m.partition());
                    if self.paused.contains(&key) {
                        // Fetched before the pause: read again on resuming.
                        continue;
                    }
                    let Some(pos) = self.positions.get_mut(&key) else {
                        continue;
                    };
                    if m.offset() < pos.next {
                        // Rewound past it, or a batch sent twice.
                        pos.verified = true;
                        continue;
                    }
                    if !pos.verified && m.offset() > pos.next {
                        // Records between `next` and this one may have been
                        // skipped: read the partition from its beginning.
                        tracing::debug!(topic = %key.0, partition = key.1, wanted = pos.next, got = m.offset(),
                            "kafka: fetch skipped past the wanted offset; restarting the partition from the beginning");
                        let next = pos.next;
                        self.fetch_from(
                            &key.0,
                            key.1,
                            0,
                            Position {
                                next,
                                verified: true,
                            },
                        )?;
                        continue;
                    }
                    pos.verified = true;
                    pos.next = m.offset() + 1;
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
        Ok(out)
    }

    fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), TopicError> {
        if !self.positions.contains_key(&(topic.to_string(), partition)) {
            return Err(TopicError::Config(format!(
                "seek on {topic}/{partition}, which this consumer is not assigned"
            )));
        }
        // Re-assigning is reliable even before the first fetch, where
        // librdkafka's seek fails with "erroneous state".
        self.start(topic, partition, offset, offset == 0)
    }

    fn pause(&mut self, topic: &str, partition: i32, paused: bool) -> Result<(), TopicError> {
        let key = (topic.to_string(), partition);
        let Some(next) = self.positions.get(&key).map(|p| p.next) else {
            return Err(TopicError::Config(format!(
                "pause on {topic}/{partition}, which this consumer is not assigned"
            )));
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if paused {
            if self.paused.insert(key) {
                // Stops the fetcher; records it already holds are dropped
                // in `poll`.
                self.consumer.pause(&tpl).map_err(kafka_err)?;
            }
        } else if self.paused.remove(&key) {
            self.consumer.resume(&tpl).map_err(kafka_err)?;
            // From the record after the last one returned, whatever the
            // fetcher had moved on to.
            self.start(topic, partition, next, next == 0)?;
        }
        Ok(())
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

    fn outages(&self) -> u64 {
        self.outages
    }

    fn committed(&mut self, topic: &str, partition: i32) -> Result<Option<i64>, TopicError> {
        if !self.has_group {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let got = self
            .consumer
            .committed_offsets(tpl, self.cluster.config.timeout)
            .map_err(kafka_err)?;
        Ok(got
            .find_partition(topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
    }
}
