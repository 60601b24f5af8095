//! Models trained continuously inside `eddy run`: the spec's `models:`.
//!
//! [`OnlineModels`] implements the job's [`Learners`] seam. The job hands
//! it, per task and in release order, every event of a model's source with
//! every feature read as of just before the event. Each model labels the
//! events with its SQL expression, predicts, learns, and keeps progressive
//! metrics.
//!
//! At each checkpoint, before the tasks record their offsets, every model
//! that learned something:
//! 1. publishes to its models topic (FTRL: the sparse delta since the last
//!    checkpoint, and a full snapshot every `snapshot_every`;
//!    recommenders: a snapshot);
//! 2. saves its whole state to object storage (`<checkpoints>/<pipeline>/
//!    models/<model>/v<version>.bin`) with, per partition, the event time
//!    it has learned up to and the next offset;
//! 3. sends its metrics, as JSON, to the metrics topic.
//!
//! **Resuming exactly.** A task releases every event at or before its
//! watermark at once, in time order, so "learned up to event time t on
//! partition p" means every example of p at or before t was learned. After
//! a restart the tasks replay from their checkpoint, which is never newer
//! than the model's snapshot (the model is saved first); the replayed
//! examples at or before t are skipped and counted as `replayed`, so no
//! example is learned twice.

mod learn;
pub mod linear;
pub mod recommender;
mod report;
mod state;

use std::collections::BTreeMap;

use crate::plan::{ModelKind, ModelPlan};
use eddy_features::engine::backfill::training::Labeler;
use eddy_features::engine::delayed::{self, join_key};
use eddy_features::engine::job::learners::LearnerError;
use eddy_features::engine::job::{Learners, TableColumn};
use eddy_features::engine::task::ProbedRows;
use eddy_features::engine::value::Scalar;
use eddy_features::spec::validate::Columns;
use eddy_features::store::Store;
use eddy_features::topic::{Backend, Producer, ProducerRecord, TopicSpec};

use crate::joiner::LabelJoiner;
use crate::lifecycle::{ModelStore, Offsets, Publisher};
pub use linear::LinearModel;
pub use recommender::RecommenderModel;
pub use state::{Body, Joiner, ModelState, Pending, fingerprint, pending_counts};

/// Why the models could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error(transparent)]
    /// Snapshots could not be read or published.
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
    #[error(transparent)]
    /// A models topic could not be created.
    Topic(#[from] eddy_features::topic::TopicError),
    #[error(
        "model `{model}`: its latest snapshot ({url}) was trained with another definition (kind, label, inputs, crosses or params changed). Restore the old definition, or delete that directory to train the model from scratch"
    )]
    /// The latest snapshot was trained with another definition.
    Changed {
        /// The model.
        model: String,
        /// Where its latest snapshot is.
        url: String,
    },
    #[error("model `{model}`: {why}")]
    /// A label or filter expression does not fit the source.
    Label {
        /// The model.
        model: String,
        /// What is wrong with its label or filter.
        why: String,
    },
}

impl OnlineError {
    /// Who must act.
    pub fn blame(&self) -> eddy_features::topic::Blame {
        match self {
            OnlineError::Lifecycle(e) => e.blame(),
            OnlineError::Topic(e) => e.blame(),
            OnlineError::Changed { .. } | OnlineError::Label { .. } => {
                eddy_features::topic::Blame::User
            }
        }
    }
}

/// One model in a job.
struct Online {
    plan: ModelPlan,
    state: ModelState,
    labeler: Option<Labeler>,
    /// The model's `filter`: which events of its source are examples.
    examples: Option<Labeler>,
    /// The delayed label's `filter`: which events of its source are labels.
    labels: Option<Labeler>,
    inputs: Option<linear::Inputs>,
    publisher: Publisher,
    snapshots: ModelStore,
    /// The job's index of the model's source (set by `bind`).
    source: usize,
    /// The job's index of the delayed labels' source.
    label_source: usize,
    /// Learned something since the last checkpoint.
    dirty: bool,
    /// Whether the state came from a snapshot.
    resumed: bool,
}

