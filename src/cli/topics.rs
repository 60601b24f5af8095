//! Flags of `eddy topics` and `eddy registry`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use eddy_features::topic::StartOffset;

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// List topic names.
    List,
    /// Create a topic.
    Create(CreateArgs),
    /// Show partitions, offsets and cleanup policy of a topic.
    Describe {
        /// Topic name.
        topic: String,
    },
    /// Write JSON lines from stdin to a topic.
    Produce(ProduceArgs),
    /// Print a topic's records as JSON lines.
    Consume(ConsumeArgs),
    /// Print the latest value schema registered for a topic
    /// (`<topic>-value`), with its id and version: the field names and
    /// types a spec refers to.
    Schema {
        /// Topic name.
        topic: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    pub topic: String,
    /// Number of partitions. Default 1.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor (Kafka only). Default 1.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Make it a compacted topic (a table: latest value per key).
    #[arg(long)]
    pub compact: bool,
    /// Delete records older than this many milliseconds. Default: the
    /// backend's (Kafka 7 days, local log forever).
    #[arg(long)]
    pub retention_ms: Option<i64>,
    /// Delete the oldest records once a partition holds more than this many
    /// bytes. Default: no size limit.
    #[arg(long)]
    pub retention_bytes: Option<i64>,
    /// A topic config, `key=value` (repeatable), passed to Kafka as is.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Target topic (must exist).
    #[arg(long)]
    pub topic: String,
    /// Use this field of each JSON record as the record key. Default: no key.
    #[arg(long)]
    pub key_field: Option<String>,
    /// Use this field (epoch milliseconds) as the record timestamp. Default:
    /// the current time.
    #[arg(long)]
    pub timestamp_field: Option<String>,
    /// An Avro schema file: registers it under `<topic>-value` and writes
    /// Confluent-framed Avro. Without it, lines are written as they are.
    #[arg(long)]
    pub schema: Option<PathBuf>,
}

/// How `topics consume` reads values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueFormat {
    /// Avro if the topic has a `<topic>-value` subject (or the record is
    /// framed), otherwise raw.
    Auto,
    /// Always Confluent Avro; anything else is an error.
    Avro,
    /// The bytes as they are: JSON if they parse, else a string.
    Raw,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Where to start: earliest, latest, committed, or an offset. Default
    /// earliest (with --group: committed, then earliest).
    #[arg(long, value_parser = clap::value_parser!(StartOffset))]
    pub from: Option<StartOffset>,
    /// Stop after this many records. Default: stop at the end of the topic.
    #[arg(long)]
    pub max: Option<u64>,
    /// Consumer group: start from its committed offsets and commit what was
    /// printed.
    #[arg(long)]
    pub group: Option<String>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// How to read values. Default auto.
    #[arg(long, value_enum, default_value_t = ValueFormat::Auto)]
    pub format: ValueFormat,
    /// Print each record with its topic, partition, offset, timestamp, key
    /// and headers, not only its value.
    #[arg(long)]
    pub envelope: bool,
    /// Resolve every Avro value to this reader schema (schema evolution:
    /// added fields take their defaults, removed ones are dropped). Default:
    /// print each value as its writer schema has it.
    #[arg(long, value_name = "FILE.avsc")]
    pub reader_schema: Option<PathBuf>,
    /// Also copy records that cannot be decoded to this topic (created if
    /// missing; `<topic>.dlq` by convention), with the reason and their
    /// source in `eddy.dlq.*` headers. Default: only report them.
    #[arg(long, value_name = "TOPIC")]
    pub dead_letter_topic: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the Confluent Schema Registry REST API.
    Serve {
        /// Address to listen on. Default 127.0.0.1:8081.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Topic that stores the schemas. Default `_schemas`.
        #[arg(long, default_value = "_schemas")]
        topic: String,
    },
}
