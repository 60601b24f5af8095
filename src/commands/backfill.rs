//! `eddy backfill` and `eddy consistency`: history replayed through the
//! live operators.

use anyhow::Context as _;
use eddy_features::engine::backfill::{Backfill, BackfillOptions, LabelOptions, consistency};
use eddy_features::engine::job::JobError;

use super::common::{load, spec_failure};
use crate::cli::{BackfillArgs, ConsistencyArgs, Global};
use crate::context::Context;
use crate::exit::{CliError, ExitCode};
use crate::progress;
use crate::time_arg::parse_time;

fn time_arg(flag: &str, value: &str) -> anyhow::Result<Option<i64>> {
    if value == "earliest" {
        return Ok(None);
    }
    parse_time(value)
        .map(Some)
        .map_err(|e| CliError::fail(ExitCode::Usage, format!("{flag}: {e}")))
}

/// A directory becomes a `file://` URL (made absolute, and created).
fn out_url(out: &str) -> anyhow::Result<String> {
    if out.contains("://") {
        return Ok(out.to_string());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {out}"))?;
    let abs = std::fs::canonicalize(out)?;
    Ok(format!("file://{}", abs.display()))
}

/// `eddy backfill SPEC --out URL`.
pub fn backfill(global: &Global, args: &BackfillArgs) -> anyhow::Result<()> {
    let loaded = load(&args.spec)?;
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    let options = BackfillOptions {
        from: time_arg("--from", &args.from)?,
        until: match &args.until {
            Some(u) => time_arg("--until", u)?,
            None => None,
        },
        labels: match (&args.labels, &args.model) {
            (Some(source), _) => Some(LabelOptions {
                source: source.clone(),
                expr: args.label_expr.clone(),
                filter: args.label_filter.clone(),
                columns: args.columns.clone(),
                model: None,
                delayed: None,
            }),
            (None, Some(model)) => {
                // The learners plan models: the training set resolves a
                // delayed label as the live learner's plan does.
                let lookup = eddy_features::engine::job::schema_lookup(&registry);
                let (_, models) = eddy_training::plan::validate_with_models(&loaded, &lookup)
                    .map_err(|p| spec_failure(eddy_features::spec::SpecError::Invalid(p)))?;
                let delayed = models
                    .iter()
                    .find(|m| &m.name == model)
                    .and_then(|m| m.delayed.clone());
                Some(LabelOptions::of_model(model, args.columns.clone(), delayed))
            }
            (None, None) if !args.columns.is_empty() => {
                return Err(CliError::fail(
                    ExitCode::Usage,
                    "--columns needs --labels SOURCE or --model NAME: they are columns of a training set",
                ));
            }
            (None, None) => None,
        },
        out: out_url(&args.out)?,
        batch: args.batch.max(1),
        queries: Vec::new(),
    };
    let out = options.out.clone();
    let backfill =
        Backfill::open(&loaded, ctx.backend.clone(), registry, options).map_err(|e| match e {
            JobError::Spec(s) => spec_failure(s),
            other => anyhow::Error::new(other).context("preparing the backfill"),
        })?;
    eprintln!(
        "backfill of `{}` on the {} backend into {out}",
        loaded.spec.name,
        ctx.backend.kind()
    );
    let bar = progress::bar(backfill.records_to_read(), "records");
    let s = backfill.run(&mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let read = s.from_archive + s.from_topics;
    println!(
        "replayed {} events in {:.1} s ({:.0} records/s; {} from the archive, {} from topics)",
        s.events,
        s.elapsed.as_secs_f64(),
        progress::rate(read, s.elapsed),
        s.from_archive,
        s.from_topics
    );
    if s.table_records_archived > 0 {
        println!(
            "tables: {} archived records applied before the table topics (versions compaction may have taken from them)",
            s.table_records_archived
        );
    }
    if s.late + s.undecodable + s.rejected > 0 {
        println!(
            "not counted, as live: {} late, {} undecodable, {} rejected by expressions{}",
            s.late,
            s.undecodable,
            s.rejected,
            s.first_problem
                .as_deref()
                .map(|p| format!(" (first: {p})"))
                .unwrap_or_default()
        );
    }
    if s.skipped_before_start > 0 {
        println!(
            "{} events before the replay's start (--from minus the longest window) skipped",
            s.skipped_before_start
        );
    }
    for lost in &s.lost {
        println!("warning: history incomplete: {lost}");
    }
    if s.archive_duplicates > 0 {
        println!(
            "{} records the archive held twice were read once (same partition and offset)",
            s.archive_duplicates
        );
    }
    println!(
        "feature tables: {} rows in {} files under {out}/features/",
        s.feature_rows,
        s.feature_files.len()
    );
    if !s.training_files.is_empty() || s.training_rows > 0 {
        println!(
            "training set: {} rows × {} columns in {} files under {out}/training/",
            s.training_rows,
            s.training_columns.len(),
            s.training_files.len()
        );
    }
    if s.labels_filtered > 0 {
        match &args.model {
            Some(m) => println!(
                "{} events of the source are not examples of `{m}` (its `filter`)",
                s.labels_filtered
            ),
            None => println!(
                "{} label events left out by --label-filter",
                s.labels_filtered
            ),
        }
    }
    if let Some(d) = &s.delayed {
        println!(
            "delayed labels: {} label events matched no waiting example; {} examples resolved early as negatives (max_pending)",
            d.unmatched, d.evicted
        );
        if d.undetermined > 0 {
            println!(
                "warning: {} examples left out: their attribution window had not ended where history ends, so their label is not known yet",
                d.undetermined
            );
        }
        if d.null_on > 0 {
            println!(
                "warning: {} examples left out: their `on` column is null, so no label can match them",
                d.null_on
            );
        }
    }
    if s.labels_rejected > 0 {
        println!(
            "{} label events skipped: the label expression failed (first: {})",
            s.labels_rejected,
            s.first_label_rejection.as_deref().unwrap_or("?")
        );
    }
    println!("manifest: {out}/manifest.json");
    if !s.lost.is_empty() && !args.allow_incomplete_history {
        return Err(CliError::fail(
            ExitCode::DataLost,
            format!(
                "the backfill wrote its output, but history is incomplete in {} partitions (see the warnings above): rows computed from it lack those records. Restore the missing archive files, or pass --allow-incomplete-history to accept the gap",
                s.lost.len()
            ),
        ));
    }
    Ok(())
}

/// `eddy consistency SPEC --view V`: exits 0 when every sampled row
/// matches, 1 (with the report) when some feature differs.
pub fn consistency(global: &Global, args: &ConsistencyArgs) -> anyhow::Result<()> {
    let loaded = load(&args.spec)?;
    let mut ctx = Context::open(global)?;
    let registry = ctx.registry()?;
    eprintln!(
        "sampling {} rows of view `{}` and recomputing them by replay...",
        args.sample, args.view
    );
    let report = consistency::check(
        &loaded,
        ctx.backend.clone(),
        registry,
        &args.view,
        args.sample,
    )
    .map_err(|e| match e {
        JobError::Spec(s) => spec_failure(s),
        other => anyhow::Error::new(other).context("checking consistency"),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "view `{}`: {} of {} rows on `{}` recomputed by replay",
            report.view, report.sampled, report.topic_rows, report.topic
        );
        println!(
            "{:<32} {:>10} {:>14} {:>14}",
            "feature", "mismatches", "rate", "max |diff|"
        );
        for f in &report.features {
            println!(
                "{:<32} {:>10} {:>13.4}% {:>14.3e}",
                f.feature,
                f.mismatches,
                100.0 * f.mismatch_rate,
                f.max_abs_diff
            );
            if let Some((key, as_of, live, replayed)) = &f.example {
                println!("    e.g. key {key} as of {as_of}: live {live}, replay {replayed}");
            }
        }
    }
    let bad = report.mismatches();
    if bad > 0 {
        return Err(CliError::fail(
            ExitCode::CheckFailed,
            format!(
                "{bad} feature values differ between the live topic and the replay (see above and README.md, \"Backfills\", for what can cause it)"
            ),
        ));
    }
    if !args.json {
        println!("online equals offline: 0 mismatches");
    }
    Ok(())
}
