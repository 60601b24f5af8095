//! The clickstream tutorial (`datasets/clickstream/pipeline.yaml`) as a
//! user follows it: generate the shop, validate, run, build the click
//! model's training set, learn from it, serve.
//!
//! The generator knows every view's true click probability, so the test
//! holds the learned model between two known bounds: better than the
//! base rate, no better than Bayes-optimal.

use std::path::{Path, PathBuf};

use crate::support::*;

fn spec() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/clickstream/pipeline.yaml")
        .display()
        .to_string()
}

/// An eddy command run from `dir`, where the spec's relative Parquet
/// paths (`./eddy-data/...`) land, on the local log in `dir/eddy-data`.
pub(crate) fn eddy_in(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = eddy(&dir.join("eddy-data"));
    c.current_dir(dir).args(args);
    c
}

/// `eddy datasets generate clickstream` in `dir` with these sizes, seed
/// and `extra` flags; its output.
fn generate(
    dir: &Path,
    users: &str,
    items: &str,
    events: &str,
    seed: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "datasets",
        "generate",
        "clickstream",
        "--users",
        users,
        "--items",
        items,
        "--events",
        events,
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    ok(eddy_in(dir, &args), "")
}

/// The number before `what` in `text` ("43733 views").
fn count(text: &str, what: &str) -> u64 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("`{what}` in {text}"));
    text[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count before `{what}` in {text}"))
}

/// The number after `what` in `text` ("logloss 0.5690").
fn number_after(text: &str, what: &str) -> f64 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("`{what}` in {text}"))
        + what.len();
    text[at..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|s| !s.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number after `{what}` in {text}"))
}

