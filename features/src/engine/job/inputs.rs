//! What a pipeline reads, set up once for `eddy run` and `eddy backfill`
//! alike: the validated plans, a decoder per source and table, the tables'
//! state and the task configuration. Sharing this is what makes a backfill
//! run the very code a live job runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::JobError;
use super::decode::{ChangeDecoder, RecordDecoder, envelope_row};
use crate::engine::table::TableState;
use crate::engine::task::{Row, TaskConfig};
use crate::registry::{RegistryError, SchemaRegistry, value_subject};
use crate::spec::validate::ViewPlan;
use crate::spec::{LoadedSpec, SpecError};
use crate::topic::{Backend, Consumer, Record, StartOffset};

/// An event stream of the spec.
pub(crate) struct Source {
    pub name: String,
    pub topic: String,
    pub decoder: RecordDecoder,
    pub idle_timeout: Duration,
}

/// A reference table of the spec.
pub(crate) struct Table {
    /// Its name in the spec.
    pub name: String,
    pub topic: String,
    /// Rows of the table's columns (for a Debezium table: its columns and
    /// key; the records are read by `changes`).
    pub decoder: RecordDecoder,
    /// A Debezium table's change decoder.
    pub changes: Option<ChangeDecoder>,
}

/// Everything a job reads, ready to use.
pub(crate) struct Inputs {
    pub plans: Vec<ViewPlan>,
    /// Sources that some view reads, in spec order.
    pub sources: Vec<Source>,
    pub tables: Vec<Table>,
    pub table_state: Vec<TableState>,
    pub cfg: Arc<TaskConfig>,
    /// Partitions of every source (they are co-partitioned).
    pub partitions: usize,
    /// Per (source, partition): the end offset when the inputs were opened.
    pub ends: HashMap<(usize, i32), i64>,
    /// Per (source, partition): the earliest retained offset then.
    pub lows: HashMap<(usize, i32), i64>,
}

