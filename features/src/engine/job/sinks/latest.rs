//! What the stores that upsert by key (Redis, PostgreSQL, SQLite) share:
//! a view's rows held per task until its checkpoint, only the latest per
//! key, written then ([`ByKey`], the one `Sink` of them all, over each
//! store's [`Upsert`]), and their URLs shown without passwords.
//!
//! Why only the latest: a checkpoint covers every row its task released
//! since the last one, and a store keyed by entity keeps one row per key,
//! so earlier rows of the same key would be written only to be replaced.

use std::collections::HashMap;

use crate::engine::view::FeatureRow;

use super::{JobError, RunSummary, Sink};

/// A store that upserts a view's rows by key, never moving a row back in
/// time.
pub trait Upsert: Send {
    /// Writes rows (each key's latest, in key order, as (key text, row)):
    /// how many were written, and how many were skipped as older than
    /// what the store holds (a replay).
    fn upsert(&mut self, rows: Vec<(String, FeatureRow)>) -> Result<(u64, u64), JobError>;

    /// After a failed write: forget the connection, so the next flush
    /// reconnects.
    fn reset(&mut self);

    /// Adds rows written and skipped to the run's summary, under the
    /// store's name.
    fn report(&self, written: u64, skipped: u64, summary: &mut RunSummary);
}

/// One view's rows to an [`Upsert`] store: held per task, the latest per
/// key, and written when the task checkpoints, before its offsets are
/// recorded (a crash loses nothing a checkpoint covers; a failure stops
/// the job before its checkpoint).
pub struct ByKey<U> {
    store: U,
    pending: Latest,
    written: u64,
    skipped: u64,
}

impl<U: Upsert> ByKey<U> {
    /// View `view`'s rows to `store`.
    pub fn new(view: usize, store: U) -> ByKey<U> {
        ByKey {
            store,
            pending: Latest::new(view),
            written: 0,
            skipped: 0,
        }
    }
}

impl<U: Upsert> Sink for ByKey<U> {
    fn rows(
        &mut self,
        partition: i32,
        rows: &[(usize, FeatureRow)],
        _watermark: Option<i64>,
    ) -> Result<(), JobError> {
        self.pending.keep(partition, rows);
        Ok(())
    }

    fn flush(&mut self, partition: i32, _seq: u64) -> Result<(), JobError> {
        let rows = self.pending.take(partition);
        if rows.is_empty() {
            return Ok(());
        }
        match self.store.upsert(rows) {
            Ok((written, skipped)) => {
                self.written += written;
                self.skipped += skipped;
                Ok(())
            }
            Err(e) => {
                self.store.reset();
                Err(e)
            }
        }
    }

    fn discard(&mut self, partition: i32) {
        self.pending.discard(partition);
    }

    fn report(&self, summary: &mut RunSummary) {
        self.store.report(self.written, self.skipped, summary);
    }
}

/// One view's rows per task, the latest per key, until the task flushes.
#[derive(Default)]
pub struct Latest {
    view: usize,
    pending: HashMap<i32, HashMap<String, FeatureRow>>,
}

impl Latest {
    /// Rows of view `view`.
    pub fn new(view: usize) -> Latest {
        Latest {
            view,
            pending: HashMap::new(),
        }
    }

    /// Keeps the view's rows among `rows` (task `partition`'s, in order).
    pub fn keep(&mut self, partition: i32, rows: &[(usize, FeatureRow)]) {
        let pending = self.pending.entry(partition).or_default();
        for (v, row) in rows {
            if *v == self.view {
                pending.insert(row.key.key_text(), row.clone());
            }
        }
    }

    /// Task `partition`'s rows, in key order (the same writes for the same
    /// rows), handed over.
    pub fn take(&mut self, partition: i32) -> Vec<(String, FeatureRow)> {
        let mut rows: Vec<(String, FeatureRow)> = self
            .pending
            .remove(&partition)
            .unwrap_or_default()
            .into_iter()
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// Forgets task `partition`'s rows (it moved to another process).
    pub fn discard(&mut self, partition: i32) {
        self.pending.remove(&partition);
    }
}

/// A SQL identifier, quoted (PostgreSQL and SQLite alike).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` without its password, for messages and logs.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            without_password("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(
            without_password("postgresql://eddy@127.0.0.1/db"),
            "postgresql://eddy@127.0.0.1/db"
        );
        assert_eq!(without_password("redis://host"), "redis://host");
    }
}
