//! A view's rows in a SQLite file: one table per view, one row per key,
//! upserted when the task checkpoints. An online store with no server to
//! run (Feast's default for local work): a service or a notebook on the
//! same machine reads a key with any SQLite client (`sqlite3` is in
//! Python's standard library).
//!
//! The table (created if missing, and its file and directory) has the key
//! column as its primary key, `as_of` (epoch ms) and a column per feature:
//! INTEGER, REAL, TEXT, booleans as 0/1, lists as JSON text. The database
//! is in WAL mode, so readers never wait for the job nor the job for them.
//! Rows are held per task and written in one transaction before the task's
//! offsets are recorded, so a crash loses nothing a checkpoint covers. An
//! upsert changes a row only if its `as_of` is not older than the stored
//! one, so a replay never moves a row back in time; the rows it skips are
//! counted.

use std::collections::HashMap;

use rusqlite::types::Value;

use crate::engine::value::Scalar;
use crate::engine::view::FeatureRow;
use crate::spec::ColumnType;
use crate::spec::SqliteSpec;
use crate::spec::validate::{OutType, ViewPlan};

use super::latest::{Upsert, quote_ident as ident};
use super::{JobError, RunSummary};

/// The declared type of a feature's column.
fn sql_type(t: &OutType) -> &'static str {
    match t {
        OutType::Array(_) => "TEXT",
        OutType::Plain(t) | OutType::Nullable(t) => match t {
            ColumnType::Long | ColumnType::Boolean => "INTEGER",
            ColumnType::Double => "REAL",
            ColumnType::String | ColumnType::List(_) => "TEXT",
        },
    }
}

/// A value as SQLite stores it in a column of type `t`.
fn value(v: &Scalar, t: &OutType) -> Value {
    match (t, v) {
        (_, Scalar::Null) => Value::Null,
        (OutType::Array(_), v) => Value::Text(v.to_json().to_string()),
        (OutType::Plain(c) | OutType::Nullable(c), v) => match (c, v) {
            (ColumnType::Long, Scalar::Long(x)) => Value::Integer(*x),
            (ColumnType::Double, Scalar::Double(x)) => Value::Real(*x),
            (ColumnType::Double, Scalar::Long(x)) => Value::Real(*x as f64),
            (ColumnType::Boolean, Scalar::Bool(b)) => Value::Integer(i64::from(*b)),
            (ColumnType::String, Scalar::Str(s)) => Value::Text(s.to_string()),
            (ColumnType::List(_), v) => Value::Text(v.to_json().to_string()),
            _ => Value::Null,
        },
    }
}

