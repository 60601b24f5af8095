//! `eddy train batch`: the "nightly batch" baseline, side by side with the
//! online learner.
//!
//! It reads a training set written by `eddy backfill --labels` (or any
//! Parquet with a time column and a 0/1 label), fits a linfa logistic
//! regression once on the rows before `--split`, and scores the rows from
//! `--split` on with that frozen model, as a model retrained nightly would
//! serve them. Over the same rows in time order, an FTRL learner predicts
//! each row and then learns it, so on the rows from `--split` on both are
//! scored on exactly the same examples. Features are the numeric columns;
//! nulls read as 0.

use std::path::Path;

use anyhow::Context as _;
use eddy_training::batch::BatchLogistic;
use eddy_training::hashing::FeatureHasher;
use eddy_training::metrics::Report;
use eddy_training::{Ftrl, FtrlConfig, Learner, Progressive};
use ndarray::Array2;
use polars::prelude::*;
use serde_json::json;

use crate::cli::TrainBatchArgs;
use crate::exit::{CliError, ExitCode};
use crate::time_arg::parse_time;

/// Every Parquet file at `input` (a file or a directory), concatenated.
fn read(input: &Path) -> anyhow::Result<DataFrame> {
    let files: Vec<std::path::PathBuf> = if input.is_dir() {
        let mut f: Vec<_> = std::fs::read_dir(input)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        f.sort();
        f
    } else {
        vec![input.to_path_buf()]
    };
    let mut out: Option<DataFrame> = None;
    for f in &files {
        let df = ParquetReader::new(std::fs::File::open(f)?)
            .finish()
            .with_context(|| format!("reading {}", f.display()))?;
        match &mut out {
            None => out = Some(df),
            Some(all) => {
                all.vstack_mut_owned(df)?;
            }
        }
    }
    out.ok_or_else(|| {
        CliError::fail(
            ExitCode::Usage,
            format!("no Parquet files at {}", input.display()),
        )
    })
}

/// A column as f64, nulls as 0 (for a linear model, an absent feature),
/// and how many nulls there were.
fn numbers(df: &DataFrame, name: &str) -> anyhow::Result<(Vec<f64>, usize)> {
    let s = df
        .column(name)?
        .as_materialized_series()
        .cast(&DataType::Float64)?;
    let nulls = s.null_count();
    Ok((
        s.f64()?.into_iter().map(|v| v.unwrap_or(0.0)).collect(),
        nulls,
    ))
}

/// A column that must have a value in every row (the label, the time).
fn required_numbers(df: &DataFrame, name: &str) -> anyhow::Result<Vec<f64>> {
    let (values, nulls) = numbers(df, name)?;
    if nulls > 0 {
        return Err(CliError::fail(
            ExitCode::InvalidInput,
            format!("`{name}` is null in {nulls} rows; it must have a value in every row"),
        ));
    }
    Ok(values)
}

fn report_json(r: &Report) -> serde_json::Value {
    json!({"examples": r.examples, "logloss": r.logloss, "auc": r.auc, "accuracy": r.accuracy,
        "base_rate_logloss": r.base_rate_logloss})
}

