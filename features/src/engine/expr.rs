//! Row-wise SQL expressions over a view's feature values: the
//! `derived_features` of a view (a click-through rate is clicks ÷ views).
//!
//! Why not polars, as `derive` and `filter` use: those run once per batch
//! of events, where a frame pays off. A derived feature is computed
//! wherever a view's values are produced: for each emitted row, and for
//! each point read (a training set's example, a model's input, serving's
//! read API). That is one row at a time, so the expression is compiled
//! once, typed against the feature columns, and evaluated on the row's
//! values. Being computed inside the view's values, it cannot differ
//! between the topic, Parquet, training sets and serving.
//!
//! The supported SQL, and its meaning (DuckDB's where engines differ):
//! - literals (numbers, 'text', TRUE, FALSE, NULL) and feature columns;
//! - `+ - * %` (on two longs, a long; an overflow is NULL), `/` (always a
//!   double; a division by zero is NULL, as in DuckDB), unary `-`;
//! - `= <> != < <= > >=`, `AND OR NOT` with SQL's three-valued logic,
//!   `IS [NOT] NULL`;
//! - `CASE [x] WHEN … THEN … [ELSE …] END`, `COALESCE`, `NULLIF`, `ABS`,
//!   `GREATEST`, `LEAST` (both ignore NULLs, as in DuckDB);
//! - `CAST(x AS DOUBLE | BIGINT)` (a double rounds half away from zero;
//!   out of range or NaN is NULL).
//!
//! Anything else is refused when the spec is validated, naming the
//! construct; nothing is evaluated differently from what it says.

use serde::{Deserialize, Serialize};
use sqlparser::ast::{self, BinaryOperator as B, UnaryOperator as U};

use super::value::Scalar;
use crate::spec::ColumnType;

/// A compiled expression.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Expr {
    /// The row's value at this index.
    Column(usize),
    /// A constant.
    Literal(Scalar),
    /// Arithmetic.
    Arith(Arith, Box<Expr>, Box<Expr>),
    /// A comparison.
    Compare(Compare, Box<Expr>, Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `NOT x`.
    Not(Box<Expr>),
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
    /// `x IS NULL` (true) or `x IS NOT NULL` (false).
    IsNull(Box<Expr>, bool),
    /// `CASE WHEN c THEN r … ELSE e END`.
    Case(Vec<(Expr, Expr)>, Option<Box<Expr>>),
    /// The first argument that is not NULL.
    Coalesce(Vec<Expr>),
    /// `NULLIF(a, b)`: NULL if a = b, else a.
    NullIf(Box<Expr>, Box<Expr>),
    /// `ABS(x)`.
    Abs(Box<Expr>),
    /// `GREATEST` (true) or `LEAST` (false) of the arguments not NULL.
    Extreme(bool, Vec<Expr>),
    /// `CAST(x AS DOUBLE)`.
    ToDouble(Box<Expr>),
    /// `CAST(x AS BIGINT)`.
    ToLong(Box<Expr>),
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arith {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compare {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// An expression's type while compiling: `None` is the NULL literal,
/// which fits any type.
type Type = Option<ColumnType>;

/// Compiles `sql` over `columns` (name, type; `None`: a column that cannot
/// be used, with why). Returns the expression and its type (the NULL
/// literal alone is a double).
pub fn compile(
    sql: &str,
    columns: &[(String, Result<ColumnType, String>)],
) -> Result<(Expr, ColumnType), String> {
    let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
            Ok(e)
        })
        .map_err(|e| format!("`{sql}` is not a SQL expression: {e}"))?;
    let (expr, ty) = Compiler { columns }.expr(&parsed)?;
    Ok((expr, ty.unwrap_or(ColumnType::Double)))
}

struct Compiler<'a> {
    columns: &'a [(String, Result<ColumnType, String>)],
}

fn numeric(t: &Type) -> bool {
    t.as_ref().is_none_or(ColumnType::is_numeric)
}

fn name(t: &Type) -> String {
    t.as_ref()
        .map_or("NULL".into(), |t| format!("{t:?}").to_lowercase())
}

