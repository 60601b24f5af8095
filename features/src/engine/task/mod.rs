//! A task: one partition number of every source, with the state of every
//! view over those partitions (Kafka Streams' unit of work and of state).
//!
//! Events are *offered* in arrival order. An event at or below the watermark
//! is late and refused. Others wait in a buffer ordered by
//! (event time, source, offset) until the watermark passes them; then they
//! are *released* in that order, joined, derived, filtered and applied to the
//! views, which emit their changed keys as of the watermark. Releasing in
//! event-time order is what makes every window exact: an operator never sees
//! an event older than one it has already counted.
//!
//! The watermark of an input (one partition of one source) is its maximum
//! event time minus the source's lateness, minus 1 ms (so an event at the
//! maximum time itself is never late). The task's watermark is the minimum
//! over its inputs that are not idle.
//!
//! A re-keyed view is counted by the task owning its new key, not the one
//! that reads the event: the reading task sends it there ([`shuffle`]), and
//! the owner releases it under a watermark of its own, the minimum of
//! every origin's.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::frame::{ColumnBuilder, ExprError, Expressions};
use super::job::output::OutType;
use super::keyed::Layout;
use super::table::TableState;
use super::value::Scalar;
use super::view::{FeatureRow, ViewSnapshot, ViewState};
use crate::spec::ColumnType;
use crate::spec::validate::ViewPlan;

mod prepare;
mod probe;
mod rekey;
pub mod shuffle;

use prepare::prepare_rows;
use probe::answer_queries;
pub use probe::{Probe, ProbedRows, Query};
use shuffle::{Exchange, OriginState, Shuffled};

/// A decoded source event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// Event time.
    pub ts: i64,
    /// The source (index).
    pub source: usize,
    /// The record's offset.
    pub offset: i64,
    /// The record's key.
    pub key: Scalar,
    /// The source record's columns, in the plan's `source_columns` order.
    pub columns: Box<[Scalar]>,
}

/// How a view reads its rows.
pub struct ViewRuntime {
    /// The view.
    pub plan: ViewPlan,
    /// Its source (index).
    pub source: usize,
    /// Its operators' layout.
    pub layout: Arc<Layout>,
    expressions: Expressions,
    /// For each join: table index, the `on` column, and the table-row
    /// indices of the selected columns.
    joins: Vec<(usize, usize, Vec<usize>)>,
    /// For each layout input: its column index after joins and derives
    /// (None: the event itself).
    inputs: Vec<Option<usize>>,
    /// Names and types of the columns after joins (the frame's columns).
    joined: Vec<(String, ColumnType)>,
    /// A re-keyed view: its key's column index after joins and derives
    /// (carried as the last input, then split off).
    rekey: Option<usize>,
}

impl ViewRuntime {
    /// Keyed by another column than its source's key.
    pub fn rekeyed(&self) -> bool {
        self.rekey.is_some()
    }
}

/// What every task of a job shares.
pub struct TaskConfig {
    /// Per source: allowed lateness in ms.
    pub lateness: Vec<i64>,
    /// Every view, in spec order.
    pub views: Vec<ViewRuntime>,
    /// Tasks of the pipeline (source partitions): where re-keyed events
    /// go. Default 1.
    pub partitions: i32,
}

impl TaskConfig {
    /// Plans views over `sources` (names, in order) and `tables` (names and
    /// their column names, in order).
    pub fn new(
        sources: &[(String, i64)],
        tables: &[(String, Vec<String>)],
        plans: &[ViewPlan],
    ) -> Result<TaskConfig, ExprError> {
        let mut views = Vec::new();
        for plan in plans {
            let source = sources
                .iter()
                .position(|(n, _)| *n == plan.source)
                .expect("validated source");
            let layout = Arc::new(Layout::new(&plan.features));
            let mut joined: Vec<(String, ColumnType)> = plan
                .source_columns
                .iter()
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect();
            let mut joins = Vec::new();
            for j in &plan.joins {
                let table = tables
                    .iter()
                    .position(|(n, _)| *n == j.table)
                    .expect("validated table");
                let on = joined
                    .iter()
                    .position(|(n, _)| *n == j.on)
                    .expect("validated on");
                let cols = &tables[table].1;
                let picks = j
                    .select
                    .iter()
                    .map(|(c, _)| cols.iter().position(|n| n == c).expect("validated column"))
                    .collect();
                joins.push((table, on, picks));
                joined.extend(j.select.iter().cloned());
            }
            let expressions =
                Expressions::compile(&plan.derive, plan.filter.as_deref(), &plan.columns)?;
            let all: Vec<&String> = plan.columns.keys().collect();
            let inputs = layout
                .inputs
                .iter()
                .map(|i| {
                    i.as_ref().map(|name| {
                        all.iter()
                            .position(|c| *c == name)
                            .expect("validated input")
                    })
                })
                .collect();
            let rekey = plan.rekeyed.then(|| {
                all.iter()
                    .position(|c| **c == plan.key)
                    .expect("validated key")
            });
            views.push(ViewRuntime {
                plan: plan.clone(),
                source,
                layout,
                expressions,
                joins,
                inputs,
                joined,
                rekey,
            });
        }
        Ok(TaskConfig {
            lateness: sources.iter().map(|(_, l)| *l).collect(),
            views,
            partitions: 1,
        })
    }

