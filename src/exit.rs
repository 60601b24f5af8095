//! Exit codes. Each kind of failure has its own code, so scripts can react
//! to it; `eddy --help` and the README list them.

use eddy_features::avro::AvroError;
use eddy_features::engine::job::{CheckpointError, JobError};
use eddy_features::registry::RegistryError;
use eddy_features::store::StoreError;
use eddy_features::topic::{Blame, TopicError};
use eddy_serving::ServeError;
use eddy_training::lifecycle::LifecycleError;
use eddy_training::online::OnlineError;

/// The exit codes, documented in the README and in `eddy --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Unexpected failure (a bug, corruption, or an unclassified error).
    Internal = 1,
    /// Bad command line or configuration (clap also uses 2).
    Usage = 2,
    /// A topic does not exist.
    UnknownTopic = 3,
    /// A broker or the schema registry could not be reached in time.
    Unreachable = 4,
    /// The schema registry rejected a schema as incompatible (HTTP 409).
    IncompatibleSchema = 5,
    /// Input data does not match its schema, or is not valid JSON.
    InvalidInput = 6,
    /// Records could not be decoded (wrong magic byte, unknown schema id,
    /// truncated Avro).
    UndecodableRecord = 7,
    /// The schema itself is invalid.
    InvalidSchema = 8,
    /// Another process writes the local log (or a file-system error).
    LocalLog = 9,
    /// A check ran and found a difference (`eddy consistency`).
    CheckFailed = 10,
    /// Data that must be read is missing or damaged: a damaged local-log
    /// segment, missing offsets, a checkpoint past its source's end or
    /// behind its retention, a task whose every checkpoint is damaged.
    /// eddy stopped rather than skip it.
    DataLost = 11,
}

/// A failure the CLI raises itself, carrying its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code.
    pub code: ExitCode,
    /// What happened and what to do.
    pub message: String,
}

impl CliError {
    /// The error, ready to return from a command.
    pub fn fail(code: ExitCode, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(CliError {
            code,
            message: message.into(),
        })
    }
}

fn topic_code(e: &TopicError) -> ExitCode {
    match e {
        TopicError::UnknownTopic(_) => ExitCode::UnknownTopic,
        TopicError::BrokerUnreachable { .. } | TopicError::Timeout { .. } => ExitCode::Unreachable,
        TopicError::Locked { .. } | TopicError::Io { .. } => ExitCode::LocalLog,
        TopicError::Corrupt { .. } | TopicError::Missing { .. } => ExitCode::DataLost,
        TopicError::InvalidRecord { .. } => ExitCode::InvalidInput,
        _ => match e.blame() {
            Blame::User => ExitCode::Usage,
            Blame::Environment => ExitCode::Unreachable,
            Blame::Internal => ExitCode::Internal,
        },
    }
}

fn registry_code(e: &RegistryError) -> ExitCode {
    match e {
        RegistryError::Incompatible { .. } => ExitCode::IncompatibleSchema,
        RegistryError::InvalidSchema(_) => ExitCode::InvalidSchema,
        RegistryError::Unreachable { .. } => ExitCode::Unreachable,
        RegistryError::Store(t) => topic_code(t),
        RegistryError::SchemaNotFound(_) => ExitCode::UndecodableRecord,
        _ => match e.blame() {
            Blame::User => ExitCode::Usage,
            Blame::Environment => ExitCode::Unreachable,
            Blame::Internal => ExitCode::Internal,
        },
    }
}

/// The code of an error known only by who must act.
fn blame_code(blame: Blame) -> ExitCode {
    match blame {
        Blame::User => ExitCode::Usage,
        Blame::Environment => ExitCode::Unreachable,
        Blame::Internal => ExitCode::Internal,
    }
}

