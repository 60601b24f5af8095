//! `eddy quickstart`, the first command a newcomer runs.

use crate::support::*;

fn number_after(text: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace()
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn quickstart_loads_movielens_and_its_summary_is_sane() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let mut cmd = eddy(&data);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("quickstart");
    let output = run(cmd, "");
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{out}{err}");
    // Regression: after "fresh data directory", each model said it
    // "resumes from its latest snapshot", which read as a contradiction.
    assert!(
        err.contains("the live pipeline continues the 4 models trained above"),
        "{err}"
    );
    assert!(!err.contains("resumes from its latest snapshot"), "{err}");
    // Every rating and every movie of the shipped dataset.
    let rows = |f: &str| {
        std::fs::read_to_string(format!(
            "{}/datasets/movielens-small/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .lines()
        .count()
            - 1
    };
    let ratings_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("ratings "))
        .unwrap();
    assert!(
        ratings_line.contains(&rows("ratings.csv").to_string()),
        "{out}"
    );
    assert!(ratings_line.contains("ratings-value v1"), "{out}");
    let movies_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("movies "))
        .unwrap();
    assert!(
        movies_line.contains(&rows("movies.csv").to_string()),
        "{out}"
    );
    assert!(
        number_after(&out, "written:") as usize == rows("ratings.csv") + rows("movies.csv"),
        "{out}"
    );
    assert!(out.contains("records/s"), "{out}");
    assert!(out.contains("1996-03-29 .. 2018-09-24"), "{out}");
    let mean: f64 = out
        .split("mean ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.5..=5.0).contains(&mean), "{out}");
    assert!(
        out.contains("subjects:  features.user_activity-value, movies-value, ratings-value"),
        "{out}"
    );
    // The feature pipeline ran over every rating.
    let features = number_after(&out, "features:");
    assert_eq!(features as usize, rows("ratings.csv"), "{out}");
    let users = std::fs::read_to_string(format!(
        "{}/datasets/movielens-small/ratings.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .lines()
    .skip(1)
    .map(|l| l.split(',').next().unwrap().to_string())
    .collect::<std::collections::BTreeSet<_>>()
    .len();
    assert!(
        out.contains(&format!(
            "view user_activity: {users} keys in topic features.user_activity"
        )),
        "{out}"
    );
    assert!(number_after(&out, "ratings_count_lifetime") >= 1.0, "{out}");
    assert!(data.join("parquet/user_activity").is_dir(), "{out}");
    // The models learned from every rating, and their metrics are sane.
    let n = rows("ratings.csv");
    assert!(out.contains(&format!("like (ftrl): {n} examples")), "{out}");
    let line = out.lines().find(|l| l.contains("like (ftrl)")).unwrap();
    let ll: f64 = line
        .split("logloss ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|t| t.trim().parse().ok())
        .unwrap();
    assert!(
        ll > 0.3 && ll < 0.69,
        "better than a coin, not impossibly good: {line}"
    );
    for model in [
        "taste (mf)",
        "next_movie (cooccurrence)",
        "popular (popularity)",
    ] {
        assert!(out.contains(model), "{model}: {out}");
    }
    // Serving: the freshness lift, then answers to new ratings with titles.
    // The lift printed after `marker`, as `1.22x`.
    let lift_after = |marker: &str| -> f64 {
        out.split(marker)
            .nth(1)
            .and_then(|t| t.split('x').next())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no lift after `{marker}` in {out}"))
    };
    let lift = lift_after("freshness lift of what serving recommends: ");
    assert!(lift > 1.0, "streaming beats the nightly rebuild: {out}");
    let never = lift_after("HR@10 over a nightly rebuild, ");
    assert!(never > 1.0, "streaming beats a model never rebuilt: {out}");
    assert!(
        out.contains("400 new ratings at 200/s, 400 recommendations on topic `recommendations`"),
        "{out}"
    );
    let examples: Vec<&str> = out.lines().filter(|l| l.contains("for user ")).collect();
    assert!(
        !examples.is_empty() && examples.iter().all(|l| l.contains(" · ")),
        "{out}"
    );
    assert!(out.contains("p99 "), "{out}");
    // The pipeline ran beside serving during the tail and read every new
    // rating; serving names the model versions it used first and last.
    let swap = out
        .lines()
        .find(|l| l.contains("the pipeline kept running and read the 400 new ratings"))
        .unwrap_or_else(|| panic!("{out}"));
    let version = |part: &str| -> u64 {
        part.split("like@")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap()
    };
    let (first, last) = swap.split_once(" to ").unwrap();
    assert!(version(last) >= version(first), "{swap}");
    assert!(!out.contains("WARNING"), "{out}");

    // `eddy evaluate` on what the quickstart left: the serving chain's
    // learned order scores at least its best single source.
    let mut evaluate = eddy(&data);
    evaluate.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "evaluate",
        "datasets/movielens/pipeline.yaml",
        "--json",
    ]);
    let (chain, best) = assert_chain_beats_its_sources(&ok(evaluate, ""));
    eprintln!("MovieLens: the learned order HR@10 {chain:.4}, the best single source {best:.4}");

    // Twice: it resets its own directory and says so.
    let mut again = eddy(&data);
    again
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("quickstart");
    assert!(ok(again, "").contains("it held the previous quickstart's data"));

    // It never deletes a directory it did not make.
    let foreign = dir.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "precious").unwrap();
    let mut refuse = eddy(&foreign);
    refuse
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("quickstart");
    assert!(fails_with(refuse, "", 2).contains("did not write"));
    assert!(foreign.join("notes.txt").exists());
}
