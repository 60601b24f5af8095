//! Reference tables read from compacted topics, joined as of event time.
//!
//! A versioned table keeps every version of a row, each valid from its
//! `valid_from` time (a column, or the record timestamp) until the next
//! version: a join reads the version valid at the event's time (SCD type 2).
//! An unversioned table keeps only the latest row. A tombstone ends a row's
//! validity: the key is missing from then on.
//!
//! Tables are global: every task sees every partition of the table topic,
//! so tables need not be co-partitioned with the sources (Kafka Streams
//! calls these GlobalKTables). The history a versioned table can answer is
//! the history its topic retains; compaction keeps only the latest version.

use std::collections::HashMap;

use super::value::Scalar;

/// The versions of one key: (valid from, row or deletion), sorted by time.
type Versions = Vec<(i64, Option<Box<[Scalar]>>)>;

/// One table.
#[derive(Debug, Default)]
pub struct TableState {
    versioned: bool,
    /// Per key, versions sorted by valid-from time; `None` is a deletion.
    rows: HashMap<Scalar, Versions, foldhash::fast::RandomState>,
}

/// `columns` with, for each join `(table, key column, table column)`, the
/// table's column from the row valid at `ts` for the event's key column
/// (null without a row). The models inside a job and the training sets of
/// a backfill both join table columns onto events this way.
pub fn append_joined(
    tables: &[TableState],
    joins: impl IntoIterator<Item = (usize, usize, usize)>,
    columns: Box<[Scalar]>,
    ts: i64,
) -> Box<[Scalar]> {
    let mut columns = columns.into_vec();
    for (table, on, column) in joins {
        let value = tables[table]
            .lookup(&columns[on], ts)
            .map_or(Scalar::Null, |row| row[column].clone());
        columns.push(value);
    }
    columns.into_boxed_slice()
}

impl TableState {
    /// An empty table; `versioned` keeps every version for as-of joins.
    pub fn new(versioned: bool) -> TableState {
        TableState {
            versioned,
            ..TableState::default()
        }
    }

    /// Applies a row (`None`: a tombstone) valid from `valid_from`.
    pub fn upsert(&mut self, key: Scalar, valid_from: i64, row: Option<Box<[Scalar]>>) {
        let versions = self.rows.entry(key).or_default();
        if !self.versioned {
            versions.clear();
            versions.push((i64::MIN, row));
            return;
        }
        // Versions usually arrive in order; keep the list sorted if not. A
        // second version at the same time replaces the first.
        let at = versions.partition_point(|(t, _)| *t <= valid_from);
        if at > 0 && versions[at - 1].0 == valid_from {
            versions[at - 1].1 = row;
        } else {
            versions.insert(at, (valid_from, row));
        }
    }

    /// The row of `key` valid at `ts`.
    pub fn lookup(&self, key: &Scalar, ts: i64) -> Option<&[Scalar]> {
        let versions = self.rows.get(key)?;
        let at = versions.partition_point(|(t, _)| *t <= ts);
        if at == 0 {
            return None;
        }
        versions[at - 1].1.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &str) -> Option<Box<[Scalar]>> {
        Some(vec![Scalar::from(v)].into_boxed_slice())
    }

    #[test]
    fn versioned_lookup_reads_the_row_valid_at_the_time() {
        let mut t = TableState::new(true);
        let k = Scalar::Long(1);
        t.upsert(k.clone(), 100, row("a"));
        t.upsert(k.clone(), 300, None);
        t.upsert(k.clone(), 200, row("b"));
        assert_eq!(t.lookup(&k, 99), None);
        assert_eq!(t.lookup(&k, 100).unwrap()[0], Scalar::from("a"));
        assert_eq!(t.lookup(&k, 250).unwrap()[0], Scalar::from("b"));
        assert_eq!(t.lookup(&k, 300), None, "a tombstone ends the row");
        assert_eq!(t.lookup(&Scalar::Long(2), 1000), None);
    }

    #[test]
    fn unversioned_lookup_reads_the_latest_row_whatever_the_time() {
        let mut t = TableState::new(false);
        let k = Scalar::from("m");
        t.upsert(k.clone(), 500, row("a"));
        t.upsert(k.clone(), 600, row("b"));
        assert_eq!(t.lookup(&k, 0).unwrap()[0], Scalar::from("b"));
    }
}
