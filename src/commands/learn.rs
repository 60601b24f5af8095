//! `eddy learn`: progressive validation over a file read as a stream, so
//! eddy's learners can be compared with Vowpal Wabbit or River on the same
//! rows.
//!
//! Every row is predicted first, then learned from; the metrics are over
//! those predictions. Each column is a namespace of its own: text values
//! (and values of `--categorical` columns) are categories, numbers are
//! numeric features. A row with a NaN or infinite number, or an unusable
//! label, is skipped and counted: it must not poison the model.

use eddy_training::hashing::Numeric;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use eddy_training::ftrl::Loss;
use eddy_training::hashing::{Builder, Slot};
use eddy_training::metrics::Regression;
use eddy_training::{FeatureHasher, Ftrl, FtrlConfig, Learner, Progressive};
use serde_json::json;

use crate::cli::{LearnArgs, ModelKind};
use crate::exit::{CliError, ExitCode};

/// How a column is read.
#[derive(Clone, Copy)]
enum Kind {
    /// Numbers are numeric, text is a category.
    Auto,
    Category,
    /// A list (a `top_k` or `last_k` feature): each element is a category,
    /// as the spec's models read lists. Elements are joined by [`LIST_SEP`].
    List,
}

/// Separates the elements of a list column in a text field.
const LIST_SEP: u8 = 0x1f;

/// The plan for one header: which column is the label, and the features.
struct Plan {
    label: usize,
    /// The label is a number to predict (regression), not a class.
    numeric_label: bool,
    features: Vec<(usize, Slot, Kind)>,
    numeric: Numeric,
}

impl Plan {
    /// `lists`: the columns that hold lists (Parquet only).
    fn new(header: &[String], lists: &[String], args: &LearnArgs) -> anyhow::Result<Plan> {
        let find = |name: &str| header.iter().position(|h| h == name);
        let label = find(&args.label).ok_or_else(|| {
            CliError::fail(
                ExitCode::Usage,
                format!(
                    "--label `{}` is not a column; columns are {header:?}",
                    args.label
                ),
            )
        })?;
        for name in args.categorical.iter().chain(&args.ignore) {
            if find(name).is_none() {
                return Err(CliError::fail(
                    ExitCode::Usage,
                    format!("`{name}` is not a column; columns are {header:?}"),
                ));
            }
        }
        let features = header
            .iter()
            .enumerate()
            .filter(|(i, h)| *i != label && !args.ignore.contains(h))
            .map(|(i, h)| {
                let kind = if lists.contains(h) {
                    Kind::List
                } else if args.categorical.contains(h) {
                    Kind::Category
                } else {
                    Kind::Auto
                };
                (i, FeatureHasher::slot(h, h), kind)
            })
            .collect();
        Ok(Plan {
            label,
            numeric_label: args.model == ModelKind::Linear,
            features,
            numeric: args.numeric.into(),
        })
    }

    /// Hashes one row; Err is why it is skipped.
    fn example(
        &self,
        header: &[String],
        mut b: Builder,
        row: &impl Row,
        out: &mut Vec<(u32, f32)>,
    ) -> Result<f64, String> {
        let text = row.field(self.label);
        let y = match self.numeric_label {
            false => label(text),
            true => std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite()),
        }
        .ok_or_else(|| format!("label `{}`", String::from_utf8_lossy(text)))?;
        for (i, slot, kind) in &self.features {
            let text = row.field(*i);
            if text.is_empty() {
                continue;
            }
            let number = match kind {
                Kind::List => {
                    for element in text.split(|b| *b == LIST_SEP) {
                        b.category(*slot, element);
                    }
                    continue;
                }
                Kind::Category => None,
                Kind::Auto => std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok()),
            };
            match number {
                Some(x) => b
                    .number(*slot, self.numeric.apply(x))
                    .map_err(|x| format!("feature `{}` is {x}", header[*i]))?,
                None => b.category(*slot, text),
            }
        }
        b.finish(out);
        Ok(y)
    }
}

/// A row's fields by column index, as bytes.
trait Row {
    fn field(&self, i: usize) -> &[u8];
}

impl Row for csv::ByteRecord {
    fn field(&self, i: usize) -> &[u8] {
        self.get(i).unwrap_or_default()
    }
}

impl Row for Vec<Vec<u8>> {
    fn field(&self, i: usize) -> &[u8] {
        self.get(i).map_or(&[], Vec::as_slice)
    }
}

/// The model and its running metrics.
struct Run {
    hasher: FeatureHasher,
    model: Ftrl,
    metrics: Progressive,
    regression: Regression,
    skipped: u64,
    first_skip: Option<String>,
    x: Vec<(u32, f32)>,
    /// The row's raw numbers, for the standardizer.
    numbers: Vec<(u32, f64)>,
}