    /// Some view is re-keyed: tasks exchange events.
    pub fn rekeys(&self) -> bool {
        self.views.iter().any(ViewRuntime::rekeyed)
    }
}

/// Per source partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InputState {
    /// Highest event time seen.
    pub max_ts: Option<i64>,
    /// Next offset to read.
    pub next_offset: Option<i64>,
    /// Not holding back the watermark (idle, or finished in a bounded run).
    #[serde(skip)]
    pub idle: bool,
}

/// The answer to [`Task::offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Counted when the watermark passes it.
    Accepted,
    /// At or below the watermark; the event is not counted.
    Late {
        /// The task's watermark.
        watermark: i64,
    },
}

/// A row that could not be processed, with why.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The event.
    pub row: Row,
    /// Why.
    pub reason: String,
}

/// Rows emitted by views, and rows rejected on the way.
#[derive(Debug, Default)]
pub struct Output {
    /// (view index, row).
    pub rows: Vec<(usize, FeatureRow)>,
    /// Events a join or an expression rejected.
    pub rejected: Vec<Rejected>,
    /// Re-keyed events and marks for other tasks: (task, message), in the
    /// order they must arrive.
    pub shuffled: Vec<(i32, Shuffled)>,
    /// Answers received twice (replays of an earlier run's), dropped.
    pub duplicates: u64,
}

/// One task.
pub struct Task {
    cfg: Arc<TaskConfig>,
    /// The partition number (of every source).
    pub partition: i32,
    /// Per source: where reading is, and its event times.
    pub inputs: Vec<InputState>,
    /// Waiting events, in arrival order; sorted when released. Arrival is
    /// nearly in time order, which pattern-defeating quicksort sorts in
    /// close to linear time (a tree insert per event cost more).
    pending: Vec<Row>,
    watermark: i64,
    views: Vec<ViewState>,
    /// A bounded run has released everything and emitted the final table.
    pub finished: bool,
    /// Advances keep windows and timers moving but compute no rows (a
    /// backfill keeps only its final table); finishing still emits.
    pub quiet: bool,
    /// The re-keyed views' receiving side (None without re-keyed views).
    exchange: Option<Exchange>,
    /// The last mark sent to the other tasks (None: none since opening).
    sent: Option<(i64, OriginState)>,
    /// A live watermark's progress may be sent now. Default true; a live
    /// job clears it after each step and sets it again every
    /// [`MARK_INTERVAL_MS`], so marks do not grow with the number of polls.
    pub marks_due: bool,
}

/// How often a live job lets tasks send their watermark's progress to the
/// re-keyed views' owners, in ms.
pub const MARK_INTERVAL_MS: u64 = 50;

/// What a checkpoint keeps of a task.
#[derive(Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// The partition number.
    pub partition: i32,
    /// Per source: where reading is.
    pub inputs: Vec<InputState>,
    /// Events not yet released.
    pub pending: Vec<Row>,
    /// The watermark.
    pub watermark: i64,
    /// Every view's state.
    pub views: Vec<ViewSnapshot>,
    /// A bounded run finished the task.
    pub finished: bool,
    /// The re-keyed views' receiving side. Not in the postcard body, which
    /// older checkpoints lack: the checkpoint appends it after the body.
    #[serde(skip)]
    pub exchange: Option<Exchange>,
}

impl Task {
    /// A task with nothing read.
    pub fn new(cfg: Arc<TaskConfig>, partition: i32) -> Task {
        let views = cfg
            .views
            .iter()
            .map(|v| ViewState::new(v.layout.clone()))
            .collect();
        Task {
            inputs: vec![InputState::default(); cfg.lateness.len()],
            exchange: cfg.rekeys().then(|| Exchange::new(cfg.partitions)),
            sent: None,
            marks_due: true,
            cfg,
            partition,
            pending: Vec::new(),
            watermark: i64::MIN,
            views,
            finished: false,
            quiet: false,
        }
    }

