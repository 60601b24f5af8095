//! Point-in-time training sets: one row per label event, with its key,
//! time, label and every feature of the spec as of just before it.
//!
//! The features come from [`crate::engine::task::Probe`], which reads the
//! views while the replay passes each label event, before any event at its
//! time counts. Rows are written in chunks, one Parquet file each, so a
//! training set of any length needs the memory of one chunk.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;

use crate::engine::frame::{from_series, to_series};
use crate::engine::task::ProbedRows;
use crate::engine::value::Scalar;
use crate::spec::ColumnType;
use crate::spec::validate::{Columns, ViewPlan};
use crate::store::Store;

/// Rows per Parquet file.
const CHUNK_ROWS: usize = 32_768;

/// The label of each label event, computed when the record is read.
pub struct Labeler {
    expr: Expr,
    sql: String,
    /// Which label events become rows (`--label-filter`).
    filter: Option<Expr>,
    columns: Columns,
    /// The type of the label column.
    pub label_type: ColumnType,
    /// Per (partition, offset): the label and the event's columns, until
    /// its row is written.
    labels: HashMap<(i32, i64), Labeled, foldhash::fast::RandomState>,
    /// Label events whose expression failed, and the first reason.
    pub rejected: u64,
    /// The first label event rejected, and why.
    pub first_rejection: Option<String>,
    /// Label events the filter left out.
    pub filtered: u64,
}

/// A label event's label, and its own columns.
pub type Labeled = (Scalar, Box<[Scalar]>);

impl Labeler {
    /// A labeler for `sql` over the label source's `columns`.
    pub fn new(sql: &str, filter: Option<&str>, columns: Columns) -> Result<Labeler, String> {
        let label_type = crate::spec::validate::expression_type(&columns, sql).map_err(|e| {
            format!(
                "--label-expr {e}. The label source's columns are {:?}",
                columns.keys().collect::<Vec<_>>()
            )
        })?;
        let expr = polars::sql::sql_expr(sql).map_err(|e| e.to_string())?;
        let filter = match filter {
            None => None,
            Some(f) => {
                let t = crate::spec::validate::expression_type(&columns, f).map_err(|e| {
                    format!(
                        "--label-filter {e}. The label source's columns are {:?}",
                        columns.keys().collect::<Vec<_>>()
                    )
                })?;
                if t != ColumnType::Boolean {
                    return Err(format!(
                        "--label-filter `{f}` is {t:?}, not a condition (true or false)"
                    ));
                }
                Some(polars::sql::sql_expr(f).map_err(|e| e.to_string())?)
            }
        };
        Ok(Labeler {
            expr,
            sql: sql.to_string(),
            filter,
            columns,
            label_type,
            labels: HashMap::default(),
            rejected: 0,
            first_rejection: None,
            filtered: 0,
        })
    }

    /// Computes the labels of decoded label events: (partition, offset,
    /// every column of the record).
    pub fn label(&mut self, events: Vec<(i32, i64, Box<[Scalar]>)>) {
        if events.is_empty() {
            return;
        }
        match self.evaluate(&events) {
            Ok(labels) => {
                for ((p, o, cols), l) in events.into_iter().zip(labels) {
                    match l {
                        Some(l) => {
                            self.labels.insert((p, o), (l, cols));
                        }
                        None => self.filtered += 1,
                    }
                }
            }
            Err(_) => {
                // Find the rows that break the expression, one by one.
                for e in events {
                    match self.evaluate(std::slice::from_ref(&e)) {
                        Ok(mut l) => match l.pop().flatten() {
                            Some(l) => {
                                self.labels.insert((e.0, e.1), (l, e.2));
                            }
                            None => self.filtered += 1,
                        },
                        Err(why) => {
                            self.rejected += 1;
                            self.first_rejection
                                .get_or_insert(format!("partition {} offset {}: {why}", e.0, e.1));
                        }
                    }
                }
            }
        }
    }

