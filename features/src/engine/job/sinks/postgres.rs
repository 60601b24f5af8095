//! A view's rows in PostgreSQL: one table per view, one row per key,
//! upserted when the task checkpoints, for services that query features
//! with SQL and for reports over windowed summaries.
//!
//! The table (created if missing) has the key column as its primary key,
//! `as_of` (epoch ms) and a column per feature: BIGINT, DOUBLE PRECISION,
//! TEXT or BOOLEAN, lists as JSONB, every feature nullable. Rows are held
//! per task and written in one transaction before the task's offsets are
//! recorded, so a crash loses nothing a checkpoint covers. The rows go in
//! with `COPY` (binary) into a temporary table, then one `INSERT … SELECT
//! … ON CONFLICT … WHERE` merges them: a statement per checkpoint, not per
//! row. The merge changes a row only if its `as_of` is not older than the
//! stored one, so a replay never moves a row back in time; the rows it
//! skips are counted.

use std::collections::HashMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use crate::engine::value::Scalar;
use crate::engine::view::FeatureRow;
use crate::spec::ColumnType;
use crate::spec::PostgresSpec;
use crate::spec::validate::{OutType, ViewPlan};

use super::latest::{Upsert, quote_ident as ident, without_password};
use super::{JobError, RunSummary};

/// The SQL type of a feature.
fn sql_type(t: &OutType) -> &'static str {
    match t {
        OutType::Array(_) => "JSONB",
        OutType::Plain(t) | OutType::Nullable(t) => match t {
            ColumnType::Long => "BIGINT",
            ColumnType::Double => "DOUBLE PRECISION",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::String => "TEXT",
            ColumnType::List(_) => "JSONB",
        },
    }
}

/// The wire type of a column of `sql_type`, for binary `COPY`.
fn wire_type(sql: &str) -> Type {
    match sql {
        "BIGINT" => Type::INT8,
        "DOUBLE PRECISION" => Type::FLOAT8,
        "BOOLEAN" => Type::BOOL,
        "JSONB" => Type::JSONB,
        _ => Type::TEXT,
    }
}

/// A value as a parameter of the column's type (a NULL of that type too).
fn param(v: &Scalar, t: &OutType) -> Box<dyn ToSql + Sync> {
    match (t, v) {
        (OutType::Array(_), Scalar::Null) => Box::new(None::<serde_json::Value>),
        (OutType::Array(_), v) => Box::new(v.to_json()),
        (OutType::Plain(c) | OutType::Nullable(c), v) => match (c, v) {
            (ColumnType::Long, Scalar::Long(x)) => Box::new(*x),
            (ColumnType::Long, _) => Box::new(None::<i64>),
            (ColumnType::Double, Scalar::Double(x)) => Box::new(*x),
            (ColumnType::Double, Scalar::Long(x)) => Box::new(*x as f64),
            (ColumnType::Double, _) => Box::new(None::<f64>),
            (ColumnType::Boolean, Scalar::Bool(b)) => Box::new(*b),
            (ColumnType::Boolean, _) => Box::new(None::<bool>),
            (ColumnType::String, Scalar::Str(s)) => Box::new(s.to_string()),
            (ColumnType::String, _) => Box::new(None::<String>),
            (ColumnType::List(_), Scalar::Null) => Box::new(None::<serde_json::Value>),
            (ColumnType::List(_), v) => Box::new(v.to_json()),
        },
    }
}

/// A row to upsert: the key, its `as_of` and the values.
type Row = (Scalar, i64, Vec<Scalar>);

/// One view's rows to PostgreSQL.
pub struct PostgresRows {
    table: String,
    key_type: ColumnType,
    types: Vec<OutType>,
    /// CREATE TABLE IF NOT EXISTS …
    create: String,
    /// Every column the table must have: (name, PostgreSQL's name of its
    /// type in `information_schema`).
    expected: Vec<(String, &'static str)>,
    /// The staging table: created per session, emptied at each commit.
    stage: String,
    /// `COPY <stage> (…) FROM STDIN (FORMAT binary)`.
    copy: String,
    /// The merge of the staged rows into the table.
    merge: String,
    /// Each column's wire type, in `COPY` order.
    wire: Vec<Type>,
    url: String,
    config: postgres::Config,
    client: Option<postgres::Client>,
}

impl PostgresRows {
    /// A view's rows to the table `spec` says.
    pub fn new(plan: &ViewPlan, spec: &PostgresSpec) -> Result<PostgresRows, JobError> {
        let config: postgres::Config =
            spec.url
                .parse()
                .map_err(|e: postgres::Error| JobError::OnlineStore {
                    url: without_password(&spec.url),
                    why: e.to_string(),
                })?;
        let table = spec.table.clone().unwrap_or_else(|| plan.name.clone());
        let types: Vec<OutType> = plan.features.iter().map(OutType::of).collect();
        let key_sql = if plan.key_type == ColumnType::Long {
            "BIGINT"
        } else {
            "TEXT"
        };
        let mut columns = vec![
            format!("{} {key_sql} PRIMARY KEY", ident(&plan.key)),
            "\"as_of\" BIGINT NOT NULL".to_string(),
        ];
        columns.extend(
            plan.features
                .iter()
                .zip(&types)
                .map(|(f, t)| format!("{} {}", ident(&f.column), sql_type(t))),
        );
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            ident(&table),
            columns.join(", ")
        );
        let expected: Vec<(String, &'static str)> =
            [(plan.key.clone(), key_sql), ("as_of".to_string(), "BIGINT")]
                .into_iter()
                .chain(
                    plan.features
                        .iter()
                        .zip(&types)
                        .map(|(f, t)| (f.column.clone(), sql_type(t))),
                )
                .collect();
        let names: Vec<String> = std::iter::once(ident(&plan.key))
            .chain(std::iter::once("\"as_of\"".to_string()))
            .chain(plan.features.iter().map(|f| ident(&f.column)))
            .collect();
        let updates: Vec<String> = names[1..]
            .iter()
            .map(|n| format!("{n} = EXCLUDED.{n}"))
            .collect();
        let stage = ident(&format!("eddy_stage_{table}"));
        let columns = names.join(", ");
        let copy = format!("COPY {stage} ({columns}) FROM STDIN (FORMAT binary)");
        let merge = format!(
            "INSERT INTO {t} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT ({}) DO UPDATE SET {} WHERE {t}.\"as_of\" <= EXCLUDED.\"as_of\"",
            names[0],
            updates.join(", "),
            t = ident(&table)
        );
        let wire = expected.iter().map(|(_, sql)| wire_type(sql)).collect();
        Ok(PostgresRows {
            table,
            key_type: plan.key_type.clone(),
            types,
            create,
            expected,
            stage,
            copy,
            merge,
            wire,
            url: without_password(&spec.url),
            config,
            client: None,
        })
    }

