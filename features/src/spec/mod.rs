//! The pipeline spec: what a data scientist writes to define features.
//!
//! A spec names event streams (`sources`), reference tables (`tables`) and
//! feature views (`features`). It is YAML, read strictly: an unknown key is an
//! error, not a silent no-op, and every error names the file, the line and
//! the key path. [`load`] checks the shape; [`validate`] then checks the spec
//! against the registered schemas of its topics (columns exist, types fit).
//!
//! The full reference of keys and defaults is in README.md, section "Pipeline
//! spec"; the doc comment of each field below states its default too.

mod columns;
pub mod duration;
pub mod locate;
pub mod model;
mod plan;
pub mod serving;
mod shape;
pub mod validate;
pub mod window;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use duration::Millis;
pub use locate::KeyPath;
pub use model::{DelayedLabelSpec, ModelSpec};
pub use validate::{ColumnType, Columns, ViewPlan, validate};
pub use window::Window;

/// A whole pipeline spec.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Names the job: its checkpoints and its consumer group
    /// (`eddy-<name>`). Required.
    pub name: String,
    /// Event streams, by name. Required: at least one.
    pub sources: IndexMap<String, SourceSpec>,
    /// Reference tables read from compacted topics, by name. Default: none.
    #[serde(default)]
    pub tables: IndexMap<String, TableSpec>,
    /// Feature views, by name. Required: at least one.
    pub features: IndexMap<String, ViewSpec>,
    /// Where and how often state is checkpointed. Default: see
    /// [`CheckpointSpec`].
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Copies raw source records to Parquet on object storage, so backfills
    /// reach further back than the topics' retention. Default: none.
    #[serde(default)]
    pub archive: Option<ArchiveSpec>,
    /// Incremental learners `eddy run` trains from the sources' events, by
    /// name. Default: none.
    #[serde(default)]
    pub models: IndexMap<String, ModelSpec>,
    /// Real-time recommendations from the models, for `eddy serve`.
    /// Default: none.
    #[serde(default)]
    pub serving: Option<serving::ServingSpec>,
}

/// An event stream: an Avro topic in the Confluent wire format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The topic. Required.
    pub topic: String,
    /// The entity key field. Required. Records are expected to be
    /// partitioned by it (co-partitioned with every other source).
    pub key: String,
    /// The event-time field: a `long` of epoch milliseconds (or Avro
    /// `timestamp-millis`), `timestamp-micros`, or `int`/`long` epoch seconds
    /// when `event_time_unit: s`. Required.
    pub event_time: String,
    /// Unit of a plain numeric `event_time`: `ms` or `s`. Default `ms`;
    /// logical types (`timestamp-millis`, `timestamp-micros`) override it.
    #[serde(default)]
    pub event_time_unit: TimeUnit,
    /// Allowed out-of-orderness. An event older than the watermark
    /// (maximum event time seen minus `lateness`) is late: it goes to
    /// `<topic>.dlq` with a reason and is counted. Default `0s`.
    #[serde(default)]
    pub lateness: Millis,
    /// A partition that has received nothing for this long (in wall-clock
    /// time) stops holding back the watermark, so a quiet partition cannot
    /// stall every feature. Default `30s`; `0s` disables idleness.
    #[serde(default = "default_idle")]
    pub idle_timeout: Millis,
    /// How the topic's records are laid out: `avro` (each record an event)
    /// or `debezium` (each Debezium change event an event: the row's
    /// columns, `after`, or `before` for a delete, plus `__op` and
    /// `__source_ts_ms`, the change's time in the database; use
    /// `event_time: __source_ts_ms`), or `debezium_json` (the same from
    /// Kafka Connect's JSON converter, with `columns:`). Default `avro`.
    #[serde(default)]
    pub format: RecordFormat,
    /// The row's columns and their types (`long`, `double`, `string`,
    /// `boolean`), in order, for `format: debezium_json`: JSON has no
    /// registered schema to read them from. Default: none (required for
    /// `debezium_json`, refused with another format).
    #[serde(default)]
    pub columns: Option<IndexMap<String, DeclaredType>>,
}

fn default_idle() -> Millis {
    Millis(30_000)
}

/// The unit of a numeric event-time field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Milliseconds since the epoch (the default).
    #[default]
    Ms,
    /// Seconds since the epoch.
    S,
}