    /// The task's watermark: every event at or below it has been applied.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// View `index`'s state.
    pub fn view(&self, index: usize) -> &ViewState {
        &self.views[index]
    }

    /// Every view's rows as of the watermark, by view index (see
    /// [`ViewState::rows`]); none before the first event.
    pub fn current_rows(&self) -> Vec<(usize, FeatureRow)> {
        let mut rows = Vec::new();
        for (v, view) in self.views.iter().enumerate() {
            let w = self.view_watermark(v);
            if w != i64::MIN {
                rows.extend(view.rows(w).into_iter().map(|r| (v, r)));
            }
        }
        rows
    }

    /// The watermark view `v`'s rows are as of: the task's, or for a
    /// re-keyed view the exchange's.
    pub fn view_watermark(&self, v: usize) -> i64 {
        match &self.exchange {
            Some(x) if self.cfg.views[v].rekeyed() => x.watermark,
            _ => self.watermark,
        }
    }

    /// How far every view of the task is complete: the task's watermark,
    /// or the exchange's if that is behind.
    pub fn complete_watermark(&self) -> i64 {
        self.exchange
            .as_ref()
            .map_or(self.watermark, |x| x.watermark.min(self.watermark))
    }

    /// Offers an event read at `offset` of this task's partition of `source`.
    pub fn offer(&mut self, row: Row) -> Offer {
        let input = &mut self.inputs[row.source];
        input.next_offset = Some(row.offset + 1);
        input.idle = false;
        // Lateness is judged against the watermark the inputs allow at this
        // record, not the one last released: otherwise whether an event is
        // late would depend on how records were batched into polls.
        let watermark = self
            .allowed()
            .map_or(self.watermark, |w| w.max(self.watermark));
        if row.ts <= watermark {
            return Offer::Late { watermark };
        }
        let input = &mut self.inputs[row.source];
        input.max_ts = Some(input.max_ts.map_or(row.ts, |m| m.max(row.ts)));
        self.pending.push(row);
        Offer::Accepted
    }

    /// Records that `source`'s partition was read up to `next_offset`
    /// without an event to offer (a skipped or dead-lettered record).
    pub fn skipped(&mut self, source: usize, next_offset: i64) {
        self.inputs[source].next_offset = Some(next_offset);
    }

    /// The watermark the inputs allow now.
    fn allowed(&self) -> Option<i64> {
        let mut any = false;
        let mut min = i64::MAX;
        for (i, input) in self.inputs.iter().enumerate() {
            if input.idle {
                continue;
            }
            any = true;
            let w = match input.max_ts {
                Some(m) => m.saturating_sub(self.cfg.lateness[i]).saturating_sub(1),
                None => i64::MIN,
            };
            min = min.min(w);
        }
        any.then_some(min)
    }

    /// Moves the watermark as far as the inputs allow, but never past `cap`
    /// (a backfill's `--until`; `i64::MAX` for none), processes what it
    /// passes, and answers `probe` on the way.
    pub fn advance(
        &mut self,
        cap: i64,
        tables: &[TableState],
        probe: Option<&mut Probe>,
    ) -> Output {
        let mut probe = probe;
        let mut out = match self.allowed() {
            Some(w) if w.min(cap) > self.watermark => {
                self.release_to(w.min(cap), tables, probe.as_deref_mut())
            }
            _ => Output::default(),
        };
        self.exchange_step(cap, probe, &mut out);
        out
    }

    /// Moves the re-keyed views (`rekeyed`), or the others, to `w` and
    /// emits their changed keys (none while `quiet`).
    fn emit(&mut self, w: i64, rekeyed: bool, out: &mut Output) {
        for v in 0..self.views.len() {
            if self.cfg.views[v].rekeyed() != rekeyed {
                continue;
            }
            if self.quiet {
                self.views[v].emit_quietly(w);
            } else {
                out.rows
                    .extend(self.views[v].emit(w).into_iter().map(|r| (v, r)));
            }
        }
    }