/// The models of one job.
pub struct OnlineModels {
    models: Vec<Online>,
}

impl OnlineModels {
    /// Creates the models' topics and resumes each model from its latest
    /// snapshot under `store` (or starts it fresh).
    pub fn open(
        plans: &[ModelPlan],
        backend: &dyn Backend,
        store: &Store,
    ) -> Result<OnlineModels, OnlineError> {
        let mut models = Vec::new();
        for plan in plans {
            backend.ensure_topic(&TopicSpec::new(plan.topic.clone()).compacted())?;
            backend.ensure_topic(&TopicSpec::new(plan.metrics_topic.clone()))?;
            let snapshots = ModelStore::new(store, &plan.name);
            let fingerprint = fingerprint(plan);
            let (state, resumed) = match snapshots.latest_bytes()? {
                Some((bytes, _)) => {
                    // The fingerprint comes first: a snapshot of another
                    // definition may not even decode as this one's state.
                    let saved = postcard::take_from_bytes::<u32>(&bytes).map(|(f, _)| f);
                    if saved.is_ok_and(|f| f != fingerprint) {
                        return Err(OnlineError::Changed {
                            model: plan.name.clone(),
                            url: snapshots.url(),
                        });
                    }
                    let state: ModelState = postcard::from_bytes(&bytes).map_err(|e| {
                        crate::lifecycle::LifecycleError::Model(crate::TrainingError::Snapshot(
                            format!("{}: {e}", snapshots.url()),
                        ))
                    })?;
                    if state.fingerprint != fingerprint {
                        return Err(OnlineError::Changed {
                            model: plan.name.clone(),
                            url: snapshots.url(),
                        });
                    }
                    (state, true)
                }
                None => (
                    ModelState {
                        fingerprint,
                        body: match plan.kind() {
                            ModelKind::Ftrl | ModelKind::Linear => {
                                Body::Linear(LinearModel::new(plan))
                            }
                            ModelKind::Mf | ModelKind::Cooccurrence | ModelKind::Popularity => {
                                Body::Recommender(RecommenderModel::new(plan))
                            }
                        },
                        learned_until: BTreeMap::new(),
                        offsets: BTreeMap::new(),
                        skipped: BTreeMap::new(),
                        first_skip: None,
                        replayed: 0,
                        syncs: 0,
                        pending: plan.delayed.as_ref().map(|_| BTreeMap::new()),
                    },
                    false,
                ),
            };
            let labeler = match &plan.label {
                Some((sql, _)) => Some(
                    Labeler::new(sql, None, plan.source_columns.clone()).map_err(|why| {
                        OnlineError::Label {
                            model: plan.name.clone(),
                            why,
                        }
                    })?,
                ),
                None => None,
            };
            let condition = |sql: Option<&String>, columns: &Columns| {
                sql.map(|sql| {
                    Labeler::new(sql, None, columns.clone()).map_err(|why| OnlineError::Label {
                        model: plan.name.clone(),
                        why: format!("filter {why}"),
                    })
                })
                .transpose()
            };
            let examples = condition(plan.filter.as_ref(), &plan.source_columns)?;
            let labels = match &plan.delayed {
                Some(d) => condition(d.filter.as_ref(), &d.source_columns)?,
                None => None,
            };
            models.push(Online {
                examples,
                labels,
                inputs: matches!(state.body, Body::Linear(_)).then(|| linear::Inputs::new(plan)),
                plan: plan.clone(),
                state,
                labeler,
                publisher: Publisher::new(&plan.name, &plan.topic, plan.snapshot_every),
                snapshots,
                source: usize::MAX,
                label_source: usize::MAX,
                // A resumed model publishes a snapshot first, so replicas
                // that missed updates catch up.
                dirty: true,
                resumed,
            });
        }
        Ok(OnlineModels { models })
    }