/// Reference state: a compacted topic read as a table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The topic. Required.
    pub topic: String,
    /// The field that keys rows. Required.
    pub key: String,
    /// Keep every version of a row, so a join reads the row as it was at the
    /// event's time (SCD type 2). Default `false`: joins read the latest row.
    #[serde(default)]
    pub versioned: bool,
    /// The field holding when a version became valid (epoch ms). Default:
    /// the record's timestamp (`format: debezium`: the change's database
    /// time, `source.ts_ms`).
    #[serde(default)]
    pub valid_from: Option<String>,
    /// How the topic's records are laid out: `avro` (each record a row) or
    /// `debezium` (Debezium change events, Avro envelope: creates, updates
    /// and snapshot reads are versions, deletes end the row), or
    /// `debezium_json` (the same from Kafka Connect's JSON converter, with
    /// `columns:`). Default `avro`.
    #[serde(default)]
    pub format: RecordFormat,
    /// The row's columns and their types, for `format: debezium_json` (as
    /// a source's `columns`). Default: none.
    #[serde(default)]
    pub columns: Option<IndexMap<String, DeclaredType>>,
}

/// How a table's records are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// Each record is a row (Avro, Confluent wire format).
    #[default]
    Avro,
    /// Each record is a Debezium change event (Avro envelope).
    Debezium,
    /// Each record is a Debezium change event from Kafka Connect's JSON
    /// converter (with or without its `schema`/`payload` wrapping); the
    /// row's columns are declared in the spec (`columns:`).
    DebeziumJson,
}

impl RecordFormat {
    /// Debezium change events, in either converter's encoding.
    pub fn is_debezium(self) -> bool {
        matches!(self, RecordFormat::Debezium | RecordFormat::DebeziumJson)
    }
}

/// A column's type where the spec declares it (JSON carries no registered
/// schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeclaredType {
    /// A 64-bit integer (JSON integers; epoch times).
    Long,
    /// A 64-bit float.
    Double,
    /// Text.
    String,
    /// `true` or `false`.
    Boolean,
}

/// A feature view: one keyed feature table computed from one source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// The source it reads. Required.
    pub source: String,
    /// The entity key: a column of the event after joins and `derive`
    /// (long or string). Default: the source's key. Any other column
    /// re-keys the view: its events go through the pipeline's repartition
    /// topic to the task that owns the new key. A composite key is a
    /// `derive` column, like `user_id || ':' || category`.
    #[serde(default)]
    pub key: Option<String>,
    /// Reference-table joins, applied first, in order. Default: none.
    #[serde(default)]
    pub join: Vec<JoinSpec>,
    /// New columns from SQL expressions, applied after joins and in order (a
    /// later one may use an earlier one). Default: none.
    #[serde(default)]
    pub derive: IndexMap<String, String>,
    /// A SQL boolean expression; events for which it is not true are skipped.
    /// Evaluated after `derive`. Default: keep every event.
    #[serde(default)]
    pub filter: Option<String>,
    /// The features. Required: at least one.
    pub aggregations: Vec<AggregationSpec>,
    /// Features computed from the view's other features, by name: SQL over
    /// their columns (`clicks_1d / NULLIF(views_1d, 0)`), in order (a later
    /// one may use an earlier one). Computed wherever the view's values
    /// are produced (topic rows, Parquet, training sets, models, serving),
    /// so online and offline cannot differ. The SQL supported, and what a
    /// division by zero gives, are in `engine::expr`. Default: none.
    #[serde(default)]
    pub derived_features: IndexMap<String, String>,
    /// Where the feature table goes. Default: the topic
    /// `features.<view>` and no Parquet.
    #[serde(default)]
    pub output: OutputSpec,
}

/// An as-of join with a table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// The table. Required.
    pub table: String,
    /// The event column holding the table's key. Required.
    pub on: String,
    /// Table columns to add. Default: every column but the key.
    #[serde(default)]
    pub select: Option<Vec<String>>,
    /// What an event without a matching row gets: `null` columns, or `drop`
    /// (the event is skipped). Default `null`.
    #[serde(default)]
    pub missing: Missing,
}

/// What happens to an event without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    #[default]
    /// The table's columns are null.
    Null,
    /// The event does not count in the view.
    Drop,
}

/// One aggregate feature, computed over one or more windows.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationSpec {
    /// Feature name; columns are `<name>_<window suffix>`. Required.
    pub name: String,
    /// The operator. Required.
    pub op: Op,
    /// The input column. Required for every operator but `count` (without
    /// a column, `count` counts events; with one, its non-null values).
    #[serde(default)]
    pub column: Option<String>,
    /// Windows. Required: at least one.
    pub windows: Vec<Window>,
    /// How many items `first_k`, `last_k` and `top_k` keep. Default 10.
    #[serde(default)]
    pub k: Option<usize>,
    /// The quantile of `approx_percentile`, in [0, 1]. Default 0.5.
    #[serde(default)]
    pub quantile: Option<f64>,
    /// The half-life of `decayed_sum`. Required for it.
    #[serde(default)]
    pub half_life: Option<Millis>,
}

