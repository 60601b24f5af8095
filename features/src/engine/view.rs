//! The keyed state of one feature view in one task, with timers.
//!
//! Rows are applied in event-time order once the watermark has passed
//! them. Then every key whose values changed — because it got events, or
//! because one of its windows expired as time passed (a timer fired) — is
//! brought to the watermark and emitted as an upsert.
//!
//! Keys live in a slab (`entries`), found through a hash map. Timers are a
//! min-heap of (time, slot, generation) with lazy deletion: rescheduling a
//! key pushes a new timer and the stale one is skipped when it surfaces, so
//! no timer is ever searched for. The slab order is the order keys first
//! appeared, which makes the order of emitted rows deterministic without
//! sorting keys.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::keyed::{KeyState, Layout};
use super::value::Scalar;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One emitted row of a feature table.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// The key.
    pub key: Scalar,
    /// The time the values are valid for: the task's watermark.
    pub as_of: i64,
    /// Values in the view's feature order.
    pub values: Vec<Scalar>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: Scalar,
    state: KeyState,
    /// The live timer, if any (older heap entries for this slot are stale).
    timer: Option<i64>,
    #[serde(skip)]
    dirty: bool,
}

/// A view's keys in one task.
#[derive(Debug, Clone)]
pub struct ViewState {
    layout: Arc<Layout>,
    index: FastMap<Scalar, usize>,
    /// Slots; None is free (listed in `free`).
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    /// Bumped when a slot is freed, so timers of a previous owner are stale.
    generations: Vec<u32>,
    timers: BinaryHeap<Reverse<(i64, usize, u32)>>,
    /// Slots changed since the last emit.
    dirty: Vec<usize>,
}

/// What a checkpoint keeps of a view: the slots, in order, free ones as
/// None, so a restored view emits in the same order.
#[derive(Serialize, Deserialize)]
pub struct ViewSnapshot {
    entries: Vec<Option<Entry>>,
}

impl ViewState {
    /// A view with no key.
    pub fn new(layout: Arc<Layout>) -> ViewState {
        ViewState {
            layout,
            index: FastMap::default(),
            entries: Vec::new(),
            free: Vec::new(),
            generations: Vec::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
        }
    }