    /// The state of every model, by name.
    pub fn states(&self) -> impl Iterator<Item = (&str, &ModelState)> {
        self.models.iter().map(|m| (m.plan.name.as_str(), &m.state))
    }

    /// Which models resumed from a snapshot.
    pub fn resumed(&self) -> Vec<&str> {
        self.models
            .iter()
            .filter(|m| m.resumed)
            .map(|m| m.plan.name.as_str())
            .collect()
    }
}

impl Online {
    /// Reads a re-keyed view: learns from events once their answers are in.
    fn reads_rekeyed(&self) -> bool {
        self.plan
            .inputs
            .iter()
            .any(|i| matches!(i.from, crate::plan::InputFrom::KeyedFeature(_)))
    }

    fn checkpoint(&mut self, producer: &mut dyn Producer) -> Result<(), LearnerError> {
        if !self.dirty {
            return Ok(());
        }
        let name = &self.plan.name;
        self.publisher
            .set_trained_until(self.state.learned_until.values().max().copied());
        match &mut self.state.body {
            Body::Linear(m) => self.publisher.sync(&mut m.ftrl, producer),
            Body::Recommender(m) => {
                let bytes = postcard::to_stdvec(&m.model).expect("models serialize");
                self.publisher
                    .sync_snapshot(self.state.syncs + 1, bytes, producer)
            }
        }
        .map_err(|e| LearnerError {
            context: format!("model `{name}`: publishing to `{}`", self.plan.topic),
            blame: e.blame(),
            source: Box::new(e),
        })?;
        self.state.syncs += 1;
        let offsets: Offsets = self
            .state
            .offsets
            .iter()
            .map(|(p, o)| ((self.plan.source_topic.clone(), *p), *o))
            .collect();
        let bytes = postcard::to_stdvec(&self.state).expect("model state serializes");
        self.snapshots
            .save_bytes(self.state.version(), bytes, &offsets)
            .map_err(|e| LearnerError {
                context: format!("model `{name}`: saving a snapshot"),
                blame: e.blame(),
                source: Box::new(e),
            })?;
        let record = self.metrics_record();
        producer
            .send(ProducerRecord::new(
                &self.plan.metrics_topic,
                Some(name.as_bytes().to_vec()),
                Some(record.to_string().into_bytes()),
            ))
            .map_err(|e| LearnerError {
                context: format!("model `{name}`: metrics to `{}`", self.plan.metrics_topic),
                blame: e.blame(),
                source: Box::new(e),
            })?;
        self.dirty = false;
        Ok(())
    }
}