/// The type two branches share: the same, NULL and anything, or long and
/// double (double).
fn common(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        (None, t) | (t, None) => Some(t.clone()),
        (Some(x), Some(y)) if x == y => Some(a.clone()),
        (Some(x), Some(y)) if x.is_numeric() && y.is_numeric() => Some(Some(ColumnType::Double)),
        _ => None,
    }
}

impl Compiler<'_> {
    fn expr(&self, e: &ast::Expr) -> Result<(Expr, Type), String> {
        use ast::Expr as E;
        Ok(match e {
            E::Identifier(id) => self.column(&id.value)?,
            E::Nested(inner) => self.expr(inner)?,
            E::Value(v) => literal(v)?,
            E::UnaryOp { op, expr } => {
                let (x, t) = self.expr(expr)?;
                match op {
                    U::Minus if numeric(&t) => (Expr::Neg(Box::new(x)), t),
                    U::Plus if numeric(&t) => (x, t),
                    U::Not if t.is_none() || t == Some(ColumnType::Boolean) => {
                        (Expr::Not(Box::new(x)), Some(ColumnType::Boolean))
                    }
                    _ => return Err(format!("`{e}`: {op} does not apply to a {}", name(&t))),
                }
            }
            E::BinaryOp { left, op, right } => self.binary(e, left, op, right)?,
            E::IsNull(x) | E::IsNotNull(x) => {
                let (x, _) = self.expr(x)?;
                (
                    Expr::IsNull(Box::new(x), matches!(e, E::IsNull(_))),
                    Some(ColumnType::Boolean),
                )
            }
            E::Case {
                operand,
                conditions,
                results,
                else_result,
            } => self.case(
                e,
                operand.as_deref(),
                conditions,
                results,
                else_result.as_deref(),
            )?,
            E::Cast {
                expr, data_type, ..
            } => {
                let (x, t) = self.expr(expr)?;
                if !numeric(&t) {
                    return Err(format!(
                        "`{e}`: only numbers can be cast, not a {}",
                        name(&t)
                    ));
                }
                let target = data_type.to_string().to_uppercase();
                match target.as_str() {
                    "DOUBLE" | "FLOAT" | "REAL" | "DOUBLE PRECISION" | "FLOAT8" => {
                        (Expr::ToDouble(Box::new(x)), Some(ColumnType::Double))
                    }
                    "BIGINT" | "INT" | "INTEGER" | "INT8" | "LONG" => {
                        (Expr::ToLong(Box::new(x)), Some(ColumnType::Long))
                    }
                    _ => return Err(format!("`{e}`: casts go to DOUBLE or BIGINT, not {target}")),
                }
            }
            E::Function(f) => self.function(e, f)?,
            other => {
                return Err(format!(
                    "`{other}` is not supported in derived features (see README, \"derived_features\")"
                ));
            }
        })
    }

    fn column(&self, name: &str) -> Result<(Expr, Type), String> {
        let found = self
            .columns
            .iter()
            .position(|(n, _)| n == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(name))
            });
        match found {
            Some(i) => match &self.columns[i].1 {
                Ok(t) => Ok((Expr::Column(i), Some(t.clone()))),
                Err(why) => Err(format!("`{name}` {why}")),
            },
            None => Err(format!(
                "unknown column `{name}`; the view's features here are {:?}",
                self.columns
                    .iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
            )),
        }
    }

    fn binary(
        &self,
        e: &ast::Expr,
        left: &ast::Expr,
        op: &B,
        right: &ast::Expr,
    ) -> Result<(Expr, Type), String> {
        let (a, ta) = self.expr(left)?;
        let (b, tb) = self.expr(right)?;
        let (a, b) = (Box::new(a), Box::new(b));
        let long = |t: &Type| t.is_none() || *t == Some(ColumnType::Long);
        let arith = |op: Arith| -> Result<(Expr, Type), String> {
            if !numeric(&ta) || !numeric(&tb) {
                return Err(format!(
                    "`{e}`: arithmetic needs numbers, not a {} and a {}",
                    name(&ta),
                    name(&tb)
                ));
            }
            let t = if op != Arith::Div && long(&ta) && long(&tb) {
                ColumnType::Long
            } else {
                ColumnType::Double
            };
            Ok((Expr::Arith(op, a.clone(), b.clone()), Some(t)))
        };
        let compare = |op: Compare| -> Result<(Expr, Type), String> {
            if common(&ta, &tb).is_none() {
                return Err(format!(
                    "`{e}` compares a {} with a {}",
                    name(&ta),
                    name(&tb)
                ));
            }
            Ok((
                Expr::Compare(op, a.clone(), b.clone()),
                Some(ColumnType::Boolean),
            ))
        };
        let logic = |and: bool| -> Result<(Expr, Type), String> {
            for t in [&ta, &tb] {
                if t.as_ref().is_some_and(|t| *t != ColumnType::Boolean) {
                    return Err(format!(
                        "`{e}`: AND and OR need booleans, not a {}",
                        name(t)
                    ));
                }
            }
            let x = if and {
                Expr::And(a.clone(), b.clone())
            } else {
                Expr::Or(a.clone(), b.clone())
            };
            Ok((x, Some(ColumnType::Boolean)))
        };
        match op {
            B::Plus => arith(Arith::Add),
            B::Minus => arith(Arith::Sub),
            B::Multiply => arith(Arith::Mul),
            B::Divide => arith(Arith::Div),
            B::Modulo => arith(Arith::Mod),
            B::Eq => compare(Compare::Eq),
            B::NotEq => compare(Compare::NotEq),
            B::Lt => compare(Compare::Lt),
            B::LtEq => compare(Compare::LtEq),
            B::Gt => compare(Compare::Gt),
            B::GtEq => compare(Compare::GtEq),
            B::And => logic(true),
            B::Or => logic(false),
            other => Err(format!(
                "`{e}`: the operator {other} is not supported in derived features"
            )),
        }
    }

    fn case(
        &self,
        e: &ast::Expr,
        operand: Option<&ast::Expr>,
        conditions: &[ast::Expr],
        results: &[ast::Expr],
        otherwise: Option<&ast::Expr>,
    ) -> Result<(Expr, Type), String> {
        let operand = operand.map(|o| self.expr(o)).transpose()?;
        let mut arms = Vec::new();
        let mut ty: Type = None;
        for (c, r) in conditions.iter().zip(results) {
            let (c, tc) = self.expr(c)?;
            let c = match &operand {
                // `CASE x WHEN v`: x = v.
                Some((x, tx)) => {
                    if common(tx, &tc).is_none() {
                        return Err(format!(
                            "`{e}` compares a {} with a {}",
                            name(tx),
                            name(&tc)
                        ));
                    }
                    Expr::Compare(Compare::Eq, Box::new(x.clone()), Box::new(c))
                }
                None if tc.is_none() || tc == Some(ColumnType::Boolean) => c,
                None => {
                    return Err(format!(
                        "`{e}`: a WHEN condition must be a boolean, not a {}",
                        name(&tc)
                    ));
                }
            };
            let (r, tr) = self.expr(r)?;
            ty = common(&ty, &tr)
                .ok_or_else(|| format!("`{e}` mixes a {} and a {}", name(&ty), name(&tr)))?;
            arms.push((c, r));
        }
        let otherwise = match otherwise {
            Some(o) => {
                let (o, to) = self.expr(o)?;
                ty = common(&ty, &to)
                    .ok_or_else(|| format!("`{e}` mixes a {} and a {}", name(&ty), name(&to)))?;
                Some(Box::new(o))
            }
            None => None,
        };
        Ok((Expr::Case(arms, otherwise), ty))
    }

    fn function(&self, e: &ast::Expr, f: &ast::Function) -> Result<(Expr, Type), String> {
        let fname = f.name.to_string().to_uppercase();
        let args: Vec<&ast::Expr> = match &f.args {
            ast::FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
            {
                list.args
                    .iter()
                    .map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => Ok(x),
                        _ => Err(format!("`{e}`: only plain arguments are supported")),
                    })
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("`{e}` is not supported in derived features")),
        };
        if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
            return Err(format!(
                "`{e}`: derived features are computed per row: no FILTER, OVER or WITHIN GROUP"
            ));
        }
        let compiled: Vec<(Expr, Type)> = args
            .iter()
            .map(|a| self.expr(a))
            .collect::<Result<_, _>>()?;
        let arity = |n: usize| -> Result<(), String> {
            if compiled.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "`{e}`: {fname} takes {n} argument(s), not {}",
                    compiled.len()
                ))
            }
        };
        let shared = || -> Result<Type, String> {
            compiled.iter().try_fold(None, |acc: Type, (_, t)| {
                common(&acc, t)
                    .ok_or_else(|| format!("`{e}` mixes a {} and a {}", name(&acc), name(t)))
            })
        };
        let exprs = || compiled.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
        match fname.as_str() {
            "COALESCE" if !compiled.is_empty() => Ok((Expr::Coalesce(exprs()), shared()?)),
            "NULLIF" => {
                arity(2)?;
                shared()?;
                let mut x = exprs().into_iter();
                let (a, b) = (x.next().expect("two"), x.next().expect("two"));
                Ok((
                    Expr::NullIf(Box::new(a), Box::new(b)),
                    compiled[0].1.clone(),
                ))
            }
            "ABS" => {
                arity(1)?;
                if !numeric(&compiled[0].1) {
                    return Err(format!("`{e}`: ABS needs a number"));
                }
                Ok((
                    Expr::Abs(Box::new(compiled[0].0.clone())),
                    compiled[0].1.clone(),
                ))
            }
            "GREATEST" | "LEAST" if !compiled.is_empty() => {
                let t = shared()?;
                if !numeric(&t) {
                    return Err(format!("`{e}`: {fname} needs numbers"));
                }
                Ok((Expr::Extreme(fname == "GREATEST", exprs()), t))
            }
            _ => Err(format!(
                "`{e}`: the function {fname} is not supported in derived features (COALESCE, NULLIF, ABS, GREATEST, LEAST and CAST are)"
            )),
        }
    }
}

