//! Job metrics: counters the hot path bumps, read by the process's metrics
//! registry (`eddy_platform::metrics`) when scraped.

use std::sync::Mutex;

use crate::metrics::{Family, Kind, Report};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Counters and gauges of a running job.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Source records read (events and records that did not decode).
    pub events_in: AtomicU64,
    /// Source records that did not decode (dead-lettered).
    pub undecodable: AtomicU64,
    /// Late events.
    pub late: AtomicU64,
    /// Records sent to dead-letter topics.
    pub dead_lettered: AtomicU64,
    /// Re-keyed events and marks sent on the repartition topic.
    pub shuffled: AtomicU64,
    /// Repartition records already received (an origin task replayed
    /// them after a restart), skipped.
    pub shuffle_duplicates: AtomicU64,
    /// Repartition records that did not decode (dead-lettered).
    pub shuffle_undecodable: AtomicU64,
    /// Feature rows emitted.
    pub rows_out: AtomicU64,
    /// Task checkpoints written.
    pub checkpoints: AtomicU64,
    /// Damaged checkpoints passed over for an older one.
    pub checkpoint_fallbacks: AtomicU64,
    /// Broker outages the source consumer waited through.
    pub broker_outages: AtomicU64,
    /// Lowest task watermark, epoch ms (i64::MIN before the first).
    pub watermark_ms: AtomicI64,
    /// Bytes of view state.
    pub state_bytes: AtomicU64,
    /// Keys held.
    pub keys: AtomicU64,
    /// Probed events (models' examples) waiting for a re-keyed view's
    /// answer, and lookups waiting for their owner's watermark.
    pub lookups_waiting: AtomicU64,
    /// Tables bootstrapped and the job processing.
    pub ready: AtomicBool,
    /// Records behind the end of each source partition: (topic, partition, lag).
    pub lag: Mutex<Vec<(String, i32, i64)>>,
    /// The models' metrics, as the learners reported them at the last
    /// checkpoint.
    pub models: Mutex<Vec<Family>>,
}

impl JobMetrics {
    /// Every count at zero; no watermark yet.
    pub fn new() -> JobMetrics {
        let m = JobMetrics::default();
        m.watermark_ms.store(i64::MIN, Ordering::Relaxed);
        m
    }
}

impl Report for JobMetrics {
    fn families(&self) -> Vec<Family> {
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = vec![
            Family::counter(
                "eddy_events_in_total",
                "Source records read (undecodable ones included).",
                count(&self.events_in),
            ),
            Family::counter(
                "eddy_records_undecodable_total",
                "Source records that did not decode (sent to the dead-letter topic, not counted as events).",
                count(&self.undecodable),
            ),
            Family::counter(
                "eddy_events_late_total",
                "Events later than the watermark (sent to the dead-letter topic).",
                count(&self.late),
            ),
            Family::counter(
                "eddy_dead_letters_total",
                "Records sent to dead-letter topics, late ones included.",
                count(&self.dead_lettered),
            ),
            Family::counter(
                "eddy_repartition_records_total",
                "Re-keyed events and watermark marks sent on the repartition topic.",
                count(&self.shuffled),
            ),
            Family::counter(
                "eddy_repartition_duplicates_total",
                "Repartition records received twice (a task replayed them after a restart) and skipped.",
                count(&self.shuffle_duplicates),
            ),
            Family::counter(
                "eddy_repartition_undecodable_total",
                "Repartition records that did not decode (sent to the dead-letter topic).",
                count(&self.shuffle_undecodable),
            ),
            Family::counter(
                "eddy_feature_rows_total",
                "Feature rows emitted.",
                count(&self.rows_out),
            ),
            Family::counter(
                "eddy_checkpoints_total",
                "Task checkpoints written.",
                count(&self.checkpoints),
            ),
            Family::counter(
                "eddy_broker_outages_total",
                "Times the brokers stopped answering and the job waited for them (librdkafka reconnects), up to --broker-outage-timeout.",
                count(&self.broker_outages),
            ),
            Family::counter(
                "eddy_checkpoint_fallbacks_total",
                "Damaged checkpoints passed over for the previous one (the run replays from there).",
                count(&self.checkpoint_fallbacks),
            ),
        ];
        let wm = self.watermark_ms.load(Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let delay = if wm == i64::MIN {
            f64::NAN
        } else {
            (now - wm) as f64 / 1000.0
        };
        out.push(Family::gauge(
            "eddy_watermark_delay_seconds",
            "Wall-clock time minus the lowest task watermark.",
            delay,
        ));
        out.push(Family::gauge(
            "eddy_rekey_lookups_waiting",
            "Models' examples waiting for a re-keyed view's values from the task owning their key, and lookups waiting for that task's watermark: stays up if a partition holds the re-keyed views back.",
            count(&self.lookups_waiting) as f64,
        ));
        out.push(Family::gauge(
            "eddy_state_bytes",
            "Approximate bytes of window state.",
            count(&self.state_bytes) as f64,
        ));
        out.push(Family::gauge(
            "eddy_state_keys",
            "Keys with state, over all views.",
            count(&self.keys) as f64,
        ));
        out.push(Family::gauge(
            "eddy_ready",
            "1 once tables are loaded and events flow.",
            f64::from(u8::from(self.ready.load(Ordering::Relaxed))),
        ));
        let mut lag = Family::new(
            "eddy_consumer_lag_records",
            "Records between the read position and the end of a source partition.",
            Kind::Gauge,
        );
        for (topic, p, records) in self.lag.lock().expect("poisoned").iter() {
            lag = lag.sample(
                vec![
                    ("topic".to_string(), topic.clone()),
                    ("partition".to_string(), p.to_string()),
                ],
                *records as f64,
            );
        }
        out.push(lag);
        out.extend(self.models.lock().expect("poisoned").iter().cloned());
        out
    }
}
