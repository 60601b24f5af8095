//! The eddy feature engine: pipeline specs and the streaming operators that
//! run them, live and over history.
//!
//! - [`spec`]: the pipeline spec, parsed strictly and located (file, line,
//!   key), and planned against the registry's schemas.
//! - [`engine`]: feature views over event streams, joined as of event time
//!   with tables, aggregated over exact windows; jobs, checkpoints,
//!   backfills and training sets.
//!
//! It stands on `eddy-platform` (topics, Avro, the registry, object
//! storage), whose modules it re-exports.

#![warn(missing_docs)]

pub mod engine;
pub mod spec;

// The platform lives in its own crate (`eddy-platform`); its modules are
// re-exported under their old paths, so `eddy_features::topic` and
// `crate::topic` still name them.
pub use eddy_platform::{avro, hash, http, metrics, registry, store, topic};
