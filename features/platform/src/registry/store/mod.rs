//! The registry's state, kept in a compacted topic.
//!
//! Every change is a record on `_schemas` (one partition, compacted), with
//! the key and value layout Confluent's registry uses:
//!
//! ```text
//! key   {"keytype":"SCHEMA","subject":"ratings-value","version":1,"magic":1}
//! value {"subject":"ratings-value","version":1,"id":1,"schema":"...","deleted":false}
//! key   {"keytype":"CONFIG","subject":null,"magic":0}      (null subject = global)
//! value {"compatibilityLevel":"BACKWARD"}
//! ```
//!
//! A hard delete writes a tombstone for the version's key. One eddy-specific
//! record, `{"keytype":"EDDY_ID","magic":0}` -> `{"next_id":N}`, remembers the
//! next schema id, so ids are never reused even after hard deletes and
//! compaction removed the records that used them.
//!
//! The state in memory is a fold over that log (see `state`). Before every
//! change, and before a read when the last catch-up is more than
//! [`READ_STALENESS`] old, the store reads the topic up to its end, so
//! several processes sharing a topic (for example two `eddy registry serve`
//! on one Kafka cluster) see each other's changes. A schema id that is not
//! found forces a catch-up, so a decoder never misses an id that exists.
//! Writes are not coordinated between processes: run one writing registry
//! per `_schemas` topic, as Confluent does with its leader.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use apache_avro::Schema;

mod admin;
mod state;

use self::state::{
    ID_KEY, IdValue, SchemaValue, State, apply, live_subject, parse_candidate, resolve_version,
    schema_key,
};
use super::{CompatibilityLevel, RegisteredSchema, RegistryError, SchemaRegistry};
use crate::topic::{
    Backend, Consumer, Producer, ProducerRecord, StartOffset, TopicError, TopicSpec,
};

/// How old a catch-up may be for a read to skip the next one. Catching up
/// costs a high-watermark lookup (a fetch round trip on Kafka).
pub const READ_STALENESS: Duration = Duration::from_secs(1);

/// The default topic, as in Confluent.
pub const DEFAULT_TOPIC: &str = "_schemas";

/// Which version of a subject an operation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest live version.
    Latest,
    /// This version number.
    Number(i32),
}

impl VersionSpec {
    /// Parses a path segment: `latest`, `-1` (latest) or a positive number.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        match s {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            n => match n.parse::<i32>() {
                Ok(v) if v >= 1 => Ok(VersionSpec::Number(v)),
                _ => Err(RegistryError::InvalidVersion(s.to_string())),
            },
        }
    }
}

struct Inner {
    state: State,
    consumer: Box<dyn Consumer>,
    producer: Option<Box<dyn Producer>>,
    /// Next offset of the topic to fold into `state`.
    position: i64,
    /// When `state` last caught up with the topic's end.
    synced_at: Option<Instant>,
}

/// A schema registry kept in a compacted topic.
pub struct SchemaStore {
    backend: Arc<dyn Backend>,
    topic: String,
    timeout: Duration,
    inner: Mutex<Inner>,
}

impl SchemaStore {
    /// Opens the store on `topic` (created, compacted, if missing) and reads
    /// it to the end.
    pub fn open(backend: Arc<dyn Backend>, topic: &str) -> Result<Self, RegistryError> {
        backend.ensure_topic(&TopicSpec::new(topic).compacted())?;
        let mut consumer = backend.consumer(None)?;
        consumer.assign(topic, &[(0, StartOffset::Earliest)])?;
        let store = SchemaStore {
            backend,
            topic: topic.to_string(),
            timeout: Duration::from_secs(30),
            inner: Mutex::new(Inner {
                state: State::default(),
                consumer,
                producer: None,
                position: 0,
                synced_at: None,
            }),
        };
        drop(store.synced()?);
        Ok(store)
    }

