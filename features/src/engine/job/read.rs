//! The in-process read API: `get(view, key, as_of)` for serving.
//!
//! It reads the latest emitted row of each key, which stays valid until the
//! key's next emitted row: a row is emitted whenever a key's values change,
//! by events or by expiry. So the answer is the value as of the task's
//! current watermark. Asking for a time before the row's `as_of` is an error:
//! history is what `eddy backfill` is for.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::engine::value::Scalar;
use crate::engine::view::FeatureRow;
use crate::spec::ColumnType;
use crate::spec::validate::ViewPlan;

/// Why a read failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReadError {
    #[error("unknown feature view `{0}`")]
    /// The spec has no such view.
    UnknownView(String),
    #[error(
        "view `{view}` holds key `{key}` as of {as_of}; it cannot answer for the earlier time {asked} (replay history with a backfill instead)"
    )]
    /// The view's row is newer than the time asked.
    TooEarly {
        /// The view.
        view: String,
        /// The key.
        key: String,
        /// The time the view's row is valid for.
        as_of: i64,
        /// The time asked.
        asked: i64,
    },
}

impl ReadError {
    /// Who must act: the caller asked for what the view cannot answer.
    pub fn blame(&self) -> crate::topic::Blame {
        crate::topic::Blame::User
    }
}

/// A feature row as read: names and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// The time the values are valid for.
    pub as_of: i64,
    pub values: Vec<(String, Scalar)>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Tables {
    /// Per view: key → (task, latest row).
    rows: Vec<FastMap<Scalar, (i32, FeatureRow)>>,
    watermarks: HashMap<i32, i64>,
}

/// A cheap, cloneable handle on the job's feature tables.
#[derive(Clone)]
pub struct FeatureReader {
    /// Per view: name, key type, feature names.
    views: Arc<Vec<(String, ColumnType, Vec<String>)>>,
    tables: Arc<RwLock<Tables>>,
}

impl FeatureReader {
    /// An empty reader of `plans`.
    pub fn new(plans: &[ViewPlan]) -> FeatureReader {
        FeatureReader {
            views: Arc::new(
                plans
                    .iter()
                    .map(|p| {
                        (
                            p.name.clone(),
                            p.key_type.clone(),
                            p.features.iter().map(|f| f.column.clone()).collect(),
                        )
                    })
                    .collect(),
            ),
            tables: Arc::new(RwLock::new(Tables {
                rows: (0..plans.len()).map(|_| FastMap::default()).collect(),
                watermarks: HashMap::new(),
            })),
        }
    }

    /// Takes the latest rows of some views, under one lock.
    pub(crate) fn update(&self, task: i32, rows: impl IntoIterator<Item = (usize, FeatureRow)>) {
        let mut t = self.tables.write().expect("poisoned");
        for (view, row) in rows {
            t.rows[view].insert(row.key.clone(), (task, row));
        }
    }

    pub(crate) fn set_watermark(&self, task: i32, watermark: i64) {
        self.tables
            .write()
            .expect("poisoned")
            .watermarks
            .insert(task, watermark);
    }

    /// Forgets a task that moved to another process, and its keys: another
    /// process serves them now.
    pub(crate) fn forget_task(&self, task: i32) {
        let mut t = self.tables.write().expect("poisoned");
        t.watermarks.remove(&task);
        for view in &mut t.rows {
            view.retain(|_, (owner, _)| *owner != task);
        }
    }

    /// The lowest watermark over tasks: every view is complete up to it.
    pub fn watermark(&self) -> Option<i64> {
        self.tables
            .read()
            .expect("poisoned")
            .watermarks
            .values()
            .min()
            .copied()
    }

    /// The features of `key` in `view` as of `as_of` (None: now). A key
    /// without state reads as None.
    pub fn get(
        &self,
        view: &str,
        key: &str,
        as_of: Option<i64>,
    ) -> Result<Option<Features>, ReadError> {
        let names = &self.views[self.view_index(view)?].2;
        self.with_row(view, key, as_of, |row| Features {
            as_of: row.as_of,
            values: names
                .iter()
                .cloned()
                .zip(row.values.iter().cloned())
                .collect(),
        })
    }

