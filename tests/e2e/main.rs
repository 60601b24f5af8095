//! End-to-end tests of the `eddy` binary: one test binary (one link) with a
//! module per area. Kafka, Python and kcat tests need the services that
//! `tests/run` starts; without them they say so and pass, unless
//! `EDDY_REQUIRE_EXTERNAL=1` (CI), where they fail.

mod support;

mod backfill;
mod cdc;
mod cli_kafka;
mod cli_local;
mod clickstream;
mod datasets;
mod faults;
mod interop_confluent;
mod interop_kcat;
mod learn;
mod models;
mod notebooks;
mod online_store;
mod pipeline;
mod quickstart;
mod rekey;
mod rekey_models;
mod serving;
mod serving_items;
mod storage;
mod table_history;