/// The Bayes-optimal logloss over the training set's rows: each view's
/// true click probability, from the generator's ground truth.
fn bayes_logloss(training: &Path, truth: &Path) -> (f64, usize) {
    use polars::prelude::*;
    let mut files: Vec<PathBuf> = std::fs::read_dir(training)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let read = |p: &Path| {
        ParquetReader::new(std::fs::File::open(p).unwrap())
            .finish()
            .unwrap()
    };
    let mut rows = read(&files[0]);
    for f in &files[1..] {
        rows.vstack_mut(&read(f)).unwrap();
    }
    let truth = read(truth);
    let joined = rows
        .lazy()
        .join(
            truth.lazy(),
            [col("event_id")],
            [col("event_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .select([col("label"), col("p_click")])
        .collect()
        .unwrap();
    let labels = joined.column("label").unwrap().bool().unwrap().clone();
    let p = joined.column("p_click").unwrap().f64().unwrap().clone();
    let mut sum = 0.0;
    for (y, p) in labels.into_iter().zip(&p) {
        let (y, p) = (y.unwrap(), p.unwrap().clamp(1e-12, 1.0 - 1e-12));
        sum -= if y { p.ln() } else { (1.0 - p).ln() };
    }
    (sum / joined.height() as f64, joined.height())
}

#[test]
fn the_clickstream_tutorial_validates_runs_trains_above_the_base_rate_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = spec();
    let generated = generate(d, "1000", "300", "60000", "11", &[]);
    let (views, clicks) = (count(&generated, " views,"), count(&generated, " clicks,"));
    assert!(
        generated.contains("datasets/clickstream/pipeline.yaml"),
        "the generator says where the tutorial spec is: {generated}"
    );
    let valid = ok(eddy_in(d, &["validate", &spec]), "");
    assert!(valid.contains("model click (ftrl on events"), "{valid}");

    // Live: every view is an example of the click model.
    let run = ok(
        eddy_in(
            d,
            &["run", &spec, "--until-end", "--metrics-addr", "127.0.0.1:0"],
        ),
        "",
    );
    let learned_live = count(&run, "examples, logloss");
    assert!(run.contains("model click (ftrl)"), "{run}");
    derived_ctr_is_the_same_everywhere(d, &spec);

    // The training set of the click model: the same examples, each
    // labeled by whether its click came within the minute.
    let backfill = ok(
        eddy_in(
            d,
            &[
                "backfill",
                &spec,
                "--model",
                "click",
                "--columns",
                "event_id",
                "--out",
                "click-training",
            ],
        ),
        "",
    );
    let rows = count(&backfill, "rows ×");
    let waiting = if backfill.contains("attribution window had not ended") {
        count(&backfill, "examples left out: their attribution")
    } else {
        0
    };
    assert_eq!(
        rows + waiting,
        views,
        "every view is a row or still waiting: {backfill}"
    );
    assert_eq!(
        rows, learned_live,
        "live learned the rows the backfill wrote: {run}\n{backfill}"
    );
    assert!(
        backfill.contains("delayed labels: 0 label events matched no waiting example"),
        "every click follows its view within the minute: {backfill}"
    );

    let training = d.join("click-training/training");
    let learn = ok(
        eddy_in(
            d,
            &[
                "learn",
                "--input",
                training.to_str().unwrap(),
                "--label",
                "label",
                "--numeric",
                "log",
                "--categorical",
                "user_id,item_id",
                "--cross",
                "user_id,item_id",
                "--cross",
                "items_category,clicked_categories_lifetime",
                "--ignore",
                "event_time,partition,offset,event_id,top_categories_1w,recent_items_1d",
            ],
        ),
        "",
    );
    let model = number_after(&learn, "progressive logloss");
    let base = number_after(&learn, "base rate: logloss");
    let (bayes, joined) = bayes_logloss(&training, &d.join("eddy-data/clickstream-truth.parquet"));
    assert_eq!(
        joined as u64, rows,
        "every row is a view with a true probability"
    );
    // Positives are the clicks (of views whose label is known).
    let positive_rate = clicks as f64 / views as f64;
    let expected_base =
        -(positive_rate * positive_rate.ln() + (1.0 - positive_rate) * (1.0 - positive_rate).ln());
    assert!(
        (base - expected_base).abs() < 0.01,
        "{base} vs {expected_base}"
    );
    eprintln!(
        "click model: logloss {model:.4}, base rate {base:.4}, Bayes-optimal {bayes:.4}, gap {:.4}",
        model - bayes
    );
    assert!(model < base, "the click model beats the base rate: {learn}");
    assert!(
        model > bayes,
        "and no model beats Bayes-optimal: {model} vs {bayes}"
    );
    assert!(!learn.contains("worse than the base rate"), "{learn}");

    // Serving: every event asks for recommendations, ranked by the click
    // model.
    let served = ok(
        eddy_in(
            d,
            &[
                "serve",
                &spec,
                "--http",
                "127.0.0.1:0",
                "--from-earliest",
                "--until-end",
            ],
        ),
        "",
    );
    let triggers = count(&served, "triggers and");
    assert_eq!(count(&served, "recommendations,"), triggers, "{served}");
    // Serving learned its order from what each user did next.
    assert!(number_after(&served, "the learned order learned from") > 0.0);
    let evaluated = ok(eddy_in(d, &["evaluate", &spec, "--json"]), "");
    let (chain, best) = assert_chain_beats_its_sources(&evaluated);
    eprintln!("clickstream: the learned order HR@10 {chain:.4}, the best single source {best:.4}");
    let recs = ok(
        eddy_in(
            d,
            &[
                "topics",
                "consume",
                "--topic",
                "clickstream.recommendations",
                "--max",
                "5",
            ],
        ),
        "",
    );
    assert!(recs.contains("\"items\""), "{recs}");
}

/// A model with a column joined from a table (`items.category`, as of the
/// event's time) learns live exactly what `eddy learn` learns from its
/// training set (`eddy backfill --model`): the same rows, the same
/// joined values, hashed the same way. One partition, so the live learner
/// sees the events in the order the training set holds them.
#[test]
fn a_model_column_joined_from_a_table_is_the_same_live_and_in_its_training_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "300", "100", "20000", "5", &["--partitions", "1"]);
    // The tutorial's sources, tables and views, and one model whose label
    // is in the event.
    let tutorial = std::fs::read_to_string(spec()).unwrap();
    let head = &tutorial[..tutorial.find("\nmodels:").unwrap()];
    let text = format!(
        "{head}
models:
  cheap:
    kind: ftrl
    source: events
    filter: \"event_type = 'view'\"
    label: \"price < 40\"
    columns: [item_id, items.category]
    categorical: [item_id]
    crosses: [[items.category, clicked_categories_lifetime]]
"
    )
    .replace("name: clickstream", "name: joined");
    let spec = d.join("joined.yaml");
    std::fs::write(&spec, text).unwrap();
    let spec = spec.to_str().unwrap();
    ok(
        eddy_in(
            d,
            &["run", spec, "--until-end", "--metrics-addr", "127.0.0.1:0"],
        ),
        "",
    );
    let metrics = json_lines(&ok(
        eddy_in(d, &["topics", "consume", "--topic", "models.metrics"]),
        "",
    ));
    let live = metrics
        .iter()
        .rfind(|r| r["model"] == "cheap")
        .expect("the model's metrics")
        .clone();
    ok(
        eddy_in(
            d,
            &[
                "backfill",
                spec,
                "--model",
                "cheap",
                "--out",
                "training-set",
            ],
        ),
        "",
    );
    let training = d.join("training-set/training");
    let report: serde_json::Value = serde_json::from_str(&ok(
        eddy_in(
            d,
            &[
                "learn",
                "--input",
                training.to_str().unwrap(),
                "--label",
                "label",
                "--categorical",
                "item_id",
                "--cross",
                "items_category,clicked_categories_lifetime",
                "--ignore",
                "user_id,event_time,partition,offset",
                "--numeric",
                "log",
                "--json",
            ],
        ),
        "",
    ))
    .unwrap();
    assert_eq!(report["examples"], live["examples"], "{report}\n{live}");
    assert_live_equals_offline(&live, &report);
    // The joined column is there on every row (every item shown has a
    // catalog row by then), so the equality above covers it.
    use polars::prelude::*;
    let rows = LazyFrame::scan_parquet(
        PlPath::new(&format!("{}/*.parquet", training.display())),
        Default::default(),
    )
    .unwrap()
    .select([
        len().alias("rows"),
        col("items_category").null_count().alias("nulls"),
        col("items_category").n_unique().alias("categories"),
    ])
    .collect()
    .unwrap();
    let get = |c: &str| {
        rows.column(c)
            .unwrap()
            .get(0)
            .unwrap()
            .try_extract::<u64>()
            .unwrap()
    };
    assert_eq!(get("rows"), live["examples"].as_u64().unwrap());
    assert_eq!(get("nulls"), 0, "{rows}");
    assert!(get("categories") > 10, "{rows}");
}