fn literal(v: &ast::Value) -> Result<(Expr, Type), String> {
    Ok(match v {
        ast::Value::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => (Expr::Literal(Scalar::Long(i)), Some(ColumnType::Long)),
            Err(_) => match n.parse::<f64>() {
                Ok(x) => (Expr::Literal(Scalar::Double(x)), Some(ColumnType::Double)),
                Err(_) => return Err(format!("`{n}` is not a number")),
            },
        },
        ast::Value::SingleQuotedString(s) => (
            Expr::Literal(Scalar::Str(s.as_str().into())),
            Some(ColumnType::String),
        ),
        ast::Value::Boolean(b) => (Expr::Literal(Scalar::Bool(*b)), Some(ColumnType::Boolean)),
        ast::Value::Null => (Expr::Literal(Scalar::Null), None),
        other => return Err(format!("the literal `{other}` is not supported")),
    })
}

/// A number as a double (longs and doubles), if it is one.
fn as_f64(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Long(i) => Some(*i as f64),
        Scalar::Double(x) => Some(*x),
        _ => None,
    }
}

/// `x` as a long: rounded half away from zero; None out of range or NaN.
fn to_long(x: f64) -> Option<i64> {
    let r = x.round();
    (r.is_finite() && r >= i64::MIN as f64 && r < i64::MAX as f64).then_some(r as i64)
}