    /// The end of a bounded input: releases everything up to `until`
    /// (default: the latest event time seen), emits every key as of it,
    /// answers `probe`, and forgets the events after it.
    pub fn finish(
        &mut self,
        until: Option<i64>,
        tables: &[TableState],
        probe: Option<&mut Probe>,
    ) -> Output {
        let mut probe = probe;
        match &mut self.exchange {
            // The re-keyed views finish once every origin has.
            Some(x) => x.upstream_finished = true,
            None => self.finished = true,
        }
        let last = self.inputs.iter().filter_map(|i| i.max_ts).max();
        let w = match until {
            Some(u) => u.max(self.watermark),
            None => last.map_or(self.watermark, |l| l.max(self.watermark)),
        };
        let mut out = if w == i64::MIN {
            Output::default()
        } else {
            for (v, view) in self.views.iter_mut().enumerate() {
                if !self.cfg.views[v].rekeyed() {
                    view.touch_all();
                }
            }
            // A backfill's quiet task builds rows for its final table.
            let quiet = std::mem::replace(&mut self.quiet, false);
            let out = self.release_to(w, tables, probe.as_deref_mut());
            self.quiet = quiet;
            self.pending.clear();
            out
        };
        self.exchange_step(until.unwrap_or(i64::MAX), probe, &mut out);
        out
    }

