//! The serving loop: follow state, answer triggers, emit recommendations.
//!
//! Two consumers. The *follower* reads the state serving depends on, from
//! the earliest offset: the models topic, the feature topics and the item
//! table. The *trigger consumer* reads activity events and requests. Each
//! round applies every state update that has arrived, then answers one
//! batch of triggers: model swaps happen between batches, so no request
//! waits for one and none sees half an update.
//!
//! At start the follower reads its topics to the end before the first
//! trigger, so the first answers use the latest models. While a model has
//! not loaded, `/healthz` says so; requests are answered with what has
//! loaded (`when_not_ready: fallback`) or held until it has (`hold`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_features::avro::AvroCodec;
use eddy_features::engine::job::decode::RecordDecoder;
use eddy_features::engine::job::schema_lookup;
use eddy_features::engine::value::Scalar;
use eddy_features::registry::SchemaRegistry;
use eddy_features::spec::serving::NotReady;
use eddy_features::spec::validate::{ColumnType, ViewPlan, source_columns};
use eddy_features::spec::{LoadedSpec, SpecError};
use eddy_features::topic::dead_letter::DeadLetterTopics;
pub use eddy_features::topic::now_ms;
use eddy_features::topic::{
    Backend, Consumer, Producer, ProducerRecord, Record, StartOffset, TopicSpec,
};
use eddy_training::plan::ModelPlan;

use crate::ServeError;
use crate::colocated::Colocated;
use crate::engine::{Engine, Recommendation, Request};
use crate::features::FeatureTables;
use crate::metrics::ServeMetrics;
use crate::models::ModelSet;
use crate::record::{RecommendationEncoder, lineage, request_fields};
use crate::rules::ItemRules;

mod follow;
mod loader;
mod open;

use loader::ModelFeed;

/// How often state topics (models, features, the item table) are read.
const FOLLOW_EVERY: Duration = Duration::from_millis(5);

/// How often recommendations are fsynced (they are visible to readers as
/// soon as each batch is answered).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Read triggers and requests from the beginning (a replay) instead
    /// of only new ones.
    pub from_earliest: bool,
    /// Stop once triggers and requests are read to the end they had at
    /// start.
    pub until_end: bool,
    /// Triggers per batch.
    pub batch: usize,
}

/// What the loop and the HTTP server share.
pub struct State {
    /// Candidates, ranking and each user's history.
    pub engine: Engine,
    /// The models served.
    pub models: ModelSet,
    /// The features served.
    pub features: FeatureTables,
    /// The latest event time seen: a request's time.
    pub latest_ts: i64,
    /// The spec's views, in spec order.
    pub views: Vec<ViewPlan>,
    /// The type of user ids (the trigger source's key).
    pub user_type: ColumnType,
    /// HTTP pulls so far (their request ids).
    pub pulls: u64,
}