impl Expr {
    /// The value for `row`. Never fails: what SQL leaves undefined here (a
    /// division by zero, an overflow) is NULL, as documented above.
    pub fn eval(&self, row: &[Scalar]) -> Scalar {
        use Scalar::{Bool, Double, Long, Null};
        match self {
            Expr::Column(i) => row.get(*i).cloned().unwrap_or(Null),
            Expr::Literal(v) => v.clone(),
            Expr::Arith(op, a, b) => arith(*op, &a.eval(row), &b.eval(row)),
            Expr::Compare(op, a, b) => compare(*op, &a.eval(row), &b.eval(row)),
            Expr::Neg(x) => match x.eval(row) {
                Long(i) => i.checked_neg().map_or(Null, Long),
                Double(x) => Double(-x),
                _ => Null,
            },
            Expr::Not(x) => match x.eval(row) {
                Bool(b) => Bool(!b),
                _ => Null,
            },
            Expr::And(a, b) => match (a.eval(row), b.eval(row)) {
                (Bool(false), _) | (_, Bool(false)) => Bool(false),
                (Bool(true), Bool(true)) => Bool(true),
                _ => Null,
            },
            Expr::Or(a, b) => match (a.eval(row), b.eval(row)) {
                (Bool(true), _) | (_, Bool(true)) => Bool(true),
                (Bool(false), Bool(false)) => Bool(false),
                _ => Null,
            },
            Expr::IsNull(x, is) => Bool(x.eval(row).is_null() == *is),
            Expr::Case(arms, otherwise) => arms
                .iter()
                .find(|(c, _)| matches!(c.eval(row), Bool(true)))
                .map(|(_, r)| r.eval(row))
                .or_else(|| otherwise.as_ref().map(|o| o.eval(row)))
                .unwrap_or(Null),
            Expr::Coalesce(xs) => xs
                .iter()
                .map(|x| x.eval(row))
                .find(|v| !v.is_null())
                .unwrap_or(Null),
            Expr::NullIf(a, b) => {
                let a = a.eval(row);
                match compare(Compare::Eq, &a, &b.eval(row)) {
                    Bool(true) => Null,
                    _ => a,
                }
            }
            Expr::Abs(x) => match x.eval(row) {
                Long(i) => i.checked_abs().map_or(Null, Long),
                Double(x) => Double(x.abs()),
                _ => Null,
            },
            Expr::Extreme(greatest, xs) => {
                let values: Vec<Scalar> = xs
                    .iter()
                    .map(|x| x.eval(row))
                    .filter(|v| !v.is_null())
                    .collect();
                let all_long = values.iter().all(|v| matches!(v, Long(_)));
                let best = values
                    .iter()
                    .filter_map(as_f64)
                    .reduce(|a, b| if *greatest { a.max(b) } else { a.min(b) });
                match best {
                    None => Null,
                    // The long itself, not its double (exact above 2^53).
                    Some(_) if all_long => {
                        let longs = values.iter().filter_map(|v| match v {
                            Long(i) => Some(*i),
                            _ => None,
                        });
                        let pick = if *greatest { longs.max() } else { longs.min() };
                        pick.map_or(Null, Long)
                    }
                    Some(x) => Double(x),
                }
            }
            Expr::ToDouble(x) => as_f64(&x.eval(row)).map_or(Null, Double),
            Expr::ToLong(x) => match x.eval(row) {
                Long(i) => Long(i),
                Double(x) => to_long(x).map_or(Null, Long),
                _ => Null,
            },
        }
    }
}

