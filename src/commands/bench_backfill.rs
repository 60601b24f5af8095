//! `eddy bench backfill`: the replay rate of `eddy backfill`, and the time
//! and peak memory of a large point-in-time training set.
//!
//! It produces a clicks stream (the one `eddy bench pipeline` uses), then
//! runs the real `eddy backfill` command as a child process twice, timing
//! each and reading the child's peak resident memory from the kernel
//! (`getrusage(RUSAGE_CHILDREN)`):
//!
//! 1. the feature tables of the `bench pipeline` spec (12 features): the
//!    replay rate, to compare with the live rate of `eddy bench pipeline`;
//! 2. a training set with one row per event (`--labels clicks`) and 100
//!    features (25 aggregations × 4 windows).

use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;

use super::bench_pipeline::{BenchTopics, pipeline_spec, produce_clicks};
use crate::cli::{BenchBackfillArgs, Global};
use crate::context::Context;

/// 25 aggregations over 4 windows: 100 features.
fn wide_spec(t: &BenchTopics) -> String {
    let BenchTopics {
        stamp,
        clicks,
        items,
    } = t;
    let aggs = [
        "{ name: n, op: count }",
        "{ name: amt_sum, op: sum, column: amount }",
        "{ name: amt_mean, op: mean, column: amount }",
        "{ name: amt_min, op: min, column: amount }",
        "{ name: amt_max, op: max, column: amount }",
        "{ name: amt_var, op: variance, column: amount }",
        "{ name: amt_std, op: stddev, column: amount }",
        "{ name: amt_first, op: first, column: amount }",
        "{ name: amt_last, op: last, column: amount }",
        "{ name: amt_decay, op: decayed_sum, column: amount, half_life: 1h }",
        "{ name: price_n, op: count, column: price }",
        "{ name: price_sum, op: sum, column: price }",
        "{ name: price_mean, op: mean, column: price }",
        "{ name: price_min, op: min, column: price }",
        "{ name: price_max, op: max, column: price }",
        "{ name: price_var, op: variance, column: price }",
        "{ name: price_std, op: stddev, column: price }",
        "{ name: price_first, op: first, column: price }",
        "{ name: price_last, op: last, column: price }",
        "{ name: items, op: count_distinct, column: item }",
        "{ name: cats, op: count_distinct, column: category }",
        "{ name: item_first, op: first, column: item }",
        "{ name: item_last, op: last, column: item }",
        "{ name: cat_first, op: first, column: category }",
        "{ name: cat_last, op: last, column: category }",
    ];
    let aggs: String = aggs
        .iter()
        .map(|a| {
            format!(
                "      - {}, windows: [1h, 1d, 7d, lifetime] }}\n",
                a.trim_end_matches(" }")
            )
        })
        .collect();
    format!(
        "name: bench_wide_{stamp}
sources:
  clicks: {{ topic: {clicks}, key: user, event_time: ts, lateness: 1s }}
tables:
  items: {{ topic: {items}, key: item }}
features:
  shopper:
    source: clicks
    join: [{{ table: items, on: item, select: [category, price] }}]
    aggregations:
{aggs}    output: {{ topic: {clicks}.wide }}
"
    )
}

/// Peak resident memory of finished children, in bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

/// Runs `eddy backfill` as a child: (seconds, its stdout).
fn backfill(
    global: &Global,
    spec: &std::path::Path,
    out: &std::path::Path,
    labels: bool,
) -> anyhow::Result<(f64, String)> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--data-dir").arg(&global.data_dir);
    if let Some(b) = &global.brokers {
        cmd.args(["--brokers", b]);
    }
    if let Some(r) = &global.registry {
        cmd.args(["--registry", r]);
    }
    cmd.arg("backfill").arg(spec).arg("--out").arg(out);
    if labels {
        cmd.args(["--labels", "clicks", "--label-expr", "amount > 50"]);
    }
    let started = Instant::now();
    let output = cmd.output().context("running eddy backfill")?;
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    anyhow::ensure!(
        output.status.success(),
        "eddy backfill failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((secs, stdout))
}

pub fn backfill_bench(global: &Global, args: &BenchBackfillArgs) -> anyhow::Result<()> {
    let mut ctx = Context::open(global)?;
    let topics = produce_clicks(
        &mut ctx,
        args.events,
        args.users,
        args.items,
        args.partitions,
    )?;
    drop(ctx);
    let dir = tempfile_dir(topics.stamp)?;
    let narrow = dir.join("narrow.yaml");
    std::fs::write(&narrow, pipeline_spec(&topics, "1h"))?;
    let wide = dir.join("wide.yaml");
    std::fs::write(&wide, wide_spec(&topics))?;

    let (secs, out) = backfill(global, &narrow, &dir.join("narrow-out"), false)?;
    println!(
        "replay (12 features, feature tables only): {} events in {secs:.2} s = {:.0} events/s, peak RSS {:.0} MB",
        args.events,
        args.events as f64 / secs,
        children_max_rss() as f64 / 1e6
    );
    tracing::debug!(%out, "narrow backfill");
    let (secs, out) = backfill(global, &wide, &dir.join("wide-out"), true)?;
    let rows = out
        .lines()
        .find(|l| l.starts_with("training set:"))
        .unwrap_or("training set: ?")
        .to_string();
    println!(
        "training set (100 features, one label per event): {secs:.2} s = {:.0} labels/s, peak RSS {:.0} MB ({rows})",
        args.events as f64 / secs,
        children_max_rss() as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir(stamp: u128) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("eddy-bench-backfill-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
