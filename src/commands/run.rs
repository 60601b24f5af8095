//! `eddy run` and `eddy validate`: the streaming feature pipeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use eddy_features::engine::job::{Job, JobError, JobMetrics, JobOptions, schema_lookup};
use eddy_features::metrics::Metrics;
use eddy_features::spec::{self, SpecError};

use crate::cli::{Global, RunArgs, ValidateArgs};
use crate::context::Context;
use crate::exit::{CliError, ExitCode};
use crate::progress;

use super::common::{attach_models_with, load, plan_models, spec_failure, stop_on_signals};

/// `eddy validate SPEC`: every problem, with file, line and key.
pub fn validate(global: &Global, args: &ValidateArgs) -> anyhow::Result<()> {
    let loaded = load(&args.spec)?;
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let (plans, models) =
        eddy_training::plan::validate_with_models(&loaded, &schema_lookup(&registry))
            .map_err(|p| spec_failure(SpecError::Invalid(p)))?;
    // Every storage location the spec names must be reachable and
    // writable now, rather than at the first checkpoint of a long run.
    let mut urls: Vec<(&str, String)> = Vec::new();
    if let Some(url) = &loaded.spec.checkpoint.url {
        urls.push(("checkpoint.url", url.clone()));
    }
    if let Some(a) = &loaded.spec.archive {
        urls.push(("archive.url", a.url.clone()));
    }
    for plan in &plans {
        for url in &plan.parquet {
            urls.push(("parquet output", url.clone()));
        }
    }
    let mut storage = Vec::new();
    for (what, url) in &urls {
        eddy_features::store::Store::open(url)
            .and_then(|s| s.probe())
            .with_context(|| format!("{}: {what} `{url}`", args.spec.display()))?;
        storage.push(format!("  storage {url} ({what}): reachable and writable"));
    }
    for plan in &plans {
        if let Some(r) = &plan.redis {
            let reachable = redis::Client::open(r.url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if let Err(e) = reachable {
                return Err(CliError::fail(
                    ExitCode::Unreachable,
                    format!(
                        "{}: view `{}`: the online store does not answer: {e}",
                        args.spec.display(),
                        plan.name
                    ),
                ));
            }
            storage.push(format!(
                "  online store for view {} (Redis): reachable",
                plan.name
            ));
        }
        if let Some(pg) = &plan.postgres {
            let reachable = pg
                .url
                .parse::<postgres::Config>()
                .and_then(|c| c.connect(postgres::NoTls))
                .and_then(|mut c| c.simple_query("SELECT 1").map(|_| ()));
            if let Err(e) = reachable {
                return Err(CliError::fail(
                    ExitCode::Unreachable,
                    format!(
                        "{}: view `{}`: PostgreSQL does not answer: {e}",
                        args.spec.display(),
                        plan.name
                    ),
                ));
            }
            storage.push(format!(
                "  PostgreSQL table for view {}: reachable",
                plan.name
            ));
        }
    }
    println!("{}: valid", args.spec.display());
    for line in storage {
        println!("{line}");
    }
    for plan in &plans {
        // A re-keyed view says so: its events cross tasks.
        let keyed = if plan.rekeyed {
            format!(", re-keyed by {} through the repartition topic", plan.key)
        } else {
            String::new()
        };
        println!(
            "  view {} ({} → {}{keyed}): {} features: {}",
            plan.name,
            plan.source,
            plan.output_topic,
            plan.features.len(),
            plan.features
                .iter()
                .map(|f| f.column.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for m in &models {
        let what = if m.kind().is_recommender() {
            format!(
                "item {}",
                m.source_columns
                    .get_index(m.item.as_ref().map_or(0, |i| i.0))
                    .map_or("?", |c| c.0.as_str())
            )
        } else {
            format!("{} inputs", m.inputs.len())
        };
        let mut said = String::new();
        // Re-keyed views it reads: each example waits for their owners.
        let mut first = 0;
        let mut keyed: Vec<String> = Vec::new();
        for p in &plans {
            let range = first..first + p.features.len();
            first = range.end;
            let reads = m.inputs.iter().any(|i| {
                matches!(i.from, eddy_training::plan::InputFrom::KeyedFeature(f) if range.contains(&f))
            });
            if reads {
                keyed.push(format!("{} at each event's {}", p.name, p.key));
            }
        }
        if !keyed.is_empty() {
            said.push_str(&format!(", reads {}", keyed.join(", ")));
        }
        if let Some(f) = &m.filter {
            said.push_str(&format!(", examples where `{f}`"));
        }
        if let Some((sql, _)) = &m.label {
            said.push_str(&format!(", label `{sql}`"));
        }
        if let Some(d) = &m.delayed {
            let on =
                d.on.and_then(|(_, c)| d.source_columns.get_index(c))
                    .map_or(String::new(), |(name, _)| format!(" on the same {name}"));
            let filter = d
                .filter
                .as_ref()
                .map_or(String::new(), |f| format!(" where `{f}`"));
            said.push_str(&format!(
                ", labeled by an event of {}{filter}{on} within {} ms",
                d.source, d.within_ms
            ));
        }
        println!(
            "  model {} ({} on {} → {}): {what}{said}",
            m.name,
            m.kind().name(),
            m.source,
            m.topic,
        );
    }
    Ok(())
}

fn checkpoint_url(global: &Global, ctx: &Context, loaded: &spec::LoadedSpec) -> String {
    if let Some(url) = &loaded.spec.checkpoint.url {
        return url.clone();
    }
    match &ctx.data_dir {
        Some(dir) => dir.join("checkpoints").display().to_string(),
        None => {
            let _ = global;
            "eddy-checkpoints".into()
        }
    }
}

/// Serves `/metrics` and `/healthz` until the process ends.
fn serve_metrics(
    addr: SocketAddr,
    registry: Metrics,
    metrics: Arc<JobMetrics>,
) -> anyhow::Result<SocketAddr> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use eddy_features::metrics::CONTENT_TYPE;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = registry.render();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], body) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let m = metrics.clone();
                async move {
                    if m.ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "starting: loading tables\n",
                        )
                    }
                }
            }),
        );
    eddy_features::http::spawn(addr, "metrics", app).context("serving the metrics endpoint")
}

