//! Serving metrics: counters and the latency histogram, read by the
//! process's metrics registry (`eddy_platform::metrics`) when scraped.

use std::sync::Mutex;

use eddy_features::metrics::{Family, Histogram, Report};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// Counters and gauges of a running service.
#[derive(Debug, Default)]
pub struct ServeMetrics {
    /// Trigger events answered.
    pub triggers: AtomicU64,
    /// Requests from the requests topic answered.
    pub requests: AtomicU64,
    /// Requests over HTTP answered.
    pub http_requests: AtomicU64,
    /// Recommendations emitted.
    pub recommendations: AtomicU64,
    /// Recommendations with no item (no model knew anything to offer).
    pub empty: AtomicU64,
    /// Recommendations made with features or models newer than their
    /// trigger (a replay ahead of it; `as_of_trigger: false`).
    pub ahead_of_trigger: AtomicU64,
    /// Feature-topic rows that did not decode (the key keeps its older row).
    pub feature_rows_undecodable: AtomicU64,
    /// Online-store (Redis) reads that failed: those requests went on
    /// without that view's features.
    pub feature_store_errors: AtomicU64,
    /// Item-table rows the business rules could not read or evaluate (the
    /// item is not allowed).
    pub item_rows_rejected: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Model versions swapped in.
    pub model_swaps: AtomicU64,
    /// Model updates that could not be decoded (another eddy version, or
    /// not a model update at all).
    pub model_undecodable: AtomicU64,
    /// Recommendations the learned order learned from (the user's next
    /// item was a candidate).
    pub impressions_learned: AtomicU64,
    /// Recommendations followed by an item no candidate source proposed
    /// (nothing to learn about the order).
    pub impressions_outside_pool: AtomicU64,
    /// Recommendations never answered by a next event before a newer one
    /// replaced them or they were forgotten (never learned).
    pub impressions_unanswered: AtomicU64,
    /// Every model loaded and state caught up.
    pub ready: AtomicBool,
    /// Time from reading a trigger to handing its recommendation to the
    /// producer: bucket counts and the sum.
    latency: Mutex<([u64; BUCKETS.len() + 1], f64)>,
}

impl ServeMetrics {
    /// Sets the learned order's counts: what it learned from (none if
    /// it is off) and the impressions never answered.
    pub fn sync_ranker(
        &self,
        counts: Option<eddy_training::recommend::rank::RankCounts>,
        unanswered: u64,
    ) {
        if let Some(c) = counts {
            self.impressions_learned.store(c.learned, Ordering::Relaxed);
            self.impressions_outside_pool
                .store(c.outside_pool, Ordering::Relaxed);
        }
        self.impressions_unanswered
            .store(unanswered, Ordering::Relaxed);
    }

    /// Counts one answer's latency, in seconds.
    pub fn observe_latency(&self, seconds: f64) {
        let mut l = self.latency.lock().expect("poisoned");
        let b = BUCKETS
            .iter()
            .position(|u| seconds <= *u)
            .unwrap_or(BUCKETS.len());
        l.0[b] += 1;
        l.1 += seconds;
    }

    /// (answers, mean seconds) of the latency histogram.
    pub fn latency_mean(&self) -> (u64, f64) {
        let (counts, sum) = *self.latency.lock().expect("poisoned");
        let n: u64 = counts.iter().sum();
        (n, if n == 0 { f64::NAN } else { sum / n as f64 })
    }
}

impl Report for ServeMetrics {
    fn families(&self) -> Vec<Family> {
        let counter = |name: &str, help: &str, v: &AtomicU64| {
            Family::counter(name, help, v.load(Ordering::Relaxed))
        };
        vec![
            counter(
                "eddy_serve_triggers_total",
                "Trigger events read.",
                &self.triggers,
            ),
            counter(
                "eddy_serve_requests_total",
                "Explicit requests read from the requests topic.",
                &self.requests,
            ),
            counter(
                "eddy_serve_http_requests_total",
                "Recommendations pulled over HTTP.",
                &self.http_requests,
            ),
            counter(
                "eddy_serve_recommendations_total",
                "Recommendations emitted to the topic.",
                &self.recommendations,
            ),
            counter(
                "eddy_serve_empty_total",
                "Recommendations with no item.",
                &self.empty,
            ),
            counter(
                "eddy_serve_feature_store_errors_total",
                "Reads of the views' online store (Redis) that failed; those requests were answered without that view's features.",
                &self.feature_store_errors,
            ),
            counter(
                "eddy_serve_feature_rows_undecodable_total",
                "Feature-topic rows that did not decode (the key keeps its older row).",
                &self.feature_rows_undecodable,
            ),
            counter(
                "eddy_serve_item_rows_rejected_total",
                "Item-table rows the business rules could not read or evaluate (those items are not recommended).",
                &self.item_rows_rejected,
            ),
            counter(
                "eddy_serve_ahead_of_trigger_total",
                "Recommendations made with features or models newer than their trigger (as_of_trigger false: a replay ran ahead).",
                &self.ahead_of_trigger,
            ),
            counter(
                "eddy_serve_dead_letters_total",
                "Requests and events sent to a dead-letter topic.",
                &self.dead_lettered,
            ),
            counter(
                "eddy_serve_model_swaps_total",
                "Model snapshots and deltas applied.",
                &self.model_swaps,
            ),
            counter(
                "eddy_serve_model_updates_undecodable_total",
                "Model updates that could not be decoded and were skipped.",
                &self.model_undecodable,
            ),
            counter(
                "eddy_serve_impressions_learned_total",
                "Recommendations the learned order learned from: the user's next item was one of the candidates.",
                &self.impressions_learned,
            ),
            counter(
                "eddy_serve_impressions_outside_pool_total",
                "Recommendations followed by an item no candidate source proposed: nothing to learn about the order.",
                &self.impressions_outside_pool,
            ),
            counter(
                "eddy_serve_impressions_unanswered_total",
                "Recommendations replaced by a newer one, or forgotten, before the user's next event: never learned.",
                &self.impressions_unanswered,
            ),
            Family::gauge(
                "eddy_serve_ready",
                "1 once every model has loaded.",
                f64::from(u8::from(self.ready.load(Ordering::Relaxed))),
            ),
        ]
    }

    fn histograms(&self) -> Vec<Histogram> {
        let (counts, sum) = *self.latency.lock().expect("poisoned");
        let buckets = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts)
            .collect();
        vec![Histogram {
            name: "eddy_serve_latency_seconds".to_string(),
            help: "Trigger read to recommendation sent.".to_string(),
            buckets,
            sum,
        }]
    }
}
