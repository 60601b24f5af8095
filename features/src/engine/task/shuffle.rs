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
//!
//! Models and training sets read a re-keyed view for each event they probe
//! (an item's click-through rate as of a click): the probing task sends the
//! owner a [`Lookup`] (view, key, the event's time and position) beside the
//! event's rows, the owner answers it in its release walk just before its
//! events at that time count (the probe's "as of just before"), and the
//! [`Answer`] goes back to the probing task, whose probed events wait, in
//! release order, until every answer is in ([`Waiting`]). Lookups and
//! answers travel like rows, so they are as durable and as deterministic.

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
    /// A probed event asks the owner of a re-keyed view's key for the
    /// view's values just before the event.
    Lookup(Lookup),
    /// The owner's answer, for the probing task's waiting event.
    Answer(Answer),
}

impl Shuffled {
    /// The event time the message speaks of (a mark's watermark).
    pub fn ts(&self) -> i64 {
        match self {
            Shuffled::Row(r) => r.ts,
            Shuffled::Mark { watermark, .. } => *watermark,
            Shuffled::Lookup(l) => l.ts,
            Shuffled::Answer(a) => a.ts,
        }
    }

    /// The key it is partitioned by on the repartition topic, if any.
    pub fn key(&self) -> Option<&Scalar> {
        match self {
            Shuffled::Row(r) => Some(&r.key),
            Shuffled::Lookup(l) => Some(&l.key),
            Shuffled::Mark { .. } | Shuffled::Answer(_) => None,
        }
    }
}

/// A read of a re-keyed view for a probed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    /// The view (index).
    pub view: u32,
    /// The probing task.
    pub origin: i32,
    /// The event's time: the view is read as of just before it.
    pub ts: i64,
    /// The event's source (index).
    pub source: u32,
    /// The event's offset in the origin's partition of the source.
    pub offset: i64,
    /// The view's key for the event.
    pub key: Scalar,
}

impl Lookup {
    fn position(&self) -> Position {
        (self.ts, self.source, self.offset)
    }
}

/// The view's values for a [`Lookup`], sent back to the probing task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The view (index).
    pub view: u32,
    /// The event's time, source and offset (which waiting event).
    pub ts: i64,
    /// The event's source (index).
    pub source: u32,
    /// The event's offset.
    pub offset: i64,
    /// The values; None when the lookup came after the owner's watermark
    /// had passed its time (its origin was idle meanwhile), so the values
    /// just before it are gone: the event gets nulls, counted as late.
    pub values: Option<Vec<Scalar>>,
}

/// A probed event waiting for its re-keyed views' values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The event.
    pub row: Row,
    /// Every view's values, the re-keyed views' null until answered.
    pub values: Vec<Scalar>,
    /// The re-keyed views still to answer: (view, where its values start
    /// in `values`, how many).
    pub missing: Vec<(u32, u32, u32)>,
}

