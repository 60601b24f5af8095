//! Progress bars for long jobs: position, rate and ETA on stderr. They hide
//! themselves when stderr is not a terminal (CI logs stay readable).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for `len` items named `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Records per second, for summaries.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
