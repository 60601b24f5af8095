//! Flags of the model and serving commands: `learn`, `train batch`,
//! `serve` and `evaluate`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

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

impl From<NumericArg> for eddy_training::hashing::Numeric {
    fn from(n: NumericArg) -> Self {
        match n {
            NumericArg::Raw => eddy_training::hashing::Numeric::Raw,
            NumericArg::Log => eddy_training::hashing::Numeric::Log,
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
    /// Standardize numbers (after `--numeric`) by the model's running mean
    /// and variance of each, as a spec's models do by default
    /// (`params.standardize`). Default true.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub standardize: bool,
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