impl State {
    /// A user id from text, typed like the sources' keys.
    pub fn user(&self, text: &str) -> Option<Scalar> {
        match self.user_type {
            ColumnType::Long => text.trim().parse().ok().map(Scalar::Long),
            _ => Some(Scalar::Str(text.into())),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ServeSummary {
    /// Trigger events answered.
    pub triggers: u64,
    /// Requests from the requests topic answered (HTTP ones are counted in the metrics).
    pub requests: u64,
    /// Recommendations emitted.
    pub recommendations: u64,
    /// Recommendations not as of their trigger (`as_of_trigger: false`).
    pub ahead_of_trigger: u64,
    /// Records sent to a dead-letter topic.
    pub dead_lettered: u64,
    /// The learned order's impressions: (learned, followed by an item
    /// outside the pool, never answered).
    pub impressions: (u64, u64, u64),
    /// How long the run took.
    pub elapsed: Duration,
}

impl ServeSummary {
    /// The warning to print when some recommendations were not as of
    /// their triggers.
    pub fn ahead_warning(&self) -> Option<String> {
        (self.ahead_of_trigger > 0).then(|| {
            format!(
                "warning: {} of {} recommendations used features or models newer than their trigger (serving's state ran ahead of the triggers, as in a replay); their records say `as_of_trigger: false`: do not score them offline as if they had been made live",
                self.ahead_of_trigger, self.recommendations
            )
        })
    }
}

/// A running serving component.
pub struct Service {
    /// What the loop and the HTTP server share.
    pub state: Arc<Mutex<State>>,
    /// The metrics `/metrics` serves.
    pub metrics: Arc<ServeMetrics>,
    /// The pipeline's name.
    pub name: String,
    backend: Arc<dyn Backend>,
    consumer: Box<dyn Consumer>,
    follower: Box<dyn Consumer>,
    producer: Box<dyn Producer>,
    encoder: RecommendationEncoder,
    codec: AvroCodec,
    trigger: Option<(String, RecordDecoder)>,
    requests: Option<String>,
    topic: String,
    dead_letters: DeadLetterTopics,
    hold: bool,
    /// Trigger and request partitions' ends at start (for `until_end`).
    ends: HashMap<(String, i32), i64>,
    options: ServeOptions,
    /// Models decoded by the loader thread, ready to swap in.
    loaded_models: Option<Receiver<Vec<(String, crate::models::Served)>>>,
    /// Stops the loader thread.
    loader_stop: Arc<AtomicBool>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.loader_stop.store(true, Ordering::Relaxed);
    }
}

impl Service {
    /// Serves until `stop` is set, or in a bounded run until the triggers
    /// are read to their end at start.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<ServeSummary, ServeError> {
        let started = Instant::now();
        let mut positions: HashMap<(String, i32), i64> = HashMap::new();
        let mut last_follow: Option<Instant> = None;
        let mut last_flush = Instant::now();
        let mut unflushed = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // State updates at most every few milliseconds: reading every
            // followed partition costs more than a trigger, and a model
            // update a few ms later changes nothing a user can see.
            if last_follow.is_none_or(|t| t.elapsed() >= FOLLOW_EVERY) {
                last_follow = Some(Instant::now());
                let updates = self.follower.poll(10_000, Duration::ZERO)?;
                self.apply_state(&updates);
                self.swap_in_models();
                self.update_ready();
            }
            if self.hold && !self.metrics.ready.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let records = self
                .consumer
                .poll(self.options.batch, Duration::from_millis(50))?;
            for rec in &records {
                positions.insert((rec.topic.clone(), rec.partition), rec.offset + 1);
                self.handle(rec)?;
            }
            if !records.is_empty() {
                // Visible at once; durable at the next flush.
                self.producer.publish()?;
                unflushed = true;
            }
            if unflushed && last_flush.elapsed() >= FLUSH_EVERY {
                self.producer.flush()?;
                last_flush = Instant::now();
                unflushed = false;
            }
            if self.options.until_end
                && self
                    .ends
                    .iter()
                    .all(|(k, end)| positions.get(k).copied().unwrap_or(0) >= *end)
            {
                break;
            }
        }
        self.producer.flush()?;
        self.loader_stop.store(true, Ordering::Relaxed);
        self.dead_letters.flush()?;
        let m = &self.metrics;
        Ok(ServeSummary {
            triggers: m.triggers.load(Ordering::Relaxed),
            requests: m.requests.load(Ordering::Relaxed),
            recommendations: m.recommendations.load(Ordering::Relaxed),
            ahead_of_trigger: m.ahead_of_trigger.load(Ordering::Relaxed),
            dead_lettered: m.dead_lettered.load(Ordering::Relaxed),
            impressions: (
                m.impressions_learned.load(Ordering::Relaxed),
                m.impressions_outside_pool.load(Ordering::Relaxed),
                m.impressions_unanswered.load(Ordering::Relaxed),
            ),
            elapsed: started.elapsed(),
        })
    }

