//! Flags of `eddy bench`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
    /// Serving's learned order (`serving.learned_order`), to measure what
    /// it costs against the FTRL ranker's order alone. Default true.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub learned_order: bool,
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