/// `eddy run SPEC`: the live pipeline.
pub fn run(global: &Global, args: &RunArgs) -> anyhow::Result<()> {
    let loaded = load(&args.spec)?;
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    if args.serve && loaded.spec.serving.is_none() {
        return Err(super::common::serve_failure(
            eddy_serving::ServeError::NoServing,
        ));
    }
    let options = JobOptions {
        until_end: args.until_end,
        checkpoint_url: args
            .checkpoint_url
            .clone()
            .unwrap_or_else(|| checkpoint_url(global, &ctx, &loaded)),
        batch: 10_000,
        group: match (&global.brokers, &args.group, args.standalone) {
            (None, _, _) | (_, _, true) => None,
            (Some(_), Some(g), false) => Some(g.clone()),
            (Some(_), None, false) => Some(format!("eddy-{}", loaded.spec.name)),
        },
        max_waiting: args.max_waiting_examples.max(1),
    };
    let options_group = options.group.clone();
    let mut job = Job::open(&loaded, ctx.backend.clone(), registry.clone(), options).map_err(
        |e| match e {
            JobError::Spec(s) => spec_failure(s),
            other => anyhow::Error::new(other).context("starting the pipeline"),
        },
    )?;
    let models = plan_models(&job, &loaded)?;
    if !models.is_empty() && options_group.is_some() {
        return Err(CliError::fail(
            ExitCode::Usage,
            "the spec has models, which train in one process: run it with --standalone (a consumer group would give each process its own partial model)".to_string(),
        ));
    }
    // The process's one metrics registry.
    let registry_of_metrics = Metrics::new();
    registry_of_metrics.register(Some(&loaded.spec.name), job.metrics.clone());
    let metrics_addr = serve_metrics(
        args.metrics_addr,
        registry_of_metrics.clone(),
        job.metrics.clone(),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(stop.clone())?;
    let ending = if args.until_end {
        "; stops at the end of the sources"
    } else {
        "; Ctrl-C checkpoints and stops"
    };
    let (notes, serving) = if args.serve {
        let mut serving = super::run_serving::start(
            &loaded,
            &ctx,
            registry,
            &mut job,
            args,
            stop.clone(),
            &registry_of_metrics,
        )?;
        // The first line names the serving address: scripts read it.
        eprintln!(
            "pipeline `{}` on the {} backend, serving in this process: recommendations to topic `{}`, HTTP on http://{}/v1/recommendations/{{user}}; pipeline metrics on http://{metrics_addr}/metrics, checkpoints in {}{ending}",
            loaded.spec.name,
            ctx.backend.kind(),
            serving.topic,
            serving.addr,
            job.checkpoint_url(),
        );
        (std::mem::take(&mut serving.notes), Some(serving))
    } else {
        eprintln!(
            "pipeline `{}` on the {} backend: metrics on http://{metrics_addr}/metrics, checkpoints in {}{ending}",
            loaded.spec.name,
            ctx.backend.kind(),
            job.checkpoint_url(),
        );
        (
            attach_models_with(&mut job, &models, ctx.backend.as_ref(), |l| l)?,
            None,
        )
    };
    for line in notes {
        eprintln!("{line}");
    }
    let bar = progress::bar(job.records_to_read(), "events");
    let summary = job.run(&stop, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let served = serving
        .map(|s| s.finish(args.until_end && summary.is_ok() && !stop.load(Ordering::Relaxed)));
    let summary = summary?;
    println!(
        "{} events in {:.1} s ({:.0}/s), {} late, {} undecodable records, {} dead-lettered, {} feature rows written{}",
        summary.events,
        summary.elapsed.as_secs_f64(),
        progress::rate(summary.events, summary.elapsed),
        summary.late,
        summary.undecodable,
        summary.dead_lettered,
        summary.rows,
        if summary.restored_tasks > 0 {
            format!(
                ", resumed {} tasks from checkpoints",
                summary.restored_tasks
            )
        } else {
            String::new()
        }
    );
    for line in &summary.checkpoint_fallbacks {
        println!("warning: damaged checkpoint: {line}");
    }
    let (sent, repeated) = summary.repartition;
    if sent + repeated > 0 {
        println!(
            "re-keyed views: {sent} records through the repartition topic{}",
            if repeated > 0 {
                format!(", {repeated} received twice (replayed after a restart) and skipped")
            } else {
                String::new()
            }
        );
    }
    for line in job.model_summary() {
        println!("model {line}");
    }
    for file in &summary.parquet_files {
        tracing::info!(%file, "parquet written");
    }
    let (written, older) = summary.sqlite;
    if written + older > 0 {
        println!(
            "sqlite: {written} rows upserted{}",
            if older > 0 {
                format!(", {older} older than the table's skipped (a replay)")
            } else {
                String::new()
            }
        );
    }
    let (written, older) = summary.postgres;
    if written + older > 0 {
        println!(
            "postgres: {written} rows upserted{}",
            if older > 0 {
                format!(", {older} older than the table's skipped (a replay)")
            } else {
                String::new()
            }
        );
    }
    let (written, older) = summary.online_store;
    if written + older > 0 {
        println!(
            "online store: {written} rows written to Redis{}",
            if older > 0 {
                format!(", {older} older than what Redis held skipped (a replay)")
            } else {
                String::new()
            }
        );
    }
    if let Some(served) = served {
        let s = served?;
        println!(
            "serving: {} triggers and {} requests: {} recommendations, {} dead-lettered",
            s.triggers, s.requests, s.recommendations, s.dead_lettered
        );
        if let Some(warning) = s.ahead_warning() {
            println!("{warning}");
        }
    }
    Ok(())
}
