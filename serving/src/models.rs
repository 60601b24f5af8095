//! The models serving reads, kept current from the models topic.
//!
//! The learner (`eddy run` with `models:`) publishes to a compacted topic:
//! FTRL models as sparse deltas plus periodic snapshots, recommenders as
//! snapshots. Each model here is a replica: a newer snapshot replaces it
//! whole, a delta applies in order. An update is decoded completely before
//! it replaces anything, and the service applies updates between requests,
//! so a request sees one version of each model, never a half-applied one,
//! and nothing pauses for a swap.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use eddy_features::topic::Record;
use eddy_training::lifecycle::{Applied, Assembler, ModelUpdate, Replica};
use eddy_training::online::recommender::Model as RecModel;
use eddy_training::plan::ModelPlan;
use eddy_training::recommend::mf::ItemMatrix;

use crate::metrics::ServeMetrics;

/// One served model.
// A handful per process: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Served {
    /// The ranker.
    Linear(Replica),
    /// A candidate recommender, once a snapshot has arrived.
    Recommender {
        /// The model's name in the spec.
        name: String,
        /// The version served and the model, once a snapshot has arrived.
        model: Option<(u64, RecModel)>,
        /// MF's items as one matrix, built when a snapshot arrives.
        matrix: Option<ItemMatrix>,
        /// Pieces of a chunked snapshot.
        assembler: Assembler,
    },
}

impl Served {
    /// The version served, if any.
    pub fn version(&self) -> Option<u64> {
        match self {
            Served::Linear(r) => r.version(),
            Served::Recommender { model, .. } => model.as_ref().map(|m| m.0),
        }
    }
}

/// Every model serving uses, by name.
#[derive(Clone)]
pub struct ModelSet {
    /// By model name.
    pub models: BTreeMap<String, Served>,
    /// Updates that could not be decoded (another eddy version?).
    pub undecodable: u64,
    /// Swaps done (snapshots and deltas applied).
    pub swaps: u64,
    /// Per model: the event time its served version had learned up to
    /// (`None`: nothing learned), from the updates' header; absent when the
    /// update did not say.
    pub trained_until: BTreeMap<String, Option<i64>>,
}

impl ModelSet {
    /// Replicas of `plans` (a ranker and candidate recommenders), empty
    /// until their updates arrive.
    pub fn new(plans: &[&ModelPlan]) -> ModelSet {
        ModelSet {
            models: plans
                .iter()
                .map(|p| {
                    let served = if p.kind().is_recommender() {
                        Served::Recommender {
                            name: p.name.clone(),
                            model: None,
                            matrix: None,
                            assembler: Assembler::default(),
                        }
                    } else {
                        Served::Linear(Replica::new(&p.name))
                    };
                    (p.name.clone(), served)
                })
                .collect(),
            undecodable: 0,
            swaps: 0,
            trained_until: BTreeMap::new(),
        }
    }

    /// Applies one record of the models topic; records of other models are
    /// ignored.
    pub fn apply(&mut self, rec: &Record) {
        let Some(name) = rec
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.split('/').next())
        else {
            return;
        };
        let Some(served) = self.models.get_mut(name) else {
            return;
        };
        let until = eddy_training::lifecycle::trained_until(rec);
        let record_until = |trained_until: &mut BTreeMap<String, Option<i64>>| match until {
            Some(t) => {
                trained_until.insert(name.to_string(), t);
            }
            None => {
                trained_until.remove(name);
            }
        };
        match served {
            Served::Linear(replica) => match replica.apply(rec) {
                Ok(Applied::Snapshot(_) | Applied::Delta(_)) => {
                    self.swaps += 1;
                    record_until(&mut self.trained_until);
                }
                Ok(_) => {}
                Err(e) => {
                    self.undecodable += 1;
                    tracing::warn!(model = name, error = %e, "undecodable model update");
                }
            },
            Served::Recommender {
                name,
                model,
                matrix,
                assembler,
            } => {
                let Some(value) = &rec.value else { return };
                let update = match postcard::from_bytes::<ModelUpdate>(value)
                    .map_err(|e| e.to_string())
                    .and_then(|u| assembler.take(u).map_err(|e| e.to_string()))
                {
                    Ok(Some(u)) => u,
                    // A piece of a chunked snapshot: kept until its manifest.
                    Ok(None) => return,
                    Err(e) => {
                        self.undecodable += 1;
                        tracing::warn!(model = %name, error = %e, "undecodable recommender update");
                        return;
                    }
                };
                let ModelUpdate::Snapshot {
                    version,
                    model: bytes,
                } = update
                else {
                    self.undecodable += 1;
                    return;
                };
                if model.as_ref().is_some_and(|(v, _)| *v >= version) {
                    return;
                }
                match postcard::from_bytes::<RecModel>(&bytes) {
                    Ok(m) => {
                        *matrix = match &m {
                            RecModel::Mf(mf) => Some(mf.item_matrix()),
                            // Only MF scores the catalog by embeddings.
                            RecModel::CoOccurrence(_) | RecModel::Popularity(_) => None,
                        };
                        *model = Some((version, m));
                        self.swaps += 1;
                        record_until(&mut self.trained_until);
                    }
                    Err(e) => {
                        self.undecodable += 1;
                        tracing::warn!(model = %name, error = %e, "undecodable recommender snapshot");
                    }
                }
            }
        }
    }

    /// Applies `records` in order, and adds the swaps and undecodable
    /// updates they made to `metrics`.
    pub fn apply_counted(&mut self, records: &[Record], metrics: &ServeMetrics) {
        let (swaps, undecodable) = (self.swaps, self.undecodable);
        for r in records {
            self.apply(r);
        }
        metrics
            .model_swaps
            .fetch_add(self.swaps - swaps, Ordering::Relaxed);
        metrics
            .model_undecodable
            .fetch_add(self.undecodable - undecodable, Ordering::Relaxed);
    }

    /// Every loaded model had learned nothing at or after `t` (strictly
    /// before it, with `strict`), as far as its updates said: a model
    /// whose updates did not say is not known to be.
    pub fn trained_before(&self, t: i64, strict: bool) -> bool {
        self.models
            .iter()
            .filter(|(_, m)| m.version().is_some())
            .all(|(name, _)| match self.trained_until.get(name) {
                Some(None) => true,
                Some(Some(u)) => {
                    if strict {
                        *u < t
                    } else {
                        *u <= t
                    }
                }
                None => false,
            })
    }

    /// Every model has a version.
    pub fn all_loaded(&self) -> bool {
        self.models.values().all(|m| m.version().is_some())
    }

    /// `name@version` of every loaded model, in name order: the lineage a
    /// recommendation records.
    pub fn versions(&self) -> String {
        self.models
            .iter()
            .filter_map(|(n, m)| m.version().map(|v| format!("{n}@{v}")))
            .collect::<Vec<_>>()
            .join(",")
    }
}
