//! Command-line definitions. The command and flag names are a contract that
//! users and later features rely on; change them with care.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use eddy_features::topic::StartOffset;

use crate::exit::EXIT_CODES_HELP;

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

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Generate a dataset.
    #[command(subcommand)]
    Generate(GenerateCommand),
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// A synthetic e-commerce clickstream (views, clicks, add-to-carts,
    /// purchases) with a drifting SCD2 catalog and the true click
    /// probability of every view.
    Clickstream(ClickstreamArgs),
}

#[derive(Debug, Args)]
pub struct ClickstreamArgs {
    /// Users. Default 10000.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Items in the catalog (half exist at the start, the rest arrive over
    /// time). Default 5000.
    #[arg(long, default_value_t = 5_000)]
    pub items: u64,
    /// Events (views and what follows them). Default 1000000.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// The seed: the same seed gives the same dataset. Default 1.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of event time the events span. Default 30.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Topics are `<prefix>.events` and `<prefix>.items`. Default
    /// `clickstream`.
    #[arg(long, default_value = "clickstream")]
    pub prefix: String,
    /// Partitions of the events topic. Default 4.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Where the ground truth goes (Parquet). Default
    /// `<data dir>/<prefix>-truth.parquet`.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The pipeline spec (YAML) with a `serving:` section.
    pub spec: PathBuf,
    /// Where to serve `/v1/recommendations/{user}`, `/v1/features/{view}/{key}`,
    /// `/metrics` and `/healthz`. Default 127.0.0.1:8080 (port 0 picks a
    /// free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Read triggers and requests from the beginning of their topics (a
    /// replay) instead of only new ones. Default: only new ones.
    #[arg(long)]
    pub from_earliest: bool,
    /// Stop once the triggers and requests the topics hold at start are
    /// answered. Default: run until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub until_end: bool,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The pipeline spec (YAML) with a `serving:` section: its candidate
    /// recommenders are evaluated on their source's events.
    pub spec: PathBuf,
    /// Items recommended. Default 10.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// The user's upcoming items that count as a hit. Default 5.
    #[arg(long, default_value_t = 5)]
    pub next: usize,
    /// The batch retrain period (event time). Default 1d.
    #[arg(long, default_value = "1d")]
    pub period: String,
    /// Interactions learned before scoring starts. Default 1000.
    #[arg(long, default_value_t = 1000)]
    pub warmup: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline spec (YAML).
    pub spec: PathBuf,
    /// Stop after the events the sources hold at start are processed (and
    /// released: the last windows are emitted as of the latest event time).
    /// Default: run until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub until_end: bool,
    /// Where to serve Prometheus `/metrics` and `/healthz`. Default
    /// 127.0.0.1:9464 (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Checkpoint location (object-store URL or directory). Default: the
    /// spec's `checkpoint.url`, else `checkpoints` in the data directory
    /// (local log) or `./eddy-checkpoints` (Kafka).
    #[arg(long)]
    pub checkpoint_url: Option<String>,
    /// The consumer group whose members share the pipeline's tasks (Kafka
    /// only: the local log runs every task in one process). Default
    /// `eddy-<pipeline name>`.
    #[arg(long)]
    pub group: Option<String>,
    /// On Kafka, run every task in this process without joining a group.
    #[arg(long, conflicts_with = "group")]
    pub standalone: bool,
    /// Also run the spec's `serving:` section in this process: features
    /// through the job's in-process read API, models straight from the
    /// learner as it publishes them. With --until-end, serving replays the
    /// triggers the topics hold. Default: off (`eddy serve` runs serving
    /// apart, from the topics).
    #[arg(long)]
    pub serve: bool,
    /// With --serve: where to serve `/v1/recommendations/{user}`,
    /// `/v1/features/{view}/{key}`, `/metrics` and `/healthz`. Default
    /// 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub serve_http: SocketAddr,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The pipeline spec (YAML).
    pub spec: PathBuf,
    /// First event time of the output: `earliest`, a date (2018-09-01), a
    /// UTC date-time (2018-09-01T12:00:00Z) or epoch milliseconds. The
    /// replay starts earlier by the longest window, so windows are full at
    /// --from. Default `earliest`.
    #[arg(long, default_value = "earliest")]
    pub from: String,
    /// Last event time of the output (inclusive): the feature tables are
    /// as of this time and no later event counts. Same formats as --from.
    /// Default: the latest event in history.
    #[arg(long)]
    pub until: Option<String>,
    /// Build a training set: one row per event of this source, with every
    /// feature as of just before it.
    #[arg(long, conflicts_with = "model")]
    pub labels: Option<String>,
    /// Build the training set of this model of the spec: a row per example
    /// (its source's events that its `filter` keeps) with its label (in
    /// the event, or a delayed label resolved exactly as the live model
    /// resolves it), its `columns` and `item`, and every feature as of
    /// just before it. Examples whose label window had not ended where
    /// history ends are left out, and counted.
    #[arg(long)]
    pub model: Option<String>,
    /// The label of each --labels event: a SQL expression over its columns,
    /// such as `rating >= 4`. Default `label` (a column named label).
    #[arg(long, requires = "labels", default_value = "label")]
    pub label_expr: String,
    /// With --labels: a SQL condition over the label source's columns;
    /// only label events for which it is true become rows (for example
    /// `event_type = 'view'`). Default: every label event.
    #[arg(long, requires = "labels")]
    pub label_filter: Option<String>,
    /// With --labels or --model: the label event's own columns to write
    /// beside its features (`item_id,price`), and `TABLE.COLUMN` for a
    /// table the source's views join (`items.category`, as of the event's
    /// time). Default: none with --labels (a column of the label's own
    /// event can leak the label, so each one is named); the model's
    /// `columns` and `item` with --model.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Where to write (object-store URL or directory): `features/<view>/`,
    /// `training/` and `manifest.json`. Files of an earlier backfill there
    /// are replaced.
    #[arg(long)]
    pub out: String,
    /// Records per read: every read releases events and probes labels in
    /// one step per task, on all cores. Default 50000.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Exit 0 even when history is incomplete (records past retention and
    /// never archived, or holes in the archive). Without it such a
    /// backfill still writes its output, warns with counts, and exits 11.
    #[arg(long)]
    pub allow_incomplete_history: bool,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Fit a linfa logistic regression once on a training set's rows
    /// before --split, and compare it on the later rows with an FTRL
    /// learner that learns every row.
    Batch(TrainBatchArgs),
}