    fn slot(&mut self, key: &Scalar) -> usize {
        if let Some(i) = self.index.get(key) {
            return *i;
        }
        let entry = Entry {
            key: key.clone(),
            state: KeyState::new(&self.layout),
            timer: None,
            dirty: false,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                self.generations.push(0);
                self.entries.len() - 1
            }
        };
        self.index.insert(key.clone(), i);
        i
    }

    fn mark_dirty(&mut self, i: usize) {
        if let Some(e) = &mut self.entries[i]
            && !e.dirty
        {
            e.dirty = true;
            self.dirty.push(i);
        }
    }

    /// Counts one event for `key`. Events must come in event-time order.
    pub fn apply(&mut self, key: &Scalar, ts: i64, inputs: Box<[Scalar]>) {
        let i = self.slot(key);
        let layout = &self.layout;
        let entry = self.entries[i].as_mut().expect("live slot");
        entry.state.apply(layout, ts, inputs);
        self.mark_dirty(i);
    }

    /// Moves the view to `watermark`: fires due timers, brings every changed
    /// key to the watermark and returns their rows (in slab order).
    pub fn emit(&mut self, watermark: i64) -> Vec<FeatureRow> {
        self.emit_with(watermark, true)
    }

    /// [`ViewState::emit`] without computing rows: windows, timers and
    /// forgetting move exactly as they would, so a later emit is the same.
    pub fn emit_quietly(&mut self, watermark: i64) {
        self.emit_with(watermark, false);
    }

    fn emit_with(&mut self, watermark: i64, rows_wanted: bool) -> Vec<FeatureRow> {
        while let Some(Reverse((t, i, generation))) = self.timers.peek().copied() {
            if t > watermark {
                break;
            }
            self.timers.pop();
            let live = self.generations[i] == generation
                && self.entries[i].as_ref().is_some_and(|e| e.timer == Some(t));
            if live {
                if let Some(e) = &mut self.entries[i] {
                    e.timer = None;
                }
                self.mark_dirty(i);
            }
        }
        let mut slots = std::mem::take(&mut self.dirty);
        slots.sort_unstable();
        let mut rows = Vec::with_capacity(slots.len());
        for i in slots {
            let Some(entry) = self.entries[i].as_mut() else {
                continue;
            };
            entry.dirty = false;
            entry.state.advance(&self.layout, watermark);
            if rows_wanted {
                rows.push(FeatureRow {
                    key: entry.key.clone(),
                    as_of: watermark,
                    values: entry.state.values(&self.layout, watermark),
                });
            }
            if entry.state.is_forgettable(&self.layout) {
                self.index.remove(&entry.key);
                self.entries[i] = None;
                self.generations[i] = self.generations[i].wrapping_add(1);
                self.free.push(i);
                continue;
            }
            let next = entry.state.next_change(&self.layout);
            if next != entry.timer {
                entry.timer = next;
                if let Some(t) = next {
                    self.timers.push(Reverse((t, i, self.generations[i])));
                }
            }
        }
        rows
    }

    /// Marks every key changed, so the next emit writes the whole table (the
    /// end of a bounded run: the final table is then the same however the
    /// run was cut into batches or interrupted).
    pub fn touch_all(&mut self) {
        for i in 0..self.entries.len() {
            self.mark_dirty(i);
        }
    }

    /// The current values of `key` (after the last [`ViewState::emit`]);
    /// the empty-window values for a key with no state.
    pub fn values(&self, key: &Scalar, as_of: i64) -> Vec<Scalar> {
        match self.index.get(key).and_then(|i| self.entries[*i].as_ref()) {
            Some(e) => e.state.values(&self.layout, as_of),
            None => super::keyed::empty_values(&self.layout),
        }
    }

    /// The values of `key` as of `t`, which must not be older than any
    /// event applied to the view. Brings the key's windows to `t` (they
    /// would get there at the next emit anyway), so it changes no output.
    pub fn probe(&mut self, key: &Scalar, t: i64) -> Vec<Scalar> {
        let mut out = Vec::with_capacity(self.layout.features);
        self.probe_into(key, t, &mut out);
        out
    }

    /// [`ViewState::probe`], appending the values to `out`.
    pub fn probe_into(&mut self, key: &Scalar, t: i64, out: &mut Vec<Scalar>) {
        match self.index.get(key).and_then(|i| self.entries[*i].as_mut()) {
            Some(e) => {
                e.state.advance(&self.layout, t);
                e.state.values_into(&self.layout, t, out);
            }
            None => out.extend(super::keyed::empty_values(&self.layout)),
        }
    }

    /// Every key's row as of `as_of`, the watermark of the last emit. A key's
    /// values change only at an emit, so this is what each key's last
    /// emitted row says (as of the later time): it seeds the in-process read
    /// API when a task is restored from a checkpoint.
    pub fn rows(&self, as_of: i64) -> Vec<FeatureRow> {
        self.entries
            .iter()
            .flatten()
            .map(|e| FeatureRow {
                key: e.key.clone(),
                as_of,
                values: e.state.values(&self.layout, as_of),
            })
            .collect()
    }

    /// The view has state for `key`.
    pub fn holds(&self, key: &Scalar) -> bool {
        self.index.contains_key(key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Approximate bytes of state.
    pub fn size_bytes(&self) -> usize {
        self.entries
            .iter()
            .flatten()
            .map(|e| e.key.size_bytes() + e.state.size_bytes() + 48)
            .sum()
    }

    /// What a checkpoint keeps.
    pub fn snapshot(&self) -> ViewSnapshot {
        assert!(self.dirty.is_empty(), "snapshot between emits only");
        ViewSnapshot {
            entries: self.entries.clone(),
        }
    }

    /// The view a checkpoint kept.
    pub fn restore(layout: Arc<Layout>, snapshot: ViewSnapshot) -> ViewState {
        let mut view = ViewState::new(layout);
        for (i, slot) in snapshot.entries.into_iter().enumerate() {
            view.generations.push(0);
            match slot {
                Some(mut entry) => {
                    entry.state = entry.state.restored();
                    if let Some(t) = entry.timer {
                        view.timers.push(Reverse((t, i, 0)));
                    }
                    view.index.insert(entry.key.clone(), i);
                    view.entries.push(Some(entry));
                }
                None => {
                    view.entries.push(None);
                    view.free.push(i);
                }
            }
        }
        view
    }
}
