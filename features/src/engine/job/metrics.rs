//! Job metrics, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::Mutex;
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
    /// Tables bootstrapped and the job processing.
    pub ready: AtomicBool,
    /// Records behind the end of each source partition: (topic, partition, lag).
    pub lag: Mutex<Vec<(String, i32, i64)>>,
    /// The models' metrics, already in the exposition format (rendered by
    /// the learners at each checkpoint).
    pub models: Mutex<String>,
}

impl JobMetrics {
    /// Every count at zero; no watermark yet.
    pub fn new() -> JobMetrics {
        let m = JobMetrics::default();
        m.watermark_ms.store(i64::MIN, Ordering::Relaxed);
        m
    }

    /// The Prometheus exposition of every metric.
    pub fn render(&self, pipeline: &str) -> String {
        let mut out = String::new();
        let l = format!("pipeline=\"{pipeline}\"");
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {v}"
            );
        };
        counter(
            "eddy_events_in_total",
            "Source records read (undecodable ones included).",
            self.events_in.load(Ordering::Relaxed),
        );
        counter(
            "eddy_records_undecodable_total",
            "Source records that did not decode (sent to the dead-letter topic, not counted as events).",
            self.undecodable.load(Ordering::Relaxed),
        );
        counter(
            "eddy_events_late_total",
            "Events later than the watermark (sent to the dead-letter topic).",
            self.late.load(Ordering::Relaxed),
        );
        counter(
            "eddy_dead_letters_total",
            "Records sent to dead-letter topics, late ones included.",
            self.dead_lettered.load(Ordering::Relaxed),
        );
        counter(
            "eddy_feature_rows_total",
            "Feature rows emitted.",
            self.rows_out.load(Ordering::Relaxed),
        );
        counter(
            "eddy_checkpoints_total",
            "Task checkpoints written.",
            self.checkpoints.load(Ordering::Relaxed),
        );
        counter(
            "eddy_broker_outages_total",
            "Times the brokers stopped answering and the job waited for them (librdkafka reconnects), up to --broker-outage-timeout.",
            self.broker_outages.load(Ordering::Relaxed),
        );
        counter(
            "eddy_checkpoint_fallbacks_total",
            "Damaged checkpoints passed over for the previous one (the run replays from there).",
            self.checkpoint_fallbacks.load(Ordering::Relaxed),
        );
        let wm = self.watermark_ms.load(Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let delay = if wm == i64::MIN {
            f64::NAN
        } else {
            (now - wm) as f64 / 1000.0
        };
        let _ = writeln!(
            out,
            "# HELP eddy_watermark_delay_seconds Wall-clock time minus the lowest task watermark.\n# TYPE eddy_watermark_delay_seconds gauge\neddy_watermark_delay_seconds{{{l}}} {delay}"
        );
        let _ = writeln!(
            out,
            "# HELP eddy_state_bytes Approximate bytes of window state.\n# TYPE eddy_state_bytes gauge\neddy_state_bytes{{{l}}} {}",
            self.state_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP eddy_state_keys Keys with state, over all views.\n# TYPE eddy_state_keys gauge\neddy_state_keys{{{l}}} {}",
            self.keys.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP eddy_ready 1 once tables are loaded and events flow.\n# TYPE eddy_ready gauge\neddy_ready{{{l}}} {}",
            u8::from(self.ready.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP eddy_consumer_lag_records Records between the read position and the end of a source partition.\n# TYPE eddy_consumer_lag_records gauge"
        );
        for (topic, p, lag) in self.lag.lock().expect("poisoned").iter() {
            let _ = writeln!(
                out,
                "eddy_consumer_lag_records{{{l},topic=\"{topic}\",partition=\"{p}\"}} {lag}"
            );
        }
        out.push_str(&self.models.lock().expect("poisoned"));
        out
    }
}
