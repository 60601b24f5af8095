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
//!
//! With `features_from: redis` or `postgres`, serving keeps no rows: each
//! request reads the user's row of each view it needs from the view's
//! store, one `HMGET` (the layout `sinks/redis.rs` writes) or one
//! `SELECT` by primary key (the table `sinks/postgres.rs` upserts) per
//! view. A store that fails is counted (`store_errors`) and the request
//! goes on without those features, as for a user with no row.

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
    /// Each view's online store, read per request.
    Store(Vec<OnlineView>),
}

/// One view's rows in an online store.
enum OnlineView {
    Redis(Box<RedisView>),
    Postgres(PostgresView),
}

impl OnlineView {
    fn name(&self) -> &str {
        match self {
            OnlineView::Redis(v) => &v.name,
            OnlineView::Postgres(v) => &v.name,
        }
    }

    /// Its number of features.
    fn width(&self) -> usize {
        match self {
            OnlineView::Redis(v) => v.types.len(),
            OnlineView::Postgres(v) => v.types.len(),
        }
    }

    fn row(&self, key: &str) -> Result<Option<(i64, Vec<Scalar>)>, String> {
        match self {
            OnlineView::Redis(v) => v.row(key),
            OnlineView::Postgres(v) => v.row(key),
        }
    }
}

/// One view's rows in PostgreSQL: the table `output.postgres` upserts,
/// one row per key.
struct PostgresView {
    name: String,
    types: Vec<eddy_features::spec::validate::OutType>,
    /// The thread that owns the connection. The `postgres` client runs a
    /// runtime of its own, which cannot start (or stop) on a thread
    /// already driving one, like the HTTP API's: so every query goes to
    /// this thread. None: a re-keyed view without a table, never read by
    /// user.
    worker: Option<std::sync::Mutex<std::sync::mpsc::Sender<Query>>>,
}

/// A key to look up, and where the answer goes.
type Query = (String, std::sync::mpsc::Sender<Result<PgRow, String>>);

/// A row read back: (as_of, the features' values), None if there is none.
type PgRow = Option<(i64, Vec<Scalar>)>;

impl PostgresView {
    fn row(&self, key: &str) -> Result<PgRow, String> {
        let Some(worker) = &self.worker else {
            return Ok(None);
        };
        let (reply, answer) = std::sync::mpsc::channel();
        worker
            .lock()
            .expect("poisoned")
            .send((key.to_string(), reply))
            .map_err(|_| "the PostgreSQL reader stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the PostgreSQL reader stopped".to_string())?
    }

    /// Starts the reader thread of `table` with `select` (`$1` the key).
    fn reader(
        config: postgres::Config,
        select: String,
        key_long: bool,
        types: Vec<eddy_features::spec::validate::OutType>,
    ) -> std::sync::mpsc::Sender<Query> {
        let (queries, incoming) = std::sync::mpsc::channel::<Query>();
        std::thread::Builder::new()
            .name("serve-postgres".into())
            .spawn(move || {
                let mut client: Option<postgres::Client> = None;
                for (key, reply) in incoming {
                    let answer = (|| -> Result<PgRow, String> {
                        if client.is_none() {
                            client =
                                Some(config.connect(postgres::NoTls).map_err(|e| e.to_string())?);
                        }
                        let c = client.as_mut().expect("connected");
                        let found = if key_long {
                            match key.parse::<i64>() {
                                Ok(k) => c.query_opt(&select, &[&k]),
                                // Not a number: no row can have it.
                                Err(_) => return Ok(None),
                            }
                        } else {
                            c.query_opt(&select, &[&key])
                        };
                        let row = match found {
                            Ok(row) => row,
                            Err(e) => {
                                client = None;
                                return Err(e.to_string());
                            }
                        };
                        Ok(row.map(|row| {
                            let as_of: i64 = row.get(0);
                            let values = types
                                .iter()
                                .enumerate()
                                .map(|(i, t)| {
                                    row.get::<_, Option<serde_json::Value>>(i + 1)
                                        .map_or(Scalar::Null, |json| from_json(&json, t))
                                })
                                .collect();
                            (as_of, values)
                        }))
                    })();
                    let _ = reply.send(answer);
                }
            })
            .expect("spawning the PostgreSQL reader");
        queries
    }
}

