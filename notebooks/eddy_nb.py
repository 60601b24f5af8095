"""Helpers the notebooks share: where the data is, and running `eddy`.

Run `tests/setup build && cargo run --release -- quickstart` from the repository root first: it
writes `eddy-data/`, which the notebooks read. Three environment variables
override the defaults (the tests set them):

- EDDY_DATA: the data directory (default: `eddy-data` at the repository root);
- EDDY_BIN: the eddy binary (default: `target/release/eddy`, else `eddy` on PATH);
- EDDY_REPO: the repository root (default: the parent of this directory).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(os.environ.get("EDDY_REPO", Path(__file__).resolve().parent.parent))
DATA = Path(os.environ.get("EDDY_DATA", REPO / "eddy-data"))
SPEC = REPO / "datasets" / "movielens" / "pipeline.yaml"


def eddy_bin() -> str:
    if "EDDY_BIN" in os.environ:
        return os.environ["EDDY_BIN"]
    built = REPO / "target" / "release" / "eddy"
    if built.exists():
        return str(built)
    found = shutil.which("eddy")
    if found is None:
        raise RuntimeError(
            "no eddy binary: run `cargo build --release` at the repository root, or set EDDY_BIN"
        )
    return found


def eddy(*args: str) -> str:
    """Runs `eddy --data-dir DATA ARGS...` and returns its stdout; raises
    with its stderr if it fails."""
    cmd = [eddy_bin(), "--data-dir", str(DATA), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def eddy_json(*args: str):
    """`eddy ... --json`, parsed."""
    return json.loads(eddy(*args, "--json"))


def require_quickstart() -> None:
    if not (DATA / "parquet" / "user_activity").is_dir():
        raise RuntimeError(
            f"{DATA} has no feature tables: run `tests/setup build && cargo run --release -- quickstart` at {REPO} first"
        )
