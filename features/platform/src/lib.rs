//! The streaming platform under eddy: how records get into and out of
//! topics, how they are typed, and where files live.
//!
//! Everything in eddy is a stream, and every table is a topic. This crate
//! holds what every stage above it (feature views, learners, serving,
//! backfills) goes through, and nothing of those stages: no dataframes, no
//! spec, no engine. A learner or a tool that needs only topics builds
//! without polars.
//!
//! - [`topic`]: one topic API ([`topic::Backend`], [`topic::Producer`],
//!   [`topic::Consumer`]) with two backends, an embedded local log
//!   ([`topic::local`]) and Kafka through librdkafka ([`topic::kafka`]). Code
//!   above the API does not know which one it runs on.
//! - [`avro`]: the Confluent wire format (magic byte, schema id, Avro body),
//!   schema resolution for evolving consumers, and JSON <-> Avro conversion.
//! - [`registry`]: a Confluent-compatible schema registry: an HTTP client for
//!   any compatible registry, and a built-in one that keeps its state in a
//!   compacted `_schemas` topic and serves the Confluent REST API.
//! - [`store`]: object storage behind a URL (local files, S3, GCS, Azure).
//! - [`http`]: the HTTP servers' connection loop (header timeouts).
//! - [`hash`]: MurmurHash3, shared by the learners and the label joiner.

#![warn(missing_docs)]

pub mod avro;
pub mod hash;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod store;
pub mod topic;