impl Run {
    /// Predicts, then learns, one row (number `n`, from 1).
    fn row(&mut self, plan: &Plan, header: &[String], n: usize, row: &impl Row) {
        let builder = self
            .hasher
            .builder_with(self.model.standardizer().map(|s| (s, &mut self.numbers)));
        match plan.example(header, builder, row, &mut self.x) {
            Ok(y) => {
                let p = self.model.learn(&self.x, y);
                self.model.observe(&self.numbers);
                match self.model.config.loss {
                    Loss::Logistic => self.metrics.add(p, y),
                    Loss::Squared => self.regression.add(p, y),
                }
            }
            Err(why) => {
                self.skipped += 1;
                self.first_skip.get_or_insert(format!("row {n}: {why}"));
            }
        }
    }
}

/// A label: 1/0, true/false, or a number (positive is 1).
fn label(text: &[u8]) -> Option<f64> {
    match text {
        b"1" | b"true" | b"True" | b"TRUE" => Some(1.0),
        b"0" | b"-1" => Some(0.0),
        b"false" | b"False" | b"FALSE" => Some(0.0),
        _ => {
            let v: f64 = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
            v.is_finite().then_some(if v > 0.0 { 1.0 } else { 0.0 })
        }
    }
}

/// A file's header and its rows of text fields.
type Table = (Vec<String>, Vec<Vec<Vec<u8>>>);

/// The Parquet files of an input: the file itself, or every `.parquet`
/// file under a directory (a training set `eddy backfill --labels` wrote),
/// in name order, which is the order the backfill wrote its parts in.
fn parquet_files(path: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let p = entry?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(CliError::fail(
            ExitCode::Usage,
            format!("{} is a directory with no .parquet files", path.display()),
        ));
    }
    Ok(files)
}

/// Rows of Parquet files as text fields (numbers formatted back, list
/// elements joined by [`LIST_SEP`]), the names of the list columns, and
/// the header. Columns in `ignore` are not read at all (their fields are
/// empty), so a column of a type `eddy learn` cannot read can be left out.
fn parquet_rows(path: &Path, ignore: &[String]) -> anyhow::Result<(Table, Vec<String>)> {
    use polars::prelude::*;
    let mut header: Option<Vec<String>> = None;
    let mut lists = Vec::new();
    let mut rows = Vec::new();
    for file_path in parquet_files(path)? {
        let file = std::fs::File::open(&file_path)
            .with_context(|| format!("opening {}", file_path.display()))?;
        let df = ParquetReader::new(file)
            .finish()
            .with_context(|| format!("reading {} as Parquet", file_path.display()))?;
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        match &header {
            None => header = Some(names.clone()),
            Some(h) if *h != names => {
                return Err(CliError::fail(
                    ExitCode::InvalidInput,
                    format!(
                        "{} has columns {names:?}, unlike the files before it ({h:?})",
                        file_path.display()
                    ),
                ));
            }
            Some(_) => {}
        }
        let mut columns = Vec::new();
        for name in &names {
            if ignore.contains(name) {
                columns.push(vec![Vec::new(); df.height()]);
                continue;
            }
            let s = df.column(name)?.as_materialized_series();
            let text: Vec<Vec<u8>> = match s.dtype() {
                DataType::List(_) => {
                    if !lists.contains(name) {
                        lists.push(name.clone());
                    }
                    let mut out = Vec::with_capacity(s.len());
                    for v in s.list()?.into_iter() {
                        let mut field = Vec::new();
                        if let Some(inner) = v {
                            let inner = inner.cast(&DataType::String)?;
                            for (k, e) in inner.str()?.into_iter().flatten().enumerate() {
                                if k > 0 {
                                    field.push(LIST_SEP);
                                }
                                field.extend_from_slice(e.as_bytes());
                            }
                        }
                        out.push(field);
                    }
                    out
                }
                _ => {
                    let cast = s.cast(&DataType::String).map_err(|e| {
                        CliError::fail(
                            ExitCode::InvalidInput,
                            format!(
                                "{}: column `{name}` ({}) cannot be read as features ({e}); leave it out with --ignore {name}",
                                file_path.display(),
                                s.dtype()
                            ),
                        )
                    })?;
                    cast.str()?
                        .into_iter()
                        .map(|v| v.unwrap_or("").as_bytes().to_vec())
                        .collect()
                }
            };
            columns.push(text);
        }
        rows.extend(
            (0..df.height()).map(|r| columns.iter().map(|c| c[r].clone()).collect::<Vec<_>>()),
        );
    }
    Ok(((header.unwrap_or_default(), rows), lists))
}