#[derive(Debug, Args)]
pub struct TrainBatchArgs {
    /// A training set: a Parquet file, or a directory of them (the
    /// `training/` of `eddy backfill --labels`).
    #[arg(long)]
    pub input: PathBuf,
    /// Rows before this time train the batch model; rows from it on are
    /// scored. A date, a UTC date-time or epoch ms. Default: the time
    /// after which the last fifth of the rows lies.
    #[arg(long)]
    pub split: Option<String>,
    /// The 0/1 label column. Default `label`.
    #[arg(long, default_value = "label")]
    pub label: String,
    /// The event-time column. Default `event_time`.
    #[arg(long, default_value = "event_time")]
    pub time_column: String,
    /// Numeric columns that are not features.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Iterations of the batch solver (L-BFGS). Default 100.
    #[arg(long, default_value_t = 100)]
    pub max_iterations: u64,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How `eddy learn` reads numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NumericArg {
    Raw,
    Log,
}

impl From<NumericArg> for eddy_features::spec::model::Numeric {
    fn from(n: NumericArg) -> Self {
        match n {
            NumericArg::Raw => eddy_features::spec::model::Numeric::Raw,
            NumericArg::Log => eddy_features::spec::model::Numeric::Log,
        }
    }
}

/// The learners `eddy learn` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    /// Logistic regression by FTRL-Proximal, on hashed features: a 0/1
    /// label; logloss, AUC, accuracy.
    Ftrl,
    /// Linear regression by FTRL-Proximal (squared loss): a numeric label
    /// such as a rating; RMSE and MAE.
    Linear,
}

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// A CSV file (with a header), a Parquet file (`.parquet`), or a
    /// directory of Parquet files (a training set from `eddy backfill
    /// --labels`, read in file-name order). List columns (`top_k`,
    /// `last_k` features) give one category per element.
    #[arg(long)]
    pub input: PathBuf,
    /// The label column. For `ftrl`: 1/0, true/false, or a number
    /// (positive means 1, as VW's -1/1). For `linear`: a number.
    #[arg(long)]
    pub label: String,
    /// The model. Default ftrl.
    #[arg(long, value_enum, default_value = "ftrl")]
    pub model: ModelKind,
    /// Columns to treat as categories even when their values are numbers
    /// (ids). Text values are always categories.
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Columns to leave out.
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// A quadratic cross of two columns, `a,b` (repeatable).
    #[arg(long = "cross", value_name = "A,B")]
    pub crosses: Vec<String>,
    /// 2^bits hashed weights. Default 20.
    #[arg(long, default_value_t = 20)]
    pub bits: u32,
    /// How numbers enter the model: `raw`, or `log` for
    /// sign(x)·ln(1 + |x|) (the default of a spec's models). Default
    /// `raw`, as VW and River read them.
    #[arg(long, value_enum, default_value = "raw")]
    pub numeric: NumericArg,
    /// FTRL learning-rate scale. Default 0.2.
    #[arg(long, default_value_t = 0.2)]
    pub alpha: f64,
    /// FTRL learning-rate smoothing. Default 1.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// L1 regularization. Default 0.5.
    #[arg(long, default_value_t = 0.5)]
    pub l1: f64,
    /// L2 regularization. Default 1.
    #[arg(long, default_value_t = 1.0)]
    pub l2: f64,
    /// Write the trained model here (postcard bytes).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// The pipeline spec (YAML).
    pub spec: PathBuf,
    /// The view whose live feature topic is checked.
    #[arg(long)]
    pub view: String,
    /// How many rows of the feature topic to recompute, spread evenly over
    /// it. Default 1000.
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline spec (YAML).
    pub spec: PathBuf,
}

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

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// The MovieLens directory (ratings.csv, movies.csv). Default
    /// `datasets/movielens-small`.
    #[arg(long, default_value = "datasets/movielens-small")]
    pub dataset: PathBuf,
    /// Load only the first N ratings (in time order). Default: all.
    #[arg(long)]
    pub limit: Option<usize>,
    /// New ratings produced after the replay, at 200/s, for serving to
    /// answer live (0 skips serving). Default 400.
    #[arg(long, default_value_t = 400)]
    pub tail: usize,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce then consume N records on the selected backend.
    Topics(BenchTopicsArgs),
    /// Feature-engine throughput: Avro events, one join, 3 windows x 4 ops.
    Pipeline(BenchPipelineArgs),
    /// `eddy backfill`: replay rate, and time and peak memory of a training
    /// set with one label per event and 100 features.
    Backfill(BenchBackfillArgs),
    /// Streaming matrix factorization on MovieLens: updates/s, memory per
    /// id, prequential HR@10 and NDCG@10 against popularity.
    Recommend(BenchRecommendArgs),
    /// Serving: recommendations/s per core, and event → recommendation
    /// latency (p50, p99) at a fixed arrival rate, next to the broker's own
    /// produce → consume latency on Kafka.
    Serve(BenchServeArgs),
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// Items in the catalog. Default 10000.
    #[arg(long, default_value_t = 10_000)]
    pub items: u64,
    /// Users. Default 5000.
    #[arg(long, default_value_t = 5_000)]
    pub users: u64,
    /// Ratings the models learn before serving starts. Default 200000.
    #[arg(long, default_value_t = 200_000)]
    pub history: u64,
    /// Requests for the recommendations/s measurement. Default 20000.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Events per second for the latency measurement. Default 1000.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Seconds of events for the latency measurement. Default 10.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Items per recommendation. Default 10.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Partitions of the events topic. Default 1.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
}