impl Learners for OnlineModels {
    fn sources(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.models {
            let label_source = m.plan.delayed.as_ref().map(|d| &d.source);
            for s in std::iter::once(&m.plan.source).chain(label_source) {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    fn joined(&self) -> Vec<(String, Vec<TableColumn>)> {
        // Every model of a source names the same list (see
        // `ModelPlan::joined`): the first model's is the source's.
        let mut out: Vec<(String, Vec<TableColumn>)> = Vec::new();
        for m in &self.models {
            if !m.plan.joined.is_empty() && !out.iter().any(|(s, _)| *s == m.plan.source) {
                let columns = m.plan.joined.iter().map(|j| j.column.clone()).collect();
                out.push((m.plan.source.clone(), columns));
            }
        }
        out
    }

    fn reads_features(&self) -> bool {
        self.models
            .iter()
            .any(|m| m.plan.inputs.iter().any(|i| i.from.feature().is_some()))
    }

    fn reads_rekeyed(&self) -> bool {
        self.models.iter().any(Online::reads_rekeyed)
    }

    fn bind(&mut self, job_sources: &[String]) {
        for m in &mut self.models {
            let index = |name: &str| job_sources.iter().position(|s| s == name);
            m.source = index(&m.plan.source).unwrap_or(usize::MAX);
            m.label_source = m
                .plan
                .delayed
                .as_ref()
                .and_then(|d| index(&d.source))
                .unwrap_or(usize::MAX);
        }
    }

    fn learn(&mut self, partition: i32, rows: ProbedRows) -> Result<(), LearnerError> {
        // With a model reading a re-keyed view, these rows waited for its
        // answers: the other models learned them as they were released.
        let split = self.reads_rekeyed();
        for m in &mut self.models {
            if !split || m.reads_rekeyed() {
                m.learn(partition, &rows);
            }
        }
        Ok(())
    }

    fn learn_released(&mut self, partition: i32, rows: ProbedRows) -> Result<(), LearnerError> {
        for m in &mut self.models {
            if !m.reads_rekeyed() {
                m.learn(partition, &rows);
            }
        }
        Ok(())
    }

    fn checkpoint(&mut self, producer: &mut dyn Producer) -> Result<(), LearnerError> {
        for m in &mut self.models {
            m.checkpoint(producer)?;
        }
        producer.flush().map_err(|e| LearnerError {
            context: "flushing the models' updates".into(),
            blame: e.blame(),
            source: Box::new(e),
        })
    }

    fn metrics(&self) -> Vec<eddy_features::metrics::Family> {
        report::families(&self.models)
    }

    fn summary(&self) -> Vec<String> {
        self.models.iter().map(Online::summary).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_features::spec::validate::ColumnType;
    use eddy_features::topic::local::{LocalLog, LocalLogConfig};
    use indexmap::IndexMap;

    const SPEC: &str = "name: t
sources:
  clicks: { topic: clicks, key: user, event_time: ts }
features:
  v:
    source: clicks
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  m:
    kind: ftrl
    source: clicks
    label: clicked
    features: []
    columns: [user, x]
    categorical: [user]
";

    fn plans() -> Vec<ModelPlan> {
        let loaded = eddy_features::spec::parse_with(
            std::path::Path::new("t.yaml"),
            SPEC,
            &[crate::plan::shape],
        )
        .unwrap();
        let columns: IndexMap<String, ColumnType> = [
            ("user", ColumnType::Long),
            ("x", ColumnType::Double),
            ("clicked", ColumnType::Boolean),
            ("ts", ColumnType::Long),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
        let sources = IndexMap::from([("clicks".to_string(), columns)]);
        crate::plan::plan(&loaded, &sources, &[]).unwrap()
    }

    /// Events `range` of partition 0: user i % 5, x, clicked when
    /// x + user effect > 0; `poison` makes x of event 7 NaN and the label
    /// of event 8 null.
    fn rows(range: std::ops::Range<i64>, poison: bool) -> ProbedRows {
        let mut r = ProbedRows::default();
        for i in range {
            let user = i % 5;
            let x = ((i * 37) % 100) as f64 / 50.0 - 1.0;
            let clicked = x + if user < 2 { 0.5 } else { -0.5 } > 0.0;
            r.keys.push(Scalar::Long(user));
            r.ts.push(1000 + i);
            r.offsets.push(i);
            r.sources.push(0);
            r.columns.push(
                vec![
                    Scalar::Long(user),
                    Scalar::Double(if poison && i == 7 { f64::NAN } else { x }),
                    if poison && i == 8 {
                        Scalar::Null
                    } else {
                        Scalar::Bool(clicked)
                    },
                    Scalar::Long(1000 + i),
                ]
                .into_boxed_slice(),
            );
        }
        r
    }

    fn open(store: &Store, log: &LocalLog) -> OnlineModels {
        let mut m = OnlineModels::open(&plans(), log, store).unwrap();
        m.bind(&["clicks".to_string()]);
        m
    }

    fn weights(m: &OnlineModels) -> Vec<u64> {
        let (_, s) = m.states().next().unwrap();
        let Body::Linear(l) = &s.body else {
            panic!("linear")
        };
        (0..200)
            .map(|u| {
                let x = [(u as u32, 1.0f32), ((u * 7) as u32, 0.5)];
                crate::Learner::predict(&l.ftrl, &x).to_bits()
            })
            .collect()
    }

    /// The job saves a model before the tasks' checkpoint. A crash between
    /// the two replays examples the model already learned: they are
    /// skipped, and the model equals one that saw each example once.
    #[test]
    fn examples_replayed_after_a_crash_are_not_learned_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let store = Store::open("memory://online-models").unwrap();
        let mut producer = log.producer().unwrap();
        let mut first = open(&store, &log);
        first.learn(0, rows(0..400, false)).unwrap();
        first.checkpoint(producer.as_mut()).unwrap();
        // Restart: the tasks' older checkpoint replays 300..400.
        let mut second = open(&store, &log);
        assert_eq!(second.resumed(), ["m"]);
        second.learn(0, rows(300..700, false)).unwrap();
        let (_, s) = second.states().next().unwrap();
        assert_eq!(s.replayed, 100);
        assert_eq!(s.examples(), 700);
        let fresh_store = Store::open("memory://online-models-once").unwrap();
        let mut once = open(&fresh_store, &log);
        once.learn(0, rows(0..700, false)).unwrap();
        assert_eq!(weights(&second), weights(&once));
        let (_, a) = second.states().next().unwrap();
        let (_, b) = once.states().next().unwrap();
        assert_eq!(a.metrics(), b.metrics());
    }

    #[test]
    fn a_nan_input_and_a_null_label_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let store = Store::open("memory://online-models-bad").unwrap();
        let mut m = open(&store, &log);
        m.learn(0, rows(0..300, true)).unwrap();
        let (_, s) = m.states().next().unwrap();
        assert_eq!(s.examples(), 298);
        assert_eq!(s.skipped["not_finite"], 1);
        assert_eq!(s.skipped["label_null"], 1);
        assert!(
            s.first_skip.as_deref().unwrap().contains("offset 7"),
            "{:?}",
            s.first_skip
        );
        let logloss = s.metrics()[0].1;
        assert!(logloss.is_finite() && logloss < 0.6, "{logloss}");
        let registry = eddy_features::metrics::Metrics::new();
        registry.register(Some("p"), std::sync::Arc::new(m.metrics()));
        let text = registry.render();
        assert!(
            text.contains("eddy_model_skipped_total{pipeline=\"p\",model=\"m\",kind=\"ftrl\",reason=\"not_finite\"} 1"),
            "{text}"
        );
        assert!(text.contains("eddy_model_logloss{pipeline=\"p\",model=\"m\",kind=\"ftrl\"}"));
    }

    /// A snapshot trained with another definition is refused, not
    /// silently mixed with the new one.
    #[test]
    fn a_changed_model_definition_refuses_the_old_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let store = Store::open("memory://online-models-changed").unwrap();
        let mut producer = log.producer().unwrap();
        let mut m = open(&store, &log);
        m.learn(0, rows(0..50, false)).unwrap();
        m.checkpoint(producer.as_mut()).unwrap();
        let mut changed = plans();
        let crate::plan::Params::Ftrl(p) = &mut changed[0].params else {
            panic!("an ftrl model")
        };
        p.l1 = Some(2.0);
        let err = OnlineModels::open(&changed, &log, &store)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("another definition"), "{err}");
    }

    const DELAYED: &str = "name: t
sources:
  impressions: { topic: impressions, key: user, event_time: ts }
  clicks: { topic: clicks, key: user, event_time: ts }
features:
  v:
    source: impressions
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  ctr:
    kind: ftrl
    source: impressions
    delayed_label: { source: clicks, within: 100ms, on: item }
    features: []
    columns: [item, x]
    categorical: [item]
";

    /// Impressions (source 0) every 10 ms, clicked when x > 0: the click
    /// (source 1) comes 40 ms later, or, for every seventh one, 400 ms
    /// later, after the attribution window (a negative).
    fn impressions_and_clicks(n: i64) -> ProbedRows {
        let mut events: Vec<(i64, usize, i64, f64)> = Vec::new();
        for i in 0..n {
            let x = ((i * 37) % 100) as f64 / 50.0 - 1.0;
            events.push((10 * i, 0, i, x));
            if x > 0.0 {
                let delay = if i % 7 == 0 { 400 } else { 40 };
                events.push((10 * i + delay, 1, i, x));
            }
        }
        events.sort_by_key(|e| (e.0, e.1));
        let mut r = ProbedRows::default();
        for (k, (ts, source, i, x)) in events.into_iter().enumerate() {
            let user = i % 3;
            r.keys.push(Scalar::Long(user));
            r.ts.push(ts);
            r.offsets.push(k as i64);
            r.sources.push(source);
            r.columns.push(
                match source {
                    0 => vec![
                        Scalar::Long(user),
                        Scalar::Long(i),
                        Scalar::Double(x),
                        Scalar::Long(ts),
                    ],
                    _ => vec![Scalar::Long(user), Scalar::Long(i), Scalar::Long(ts)],
                }
                .into_boxed_slice(),
            );
        }
        r
    }

    fn cols(names: &[(&str, ColumnType)]) -> IndexMap<String, ColumnType> {
        names
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    }

    /// The models of `spec`, open and bound to the job's `sources`.
    fn delayed_models(
        spec: &str,
        sources: IndexMap<String, IndexMap<String, ColumnType>>,
        store: &str,
        log: &LocalLog,
    ) -> OnlineModels {
        let loaded = eddy_features::spec::parse_with(
            std::path::Path::new("t.yaml"),
            spec,
            &[crate::plan::shape],
        )
        .unwrap();
        let plans = crate::plan::plan(&loaded, &sources, &[]).unwrap();
        let store = Store::open(store).unwrap();
        let mut m = OnlineModels::open(&plans, log, &store).unwrap();
        let names: Vec<String> = sources.keys().cloned().collect();
        assert_eq!(m.sources(), names);
        m.bind(&names);
        m
    }

    fn two_sources() -> IndexMap<String, IndexMap<String, ColumnType>> {
        IndexMap::from([
            (
                "impressions".to_string(),
                cols(&[
                    ("user", ColumnType::Long),
                    ("item", ColumnType::Long),
                    ("x", ColumnType::Double),
                    ("ts", ColumnType::Long),
                ]),
            ),
            (
                "clicks".to_string(),
                cols(&[
                    ("user", ColumnType::Long),
                    ("item", ColumnType::Long),
                    ("ts", ColumnType::Long),
                ]),
            ),
        ])
    }

    #[test]
    fn delayed_labels_join_within_the_window_and_time_out_as_negatives() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let mut m = delayed_models(DELAYED, two_sources(), "memory://online-delayed", &log);
        let n = 3000;
        m.learn(0, impressions_and_clicks(n)).unwrap();
        let (_, s) = m.states().next().unwrap();
        let (waiting, unmatched, _) = pending_counts(s.pending.as_ref().unwrap());
        // Every impression is resolved but those of the last window.
        assert_eq!(s.examples() + waiting as u64, n as u64);
        assert!(waiting <= 11, "{waiting}");
        // Clicks after the window match nothing: their impressions were
        // negatives.
        let late = (0..n)
            .filter(|i| i % 7 == 0 && ((i * 37) % 100) as f64 / 50.0 - 1.0 > 0.0)
            .count() as u64;
        assert_eq!(unmatched, late);
        // The model learned that x > 0 is clicked (but for the late ones).
        let Body::Linear(l) = &s.body else { panic!() };
        let r = l.classification.report();
        assert!(r.auc > 0.85, "{r:?}");
    }

