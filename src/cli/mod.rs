//! Command-line definitions. The command and flag names are a contract that
//! users and later features rely on; change them with care.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;

mod bench;
mod datasets;
mod models;
mod pipeline;
mod topics;

pub use bench::*;
pub use datasets::*;
pub use models::*;
pub use pipeline::*;
pub use topics::*;

/// eddy: ML feature pipelines on streams. Everything is a topic.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where topics and schemas live. Without `--brokers`, everything runs on
/// the embedded local log in `--data-dir`.
#[derive(Debug, Args)]
pub struct Global {
    /// Kafka bootstrap servers (host:port,...). Default: none, use the
    /// embedded local log.
    #[arg(long, env = "EDDY_BROKERS", global = true)]
    pub brokers: Option<String>,

    /// Schema registry URL (Confluent-compatible; `https://user:pass@host`
    /// for basic auth). Default: the built-in registry, kept in the
    /// backend's `_schemas` topic.
    #[arg(long, env = "EDDY_REGISTRY", global = true)]
    pub registry: Option<String>,

    /// Directory of the embedded local log. Default `./eddy-data`.
    #[arg(
        long,
        env = "EDDY_DATA_DIR",
        default_value = "eddy-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// A librdkafka property, `key=value` (repeatable): TLS, SASL, tuning.
    /// Example: -X security.protocol=SASL_SSL -X sasl.mechanisms=PLAIN.
    #[arg(
        short = 'X',
        long = "kafka-property",
        value_name = "KEY=VALUE",
        global = true
    )]
    pub kafka_properties: Vec<String>,

    /// A file of librdkafka properties, one `key=value` per line (`#`
    /// comments allowed). Default: none.
    #[arg(long, env = "EDDY_KAFKA_CONFIG", value_name = "FILE", global = true)]
    pub kafka_config: Option<PathBuf>,

    /// Seconds to wait for brokers before giving up. Default 10.
    #[arg(long, default_value_t = 10, global = true)]
    pub timeout: u64,

    /// Seconds a running job waits for brokers that stopped answering
    /// (librdkafka reconnects meanwhile) before it stops with exit code 4.
    /// Default 300.
    #[arg(
        long,
        env = "EDDY_BROKER_OUTAGE_TIMEOUT",
        default_value_t = 300,
        global = true
    )]
    pub broker_outage_timeout: u64,

    /// More logging (-v info, -vv debug); or set EDDY_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, create, describe, produce to and consume from topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// The built-in schema registry.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Load MovieLens into the embedded log and read it back: the first
    /// thing to run after cloning.
    Quickstart(QuickstartArgs),
    /// Run a pipeline spec: features from streams, until interrupted (or
    /// to the end of the sources with --until-end).
    Run(RunArgs),
    /// Check a pipeline spec against the registered schemas of its topics.
    Validate(ValidateArgs),
    /// Replay retained history (archive, then topics) through the spec's
    /// operators: feature tables as of --until, and with --labels a
    /// point-in-time-correct training set, as Parquet.
    Backfill(BackfillArgs),
    /// Check that the live feature topic equals a replay: recompute sampled
    /// rows at their exact times and report mismatches per feature.
    Consistency(ConsistencyArgs),
    /// Progressive validation over a CSV or Parquet file read as a stream:
    /// every row is predicted, then learned from.
    Learn(LearnArgs),
    /// Batch baselines for the online learners.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Serve real-time recommendations: trigger events and requests in,
    /// ranked items out onto the recommendations topic, plus HTTP.
    Serve(ServeArgs),
    /// The freshness lift: replay the spec's source and compare its
    /// recommenders updated on every event with the same ones rebuilt once
    /// per period (the nightly batch).
    Evaluate(EvaluateArgs),
    /// Generate datasets onto topics.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Measure throughput (results go in BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}
