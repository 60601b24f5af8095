//! The serving step of `eddy quickstart`: the freshness lift over the
//! MovieLens history, then a short live tail. New ratings arrive at a
//! steady rate, `Service` (the code `eddy serve` runs) answers each one on
//! the `recommendations` topic, and the time from each rating to its
//! recommendation is measured.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;
use eddy_features::avro::{AvroCodec, Encoder};
use eddy_features::engine::job::schema_lookup;
use eddy_features::registry::SchemaRegistry;
use eddy_features::topic::ProducerRecord;
use eddy_serving::freshness::{self, Evaluation, Options};
use eddy_serving::service::{ServeOptions, Service};
use eddy_training::recommend::Rng;

use crate::context::Context;

/// What the serving step did.
pub struct ServingSummary {
    pub evaluation: Evaluation,
    pub evaluated_secs: f64,
    pub tail: usize,
    pub latencies_us: Vec<f64>,
    /// (user, titles recommended), from the tail's last answers.
    pub examples: Vec<(String, Vec<String>)>,
    /// The model versions of the tail's first and last answers: the
    /// learner kept training during the tail, and serving swapped.
    pub versions: Option<(String, String)>,
    /// Events the live pipeline read during the tail.
    pub learned: u64,
}

/// The history as interactions (likes: `rating >= 4`), in time order.
pub fn likes(ratings: &[(i64, i64, f64, i64)]) -> Vec<freshness::Interaction> {
    ratings
        .iter()
        .filter(|r| r.2 >= 4.0)
        .map(|r| (r.0 as u64, r.1 as u64, r.3))
        .collect()
}

