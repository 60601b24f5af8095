//! What several commands share: loading a spec, turning spec and serving
//! failures into exit codes, stopping on signals, and training the spec's
//! models inside a job. Kept apart so that `run`, `serve` and
//! `run_serving` do not import each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use eddy_features::engine::job::{Job, Learners};
use eddy_features::spec::{self, SpecError};
use eddy_serving::ServeError;
use eddy_training::online::OnlineModels;
use eddy_training::plan::ModelPlan;

use crate::exit::{CliError, ExitCode};

/// The shape checks of the sections other crates run: the spec's
/// document is `eddy-features`'s, but `models:` is checked by the crate
/// whose learners run them and `serving:` by the serving crate. One line
/// per section crate.
pub(crate) const SECTION_CHECKS: &[spec::SectionCheck] =
    &[eddy_training::plan::shape, eddy_serving::plan::shape];

/// Loads and checks a spec's shape, every section's; a problem exits 2.
pub(crate) fn load(path: &std::path::Path) -> anyhow::Result<spec::LoadedSpec> {
    spec::load_with(path, SECTION_CHECKS).map_err(spec_failure)
}

/// Parses a built-in spec's text, every section checked.
pub(crate) fn parse(file: &str, text: &str) -> Result<spec::LoadedSpec, SpecError> {
    spec::parse_with(std::path::Path::new(file), text, SECTION_CHECKS)
}

/// The spec's models, planned against the columns of the sources `job`
/// reads and its views; a problem exits 2.
pub(crate) fn plan_models(job: &Job, loaded: &spec::LoadedSpec) -> anyhow::Result<Vec<ModelPlan>> {
    eddy_training::plan::plan(loaded, &job.source_columns(), job.views())
        .map_err(|p| spec_failure(SpecError::Invalid(p)))
}

pub(crate) fn spec_failure(e: SpecError) -> anyhow::Error {
    match e {
        SpecError::Read { .. } => CliError::fail(ExitCode::Usage, e.to_string()),
        SpecError::Invalid(problems) => {
            let n = problems.len();
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            CliError::fail(
                ExitCode::Usage,
                format!(
                    "{}\n{n} problem{} in the spec",
                    list.join("\n"),
                    if n == 1 { "" } else { "s" }
                ),
            )
        }
    }
}

/// A serving failure: spec problems exit 2, as everywhere.
pub(crate) fn serve_failure(e: ServeError) -> anyhow::Error {
    match e {
        ServeError::Spec(s) => spec_failure(s),
        ServeError::NoServing => CliError::fail(ExitCode::Usage, e.to_string()),
        other => anyhow::Error::new(other).context("starting the serving component"),
    }
}

/// Sets `stop` on Ctrl-C or SIGTERM. Returns once both handlers are
/// installed: until then a signal would kill the process outright (no
/// checkpoint, no flush), and callers announce they are running right
/// after this (regression: a Ctrl-C just after `eddy serve` printed its
/// address, on a loaded machine, killed it with no output).
pub(crate) fn stop_on_signals(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let (ready, installed) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                // Creating the streams installs the handlers.
                let mut term = signal(SignalKind::terminate()).expect("SIGTERM");
                let mut int = signal(SignalKind::interrupt()).expect("SIGINT");
                let _ = ready.send(());
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
            });
            eprintln!("stopping: checkpointing...");
            stop.store(true, Ordering::Relaxed);
        })?;
    installed
        .recv()
        .map_err(|_| anyhow::anyhow!("the signal handlers could not be installed"))?;
    Ok(())
}

/// Trains the spec's models inside `job`, each resumed from its latest
/// snapshot under the job's checkpoints (`<checkpoints>/models/<model>`).
pub(crate) fn attach_models(
    job: &mut Job,
    loaded: &spec::LoadedSpec,
    backend: &dyn eddy_features::topic::Backend,
) -> anyhow::Result<()> {
    let models = plan_models(job, loaded)?;
    for line in attach_models_with(job, &models, backend, |learners| learners)? {
        eprintln!("{line}");
    }
    Ok(())
}

/// [`attach_models`], with the learners passed through `wrap` first (the
/// co-located service taps what they publish). Returns what to tell the
/// user: which models resumed from a snapshot.
pub(crate) fn attach_models_with(
    job: &mut Job,
    models: &[ModelPlan],
    backend: &dyn eddy_features::topic::Backend,
    wrap: impl FnOnce(Box<dyn Learners>) -> Box<dyn Learners>,
) -> anyhow::Result<Vec<String>> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let store = eddy_features::store::Store::open(job.checkpoint_url())?.child("models");
    let models = OnlineModels::open(models, backend, &store).context("opening the models")?;
    let notes = models
        .resumed()
        .into_iter()
        .map(|name| {
            format!(
                "model `{name}` resumes from its latest snapshot in {}",
                store.url()
            )
        })
        .collect();
    job.set_learners(wrap(Box::new(models)))?;
    Ok(notes)
}
