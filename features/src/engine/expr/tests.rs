//! The row-wise evaluator: its documented semantics, its refusals, and a
//! differential test against polars' SQL where the two engines agree.

use polars::prelude::{DataFrame, IntoColumn, IntoLazy};

use super::*;
use crate::engine::frame::{from_series, to_series};

/// Columns a (long), b (long), x (double), y (double), s (string), t
/// (boolean), and one that cannot be used (an array).
fn columns() -> Vec<(String, Result<ColumnType, String>)> {
    [
        ("a", Ok(ColumnType::Long)),
        ("b", Ok(ColumnType::Long)),
        ("x", Ok(ColumnType::Double)),
        ("y", Ok(ColumnType::Double)),
        ("s", Ok(ColumnType::String)),
        ("t", Ok(ColumnType::Boolean)),
        (
            "top_1d",
            Err("is a list (top_k): derived features read numbers, text and booleans".into()),
        ),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

fn eval(sql: &str, row: &[Scalar]) -> Scalar {
    let (e, _) = compile(sql, &columns()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    e.eval(row)
}

fn row(a: i64, b: i64, x: f64, y: f64) -> Vec<Scalar> {
    vec![
        Scalar::Long(a),
        Scalar::Long(b),
        Scalar::Double(x),
        Scalar::Double(y),
        Scalar::Str("shoes".into()),
        Scalar::Bool(true),
        Scalar::Null,
    ]
}

fn same(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Double(x), Scalar::Double(y)) => {
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Scalar::Null, Scalar::Null) => true,
        (Scalar::Long(x), Scalar::Long(y)) => x == y,
        (Scalar::Bool(x), Scalar::Bool(y)) => x == y,
        (Scalar::Str(x), Scalar::Str(y)) => x == y,
        _ => false,
    }
}

#[test]
fn a_ratio_is_a_double_and_a_division_by_zero_is_null() {
    let r = row(3, 0, 1.5, 0.0);
    assert!(same(&eval("a / 2", &r), &Scalar::Double(1.5)));
    assert!(eval("a / b", &r).is_null());
    assert!(eval("x / y", &r).is_null());
    assert!(eval("a % b", &r).is_null());
    let (_, t) = compile("a / b", &columns()).unwrap();
    assert_eq!(t, ColumnType::Double);
    let (_, t) = compile("a * b + 1", &columns()).unwrap();
    assert_eq!(t, ColumnType::Long);
    // The usual way to write a click-through rate.
    assert!(eval("a / NULLIF(b, 0)", &r).is_null());
    assert!(same(
        &eval("COALESCE(a / NULLIF(b, 0), 0.0)", &r),
        &Scalar::Double(0.0)
    ));
}

#[test]
fn an_integer_overflow_is_null_not_a_wrapped_number() {
    let r = row(i64::MAX, 1, 0.0, 0.0);
    assert!(eval("a + b", &r).is_null());
    assert!(eval("a * 2", &r).is_null());
    assert!(same(&eval("a - b", &r), &Scalar::Long(i64::MAX - 1)));
    assert!(eval("CAST(1e300 AS BIGINT)", &r).is_null());
    assert!(same(&eval("CAST(2.5 AS BIGINT)", &r), &Scalar::Long(3)));
    assert!(same(&eval("CAST(-2.5 AS BIGINT)", &r), &Scalar::Long(-3)));
}

#[test]
fn logic_is_three_valued_and_case_picks_the_first_true_arm() {
    let mut r = row(1, 2, 0.5, 2.0);
    r[0] = Scalar::Null;
    assert!(eval("a > 0 AND b > 5", &r).eq_false());
    assert!(eval("a > 0 AND b > 0", &r).is_null());
    assert!(eval("a > 0 OR b > 0", &r).eq_true());
    assert!(eval("NOT (a > 0)", &r).is_null());
    assert!(eval("a IS NULL", &r).eq_true());
    assert!(eval("b IS NOT NULL", &r).eq_true());
    assert!(same(
        &eval("CASE WHEN a > 0 THEN 1 WHEN b > 1 THEN 2 ELSE 3 END", &r),
        &Scalar::Long(2)
    ));
    assert!(eval("CASE WHEN b > 9 THEN 1 END", &r).is_null());
    assert!(same(
        &eval("CASE b WHEN 2 THEN 'two' ELSE 'other' END", &r),
        &Scalar::Str("two".into())
    ));
    assert!(same(&eval("GREATEST(a, b, 1)", &r), &Scalar::Long(2)));
    assert!(same(&eval("LEAST(x, b)", &r), &Scalar::Double(0.5)));
    assert!(same(&eval("ABS(-b)", &r), &Scalar::Long(2)));
    assert!(same(&eval("s = 'shoes' AND t", &r), &Scalar::Bool(true)));
}

#[test]
fn what_is_not_supported_is_refused_by_name() {
    let cols = columns();
    let refused = |sql: &str, says: &str| {
        let why = compile(sql, &cols).expect_err(sql);
        assert!(why.contains(says), "{sql}: {why}");
    };
    refused("clicks / views", "unknown column `clicks`");
    refused("top_1d + 1", "is a list");
    refused("s + 1", "arithmetic needs numbers");
    refused("a AND t", "AND and OR need booleans");
    refused("s = 1", "compares a string with a long");
    refused("LN(x)", "the function LN is not supported");
    refused("a IN (1, 2)", "not supported");
    refused("a +", "not a SQL expression");
    refused("a b", "not a SQL expression");
    refused("CASE WHEN a THEN 1 END", "must be a boolean");
    refused("CASE WHEN t THEN 1 ELSE 'x' END", "mixes");
    refused("CAST(x AS VARCHAR)", "casts go to DOUBLE or BIGINT");
}

/// Polars' SQL and this evaluator agree on every expression here, over
/// rows with nulls, negative numbers and ties. (Where the engines differ
/// by design (`/` on longs, a division by zero, `%` of negatives), the
/// tests above pin this one's meaning.)
#[test]
fn the_evaluator_agrees_with_polars_sql_on_random_rows() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = 400;
    let mut rows: Vec<Vec<Scalar>> = Vec::new();
    for _ in 0..n {
        let mut r = row(
            (next() % 21) as i64 - 10,
            (next() % 21) as i64 - 10,
            (next() % 2000) as f64 / 100.0 - 10.0,
            // Never zero: polars divides by zero to infinity.
            (next() % 1000) as f64 / 100.0 + 0.5,
        );
        for v in r.iter_mut().take(4) {
            if next() % 7 == 0 {
                *v = Scalar::Null;
            }
        }
        rows.push(r);
    }
    let cols = columns();
    let frame = DataFrame::new(
        cols.iter()
            .take(6)
            .enumerate()
            .map(|(c, (name, t))| {
                to_series(name, t.as_ref().unwrap(), rows.iter().map(|r| r[c].clone()))
                    .into_column()
            })
            .collect(),
    )
    .unwrap();
    for sql in [
        "a + b",
        "a - b * 2",
        "x * y + a",
        "x / y",
        "a / y",
        "-a + 3",
        "a > b",
        "x <= y",
        "a = b",
        "a <> b",
        "a > b AND x < y",
        "a > 1 OR b < -3",
        "NOT (a = b)",
        "a IS NULL OR x IS NOT NULL",
        "CASE WHEN a > b THEN x ELSE y END",
        "CASE WHEN a > 0 THEN a WHEN b > 0 THEN b END",
        "COALESCE(a, b, 0)",
        "COALESCE(x, y)",
        "NULLIF(a, b)",
        "ABS(a - b)",
        "CAST(a AS DOUBLE) / y",
        "(a + b) * (x - y)",
    ] {
        let (e, ty) = compile(sql, &cols).unwrap();
        let expected = frame
            .clone()
            .lazy()
            .select([polars::sql::sql_expr(sql).unwrap().alias("r")])
            .collect()
            .unwrap();
        let expected =
            from_series(expected.column("r").unwrap().as_materialized_series(), &ty).unwrap();
        for (r, want) in rows.iter().zip(&expected) {
            let got = e.eval(r);
            assert!(
                same(&got, want),
                "{sql} over {r:?}: {got:?}, polars {want:?}"
            );
        }
    }
}

trait Truth {
    fn eq_true(&self) -> bool;
    fn eq_false(&self) -> bool;
}

impl Truth for Scalar {
    fn eq_true(&self) -> bool {
        matches!(self, Scalar::Bool(true))
    }
    fn eq_false(&self) -> bool {
        matches!(self, Scalar::Bool(false))
    }
}