    /// One feature (by its index in the view) of `key`'s latest row, and
    /// the time the row is valid for: what a ranker reads per request,
    /// without copying the rest of the row.
    pub fn value(&self, view: &str, key: &str, feature: usize) -> Option<(i64, Scalar)> {
        self.with_row(view, key, None, |row| {
            (
                row.as_of,
                row.values.get(feature).cloned().unwrap_or_default(),
            )
        })
        .ok()
        .flatten()
    }

    fn view_index(&self, view: &str) -> Result<usize, ReadError> {
        self.views
            .iter()
            .position(|(n, _, _)| n == view)
            .ok_or_else(|| ReadError::UnknownView(view.to_string()))
    }

    /// Runs `read` on `key`'s latest row in `view`, under the read lock.
    fn with_row<R>(
        &self,
        view: &str,
        key: &str,
        as_of: Option<i64>,
        read: impl FnOnce(&FeatureRow) -> R,
    ) -> Result<Option<R>, ReadError> {
        let v = self.view_index(view)?;
        let scalar = match self.views[v].1 {
            ColumnType::Long => match key.trim().parse() {
                Ok(n) => Scalar::Long(n),
                Err(_) => return Ok(None),
            },
            _ => Scalar::from(key),
        };
        let t = self.tables.read().expect("poisoned");
        let Some((_, row)) = t.rows[v].get(&scalar) else {
            return Ok(None);
        };
        if let Some(asked) = as_of
            && asked < row.as_of
        {
            return Err(ReadError::TooEarly {
                view: view.to_string(),
                key: key.to_string(),
                as_of: row.as_of,
                asked,
            });
        }
        Ok(Some(read(row)))
    }

    /// Number of keys in a view.
    pub fn len(&self, view: &str) -> usize {
        let Some(v) = self.views.iter().position(|(n, _, _)| n == view) else {
            return 0;
        };
        self.tables.read().expect("poisoned").rows[v].len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::validate::FeaturePlan;
    use crate::spec::{Op, Window};

    fn reader() -> FeatureReader {
        let plan = ViewPlan {
            name: "v".into(),
            source: "s".into(),
            rekeyed: false,
            key: "user".into(),
            key_type: ColumnType::Long,
            source_columns: Default::default(),
            joins: vec![],
            derive: vec![],
            filter: None,
            columns: Default::default(),
            features: vec![FeaturePlan {
                column: "n_lifetime".into(),
                op: Op::Count,
                window: Window::Lifetime,
                input: None,
                input_type: None,
                k: 10,
                quantile: 0.5,
                half_life_ms: 0,
                derived: None,
            }],
            output_topic: "features.v".into(),
            parquet: Vec::new(),
            redis: None,
            postgres: None,
            sqlite: None,
        };
        FeatureReader::new(&[plan])
    }

    fn row(key: i64, as_of: i64, n: i64) -> FeatureRow {
        FeatureRow {
            key: Scalar::Long(key),
            as_of,
            values: vec![Scalar::Long(n)],
        }
    }

    #[test]
    fn reads_the_latest_row_refuses_the_past_and_forgets_moved_tasks() {
        let r = reader();
        r.update(0, [(0, row(1, 100, 3)), (0, row(1, 200, 4))]);
        r.update(1, [(0, row(2, 150, 9))]);
        let f = r.get("v", "1", None).unwrap().unwrap();
        assert_eq!(
            (f.as_of, f.values.clone()),
            (200, vec![("n_lifetime".to_string(), Scalar::Long(4))])
        );
        assert_eq!(r.get("v", "1", Some(500)).unwrap().unwrap().as_of, 200);
        assert_eq!(r.value("v", "1", 0), Some((200, Scalar::Long(4))));
        assert_eq!(r.value("v", "1", 7), Some((200, Scalar::Null)));
        assert_eq!(r.value("v", "x", 0), None);
        assert!(matches!(
            r.get("v", "1", Some(150)),
            Err(ReadError::TooEarly { as_of: 200, .. })
        ));
        assert_eq!(r.get("v", "nope", None), Ok(None));
        assert_eq!(
            r.get("other", "1", None),
            Err(ReadError::UnknownView("other".into()))
        );
        r.forget_task(0);
        assert_eq!(r.get("v", "1", None), Ok(None));
        assert_eq!(r.len("v"), 1);
    }
}
