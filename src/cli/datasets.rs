//! Flags of `eddy datasets`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

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
