//! `eddy learn`: progressive validation over a file.

use crate::support::*;

/// A small CSV where the label follows `x` and the `user` category.
fn csv(rows: usize, poison: bool) -> String {
    let mut out = String::from("label,user,x\n");
    for i in 0..rows {
        let user = i % 7;
        let x = ((i * 37) % 100) as f64 / 50.0 - 1.0;
        let y = u8::from(x + if user < 3 { 0.5 } else { -0.5 } > 0.0);
        let x = match (poison, i) {
            (true, 100) => "nan".to_string(),
            (true, 200) => "inf".to_string(),
            _ => format!("{x}"),
        };
        let label = if poison && i == 300 {
            "maybe".to_string()
        } else {
            y.to_string()
        };
        out += &format!("{label},{user},{x}\n");
    }
    out
}

fn learn(dir: &std::path::Path, file: &std::path::Path) -> std::process::Command {
    let mut cmd = eddy(dir);
    cmd.args(["learn", "--input"]).arg(file).args([
        "--label",
        "label",
        "--categorical",
        "user",
        "--json",
    ]);
    cmd
}

#[test]
fn a_nan_or_infinite_feature_or_a_bad_label_is_counted_and_skipped_not_learned() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.csv");
    let poisoned = dir.path().join("poisoned.csv");
    std::fs::write(&clean, csv(5_000, false)).unwrap();
    std::fs::write(&poisoned, csv(5_000, true)).unwrap();
    let report = |file| -> serde_json::Value {
        serde_json::from_str(&ok(learn(dir.path(), file), "")).unwrap()
    };
    let (a, b) = (report(&clean), report(&poisoned));
    assert_eq!(a["examples"], 5000);
    assert_eq!(b["examples"], 4997, "{b}");
    assert_eq!(b["skipped"], 3, "{b}");
    assert!(
        b["first_skip"]
            .as_str()
            .unwrap()
            .contains("row 101: feature `x` is NaN"),
        "{b}"
    );
    // The poisoned rows did not derail the model: it learned the same
    // pattern as on clean data.
    let (la, lb) = (
        a["logloss"].as_f64().unwrap(),
        b["logloss"].as_f64().unwrap(),
    );
    assert!(lb.is_finite() && (la - lb).abs() < 0.01, "{la} vs {lb}");
    assert!(a["auc"].as_f64().unwrap() > 0.9, "{a}");
    // The base rate is printed beside the model, which beats it here.
    let base = a["base_rate_logloss"].as_f64().unwrap();
    assert!(base > la && base < std::f64::consts::LN_2 + 1e-9, "{a}");
    let mut text = eddy(dir.path());
    text.args(["learn", "--input"])
        .arg(&clean)
        .args(["--label", "label", "--categorical", "user"]);
    let out = ok(text, "");
    assert!(
        out.contains(&format!("base rate: logloss {base:.4}")),
        "{out}"
    );
    assert!(!out.contains("worse than the base rate"), "{out}");
}

#[test]
fn learn_reads_parquet_like_csv_and_names_a_missing_label_column() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let text = csv(2_000, false);
    let path = dir.path().join("rows.csv");
    std::fs::write(&path, &text).unwrap();
    // The same rows as Parquet, typed.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let col = |i: usize| {
        rows.iter()
            .map(|r| r[i].parse::<f64>().unwrap())
            .collect::<Vec<_>>()
    };
    let mut df = DataFrame::new(vec![
        Series::new(
            "label".into(),
            col(0).iter().map(|v| *v as i64).collect::<Vec<_>>(),
        )
        .into_column(),
        Series::new(
            "user".into(),
            col(1).iter().map(|v| *v as i64).collect::<Vec<_>>(),
        )
        .into_column(),
        Series::new("x".into(), col(2)).into_column(),
    ])
    .unwrap();
    let parquet = dir.path().join("rows.parquet");
    ParquetWriter::new(std::fs::File::create(&parquet).unwrap())
        .finish(&mut df)
        .unwrap();
    let from = |file: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&ok(learn(dir.path(), file), "")).unwrap()
    };
    let (a, b) = (from(&path), from(&parquet));
    assert_eq!(a["examples"], b["examples"]);
    assert_eq!(a["logloss"], b["logloss"], "{a} vs {b}");
    let mut cmd = eddy(dir.path());
    cmd.args(["learn", "--input"])
        .arg(&path)
        .args(["--label", "clicked"]);
    let err = fails_with(cmd, "", 2);
    assert!(err.contains("--label `clicked` is not a column"), "{err}");
}

/// The batch baseline: on a MovieLens training set from `eddy backfill`,
/// linfa fit once before the split and FTRL learning every row are scored
/// on the same later rows; the online learner must do better.
#[test]
fn train_batch_puts_the_linfa_baseline_beside_the_online_learner_on_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    crate::pipeline::quickstart(dir.path());
    let data = dir.path().join("eddy-data");
    let out = dir.path().join("bf");
    let mut cmd = eddy(&data);
    cmd.current_dir(dir.path()).args([
        "backfill",
        crate::pipeline::MOVIELENS_SPEC,
        "--labels",
        "ratings",
        "--label-expr",
        "rating >= 4",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(cmd, "");
    let mut cmd = eddy(&data);
    cmd.args(["train", "batch", "--input"])
        .arg(out.join("training"))
        .args(["--split", "2015-01-01", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&ok(cmd, "")).unwrap();
    let (batch, online) = (&r["batch"], &r["online"]);
    assert_eq!(batch["examples"], online["examples"], "the same rows: {r}");
    assert!(batch["examples"].as_u64().unwrap() > 20_000, "{r}");
    assert!(r["features"].as_array().unwrap().len() >= 8, "{r}");
    for m in [batch, online] {
        assert!(m["auc"].as_f64().unwrap() > 0.7, "{r}");
    }
    assert!(
        online["logloss"].as_f64().unwrap() < batch["logloss"].as_f64().unwrap(),
        "the online learner beats the nightly batch model: {r}"
    );
}

/// RMSE for ratings: linear regression (FTRL, squared loss) on MovieLens
/// user and movie ids beats the running mean of the ratings seen so far.
#[test]
fn learn_linear_predicts_movielens_ratings_better_than_their_running_mean() {
    let dir = tempfile::tempdir().unwrap();
    let ratings = format!("{}/ratings.csv", crate::pipeline::MOVIELENS);
    let mut cmd = eddy(dir.path());
    cmd.args([
        "learn", "--input", &ratings, "--label", "rating", "--model", "linear",
    ])
    .args([
        "--categorical",
        "userId,movieId",
        "--ignore",
        "timestamp",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&ok(cmd, "")).unwrap();
    // The same progressive protocol for the baseline: predict the mean of
    // the ratings before, then see the rating.
    let text = std::fs::read_to_string(&ratings).unwrap();
    let (mut sum, mut n, mut sq) = (0.0, 0.0, 0.0);
    for line in text.lines().skip(1) {
        let y: f64 = line.split(',').nth(2).unwrap().parse().unwrap();
        let p = if n > 0.0 { sum / n } else { 3.5 };
        sq += (p - y) * (p - y);
        sum += y;
        n += 1.0;
    }
    let baseline = (sq / n).sqrt();
    let rmse = r["rmse"].as_f64().unwrap();
    assert_eq!(r["examples"], 100_837, "{r}");
    assert!(
        rmse < baseline - 0.1,
        "RMSE {rmse} vs running mean {baseline}"
    );
}
