//! `eddy run --serve`: the serving component inside the pipeline's process.
//!
//! The same [`Service`] as `eddy serve`, opened co-located: the ranker's
//! features come from the job's in-process read API and the models from
//! the learner as each checkpoint publishes them
//! ([`eddy_serving::colocated`]), instead of from their topics. Triggers and
//! requests still arrive on their topics, and recommendations still leave on
//! one: consumers cannot tell the two deployments apart.
//!
//! A live run answers the triggers that arrive after it starts, as
//! `eddy serve` does. A bounded run (`--until-end`) replays the triggers the
//! topics hold, as `eddy serve --from-earliest --until-end` would, with the
//! models as the job trains them, and ends when both are done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use eddy_features::engine::job::Job;
use eddy_features::registry::SchemaRegistry;
use eddy_features::spec::LoadedSpec;
use eddy_serving::ServeError;
use eddy_serving::colocated::colocate;
use eddy_serving::service::{ServeOptions, ServeSummary, Service};

use crate::cli::RunArgs;
use crate::context::Context;

use super::common::serve_failure;

/// Serving running beside the job.
pub(crate) struct Serving {
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    /// The recommendations topic.
    pub topic: String,
    /// What to tell the user (models resumed from snapshots).
    pub notes: Vec<String>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<ServeSummary, ServeError>>,
}

impl Serving {
    /// Waits for serving once the job has ended. After a bounded run that
    /// ended by itself, serving finishes its replay; otherwise (Ctrl-C, a
    /// failed job) it stops now.
    pub fn finish(self, let_replay_finish: bool) -> anyhow::Result<ServeSummary> {
        if !let_replay_finish {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the serving thread panicked"))?
            .map_err(serve_failure)
    }
}

/// Attaches the models to `job` with their updates tapped for serving,
/// opens the co-located service, and starts it and its HTTP API. A
/// failure of serving sets `job_stop`.
pub(crate) fn start(
    loaded: &LoadedSpec,
    ctx: &Context,
    registry: Arc<dyn SchemaRegistry>,
    job: &mut Job,
    args: &RunArgs,
    job_stop: Arc<AtomicBool>,
    metrics: &eddy_features::metrics::Metrics,
) -> anyhow::Result<Serving> {
    let reader = job.reader();
    let models = super::common::plan_models(job, loaded)?;
    let plans = (job.views().to_vec(), models.clone());
    let mut colocated = None;
    let notes =
        super::common::attach_models_with(job, &models, ctx.backend.as_ref(), |learners| {
            let (tapped, c) = colocate(learners, reader, plans);
            colocated = Some(c);
            tapped
        })?;
    let colocated = colocated.ok_or_else(|| {
        anyhow::anyhow!("the spec's serving section needs models: add them under `models:`")
    })?;
    let mut service = Service::open_colocated(
        loaded,
        ctx.backend.clone(),
        registry,
        ServeOptions {
            from_earliest: args.until_end,
            until_end: args.until_end,
            batch: 1000,
        },
        colocated,
    )
    .map_err(serve_failure)?;
    // The process's one registry: the pipeline's metrics and serving's,
    // on both endpoints.
    metrics.register(Some(&service.name), service.metrics.clone());
    let addr = eddy_serving::http::serve(
        args.serve_http,
        metrics.clone(),
        service.state.clone(),
        service.metrics.clone(),
    )?;
    let topic = service.topic().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("serving".into())
            .spawn(move || {
                let served = service.run(&stop);
                // Serving failed: stop the job too (checkpointing) rather
                // than run on without the component asked for.
                if let Err(e) = &served {
                    tracing::error!(error = %e, "serving failed; stopping the pipeline");
                    job_stop.store(true, Ordering::Relaxed);
                }
                served
            })?
    };
    Ok(Serving {
        addr,
        topic,
        notes,
        stop,
        thread,
    })
}
