//! Point-in-time training sets: one row per label event, with its key,
//! time, label and every feature of the spec as of just before it.
//!
//! The features come from [`crate::engine::task::Probe`], which reads the
//! views while the replay passes each label event, before any event at its
//! time counts. Rows are written in chunks, one Parquet file each, so a
//! training set of any length needs the memory of one chunk.

use std::collections::HashMap;

use polars::prelude::*;

use crate::engine::frame::{from_series, to_series};
use crate::engine::job::output::OutType;
use crate::engine::task::Probed;
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
    columns: Columns,
    pub label_type: ColumnType,
    /// Per (partition, offset): the label, until its row is written.
    labels: HashMap<(i32, i64), Scalar, foldhash::fast::RandomState>,
    /// Label events whose expression failed, and the first reason.
    pub rejected: u64,
    pub first_rejection: Option<String>,
}

impl Labeler {
    /// A labeler for `sql` over the label source's `columns`.
    pub fn new(sql: &str, columns: Columns) -> Result<Labeler, String> {
        let label_type = crate::spec::validate::expression_type(&columns, sql).map_err(|e| {
            format!(
                "--label-expr {e}. The label source's columns are {:?}",
                columns.keys().collect::<Vec<_>>()
            )
        })?;
        let expr = polars::sql::sql_expr(sql).map_err(|e| e.to_string())?;
        Ok(Labeler {
            expr,
            sql: sql.to_string(),
            columns,
            label_type,
            labels: HashMap::default(),
            rejected: 0,
            first_rejection: None,
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
                for ((p, o, _), l) in events.iter().zip(labels) {
                    self.labels.insert((*p, *o), l);
                }
            }
            Err(_) => {
                // Find the rows that break the expression, one by one.
                for e in events {
                    match self.evaluate(std::slice::from_ref(&e)) {
                        Ok(mut l) => {
                            self.labels
                                .insert((e.0, e.1), l.pop().unwrap_or(Scalar::Null));
                        }
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

    fn evaluate(&self, events: &[(i32, i64, Box<[Scalar]>)]) -> Result<Vec<Scalar>, String> {
        let series: Vec<Column> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, (name, t))| {
                to_series(name, t, events.iter().map(|e| e.2[c].clone())).into_column()
            })
            .collect();
        let df = DataFrame::new(series).map_err(|e| e.to_string())?;
        let out = df
            .lazy()
            .select([self
                .expr
                .clone()
                .strict_cast(self.label_type.dtype())
                .alias("label")])
            .collect()
            .map_err(|e| format!("`{}`: {e}", self.sql))?;
        let s = out.column("label").map_err(|e| e.to_string())?;
        from_series(s.as_materialized_series(), &self.label_type).map_err(|e| e.to_string())
    }

    /// The label of an event, taken out (None: its expression failed).
    pub fn take(&mut self, partition: i32, offset: i64) -> Option<Scalar> {
        self.labels.remove(&(partition, offset))
    }
}

/// Writes training rows in chunks.
pub struct TrainingWriter {
    store: Store,
    key_name: String,
    key_type: ColumnType,
    label_type: ColumnType,
    /// Output column names and types of the features, view by view.
    features: Vec<(String, ColumnType)>,
    rows: Vec<(Probed, Scalar, i32)>,
    /// Rows written so far.
    pub written: u64,
    pub files: Vec<String>,
}

/// Column names of every feature of `plans`: the feature's own name, or
/// `<view>__<feature>` where two views share a name (Feast's convention).
pub fn feature_columns(plans: &[ViewPlan]) -> Vec<(String, ColumnType)> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for p in plans {
        for f in &p.features {
            *count.entry(f.column.as_str()).or_default() += 1;
        }
    }
    plans
        .iter()
        .flat_map(|p| {
            let count = &count;
            p.features.iter().map(move |f| {
                let name = if count[f.column.as_str()] > 1 {
                    format!("{}__{}", p.name, f.column)
                } else {
                    f.column.clone()
                };
                (name, OutType::of(f).column_type())
            })
        })
        .collect()
}

impl TrainingWriter {
    pub fn new(
        store: Store,
        key: (String, ColumnType),
        label_type: ColumnType,
        plans: &[ViewPlan],
    ) -> TrainingWriter {
        TrainingWriter {
            store,
            key_name: key.0,
            key_type: key.1,
            label_type,
            features: feature_columns(plans),
            rows: Vec::new(),
            written: 0,
            files: Vec::new(),
        }
    }

    /// The columns of the training set, in order.
    pub fn columns(&self) -> Vec<String> {
        let mut out = vec![
            self.key_name.clone(),
            "event_time".to_string(),
            "partition".to_string(),
            "offset".to_string(),
            "label".to_string(),
        ];
        out.extend(self.features.iter().map(|(n, _)| n.clone()));
        out
    }

    /// Adds a probed label event of `partition` with its label.
    pub fn push(&mut self, partition: i32, probed: Probed, label: Scalar) -> Result<(), String> {
        self.rows.push((probed, label, partition));
        if self.rows.len() >= CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one file.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.rows);
        let err = |e: PolarsError| e.to_string();
        let mut columns = vec![
            to_series(
                &self.key_name,
                &self.key_type,
                rows.iter().map(|r| r.0.row.key.clone()),
            )
            .into_column(),
            Series::new(
                "event_time".into(),
                rows.iter().map(|r| r.0.row.ts).collect::<Vec<i64>>(),
            )
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .map_err(err)?
            .into_column(),
            Series::new(
                "partition".into(),
                rows.iter().map(|r| r.2).collect::<Vec<i32>>(),
            )
            .into_column(),
            Series::new(
                "offset".into(),
                rows.iter().map(|r| r.0.row.offset).collect::<Vec<i64>>(),
            )
            .into_column(),
            to_series(
                "label",
                &self.label_type,
                rows.iter_mut().map(|r| std::mem::take(&mut r.1)),
            )
            .into_column(),
        ];
        let mut f = 0;
        let views = rows.first().map_or(0, |r| r.0.features.len());
        for v in 0..views {
            let width = rows[0].0.features[v].len();
            for i in 0..width {
                let (name, ty) = &self.features[f];
                columns.push(
                    to_series(
                        name,
                        ty,
                        rows.iter_mut()
                            .map(|r| std::mem::take(&mut r.0.features[v][i])),
                    )
                    .into_column(),
                );
                f += 1;
            }
        }
        let mut df = DataFrame::new(columns).map_err(err)?;
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df).map_err(err)?;
        let name = format!("part-{:06}.parquet", self.files.len());
        self.store.put(&name, buf).map_err(|e| e.to_string())?;
        self.written += rows.len() as u64;
        self.files.push(format!("{}/{name}", self.store.url()));
        Ok(())
    }
}