/// Where a message stands in its origin's order for one view: (time,
/// source, offset). Per view: one event sends a row to every re-keyed
/// view, two of them may have the same owner, and a task sends a batch's
/// rows view after view.
type Position = (i64, u32, i64);

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
    fn position(&self) -> Position {
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
    /// older events. Not counted (a lookup: answered with nulls).
    Late {
        /// The receiver's watermark.
        watermark: i64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Origin {
    state: OriginState,
    watermark: i64,
    /// Per view: the position of the last row received.
    last: Vec<Option<Position>>,
    /// Per view: the position of the last lookup received (lookups are
    /// sent as events are probed, before their rows: an order of their
    /// own).
    last_lookup: Vec<Option<Position>>,
}

/// Whether `position` is past `last[view]`, recording it if so: a message
/// at or before it is a replay (its origin restarted).
fn advances(last: &mut Vec<Option<Position>>, view: u32, position: Position) -> bool {
    let view = view as usize;
    if last.len() <= view {
        last.resize(view + 1, None);
    }
    if last[view].is_some_and(|l| position <= l) {
        return false;
    }
    last[view] = Some(position);
    true
}

/// The receiving side of one task: its re-keyed views' events from every
/// origin, until they can be released.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    origins: Vec<Origin>,
    pending: Vec<ShuffledRow>,
    /// Lookups to answer, latest first (they are popped).
    lookups: Vec<Lookup>,
    /// Answers not yet sent: (probing task, answer).
    pub answers: Vec<(i32, Answer)>,
    /// This task's probed events waiting for answers, in release order.
    pub waiting: std::collections::VecDeque<Waiting>,
    /// Answers that came before their event was probed here, by (time,
    /// source, offset, view). An earlier run of the pipeline whose
    /// checkpoints are gone left them on the topic, and the owner skips
    /// this run's lookups for the same events as replays of that run's, so
    /// they are the only answers coming. Used when the event is probed;
    /// dropped, as the replays they are, once the task's watermark passes
    /// them ([`Exchange::prune_early`]).
    early: std::collections::BTreeMap<(i64, u32, i64, u32), Option<Vec<Scalar>>>,
    /// Every re-keyed event at or below it has been applied.
    pub watermark: i64,
    /// Next offset to read in this task's partition of the repartition
    /// topic (live runs).
    pub next_offset: Option<i64>,
    /// Every origin finished and everything was released (lookups may
    /// still wait for answers: see [`Exchange::settled`]).
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
                    last: Vec::new(),
                    last_lookup: Vec::new(),
                })
                .collect(),
            pending: Vec::new(),
            lookups: Vec::new(),
            answers: Vec::new(),
            waiting: std::collections::VecDeque::new(),
            early: std::collections::BTreeMap::new(),
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
                if !advances(&mut o.last, row.view, row.position()) {
                    return Received::Duplicate;
                }
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
            Shuffled::Lookup(lookup) => {
                let Some(o) = self.origins.get_mut(lookup.origin as usize) else {
                    return Received::Duplicate;
                };
                if !advances(&mut o.last_lookup, lookup.view, lookup.position()) {
                    return Received::Duplicate;
                }
                if o.state == OriginState::Finished {
                    o.state = OriginState::Live;
                }
                self.finished = false;
                // Events at its time have counted here: the values just
                // before it are gone.
                if lookup.ts <= self.watermark {
                    self.answers.push((
                        lookup.origin,
                        Answer {
                            view: lookup.view,
                            ts: lookup.ts,
                            source: lookup.source,
                            offset: lookup.offset,
                            values: None,
                        },
                    ));
                    return Received::Late {
                        watermark: self.watermark,
                    };
                }
                let at = self
                    .lookups
                    .partition_point(|l| (l.position(), l.view) > (lookup.position(), lookup.view));
                self.lookups.insert(at, lookup);
                Received::Accepted
            }
            Shuffled::Answer(answer) => self.answered(answer),
        }
    }

    /// Fills a waiting event's values with an answer; Duplicate if no
    /// waiting event asked for it (answered twice after a restart).
    fn answered(&mut self, answer: Answer) -> Received {
        let at = self
            .waiting
            .binary_search_by_key(&(answer.ts, answer.source, answer.offset), |w| {
                (w.row.ts, w.row.source as u32, w.row.offset)
            });
        let Ok(at) = at else {
            // Not probed yet (or long gone: pruned with the watermark).
            self.early.insert(
                (answer.ts, answer.source, answer.offset, answer.view),
                answer.values,
            );
            return Received::Accepted;
        };
        let w = &mut self.waiting[at];
        let Some(m) = w.missing.iter().position(|(v, ..)| *v == answer.view) else {
            return Received::Duplicate;
        };
        let (_, start, n) = w.missing.swap_remove(m);
        // Without values (a late lookup, counted where it arrived) the
        // view's columns stay null.
        if let Some(values) = answer.values {
            let (start, n) = (start as usize, n as usize);
            for (slot, v) in w.values[start..start + n].iter_mut().zip(values) {
                *slot = v;
            }
        }
        // Not `finished = false`: that is about releasing rows, which an
        // answer does not change (it re-released the whole final table).
        Received::Accepted
    }

    /// An answer that came before its event was probed, if any.
    pub fn take_early(
        &mut self,
        ts: i64,
        source: u32,
        offset: i64,
        view: u32,
    ) -> Option<Option<Vec<Scalar>>> {
        self.early.remove(&(ts, source, offset, view))
    }

    /// Drops the early answers at or below `w`, the task's watermark: their
    /// events were probed without them (they answer an earlier run's
    /// lookups). Returns how many.
    pub fn prune_early(&mut self, w: i64) -> u64 {
        let keep = self.early.split_off(&(w.saturating_add(1), 0, i64::MIN, 0));
        let dropped = std::mem::replace(&mut self.early, keep).len();
        dropped as u64
    }

    /// Answers the lookups at or before `t` from `read` (every event
    /// before their time has counted, none at or after it).
    pub fn answer_lookups(&mut self, t: i64, read: &mut dyn FnMut(&Lookup) -> Vec<Scalar>) {
        while let Some(l) = self.lookups.pop_if(|l| l.ts <= t) {
            let values = read(&l);
            self.answers.push((
                l.origin,
                Answer {
                    view: l.view,
                    ts: l.ts,
                    source: l.source,
                    offset: l.offset,
                    values: Some(values),
                },
            ));
        }
    }

    /// The waiting events whose every answer is in, by whole timestamps
    /// (a model that learned part of a time's events would skip the rest
    /// after a restart), in release order.
    pub fn ready(&mut self) -> Vec<Waiting> {
        let mut out = Vec::new();
        while let Some(front) = self.waiting.front() {
            let ts = front.row.ts;
            let group = self.waiting.iter().take_while(|w| w.row.ts == ts).count();
            if self
                .waiting
                .iter()
                .take(group)
                .any(|w| !w.missing.is_empty())
            {
                break;
            }
            out.extend(self.waiting.drain(..group));
        }
        out
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
            .sort_unstable_by_key(|r| (r.ts, r.origin, r.source, r.offset, r.view));
        let due = self.pending.partition_point(|r| r.ts <= w);
        self.watermark = self.watermark.max(w);
        self.pending.drain(..due).collect()
    }

    /// Finished, with no lookup to answer, answer to send or probed event
    /// waiting.
    pub fn settled(&self) -> bool {
        self.finished
            && self.lookups.is_empty()
            && self.answers.is_empty()
            && self.waiting.is_empty()
    }

    /// Lookups waiting for the watermark.
    pub fn lookups(&self) -> usize {
        self.lookups.len()
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
