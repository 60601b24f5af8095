//! The registry's state and its log format: what `_schemas` records look
//! like, and how they fold into the in-memory state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::VersionSpec;
use crate::registry::{CompatibilityLevel, RegistryError};

#[derive(Debug, Clone)]
pub(super) struct StoredSchema {
    /// Compact JSON text, as served.
    pub(super) text: String,
    /// `None` when the text is not an Avro schema eddy can parse (for
    /// example a schema of another type in a shared `_schemas` topic).
    pub(super) parsed: Option<Arc<Schema>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct VersionEntry {
    pub(super) id: u32,
    pub(super) deleted: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) next_id: u32,
    pub(super) schemas: HashMap<u32, StoredSchema>,
    pub(super) by_fingerprint: HashMap<String, u32>,
    pub(super) fingerprints: HashMap<u32, String>,
    pub(super) subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    pub(super) global: Option<CompatibilityLevel>,
    pub(super) subject_levels: HashMap<String, CompatibilityLevel>,
}

impl State {
    /// The level that applies to `subject`: its own, else the global one,
    /// else BACKWARD.
    pub(super) fn level_for(&self, subject: &str) -> CompatibilityLevel {
        self.subject_levels
            .get(subject)
            .or(self.global.as_ref())
            .copied()
            .unwrap_or_default()
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct SchemaKey<'a> {
    keytype: &'a str,
    subject: &'a str,
    version: i32,
    magic: u8,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SchemaValue {
    pub(super) subject: String,
    pub(super) version: i32,
    pub(super) id: u32,
    pub(super) schema: String,
    pub(super) deleted: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ConfigKey<'a> {
    keytype: &'a str,
    subject: Option<&'a str>,
    magic: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigValue {
    pub(super) compatibility_level: CompatibilityLevel,
}

#[derive(Serialize, Deserialize)]
pub(super) struct IdValue {
    pub(super) next_id: u32,
}

pub(super) const ID_KEY: &str = r#"{"keytype":"EDDY_ID","magic":0}"#;

pub(super) fn schema_key(subject: &str, version: i32) -> Vec<u8> {
    serde_json::to_vec(&SchemaKey {
        keytype: "SCHEMA",
        subject,
        version,
        magic: 1,
    })
    .expect("key serializes")
}

pub(super) fn config_key(subject: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&ConfigKey {
        keytype: "CONFIG",
        subject,
        magic: 0,
    })
    .expect("key serializes")
}

/// Canonical text used to decide whether two schemas are "the same":
/// object keys sorted, docs dropped, no whitespace.
pub(super) fn fingerprint(json: &Json) -> String {
    fn norm(v: &Json) -> Json {
        match v {
            Json::Object(m) => {
                let mut keys: Vec<&String> = m.keys().filter(|k| k.as_str() != "doc").collect();
                keys.sort();
                Json::Object(keys.into_iter().map(|k| (k.clone(), norm(&m[k]))).collect())
            }
            Json::Array(a) => Json::Array(a.iter().map(norm).collect()),
            other => other.clone(),
        }
    }
    norm(json).to_string()
}

/// A parsed, validated schema ready to be stored.
pub(super) struct Candidate {
    pub(super) text: String,
    pub(super) fingerprint: String,
    pub(super) parsed: Arc<Schema>,
}

pub(super) fn parse_candidate(text: &str) -> Result<Candidate, RegistryError> {
    let json: Json = serde_json::from_str(text)
        .map_err(|e| RegistryError::InvalidSchema(format!("not JSON: {e}")))?;
    let parsed = Schema::parse(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok(Candidate {
        text: json.to_string(),
        fingerprint: fingerprint(&json),
        parsed: Arc::new(parsed),
    })
}

pub(super) fn live_subject<'s>(
    state: &'s State,
    subject: &str,
    include_deleted: bool,
) -> Result<&'s BTreeMap<i32, VersionEntry>, RegistryError> {
    state
        .subjects
        .get(subject)
        .filter(|v| v.values().any(|e| include_deleted || !e.deleted))
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))
}

pub(super) fn resolve_version(
    state: &State,
    subject: &str,
    spec: VersionSpec,
    include_deleted: bool,
) -> Result<(i32, VersionEntry), RegistryError> {
    let versions = live_subject(state, subject, include_deleted)?;
    let not_found = |v: String| RegistryError::VersionNotFound {
        subject: subject.into(),
        version: v,
    };
    match spec {
        VersionSpec::Latest => versions
            .iter()
            .rev()
            .find(|(_, e)| include_deleted || !e.deleted)
            .map(|(v, e)| (*v, *e))
            .ok_or_else(|| not_found("latest".into())),
        VersionSpec::Number(n) => match versions.get(&n) {
            Some(e) if include_deleted || !e.deleted => Ok((n, *e)),
            _ => Err(not_found(n.to_string())),
        },
    }
}

/// Folds one `_schemas` record into the state. Unknown key types (Confluent
/// writes NOOP and DELETE_SUBJECT records too) are skipped.
pub(super) fn apply(state: &mut State, key: &[u8], value: Option<&[u8]>) {
    let Ok(key) = serde_json::from_slice::<Json>(key) else {
        tracing::warn!("schema store: skipping a record whose key is not JSON");
        return;
    };
    match key.get("keytype").and_then(Json::as_str) {
        Some("SCHEMA") => {
            let (Some(subject), Some(version)) = (
                key.get("subject").and_then(Json::as_str),
                key.get("version").and_then(Json::as_i64),
            ) else {
                return;
            };
            let version = version as i32;
            match value.map(serde_json::from_slice::<SchemaValue>) {
                Some(Ok(v)) => {
                    if !state.schemas.contains_key(&v.id) {
                        let json: Option<Json> = serde_json::from_str(&v.schema).ok();
                        let parsed = json
                            .as_ref()
                            .and_then(|j| Schema::parse(j).ok())
                            .map(Arc::new);
                        let fp = json.as_ref().map_or_else(|| v.schema.clone(), fingerprint);
                        state.by_fingerprint.entry(fp.clone()).or_insert(v.id);
                        state.fingerprints.insert(v.id, fp);
                        state.schemas.insert(
                            v.id,
                            StoredSchema {
                                text: v.schema.clone(),
                                parsed,
                            },
                        );
                    }
                    state.next_id = state.next_id.max(v.id + 1);
                    state.subjects.entry(v.subject).or_default().insert(
                        v.version,
                        VersionEntry {
                            id: v.id,
                            deleted: v.deleted,
                        },
                    );
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "schema store: skipping an unreadable SCHEMA record")
                }
                None => {
                    if let Some(versions) = state.subjects.get_mut(subject) {
                        versions.remove(&version);
                        if versions.is_empty() {
                            state.subjects.remove(subject);
                        }
                    }
                }
            }
        }
        Some("CONFIG") => {
            let subject = key
                .get("subject")
                .and_then(Json::as_str)
                .map(str::to_string);
            let level = value
                .and_then(|v| serde_json::from_slice::<ConfigValue>(v).ok())
                .map(|c| c.compatibility_level);
            match (subject, level) {
                (None, l) => state.global = l,
                (Some(s), Some(l)) => {
                    state.subject_levels.insert(s, l);
                }
                (Some(s), None) => {
                    state.subject_levels.remove(&s);
                }
            }
        }
        Some("EDDY_ID") => {
            if let Some(v) = value.and_then(|v| serde_json::from_slice::<IdValue>(v).ok()) {
                state.next_id = state.next_id.max(v.next_id);
            }
        }
        _ => {}
    }
}
