//! The state of one key of one view: its windows and their aggregators.
//!
//! A key's events are applied in event-time order. Evicting windows
//! (sliding, hopping) share one queue of the key's retained events; each
//! window only remembers where it starts in that queue, so an event is
//! stored once however many windows count it, and the queue is trimmed to
//! what the longest window still needs.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::agg::{Agg, WindowValues};
use super::value::Scalar;
use crate::spec::Window;
use crate::spec::validate::FeaturePlan;
use crate::spec::window::Forgetting;

/// Which features run on which window, and which input each one reads.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Distinct windows of the view.
    pub windows: Vec<Window>,
    /// For each window, (feature index, input index) pairs.
    pub members: Vec<Vec<(usize, usize)>>,
    /// The input columns, by name (`None` means "the event itself", for
    /// `count` without a column).
    pub inputs: Vec<Option<String>>,
    /// Number of features.
    pub features: usize,
    /// Some window evicts single events, so events must be retained.
    pub retains: bool,
    /// Some window never forgets (lifetime): the key is never dropped.
    pub keeps_forever: bool,
    /// The feature plans, in output order.
    pub plans: Vec<FeaturePlan>,
    /// Derived features (feature index, expression), in order: computed
    /// from the values before them once the windows' are in.
    pub derived: Vec<(usize, crate::engine::expr::Expr)>,
}

impl Layout {
    /// The layout of `features`.
    pub fn new(features: &[FeaturePlan]) -> Layout {
        let mut windows: Vec<Window> = Vec::new();
        let mut members: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut inputs: Vec<Option<String>> = Vec::new();
        let mut derived = Vec::new();
        for (f, plan) in features.iter().enumerate() {
            if let Some(d) = &plan.derived {
                derived.push((f, d.expr.clone()));
                continue;
            }
            let input = match inputs.iter().position(|i| *i == plan.input) {
                Some(i) => i,
                None => {
                    inputs.push(plan.input.clone());
                    inputs.len() - 1
                }
            };
            let w = match windows.iter().position(|w| *w == plan.window) {
                Some(w) => w,
                None => {
                    windows.push(plan.window);
                    members.push(Vec::new());
                    windows.len() - 1
                }
            };
            members[w].push((f, input));
        }
        Layout {
            retains: windows.iter().any(|w| w.forgetting() == Forgetting::Evicts),
            keeps_forever: windows.contains(&Window::Lifetime),
            windows,
            members,
            inputs,
            features: features.len(),
            plans: features.to_vec(),
            derived,
        }
    }
}

/// A retained event: its per-key sequence number, time and inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Its number, in arrival order.
    pub seq: u64,
    /// Its event time.
    pub ts: i64,
    /// The operators' inputs.
    pub inputs: Box<[Scalar]>,
}

/// One window of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WindowState {
    /// Evicting windows: sequence number of the oldest counted event.
    start: u64,
    /// Tumbling: the current period; session: the last event's time.
    mark: i64,
    /// The window holds at least one event.
    open: bool,
    aggs: Vec<Agg>,
}

/// All windows of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyState {
    next_seq: u64,
    events: VecDeque<Event>,
    windows: Vec<WindowState>,
}

struct Slice<'a> {
    events: &'a VecDeque<Event>,
    from: usize,
    input: usize,
}

impl WindowValues for Slice<'_> {
    fn oldest_first(&self, f: &mut dyn FnMut(&Scalar) -> bool) {
        for e in self.events.range(self.from..) {
            if !f(&e.inputs[self.input]) {
                break;
            }
        }
    }

    fn newest_first(&self, f: &mut dyn FnMut(&Scalar) -> bool) {
        for e in self.events.range(self.from..).rev() {
            if !f(&e.inputs[self.input]) {
                break;
            }
        }
    }
}