/// Looks up the latest value schema of a topic for validation.
pub fn schema_lookup(
    registry: &Arc<dyn SchemaRegistry>,
) -> impl Fn(&str) -> Result<Option<apache_avro::Schema>, String> + '_ {
    move |topic: &str| match registry.latest(&value_subject(topic)) {
        Ok(s) => apache_avro::Schema::parse_str(&s.schema)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(RegistryError::SubjectNotFound(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

impl Inputs {
    /// Validates the spec against the registry and builds decoders, table
    /// state and the task configuration. Sources no view or model reads
    /// are left out, except `extra` (a backfill's label source).
    pub fn open(
        loaded: &LoadedSpec,
        backend: &dyn Backend,
        registry: &Arc<dyn SchemaRegistry>,
        extra: Option<&str>,
    ) -> Result<Inputs, JobError> {
        let spec = &loaded.spec;
        // Validation reads every topic's schema; keep them, rather than ask
        // the registry again for the decoders.
        let registered = schema_lookup(registry);
        // JSON change streams have no registered schema: the spec declares it.
        let fetch = crate::spec::validate::with_declared(spec, &registered);
        let seen = std::cell::RefCell::new(HashMap::new());
        let lookup = |topic: &str| -> Result<Option<apache_avro::Schema>, String> {
            if let Some(s) = seen.borrow().get(topic) {
                return Ok(Some(apache_avro::Schema::clone(s)));
            }
            let schema = fetch(topic)?;
            if let Some(s) = &schema {
                seen.borrow_mut().insert(topic.to_string(), s.clone());
            }
            Ok(schema)
        };
        let plans = crate::spec::validate(loaded, &lookup)
            .map_err(|p| JobError::Spec(SpecError::Invalid(p)))?;
        let schema_of = |topic: &str| -> Result<apache_avro::Schema, JobError> {
            lookup(topic)
                .map_err(JobError::Output)?
                .ok_or_else(|| JobError::Output(format!("topic `{topic}` lost its schema")))
        };
        // Sources, and their co-partitioning.
        let mut sources = Vec::new();
        let mut partitions: Option<(String, usize)> = None;
        let mut ends = HashMap::new();
        let mut lows = HashMap::new();
        for (name, s) in &spec.sources {
            let read_by_views = plans.iter().find(|p| p.source == *name);
            let read_by_models = spec.models.values().any(|m| m.sources().any(|s| s == name));
            if read_by_views.is_none() && !read_by_models && extra != Some(name.as_str()) {
                continue;
            }
            let schema = schema_of(&s.topic)?;
            let columns = match read_by_views {
                Some(plan) => plan.source_columns.clone(),
                None => {
                    crate::spec::validate::source_columns(&schema, s.format).unwrap_or_default()
                }
            };
            let d = backend.describe_topic(&s.topic)?;
            match &partitions {
                Some((first, n)) if *n != d.partitions.len() => {
                    return Err(JobError::NotCoPartitioned {
                        detail: format!(
                            "`{first}` has {n} partitions and `{}` has {}",
                            s.topic,
                            d.partitions.len()
                        ),
                    });
                }
                None => partitions = Some((s.topic.clone(), d.partitions.len())),
                _ => {}
            }
            let i = sources.len();
            for p in &d.partitions {
                ends.insert((i, p.id), p.high);
                lows.insert((i, p.id), p.low);
            }
            sources.push(Source {
                name: name.clone(),
                topic: s.topic.clone(),
                decoder: RecordDecoder::source(
                    registry.clone(),
                    schema,
                    &columns,
                    &s.key,
                    Some((&s.event_time, s.event_time_unit)),
                    s.format,
                ),
                idle_timeout: Duration::from_millis(s.idle_timeout.0 as u64),
            });
        }
        // Tables.
        let mut tables = Vec::new();
        let mut table_state = Vec::new();
        let mut table_columns = Vec::new();
        for (name, t) in &spec.tables {
            let schema = schema_of(&t.topic)?;
            let (row_schema, changes) = match t.format {
                crate::spec::RecordFormat::Avro => (schema, None),
                crate::spec::RecordFormat::Debezium | crate::spec::RecordFormat::DebeziumJson => {
                    let row = envelope_row(&schema)
                        .map_err(|why| JobError::Output(format!("table `{name}`: {why}")))?
                        .clone();
                    let columns = crate::spec::validate::record_columns(&row).unwrap_or_default();
                    let changes = ChangeDecoder::new(
                        registry.clone(),
                        schema,
                        &columns,
                        &t.key,
                        t.valid_from.as_deref(),
                        t.format,
                    );
                    (row, Some(changes))
                }
            };
            let columns = crate::spec::validate::record_columns(&row_schema).unwrap_or_default();
            table_columns.push((name.clone(), columns.keys().cloned().collect::<Vec<_>>()));
            tables.push(Table {
                name: name.clone(),
                topic: t.topic.clone(),
                decoder: RecordDecoder::new(
                    registry.clone(),
                    row_schema,
                    &columns,
                    &t.key,
                    t.valid_from
                        .as_deref()
                        .map(|v| (v, crate::spec::TimeUnit::Ms)),
                ),
                changes,
            });
            table_state.push(TableState::new(t.versioned));
        }
        // Task inputs are the sources views read, in the same order as
        // `sources`.
        let source_lateness: Vec<(String, i64)> = spec
            .sources
            .iter()
            .filter(|(n, _)| sources.iter().any(|s| s.name == **n))
            .map(|(n, s)| (n.clone(), s.lateness.0))
            .collect();
        let mut cfg = super::TaskConfig::new(&source_lateness, &table_columns, &plans)
            .map_err(|e| JobError::Output(e.to_string()))?;
        // Re-keyed events go to the task owning their key, one per source
        // partition.
        cfg.partitions = partitions.as_ref().map_or(1, |p| p.1 as i32).max(1);
        let cfg = Arc::new(cfg);
        Ok(Inputs {
            plans,
            sources,
            tables,
            table_state,
            cfg,
            partitions: partitions.map_or(0, |p| p.1),
            ends,
            lows,
        })
    }
}

/// Reads every table to its end with `consumer` (which then stays
/// assigned, to follow updates). Records that cannot be used go to
/// `rejected` with a reason.
pub(crate) fn bootstrap_tables(
    backend: &dyn Backend,
    consumer: &mut dyn Consumer,
    tables: &[Table],
    state: &mut [TableState],
    rejected: &mut dyn FnMut(&Record, String),
    read: &mut dyn FnMut(&Record),
) -> Result<(), JobError> {
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for t in tables {
        consumer.assign_all(&t.topic, StartOffset::Earliest)?;
        for p in backend.describe_topic(&t.topic)?.partitions {
            if p.high > p.low {
                ends.insert((t.topic.clone(), p.id), p.high);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(JobError::Output(format!(
                "tables not read to the end after 120 s; still waiting for {:?}",
                ends.keys().collect::<Vec<_>>()
            )));
        }
        for rec in consumer.poll(10_000, Duration::from_millis(100))? {
            let key = (rec.topic.clone(), rec.partition);
            if ends.get(&key).is_some_and(|end| rec.offset + 1 >= *end) {
                ends.remove(&key);
            }
            read(&rec);
            if let Err(reason) = apply_table_record(tables, state, &rec) {
                rejected(&rec, reason);
            }
        }
    }
    Ok(())
}

/// Applies one table record (an upsert, or a tombstone); Err is the reason
/// it cannot be used.
pub(crate) fn apply_table_record(
    tables: &[Table],
    state: &mut [TableState],
    rec: &Record,
) -> Result<(), String> {
    let Some(t) = tables.iter().position(|t| t.topic == rec.topic) else {
        return Ok(());
    };
    let table = &tables[t];
    if let Some(changes) = &table.changes {
        // Debezium follows each delete with a tombstone (for compaction):
        // the delete has already ended the row.
        let Some(value) = rec.value.as_deref() else {
            return Ok(());
        };
        let change = changes
            .decode(value)
            .map_err(|reason| format!("table `{}`: {reason}", rec.topic))?;
        state[t].upsert(change.key, change.valid_from, change.row);
        return Ok(());
    }
    if rec.value.is_none() {
        if let Some(key) = rec
            .key
            .as_deref()
            .and_then(|k| table.decoder.key_from_bytes(k))
        {
            state[t].upsert(key, rec.timestamp_ms, None);
        }
        return Ok(());
    }
    let row = table
        .decoder
        .decode(rec)
        .map_err(|reason| format!("table `{}`: {reason}", rec.topic))?;
    let valid_from = row.ts.unwrap_or(rec.timestamp_ms);
    state[t].upsert(row.key, valid_from, Some(row.columns));
    Ok(())
}

/// Decodes a record of source `s` into an event; Err is why it cannot be
/// one.
pub(crate) fn decode_event(source: &Source, s: usize, rec: &Record) -> Result<Row, String> {
    let d = source.decoder.decode(rec)?;
    match d.ts {
        Some(ts) => Ok(Row {
            ts,
            source: s,
            offset: rec.offset,
            key: d.key,
            columns: d.columns,
        }),
        None => Err("no event time".to_string()),
    }
}
