//! The ranker's features: from the feature topics, or from the job.
//!
//! Serving apart from the pipeline (`eddy serve`) reads each view's
//! compacted feature topic (`features.<view>`, one upsert per key) into a
//! map from key to the latest row. That map is the "feature topic
//! materialized locally": the same values the pipeline's in-process read
//! API returns, as of the latest row the topic holds.
//!
//! Serving co-located with the pipeline (`eddy run --serve`) reads the
//! job's tables through that in-process API instead ([`FeatureReader`]):
//! no topic round trip, and a row is visible as soon as the job releases
//! it rather than after the next output flush.

use std::collections::HashMap;
use std::sync::Arc;

use eddy_features::engine::job::FeatureReader;
use eddy_features::engine::job::decode::RecordDecoder;
use eddy_features::engine::value::Scalar;
use eddy_features::registry::SchemaRegistry;
use eddy_features::spec::validate::{ViewPlan, record_columns};
use eddy_features::topic::Record;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One view's table.
struct View {
    topic: String,
    decoder: RecordDecoder,
    /// Index of each feature in the decoded columns.
    features: Vec<usize>,
    /// Key text → (as_of, the features' values).
    rows: FastMap<String, (i64, Vec<Scalar>)>,
}

/// Where the rows come from.
enum Rows {
    /// Materialized from the feature topics.
    Topics(Vec<View>),
    /// The job in this process: its read API, and each view's name and
    /// number of features (in spec order).
    Job {
        reader: FeatureReader,
        views: Vec<(String, usize)>,
    },
}

/// Every view's latest row per key.
pub struct FeatureTables {
    rows: Rows,
    /// Records that could not be decoded.
    pub undecodable: u64,
}

/// Why the tables could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("feature topic `{topic}`: {why}")]
pub struct FeatureTableError {
    /// The feature topic.
    pub topic: String,
    /// What does not fit.
    pub why: String,
}

impl FeatureTableError {
    /// Who must act: a feature topic's schema does not fit its view.
    pub fn blame(&self) -> eddy_features::topic::Blame {
        eddy_features::topic::Blame::User
    }
}

impl FeatureTables {
    /// Tables of `plans` (every view of the spec, in spec order, so a
    /// model's feature index reads the same feature it learned from).
    pub fn new(
        plans: &[ViewPlan],
        registry: Arc<dyn SchemaRegistry>,
    ) -> Result<FeatureTables, FeatureTableError> {
        let mut views = Vec::new();
        for plan in plans {
            let err = |why: String| FeatureTableError {
                topic: plan.output_topic.clone(),
                why,
            };
            let schema = apache_avro::Schema::parse_str(
                &eddy_features::engine::job::output::feature_schema(plan),
            )
            .map_err(|e| err(e.to_string()))?;
            let columns = record_columns(&schema)
                .ok_or_else(|| err("the feature schema is not a record".into()))?;
            let features = plan
                .features
                .iter()
                .map(|f| columns.get_index_of(&f.column).unwrap_or(usize::MAX))
                .collect();
            views.push(View {
                topic: plan.output_topic.clone(),
                decoder: RecordDecoder::new(
                    registry.clone(),
                    schema,
                    &columns,
                    &plan.key,
                    Some(("as_of", eddy_features::spec::TimeUnit::Ms)),
                ),
                features,
                rows: FastMap::default(),
            });
        }
        Ok(FeatureTables {
            rows: Rows::Topics(views),
            undecodable: 0,
        })
    }

    /// Tables of `plans` read from the job in this process.
    pub fn in_process(reader: FeatureReader, plans: &[ViewPlan]) -> FeatureTables {
        FeatureTables {
            rows: Rows::Job {
                reader,
                views: plans
                    .iter()
                    .map(|p| (p.name.clone(), p.features.len()))
                    .collect(),
            },
            undecodable: 0,
        }
    }

    /// The topics to follow (none when the job is in this process).
    pub fn topics(&self) -> Vec<String> {
        match &self.rows {
            Rows::Topics(views) => views.iter().map(|v| v.topic.clone()).collect(),
            Rows::Job { .. } => Vec::new(),
        }
    }

    /// Applies one record of a feature topic (a tombstone removes the key).
    pub fn apply(&mut self, rec: &Record) {
        let Rows::Topics(views) = &mut self.rows else {
            return;
        };
        let Some(view) = views.iter_mut().find(|v| v.topic == rec.topic) else {
            return;
        };
        let Some(key) = rec.key.as_deref().map(String::from_utf8_lossy) else {
            return;
        };
        if rec.value.is_none() {
            view.rows.remove(key.as_ref());
            return;
        }
        match view.decoder.decode(rec) {
            Ok(row) => {
                let values = view
                    .features
                    .iter()
                    .map(|i| row.columns.get(*i).cloned().unwrap_or_default())
                    .collect();
                view.rows.insert(
                    key.into_owned(),
                    (row.ts.unwrap_or(rec.timestamp_ms), values),
                );
            }
            Err(why) => {
                self.undecodable += 1;
                tracing::warn!(topic = %rec.topic, offset = rec.offset, %why, "undecodable feature row");
            }
        }
    }

    /// Feature `f` (over every view, view after view) for `key`, and the
    /// time its row is valid for.
    pub fn feature(&self, key: &str, mut f: usize) -> (Scalar, Option<i64>) {
        match &self.rows {
            Rows::Topics(views) => {
                for v in views {
                    if f < v.features.len() {
                        return match v.rows.get(key) {
                            Some((as_of, values)) => (values[f].clone(), Some(*as_of)),
                            None => (Scalar::Null, None),
                        };
                    }
                    f -= v.features.len();
                }
            }
            Rows::Job { reader, views } => {
                for (name, n) in views {
                    if f < *n {
                        return match reader.value(name, key, f) {
                            Some((as_of, value)) => (value, Some(as_of)),
                            None => (Scalar::Null, None),
                        };
                    }
                    f -= n;
                }
            }
        }
        (Scalar::Null, None)
    }

    /// Every feature of `view` for `key`: (as_of, name → value).
    pub fn row(
        &self,
        view: &str,
        key: &str,
        plans: &[ViewPlan],
    ) -> Option<(i64, Vec<(String, Scalar)>)> {
        let i = plans.iter().position(|p| p.name == view)?;
        let views = match &self.rows {
            Rows::Topics(views) => views,
            Rows::Job { reader, .. } => {
                let row = reader.get(view, key, None).ok()??;
                return Some((row.as_of, row.values));
            }
        };
        let (as_of, values) = views[i].rows.get(key)?;
        Some((
            *as_of,
            plans[i]
                .features
                .iter()
                .map(|f| f.column.clone())
                .zip(values.iter().cloned())
                .collect(),
        ))
    }

    /// Keys held, over all views.
    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::Topics(views) => views.iter().map(|v| v.rows.len()).sum(),
            Rows::Job { reader, views } => views.iter().map(|(n, _)| reader.len(n)).sum(),
        }
    }

    /// Whether no view has a row yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
