//! The notebooks execute, headless, against a fresh quickstart: a cell
//! error fails the test.

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
    // One process per notebook, each under the test watchdog.
    for book in ["01_feature_tables", "02_training_sets", "03_freshness_lift"] {
        let mut run = std::process::Command::new(&py);
        run.arg(format!("{repo}/notebooks/run_all.py"))
            .arg(format!("{repo}/notebooks/{book}.ipynb"))
            .env("EDDY_DATA", &data)
            .env("EDDY_BIN", eddy_bin())
            .env("EDDY_REPO", repo);
        let out = ok(run, "");
        assert!(out.contains(&format!("ok {book}.ipynb")), "{out}");
    }
}