/// Regression: `eddy run --serve` wrapped the learners to copy their
/// updates to serving, and the wrapper did not pass on which table
/// columns the models read. The clickstream tutorial's click model reads
/// `items.category`, and the co-located run panicked on its first example
/// (index out of bounds). It must train and serve as `eddy run` does.
#[test]
fn eddy_run_serve_hands_models_the_table_columns_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = spec();
    generate(d, "200", "50", "5000", "3", &[]);
    let out = ok(
        eddy_in(
            d,
            &[
                "run",
                &spec,
                "--until-end",
                "--serve",
                "--serve-http",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ],
        ),
        "",
    );
    assert!(out.contains("model click (ftrl)"), "{out}");
    assert!(number_after(&out, "model click (ftrl):") > 0.0, "{out}");
    assert!(out.contains("recommendations"), "{out}");
}

/// The tutorial's derived `ctr_1d` (clicks ÷ views over a day): in the
/// Parquet table it is what polars computes from the same rows' counts,
/// and a replay (`eddy consistency`) finds it, like every feature, equal
/// to the live topic's.
fn derived_ctr_is_the_same_everywhere(d: &Path, spec: &str) {
    use polars::prelude::*;
    let parquet = d.join("eddy-data/parquet/shopper");
    let files: Vec<PathBuf> = std::fs::read_dir(&parquet)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!files.is_empty(), "{}", parquet.display());
    let paths: Vec<PlPath> = files
        .iter()
        .map(|p| PlPath::new(p.to_str().unwrap()))
        .collect();
    let rows = LazyFrame::scan_parquet_files(paths.into(), ScanArgsParquet::default())
        .unwrap()
        .select([
            col("ctr_1d"),
            when(col("views_1d").gt(lit(0)))
                .then(
                    col("clicks_1d").cast(DataType::Float64)
                        / col("views_1d").cast(DataType::Float64),
                )
                .otherwise(lit(NULL))
                .alias("want"),
        ])
        .collect()
        .unwrap();
    let (got, want) = (
        rows.column("ctr_1d").unwrap().f64().unwrap().clone(),
        rows.column("want").unwrap().f64().unwrap().clone(),
    );
    let mut with_views = 0;
    for (g, w) in got.into_iter().zip(&want) {
        assert_eq!(g.is_some(), w.is_some(), "{g:?} vs {w:?}");
        if let (Some(g), Some(w)) = (g, w) {
            assert!((g - w).abs() <= 1e-12, "{g} vs {w}");
            with_views += 1;
        }
    }
    assert!(with_views > 0, "some rows have views in their day");
    let report = ok(
        eddy_in(
            d,
            &[
                "consistency",
                spec,
                "--view",
                "shopper",
                "--sample",
                "100",
                "--json",
            ],
        ),
        "",
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let features = report["features"].as_array().unwrap();
    assert!(
        features.iter().any(|f| f.to_string().contains("ctr_1d")),
        "{report}"
    );
    for f in features {
        assert_eq!(f["mismatches"], 0, "{f}");
    }
}
