//! Preparing released events for the views: table columns joined as of
//! each event's time, the view's inputs picked, and its SQL (derived
//! columns, filter) evaluated over a batch.

use super::*;

/// Appends the joined columns of a row; false if a `missing: drop` join
/// found no row.
pub(super) fn join_into(
    view: &ViewRuntime,
    cols: &mut Vec<Scalar>,
    ts: i64,
    tables: &[TableState],
) -> bool {
    for ((table, on, picks), plan) in view.joins.iter().zip(&view.plan.joins) {
        match tables[*table].lookup(&cols[*on], ts) {
            Some(found) => cols.extend(picks.iter().map(|i| found[*i].clone())),
            None if plan.missing == crate::spec::Missing::Drop => return false,
            None => cols.extend(picks.iter().map(|_| Scalar::Null)),
        }
    }
    true
}

/// A view's aggregation inputs from a row's columns (after joins); a
/// re-keyed view's new key follows them.
pub(super) fn inputs_of(view: &ViewRuntime, cols: &[Scalar]) -> Box<[Scalar]> {
    let inputs = view.inputs.iter().map(|i| match i {
        Some(i) => cols[*i].clone(),
        None => Scalar::Bool(true),
    });
    match view.rekey {
        None => inputs.collect(),
        Some(k) => inputs.chain(std::iter::once(cols[k].clone())).collect(),
    }
}

/// Joins, derives and filters released rows of one view: the aggregation
/// inputs of each row, or None if a join or the filter dropped it (or an
/// expression rejected it, which is recorded in `rejected`). With `keys`
/// (a re-keyed view), each row's new key is also put there whether or not
/// the filter keeps the row: a probed event reads the view at its key even
/// when the view does not count it (None: a join or an expression dropped
/// it before the key existed).
pub(super) fn prepare_rows(
    view: &ViewRuntime,
    rows: &[&Row],
    tables: &[TableState],
    rejected: &mut Vec<Rejected>,
    keys: Option<&mut Vec<Option<Scalar>>>,
) -> Vec<Option<Box<[Scalar]>>> {
    let mut keys = keys.filter(|_| view.rekey.is_some());
    let mut key_of = |cols: Option<&[Scalar]>| {
        if let (Some(keys), Some(k)) = (keys.as_deref_mut(), view.rekey) {
            keys.push(cols.map(|c| c[k].clone()));
        }
    };
    if view.expressions.is_empty() {
        // No SQL: join into one reused buffer and read the inputs from it.
        if view.joins.is_empty() {
            return rows
                .iter()
                .map(|row| {
                    key_of(Some(&row.columns));
                    Some(inputs_of(view, &row.columns))
                })
                .collect();
        }
        let mut cols: Vec<Scalar> = Vec::new();
        return rows
            .iter()
            .map(|row| {
                cols.clear();
                cols.extend_from_slice(&row.columns);
                let kept = join_into(view, &mut cols, row.ts, tables);
                key_of(kept.then_some(&cols[..]));
                kept.then(|| inputs_of(view, &cols))
            })
            .collect();
    }
    // Columns after joins, row by row.
    let mut full: Vec<Option<Vec<Scalar>>> = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cols = row.columns.to_vec();
        let keep = join_into(view, &mut cols, row.ts, tables);
        full.push(keep.then_some(cols));
    }
    let idx: Vec<usize> = (0..rows.len()).filter(|i| full[*i].is_some()).collect();
    let batch: Vec<&[Scalar]> = idx.iter().filter_map(|i| full[*i].as_deref()).collect();
    // Per row: the columns after derives, and whether the filter keeps it.
    let mut derived: Vec<Option<(bool, Vec<Scalar>)>> = vec![None; rows.len()];
    match evaluate(view, &batch) {
        Ok(results) => {
            for (i, result) in idx.iter().zip(results) {
                derived[*i] = Some(result);
            }
        }
        Err(_) => {
            // Some row breaks an expression: find which, one by one, so
            // the rest of the batch still counts.
            for i in idx {
                let one = [full[i].as_deref().unwrap_or_default()];
                match evaluate(view, &one) {
                    Ok(mut r) => derived[i] = r.pop(),
                    Err(e) => rejected.push(Rejected {
                        row: rows[i].clone(),
                        reason: format!("view {}: {e}", view.plan.name),
                    }),
                }
            }
        }
    }
    derived
        .into_iter()
        .map(|d| {
            key_of(d.as_ref().map(|(_, c)| &c[..]));
            d.filter(|(keep, _)| *keep)
                .map(|(_, c)| inputs_of(view, &c))
        })
        .collect()
}

/// Runs a view's expressions over rows (columns after joins); returns each
/// row with its derived columns, and whether the filter keeps it.
pub(super) fn evaluate(
    view: &ViewRuntime,
    rows: &[&[Scalar]],
) -> Result<Vec<(bool, Vec<Scalar>)>, ExprError> {
    let width = view.joined.len();
    let mut columns: Vec<Vec<Scalar>> = (0..width)
        .map(|c| rows.iter().map(|r| r[c].clone()).collect())
        .collect();
    let keep = view
        .expressions
        .apply(&view.joined, &mut columns, rows.len())?;
    Ok((0..rows.len())
        .map(|r| (keep[r], columns.iter().map(|c| c[r].clone()).collect()))
        .collect())
}