    /// Each event's label, or None where the filter leaves it out.
    fn evaluate(
        &self,
        events: &[(i32, i64, Box<[Scalar]>)],
    ) -> Result<Vec<Option<Scalar>>, String> {
        let series: Vec<Column> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, (name, t))| {
                to_series(name, t, events.iter().map(|e| e.2[c].clone())).into_column()
            })
            .collect();
        let df = DataFrame::new(series).map_err(|e| e.to_string())?;
        let mut select = vec![
            self.expr
                .clone()
                .strict_cast(self.label_type.dtype())
                .alias("label"),
        ];
        if let Some(f) = &self.filter {
            // A null condition leaves the event out, as SQL's WHERE does.
            select.push(f.clone().fill_null(lit(false)).alias("keep"));
        }
        let out = df
            .lazy()
            .select(select)
            .collect()
            .map_err(|e| format!("`{}`: {e}", self.sql))?;
        let s = out.column("label").map_err(|e| e.to_string())?;
        let labels =
            from_series(s.as_materialized_series(), &self.label_type).map_err(|e| e.to_string())?;
        let keep: Vec<bool> = match out.column("keep") {
            Ok(k) => k
                .bool()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|v| v.unwrap_or(false))
                .collect(),
            Err(_) => vec![true; labels.len()],
        };
        Ok(labels
            .into_iter()
            .zip(keep)
            .map(|(l, k)| k.then_some(l))
            .collect())
    }

    /// The label of an event and its columns, taken out (None: its
    /// expression failed, or the filter left it out).
    pub fn take(&mut self, partition: i32, offset: i64) -> Option<Labeled> {
        self.labels.remove(&(partition, offset))
    }
}

pub use crate::spec::validate::feature_columns;

/// What the writer thread ends with: rows written and file URLs.
type WriterResult = Result<(u64, Vec<String>), String>;

/// Label events with their features (columns from a task's probe), their
/// labels (None: the label expression failed: not written) and partition.
struct Part {
    rows: ProbedRows,
    labels: Vec<Option<Labeled>>,
    partition: i32,
}

/// Writes training rows in files of about [`CHUNK_ROWS`] rows. The tasks'
/// probes build typed columns in the replay threads; this gathers them and
/// hands them to a writer thread, which encodes Parquet and stores it,
/// overlapped with the replay. At most one file waits for the writer,
/// which bounds memory.
pub struct TrainingWriter {
    layout: Arc<ChunkLayout>,
    parts: Vec<Part>,
    buffered: usize,
    sender: Option<std::sync::mpsc::SyncSender<Vec<Part>>>,
    writer: Option<std::thread::JoinHandle<WriterResult>>,
    /// Rows written, and the files (set by [`TrainingWriter::finish`]).
    pub written: u64,
    /// The files written.
    pub files: Vec<String>,
}

/// What a file's columns are.
struct ChunkLayout {
    store: Store,
    key_name: String,
    key_type: ColumnType,
    label_type: ColumnType,
    /// The label event's own columns written: index in the record, output
    /// name, type.
    event_columns: Vec<(usize, String, ColumnType)>,
    /// Output column names and types of the features, view by view.
    features: Vec<(String, ColumnType)>,
    /// Per feature: written (its view is one the training set is for).
    written: Vec<bool>,
}

impl TrainingWriter {
    /// A writer into `store`: the key, the label's type, the event's own
    /// columns and the features of the `plans` whose `views` flag is set.
    pub fn new(
        store: Store,
        key: (String, ColumnType),
        label_type: ColumnType,
        event_columns: Vec<(usize, String, ColumnType)>,
        plans: &[ViewPlan],
        views: &[bool],
    ) -> TrainingWriter {
        let features = feature_columns(plans);
        let written: Vec<bool> = plans
            .iter()
            .zip(views)
            .flat_map(|(p, w)| p.features.iter().map(move |_| *w))
            .collect();
        // An event column named like a column already there gets `event_`
        // in front.
        let taken: Vec<String> = [key.0.as_str(), "event_time", "partition", "offset", "label"]
            .into_iter()
            .map(str::to_string)
            .chain(
                features
                    .iter()
                    .zip(&written)
                    .filter(|(_, w)| **w)
                    .map(|((n, _), _)| n.clone()),
            )
            .collect();
        let event_columns = event_columns
            .into_iter()
            .map(|(i, name, t)| {
                let name = if taken.contains(&name) {
                    format!("event_{name}")
                } else {
                    name
                };
                (i, name, t)
            })
            .collect();
        let layout = Arc::new(ChunkLayout {
            store,
            key_name: key.0,
            key_type: key.1,
            label_type,
            event_columns,
            features,
            written,
        });
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<Part>>(1);
        let l = layout.clone();
        let writer = std::thread::Builder::new()
            .name("training-writer".into())
            .spawn(move || {
                let mut written = 0u64;
                let mut files = Vec::new();
                for parts in receiver {
                    let (rows, url) = l.write(files.len(), parts)?;
                    written += rows;
                    files.push(url);
                }
                Ok((written, files))
            })
            .expect("spawning the training-set writer");
        TrainingWriter {
            layout,
            parts: Vec::new(),
            buffered: 0,
            sender: Some(sender),
            writer: Some(writer),
            written: 0,
            files: Vec::new(),
        }
    }

