//! The item table: business rules over it, and the candidates' own
//! columns for the ranker.
//!
//! The item table is a compacted topic (the spec's `item_table`). Serving
//! follows it and keeps each item's latest row. Whenever rows change, the
//! rules are evaluated with polars over the changed rows, and the set of
//! allowed items is updated. A request then costs one set lookup per
//! candidate, however complex the rules are. The ranker reads a
//! candidate's row for the inputs that describe the item (its price),
//! which the triggering event has only for the item it was about.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use polars::prelude::*;

use eddy_features::engine::frame::{from_series, to_series};
use eddy_features::engine::job::decode::RecordDecoder;
use eddy_features::engine::value::Scalar;
use eddy_features::registry::SchemaRegistry;
use eddy_features::spec::Columns;
use eddy_features::spec::validate::{ColumnType, record_columns};
use eddy_features::topic::Record;
use eddy_training::online::recommender::id_of;

/// The item table's latest rows, the rules and the items they allow.
pub struct ItemRules {
    /// The item table's topic.
    pub topic: String,
    decoder: RecordDecoder,
    columns: Columns,
    sql: Vec<String>,
    exprs: Vec<Expr>,
    /// Rows changed since the last evaluation: item → columns (None: the
    /// row was deleted).
    changed: HashMap<u64, Option<Box<[Scalar]>>>,
    allowed: HashSet<u64, foldhash::fast::RandomState>,
    /// Every item's latest row.
    rows: HashMap<u64, Box<[Scalar]>, foldhash::fast::RandomState>,
    /// Table records that could not be decoded, and rule evaluations
    /// that failed (the rows stay disallowed).
    pub rejected: u64,
}

impl ItemRules {
    /// Rules over the table on `topic`, keyed by `key`. Err names the
    /// rule that does not fit the table's columns.
    pub fn new(
        topic: &str,
        key: &str,
        schema: apache_avro::Schema,
        rules: &[String],
        registry: Arc<dyn SchemaRegistry>,
    ) -> Result<ItemRules, String> {
        let columns =
            record_columns(&schema).ok_or_else(|| format!("`{topic}` is not an Avro record"))?;
        let mut exprs = Vec::new();
        for sql in rules {
            let t = eddy_features::spec::validate::expression_type(&columns, sql)?;
            if t != ColumnType::Boolean {
                return Err(format!("rule `{sql}` gives {t:?}, not a boolean"));
            }
            exprs.push(polars::sql::sql_expr(sql).map_err(|e| e.to_string())?);
        }
        Ok(ItemRules {
            topic: topic.to_string(),
            decoder: RecordDecoder::new(registry, schema, &columns, key, None),
            columns,
            sql: rules.to_vec(),
            exprs,
            changed: HashMap::new(),
            allowed: HashSet::default(),
            rows: HashMap::default(),
            rejected: 0,
        })
    }

    /// Takes one table record; `flush` evaluates the rules.
    pub fn apply(&mut self, rec: &Record) {
        if rec.value.is_none() {
            if let Some(key) = rec
                .key
                .as_deref()
                .and_then(|k| self.decoder.key_from_bytes(k))
                .as_ref()
                .and_then(id_of)
            {
                self.changed.insert(key, None);
            }
            return;
        }
        match self.decoder.decode(rec) {
            Ok(row) => {
                if let Some(id) = id_of(&row.key) {
                    self.changed.insert(id, Some(row.columns));
                }
            }
            Err(_) => self.rejected += 1,
        }
    }

    /// Evaluates the rules over the changed rows.
    pub fn flush(&mut self) {
        if self.changed.is_empty() {
            return;
        }
        let changed: Vec<(u64, Option<Box<[Scalar]>>)> = self.changed.drain().collect();
        let rows: Vec<(u64, Box<[Scalar]>)> = changed
            .iter()
            .filter_map(|(id, row)| {
                match row {
                    None => {
                        self.allowed.remove(id);
                        self.rows.remove(id);
                    }
                    Some(r) => {
                        self.rows.insert(*id, r.clone());
                    }
                }
                row.clone().map(|r| (*id, r))
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        match self.evaluate(&rows) {
            Ok(verdicts) => {
                for ((id, _), ok) in rows.iter().zip(verdicts) {
                    if ok {
                        self.allowed.insert(*id);
                    } else {
                        self.allowed.remove(id);
                    }
                }
            }
            Err(e) => {
                self.rejected += rows.len() as u64;
                tracing::warn!(topic = %self.topic, error = %e, "business rules failed");
                for (id, _) in &rows {
                    self.allowed.remove(id);
                }
            }
        }
    }

    fn evaluate(&self, rows: &[(u64, Box<[Scalar]>)]) -> Result<Vec<bool>, String> {
        let series: Vec<Column> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, (name, t))| {
                to_series(name, t, rows.iter().map(|r| r.1[c].clone())).into_column()
            })
            .collect();
        let df = DataFrame::new(series).map_err(|e| e.to_string())?;
        let all = self
            .exprs
            .iter()
            .cloned()
            .reduce(|a, b| a.and(b))
            .unwrap_or(lit(true));
        let out = df
            .lazy()
            .select([all.fill_null(lit(false)).alias("ok")])
            .collect()
            .map_err(|e| format!("{:?}: {e}", self.sql))?;
        let s = out.column("ok").map_err(|e| e.to_string())?;
        Ok(
            from_series(s.as_materialized_series(), &ColumnType::Boolean)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|v| matches!(v, Scalar::Bool(true)))
                .collect(),
        )
    }

    /// The item has a row and every rule is true for it; without rules,
    /// every item is allowed, with a row or not.
    pub fn allows(&self, item: u64) -> bool {
        self.sql.is_empty() || self.allowed.contains(&item)
    }

    /// Whether there are rules to apply.
    pub fn has_rules(&self) -> bool {
        !self.sql.is_empty()
    }

    /// The index of the table's column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.get_index_of(name)
    }

    /// The item's latest row, if the table has one.
    pub fn row(&self, item: u64) -> Option<&[Scalar]> {
        self.rows.get(&item).map(|r| &r[..])
    }

    /// How many items the rules allow now.
    pub fn allowed(&self) -> usize {
        self.allowed.len()
    }
}