    /// Locks the state for a read: caught up unless it did so within
    /// [`READ_STALENESS`].
    fn recent(&self) -> Result<MutexGuard<'_, Inner>, RegistryError> {
        {
            let inner = self.inner.lock().expect("poisoned");
            if inner
                .synced_at
                .is_some_and(|t| t.elapsed() < READ_STALENESS)
            {
                return Ok(inner);
            }
        }
        self.synced()
    }

    /// Locks the state after folding in everything written to the topic so far.
    fn synced(&self) -> Result<MutexGuard<'_, Inner>, RegistryError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let started = Instant::now();
        let description = self.backend.describe_topic(&self.topic)?;
        let high = match description.partitions.iter().find(|p| p.id == 0) {
            Some(p) => p.high,
            None => {
                return Err(TopicError::Config(format!(
                    "the schema topic `{}` has no partition 0",
                    self.topic
                ))
                .into());
            }
        };
        let deadline = Instant::now() + self.timeout;
        let mut last_progress = Instant::now();
        while inner.position < high {
            let records = inner.consumer.poll(1000, Duration::from_millis(100))?;
            if records.is_empty() {
                // Compaction can remove the records just below the high
                // watermark (an expired tombstone); stop waiting for them.
                if last_progress.elapsed() > Duration::from_secs(2) && inner.position > 0 {
                    tracing::debug!(
                        position = inner.position,
                        high,
                        "schema store: treating the rest as compacted away"
                    );
                    break;
                }
                if Instant::now() > deadline {
                    return Err(TopicError::Timeout {
                        what: format!("reading `{}`", self.topic),
                        after: self.timeout,
                    }
                    .into());
                }
                continue;
            }
            last_progress = Instant::now();
            for r in records {
                inner.position = r.offset + 1;
                if let Some(key) = &r.key {
                    apply(&mut inner.state, key, r.value.as_deref());
                }
            }
        }
        inner.synced_at = Some(started);
        Ok(inner)
    }

    /// Writes records and folds them into the state.
    fn write(
        &self,
        inner: &mut Inner,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), RegistryError> {
        if inner.producer.is_none() {
            inner.producer = Some(self.backend.producer()?);
        }
        let producer = inner.producer.as_mut().expect("set above");
        for (key, value) in &records {
            producer.send(ProducerRecord {
                topic: self.topic.clone(),
                partition: Some(0),
                key: Some(key.clone()),
                value: value.clone(),
                ..Default::default()
            })?;
        }
        producer.flush()?;
        // Our own records come back through the consumer on the next sync;
        // applying them now as well is harmless (the fold is idempotent).
        for (key, value) in &records {
            apply(&mut inner.state, key, value.as_deref());
        }
        Ok(())
    }

    /// Registers a schema; see [`SchemaRegistry::register`].
    pub fn register_schema(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<RegisteredSchema, RegistryError> {
        if let Some(t) = schema_type
            && !t.eq_ignore_ascii_case("AVRO")
        {
            return Err(RegistryError::InvalidSchema(format!(
                "schema type {t} is not supported; eddy's registry stores AVRO schemas"
            )));
        }
        let candidate = parse_candidate(text)?;
        let mut inner = self.synced()?;
        let state = &inner.state;
        let versions = state.subjects.get(subject);
        if let Some(versions) = versions {
            for (&version, entry) in versions.iter().filter(|(_, e)| !e.deleted) {
                if state.fingerprints.get(&entry.id) == Some(&candidate.fingerprint) {
                    return Ok(RegisteredSchema {
                        subject: subject.into(),
                        version,
                        id: entry.id,
                        schema: state.schemas[&entry.id].text.clone(),
                    });
                }
            }
        }
        let level = state.level_for(subject);
        let live: Vec<(i32, &Schema)> = versions
            .into_iter()
            .flatten()
            .filter(|(_, e)| !e.deleted)
            .filter_map(|(v, e)| state.schemas.get(&e.id)?.parsed.as_deref().map(|s| (*v, s)))
            .collect();
        let problems = level.check(&candidate.parsed, &live);
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.into(),
                messages: problems,
            });
        }
        let existing_id = state.by_fingerprint.get(&candidate.fingerprint).copied();
        let id = existing_id.unwrap_or(state.next_id.max(1));
        let version = versions
            .and_then(|v| v.keys().next_back().copied())
            .unwrap_or(0)
            + 1;
        let mut records = Vec::new();
        if existing_id.is_none() {
            records.push((
                ID_KEY.as_bytes().to_vec(),
                Some(serde_json::to_vec(&IdValue { next_id: id + 1 }).expect("ser")),
            ));
        }
        let value = SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema: candidate.text.clone(),
            deleted: false,
        };
        records.push((
            schema_key(subject, version),
            Some(serde_json::to_vec(&value).expect("ser")),
        ));
        self.write(&mut inner, records)?;
        Ok(RegisteredSchema {
            subject: subject.into(),
            version,
            id,
            schema: candidate.text,
        })
    }

    /// Finds `text` among a subject's versions.
    pub fn lookup(
        &self,
        subject: &str,
        text: &str,
        include_deleted: bool,
    ) -> Result<RegisteredSchema, RegistryError> {
        let candidate = parse_candidate(text)?;
        let inner = self.recent()?;
        let versions = live_subject(&inner.state, subject, include_deleted)?;
        versions
            .iter()
            .filter(|(_, e)| include_deleted || !e.deleted)
            .find(|(_, e)| inner.state.fingerprints.get(&e.id) == Some(&candidate.fingerprint))
            .map(|(v, e)| RegisteredSchema {
                subject: subject.into(),
                version: *v,
                id: e.id,
                schema: inner.state.schemas[&e.id].text.clone(),
            })
            .ok_or_else(|| RegistryError::SchemaNotFound("not found".into()))
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<RegisteredSchema, RegistryError> {
        let inner = self.recent()?;
        let (version, entry) = resolve_version(&inner.state, subject, spec, include_deleted)?;
        Ok(RegisteredSchema {
            subject: subject.into(),
            version,
            id: entry.id,
            schema: inner.state.schemas[&entry.id].text.clone(),
        })
    }

    /// Version numbers of a subject.
    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let inner = self.recent()?;
        let versions = live_subject(&inner.state, subject, include_deleted)?;
        Ok(versions
            .iter()
            .filter(|(_, e)| include_deleted || !e.deleted)
            .map(|(v, _)| *v)
            .collect())
    }

    /// Subjects with at least one live version (or any, with `include_deleted`).
    pub fn list_subjects(&self, include_deleted: bool) -> Result<Vec<String>, RegistryError> {
        let inner = self.recent()?;
        Ok(inner
            .state
            .subjects
            .iter()
            .filter(|(_, v)| v.values().any(|e| include_deleted || !e.deleted))
            .map(|(s, _)| s.clone())
            .collect())
    }

    /// The schema with this id, if any version (live or soft-deleted) uses it.
    pub fn by_id(&self, id: u32) -> Result<String, RegistryError> {
        let lookup = |inner: &Inner| {
            let used = inner
                .state
                .subjects
                .values()
                .any(|v| v.values().any(|e| e.id == id));
            inner
                .state
                .schemas
                .get(&id)
                .filter(|_| used)
                .map(|s| s.text.clone())
        };
        if let Some(text) = lookup(&*self.recent()?) {
            return Ok(text);
        }
        // Registered by another process since our last catch-up?
        lookup(&*self.synced()?).ok_or_else(|| RegistryError::SchemaNotFound(format!("{id}")))
    }

    /// Subject-version pairs that use schema `id`.
    pub fn id_versions(&self, id: u32) -> Result<Vec<(String, i32)>, RegistryError> {
        let inner = self.recent()?;
        let pairs: Vec<(String, i32)> = inner
            .state
            .subjects
            .iter()
            .flat_map(|(s, v)| {
                v.iter()
                    .filter(|(_, e)| e.id == id && !e.deleted)
                    .map(move |(n, _)| (s.clone(), *n))
            })
            .collect();
        if pairs.is_empty() {
            return Err(RegistryError::SchemaNotFound(format!("{id}")));
        }
        Ok(pairs)
    }
}

impl SchemaRegistry for SchemaStore {
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        Ok(self.register_schema(subject, schema, None)?.id)
    }

    fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        self.by_id(id)
    }

    fn latest(&self, subject: &str) -> Result<RegisteredSchema, RegistryError> {
        self.version(subject, VersionSpec::Latest, false)
    }

    fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        self.list_subjects(false)
    }
}
