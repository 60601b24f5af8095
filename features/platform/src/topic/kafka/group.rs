//! Consumer-group membership: the rebalance callback of a subscribed
//! consumer.
//!
//! librdkafka calls [`GroupContext::rebalance`] from inside `poll`. On an
//! assignment the listener says where each partition starts; the offsets
//! are written into the assignment itself, rewound by [`super::REWIND`] like every
//! other start of this consumer (tansu's mid-batch fetch, see `consumer`),
//! and the positions to drop up to are handed to the consumer through
//! `changes`. On a revocation the listener runs before the partitions go.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::rewound;
use crate::topic::{RebalanceListener, StartOffset};

/// A partition change for the consumer to apply to its positions.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Hand out records of (topic, partition) from `next`; `verified` says
    /// the fetch starts exactly there.
    Assigned {
        topic: String,
        partition: i32,
        next: i64,
        verified: bool,
    },
    Revoked {
        topic: String,
        partition: i32,
    },
}

/// The consumer context: logs like the default one, and handles
/// rebalances when a listener is set.
#[derive(Default)]
pub(crate) struct GroupContext {
    pub(crate) listener: Mutex<Option<Arc<dyn RebalanceListener>>>,
    pub(crate) changes: Mutex<Vec<Change>>,
}

impl ClientContext for GroupContext {}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let listener = self.listener.lock().expect("poisoned").clone();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts = partitions(tpl);
                let starts = match &listener {
                    Some(l) => l.assigned(&parts),
                    None => vec![StartOffset::Earliest; parts.len()],
                };
                let mut changes = self.changes.lock().expect("poisoned");
                for ((topic, partition), start) in parts.into_iter().zip(starts) {
                    let next = match start {
                        StartOffset::At(o) => o.max(0),
                        _ => 0,
                    };
                    let fetch = rewound(next);
                    let offset = if fetch == 0 {
                        Offset::Beginning
                    } else {
                        Offset::Offset(fetch)
                    };
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                        tracing::warn!(%topic, partition, error = %e, "kafka: cannot set the start offset of an assigned partition");
                    }
                    changes.push(Change::Assigned {
                        topic,
                        partition,
                        next,
                        verified: fetch == 0,
                    });
                }
                drop(changes);
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "kafka: assigning partitions after a rebalance failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts = partitions(tpl);
                if let Some(l) = &listener {
                    l.revoked(&parts);
                }
                self.changes.lock().expect("poisoned").extend(
                    parts
                        .into_iter()
                        .map(|(topic, partition)| Change::Revoked { topic, partition }),
                );
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "kafka: unassigning revoked partitions failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "kafka: rebalance error; the group will retry");
                let _ = consumer.unassign();
            }
        }
    }
}
