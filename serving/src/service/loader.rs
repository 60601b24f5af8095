//! The model loader: a thread that decodes model updates (from the
//! models topics, or co-located straight from the learner) into a staging
//! copy, and the swap that puts finished models in between requests, so no
//! request waits for a decode and none sees half an update.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use eddy_features::topic::{Consumer, Record};

use crate::ServeError;

use super::Service;

/// Where the model loader's updates come from.
pub(super) enum ModelFeed {
    Topics(Box<dyn Consumer>),
    /// What the learner published at a checkpoint: every record, of which
    /// only those for `topics` (the models topics) are model updates; the
    /// rest are its metrics.
    Learner {
        rx: Receiver<Vec<Record>>,
        topics: Vec<String>,
    },
}

pub(super) enum ModelFeedError {
    Read(eddy_features::topic::TopicError),
    Closed,
}

impl ModelFeed {
    /// The next updates, or none after a short wait.
    fn next(&mut self) -> Result<Vec<Record>, ModelFeedError> {
        let wait = Duration::from_millis(50);
        match self {
            ModelFeed::Topics(consumer) => consumer.poll(1000, wait).map_err(ModelFeedError::Read),
            ModelFeed::Learner { rx, topics } => match rx.recv_timeout(wait) {
                Ok(mut records) => {
                    records.retain(|r| topics.contains(&r.topic));
                    Ok(records)
                }
                Err(RecvTimeoutError::Timeout) => Ok(Vec::new()),
                Err(RecvTimeoutError::Disconnected) => Err(ModelFeedError::Closed),
            },
        }
    }
}

impl Service {
    /// Hands model updates to a thread of their own. Decoding a snapshot
    /// (megabytes for a recommender, with its item matrix to build) would
    /// otherwise hold up the requests behind it; the loader decodes into a
    /// staging copy and sends finished models, which the serving loop
    /// swaps in between batches. The updates come from the models topics,
    /// from where the catch-up stopped, or, co-located, from the learner
    /// (which publishes nothing between the catch-up and the job's start).
    pub(super) fn start_loader(&mut self, mut feed: ModelFeed) -> Result<(), ServeError> {
        let mut staging = self.state.lock().expect("poisoned").models.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = self.loader_stop.clone();
        let metrics = self.metrics.clone();
        std::thread::Builder::new()
            .name("serve-models".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let records = match feed.next() {
                        Ok(r) => r,
                        Err(ModelFeedError::Read(e)) => {
                            tracing::warn!(error = %e, "reading the models topic");
                            std::thread::sleep(Duration::from_millis(500));
                            continue;
                        }
                        // The learner is gone (the job ended): nothing
                        // more will come.
                        Err(ModelFeedError::Closed) => break,
                    };
                    if records.is_empty() {
                        continue;
                    }
                    let before: Vec<(String, Option<u64>)> = staging
                        .models
                        .iter()
                        .map(|(n, m)| (n.clone(), m.version()))
                        .collect();
                    staging.apply_counted(&records, &metrics);
                    let changed: Vec<(String, crate::models::Served)> = before
                        .into_iter()
                        .filter(|(n, v)| staging.models[n].version() != *v)
                        .map(|(n, _)| {
                            let m = staging.models[&n].clone();
                            (n, m)
                        })
                        .collect();
                    if !changed.is_empty() && tx.send(changed).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| ServeError::Environment(e.to_string()))?;
        self.loaded_models = Some(rx);
        Ok(())
    }

    /// Swaps in the models the loader has finished; the old ones are
    /// dropped on another thread.
    pub(super) fn swap_in_models(&self) {
        let Some(rx) = &self.loaded_models else {
            return;
        };
        let mut old = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            let mut state = self.state.lock().expect("poisoned");
            for (name, served) in batch {
                if let Some(previous) = state.models.models.insert(name, served) {
                    old.push(previous);
                }
            }
        }
        if !old.is_empty() {
            std::thread::spawn(move || drop(old));
        }
    }
}
