//! What the models report: the JSON record each checkpoint sends to the
//! metrics topic, the Prometheus families, and the run summary's line.

use std::fmt::Write as _;

use eddy_features::metrics::{Family, Kind, Labels};
use eddy_features::topic::now_ms;

use super::{Body, Online, pending_counts};

impl Online {
    /// The metrics record: what a dashboard or notebook reads.
    pub(super) fn metrics_record(&self) -> serde_json::Value {
        let s = &self.state;
        let mut metrics = serde_json::Map::new();
        for (k, v) in s.metrics() {
            metrics.insert(k.to_string(), finite(v));
        }
        if let Some(p) = &s.pending {
            let (waiting, unmatched, evicted) = pending_counts(p);
            metrics.insert("pending".into(), waiting.into());
            metrics.insert("unmatched_labels".into(), unmatched.into());
            metrics.insert("evicted".into(), evicted.into());
        }
        if let Body::Linear(m) = &s.body {
            metrics.insert("clipped".into(), m.ftrl.standardizer.clipped().into());
        }
        if let Body::Recommender(m) = &s.body {
            metrics.insert("k".into(), m.eval.k.into());
            metrics.insert("evaluated".into(), m.eval.report().evaluated.into());
            metrics.insert(
                "evaluate_every".into(),
                self.plan.params.evaluate_every().into(),
            );
            metrics.insert("not_admitted".into(), m.not_admitted().into());
        }
        serde_json::json!({
            "model": self.plan.name,
            "kind": self.plan.kind().name(),
            "version": s.version(),
            "examples": s.examples(),
            "skipped": s.skipped,
            "replayed": s.replayed,
            "metrics": metrics,
            "event_time": s.learned_until.values().max(),
            "emitted_at": now_ms(),
        })
    }

    pub(super) fn summary(&self) -> String {
        let s = &self.state;
        let metrics: Vec<String> = s
            .metrics()
            .into_iter()
            .map(|(k, v)| match &s.body {
                Body::Recommender(m) if k == "hit_rate" => format!("HR@{} {v:.4}", m.eval.k),
                Body::Recommender(m) if k == "ndcg" => format!("NDCG@{} {v:.4}", m.eval.k),
                _ => format!("{k} {v:.4}"),
            })
            .collect();
        let skipped: u64 = s.skipped.values().sum();
        let scored = match &s.body {
            Body::Recommender(m) if self.plan.params.evaluate_every() > 1 => format!(
                " (over {} scored: 1 in {})",
                m.eval.report().evaluated,
                self.plan.params.evaluate_every()
            ),
            Body::Recommender(_) | Body::Linear(_) => String::new(),
        };
        let mut line = format!(
            "{} ({}): {} examples, {}{scored}; version {}",
            self.plan.name,
            self.plan.kind().name(),
            s.examples(),
            metrics.join(", "),
            s.version()
        );
        if skipped > 0 {
            let _ = write!(
                line,
                "; {skipped} skipped (first: {})",
                s.first_skip.as_deref().unwrap_or("?")
            );
        }
        if let Body::Linear(m) = &s.body
            && m.ftrl.standardizer.clipped() > 0
        {
            let _ = write!(
                line,
                "; {} numbers entered clipped to ±{} standard deviations (since start)",
                m.ftrl.standardizer.clipped(),
                crate::hashing::Standardizer::CLIP
            );
        }
        if s.replayed > 0 {
            let _ = write!(
                line,
                "; {} replayed after a restart, not relearned",
                s.replayed
            );
        }
        line
    }
}

fn finite(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)
}

/// The models' metric families (the job reports them under the
/// pipeline's label).
pub(super) fn families(models: &[Online]) -> Vec<Family> {
    let label = |m: &Online| -> Labels {
        vec![
            ("model".to_string(), m.plan.name.clone()),
            ("kind".to_string(), m.plan.kind().name().to_string()),
        ]
    };
    let family = |name: &str, kind: Kind, help: &str, rows: Vec<(Labels, f64)>| {
        rows.into_iter()
            .fold(Family::new(name, help, kind), |f, (l, v)| f.sample(l, v))
    };
    let mut out = vec![
        family(
            "eddy_model_examples_total",
            Kind::Counter,
            "Examples learned (each predicted first: progressive validation).",
            models
                .iter()
                .map(|m| (label(m), m.state.examples() as f64))
                .collect(),
        ),
        family(
            "eddy_model_skipped_total",
            Kind::Counter,
            "Examples not learned, by reason (null or failing label, NaN or infinite input, null id).",
            models
                .iter()
                .flat_map(|m| {
                    m.state.skipped.iter().map(move |(r, n)| {
                        let mut l = label(m);
                        l.push(("reason".to_string(), r.clone()));
                        (l, *n as f64)
                    })
                })
                .collect(),
        ),
        family(
            "eddy_model_pending_examples",
            Kind::Gauge,
            "Examples waiting for a delayed label.",
            models
                .iter()
                .filter_map(|m| {
                    let p = m.state.pending.as_ref()?;
                    Some((label(m), pending_counts(p).0 as f64))
                })
                .collect(),
        ),
        family(
            "eddy_model_numbers_clipped_total",
            Kind::Counter,
            "Numbers that entered a linear model clipped to 5 standard deviations of the values before them, since start.",
            models
                .iter()
                .filter_map(|m| match &m.state.body {
                    Body::Linear(l) => Some((label(m), l.ftrl.standardizer.clipped() as f64)),
                    Body::Recommender(_) => None,
                })
                .collect(),
        ),
        family(
            "eddy_model_version",
            Kind::Gauge,
            "Version of the model last published.",
            models
                .iter()
                .map(|m| (label(m), m.state.version() as f64))
                .collect(),
        ),
    ];
    let mut names: Vec<&'static str> = Vec::new();
    for m in models {
        for (k, _) in m.state.metrics() {
            if !names.contains(&k) {
                names.push(k);
            }
        }
    }
    for metric in names {
        out.push(family(
            &format!("eddy_model_{metric}"),
            Kind::Gauge,
            &format!("Progressive {metric} (each example scored before it is learned)."),
            models
                .iter()
                .flat_map(|m| {
                    let mut l = label(m);
                    if let Body::Recommender(r) = &m.state.body {
                        l.push(("k".to_string(), r.eval.k.to_string()));
                    }
                    m.state
                        .metrics()
                        .into_iter()
                        .filter(move |(n, _)| *n == metric)
                        .map(move |(_, v)| (l.clone(), v))
                })
                .collect(),
        ));
    }
    out
}
