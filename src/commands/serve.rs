//! `eddy serve` (real-time recommendations) and `eddy evaluate` (the
//! freshness lift).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use eddy_features::engine::job::schema_lookup;
use eddy_features::spec::{Millis, SpecError};
use eddy_serving::ServeError;
use eddy_serving::freshness::{self, Options};
use eddy_serving::service::{ServeOptions, Service};

use crate::cli::{EvaluateArgs, Global, ServeArgs};
use crate::context::Context;
use crate::exit::{CliError, ExitCode};

use super::common::{load, serve_failure, spec_failure, stop_on_signals};

/// `eddy serve SPEC`.
pub fn serve(global: &Global, args: &ServeArgs) -> anyhow::Result<()> {
    let loaded = load(&args.spec)?;
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let mut service = Service::open(
        &loaded,
        ctx.backend.clone(),
        registry,
        ServeOptions {
            from_earliest: args.from_earliest,
            until_end: args.until_end,
            batch: 1000,
        },
    )
    .map_err(serve_failure)?;
    let metrics = eddy_features::metrics::Metrics::new();
    metrics.register(Some(&service.name), service.metrics.clone());
    let addr = eddy_serving::http::serve(
        args.http,
        metrics,
        service.state.clone(),
        service.metrics.clone(),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(stop.clone())?;
    eprintln!(
        "serving `{}` on the {} backend: recommendations to topic `{}`, HTTP on http://{addr}/v1/recommendations/{{user}}{}",
        loaded.spec.name,
        ctx.backend.kind(),
        service.topic(),
        if args.until_end {
            "; stops at the end of the triggers"
        } else {
            "; Ctrl-C stops"
        }
    );
    let summary = service.run(&stop).map_err(serve_failure)?;
    println!(
        "{} triggers and {} requests in {:.1} s: {} recommendations, {} dead-lettered",
        summary.triggers,
        summary.requests,
        summary.elapsed.as_secs_f64(),
        summary.recommendations,
        summary.dead_lettered
    );
    let (learned, outside, unanswered) = summary.impressions;
    if learned + outside + unanswered > 0 {
        println!(
            "the learned order learned from {learned} recommendations; {outside} were followed by an item no candidate source had proposed, {unanswered} by no event of the user before a newer recommendation (neither learned)"
        );
    }
    if let Some(warning) = summary.ahead_warning() {
        println!("{warning}");
    }
    Ok(())
}

/// `eddy evaluate SPEC`.
pub fn evaluate(global: &Global, args: &EvaluateArgs) -> anyhow::Result<()> {
    let loaded = load(&args.spec)?;
    let period = Millis::parse(&args.period)
        .map_err(|e| CliError::fail(ExitCode::Usage, format!("--period: {e}")))?;
    let Some(serving) = &loaded.spec.serving else {
        return Err(serve_failure(ServeError::NoServing));
    };
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let lookup = schema_lookup(&registry);
    let (_, models) = eddy_training::plan::validate_with_models(&loaded, &lookup)
        .map_err(|p| spec_failure(SpecError::Invalid(p)))?;
    let plans: Vec<_> = serving
        .candidates
        .iter()
        .filter_map(|n| models.iter().find(|m| &m.name == n))
        .collect();
    let first = plans.first().context("serving.candidates names no model")?;
    let source = &loaded.spec.sources[&first.source];
    let schema = lookup(&source.topic)
        .map_err(|e| anyhow::anyhow!(e))?
        .with_context(|| format!("topic `{}` has no schema", source.topic))?;
    let started = std::time::Instant::now();
    let (events, read, undecodable) = freshness::interactions(
        first,
        &source.key,
        (&source.event_time, source.event_time_unit),
        source.format,
        ctx.backend.as_ref(),
        registry.clone(),
        schema,
    )
    .map_err(serve_failure)?;
    let evaluation = freshness::evaluate(
        &plans,
        &events,
        Options {
            k: args.k.max(1),
            next: args.next.max(1),
            period_ms: period.0,
            warmup: args.warmup,
            per_model: serving.candidates_per_model.unwrap_or(100),
        },
    );
    let lifts = &evaluation.lifts;
    let below = evaluation.below_best_source();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "source": first.source, "events": read, "undecodable": undecodable,
                "interactions": events.len(), "k": args.k, "next": args.next,
                "period": args.period, "models": lifts,
                "ranker": evaluation.ranker, "below_best_source": below,
            })
        );
        return Ok(());
    }
    println!(
        "prequential replay of `{}`: {read} events, {} positive interactions ({}), the first {} to warm up; {:.1} s",
        first.source,
        events.len(),
        first
            .label
            .as_ref()
            .map_or("every event".to_string(), |(sql, _)| format!("`{sql}`")),
        args.warmup,
        started.elapsed().as_secs_f64()
    );
    println!(
        "each recommendation of {} items is scored against the user's next {} items, before the models learn the event\n",
        args.k, args.next
    );
    println!(
        "{:<56} {:>10} {:>10} {:>7} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "recommender",
        format!("HR@{} live", args.k),
        format!("{} batch", args.period),
        "lift",
        "never rebuilt",
        "lift",
        "NDCG live",
        format!("{} batch", args.period),
        "lift"
    );
    for l in lifts {
        println!(
            "{:<56} {:>10.4} {:>10.4} {:>6.2}x {:>10.4} {:>6.2}x {:>10.4} {:>10.4} {:>6.2}x",
            l.model,
            l.streaming_hit_rate,
            l.daily_hit_rate,
            l.hit_rate_lift,
            l.frozen_hit_rate,
            l.frozen_hit_rate_lift,
            l.streaming_ndcg,
            l.daily_ndcg,
            l.ndcg_lift
        );
    }
    if let Some(l) = lifts.last() {
        println!(
            "\nfreshness lift of the serving chain: {:.2}x HR@{} and {:.2}x NDCG@{} over a model rebuilt every {}; {:.2}x HR@{} over one trained when scoring began and never rebuilt",
            l.hit_rate_lift,
            args.k,
            l.ndcg_lift,
            args.k,
            args.period,
            l.frozen_hit_rate_lift,
            args.k
        );
    }
    println!(
        "the learned order learned from {} recommendations; {} were followed by an item no candidate source had proposed (not learned)",
        evaluation.ranker.learned, evaluation.ranker.outside_pool
    );
    if let Some(warning) = below {
        println!("WARNING: {warning}");
    }
    Ok(())
}