#[derive(Debug, Args)]
pub struct BenchRecommendArgs {
    /// The MovieLens directory. Default `datasets/movielens-small`.
    #[arg(long, default_value = "datasets/movielens-small")]
    pub dataset: PathBuf,
    /// Embedding size. Default 32.
    #[arg(long, default_value_t = 32)]
    pub dim: usize,
    /// Passes over the ratings for the updates/s measurement. Default 3.
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
}

#[derive(Debug, Args)]
pub struct BenchBackfillArgs {
    /// Events to produce (each one is also a label). Default 1,000,000.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Distinct users (keys). Default 10,000.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Items in the joined table. Default 1,000.
    #[arg(long, default_value_t = 1_000)]
    pub items: u64,
    /// Partitions: a backfill replays partitions on all cores in parallel.
    /// Default 2.
    #[arg(long, default_value_t = 2)]
    pub partitions: i32,
}

#[derive(Debug, Args)]
pub struct BenchPipelineArgs {
    /// Events to produce, then process. Default 2,000,000.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Distinct users (keys). Default 10,000.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Items in the joined table. Default 1,000.
    #[arg(long, default_value_t = 1_000)]
    pub items: u64,
    /// Partitions (tasks). Default 1: the engine runs tasks on one thread, so
    /// this measures one core.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// The sliding window (the other two are `tumbling 1d` and `lifetime`).
    /// Default 1h.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Records per poll; every poll that moves the watermark emits the keys
    /// it changed, so this sets how many feature rows are written. Default
    /// 10,000 (what `eddy run` uses).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct BenchTopicsArgs {
    /// Records to produce and consume. Default 1,000,000.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Bytes per value. Default 100.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Partitions of the benchmark topic. Default 4.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Encode values as Confluent Avro (a record with an id, a score and a
    /// string padded to --value-bytes) instead of raw bytes.
    #[arg(long)]
    pub avro: bool,
}
