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

mod linear;
pub mod params;
pub mod recommender;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use eddy_features::engine::backfill::training::Labeler;
use eddy_features::engine::job::Learners;
use eddy_features::engine::task::ProbedRows;
use eddy_features::engine::value::Scalar;
use eddy_features::spec::{ModelKind, ModelPlan};
use eddy_features::store::Store;
use eddy_features::topic::{Backend, Producer, ProducerRecord, TopicSpec};

use crate::lifecycle::{ModelStore, Offsets, Publisher};
pub use linear::LinearModel;
pub use recommender::RecommenderModel;

/// A model's learner.
// One per model per job: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body {
    Linear(LinearModel),
    Recommender(RecommenderModel),
}

/// Everything a model saves, so a restart continues where it stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelState {
    /// The model definition it was trained with (see [`fingerprint`]).
    pub fingerprint: u32,
    pub body: Body,
    /// Per partition: every example at or before this event time is learned.
    pub learned_until: BTreeMap<i32, i64>,
    /// Per partition: the offset after the last example learned.
    pub offsets: BTreeMap<i32, i64>,
    /// Examples not learned, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The first skipped example and why, to show the user.
    pub first_skip: Option<String>,
    /// Examples seen again after a restart and skipped (already learned).
    pub replayed: u64,
    /// Updates published: the version of a recommender (FTRL counts its
    /// own).
    pub syncs: u64,
}

impl ModelState {
    pub fn version(&self) -> u64 {
        match &self.body {
            Body::Linear(m) => m.ftrl.version,
            Body::Recommender(_) => self.syncs,
        }
    }

    pub fn examples(&self) -> u64 {
        match &self.body {
            Body::Linear(m) => m.examples(),
            Body::Recommender(m) => m.learned,
        }
    }

    /// (metric, value) pairs of the progressive validation.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        match &self.body {
            Body::Linear(m) => m.metrics(),
            Body::Recommender(m) => m.metrics(),
        }
    }

    fn skip(&mut self, reason: &str, detail: impl FnOnce() -> String) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
        if self.first_skip.is_none() {
            self.first_skip = Some(detail());
        }
    }
}

/// Why the models could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
    #[error(transparent)]
    Topic(#[from] eddy_features::topic::TopicError),
    #[error(
        "model `{model}`: its latest snapshot ({url}) was trained with another definition (kind, label, inputs, crosses or params changed). Restore the old definition, or delete that directory to train the model from scratch"
    )]
    Changed { model: String, url: String },
    #[error("model `{model}`: {why}")]
    Label { model: String, why: String },
}

/// A hash of what a model's learned state depends on.
pub fn fingerprint(plan: &ModelPlan) -> u32 {
    let definition = serde_json::json!([
        plan.kind,
        plan.source,
        plan.label,
        plan.item,
        plan.inputs,
        plan.crosses,
        plan.params,
    ]);
    crate::hashing::murmur3(definition.to_string().as_bytes(), 0)
}

