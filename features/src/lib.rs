//! The eddy data plane: how records get into and out of topics, and how they
//! are typed.
//!
//! Everything in eddy is a stream, and every table is a topic. This crate holds
//! the pieces that every later stage (feature views, learners, serving,
//! backfills) goes through:
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

pub mod avro;
pub mod engine;
pub mod hash;
pub mod http;
pub mod registry;
pub mod spec;
pub mod store;
pub mod topic;
