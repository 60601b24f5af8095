//! The feature step of `eddy quickstart`: runs the MovieLens pipeline spec
//! (`datasets/movielens/pipeline.yaml`) over the topics just loaded, to the
//! end of the events, exactly as `eddy run --until-end` would.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use eddy_features::engine::job::{FeatureReader, Job, JobOptions};
use eddy_features::engine::value::Scalar;
use eddy_features::registry::SchemaRegistry;
use eddy_features::spec;

use crate::context::Context;
use crate::progress;

/// The spec, built in, so quickstart works from any directory.
pub const PIPELINE: &str = include_str!("../../datasets/movielens/pipeline.yaml");
pub const PIPELINE_PATH: &str = "datasets/movielens/pipeline.yaml";

/// What the feature step did.
pub struct FeatureSummary {
    pub events: u64,
    pub rows: u64,
    pub elapsed: Duration,
    pub views: Vec<(String, String, usize)>,
    pub parquet: Option<String>,
    pub sample: Option<(String, Vec<(String, Scalar)>)>,
    /// One line per model: its progressive metrics.
    pub models: Vec<String>,
    /// The spec as run (paths moved under the data directory).
    pub loaded: spec::LoadedSpec,
    /// Where the job checkpointed.
    pub checkpoint_url: String,
}

pub fn run(
    ctx: &Context,
    registry: std::sync::Arc<dyn SchemaRegistry>,
    sample_user: &str,
) -> anyhow::Result<FeatureSummary> {
    let mut loaded = super::common::parse(PIPELINE_PATH, PIPELINE)?;
    // The spec writes Parquet under ./eddy-data; keep it with the data
    // wherever --data-dir points.
    let mut parquet = None;
    if let Some(dir) = &ctx.data_dir {
        for (name, view) in loaded.spec.features.iter_mut() {
            if !view.output.parquet.0.is_empty() {
                let path = dir.join("parquet").join(name).display().to_string();
                parquet = Some(path.clone());
                view.output.parquet = eddy_features::spec::Urls(vec![path]);
            }
        }
    }
    let checkpoint_url = match &ctx.data_dir {
        Some(dir) => dir.join("checkpoints").display().to_string(),
        None => "eddy-checkpoints".into(),
    };
    let options = JobOptions {
        until_end: true,
        checkpoint_url: checkpoint_url.clone(),
        batch: 10_000,
        group: None,
        max_waiting: eddy_features::engine::job::MAX_WAITING_EXAMPLES,
    };
    let mut job = Job::open(&loaded, ctx.backend.clone(), registry, options)?;
    super::common::attach_models(&mut job, &loaded, ctx.backend.as_ref())?;
    let reader: FeatureReader = job.reader();
    let bar = progress::bar(job.records_to_read(), "features");
    let summary = job.run(&AtomicBool::new(false), &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let views = loaded
        .spec
        .features
        .iter()
        .map(|(name, v)| (name.clone(), v.output_topic(name), reader.len(name)))
        .collect();
    let first_view = loaded
        .spec
        .features
        .keys()
        .next()
        .cloned()
        .unwrap_or_default();
    let sample = reader
        .get(&first_view, sample_user, None)?
        .map(|f| (first_view.clone(), f.values));
    Ok(FeatureSummary {
        events: summary.events,
        rows: summary.rows,
        elapsed: summary.elapsed,
        views,
        parquet,
        sample,
        models: job.model_summary(),
        loaded,
        checkpoint_url,
    })
}

/// Prints the feature step's part of the quickstart summary.
pub fn print(s: &FeatureSummary, sample_user: &str) {
    println!(
        "  features:  {} events through {PIPELINE_PATH} in {:.2}s ({:.0} events/s), {} feature rows",
        s.events,
        s.elapsed.as_secs_f64(),
        progress::rate(s.events, s.elapsed),
        s.rows
    );
    for (view, topic, keys) in &s.views {
        println!("             view {view}: {keys} keys in topic {topic}");
    }
    if let Some(p) = &s.parquet {
        println!("             Parquet in {p}");
    }
    for line in &s.models {
        println!("  model      {line}");
    }
    if let Some((view, values)) = &s.sample {
        println!("  user {sample_user} in {view}:");
        for (name, v) in values {
            println!("    {name:<28} {}", v.to_json());
        }
    }
}