/// One model in a job.
struct Online {
    plan: ModelPlan,
    state: ModelState,
    labeler: Option<Labeler>,
    inputs: Option<linear::Inputs>,
    publisher: Publisher,
    snapshots: ModelStore,
    /// The job's index of the model's source (set by `bind`).
    source: usize,
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
                        body: match plan.kind {
                            ModelKind::Ftrl | ModelKind::Linear => {
                                Body::Linear(LinearModel::new(plan))
                            }
                            _ => Body::Recommender(RecommenderModel::new(plan)),
                        },
                        learned_until: BTreeMap::new(),
                        offsets: BTreeMap::new(),
                        skipped: BTreeMap::new(),
                        first_skip: None,
                        replayed: 0,
                        syncs: 0,
                    },
                    false,
                ),
            };
            let labeler = match &plan.label {
                Some((sql, _)) => Some(Labeler::new(sql, plan.source_columns.clone()).map_err(
                    |why| OnlineError::Label {
                        model: plan.name.clone(),
                        why,
                    },
                )?),
                None => None,
            };
            models.push(Online {
                inputs: matches!(state.body, Body::Linear(_)).then(|| linear::Inputs::new(plan)),
                plan: plan.clone(),
                state,
                labeler,
                publisher: Publisher::new(&plan.name, &plan.topic, plan.snapshot_every),
                snapshots,
                source: usize::MAX,
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
    fn learn(&mut self, partition: i32, rows: &ProbedRows) {
        let until = self
            .state
            .learned_until
            .get(&partition)
            .copied()
            .unwrap_or(i64::MIN);
        let mine: Vec<usize> = (0..rows.len())
            .filter(|i| rows.sources[*i] == self.source)
            .collect();
        let fresh: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|i| rows.ts[*i] > until)
            .collect();
        self.state.replayed += (mine.len() - fresh.len()) as u64;
        if fresh.is_empty() {
            return;
        }
        let labels: Vec<Option<Scalar>> = match &mut self.labeler {
            None => vec![Some(Scalar::Bool(true)); fresh.len()],
            Some(labeler) => {
                labeler.label(
                    fresh
                        .iter()
                        .map(|i| (partition, rows.offsets[*i], rows.columns[*i].clone()))
                        .collect(),
                );
                fresh
                    .iter()
                    .map(|i| labeler.take(partition, rows.offsets[*i]))
                    .collect()
            }
        };
        let at = |i: usize| format!("partition {partition} offset {}", rows.offsets[i]);
        for (i, label) in fresh.iter().copied().zip(labels) {
            let label = match label {
                None => {
                    self.state.skip("label_error", || {
                        format!("{}: the label expression failed", at(i))
                    });
                    continue;
                }
                Some(Scalar::Null) => {
                    self.state
                        .skip("label_null", || format!("{}: the label is null", at(i)));
                    continue;
                }
                Some(l) => l,
            };
            match &mut self.state.body {
                Body::Linear(m) => {
                    let inputs = self.inputs.as_mut().expect("linear models hash inputs");
                    if let Err(why) = m.learn(inputs, rows, i, &label) {
                        let reason = match why {
                            crate::Rejected::NotFinite { .. } => "not_finite",
                            crate::Rejected::BadLabel(_) => "bad_label",
                        };
                        self.state.skip(reason, || format!("{}: {why}", at(i)));
                    }
                }
                Body::Recommender(m) => {
                    if !matches!(label, Scalar::Bool(true)) {
                        continue;
                    }
                    let item = self
                        .plan
                        .item
                        .as_ref()
                        .map_or(Scalar::Null, |(c, _)| rows.columns[i][*c].clone());
                    if !m.learn(&rows.keys[i], &item, rows.ts[i]) {
                        self.state
                            .skip("null_id", || format!("{}: the user or item is null", at(i)));
                    }
                }
            }
        }
        let last = fresh.iter().map(|i| rows.ts[*i]).max().unwrap_or(until);
        self.state.learned_until.insert(partition, last.max(until));
        let next = fresh
            .iter()
            .map(|i| rows.offsets[*i] + 1)
            .max()
            .unwrap_or(0);
        let offset = self.state.offsets.entry(partition).or_default();
        *offset = (*offset).max(next);
        self.dirty = true;
    }

    fn checkpoint(&mut self, producer: &mut dyn Producer) -> Result<(), String> {
        if !self.dirty {
            return Ok(());
        }
        let name = &self.plan.name;
        match &mut self.state.body {
            Body::Linear(m) => self.publisher.sync(&mut m.ftrl, producer),
            Body::Recommender(m) => {
                let bytes = postcard::to_stdvec(&m.model).expect("models serialize");
                self.publisher
                    .sync_snapshot(self.state.syncs + 1, bytes, producer)
            }
        }
        .map_err(|e| format!("model `{name}`: publishing to `{}`: {e}", self.plan.topic))?;
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
            .map_err(|e| format!("model `{name}`: saving a snapshot: {e}"))?;
        let record = self.metrics_record();
        producer
            .send(ProducerRecord::new(
                &self.plan.metrics_topic,
                Some(name.as_bytes().to_vec()),
                Some(record.to_string().into_bytes()),
            ))
            .map_err(|e| {
                format!(
                    "model `{name}`: metrics to `{}`: {e}",
                    self.plan.metrics_topic
                )
            })?;
        self.dirty = false;
        Ok(())
    }

    /// The metrics record: what a dashboard or notebook reads.
    fn metrics_record(&self) -> serde_json::Value {
        let s = &self.state;
        let mut metrics = serde_json::Map::new();
        for (k, v) in s.metrics() {
            metrics.insert(k.to_string(), finite(v));
        }
        if let Body::Recommender(m) = &s.body {
            metrics.insert("k".into(), m.eval.k.into());
            metrics.insert("evaluated".into(), m.eval.report().evaluated.into());
            metrics.insert("not_admitted".into(), m.not_admitted().into());
        }
        serde_json::json!({
            "model": self.plan.name,
            "kind": self.plan.kind.name(),
            "version": s.version(),
            "examples": s.examples(),
            "skipped": s.skipped,
            "replayed": s.replayed,
            "metrics": metrics,
            "event_time": s.learned_until.values().max(),
            "emitted_at": now_ms(),
        })
    }

    fn summary(&self) -> String {
        let s = &self.state;
        let metrics: Vec<String> = s
            .metrics()
            .into_iter()
            .map(|(k, v)| match &s.body {
                Body::Recommender(m) if k == "hit_rate" => format!("HR@{} {v:.4}", m.eval.k),
                Body::Recommender(m) if k == "ndcg" => format!("NDCG@{} {v:.4}", m.eval.k),
                _ => format!("{k} {v:.4}"),
            })
            .collect();
        let skipped: u64 = s.skipped.values().sum();
        let mut line = format!(
            "{} ({}): {} examples, {}; version {}",
            self.plan.name,
            self.plan.kind.name(),
            s.examples(),
            metrics.join(", "),
            s.version()
        );
        if skipped > 0 {
            let _ = write!(
                line,
                "; {skipped} skipped (first: {})",
                s.first_skip.as_deref().unwrap_or("?")
            );
        }
        if s.replayed > 0 {
            let _ = write!(
                line,
                "; {} replayed after a restart, not relearned",
                s.replayed
            );
        }
        line
    }
}

