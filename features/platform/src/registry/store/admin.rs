//! Deleting subjects and versions, and the compatibility levels: the
//! registry's administrative operations, each one record on `_schemas`
//! written after catching up with the topic.

use super::state::*;
use super::*;

impl SchemaStore {
    /// Deletes a subject (soft, or permanently after a soft delete). Returns
    /// the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let mut inner = self.synced()?;
        let versions = inner
            .state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        let any_live = versions.values().any(|e| !e.deleted);
        let mut records = Vec::new();
        let mut deleted = Vec::new();
        if permanent {
            if any_live {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.into()));
            }
            for v in versions.keys() {
                records.push((schema_key(subject, *v), None));
                deleted.push(*v);
            }
        } else {
            if !any_live {
                return Err(RegistryError::SubjectSoftDeleted(subject.into()));
            }
            for (v, e) in versions.iter().filter(|(_, e)| !e.deleted) {
                let text = inner.state.schemas[&e.id].text.clone();
                let value = SchemaValue {
                    subject: subject.into(),
                    version: *v,
                    id: e.id,
                    schema: text,
                    deleted: true,
                };
                records.push((
                    schema_key(subject, *v),
                    Some(serde_json::to_vec(&value).expect("ser")),
                ));
                deleted.push(*v);
            }
        }
        self.write(&mut inner, records)?;
        Ok(deleted)
    }

    /// Deletes one version (soft, or permanently after a soft delete).
    pub fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let mut inner = self.synced()?;
        let (version, entry) = resolve_version(&inner.state, subject, spec, permanent)?;
        let record = if permanent {
            if !entry.deleted {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.into(),
                    version,
                });
            }
            (schema_key(subject, version), None)
        } else {
            if entry.deleted {
                return Err(RegistryError::VersionSoftDeleted {
                    subject: subject.into(),
                    version,
                });
            }
            let text = inner.state.schemas[&entry.id].text.clone();
            let value = SchemaValue {
                subject: subject.into(),
                version,
                id: entry.id,
                schema: text,
                deleted: true,
            };
            (
                schema_key(subject, version),
                Some(serde_json::to_vec(&value).expect("ser")),
            )
        };
        self.write(&mut inner, vec![record])?;
        Ok(version)
    }

    /// The compatibility level of a subject (`None`: the global one).
    pub fn level(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let inner = self.recent()?;
        let global = inner.state.global.unwrap_or_default();
        match subject {
            None => Ok(global),
            Some(s) => match inner.state.subject_levels.get(s) {
                Some(l) => Ok(*l),
                None if default_to_global => Ok(global),
                None => Err(RegistryError::SubjectCompatibilityNotConfigured(s.into())),
            },
        }
    }

    /// Sets the compatibility level of a subject (`None`: the global one).
    pub fn set_level(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let mut inner = self.synced()?;
        let value = serde_json::to_vec(&ConfigValue {
            compatibility_level: level,
        })
        .expect("ser");
        self.write(&mut inner, vec![(config_key(subject), Some(value))])?;
        Ok(level)
    }

    /// Removes a subject's own level (it falls back to the global one) and
    /// returns the level it had.
    pub fn delete_level(&self, subject: &str) -> Result<CompatibilityLevel, RegistryError> {
        let mut inner = self.synced()?;
        let Some(previous) = inner.state.subject_levels.get(subject).copied() else {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        };
        self.write(&mut inner, vec![(config_key(Some(subject)), None)])?;
        Ok(previous)
    }

    /// Checks `text` against one version (`Some`) or against what the
    /// subject's level requires (`None`). Returns the reasons it fails.
    pub fn check_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        text: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let candidate = parse_candidate(text)?;
        let inner = self.recent()?;
        let state = &inner.state;
        let level = state.level_for(subject);
        let parsed = |id: u32| state.schemas.get(&id).and_then(|s| s.parsed.clone());
        let against: Vec<(i32, Arc<Schema>)> = match spec {
            Some(spec) => {
                let (v, e) = resolve_version(state, subject, spec, false)?;
                parsed(e.id).map(|s| (v, s)).into_iter().collect()
            }
            None => live_subject(state, subject, false)?
                .iter()
                .filter(|(_, e)| !e.deleted)
                .filter_map(|(v, e)| parsed(e.id).map(|s| (*v, s)))
                .collect(),
        };
        let refs: Vec<(i32, &Schema)> = against.iter().map(|(v, s)| (*v, s.as_ref())).collect();
        // One named version is checked against that version alone, in the
        // level's direction(s), as Confluent does.
        let level = match (spec, level) {
            (Some(_), CompatibilityLevel::BackwardTransitive) => CompatibilityLevel::Backward,
            (Some(_), CompatibilityLevel::ForwardTransitive) => CompatibilityLevel::Forward,
            (Some(_), CompatibilityLevel::FullTransitive) => CompatibilityLevel::Full,
            (_, l) => l,
        };
        Ok(level.check(&candidate.parsed, &refs))
    }
}
