//! Aggregates that depend on order or on value counts: min/max, first/last,
//! top-k and exact distinct counts.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::WindowValues;
use crate::engine::value::Scalar;

/// Min or max. On an evicting window it is a monotonic deque of
/// (sequence, value): the front is the answer, an arriving value first drops
/// every value it beats from the back, and eviction pops the front when the
/// evicted event is the front. On other windows only the best value is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extreme {
    max: bool,
    evicts: bool,
    deque: VecDeque<(u64, Scalar)>,
}

impl Extreme {
    /// A minimum, or a maximum with `max`; `evicts` when values can leave the window.
    pub fn new(max: bool, evicts: bool) -> Extreme {
        Extreme {
            max,
            evicts,
            deque: VecDeque::new(),
        }
    }

    /// True if `a` should replace `b` as the answer.
    fn beats(&self, a: &Scalar, b: &Scalar) -> bool {
        if self.max { a >= b } else { a <= b }
    }

    /// Counts in value `v`, added as number `seq`.
    pub fn add(&mut self, seq: u64, v: &Scalar) {
        if v.is_null() {
            return;
        }
        if !self.evicts {
            // Only a strict improvement replaces the answer.
            if self
                .deque
                .front()
                .is_none_or(|(_, best)| v != best && self.beats(v, best))
            {
                self.deque.clear();
                self.deque.push_back((seq, v.clone()));
            }
            return;
        }
        while self
            .deque
            .back()
            .is_some_and(|(_, last)| self.beats(v, last))
        {
            self.deque.pop_back();
        }
        self.deque.push_back((seq, v.clone()));
    }

    /// Takes out the value added as `seq`: it left the window.
    pub fn remove(&mut self, seq: u64) {
        if self.deque.front().is_some_and(|(s, _)| *s == seq) {
            self.deque.pop_front();
        }
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        self.deque.clear();
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        self.deque.front().map_or(Scalar::Null, |(_, v)| v.clone())
    }

    /// Bytes of state held, for the state metrics.
    pub fn size_bytes(&self) -> usize {
        self.deque.iter().map(|(_, v)| 8 + v.size_bytes()).sum()
    }
}

/// first, last, first_k, last_k. On an evicting window the values are read
/// from the window's retained events when asked for; on other windows the
/// aggregate keeps the first k values seen (or a ring of the last k).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Positional {
    first: bool,
    /// None: a single value (first/last); Some(k): a list.
    k: Option<usize>,
    from_window: bool,
    items: VecDeque<Scalar>,
}

impl Positional {
    /// The first (or, without `first`, last) value, or `k` of them; `from_window` reads them from the window's retained values.
    pub fn new(first: bool, k: Option<usize>, from_window: bool) -> Positional {
        Positional {
            first,
            k,
            from_window,
            items: VecDeque::new(),
        }
    }

    fn capacity(&self) -> usize {
        self.k.unwrap_or(1)
    }

    /// Counts a value in.
    pub fn add(&mut self, v: &Scalar) {
        if self.from_window || v.is_null() {
            return;
        }
        if self.first {
            if self.items.len() < self.capacity() {
                self.items.push_back(v.clone());
            }
        } else {
            if self.items.len() == self.capacity() {
                self.items.pop_front();
            }
            self.items.push_back(v.clone());
        }
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        self.items.clear();
    }

    /// The value or values, read from `window` if kept there.
    pub fn value(&self, window: &dyn WindowValues) -> Scalar {
        let items: Vec<Scalar> = if self.from_window {
            let cap = self.capacity();
            let mut out = Vec::with_capacity(cap);
            let mut take = |v: &Scalar| {
                if !v.is_null() {
                    out.push(v.clone());
                }
                out.len() < cap
            };
            if self.first {
                window.oldest_first(&mut take);
            } else {
                window.newest_first(&mut take);
                out.reverse();
            }
            out
        } else {
            self.items.iter().cloned().collect()
        };
        match self.k {
            Some(_) => Scalar::List(items.into()),
            None => items.into_iter().next().unwrap_or(Scalar::Null),
        }
    }

    /// Bytes of state held, for the state metrics.
    pub fn size_bytes(&self) -> usize {
        self.items.iter().map(Scalar::size_bytes).sum()
    }
}

/// Exact value counts: count_distinct reads the number of values, top_k the
/// k most frequent (most frequent first, ties by ascending value). A list
/// value counts each of its elements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Freq {
    top: Option<usize>,
    /// foldhash, not SipHash: keys are the engine's own values, and the
    /// map is on the per-event path.
    counts: HashMap<Scalar, u64, foldhash::fast::RandomState>,
    #[serde(skip)]
    ranked: BTreeSet<(Reverse<u64>, Scalar)>,
}

impl Freq {
    /// Counts of each value: distinct values, or with `top` the most frequent.
    pub fn new(top: Option<usize>) -> Freq {
        Freq {
            top,
            counts: HashMap::default(),
            ranked: BTreeSet::new(),
        }
    }

    /// Rebuilds the ranking after a restore (it is not checkpointed: it is
    /// a function of the counts).
    pub fn restored(mut self) -> Freq {
        if self.top.is_some() {
            self.ranked = self
                .counts
                .iter()
                .map(|(v, c)| (Reverse(*c), v.clone()))
                .collect();
        }
        self
    }

    fn bump(&mut self, item: &Scalar, up: bool) {
        // Look up by reference: the key is cloned only when it is new.
        let old = match self.counts.get_mut(item) {
            Some(count) => {
                let old = *count;
                *count = if up { old + 1 } else { old.saturating_sub(1) };
                old
            }
            None if up => {
                self.counts.insert(item.clone(), 1);
                0
            }
            None => return,
        };
        let new = if up { old + 1 } else { old.saturating_sub(1) };
        if new == 0 {
            self.counts.remove(item);
        }
        if self.top.is_some() {
            if old > 0 {
                self.ranked.remove(&(Reverse(old), item.clone()));
            }
            if new > 0 {
                self.ranked.insert((Reverse(new), item.clone()));
            }
        }
    }

    /// Counts a value in.
    pub fn add(&mut self, v: &Scalar) {
        v.for_each_item(|item| self.bump(item, true));
    }

    /// Takes a value out: it left the window.
    pub fn remove(&mut self, v: &Scalar) {
        v.for_each_item(|item| self.bump(item, false));
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        self.counts.clear();
        self.ranked.clear();
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        match self.top {
            None => Scalar::Long(self.counts.len() as i64),
            Some(k) => Scalar::List(self.ranked.iter().take(k).map(|(_, v)| v.clone()).collect()),
        }
    }

    /// Bytes of state held, for the state metrics.
    pub fn size_bytes(&self) -> usize {
        let per = if self.top.is_some() { 2 } else { 1 };
        self.counts
            .keys()
            .map(|k| per * (k.size_bytes() + 16))
            .sum()
    }
}