pub fn batch(args: &TrainBatchArgs) -> anyhow::Result<()> {
    let df = read(&args.input)?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    for needed in [&args.label, &args.time_column] {
        if !names.contains(needed) {
            return Err(CliError::fail(
                ExitCode::Usage,
                format!("`{needed}` is not a column; columns are {names:?}"),
            ));
        }
    }
    // An eddy training set starts with its key, then bookkeeping columns.
    let bookkeeping = ["event_time", "partition", "offset", "label"];
    let key = (names.len() > 5 && names[1..5] == bookkeeping).then(|| names[0].clone());
    let features: Vec<String> = names
        .iter()
        .filter(|n| {
            **n != args.label
                && **n != args.time_column
                && !["partition", "offset"].contains(&n.as_str())
                && Some(*n) != key.as_ref()
                && !args.exclude.contains(n)
        })
        .cloned()
        .collect();
    // The linfa baseline reads numbers only; say which columns it leaves out.
    let (features, left_out): (Vec<String>, Vec<String>) = features.into_iter().partition(|n| {
        df.column(n)
            .is_ok_and(|c| c.dtype().is_primitive_numeric() || c.dtype().is_bool())
    });
    if !left_out.is_empty() {
        eprintln!(
            "not numeric, left out of both models: {}",
            left_out.join(", ")
        );
    }
    anyhow::ensure!(
        !features.is_empty(),
        "no numeric feature column in {names:?}"
    );
    // Rows in time order.
    let time = required_numbers(&df, &args.time_column)?;
    let mut order: Vec<usize> = (0..df.height()).collect();
    order.sort_by(|a, b| time[*a].total_cmp(&time[*b]));
    let labels = required_numbers(&df, &args.label)?;
    let mut nulls = 0;
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(features.len());
    for f in &features {
        let (values, n) = numbers(&df, f)?;
        nulls += n;
        columns.push(values);
    }
    if nulls > 0 {
        eprintln!("{nulls} null feature values read as 0 (an absent feature)");
    }
    let split = match &args.split {
        Some(s) => parse_time(s)
            .map_err(|e| CliError::fail(ExitCode::Usage, format!("--split: {e}")))?
            as f64,
        // Default: the last fifth of the rows is the later range.
        None => time[order[order.len() * 4 / 5]],
    };
    let train: Vec<usize> = order.iter().copied().filter(|r| time[*r] < split).collect();
    let test: Vec<usize> = order
        .iter()
        .copied()
        .filter(|r| time[*r] >= split)
        .collect();
    anyhow::ensure!(
        !train.is_empty() && !test.is_empty(),
        "--split leaves {} rows before it and {} after: both must be non-empty",
        train.len(),
        test.len()
    );
    // Standardize with the training range's statistics.
    let stats: Vec<(f64, f64)> = columns
        .iter()
        .map(|c| {
            let n = train.len() as f64;
            let mean = train.iter().map(|r| c[*r]).sum::<f64>() / n;
            let var = train.iter().map(|r| (c[*r] - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt().max(1e-12))
        })
        .collect();
    let matrix = |rows: &[usize]| {
        Array2::from_shape_fn((rows.len(), columns.len()), |(i, j)| {
            (columns[j][rows[i]] - stats[j].0) / stats[j].1
        })
    };
    // The batch model: fit once, then frozen.
    let started = std::time::Instant::now();
    let y_train: Vec<bool> = train.iter().map(|r| labels[*r] > 0.5).collect();
    let fitted = BatchLogistic::fit(matrix(&train), &y_train, args.max_iterations)?;
    let fit_secs = started.elapsed().as_secs_f64();
    let mut batch = Progressive::default();
    for (p, r) in fitted.predict(&matrix(&test)).into_iter().zip(&test) {
        batch.add(p, labels[*r]);
    }
    // The online learner: every row in time order, predicted then learned.
    let hasher = FeatureHasher::new(18, Vec::new());
    let slots: Vec<_> = features.iter().map(|f| FeatureHasher::slot(f, f)).collect();
    // The inputs are standardized above by the training rows' statistics,
    // as the batch model's are: the model does not standardize them again.
    let mut ftrl = Ftrl::new(FtrlConfig {
        bits: 18,
        standardize: false,
        ..FtrlConfig::default()
    });
    let mut online = Progressive::default();
    let mut x = Vec::new();
    for r in &order {
        let mut b = hasher.builder();
        for (j, slot) in slots.iter().enumerate() {
            let _ = b.number(*slot, (columns[j][*r] - stats[j].0) / stats[j].1);
        }
        b.finish(&mut x);
        let p = ftrl.learn(&x, labels[*r]);
        if time[*r] >= split {
            online.add(p, labels[*r]);
        }
    }
    let (b, o) = (batch.report(), online.report());
    if args.json {
        println!(
            "{}",
            json!({
                "features": features,
                "train_rows": train.len(),
                "split": split,
                "batch": report_json(&b),
                "online": report_json(&o),
                "batch_fit_seconds": fit_secs,
            })
        );
    } else {
        println!(
            "{} features; trained on {} rows before the split, scored on the {} rows from it",
            features.len(),
            train.len(),
            test.len()
        );
        println!("{:<46} {:>9} {:>9} {:>9}", "", "logloss", "AUC", "accuracy");
        for (name, r) in [
            ("batch: linfa logistic regression, fit once", &b),
            ("online: FTRL, learning every row", &o),
        ] {
            println!(
                "{name:<46} {:>9.4} {:>9.4} {:>9.4}",
                r.logloss, r.auc, r.accuracy
            );
        }
        println!(
            "{:<46} {:>9.4}",
            "base rate: the positive rate for every row", o.base_rate_logloss
        );
    }
    Ok(())
}
