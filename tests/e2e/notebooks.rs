//! The notebooks execute, headless, against a fresh quickstart (the
//! clickstream one generates its own shop): a cell error fails the test.

use crate::support::*;

#[test]
fn the_notebooks_execute_after_a_quickstart() {
    let Some(py) = external("EDDY_TEST_PYTHON") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eddy-data");
    let mut quickstart = eddy(&data);
    quickstart
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["quickstart", "--tail", "0"]);
    ok(quickstart, "");
    let repo = env!("CARGO_MANIFEST_DIR");
    // The executed copies, with outputs, where CI keeps them for people to
    // open (target/ is CI's workspace; the repository's notebooks stay
    // without outputs).
    let executed = std::path::Path::new(repo).join("target/notebooks");
    // One process per notebook, each under the test watchdog.
    for book in [
        "01_feature_tables",
        "02_training_sets",
        "03_freshness_lift",
        "04_clickstream",
    ] {
        let mut run = std::process::Command::new(&py);
        run.arg(format!("{repo}/notebooks/run_all.py"))
            .arg(format!("{repo}/notebooks/{book}.ipynb"))
            .env("EDDY_DATA", &data)
            .env("EDDY_BIN", eddy_bin())
            .env("EDDY_REPO", repo)
            .env("EDDY_NOTEBOOK_OUT", &executed);
        let out = ok(run, "");
        // Regression: `matplotlib.use("Agg")` switched the inline backend
        // off, so the executed notebooks held no figure.
        let figures: usize = out
            .split(&format!("ok {book}.ipynb: "))
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(figures > 0, "{out}");
        let copy = std::fs::read_to_string(executed.join(format!("{book}.ipynb"))).unwrap();
        assert!(
            copy.contains("image/png"),
            "the executed copy keeps its figures"
        );
    }
}
