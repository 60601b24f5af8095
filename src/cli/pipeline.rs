//! Flags of the pipeline commands: `run`, `validate`, `backfill`,
//! `consistency` and `quickstart`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

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
    /// A model reading a re-keyed view: how many of a task's examples may
    /// wait for their answers (about 1.5 KB each) before the task stops
    /// reading its source partitions until the other tasks catch up (a
    /// replay of history). Lower it to bound memory; values never change.
    /// Default 20000.
    #[arg(long, default_value_t = 20_000)]
    pub max_waiting_examples: usize,
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
