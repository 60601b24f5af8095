//! Rows to polars and back, for the SQL parts of a view (`derive`,
//! `filter`).
//!
//! Expressions are evaluated by polars, on batches of released events, so
//! the streaming path and a batch computation over Parquet evaluate them with
//! the same code. A view without expressions never builds a frame.

use std::sync::Arc;

use polars::prelude::*;

use super::value::Scalar;
use crate::spec::ColumnType;

/// A SQL expression failed on real data (a division by zero in strict
/// mode, a cast of a bad string...).
#[derive(Debug, thiserror::Error)]
#[error("evaluating `{expression}`: {message}")]
pub struct ExprError {
    /// The SQL.
    pub expression: String,
    /// What polars said.
    pub message: String,
}

impl ExprError {
    /// Who must act: the expression is the spec's.
    pub fn blame(&self) -> crate::topic::Blame {
        crate::topic::Blame::User
    }
}

/// Builds a polars column from one column of rows.
pub fn to_series(name: &str, ty: &ColumnType, values: impl Iterator<Item = Scalar>) -> Series {
    let name: PlSmallStr = name.into();
    match ty {
        ColumnType::Long => Series::new(
            name,
            values
                .map(|v| match v {
                    Scalar::Long(x) => Some(x),
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        ColumnType::Double => Series::new(
            name,
            values.map(|v| v.as_f64()).collect::<Vec<Option<f64>>>(),
        ),
        ColumnType::Boolean => Series::new(
            name,
            values
                .map(|v| match v {
                    Scalar::Bool(b) => Some(b),
                    _ => None,
                })
                .collect::<Vec<Option<bool>>>(),
        ),
        ColumnType::String => Series::new(
            name,
            values
                .map(|v| match v {
                    Scalar::Str(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect::<Vec<Option<String>>>(),
        ),
        ColumnType::List(inner) => {
            let items: Vec<Option<Series>> = values
                .map(|v| match v {
                    Scalar::List(items) => Some(to_series("", inner, items.iter().cloned())),
                    _ => None,
                })
                .collect();
            let mut s = Series::new(name, items);
            if s.dtype() != &ty.dtype() {
                s = s.cast(&ty.dtype()).unwrap_or(s);
            }
            s
        }
    }
}

/// Reads a polars column back into values of type `ty`.
pub fn from_series(s: &Series, ty: &ColumnType) -> Result<Vec<Scalar>, PolarsError> {
    let s = s.cast(&ty.dtype())?;
    Ok(match ty {
        ColumnType::Long => s
            .i64()?
            .iter()
            .map(|v| v.map_or(Scalar::Null, Scalar::Long))
            .collect(),
        ColumnType::Double => s
            .f64()?
            .iter()
            .map(|v| v.map_or(Scalar::Null, Scalar::Double))
            .collect(),
        ColumnType::Boolean => s
            .bool()?
            .iter()
            .map(|v| v.map_or(Scalar::Null, Scalar::Bool))
            .collect(),
        ColumnType::String => s
            .str()?
            .iter()
            .map(|v| v.map_or(Scalar::Null, |x| Scalar::Str(Arc::from(x))))
            .collect(),
        ColumnType::List(inner) => {
            let mut out = Vec::with_capacity(s.len());
            for item in s.list()?.into_iter() {
                out.push(match item {
                    None => Scalar::Null,
                    Some(inner_series) => Scalar::List(from_series(&inner_series, inner)?.into()),
                });
            }
            out
        }
    })
}

/// A column built value by value, typed as it fills (no `Vec<Scalar>` to
/// convert afterwards for the common numeric types).
#[derive(Debug)]
pub enum ColumnBuilder {
    /// Longs, with nulls.
    Long(Vec<Option<i64>>),
    /// Doubles, with nulls.
    Double(Vec<Option<f64>>),
    /// Booleans, with nulls.
    Boolean(Vec<Option<bool>>),
    /// Any other type, as values.
    Other(ColumnType, Vec<Scalar>),
}

impl ColumnBuilder {
    /// An empty column of type `t`, with room for `rows`.
    pub fn new(t: &ColumnType, rows: usize) -> ColumnBuilder {
        match t {
            ColumnType::Long => ColumnBuilder::Long(Vec::with_capacity(rows)),
            ColumnType::Double => ColumnBuilder::Double(Vec::with_capacity(rows)),
            ColumnType::Boolean => ColumnBuilder::Boolean(Vec::with_capacity(rows)),
            other => ColumnBuilder::Other(other.clone(), Vec::with_capacity(rows)),
        }
    }

    /// Appends a value, as [`to_series`] would convert it.
    pub fn push(&mut self, v: Scalar) {
        match self {
            ColumnBuilder::Long(b) => b.push(match v {
                Scalar::Long(x) => Some(x),
                _ => None,
            }),
            ColumnBuilder::Double(b) => b.push(v.as_f64()),
            ColumnBuilder::Boolean(b) => b.push(match v {
                Scalar::Bool(x) => Some(x),
                _ => None,
            }),
            ColumnBuilder::Other(_, b) => b.push(v),
        }
    }

    /// The column, named `name`.
    pub fn finish(self, name: &str) -> Series {
        match self {
            ColumnBuilder::Long(b) => Series::new(name.into(), b),
            ColumnBuilder::Double(b) => Series::new(name.into(), b),
            ColumnBuilder::Boolean(b) => Series::new(name.into(), b),
            ColumnBuilder::Other(t, b) => to_series(name, &t, b.into_iter()),
        }
    }
}

impl ColumnBuilder {
    /// Values so far.
    pub fn len(&self) -> usize {
        match self {
            ColumnBuilder::Long(b) => b.len(),
            ColumnBuilder::Double(b) => b.len(),
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::Other(_, b) => b.len(),
        }
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` back as a scalar (for tests and checks).
    pub fn get(&self, i: usize) -> Scalar {
        match self {
            ColumnBuilder::Long(b) => b[i].map_or(Scalar::Null, Scalar::Long),
            ColumnBuilder::Double(b) => b[i].map_or(Scalar::Null, Scalar::Double),
            ColumnBuilder::Boolean(b) => b[i].map_or(Scalar::Null, Scalar::Bool),
            ColumnBuilder::Other(_, b) => b[i].clone(),
        }
    }

    /// An empty builder of the same type.
    pub fn empty_like(&self) -> ColumnBuilder {
        match self {
            ColumnBuilder::Long(_) => ColumnBuilder::Long(Vec::new()),
            ColumnBuilder::Double(_) => ColumnBuilder::Double(Vec::new()),
            ColumnBuilder::Boolean(_) => ColumnBuilder::Boolean(Vec::new()),
            ColumnBuilder::Other(t, _) => ColumnBuilder::Other(t.clone(), Vec::new()),
        }
    }
}

/// The compiled SQL of one view.
pub struct Expressions {
    /// (name, expression, type) in order.
    derive: Vec<(String, Expr, ColumnType, String)>,
    filter: Option<(Expr, String)>,
}

impl Expressions {
    /// Compiles `derive` and `filter` (already checked by the spec validator).
    pub fn compile(
        derive: &[(String, String)],
        filter: Option<&str>,
        columns: &crate::spec::Columns,
    ) -> Result<Expressions, ExprError> {
        let compile = |sql: &str| {
            polars::sql::sql_expr(sql).map_err(|e| ExprError {
                expression: sql.to_string(),
                message: e.to_string(),
            })
        };
        let mut out = Vec::new();
        for (name, sql) in derive {
            let ty = columns.get(name).cloned().unwrap_or(ColumnType::Double);
            out.push((name.clone(), compile(sql)?, ty, sql.clone()));
        }
        let filter = match filter {
            Some(sql) => Some((compile(sql)?, sql.to_string())),
            None => None,
        };
        Ok(Expressions {
            derive: out,
            filter,
        })
    }

    /// Whether the view has no join, derive or filter.
    pub fn is_empty(&self) -> bool {
        self.derive.is_empty() && self.filter.is_none()
    }

    /// Adds the derived columns to `columns` (one vector per input column,
    /// named by `names`) and returns which rows pass the filter.
    pub fn apply(
        &self,
        names: &[(String, ColumnType)],
        columns: &mut Vec<Vec<Scalar>>,
        rows: usize,
    ) -> Result<Vec<bool>, ExprError> {
        let wrap = |sql: &str, e: PolarsError| ExprError {
            expression: sql.to_string(),
            message: e.to_string(),
        };
        let series: Vec<Column> = names
            .iter()
            .zip(columns.iter())
            .map(|((n, t), vals)| to_series(n, t, vals.iter().cloned()).into_column())
            .collect();
        let mut df = DataFrame::new(series).map_err(|e| wrap("(building the frame)", e))?;
        for (name, expr, ty, sql) in &self.derive {
            df = df
                .lazy()
                .with_column(expr.clone().cast(ty.dtype()).alias(name.as_str()))
                .collect()
                .map_err(|e| wrap(sql, e))?;
            let s = df
                .column(name)
                .map_err(|e| wrap(sql, e))?
                .as_materialized_series();
            columns.push(from_series(s, ty).map_err(|e| wrap(sql, e))?);
        }
        match &self.filter {
            None => Ok(vec![true; rows]),
            Some((expr, sql)) => {
                let out = df
                    .lazy()
                    .select([expr.clone().alias("__keep")])
                    .collect()
                    .map_err(|e| wrap(sql, e))?;
                let keep = out.column("__keep").map_err(|e| wrap(sql, e))?;
                let keep = keep.bool().map_err(|e| wrap(sql, e))?;
                Ok(keep.iter().map(|v| v == Some(true)).collect())
            }
        }
    }
}
