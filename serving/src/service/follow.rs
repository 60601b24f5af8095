//! Following what serving reads besides requests: the trigger topic's
//! history (what each user engaged with), and the feature topics and the
//! item table caught up and applied between batches of requests.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use eddy_features::topic::{Consumer, Record};

use crate::ServeError;

use super::Service;

impl Service {
    /// Reads the trigger topic up to where answering starts, to learn what
    /// each user has engaged with (so `exclude_seen` holds from the first
    /// answer), without answering.
    pub(super) fn read_history(&mut self) -> Result<(), ServeError> {
        let Some((topic, decoder)) = &self.trigger else {
            return Ok(());
        };
        let records = eddy_features::topic::read_to_end(
            self.backend.as_ref(),
            topic,
            Duration::from_secs(120),
        )?;
        let mut state = self.state.lock().expect("poisoned");
        for r in &records {
            if let Ok(row) = decoder.decode(r) {
                state.latest_ts = state.latest_ts.max(row.ts.unwrap_or(r.timestamp_ms));
                state.engine.observe(&row.key, &row.columns);
            }
        }
        tracing::info!(
            records = records.len(),
            users = state.engine.users(),
            "history read"
        );
        Ok(())
    }

    /// Reads the followed topics and the models topics to the end they
    /// have now.
    pub(super) fn catch_up(
        &mut self,
        topics: &[String],
        model_topics: &[String],
        models: &mut dyn Consumer,
    ) -> Result<(), ServeError> {
        let mut ends: HashMap<(String, i32), i64> = HashMap::new();
        for t in topics.iter().chain(model_topics) {
            for p in self.backend.describe_topic(t)?.partitions {
                if p.high > p.low {
                    ends.insert((t.clone(), p.id), p.high);
                }
            }
        }
        let mut reached = |records: &[Record]| {
            for r in records {
                let key = (r.topic.clone(), r.partition);
                if ends.get(&key).is_some_and(|e| r.offset + 1 >= *e) {
                    ends.remove(&key);
                }
            }
            ends.is_empty()
        };
        let mut done = reached(&[]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done && Instant::now() < deadline {
            let updates = models.poll(1000, Duration::from_millis(20))?;
            done = reached(&updates);
            self.state
                .lock()
                .expect("poisoned")
                .models
                .apply_counted(&updates, &self.metrics);
            let records = self.follower.poll(10_000, Duration::from_millis(20))?;
            done = reached(&records) || done;
            self.apply_state(&records);
        }
        self.update_ready();
        Ok(())
    }

    /// Applies feature-topic and item-table records.
    pub(super) fn apply_state(&mut self, records: &[Record]) {
        if records.is_empty() {
            return;
        }
        let mut state = self.state.lock().expect("poisoned");
        for r in records {
            state.features.apply(r);
            if let Some(rules) = &mut state.engine.rules
                && rules.topic == r.topic
            {
                rules.apply(r);
            }
        }
        if let Some(rules) = &mut state.engine.rules {
            rules.flush();
        }
        // Rows serving could not use are counted where operators look.
        self.metrics
            .feature_rows_undecodable
            .store(state.features.undecodable, Ordering::Relaxed);
        let rejected = state.engine.rules.as_ref().map_or(0, |r| r.rejected);
        self.metrics
            .item_rows_rejected
            .store(rejected, Ordering::Relaxed);
    }

    pub(super) fn update_ready(&self) {
        let loaded = self.state.lock().expect("poisoned").models.all_loaded();
        self.metrics.ready.store(loaded, Ordering::Relaxed);
    }
}