/// Aggregation operators. Nulls in the input column are skipped by all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Events counted.
    Count,
    /// The sum.
    Sum,
    /// The mean.
    Mean,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// Sample variance (n - 1 in the denominator, as polars' default).
    Variance,
    /// Sample standard deviation.
    Stddev,
    /// The earliest value.
    First,
    /// The latest value.
    Last,
    /// The k earliest values.
    FirstK,
    /// The k latest values, latest last.
    LastK,
    /// The k most frequent values, most frequent first, ties by value.
    TopK,
    /// Exact number of distinct values.
    CountDistinct,
    /// HyperLogLog estimate of the number of distinct values (Apache
    /// DataSketches, lg_k 12: about 1.6% relative standard error).
    ApproxCountDistinct,
    /// t-digest estimate of a quantile (Apache DataSketches, k 200).
    ApproxPercentile,
    /// Sum of values, each weighted by 2^-(age / half_life).
    DecayedSum,
}

impl Op {
    /// The spec name of the operator.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Count => "count",
            Op::Sum => "sum",
            Op::Mean => "mean",
            Op::Min => "min",
            Op::Max => "max",
            Op::Variance => "variance",
            Op::Stddev => "stddev",
            Op::First => "first",
            Op::Last => "last",
            Op::FirstK => "first_k",
            Op::LastK => "last_k",
            Op::TopK => "top_k",
            Op::CountDistinct => "count_distinct",
            Op::ApproxCountDistinct => "approx_count_distinct",
            Op::ApproxPercentile => "approx_percentile",
            Op::DecayedSum => "decayed_sum",
        }
    }

    /// Sketch operators cannot forget a single event, so they run only on
    /// windows made of whole panes (hopping) or that reset (tumbling,
    /// session, lifetime).
    pub fn is_sketch(&self) -> bool {
        matches!(self, Op::ApproxCountDistinct | Op::ApproxPercentile)
    }
}

/// Where a view's feature table goes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The compacted feature topic; its Avro value schema is registered as
    /// `<topic>-value`. Default `features.<view>`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Object-store URLs for Parquet (`file://`, `s3://`, `gs://`,
    /// `az://`; a bare path means a local directory): one, or a list, each
    /// written the same part files (S3 and GCS at once). Default: none.
    #[serde(default)]
    pub parquet: Urls,
    /// An online store: Redis, one hash per entity. Default: none.
    #[serde(default)]
    pub redis: Option<RedisSpec>,
    /// A PostgreSQL table of the view's rows, upserted by key: an online
    /// store services query with SQL, and a table reports read. Default:
    /// none.
    #[serde(default)]
    pub postgres: Option<PostgresSpec>,
    /// A table of the view's rows in a SQLite file, upserted by key: an
    /// online store with no server. Default: none.
    #[serde(default)]
    pub sqlite: Option<SqliteSpec>,
}

/// A view's rows in a SQLite file: one row per key (the key column,
/// `as_of`, a column per feature; booleans as 0/1, lists as JSON text),
/// the table created if missing, the database in WAL mode so readers and
/// the job never wait for each other.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSpec {
    /// The database file, created with its directory if missing (relative
    /// to the directory eddy runs in). Required.
    pub path: String,
    /// The table. Default: the view's name.
    #[serde(default)]
    pub table: Option<String>,
}

/// A view's rows in a PostgreSQL table: one row per key (the key column,
/// `as_of`, a column per feature; lists as JSONB), created if missing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// The server: `postgresql://user[:password]@host[:port]/database`.
    /// Required.
    pub url: String,
    /// The table. Default: the view's name.
    #[serde(default)]
    pub table: Option<String>,
}

/// A view's rows in Redis, as Feast lays out its online store: one hash
/// per entity, `<pipeline>:<key column>=<key>`, shared by the views keyed
/// by the same column; a field `<view>:<feature>` per feature (its value
/// as JSON text: `3`, `0.25`, `"c06"`, `["a","b"]`, `null`) and
/// `_ts:<view>` (the row's `as_of`, epoch ms).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// The server: `redis://[user:password@]host[:port][/db]`. Required.
    pub url: String,
    /// Keys expire this long after their last write (`7d`). Default: never.
    #[serde(default)]
    pub ttl: Option<Millis>,
}

/// One URL or a list of them, as the spec writes either.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Urls(pub Vec<String>);