/// A job error's code, where the job knows it (`transparent` variants do
/// not show their inner error in the chain, so they are unwrapped here).
fn job_code(e: &JobError) -> Option<ExitCode> {
    Some(match e {
        JobError::Learners(l) => {
            let inner = l.source.as_ref();
            if let Some(t) = inner.downcast_ref::<TopicError>() {
                topic_code(t)
            } else if let Some(s) = inner.downcast_ref::<StoreError>() {
                store_code(s)
            } else {
                blame_code(l.blame())
            }
        }
        JobError::Topic(t) => topic_code(t),
        JobError::Registry(r) => registry_code(r),
        JobError::Avro(a) => avro_code(a),
        JobError::PositionLost { .. } | JobError::HistoryGap(_) => ExitCode::DataLost,
        JobError::Checkpoint(CheckpointError::Corrupt { .. }) => ExitCode::DataLost,
        JobError::Store(e) | JobError::Checkpoint(CheckpointError::Store(e)) => store_code(e),
        JobError::Checkpoint(CheckpointError::SpecChanged { .. }) => ExitCode::Usage,
        JobError::Spec(_)
        | JobError::Options(_)
        | JobError::NotCoPartitioned { .. }
        | JobError::StoreMismatch(_) => ExitCode::Usage,
        // Redis or PostgreSQL did not answer, or failed a write.
        JobError::OnlineStore { .. } => ExitCode::Unreachable,
        _ => return None,
    })
}

/// Object storage: a URL, credentials, a bucket or a permission is the
/// user's to fix (2); an endpoint that does not answer is the
/// environment's (4).
fn store_code(e: &StoreError) -> ExitCode {
    match e.blame() {
        Blame::User => ExitCode::Usage,
        _ => ExitCode::Unreachable,
    }
}

fn avro_code(e: &AvroError) -> ExitCode {
    match e {
        AvroError::Registry(r) => registry_code(r),
        AvroError::Json(_) | AvroError::Encode(_) => ExitCode::InvalidInput,
        AvroError::InvalidSchema(_) => ExitCode::InvalidSchema,
        AvroError::Resolution(_) => ExitCode::IncompatibleSchema,
        _ => ExitCode::UndecodableRecord,
    }
}

/// The exit code for an error: the first classified error in its chain.
pub fn code_for(e: &anyhow::Error) -> ExitCode {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.code;
        }
        if let Some(t) = cause.downcast_ref::<TopicError>() {
            return topic_code(t);
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_code(e);
        }
        if let Some(j) = cause.downcast_ref::<JobError>()
            && let Some(code) = job_code(j)
        {
            return code;
        }
        if let Some(r) = cause.downcast_ref::<RegistryError>() {
            return registry_code(r);
        }
        if let Some(a) = cause.downcast_ref::<AvroError>() {
            return avro_code(a);
        }
        if let Some(e) = cause.downcast_ref::<ServeError>() {
            return serve_code(e);
        }
        if let Some(e) = cause.downcast_ref::<OnlineError>() {
            return online_code(e);
        }
        if let Some(e) = cause.downcast_ref::<LifecycleError>() {
            return lifecycle_code(e);
        }
    }
    ExitCode::Internal
}

/// Serving: its `transparent` variants are unwrapped, as the job's are.
fn serve_code(e: &ServeError) -> ExitCode {
    match e {
        ServeError::Topic(t) => topic_code(t),
        ServeError::Registry(r) => registry_code(r),
        ServeError::Avro(a) => avro_code(a),
        other => blame_code(other.blame()),
    }
}

fn online_code(e: &OnlineError) -> ExitCode {
    match e {
        OnlineError::Lifecycle(l) => lifecycle_code(l),
        OnlineError::Topic(t) => topic_code(t),
        other => blame_code(other.blame()),
    }
}

fn lifecycle_code(e: &LifecycleError) -> ExitCode {
    match e {
        LifecycleError::Topic(t) => topic_code(t),
        LifecycleError::Store(s) => store_code(s),
        // A model snapshot that does not read: reported as unexpected.
        LifecycleError::Model(_) => ExitCode::Internal,
    }
}

/// The error and its causes on one line.
pub fn describe(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The table printed by `eddy --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  unexpected failure (a bug or corruption: please report it)
  2  bad command line or configuration
  3  a topic does not exist
  4  a broker or the schema registry could not be reached in time
  5  the schema registry rejected an incompatible schema (HTTP 409)
  6  input does not match its schema, or is not valid JSON
  7  records could not be decoded (wrong magic byte, unknown schema id, truncated Avro)
  8  the schema is not a valid Avro schema
  9  the local log is locked by another process, or a file-system error
  10 a check found a difference (eddy consistency)
  11 data that must be read is missing or damaged (eddy stopped rather than skip it)";