    /// A table that already existed must have the view's columns with
    /// their types: a changed spec over an old table is the user's to
    /// resolve (migrate or drop it), said plainly rather than as a failed
    /// upsert.
    fn check_columns(&self, client: &mut postgres::Client) -> Result<(), JobError> {
        let rows = client
            .query(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&self.table],
            )
            .map_err(|e| self.failed(e))?;
        let have: HashMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        let mut wrong = Vec::new();
        for (name, ty) in &self.expected {
            match have.get(name) {
                None => wrong.push(format!("`{name}` is missing ({ty})")),
                Some(t) if !t.eq_ignore_ascii_case(ty) => {
                    wrong.push(format!("`{name}` is {t}, the view writes {ty}"))
                }
                Some(_) => {}
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(JobError::StoreMismatch(format!(
            "PostgreSQL table `{}` at {} does not fit view's rows: {}. It was made for another version of the view: migrate it, drop it (eddy recreates it), or name another `output.postgres.table`",
            self.table,
            self.url,
            wrong.join("; ")
        )))
    }

    fn failed(&self, e: postgres::Error) -> JobError {
        JobError::OnlineStore {
            url: self.url.clone(),
            why: format!("table `{}`: {e}", self.table),
        }
    }

    fn write(&mut self, rows: Vec<Row>) -> Result<(u64, u64), JobError> {
        if self.client.is_none() {
            let mut client = self
                .config
                .connect(postgres::NoTls)
                .map_err(|e| self.failed(e))?;
            client
                .batch_execute(&self.create)
                .map_err(|e| self.failed(e))?;
            self.check_columns(&mut client)?;
            // The table's columns, nothing else (no key: a batch holds
            // each key once, its latest row).
            client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA",
                    self.stage,
                    self.expected
                        .iter()
                        .map(|(n, _)| ident(n))
                        .collect::<Vec<_>>()
                        .join(", "),
                    ident(&self.table)
                ))
                .map_err(|e| self.failed(e))?;
            self.client = Some(client);
        }
        let key_long = self.key_type == ColumnType::Long;
        let n = rows.len() as u64;
        let url = self.url.clone();
        let failed = |e: postgres::Error| JobError::OnlineStore {
            url: url.clone(),
            why: e.to_string(),
        };
        let client = self.client.as_mut().expect("connected");
        let mut tx = client.transaction().map_err(failed)?;
        tx.batch_execute(&format!("TRUNCATE {}", self.stage))
            .map_err(failed)?;
        let sink = tx.copy_in(&self.copy).map_err(failed)?;
        let mut writer = BinaryCopyInWriter::new(sink, &self.wire);
        for (key, as_of, values) in rows {
            let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(values.len() + 2);
            params.push(match (&key, key_long) {
                (Scalar::Long(k), true) => Box::new(*k),
                (k, _) => Box::new(k.key_text()),
            });
            params.push(Box::new(as_of));
            for (v, t) in values.iter().zip(&self.types) {
                params.push(param(v, t));
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            writer.write(&refs).map_err(failed)?;
        }
        writer.finish().map_err(failed)?;
        let written = tx.execute(&self.merge, &[]).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok((written, n - written))
    }
}

impl Upsert for PostgresRows {
    fn upsert(&mut self, rows: Vec<(String, FeatureRow)>) -> Result<(u64, u64), JobError> {
        self.write(
            rows.into_iter()
                .map(|(_, row)| (row.key, row.as_of, row.values))
                .collect(),
        )
    }

    fn reset(&mut self) {
        self.client = None;
    }

    fn report(&self, written: u64, skipped: u64, summary: &mut RunSummary) {
        summary.postgres.0 += written;
        summary.postgres.1 += skipped;
    }
}
