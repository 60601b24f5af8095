//! Re-keyed views: the exchange between the task that reads an event and
//! the task that owns the event's new key (Kafka Streams' repartition).
//!
//! A task releases its events in event-time order; for a re-keyed view it
//! does not count them itself but sends each, with its new key and the
//! view's inputs, to the task that owns the key (murmur2 of the key, as
//! Kafka's partitioner would place it). After each release it sends every
//! task a mark: how far it has released (its watermark), or that it is idle
//! or finished. Live these messages travel on the pipeline's repartition
//! topic; a backfill hands them over in memory. Either way the receiving
//! side below is the same code.
//!
//! The receiver keeps, per origin task, the last position received and the
//! last mark. It releases up to the minimum of its origins' watermarks, in
//! (time, origin, source, offset) order. Each origin's messages arrive in
//! its release order and a mark follows the rows it covers, so whatever
//! the interleaving of origins on the topic, every event at or below that
//! watermark has arrived and the order is the same: live and replay agree
//! exactly. A message at or below an origin's last position is a replay of
//! one already received (the origin restarted from an older checkpoint)
//! and is skipped, counted.

use serde::{Deserialize, Serialize};

use super::Row;
use crate::engine::value::Scalar;

/// What an origin task says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginState {
    /// Nothing heard yet: holds every watermark back.
    Unknown,
    /// Released everything up to its watermark.
    Live,
    /// Every input idle (live runs): does not hold the watermark back.
    Idle,
    /// A bounded run released everything it will.
    Finished,
}

/// One message of the exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shuffled {
    /// An event of a re-keyed view, for the task owning its key.
    Row(ShuffledRow),
    /// How far an origin task has released.
    Mark {
        /// The origin task.
        origin: i32,
        /// Its watermark.
        watermark: i64,
        /// Its state.
        state: OriginState,
    },
}

/// An event of a re-keyed view on its way to the task owning its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShuffledRow {
    /// The view (index).
    pub view: u32,
    /// The task that read it.
    pub origin: i32,
    /// Where the origin read it: event time, source, offset.
    pub ts: i64,
    /// The source (index).
    pub source: u32,
    /// The offset in the origin's partition of the source.
    pub offset: i64,
    /// The new key.
    pub key: Scalar,
    /// The view's aggregation inputs.
    pub inputs: Box<[Scalar]>,
}

impl ShuffledRow {
    fn position(&self) -> (i64, u32, i64) {
        (self.ts, self.source, self.offset)
    }

    /// The row as a source event would be dead-lettered (its key the new
    /// key, its columns the view's inputs).
    pub fn as_row(&self) -> Row {
        Row {
            ts: self.ts,
            source: self.source as usize,
            offset: self.offset,
            key: self.key.clone(),
            columns: self.inputs.clone(),
        }
    }
}

/// What [`Exchange::receive`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Kept (a row to release, or a mark).
    Accepted,
    /// Already received before the origin restarted: skipped.
    Duplicate,
    /// At or below the watermark: an origin was idle and came back with
    /// older events. Not counted.
    Late {
        /// The receiver's watermark.
        watermark: i64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Origin {
    state: OriginState,
    watermark: i64,
    /// The position of the last row received.
    last: Option<(i64, u32, i64)>,
}

/// The receiving side of one task: its re-keyed views' events from every
/// origin, until they can be released.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    origins: Vec<Origin>,
    pending: Vec<ShuffledRow>,
    /// Every re-keyed event at or below it has been applied.
    pub watermark: i64,
    /// Next offset to read in this task's partition of the repartition
    /// topic (live runs).
    pub next_offset: Option<i64>,
    /// Every origin finished and everything was released.
    pub finished: bool,
    /// The upstream half of this task finished (a bounded run).
    pub upstream_finished: bool,
}

impl Exchange {
    /// An exchange hearing from `origins` tasks.
    pub fn new(origins: i32) -> Exchange {
        Exchange {
            origins: (0..origins.max(1))
                .map(|_| Origin {
                    state: OriginState::Unknown,
                    watermark: i64::MIN,
                    last: None,
                })
                .collect(),
            pending: Vec::new(),
            watermark: i64::MIN,
            next_offset: None,
            finished: false,
            upstream_finished: false,
        }
    }

    /// Takes one message (read at `offset` of the repartition topic, live).
    pub fn receive(&mut self, msg: Shuffled, offset: Option<i64>) -> Received {
        if let Some(o) = offset {
            self.next_offset = Some(o + 1);
        }
        match msg {
            Shuffled::Mark {
                origin,
                watermark,
                state,
            } => {
                let Some(o) = self.origins.get_mut(origin as usize) else {
                    return Received::Duplicate;
                };
                // Finished again after the same mark changes nothing; any
                // other news reopens a finished exchange.
                if o.state != state || watermark > o.watermark {
                    self.finished = false;
                }
                o.watermark = o.watermark.max(watermark);
                o.state = state;
                Received::Accepted
            }
            Shuffled::Row(row) => {
                let Some(o) = self.origins.get_mut(row.origin as usize) else {
                    return Received::Duplicate;
                };
                if o.last.is_some_and(|last| row.position() <= last) {
                    return Received::Duplicate;
                }
                o.last = Some(row.position());
                // An origin that sends rows is not finished (a bounded run
                // that finished it has started again): its `Finished` from
                // then must not finish this exchange before its new rows.
                if o.state == OriginState::Finished {
                    o.state = OriginState::Live;
                }
                if row.ts <= self.watermark {
                    return Received::Late {
                        watermark: self.watermark,
                    };
                }
                self.finished = false;
                self.pending.push(row);
                Received::Accepted
            }
        }
    }

    /// How far the origins allow releasing: the minimum over live origins;
    /// None while an origin is unheard of or none is live.
    pub fn allowed(&self) -> Option<i64> {
        let mut min = None::<i64>;
        for o in &self.origins {
            match o.state {
                OriginState::Unknown => return None,
                OriginState::Live => min = Some(min.map_or(o.watermark, |m| m.min(o.watermark))),
                OriginState::Idle | OriginState::Finished => {}
            }
        }
        min
    }

    /// Every origin finished: the time to release everything to (the
    /// latest origin's), as a bounded task finishes at its latest event.
    pub fn all_finished(&self) -> Option<i64> {
        self.origins
            .iter()
            .all(|o| o.state == OriginState::Finished)
            .then(|| {
                self.origins
                    .iter()
                    .map(|o| o.watermark)
                    .max()
                    .unwrap_or(i64::MIN)
                    .max(self.watermark)
            })
    }

    /// Takes the pending rows at or below `w`, in release order, and moves
    /// the watermark there.
    pub fn release(&mut self, w: i64) -> Vec<ShuffledRow> {
        self.pending
            .sort_unstable_by_key(|r| (r.ts, r.origin, r.source, r.offset));
        let due = self.pending.partition_point(|r| r.ts <= w);
        self.watermark = self.watermark.max(w);
        self.pending.drain(..due).collect()
    }

    /// Rows received and not yet released.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A bounded run that finished goes on live (or reads new records).
    pub fn reopen(&mut self) {
        self.finished = false;
        self.upstream_finished = false;
    }
}

/// The task owning `key` among `partitions` (Kafka's default partitioner
/// over the key's text, so the repartition topic's records sit where a
/// Kafka producer would have put them).
pub fn owner(key: &Scalar, partitions: i32) -> i32 {
    crate::topic::partitioner::partition_for_key(key.key_text().as_bytes(), partitions.max(1))
}

#[cfg(test)]
mod tests;