fn finite(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Learners for OnlineModels {
    fn sources(&self) -> Vec<String> {
        self.models.iter().map(|m| m.plan.source.clone()).collect()
    }

    fn bind(&mut self, job_sources: &[String]) {
        for m in &mut self.models {
            m.source = job_sources
                .iter()
                .position(|s| *s == m.plan.source)
                .unwrap_or(usize::MAX);
        }
    }

    fn learn(&mut self, partition: i32, rows: ProbedRows) -> Result<(), String> {
        for m in &mut self.models {
            m.learn(partition, &rows);
        }
        Ok(())
    }

    fn checkpoint(&mut self, producer: &mut dyn Producer) -> Result<(), String> {
        for m in &mut self.models {
            m.checkpoint(producer)?;
        }
        producer.flush().map_err(|e| e.to_string())
    }

    fn render_metrics(&self, pipeline: &str) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{{pipeline=\"{pipeline}\",{labels}}} {v}");
            }
        };
        let label =
            |m: &Online| format!("model=\"{}\",kind=\"{}\"", m.plan.name, m.plan.kind.name());
        family(
            "eddy_model_examples_total",
            "counter",
            "Examples learned (each predicted first: progressive validation).",
            self.models
                .iter()
                .map(|m| (label(m), m.state.examples() as f64))
                .collect(),
        );
        family(
            "eddy_model_skipped_total",
            "counter",
            "Examples not learned, by reason (null or failing label, NaN or infinite input, null id).",
            self.models
                .iter()
                .flat_map(|m| {
                    m.state
                        .skipped
                        .iter()
                        .map(move |(r, n)| (format!("{},reason=\"{r}\"", label(m)), *n as f64))
                })
                .collect(),
        );
        family(
            "eddy_model_version",
            "gauge",
            "Version of the model last published.",
            self.models
                .iter()
                .map(|m| (label(m), m.state.version() as f64))
                .collect(),
        );
        let mut names: Vec<&'static str> = Vec::new();
        for m in &self.models {
            for (k, _) in m.state.metrics() {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        for metric in names {
            family(
                &format!("eddy_model_{metric}"),
                "gauge",
                &format!("Progressive {metric} (each example scored before it is learned)."),
                self.models
                    .iter()
                    .flat_map(|m| {
                        let k = match &m.state.body {
                            Body::Recommender(r) => format!(",k=\"{}\"", r.eval.k),
                            Body::Linear(_) => String::new(),
                        };
                        m.state
                            .metrics()
                            .into_iter()
                            .filter(move |(n, _)| *n == metric)
                            .map(move |(_, v)| (format!("{}{k}", label(m)), v))
                    })
                    .collect(),
            );
        }
        out
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
        let loaded = eddy_features::spec::parse(std::path::Path::new("t.yaml"), SPEC).unwrap();
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
        eddy_features::spec::model::plan(&loaded, &sources, &[]).unwrap()
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
        let text = m.render_metrics("p");
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
        changed[0].params.l1 = Some(2.0);
        let err = OnlineModels::open(&changed, &log, &store)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("another definition"), "{err}");
    }
}