fn arith(op: Arith, a: &Scalar, b: &Scalar) -> Scalar {
    use Scalar::{Double, Long, Null};
    if let (Long(x), Long(y), false) = (a, b, op == Arith::Div) {
        let v = match op {
            Arith::Add => x.checked_add(*y),
            Arith::Sub => x.checked_sub(*y),
            Arith::Mul => x.checked_mul(*y),
            Arith::Mod => x.checked_rem(*y),
            Arith::Div => None,
        };
        return v.map_or(Null, Long);
    }
    let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) else {
        return Null;
    };
    match op {
        Arith::Add => Double(x + y),
        Arith::Sub => Double(x - y),
        Arith::Mul => Double(x * y),
        Arith::Div | Arith::Mod if y == 0.0 => Null,
        Arith::Div => Double(x / y),
        Arith::Mod => Double(x % y),
    }
}

fn compare(op: Compare, a: &Scalar, b: &Scalar) -> Scalar {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Scalar::Long(x), Scalar::Long(y)) => Some(x.cmp(y)),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(y)),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    let Some(o) = ord else {
        return Scalar::Null;
    };
    Scalar::Bool(match op {
        Compare::Eq => o == Ordering::Equal,
        Compare::NotEq => o != Ordering::Equal,
        Compare::Lt => o == Ordering::Less,
        Compare::LtEq => o != Ordering::Greater,
        Compare::Gt => o == Ordering::Greater,
        Compare::GtEq => o != Ordering::Less,
    })
}

#[cfg(test)]
mod tests;