/// One view's rows to a SQLite table.
pub struct SqliteRows {
    path: String,
    table: String,
    key_long: bool,
    types: Vec<OutType>,
    /// CREATE TABLE IF NOT EXISTS …
    create: String,
    /// Every column the table must have, with its declared type.
    expected: Vec<(String, &'static str)>,
    /// The upsert of one row.
    upsert: String,
    connection: Option<rusqlite::Connection>,
}

impl SqliteRows {
    /// A view's rows to the file and table `spec` says.
    pub fn new(plan: &ViewPlan, spec: &SqliteSpec) -> SqliteRows {
        let table = spec.table.clone().unwrap_or_else(|| plan.name.clone());
        let types: Vec<OutType> = plan.features.iter().map(OutType::of).collect();
        let key_long = plan.key_type == ColumnType::Long;
        let key_sql = if key_long { "INTEGER" } else { "TEXT" };
        let expected: Vec<(String, &'static str)> = [
            (plan.key.clone(), key_sql),
            ("as_of".to_string(), "INTEGER"),
        ]
        .into_iter()
        .chain(
            plan.features
                .iter()
                .zip(&types)
                .map(|(f, t)| (f.column.clone(), sql_type(t))),
        )
        .collect();
        let mut columns = vec![
            format!("{} {key_sql} PRIMARY KEY", ident(&plan.key)),
            "\"as_of\" INTEGER NOT NULL".to_string(),
        ];
        columns.extend(
            expected[2..]
                .iter()
                .map(|(n, t)| format!("{} {t}", ident(n))),
        );
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            ident(&table),
            columns.join(", ")
        );
        let names: Vec<String> = expected.iter().map(|(n, _)| ident(n)).collect();
        let upsert = format!(
            "INSERT INTO {t} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {} WHERE {t}.\"as_of\" <= excluded.\"as_of\"",
            names.join(", "),
            (1..=names.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            names[0],
            names[1..]
                .iter()
                .map(|n| format!("{n} = excluded.{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            t = ident(&table)
        );
        SqliteRows {
            path: spec.path.clone(),
            table,
            key_long,
            types,
            create,
            expected,
            upsert,
            connection: None,
        }
    }

    fn failed(&self, e: impl std::fmt::Display) -> JobError {
        JobError::OnlineStore {
            url: self.path.clone(),
            why: format!("table `{}`: {e}", self.table),
        }
    }

    /// Opens the file (creating it and its directory), the table, and
    /// checks an existing table's columns.
    fn open(&self) -> Result<rusqlite::Connection, JobError> {
        if let Some(dir) = std::path::Path::new(&self.path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| self.failed(e))?;
        }
        let c = rusqlite::Connection::open(&self.path).map_err(|e| self.failed(e))?;
        c.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.failed(e))?;
        c.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.failed(e))?;
        c.execute_batch(&self.create).map_err(|e| self.failed(e))?;
        let mut stmt = c
            .prepare(&format!("PRAGMA table_info({})", ident(&self.table)))
            .map_err(|e| self.failed(e))?;
        let have: HashMap<String, String> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.failed(e))?;
        drop(stmt);
        let wrong: Vec<String> = self
            .expected
            .iter()
            .filter_map(|(name, ty)| match have.get(name) {
                None => Some(format!("`{name}` is missing ({ty})")),
                Some(t) if !t.eq_ignore_ascii_case(ty) => {
                    Some(format!("`{name}` is {t}, the view writes {ty}"))
                }
                Some(_) => None,
            })
            .collect();
        if !wrong.is_empty() {
            return Err(JobError::StoreMismatch(format!(
                "SQLite table `{}` in {} does not fit the view's rows: {}. It was made for another version of the view: drop it (eddy recreates it), or name another `output.sqlite.table`",
                self.table,
                self.path,
                wrong.join("; ")
            )));
        }
        Ok(c)
    }

    fn write(&mut self, rows: Vec<FeatureRow>) -> Result<(u64, u64), JobError> {
        if self.connection.is_none() {
            self.connection = Some(self.open()?);
        }
        let path = self.path.clone();
        let table = self.table.clone();
        let failed = |e: rusqlite::Error| JobError::OnlineStore {
            url: path.clone(),
            why: format!("table `{table}`: {e}"),
        };
        let c = self.connection.as_mut().expect("opened");
        let tx = c.transaction().map_err(failed)?;
        let mut written = 0u64;
        let n = rows.len() as u64;
        {
            let mut stmt = tx.prepare_cached(&self.upsert).map_err(failed)?;
            for row in rows {
                let mut params: Vec<Value> = Vec::with_capacity(row.values.len() + 2);
                params.push(match (&row.key, self.key_long) {
                    (Scalar::Long(k), true) => Value::Integer(*k),
                    (k, _) => Value::Text(k.key_text()),
                });
                params.push(Value::Integer(row.as_of));
                params.extend(row.values.iter().zip(&self.types).map(|(v, t)| value(v, t)));
                written += stmt
                    .execute(rusqlite::params_from_iter(params))
                    .map_err(failed)? as u64;
            }
        }
        tx.commit().map_err(failed)?;
        Ok((written, n - written))
    }
}

impl Upsert for SqliteRows {
    fn upsert(&mut self, rows: Vec<(String, FeatureRow)>) -> Result<(u64, u64), JobError> {
        self.write(rows.into_iter().map(|(_, row)| row).collect())
    }

    fn reset(&mut self) {
        self.connection = None;
    }

    fn report(&self, written: u64, skipped: u64, summary: &mut RunSummary) {
        summary.sqlite.0 += written;
        summary.sqlite.1 += skipped;
    }
}
