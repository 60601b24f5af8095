//! Real-time recommendation serving: events in, ranked recommendations out
//! onto a topic.
//!
//! Personalization services consume recommendations from a topic; nothing
//! is scored in batch. `eddy serve SPEC` runs [`service::Service`]:
//!
//! - **Triggers**: the user's activity events (the spec's `serving.trigger`
//!   source) and explicit requests (`serving.requests`, Avro records with
//!   `request_id`, `user_id` and optional `k`). A request that cannot be
//!   read goes to `<topic>.dlq` with the reason.
//! - **State it follows**: the models topic (the learner's deltas and
//!   snapshots, applied between requests: [`models`]), the feature topics
//!   (materialized locally: [`features`]) and the item table the business
//!   rules read ([`rules`]).
//! - **One recommendation** ([`engine`]): candidates from the recommenders,
//!   ranked by the FTRL model, filtered, optionally explored.
//! - **Output**: an Avro record on the recommendations topic
//!   ([`record::RECOMMENDATION_SCHEMA`], registered as `<topic>-value`),
//!   with lineage headers.
//! - **HTTP**: `GET /v1/recommendations/{user}?k=`, `GET
//!   /v1/features/{view}/{key}`, `/metrics`, `/healthz` ([`http`]).
//! - **Co-located** ([`colocated`]): `eddy run --serve` runs the same
//!   service inside the pipeline's process, reading features through the
//!   job's read API and taking models straight from the learner.
//! - **The freshness lift** ([`freshness`]): `eddy evaluate` replays
//!   history and compares recommenders updated on every event with the
//!   same recommenders rebuilt once a day.

#![warn(missing_docs)]

pub mod colocated;
pub mod engine;
pub mod features;
pub mod freshness;
pub mod http;
pub mod metrics;
pub mod models;
pub mod plan;
pub mod record;
pub mod rules;
pub mod service;

/// Why serving could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    /// A spec problem.
    Spec(#[from] eddy_features::spec::SpecError),
    #[error(transparent)]
    /// A topic could not be read or written.
    Topic(#[from] eddy_features::topic::TopicError),
    #[error("registry: {0}")]
    /// The schema registry failed.
    Registry(#[from] eddy_features::registry::RegistryError),
    #[error("{0}")]
    /// A record could not be encoded or decoded.
    Avro(#[from] eddy_features::avro::AvroError),
    #[error(transparent)]
    /// A feature topic does not fit its view.
    Features(#[from] features::FeatureTableError),
    #[error(
        "the spec has no `serving:` section: add one naming the trigger source or requests topic and the candidate models (README, \"Serving\")"
    )]
    /// The spec has no `serving:` section.
    NoServing,
    #[error("{0}")]
    /// A setting cannot work (an address, a rule, a missing schema).
    Setup(String),
    /// Something outside eddy failed while starting: the registry could
    /// not be asked, a thread could not start.
    #[error("{0}")]
    Environment(String),
}

impl ServeError {
    /// Who must act, kept from the error that caused it.
    pub fn blame(&self) -> eddy_features::topic::Blame {
        match self {
            ServeError::Spec(e) => e.blame(),
            ServeError::Topic(e) => e.blame(),
            ServeError::Registry(e) => e.blame(),
            ServeError::Avro(e) => e.blame(),
            ServeError::Features(e) => e.blame(),
            ServeError::NoServing | ServeError::Setup(_) => eddy_features::topic::Blame::User,
            ServeError::Environment(_) => eddy_features::topic::Blame::Environment,
        }
    }
}