/// One view's rows in Redis.
struct RedisView {
    name: String,
    /// `<pipeline>:<key column>=`.
    prefix: String,
    /// `_ts:<view>`, then `<view>:<feature>` per feature.
    fields: Vec<String>,
    /// Each feature's type, to read its JSON text back.
    types: Vec<eddy_features::spec::validate::OutType>,
    /// None: a re-keyed view without a store, which serving never reads by
    /// user (models cannot read re-keyed views).
    client: Option<redis::Client>,
    connection: std::sync::Mutex<Option<redis::Connection>>,
}

impl RedisView {
    /// The row of `key` (as_of, values), None if the store has none; Err
    /// if the store failed.
    fn row(&self, key: &str) -> Result<Option<(i64, Vec<Scalar>)>, String> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        let mut slot = self.connection.lock().expect("poisoned");
        if slot.is_none() {
            *slot = Some(client.get_connection().map_err(|e| e.to_string())?);
        }
        let con = slot.as_mut().expect("connected");
        let values: Vec<Option<String>> = match redis::cmd("HMGET")
            .arg(format!("{}{key}", self.prefix))
            .arg(&self.fields)
            .query(con)
        {
            Ok(v) => v,
            Err(e) => {
                *slot = None;
                return Err(e.to_string());
            }
        };
        let Some(Some(as_of)) = values.first() else {
            return Ok(None);
        };
        let as_of: i64 = as_of
            .parse()
            .map_err(|_| format!("`{}` is not a time", self.fields[0]))?;
        let row = values[1..]
            .iter()
            .zip(&self.types)
            .map(|(text, t)| match text {
                Some(text) => serde_json::from_str::<serde_json::Value>(text)
                    .map(|json| from_json(&json, t))
                    .unwrap_or(Scalar::Null),
                None => Scalar::Null,
            })
            .collect();
        Ok(Some((as_of, row)))
    }
}

/// A feature's JSON text back as a scalar of its type.
fn from_json(json: &serde_json::Value, t: &eddy_features::spec::validate::OutType) -> Scalar {
    use eddy_features::spec::ColumnType;
    use eddy_features::spec::validate::OutType;
    let scalar = |v: &serde_json::Value, t: &ColumnType| match (v, t) {
        (serde_json::Value::Null, _) => Scalar::Null,
        (v, ColumnType::Long) => v.as_i64().map_or(Scalar::Null, Scalar::Long),
        (v, ColumnType::Double) => v.as_f64().map_or(Scalar::Null, Scalar::Double),
        (serde_json::Value::Bool(b), ColumnType::Boolean) => Scalar::Bool(*b),
        (serde_json::Value::String(s), _) => Scalar::from(s.as_str()),
        _ => Scalar::Null,
    };
    match (t, json) {
        (OutType::Array(element), serde_json::Value::Array(items)) => {
            Scalar::List(items.iter().map(|v| scalar(v, element)).collect())
        }
        (OutType::Plain(c) | OutType::Nullable(c), v) => scalar(v, c),
        _ => Scalar::Null,
    }
}

/// Every view's values for a key never seen, feature after feature.
fn empty_values(plans: &[ViewPlan]) -> Vec<Scalar> {
    use eddy_features::engine::keyed::{Layout, empty_values};
    plans
        .iter()
        .flat_map(|p| empty_values(&Layout::new(&p.features)))
        .collect()
}