impl KeyState {
    /// A key with nothing counted.
    pub fn new(layout: &Layout) -> KeyState {
        KeyState {
            next_seq: 0,
            events: VecDeque::new(),
            windows: layout
                .members
                .iter()
                .map(|members| WindowState {
                    start: 0,
                    mark: i64::MIN,
                    open: false,
                    aggs: members
                        .iter()
                        .map(|(f, _)| Agg::new(&layout.plans[*f]))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Rebuilds derived structures after a checkpoint restore.
    pub fn restored(mut self) -> KeyState {
        for w in &mut self.windows {
            for agg in &mut w.aggs {
                if let Agg::Freq(f) = agg {
                    **f = std::mem::replace(&mut **f, super::agg::Freq::new(None)).restored();
                }
            }
        }
        self
    }

    fn base(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }

    /// Counts an event at `ts` (not older than any event before it).
    pub fn apply(&mut self, layout: &Layout, ts: i64, inputs: Box<[Scalar]>) {
        self.advance(layout, ts);
        let seq = self.next_seq;
        self.next_seq += 1;
        for (w, window) in layout.windows.iter().enumerate() {
            let state = &mut self.windows[w];
            if !state.open {
                state.start = seq;
                state.open = true;
            }
            match window {
                Window::Tumbling(size) => state.mark = ts.div_euclid(size.0),
                Window::Session(_) => state.mark = ts,
                _ => {}
            }
            for ((_, input), agg) in layout.members[w].iter().zip(state.aggs.iter_mut()) {
                agg.add(seq, ts, &inputs[*input]);
            }
        }
        if layout.retains {
            self.events.push_back(Event { seq, ts, inputs });
        }
    }

    /// Moves the key's windows to time `t`: evicts what has left sliding
    /// and hopping windows, and empties tumbling windows of a past period and
    /// sessions that have ended.
    pub fn advance(&mut self, layout: &Layout, t: i64) {
        let base = self.base();
        let mut keep_from = self.next_seq;
        for (w, window) in layout.windows.iter().enumerate() {
            let state = &mut self.windows[w];
            match *window {
                Window::Sliding(_) | Window::Hopping { .. } => {
                    let lower = window.lower_bound(t).unwrap_or(i64::MIN);
                    while state.open && state.start < self.next_seq {
                        let e = &self.events[(state.start - base) as usize];
                        if e.ts >= lower {
                            break;
                        }
                        for ((_, input), agg) in layout.members[w].iter().zip(state.aggs.iter_mut())
                        {
                            agg.remove(e.seq, e.ts, &e.inputs[*input]);
                        }
                        state.start += 1;
                    }
                    if state.start >= self.next_seq {
                        state.open = false;
                        state.start = self.next_seq;
                    }
                    keep_from = keep_from.min(state.start);
                }
                Window::Tumbling(size) => {
                    if state.open && t.div_euclid(size.0) != state.mark {
                        reset(state);
                    }
                }
                Window::Session(gap) => {
                    if state.open && t - state.mark >= gap.0 {
                        reset(state);
                    }
                }
                Window::Lifetime => {}
            }
        }
        while self.events.front().is_some_and(|e| e.seq < keep_from) {
            self.events.pop_front();
        }
    }

    /// The next time at which some window changes without a new event.
    pub fn next_change(&self, layout: &Layout) -> Option<i64> {
        let base = self.base();
        layout
            .windows
            .iter()
            .zip(&self.windows)
            .filter(|(_, s)| s.open)
            .filter_map(|(window, state)| match window {
                Window::Sliding(_) | Window::Hopping { .. } => {
                    let e = self.events.get((state.start - base) as usize)?;
                    window.expiry_of(e.ts)
                }
                Window::Tumbling(size) => Some((state.mark + 1) * size.0),
                Window::Session(gap) => Some(state.mark + gap.0),
                Window::Lifetime => None,
            })
            .min()
    }

    /// True when nothing is left to remember: every window is empty and
    /// none of them is a lifetime window.
    pub fn is_forgettable(&self, layout: &Layout) -> bool {
        !layout.keeps_forever && self.windows.iter().all(|w| !w.open)
    }

    /// The features' values as of `t` (after [`KeyState::advance`] to `t`),
    /// in the layout's feature order.
    pub fn values(&self, layout: &Layout, t: i64) -> Vec<Scalar> {
        let mut out = Vec::with_capacity(layout.features);
        self.values_into(layout, t, &mut out);
        out
    }

    /// [`KeyState::values`], appended to `out`.
    pub fn values_into(&self, layout: &Layout, t: i64, out: &mut Vec<Scalar>) {
        let at = out.len();
        out.resize(at + layout.features, Scalar::Null);
        let out = &mut out[at..];
        let base = self.base();
        for (w, state) in self.windows.iter().enumerate() {
            let from = state.start.saturating_sub(base) as usize;
            for ((f, input), agg) in layout.members[w].iter().zip(&state.aggs) {
                let slice = Slice {
                    events: &self.events,
                    from: if state.open { from } else { self.events.len() },
                    input: *input,
                };
                out[*f] = agg.value(t, &slice);
            }
        }
        for (f, expr) in &layout.derived {
            out[*f] = expr.eval(out);
        }
    }

    /// Approximate bytes held by this key.
    pub fn size_bytes(&self) -> usize {
        let events: usize = self
            .events
            .iter()
            .map(|e| 24 + e.inputs.iter().map(Scalar::size_bytes).sum::<usize>())
            .sum();
        let aggs: usize = self
            .windows
            .iter()
            .flat_map(|w| w.aggs.iter().map(Agg::size_bytes))
            .sum();
        std::mem::size_of::<KeyState>() + events + aggs
    }
}

fn reset(state: &mut WindowState) {
    state.open = false;
    state.mark = i64::MIN;
    for agg in &mut state.aggs {
        agg.reset();
    }
}

/// The values of an empty window, for keys never seen.
pub fn empty_values(layout: &Layout) -> Vec<Scalar> {
    KeyState::new(layout).values(layout, 0)
}
