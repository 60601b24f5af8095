//! Running the eddy binary and finding the external test services.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The eddy binary built for this test run.
pub fn eddy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_eddy"))
}

/// An `eddy` command on the local log in `data_dir`, with no EDDY_*
/// variables leaking in from the environment.
pub fn eddy(data_dir: &Path) -> Command {
    let mut cmd = Command::new(eddy_bin());
    for var in [
        "EDDY_BROKERS",
        "EDDY_REGISTRY",
        "EDDY_DATA_DIR",
        "EDDY_KAFKA_CONFIG",
        "EDDY_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

/// How long any process in a test may run: a hang fails the test instead of
/// stalling the CI run.
pub const PROCESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Kills the process `pid` if it still runs after [`PROCESS_DEADLINE`],
/// and only if it is still this test process's child: a child that ended
/// in time may have left its pid to an unrelated process by then.
pub fn watchdog(pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(PROCESS_DEADLINE);
        if parent_of(pid) == Some(std::process::id()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
}

/// The parent of process `pid`, from `/proc/<pid>/stat` (after the
/// command's name in parentheses: the state, then the parent's pid).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Runs a command (eddy or another test client) with `stdin` as input,
/// under the [`watchdog`].
pub fn run(mut cmd: Command, stdin: &str) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn eddy");
    watchdog(child.id());
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for eddy")
}

/// Runs and asserts success; returns stdout.
pub fn ok(cmd: Command, stdin: &str) -> String {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs and asserts the exit code; returns stderr.
pub fn fails_with(cmd: Command, stdin: &str, code: i32) -> String {
    let out = run(cmd, stdin);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses JSON lines.
pub fn json_lines(s: &str) -> Vec<Json> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// An external service from an environment variable, or `None` (skip) when
/// it is not required.
pub fn external(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("EDDY_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
                "{var} is not set but EDDY_REQUIRE_EXTERNAL=1: run the suite with tests/run"
            );
            eprintln!("skipping: set {var} (tests/run does) to run this test");
            None
        }
    }
}

/// A name no other test or run uses.
pub fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{what}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// A running `eddy registry serve`, stopped on drop.
pub struct Registry {
    child: Child,
    pub url: String,
}

impl Registry {
    /// Starts the built-in registry on an ephemeral port, on the backend
    /// that `backend_args` select, its schemas in `topic` (default
    /// `_schemas`).
    pub fn start(data_dir: &Path, backend_args: &[&str], topic: Option<&str>) -> Registry {
        let mut cmd = eddy(data_dir);
        cmd.args(backend_args)
            .args(["registry", "serve", "--listen", "127.0.0.1:0"]);
        if let Some(t) = topic {
            cmd.args(["--topic", t]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn registry");
        watchdog(child.id());
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Registry { child, url }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A live `eddy run`, watched through its metrics.
pub struct LiveRun {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    /// Where its `/metrics` and `/healthz` are served.
    pub addr: String,
}

impl LiveRun {
    /// Starts `eddy run` (with `--metrics-addr 127.0.0.1:0`) or `eddy
    /// serve` and reads the first address its start line announces (the
    /// metrics', or serving's HTTP API); warnings, such as a checkpoint
    /// fallback, may come before that line.
    pub fn start(mut live: Command) -> LiveRun {
        live.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = live.spawn().unwrap();
        watchdog(child.id());
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let addr = loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
                panic!("no metrics address in {seen}");
            }
            if let Some(addr) = line
                .split_once("http://")
                .and_then(|(_, r)| r.split('/').next())
            {
                break addr.to_string();
            }
            seen.push_str(&line);
        };
        LiveRun {
            child,
            stderr,
            addr,
        }
    }

    /// Waits until `events` records are read and two more rounds of
    /// checkpoints are written (so the loop has advanced past the poll).
    pub fn wait_for(&self, events: f64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut checkpoints_then = None;
        loop {
            let (_, body) = crate::pipeline::http_get(&self.addr, "/metrics");
            let checkpoints = crate::pipeline::metric(&body, "eddy_checkpoints_total");
            match checkpoints_then {
                None if crate::pipeline::metric(&body, "eddy_events_in_total") >= events => {
                    checkpoints_then = Some(checkpoints)
                }
                Some(then) if checkpoints >= then + 6.0 => return,
                _ => {}
            }
            assert!(Instant::now() < deadline, "live run stalled: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C: it checkpoints and exits cleanly. Returns its stdout.
    /// The read API's row of `key` in `view` (`/v1/features/{view}/{key}`),
    /// asked until it answers 200 (serving may still be reading its
    /// tables): the row as JSON, and the body as text for messages.
    pub fn features(&self, view: &str, key: &str) -> (Json, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) =
                crate::pipeline::http_get(&self.addr, &format!("/v1/features/{view}/{key}"));
            if status == 200 {
                return (serde_json::from_str(&body).unwrap(), body);
            }
            assert!(Instant::now() < deadline, "{status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "{rest}{}", text(&out.stdout));
        text(&out.stdout)
    }
}

/// A model's live progressive metrics (its last `models.metrics` record)
/// equal `eddy learn --json`'s over its training set, to 1e-9.
pub fn assert_live_equals_offline(live: &Json, offline: &Json) {
    for metric in ["logloss", "auc", "accuracy"] {
        let (a, b) = (
            live["metrics"][metric].as_f64().unwrap(),
            offline[metric].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() < 1e-9,
            "{metric}: live {a} vs offline {b}\nlive: {live}\noffline: {offline}"
        );
    }
}

/// Asserts that `eddy evaluate --json`'s serving chain (the learned order,
/// its last row) scores at least its best single candidate source, HR@k
/// and NDCG@k, and that the evaluation did not warn otherwise; returns the
/// chain's HR@k and the best source's.
pub fn assert_chain_beats_its_sources(out: &str) -> (f64, f64) {
    let json: Json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rows = json["models"].as_array().expect("models");
    let chain = rows.last().expect("the serving row");
    assert!(
        chain["model"]
            .as_str()
            .unwrap()
            .starts_with("serving: learned order"),
        "{out}"
    );
    let sources = &rows[..rows.len() - 2];
    let best = |key: &str| {
        sources
            .iter()
            .map(|r| r[key].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    for key in ["streaming_hit_rate", "streaming_ndcg"] {
        let c = chain[key].as_f64().unwrap();
        assert!(
            c >= best(key),
            "{key}: chain {c} below {}: {out}",
            best(key)
        );
    }
    assert!(json["below_best_source"].is_null(), "{out}");
    assert!(json["ranker"]["learned"].as_u64().unwrap() > 0, "{out}");
    (
        chain["streaming_hit_rate"].as_f64().unwrap(),
        best("streaming_hit_rate"),
    )
}

/// The watchdog kills only its own children: a live child is recognised,
/// a process that is not ours (init) is not.
#[test]
fn the_watchdog_recognises_its_own_children_only() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    assert_eq!(parent_of(child.id()), Some(std::process::id()));
    assert_ne!(parent_of(1), Some(std::process::id()));
    child.kill().unwrap();
    child.wait().unwrap();
}