/// A view's store client, opened from its `output.<kind>` URL; None for a
/// re-keyed view without one (serving never reads it by user, and reads it
/// by candidate only for a ranker naming it, which validation then gives
/// a store); an error for any other view without one (validation refuses
/// that spec).
fn open_store<T, E: std::fmt::Display>(
    plan: &ViewPlan,
    kind: &str,
    url: Option<&str>,
    open: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, FeatureTableError> {
    let failed = |why: String| FeatureTableError {
        topic: plan.output_topic.clone(),
        why,
    };
    match url {
        Some(url) => open(url).map(Some).map_err(|e| failed(e.to_string())),
        None if plan.rekeyed => Ok(None),
        None => Err(failed(format!(
            "view `{}` has no output.{kind} to read from",
            plan.name
        ))),
    }
}

/// Every view's latest row per key.
pub struct FeatureTables {
    rows: Rows,
    /// Every view's values for a key it holds no row of, feature after
    /// feature over all views: what a probe reads for a key without state
    /// (counts 0, the rest null), so a model reads at serving what it
    /// learned from for a new user or item, not nulls.
    empty: Vec<Scalar>,
    /// Records that could not be decoded.
    pub undecodable: u64,
    /// Reads from the online store that failed (the request went on
    /// without that view's features).
    pub store_errors: std::sync::atomic::AtomicU64,
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
            empty: empty_values(plans),
            rows: Rows::Topics(views),
            undecodable: 0,
            store_errors: Default::default(),
        })
    }

    /// Tables of `plans` read from the job in this process.
    pub fn in_process(reader: FeatureReader, plans: &[ViewPlan]) -> FeatureTables {
        FeatureTables {
            empty: empty_values(plans),
            rows: Rows::Job {
                reader,
                views: plans
                    .iter()
                    .map(|p| (p.name.clone(), p.features.len()))
                    .collect(),
            },
            undecodable: 0,
            store_errors: Default::default(),
        }
    }

    /// Tables of `plans` read per request from each view's Redis store
    /// (`output.redis`, checked by validation), for pipeline `pipeline`.
    pub fn redis(plans: &[ViewPlan], pipeline: &str) -> Result<FeatureTables, FeatureTableError> {
        let mut views = Vec::new();
        for plan in plans {
            let client = open_store(
                plan,
                "redis",
                plan.redis.as_ref().map(|r| r.url.as_str()),
                |url| redis::Client::open(url),
            )?;
            views.push(OnlineView::Redis(Box::new(RedisView {
                name: plan.name.clone(),
                prefix: format!("{pipeline}:{}=", plan.key),
                fields: std::iter::once(format!("_ts:{}", plan.name))
                    .chain(
                        plan.features
                            .iter()
                            .map(|f| format!("{}:{}", plan.name, f.column)),
                    )
                    .collect(),
                types: plan
                    .features
                    .iter()
                    .map(eddy_features::spec::validate::OutType::of)
                    .collect(),
                client,
                connection: std::sync::Mutex::new(None),
            })));
        }
        Ok(FeatureTables {
            empty: empty_values(plans),
            rows: Rows::Store(views),
            undecodable: 0,
            store_errors: Default::default(),
        })
    }

    /// Tables of `plans` read per request from each view's PostgreSQL
    /// table (`output.postgres`, checked by validation).
    pub fn postgres(plans: &[ViewPlan]) -> Result<FeatureTables, FeatureTableError> {
        let mut views = Vec::new();
        for plan in plans {
            let config = open_store(
                plan,
                "postgres",
                plan.postgres.as_ref().map(|p| p.url.as_str()),
                |url| url.parse::<postgres::Config>(),
            )?;
            let ident = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
            let table = plan
                .postgres
                .as_ref()
                .and_then(|p| p.table.clone())
                .unwrap_or_else(|| plan.name.clone());
            let columns: Vec<String> = plan
                .features
                .iter()
                .map(|f| format!("to_jsonb({})", ident(&f.column)))
                .collect();
            let select = format!(
                "SELECT \"as_of\", {} FROM {} WHERE {} = $1",
                columns.join(", "),
                ident(&table),
                ident(&plan.key)
            );
            let types: Vec<eddy_features::spec::validate::OutType> = plan
                .features
                .iter()
                .map(eddy_features::spec::validate::OutType::of)
                .collect();
            let key_long = plan.key_type == eddy_features::spec::ColumnType::Long;
            views.push(OnlineView::Postgres(PostgresView {
                name: plan.name.clone(),
                worker: config.map(|config| {
                    std::sync::Mutex::new(PostgresView::reader(
                        config,
                        select,
                        key_long,
                        types.clone(),
                    ))
                }),
                types,
            }));
        }
        Ok(FeatureTables {
            empty: empty_values(plans),
            rows: Rows::Store(views),
            undecodable: 0,
            store_errors: Default::default(),
        })
    }

    /// `view`'s row of `key` from its store, counting a failure.
    fn store_row(&self, view: &OnlineView, key: &str) -> Option<(i64, Vec<Scalar>)> {
        match view.row(key) {
            Ok(row) => row,
            Err(why) => {
                self.store_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(view = %view.name(), %why, "online store read failed");
                None
            }
        }
    }

    /// Features `wanted` (indices over every view) for `key`, with the
    /// time each one's row is valid for: one read per view.
    pub fn features(&self, key: &str, wanted: &[usize]) -> Vec<(Scalar, Option<i64>)> {
        let Rows::Store(views) = &self.rows else {
            return wanted.iter().map(|f| self.feature(key, *f)).collect();
        };
        let mut rows: HashMap<usize, Option<(i64, Vec<Scalar>)>> = HashMap::new();
        wanted
            .iter()
            .map(|&f| {
                let (mut v, mut i) = (0, f);
                while v < views.len() && i >= views[v].width() {
                    i -= views[v].width();
                    v += 1;
                }
                let Some(view) = views.get(v) else {
                    return (Scalar::Null, None);
                };
                let row = rows.entry(v).or_insert_with(|| self.store_row(view, key));
                match row {
                    Some((as_of, values)) => (values[i].clone(), Some(*as_of)),
                    None => (self.empty.get(f).cloned().unwrap_or_default(), None),
                }
            })
            .collect()
    }

    /// The topics to follow (none when the job is in this process).
    pub fn topics(&self) -> Vec<String> {
        match &self.rows {
            Rows::Topics(views) => views.iter().map(|v| v.topic.clone()).collect(),
            Rows::Job { .. } | Rows::Store(_) => Vec::new(),
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
    /// time its row is valid for (None: no row; the view's value for a key
    /// it never saw).
    pub fn feature(&self, key: &str, f: usize) -> (Scalar, Option<i64>) {
        let empty = || (self.empty.get(f).cloned().unwrap_or_default(), None);
        let mut f = f;
        match &self.rows {
            Rows::Topics(views) => {
                for v in views {
                    if f < v.features.len() {
                        return match v.rows.get(key) {
                            Some((as_of, values)) => (values[f].clone(), Some(*as_of)),
                            None => empty(),
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
                            None => empty(),
                        };
                    }
                    f -= n;
                }
            }
            Rows::Store(_) => return self.features(key, &[f]).remove(0),
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
            Rows::Store(views) => {
                let (as_of, values) = self.store_row(&views[i], key)?;
                let names = plans[i].features.iter().map(|f| f.column.clone());
                return Some((as_of, names.zip(values).collect()));
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
            // Keys live in the store; serving holds none.
            Rows::Store(_) => 0,
        }
    }

    /// Whether no view has a row yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: serving read a key without a row (a new user, an item
    /// no one has viewed) as nulls, where the model had learned from the
    /// probe's values for a key without state (counts 0): the same user
    /// was scored on features it was never trained on.
    #[test]
    fn a_key_without_a_row_reads_as_a_key_without_state_not_as_nulls() {
        let text = "name: t
sources:
  events: { topic: events, key: user_id, event_time: ts }
features:
  v:
    source: events
    aggregations:
      - { name: n, op: count, windows: [1d, lifetime] }
      - { name: m, op: mean, column: x, windows: [lifetime] }
    derived_features:
      share: \"n_1d / NULLIF(n_lifetime, 0)\"
";
        let loaded = eddy_features::spec::parse(std::path::Path::new("t.yaml"), text).unwrap();
        let schema = apache_avro::Schema::parse_str(
            r#"{"type": "record", "name": "E", "fields": [
              {"name": "user_id", "type": "long"}, {"name": "x", "type": "double"},
              {"name": "ts", "type": "long"}]}"#,
        )
        .unwrap();
        let plans = eddy_features::spec::validate(&loaded, &|_| Ok(Some(schema.clone()))).unwrap();
        let tables = FeatureTables::in_process(FeatureReader::new(&plans), &plans);
        let read: Vec<(Scalar, Option<i64>)> = tables.features("nobody", &[0, 1, 2, 3]);
        assert_eq!(
            read,
            [
                (Scalar::Long(0), None),
                (Scalar::Long(0), None),
                (Scalar::Null, None),
                (Scalar::Null, None),
            ]
        );
    }
}
