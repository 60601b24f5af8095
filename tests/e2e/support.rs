//! Running the eddy binary and finding the external test services.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// Kills the process `pid` if it still runs after [`PROCESS_DEADLINE`].
pub fn watchdog(pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(PROCESS_DEADLINE);
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    });
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