    /// Partitions have their own event time. One joiner for all of them
    /// let partition 1, a minute ahead, time out partition 0's impressions
    /// before partition 0's clicks were read: positives learned as
    /// negatives, and the clicks counted as unmatched.
    #[test]
    fn a_partition_running_ahead_timed_out_anothers_impressions_before_their_clicks() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let mut m = delayed_models(DELAYED, two_sources(), "memory://online-ahead", &log);
        let all = impressions_and_clicks(200);
        let split = |from: usize, to: usize, shift: i64| {
            let mut r = ProbedRows::default();
            for i in from..to {
                r.keys.push(all.keys[i].clone());
                r.ts.push(all.ts[i] + shift);
                r.offsets.push(all.offsets[i]);
                r.sources.push(all.sources[i]);
                r.columns.push(all.columns[i].clone());
            }
            r
        };
        let half = all.len() / 2;
        // Partition 0 reads its first half; partition 1, far ahead in
        // event time; then partition 0 the rest, clicks included.
        m.learn(0, split(0, half, 0)).unwrap();
        m.learn(1, split(0, all.len(), 60_000)).unwrap();
        m.learn(0, split(half, all.len(), 0)).unwrap();
        let (_, s) = m.states().next().unwrap();
        let (_, unmatched, _) = pending_counts(s.pending.as_ref().unwrap());
        let late = (0..200)
            .filter(|i| i % 7 == 0 && ((i * 37) % 100) as f64 / 50.0 - 1.0 > 0.0)
            .count() as u64;
        // Each partition's late clicks, and nothing else.
        assert_eq!(unmatched, 2 * late);
    }

    /// Views and clicks on one topic (one source): the model's `filter`
    /// picks the examples, the delayed label's `filter` the labels.
    #[test]
    fn views_and_clicks_on_one_source_are_told_apart_by_the_filters() {
        let spec = "name: t
sources:
  events: { topic: events, key: user, event_time: ts }
features:
  v:
    source: events
    aggregations: [{ name: n, op: count, windows: [lifetime] }]
models:
  ctr:
    kind: ftrl
    source: events
    filter: \"kind = 'view'\"
    delayed_label: { source: events, within: 100ms, on: item, filter: \"kind = 'click'\" }
    features: []
    columns: [item, x]
    categorical: [item]
";
        let sources = IndexMap::from([(
            "events".to_string(),
            cols(&[
                ("user", ColumnType::Long),
                ("item", ColumnType::Long),
                ("kind", ColumnType::String),
                ("x", ColumnType::Double),
                ("ts", ColumnType::Long),
            ]),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::open(LocalLogConfig::new(dir.path())).unwrap();
        let mut m = delayed_models(spec, sources, "memory://online-one-source", &log);
        // The two-source stream, as one: a click carries its view's x.
        let mut r = impressions_and_clicks(3000);
        for (source, columns) in r.sources.iter_mut().zip(r.columns.iter_mut()) {
            let c = columns.to_vec();
            let kind = if *source == 0 { "view" } else { "click" };
            let x = if *source == 0 {
                c[2].clone()
            } else {
                Scalar::Double(0.5)
            };
            *columns = vec![
                c[0].clone(),
                c[1].clone(),
                Scalar::Str(kind.into()),
                x,
                c[c.len() - 1].clone(),
            ]
            .into_boxed_slice();
            *source = 0;
        }
        m.learn(0, r).unwrap();
        let (_, s) = m.states().next().unwrap();
        let (waiting, unmatched, _) = pending_counts(s.pending.as_ref().unwrap());
        // Views only are examples: a click is not an example of its own.
        assert_eq!(s.examples() + waiting as u64, 3000);
        let late = (0..3000)
            .filter(|i| i % 7 == 0 && ((i * 37) % 100) as f64 / 50.0 - 1.0 > 0.0)
            .count() as u64;
        assert_eq!(unmatched, late);
        let Body::Linear(l) = &s.body else { panic!() };
        assert!(l.classification.report().auc > 0.85);
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    }
}