pub fn run(
    ctx: &Context,
    registry: Arc<dyn SchemaRegistry>,
    pipeline: &super::quickstart_features::FeatureSummary,
    ratings: &[(i64, i64, f64, i64)],
    titles: &HashMap<i64, String>,
    rating_enc: &Encoder,
    tail: usize,
) -> anyhow::Result<ServingSummary> {
    let (loaded, checkpoint_url) = (&pipeline.loaded, pipeline.checkpoint_url.as_str());
    let lookup = schema_lookup(&registry);
    let (_, models) = eddy_training::plan::validate_with_models(loaded, &lookup)
        .map_err(|p| anyhow::anyhow!(eddy_features::spec::SpecError::Invalid(p)))?;
    let serving = loaded
        .spec
        .serving
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the quickstart spec has no serving section"))?;
    let plans: Vec<_> = serving
        .candidates
        .iter()
        .filter_map(|n| models.iter().find(|m| &m.name == n))
        .collect();
    let started = std::time::Instant::now();
    let evaluation = freshness::evaluate(
        &plans,
        &likes(ratings),
        Options {
            k: 10,
            next: 5,
            period_ms: 86_400_000,
            warmup: 1000,
            per_model: serving.candidates_per_model.unwrap_or(100),
        },
    );
    let evaluated_secs = started.elapsed().as_secs_f64();

    let service = Service::open(
        loaded,
        ctx.backend.clone(),
        registry.clone(),
        ServeOptions {
            from_earliest: false,
            until_end: false,
            batch: 1000,
        },
    )?;
    // New ratings: existing users, on movies rated before, after the
    // history ends.
    let last_ts = ratings.last().map_or(0, |r| r.3);
    let users: Vec<i64> = {
        let mut u: Vec<i64> = ratings.iter().map(|r| r.0).collect();
        u.sort_unstable();
        u.dedup();
        u
    };
    let movies: Vec<i64> = ratings.iter().rev().take(5000).map(|r| r.1).collect();
    // The pipeline keeps running during the tail: features and models
    // learn the new ratings and publish every 300 ms, and serving swaps
    // the models in as they arrive.
    let mut live_spec = loaded.clone();
    live_spec.spec.checkpoint.interval = eddy_features::spec::Millis(300);
    let mut job = eddy_features::engine::job::Job::open(
        &live_spec,
        ctx.backend.clone(),
        registry.clone(),
        eddy_features::engine::job::JobOptions {
            until_end: false,
            checkpoint_url: checkpoint_url.to_string(),
            batch: 10_000,
            group: None,
            max_waiting: eddy_features::engine::job::MAX_WAITING_EXAMPLES,
        },
    )?;
    // The models trained above go on learning; say so once, not "resumes"
    // per model (which read as if a fresh directory had old models).
    let models = super::common::plan_models(&job, loaded)?;
    let continued =
        super::common::attach_models_with(&mut job, &models, ctx.backend.as_ref(), |l| l)?;
    if !continued.is_empty() {
        eprintln!(
            "the live pipeline continues the {} models trained above",
            continued.len()
        );
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pipeline_read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let learner = {
        let stop = stop.clone();
        let read = pipeline_read.clone();
        std::thread::spawn(move || {
            job.run(&stop, &mut |n| {
                read.store(n, std::sync::atomic::Ordering::Relaxed)
            })
        })
    };
    let mut rng = Rng(2026);
    let tail_result =
        super::live_tail::live_tail(ctx.backend.clone(), service, "ratings", tail, 200, |i| {
            let user = users[(rng.next_u64() % users.len().max(1) as u64) as usize];
            let movie = movies[(rng.next_u64() % movies.len().max(1) as u64) as usize];
            let stars = 0.5 * (1 + rng.next_u64() % 10) as f64;
            // Ten seconds of event time apart, so the pipeline's watermark
            // (the latest time minus the 10-minute lateness) passes the
            // first ones during the tail and the models learn them.
            let ts = last_ts + 10_000 * (i as i64 + 1);
            let value = Value::Record(vec![
                ("user_id".into(), Value::Long(user)),
                ("movie_id".into(), Value::Long(movie)),
                ("rating".into(), Value::Double(stars)),
                ("timestamp".into(), Value::TimestampMillis(ts)),
            ]);
            Ok(ProducerRecord::new(
                "ratings",
                Some(user.to_string().into_bytes()),
                Some(rating_enc.encode(&value)?),
            )
            .at(ts))
        });
    // The pipeline may trail the tail on a loaded machine: let it read the
    // last new ratings before stopping it (it checkpoints as it stops).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pipeline_read.load(std::sync::atomic::Ordering::Relaxed) < tail as u64
        && !learner.is_finished()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let learned = learner
        .join()
        .map_err(|_| anyhow::anyhow!("the live pipeline panicked"))??
        .events;
    let (latencies_us, records) = tail_result?;
    // A few of the last answers, with titles.
    let codec = AvroCodec::new(registry.clone());
    let version_of = |r: &eddy_features::topic::Record| {
        r.headers
            .iter()
            .find(|h| h.key == "eddy.lineage.model_version")
            .and_then(|h| h.value.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let versions = records
        .first()
        .and_then(version_of)
        .zip(records.last().and_then(version_of));
    let mut examples: Vec<(String, Vec<String>)> = Vec::new();
    for r in records.iter().rev() {
        let Some(bytes) = r.value.as_deref() else {
            continue;
        };
        let Ok(decoded) = codec.decode(bytes) else {
            continue;
        };
        let json = eddy_features::avro::avro_to_json(&decoded.value);
        let user = json["user_id"].as_str().unwrap_or_default().to_string();
        if examples.iter().any(|e| e.0 == user) {
            continue;
        }
        let why = json["fewer_items_because"].as_str().map(str::to_string);
        let mut items: Vec<String> = json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .take(5)
            .filter_map(|i| i["item"].as_str()?.parse::<i64>().ok())
            .map(|id| {
                titles
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("movie {id}"))
            })
            .collect();
        // Fewer than asked for: say why rather than leave a short list.
        items.extend(why.map(|w| format!("({w})")));
        examples.push((user, items));
        if examples.len() == 3 {
            break;
        }
    }
    Ok(ServingSummary {
        evaluation,
        evaluated_secs,
        tail,
        latencies_us,
        examples,
        versions,
        learned,
    })
}

/// Prints the serving step's part of the quickstart summary.
pub fn print(s: &ServingSummary) {
    let e = &s.evaluation;
    {
        let chain = e.serving();
        println!(
            "  freshness: recommenders updated on every rating against the same ones rebuilt nightly, over the history ({:.1} s):",
            s.evaluated_secs
        );
        for l in &e.lifts {
            println!(
                "             {:<56} HR@10 {:.4} vs {:.4} ({:.2}x), NDCG@10 {:.4} vs {:.4} ({:.2}x)",
                l.model,
                l.streaming_hit_rate,
                l.daily_hit_rate,
                l.hit_rate_lift,
                l.streaming_ndcg,
                l.daily_ndcg,
                l.ndcg_lift
            );
        }
        println!(
            "             freshness lift of what serving recommends: {:.2}x HR@10 over a nightly rebuild, {:.2}x over a model never rebuilt (HR@10 {:.4})",
            chain.hit_rate_lift, chain.frozen_hit_rate_lift, chain.frozen_hit_rate
        );
        println!(
            "             the learned order learned from {} recommendations; {} were followed by an item no candidate source had proposed (not learned)",
            e.ranker.learned, e.ranker.outside_pool
        );
        if let Some(warning) = e.below_best_source() {
            println!("  WARNING:   {warning}");
        }
    }
    let (p50, p99, _) = super::live_tail::percentiles(s.latencies_us.clone());
    println!(
        "  serving:   {} new ratings at 200/s, {} recommendations on topic `recommendations`; rating → recommendation p50 {:.2} ms, p99 {:.2} ms",
        s.tail,
        s.latencies_us.len(),
        p50 / 1000.0,
        p99 / 1000.0
    );
    if let Some((first, last)) = &s.versions {
        println!(
            "             the pipeline kept running and read the {} new ratings; the models served went from {first} to {last}, swapped in between requests",
            s.learned
        );
    }
    for (user, titles) in &s.examples {
        println!("             for user {user}: {}", titles.join(" · "));
    }
}
