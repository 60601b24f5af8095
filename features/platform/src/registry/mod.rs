//! A Confluent-compatible schema registry: client, built-in server, and the
//! store behind the server.
//!
//! Avro records on Kafka carry only a 4-byte schema id; the registry maps ids
//! to schemas and guards which schema changes a subject (usually
//! `<topic>-value`) accepts. eddy speaks the Confluent REST API both ways:
//! - [`client::HttpRegistry`] talks to any compatible registry (Confluent,
//!   Karapace, Redpanda, Apicurio's ccompat API, or `eddy registry serve`).
//! - [`store::SchemaStore`] is a registry kept in a compacted `_schemas` topic
//!   (the same record layout Confluent uses), so it survives restarts and runs
//!   on either topic backend. It is used in-process in embedded mode and
//!   behind [`server`] for `eddy registry serve`.
//!
//! Both implement [`SchemaRegistry`], which is all the Avro codec needs.

pub mod client;
pub mod compat;
pub mod server;
pub mod store;

#[cfg(test)]
mod tests;

pub use compat::CompatibilityLevel;

use serde::{Deserialize, Serialize};

use crate::topic::{Blame, TopicError};

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredSchema {
    /// Subject name.
    pub subject: String,
    /// Version within the subject, from 1.
    pub version: i32,
    /// Global schema id (what goes into the wire format).
    pub id: u32,
    /// The schema, as JSON text.
    pub schema: String,
}

/// What the Avro codec and the CLI need from a registry.
pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` (Avro JSON) under `subject` and returns its id. An
    /// identical schema that is already registered returns its existing id.
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError>;
    /// The schema text with this id.
    fn schema_by_id(&self, id: u32) -> Result<String, RegistryError>;
    /// The latest live version of a subject.
    fn latest(&self, subject: &str) -> Result<RegisteredSchema, RegistryError>;
    /// All live subjects, sorted.
    fn subjects(&self) -> Result<Vec<String>, RegistryError>;
}

/// Registry errors. The Confluent ones carry Confluent's error codes, which
/// real clients parse; see [`RegistryError::error_code`].
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {version} not found.")]
    VersionNotFound {
        /// Subject.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// 40404.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406.
    #[error(
        "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted {
        /// Subject.
        subject: String,
        /// Version.
        version: i32,
    },
    /// 40407.
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted {
        /// Subject.
        subject: String,
        /// Version.
        version: i32,
    },
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// 42203.
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive (got `{0}`)"
    )]
    InvalidCompatibilityLevel(String),
    /// 409: the schema breaks the subject's compatibility rule.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible {
        /// Subject.
        subject: String,
        /// Why, one entry per failed check.
        messages: Vec<String>,
    },
    /// An error answer from a remote registry that is none of the above.
    #[error("schema registry answered HTTP {status} (error code {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Confluent error code.
        code: u32,
        /// Message from the registry.
        message: String,
    },
    /// The remote registry could not be reached.
    #[error(
        "could not reach the schema registry at {url}: {detail}; check --registry / EDDY_REGISTRY and that it is running"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The `_schemas` topic could not be read or written (50001).
    #[error("schema store: {0}")]
    Store(#[from] TopicError),
}

impl RegistryError {
    /// Confluent's error code for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel(_) => 42203,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::Api { code, .. } => *code,
            RegistryError::Unreachable { .. } => 50003,
            RegistryError::Store(_) => 50001,
        }
    }

    /// The HTTP status Confluent answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            RegistryError::Api { status, .. } => *status,
            RegistryError::Unreachable { .. } | RegistryError::Store(_) => 500,
            other => match other.error_code() {
                409 => 409,
                code => (code / 100) as u16,
            },
        }
    }

    /// Builds the error a remote registry described, mapping known codes
    /// back to their variants so callers can match on them.
    pub fn from_api(status: u16, code: u32, message: String) -> Self {
        match code {
            40401 => RegistryError::SubjectNotFound(message),
            40403 => RegistryError::SchemaNotFound(message),
            42201 => RegistryError::InvalidSchema(message),
            409 => RegistryError::Incompatible {
                subject: String::new(),
                messages: vec![message],
            },
            _ => RegistryError::Api {
                status,
                code,
                message,
            },
        }
    }

    /// Who has to act.
    pub fn blame(&self) -> Blame {
        match self {
            RegistryError::Unreachable { .. } => Blame::Environment,
            RegistryError::Store(e) => e.blame(),
            RegistryError::Api { status, .. } if *status >= 500 => Blame::Environment,
            _ => Blame::User,
        }
    }
}

/// Confluent's JSON error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Confluent error code.
    pub error_code: u32,
    /// Human-readable message.
    pub message: String,
}

/// The subject name of a topic's record values (Confluent's
/// TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}