    /// Releases events up to `w`, answering `probe` on the way, and emits
    /// every changed key as of `w`.
    ///
    /// Without a probe each view takes its rows in one batch. With one, the
    /// released rows are walked one timestamp at a time: the probed
    /// source's events at time `t` read every view as of `t`, before any
    /// event at `t` counts. So a training row holds exactly what the live
    /// window at `t` holds, less the events at `t`: a sliding window of
    /// length `w` covers `(t - w, t)`, the same lower bound as live (reading
    /// as of `t - 1` instead would count an event at exactly `t - w`, which
    /// the live window has already evicted). Neither its own event nor
    /// anything at or after its time can be in its features. Joins and SQL
    /// still run once per batch, before the walk, since they do not depend
    /// on view state.
    pub(crate) fn release_to(
        &mut self,
        w: i64,
        tables: &[TableState],
        probe: Option<&mut Probe>,
    ) -> Output {
        self.pending
            .sort_unstable_by_key(|r| (r.ts, r.source, r.offset));
        let due = self.pending.partition_point(|r| r.ts <= w);
        let released: Vec<Row> = self.pending.drain(..due).collect();
        self.watermark = w;
        let mut out = Output::default();
        let probe = probe.filter(|p| {
            p.queries.last().is_some_and(|q| q.t <= w)
                || released
                    .iter()
                    .any(|r| r.ts >= p.from && p.sources.contains(&r.source))
        });
        match probe {
            None => {
                for (v, view) in self.cfg.views.iter().enumerate() {
                    let rows: Vec<&Row> = released
                        .iter()
                        .filter(|r| r.source == view.source)
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let inputs = prepare_rows(view, &rows, tables, &mut out.rejected, None);
                    for (row, inputs) in rows.iter().zip(inputs) {
                        if let Some(inputs) = inputs {
                            if view.rekeyed() {
                                self.shuffle(v, row, inputs, &mut out);
                            } else {
                                self.views[v].apply(&row.key, row.ts, inputs);
                            }
                        }
                    }
                }
            }
            Some(probe) => {
                // Re-keyed views are read at their owners (a lookup per
                // probed event) when the probe asks and the task has them.
                let lookups = probe.lookups && self.exchange.is_some();
                // Per view, the inputs of each released row (None: another
                // source's row, or dropped by a join or the filter); for a
                // re-keyed view probed by lookup, each row's key too.
                let mut prepared: Vec<Vec<Option<Box<[Scalar]>>>> = Vec::new();
                let mut keys: Vec<Vec<Option<Scalar>>> = Vec::new();
                for view in &self.cfg.views {
                    let at: Vec<usize> = (0..released.len())
                        .filter(|i| released[*i].source == view.source)
                        .collect();
                    let rows: Vec<&Row> = at.iter().map(|i| &released[*i]).collect();
                    let mut column = vec![None; released.len()];
                    let mut key_column = Vec::new();
                    if !rows.is_empty() {
                        let mut found = Vec::new();
                        let want = (lookups && view.rekeyed()).then_some(&mut found);
                        let inputs = prepare_rows(view, &rows, tables, &mut out.rejected, want);
                        if !found.is_empty() {
                            key_column = vec![None; released.len()];
                            for (i, key) in at.iter().zip(found) {
                                key_column[*i] = key;
                            }
                        }
                        for (i, inputs) in at.into_iter().zip(inputs) {
                            column[i] = inputs;
                        }
                    }
                    prepared.push(column);
                    keys.push(key_column);
                }
                let mut i = 0;
                while i < released.len() {
                    let ts = released[i].ts;
                    let end = i + released[i..].partition_point(|r| r.ts == ts);
                    answer_queries(
                        &mut self.views,
                        &mut probe.queries,
                        &mut probe.answers,
                        ts - 1,
                    );
                    if ts >= probe.from {
                        for (k, row) in released.iter().enumerate().take(end).skip(i) {
                            if probe.sources.contains(&row.source) {
                                let values = &mut probe.scratch;
                                let mut missing = Vec::new();
                                if probe.read_views {
                                    for (v, view) in self.views.iter_mut().enumerate() {
                                        let runtime = &self.cfg.views[v];
                                        if !runtime.rekeyed() {
                                            view.probe_into(&row.key, ts, values);
                                            continue;
                                        }
                                        // A re-keyed view's state here is
                                        // for other keys: its owner answers.
                                        let n = runtime.plan.features.len();
                                        let key = keys[v].get(k).cloned().flatten();
                                        let early = self.exchange.as_mut().and_then(|x| {
                                            x.take_early(
                                                ts,
                                                row.source as u32,
                                                row.offset,
                                                v as u32,
                                            )
                                        });
                                        if let Some(answer) = early {
                                            // Answered already (an earlier
                                            // run asked): no lookup.
                                            match answer {
                                                Some(found) => values.extend(found),
                                                None => values
                                                    .extend(std::iter::repeat_n(Scalar::Null, n)),
                                            }
                                            continue;
                                        }
                                        if let Some(key) = key.filter(|k| !k.is_null()) {
                                            missing.push((v as u32, values.len() as u32, n as u32));
                                            out.shuffled.push((
                                                shuffle::owner(&key, self.cfg.partitions),
                                                Shuffled::Lookup(shuffle::Lookup {
                                                    view: v as u32,
                                                    origin: self.partition,
                                                    ts,
                                                    source: row.source as u32,
                                                    offset: row.offset,
                                                    key,
                                                }),
                                            ));
                                        }
                                        values.extend(std::iter::repeat_n(Scalar::Null, n));
                                    }
                                }
                                if lookups && probe.release_too {
                                    // Readers that need no answer take it
                                    // now.
                                    let mut now = values.clone();
                                    probe.released.push(
                                        &self.cfg,
                                        row,
                                        probe.keep_columns,
                                        &mut now,
                                    );
                                }
                                match &mut self.exchange {
                                    // Every probed event waits in line, so
                                    // they leave in release order.
                                    Some(x) if lookups => x.waiting.push_back(shuffle::Waiting {
                                        row: Row {
                                            columns: if probe.keep_columns {
                                                row.columns.clone()
                                            } else {
                                                Box::new([])
                                            },
                                            key: row.key.clone(),
                                            ..*row
                                        },
                                        values: std::mem::take(values),
                                        missing,
                                    }),
                                    _ => {
                                        probe.rows.push(&self.cfg, row, probe.keep_columns, values)
                                    }
                                }
                            }
                        }
                    }
                    for (k, row) in released.iter().enumerate().take(end).skip(i) {
                        for (v, column) in prepared.iter_mut().enumerate() {
                            if let Some(inputs) = column[k].take() {
                                if self.cfg.views[v].rekeyed() {
                                    self.shuffle(v, row, inputs, &mut out);
                                } else {
                                    self.views[v].apply(&row.key, ts, inputs);
                                }
                            }
                        }
                    }
                    i = end;
                }
                answer_queries(&mut self.views, &mut probe.queries, &mut probe.answers, w);
            }
        }
        if let Some(x) = &mut self.exchange {
            out.duplicates += x.prune_early(w);
        }
        self.emit(w, false, &mut out);
        out
    }

    /// What a checkpoint keeps.
    pub fn snapshot(&self) -> TaskSnapshot {
        TaskSnapshot {
            partition: self.partition,
            inputs: self.inputs.clone(),
            pending: self.pending.clone(),
            watermark: self.watermark,
            views: self.views.iter().map(ViewState::snapshot).collect(),
            finished: self.finished,
            exchange: self.exchange.clone(),
        }
    }

    /// The task a checkpoint kept.
    pub fn restore(cfg: Arc<TaskConfig>, snap: TaskSnapshot) -> Task {
        let views = cfg
            .views
            .iter()
            .zip(snap.views)
            .map(|(v, s)| ViewState::restore(v.layout.clone(), s))
            .collect();
        let exchange = match snap.exchange {
            Some(x) => Some(x),
            None if cfg.rekeys() => {
                let mut x = Exchange::new(cfg.partitions);
                x.upstream_finished = snap.finished;
                x.finished = snap.finished;
                Some(x)
            }
            None => None,
        };
        Task {
            quiet: false,
            exchange,
            sent: None,
            marks_due: true,
            cfg,
            partition: snap.partition,
            inputs: snap.inputs,
            pending: snap.pending,
            watermark: snap.watermark,
            views,
            finished: snap.finished,
        }
    }
}
