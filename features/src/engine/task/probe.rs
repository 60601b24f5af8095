//! Probes: point reads of every view during a replay, for an event just
//! before it counts (a training set's label events, a model's examples) or
//! for a key at a time (consistency checks), answered by the task as it
//! releases events in time order.

use super::*;

/// Reads every view for each event of one source, just before the event
/// counts: the label events of a training set.
#[derive(Debug)]
pub struct Probe {
    /// The probed sources (indices).
    pub sources: Vec<usize>,
    /// Keep each probed event's own columns too (learners read raw event
    /// fields; a training set does not need them).
    pub keep_columns: bool,
    /// Read every view for each probed event. False when no reader needs
    /// features (recommenders learn from the event alone): the rows then
    /// hold no feature columns.
    pub read_views: bool,
    /// Read the re-keyed views too (their owners answer lookups; each
    /// probed event waits for them). Default false: their columns are null.
    pub lookups: bool,
    /// Only events at or after this time are probed (a backfill's
    /// `--from`); earlier ones still count as features.
    pub from: i64,
    /// Answers, in release order; the caller takes them.
    pub rows: ProbedRows,
    /// With lookups and [`Probe::release_too`]: each probed event again,
    /// as it is released, with its re-keyed views' columns null, for
    /// readers that read none of them (models that need not wait for the
    /// answers). Empty otherwise; the caller takes them.
    pub released: ProbedRows,
    /// Fill `released`. Default false (a training set has one reader).
    pub release_too: bool,
    /// Reused for each probed event's values.
    pub(super) scratch: Vec<Scalar>,
    /// Point reads of one view at a time, answered once every event at or
    /// before the time has counted and none after it: what a live job
    /// emitted as of that watermark. Sorted by time, latest first (they
    /// are popped).
    pub queries: Vec<Query>,
    /// The queries of re-keyed views, answered as the task's exchange
    /// releases (see [`Probe::split_rekeyed`]).
    pub exchange_queries: Vec<Query>,
    /// (query id, the view's values for the key; None if this task holds
    /// no state for it).
    pub answers: Vec<(usize, Option<Vec<Scalar>>)>,
}

/// A point read: view `view`'s values for `key` as of `t`.
#[derive(Debug, Clone)]
pub struct Query {
    /// The query's id, to find its answer.
    pub id: usize,
    /// The time to read as of.
    pub t: i64,
    /// The view (index).
    pub view: usize,
    /// The key.
    pub key: Scalar,
}

impl Probe {
    /// A probe of `source`'s events from `from` on, with no queries.
    pub fn events(source: usize, from: i64) -> Probe {
        Probe {
            sources: vec![source],
            keep_columns: false,
            read_views: true,
            lookups: false,
            from,
            rows: ProbedRows::default(),
            released: ProbedRows::default(),
            release_too: false,
            scratch: Vec::new(),
            queries: Vec::new(),
            exchange_queries: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// Point reads only (no source is probed).
    pub fn queries(mut queries: Vec<Query>) -> Probe {
        queries.sort_by_key(|q| std::cmp::Reverse(q.t));
        Probe {
            queries,
            sources: Vec::new(),
            ..Probe::events(usize::MAX, i64::MAX)
        }
    }

    /// Moves the queries of re-keyed views to where the exchange answers
    /// them: a re-keyed view's state is not as of the task's watermark.
    pub fn split_rekeyed(&mut self, cfg: &TaskConfig) {
        let (exchange, own): (Vec<Query>, Vec<Query>) = std::mem::take(&mut self.queries)
            .into_iter()
            .partition(|q| cfg.views[q.view].rekeyed());
        self.queries = own;
        self.exchange_queries = exchange;
    }
}

/// Probed events, as columns: each event's key, time and offset, and
/// every view's values for its key as of just before its time. Columns are
/// typed as they fill, so a training set needs no row of values per event.
#[derive(Debug, Default)]
pub struct ProbedRows {
    /// Each event's key.
    pub keys: Vec<Scalar>,
    /// Each event's time.
    pub ts: Vec<i64>,
    /// Each event's offset.
    pub offsets: Vec<i64>,
    /// The source of each event (index).
    pub sources: Vec<usize>,
    /// Each event's own columns, if the probe keeps them.
    pub columns: Vec<Box<[Scalar]>>,
    /// One per feature over all views: view after view, each in its
    /// feature order. A re-keyed view's are read from the task owning the
    /// event's key for it when the probe asks ([`Probe::lookups`]), else
    /// null.
    pub features: Vec<ColumnBuilder>,
}

impl ProbedRows {
    /// Events held.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Takes the rows, leaving empty columns of the same types.
    pub fn take(&mut self) -> ProbedRows {
        let features = self
            .features
            .iter()
            .map(ColumnBuilder::empty_like)
            .collect();
        std::mem::replace(
            self,
            ProbedRows {
                features,
                ..ProbedRows::default()
            },
        )
    }

    pub(crate) fn push(
        &mut self,
        cfg: &TaskConfig,
        row: &Row,
        keep_columns: bool,
        values: &mut Vec<Scalar>,
    ) {
        // Without values (views not read), no feature columns.
        if self.features.is_empty() && !values.is_empty() {
            self.features = cfg
                .views
                .iter()
                .flat_map(|v| &v.plan.features)
                .map(|f| ColumnBuilder::new(&OutType::of(f).column_type(), 1024))
                .collect();
        }
        self.keys.push(row.key.clone());
        self.ts.push(row.ts);
        self.offsets.push(row.offset);
        self.sources.push(row.source);
        if keep_columns {
            self.columns.push(row.columns.clone());
        }
        for (column, v) in self.features.iter_mut().zip(values.drain(..)) {
            column.push(v);
        }
    }
}

/// Answers the queries at or before `t` (every event up to `t` has
/// counted, none after it); `queries` are sorted latest first.
pub(super) fn answer_queries(
    views: &mut [ViewState],
    queries: &mut Vec<Query>,
    answers: &mut Vec<(usize, Option<Vec<Scalar>>)>,
    t: i64,
) {
    while queries.last().is_some_and(|q| q.t <= t) {
        let q = queries.pop().expect("checked");
        let view = &mut views[q.view];
        let values = view.holds(&q.key).then(|| view.probe(&q.key, q.t));
        answers.push((q.id, values));
    }
}