pub fn learn(args: &LearnArgs) -> anyhow::Result<()> {
    let crosses = args
        .crosses
        .iter()
        .map(|c| {
            c.split_once(',')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                .ok_or_else(|| {
                    CliError::fail(
                        ExitCode::Usage,
                        format!("--cross `{c}`: write two columns, `a,b`"),
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = FtrlConfig {
        bits: args.bits,
        alpha: args.alpha,
        beta: args.beta,
        l1: args.l1,
        l2: args.l2,
        loss: match args.model {
            ModelKind::Ftrl => Loss::Logistic,
            ModelKind::Linear => Loss::Squared,
        },
        standardize: args.standardize,
    };
    let mut run = Run {
        hasher: FeatureHasher::new(config.bits, crosses),
        model: Ftrl::new(config),
        metrics: Progressive::default(),
        regression: Regression::default(),
        skipped: 0,
        first_skip: None,
        x: Vec::new(),
        numbers: Vec::new(),
    };
    let started = Instant::now();
    let is_parquet = args.input.is_dir() || args.input.extension().is_some_and(|e| e == "parquet");
    if is_parquet {
        let ignore: Vec<String> = args
            .ignore
            .iter()
            .filter(|c| **c != args.label)
            .cloned()
            .collect();
        let ((header, rows), lists) = parquet_rows(&args.input, &ignore)?;
        let plan = Plan::new(&header, &lists, args)?;
        for (r, row) in rows.iter().enumerate() {
            run.row(&plan, &header, r + 1, row);
        }
    } else {
        // Large reads: with csv's default 8 KiB buffer, copying the file
        // out of the kernel in small pieces took a quarter of the time.
        let mut reader = csv::ReaderBuilder::new()
            .buffer_capacity(4 << 20)
            .from_path(&args.input)
            .with_context(|| format!("opening {}", args.input.display()))?;
        let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
        let plan = Plan::new(&header, &[], args)?;
        let mut record = csv::ByteRecord::new();
        let mut r = 0;
        while reader
            .read_byte_record(&mut record)
            .with_context(|| format!("{}: row {}", args.input.display(), r + 1))?
        {
            r += 1;
            run.row(&plan, &header, r, &record);
        }
    }
    let elapsed = started.elapsed();
    let Run {
        model,
        metrics,
        regression,
        skipped,
        first_skip,
        ..
    } = run;
    if let Some(path) = &args.save {
        std::fs::write(path, model.to_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if model.config.loss == Loss::Squared {
        let r = regression.report();
        let rate = r.examples as f64 / elapsed.as_secs_f64().max(1e-9);
        if args.json {
            println!(
                "{}",
                json!({
                    "model": "linear",
                    "examples": r.examples,
                    "skipped": skipped,
                    "first_skip": first_skip,
                    "rmse": r.rmse,
                    "mae": r.mae,
                    "clipped": model.standardizer.clipped(),
                    "seconds": elapsed.as_secs_f64(),
                    "examples_per_second": rate,
                })
            );
        } else {
            println!(
                "linear: {} examples in {:.2} s ({rate:.0}/s), progressive RMSE {:.4}, MAE {:.4}",
                r.examples,
                elapsed.as_secs_f64(),
                r.rmse,
                r.mae
            );
            if model.standardizer.clipped() > 0 {
                println!(
                    "{} numbers entered clipped to ±{} standard deviations of the values before them",
                    model.standardizer.clipped(),
                    eddy_training::hashing::Standardizer::CLIP
                );
            }
        }
        return Ok(());
    }
    let report = metrics.report();
    let rate = report.examples as f64 / elapsed.as_secs_f64().max(1e-9);
    if args.json {
        println!(
            "{}",
            json!({
                "model": "ftrl",
                "examples": report.examples,
                "skipped": skipped,
                "first_skip": first_skip,
                "logloss": report.logloss,
                "accuracy": report.accuracy,
                "auc": report.auc,
                "rmse": report.rmse,
                "base_rate_logloss": report.base_rate_logloss,
                "seconds": elapsed.as_secs_f64(),
                "examples_per_second": rate,
                "non_zero_weights": model.non_zero(),
                "clipped": model.standardizer.clipped(),
            })
        );
    } else {
        println!(
            "ftrl: {} examples in {:.2} s ({rate:.0}/s), progressive logloss {:.4}, AUC {:.4}, accuracy {:.4}, RMSE {:.4}; {} non-zero weights",
            report.examples,
            elapsed.as_secs_f64(),
            report.logloss,
            report.auc,
            report.accuracy,
            report.rmse,
            model.non_zero()
        );
        if model.standardizer.clipped() > 0 {
            println!(
                "{} numbers entered clipped to ±{} standard deviations of the values before them",
                model.standardizer.clipped(),
                eddy_training::hashing::Standardizer::CLIP
            );
        }
        println!(
            "base rate: logloss {:.4} predicting the positive rate for every row{}",
            report.base_rate_logloss,
            if report.logloss > report.base_rate_logloss {
                "; warning: the model is worse than the base rate"
            } else {
                ""
            }
        );
        if skipped > 0 {
            println!(
                "{skipped} rows skipped (first: {})",
                first_skip.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(())
}
