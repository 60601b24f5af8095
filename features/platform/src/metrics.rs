//! Metrics: one registry per process, exposed in the Prometheus text
//! format by the official client library (`prometheus-client`).
//!
//! Each component keeps its counts where its hot path is (atomics, or a
//! model's running metrics) and registers a [`Collector`] that reads them
//! when scraped. The registry writes the exposition: names, `# HELP` and
//! `# TYPE` lines, label escaping, the `_total` suffix of counters and a
//! histogram's cumulative buckets are the library's, not four hand-written
//! renderers'. A component ([`Report`]) that runs per pipeline is
//! registered under a `pipeline` label ([`Metrics::register`]); its
//! samples add their own labels after it.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Labels of one sample, after the registry's (`pipeline`).
pub type Labels = Vec<(String, String)>;

/// What a family's samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (rendered with the `_total` suffix).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One metric family as read at a scrape: its samples, each with its own
/// labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name; a counter's without `_total`, which the encoder appends.
    pub name: String,
    /// What it counts.
    pub help: String,
    /// Counter or gauge.
    pub kind: Kind,
    /// (labels, value) per sample.
    pub samples: Vec<(Labels, f64)>,
}

impl Family {
    /// A family without samples yet. A counter's `name` may end in
    /// `_total`, as it is exposed: the suffix is the encoder's to write.
    pub fn new(name: &str, help: &str, kind: Kind) -> Family {
        let name = match kind {
            Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
            Kind::Gauge => name,
        };
        Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples: Vec::new(),
        }
    }

    /// A counter with one unlabelled sample.
    pub fn counter(name: &str, help: &str, value: u64) -> Family {
        Family::new(name, help, Kind::Counter).sample(Vec::new(), value as f64)
    }

    /// A gauge with one unlabelled sample.
    pub fn gauge(name: &str, help: &str, value: f64) -> Family {
        Family::new(name, help, Kind::Gauge).sample(Vec::new(), value)
    }

    /// Adds a sample.
    pub fn sample(mut self, labels: Labels, value: f64) -> Family {
        self.samples.push((labels, value));
        self
    }

    /// Writes the family to a scrape.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric_type = match self.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        };
        let mut metric = encoder.encode_descriptor(&self.name, &self.help, None, metric_type)?;
        for (labels, value) in &self.samples {
            let sample = metric.encode_family(labels)?;
            match self.kind {
                // Whole numbers are written as integers (`1`, not `1.0`).
                Kind::Counter if value.fract() == 0.0 && *value >= 0.0 => {
                    ConstCounter::new(*value as u64).encode(sample)?
                }
                Kind::Counter => ConstCounter::new(*value).encode(sample)?,
                Kind::Gauge if value.fract() == 0.0 && value.abs() < 9.0e15 => {
                    ConstGauge::new(*value as i64).encode(sample)?
                }
                Kind::Gauge => ConstGauge::new(*value).encode(sample)?,
            }
        }
        Ok(())
    }
}

/// A histogram as read at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The name.
    pub name: String,
    /// What it measures.
    pub help: String,
    /// (upper bound, observations in this bucket alone), the last bound
    /// `f64::INFINITY`; the encoder writes them cumulatively.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of the observations.
    pub sum: f64,
}

impl Histogram {
    /// Writes the histogram to a scrape.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric =
            encoder.encode_descriptor(&self.name, &self.help, None, MetricType::Histogram)?;
        let count = self.buckets.iter().map(|b| b.1).sum();
        metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            count,
            &self.buckets,
            None,
        )
    }
}

/// A component's metrics, read when scraped.
pub trait Report: std::fmt::Debug + Send + Sync + 'static {
    /// Its counters and gauges now.
    fn families(&self) -> Vec<Family>;

    /// Its histograms now. Default: none.
    fn histograms(&self) -> Vec<Histogram> {
        Vec::new()
    }
}

/// Families read once: what a component reported at a point in time.
impl Report for Vec<Family> {
    fn families(&self) -> Vec<Family> {
        self.clone()
    }
}

/// A [`Report`] as the registry's collector.
#[derive(Debug)]
struct Reported(Arc<dyn Report>);

impl Collector for Reported {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in self.0.families() {
            family.encode(&mut encoder)?;
        }
        for histogram in self.0.histograms() {
            histogram.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// The process's registry, shared by the components that report to it and
/// the HTTP endpoints that expose it.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Registers `report` for pipeline `pipeline` (None: a process-wide
    /// component, such as the schema registry).
    pub fn register(&self, pipeline: Option<&str>, report: Arc<dyn Report>) {
        let collector = Reported(report);
        let mut registry = self.registry.lock().expect("poisoned");
        match pipeline {
            Some(p) => registry
                .sub_registry_with_label((Cow::Borrowed("pipeline"), Cow::Owned(p.to_string())))
                .register_collector(Box::new(collector)),
            None => registry.register_collector(Box::new(collector)),
        }
    }

    /// Every metric, in the Prometheus text format (version 0.0.4): the
    /// body of a `/metrics` answer.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("poisoned");
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Two;

    impl Report for Two {
        fn families(&self) -> Vec<Family> {
            vec![
                Family::counter("eddy_things_total", "Things seen.", 3),
                Family::new("eddy_lag", "Records behind.", Kind::Gauge)
                    .sample(vec![("topic".into(), "a\"b".into())], 2.5),
            ]
        }

        fn histograms(&self) -> Vec<Histogram> {
            vec![Histogram {
                name: "eddy_wait_seconds".into(),
                help: "Waits.".into(),
                buckets: vec![(0.5, 1), (1.0, 0), (f64::INFINITY, 2)],
                sum: 7.0,
            }]
        }
    }

    /// Names, help, types, the pipeline label before a sample's own, and
    /// escaping are the library's.
    #[test]
    fn families_render_in_the_prometheus_text_format() {
        let m = Metrics::new();
        m.register(Some("p"), Arc::new(Two));
        let text = m.render();
        assert!(
            text.contains(
                "# HELP eddy_things_total Things seen.\n# TYPE eddy_things_total counter\neddy_things_total{pipeline=\"p\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("eddy_lag{pipeline=\"p\",topic=\"a\\\"b\"} 2.5\n"),
            "{text}"
        );
        // Buckets are cumulative; the count is every observation.
        for line in [
            "eddy_wait_seconds_bucket{pipeline=\"p\",le=\"0.5\"} 1\n",
            "eddy_wait_seconds_bucket{pipeline=\"p\",le=\"1\"} 1\n",
            "eddy_wait_seconds_bucket{pipeline=\"p\",le=\"+Inf\"} 3\n",
            "eddy_wait_seconds_count{pipeline=\"p\"} 3\n",
            "eddy_wait_seconds_sum{pipeline=\"p\"} 7.0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