    /// One trigger event or request.
    fn handle(&mut self, rec: &Record) -> Result<(), ServeError> {
        let t0 = Instant::now();
        let lineage_id = format!("{}/{}/{}", rec.topic, rec.partition, rec.offset);
        let request = if self.trigger.as_ref().is_some_and(|t| t.0 == rec.topic) {
            self.metrics.triggers.fetch_add(1, Ordering::Relaxed);
            let decoder = &self.trigger.as_ref().expect("checked").1;
            match decoder.decode(rec) {
                Ok(row) => {
                    let ts = row.ts.unwrap_or(rec.timestamp_ms);
                    let mut state = self.state.lock().expect("poisoned");
                    state.latest_ts = state.latest_ts.max(ts);
                    state.engine.observe(&row.key, &row.columns);
                    let k = state.engine.default_k;
                    Request {
                        id: lineage_id.clone(),
                        user: row.key,
                        k,
                        ts,
                        event: Some(row.columns),
                    }
                }
                Err(why) => return self.dead_letter(rec, &format!("not a trigger event: {why}")),
            }
        } else if self.requests.as_deref() == Some(rec.topic.as_str()) {
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let Some(bytes) = rec.value.as_deref() else {
                return self.dead_letter(rec, "a request has no value (a tombstone)");
            };
            let fields = match self.codec.decode(bytes) {
                Ok(d) => request_fields(&d.value),
                Err(e) => Err(format!("not a Confluent-framed Avro request: {e}")),
            };
            let fields = match fields {
                Ok(f) => f,
                Err(why) => return self.dead_letter(rec, &why),
            };
            let state = self.state.lock().expect("poisoned");
            let Some(user) = state.user(&fields.user_id) else {
                drop(state);
                return self.dead_letter(
                    rec,
                    &format!(
                        "user_id `{}` is not a {:?} id",
                        fields.user_id,
                        ColumnType::Long
                    ),
                );
            };
            let k = match crate::engine::check_k(fields.k.unwrap_or(state.engine.default_k)) {
                Ok(k) => k,
                Err(why) => {
                    drop(state);
                    return self.dead_letter(rec, &why);
                }
            };
            Request {
                id: fields.request_id,
                user,
                k,
                ts: if state.latest_ts == i64::MIN {
                    rec.timestamp_ms
                } else {
                    state.latest_ts
                },
                event: None,
            }
        } else {
            return Ok(());
        };
        let recommendation = {
            let mut state = self.state.lock().expect("poisoned");
            let State {
                engine,
                models,
                features,
                ..
            } = &mut *state;
            let r = engine.recommend(&request, models, features);
            self.metrics
                .sync_ranker(engine.ranker_counts(), engine.impressions_unanswered);
            self.metrics.feature_store_errors.store(
                features.store_errors.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            r
        };
        self.emit(&recommendation, &lineage_id)?;
        self.metrics.observe_latency(t0.elapsed().as_secs_f64());
        Ok(())
    }

    fn emit(&mut self, r: &Recommendation, trigger: &str) -> Result<(), ServeError> {
        let now = now_ms();
        let value = self.encoder.encode(r, now)?;
        let mut record = ProducerRecord::new(
            &self.topic,
            Some(r.user_id.clone().into_bytes()),
            Some(value),
        )
        .at(now);
        record.headers = lineage(r, trigger);
        self.producer.send(record)?;
        self.metrics.recommendations.fetch_add(1, Ordering::Relaxed);
        if r.items.is_empty() {
            self.metrics.empty.fetch_add(1, Ordering::Relaxed);
        }
        if !r.as_of_trigger {
            self.metrics
                .ahead_of_trigger
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn dead_letter(&mut self, rec: &Record, reason: &str) -> Result<(), ServeError> {
        self.dead_letters.send(self.backend.as_ref(), rec, reason)?;
        self.dead_letters.flush()?;
        self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The recommendations topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}
