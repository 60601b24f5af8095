//! The keyed state of one feature view in one task, with timers.
//!
//! Rows are applied in event-time order once the watermark has passed
//! them. Then every key whose values changed — because it got events, or
//! because one of its windows expired as time passed (a timer fired) — is
//! brought to the watermark and emitted as an upsert.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::keyed::{KeyState, Layout};
use super::value::Scalar;

/// One emitted row of a feature table.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub key: Scalar,
    /// The time the values are valid for: the task's watermark.
    pub as_of: i64,
    /// Values in the view's feature order.
    pub values: Vec<Scalar>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    state: KeyState,
    timer: Option<i64>,
}

/// A view's keys in one task.
#[derive(Debug, Clone)]
pub struct ViewState {
    layout: Arc<Layout>,
    keys: HashMap<Scalar, Entry>,
    timers: BTreeSet<(i64, Scalar)>,
    /// Keys changed since the last emit.
    dirty: HashSet<Scalar>,
}

/// What a checkpoint keeps of a view.
#[derive(Serialize, Deserialize)]
pub struct ViewSnapshot {
    keys: Vec<(Scalar, Entry)>,
}

impl ViewState {
    pub fn new(layout: Arc<Layout>) -> ViewState {
        ViewState {
            layout,
            keys: HashMap::new(),
            timers: BTreeSet::new(),
            dirty: HashSet::new(),
        }
    }

    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Counts one event for `key`. Events must come in event-time order.
    pub fn apply(&mut self, key: &Scalar, ts: i64, inputs: Box<[Scalar]>) {
        let layout = &self.layout;
        let entry = self.keys.entry(key.clone()).or_insert_with(|| Entry {
            state: KeyState::new(layout),
            timer: None,
        });
        entry.state.apply(layout, ts, inputs);
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
    }

    /// Moves the view to `watermark`: fires due timers, brings every changed
    /// key to the watermark and returns their rows (sorted by key, so output
    /// order is deterministic).
    pub fn emit(&mut self, watermark: i64) -> Vec<FeatureRow> {
        while let Some((t, _)) = self.timers.first() {
            if *t > watermark {
                break;
            }
            let (_, key) = self.timers.pop_first().expect("checked above");
            if let Some(e) = self.keys.get_mut(&key) {
                e.timer = None;
            }
            self.dirty.insert(key);
        }
        let mut keys: Vec<Scalar> = self.dirty.drain().collect();
        keys.sort();
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(entry) = self.keys.get_mut(&key) else {
                continue;
            };
            entry.state.advance(&self.layout, watermark);
            rows.push(FeatureRow {
                key: key.clone(),
                as_of: watermark,
                values: entry.state.values(&self.layout, watermark),
            });
            if let Some(old) = entry.timer.take() {
                self.timers.remove(&(old, key.clone()));
            }
            if entry.state.is_forgettable(&self.layout) {
                self.keys.remove(&key);
                continue;
            }
            if let Some(next) = entry.state.next_change(&self.layout) {
                entry.timer = Some(next);
                self.timers.insert((next, key));
            }
        }
        rows
    }

    /// Marks every key changed, so the next emit writes the whole table (the
    /// end of a bounded run: the final table is then the same however the
    /// run was cut into batches or interrupted).
    pub fn touch_all(&mut self) {
        self.dirty.extend(self.keys.keys().cloned());
    }

    /// The current values of `key` (after the last [`ViewState::emit`]);
    /// the empty-window values for a key with no state.
    pub fn values(&self, key: &Scalar, as_of: i64) -> Vec<Scalar> {
        match self.keys.get(key) {
            Some(e) => e.state.values(&self.layout, as_of),
            None => super::keyed::empty_values(&self.layout),
        }
    }

    /// Keys with state.
    pub fn keys(&self) -> impl Iterator<Item = &Scalar> {
        self.keys.keys()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Approximate bytes of state.
    pub fn size_bytes(&self) -> usize {
        self.keys
            .iter()
            .map(|(k, e)| k.size_bytes() + e.state.size_bytes() + 32)
            .sum()
    }

    pub fn snapshot(&self) -> ViewSnapshot {
        assert!(self.dirty.is_empty(), "snapshot between emits only");
        ViewSnapshot {
            keys: self
                .keys
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        }
    }

    pub fn restore(layout: Arc<Layout>, snapshot: ViewSnapshot) -> ViewState {
        let mut view = ViewState::new(layout);
        for (key, mut entry) in snapshot.keys {
            entry.state = entry.state.restored();
            if let Some(t) = entry.timer {
                view.timers.insert((t, key.clone()));
            }
            view.keys.insert(key, entry);
        }
        view
    }
}