impl<'de> Deserialize<'de> for Urls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Urls, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Urls;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL or a list of URLs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Urls, E> {
                Ok(Urls(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Urls, A::Error> {
                let mut out = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    out.push(url);
                }
                Ok(Urls(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The archive of raw source records (see `engine::archive`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    /// An object-store URL (`file://`, `s3://`, `gs://`, `az://`,
    /// `memory://`); records go under `<url>/<topic>/date=YYYY-MM-DD/`.
    /// Required.
    pub url: String,
    /// The sources to archive, by name. Default: every source.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
}

impl PipelineSpec {
    /// The topics the archive copies (none without an `archive:` section).
    pub fn archived_topics(&self) -> Vec<String> {
        let Some(a) = &self.archive else {
            return Vec::new();
        };
        self.sources
            .iter()
            .filter(|(n, _)| a.sources.as_ref().is_none_or(|only| only.contains(n)))
            .map(|(_, s)| s.topic.clone())
            .collect()
    }

    /// The topics of the tables whose records the archive keeps (every
    /// table's, with an archive): their history outlives compaction.
    pub fn archived_tables(&self) -> Vec<String> {
        if self.archive.is_none() {
            return Vec::new();
        }
        self.tables.values().map(|t| t.topic.clone()).collect()
    }
}

/// Checkpointing of state and offsets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// An object-store URL; each task writes under `<url>/<pipeline>/`.
    /// Default: `checkpoints` under the data directory on the embedded log,
    /// `./eddy-checkpoints` on Kafka.
    #[serde(default)]
    pub url: Option<String>,
    /// How often (wall-clock) to checkpoint. Default `10s`.
    #[serde(default = "default_interval")]
    pub interval: Millis,
}

fn default_interval() -> Millis {
    Millis(10_000)
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        CheckpointSpec {
            url: None,
            interval: default_interval(),
        }
    }
}

impl ViewSpec {
    /// The feature topic of view `name`.
    pub fn output_topic(&self, name: &str) -> String {
        self.output
            .topic
            .clone()
            .unwrap_or_else(|| format!("features.{name}"))
    }
}

/// A problem in a spec, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The spec file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key path, like `features.v.aggregations[0].column`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": key `{}`: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {}: {source}", path.display())]
    /// The spec file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    /// Every problem found, with file, line and key.
    Invalid(Vec<SpecProblem>),
}

impl SpecError {
    /// Who must act: the spec is the user's (a file that cannot be read
    /// too: a path or a permission).
    pub fn blame(&self) -> crate::topic::Blame {
        crate::topic::Blame::User
    }
}

/// A parsed spec with its text, so later checks can locate keys.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The spec.
    pub spec: PipelineSpec,
    /// The file it came from.
    pub file: PathBuf,
    /// Its text, to locate keys by line.
    pub text: String,
}

impl LoadedSpec {
    /// A located problem at `path`.
    pub fn problem(&self, path: &KeyPath, message: impl Into<String>) -> SpecProblem {
        SpecProblem {
            file: self.file.clone(),
            line: locate::locate(&self.text, path),
            key: path.to_string(),
            message: message.into(),
        }
    }
}

/// Checks of a section this crate only holds the document of (`models:`,
/// `serving:`): the crate that runs the section registers one, and it
/// runs after the checks of this crate's own sections, so one load
/// reports every problem, each with file, line and key.
pub type SectionCheck = fn(&LoadedSpec) -> Vec<SpecProblem>;

/// Reads and parses a spec file; checks its shape (not its columns).
pub fn load(path: &Path) -> Result<LoadedSpec, SpecError> {
    load_with(path, &[])
}

/// [`load`], with the shape checks of the other crates' sections.
pub fn load_with(path: &Path, checks: &[SectionCheck]) -> Result<LoadedSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_with(path, &text, checks)
}

/// Parses spec text; `file` is only used in messages.
pub fn parse(file: &Path, text: &str) -> Result<LoadedSpec, SpecError> {
    parse_with(file, text, &[])
}

/// [`parse`], with the shape checks of the other crates' sections.
pub fn parse_with(
    file: &Path,
    text: &str,
    checks: &[SectionCheck],
) -> Result<LoadedSpec, SpecError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let spec: PipelineSpec = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        // serde_yaml appends " at line L column C"; the location is printed
        // in front instead, like every other spec problem.
        let message = inner.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        SpecError::Invalid(vec![SpecProblem {
            file: file.to_path_buf(),
            line,
            key: if key == "." { String::new() } else { key },
            message,
        }])
    })?;
    let loaded = LoadedSpec {
        spec,
        file: file.to_path_buf(),
        text: text.to_string(),
    };
    let mut problems = validate::shape(&loaded);
    for check in checks {
        problems.extend(check(&loaded));
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(SpecError::Invalid(problems))
    }
}