    /// The columns of the training set, in order.
    pub fn columns(&self) -> Vec<String> {
        let l = &self.layout;
        let mut out = vec![
            l.key_name.clone(),
            "event_time".to_string(),
            "partition".to_string(),
            "offset".to_string(),
            "label".to_string(),
        ];
        out.extend(l.event_columns.iter().map(|(_, n, _)| n.clone()));
        out.extend(
            l.features
                .iter()
                .zip(&l.written)
                .filter(|(_, w)| **w)
                .map(|((n, _), _)| n.clone()),
        );
        out
    }

    /// Adds probed label events of `partition`, with their labels.
    pub fn push(
        &mut self,
        partition: i32,
        rows: ProbedRows,
        labels: Vec<Option<Labeled>>,
    ) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        self.buffered += rows.len();
        self.parts.push(Part {
            rows,
            labels,
            partition,
        });
        if self.buffered >= CHUNK_ROWS {
            self.buffered = 0;
            let parts = std::mem::take(&mut self.parts);
            let sent = self.sender.as_ref().map(|s| s.send(parts));
            if !matches!(sent, Some(Ok(()))) {
                // The writer stopped: its error says why.
                return self
                    .finish()
                    .and(Err("the training-set writer stopped".into()));
            }
        }
        Ok(())
    }

    /// Writes what is left and waits for the writer.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(sender) = self.sender.take() {
            let parts = std::mem::take(&mut self.parts);
            if !parts.is_empty() {
                let _ = sender.send(parts);
            }
        }
        if let Some(writer) = self.writer.take() {
            let (written, files) = writer
                .join()
                .map_err(|_| "the training-set writer panicked".to_string())??;
            self.written = written;
            self.files = files;
        }
        Ok(())
    }
}

impl ChunkLayout {
    /// One part as a frame, without the rows whose label failed.
    fn frame(&self, part: Part) -> Result<DataFrame, PolarsError> {
        let Part {
            rows,
            labels,
            partition,
        } = part;
        let n = rows.len();
        let keep: BooleanChunked = labels.iter().map(|l| Some(l.is_some())).collect();
        let mut columns = vec![
            to_series(&self.key_name, &self.key_type, rows.keys.into_iter()).into_column(),
            Series::new("event_time".into(), rows.ts)
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?
                .into_column(),
            Series::new("partition".into(), vec![partition; n]).into_column(),
            Series::new("offset".into(), rows.offsets).into_column(),
            to_series(
                "label",
                &self.label_type,
                labels
                    .iter()
                    .map(|l| l.as_ref().map(|l| l.0.clone()).unwrap_or_default()),
            )
            .into_column(),
        ];
        for (i, name, t) in &self.event_columns {
            columns.push(
                to_series(
                    name,
                    t,
                    labels
                        .iter()
                        .map(|l| l.as_ref().map(|l| l.1[*i].clone()).unwrap_or_default()),
                )
                .into_column(),
            );
        }
        for ((b, (name, _)), written) in rows
            .features
            .into_iter()
            .zip(&self.features)
            .zip(&self.written)
        {
            if *written {
                columns.push(b.finish(name).into_column());
            }
        }
        let df = DataFrame::new(columns)?;
        if keep.all() { Ok(df) } else { df.filter(&keep) }
    }

    /// Writes parts as `part-<n>.parquet`: (rows, the file's URL).
    fn write(&self, n: usize, parts: Vec<Part>) -> Result<(u64, String), String> {
        let err = |e: PolarsError| e.to_string();
        let mut frames = parts.into_iter().map(|p| self.frame(p));
        let mut df = frames
            .next()
            .unwrap_or_else(|| Ok(DataFrame::empty()))
            .map_err(err)?;
        for f in frames {
            df.vstack_mut_owned(f.map_err(err)?).map_err(err)?;
        }
        let mut buf = Vec::new();
        // LZ4: several times faster to write than the default zstd, and
        // read by every Parquet reader (pyarrow, polars, DuckDB, Spark).
        ParquetWriter::new(&mut buf)
            .with_compression(ParquetCompression::Lz4Raw)
            .finish(&mut df)
            .map_err(err)?;
        let name = format!("part-{n:06}.parquet");
        self.store.put(&name, buf).map_err(|e| e.to_string())?;
        Ok((df.height() as u64, format!("{}/{name}", self.store.url())))
    }
}
