"""FTRL in eddy against Vowpal Wabbit, on the same stream and features.

Generates a click stream whose true probabilities are known (users, items,
a user-group x item-category interaction that only a quadratic cross can
learn, one numeric feature), writes it as CSV for `eddy learn` and in VW's
text format for VW, runs both with progressive validation (predict, then
learn, one pass), and prints examples/s and progressive logloss side by
side, with the Bayes-optimal logloss for reference.

Both times are the learner's own, reading its text file: eddy reports the
time of its learning loop (CSV parsing, hashing, learning); VW's is
building the workspace with `-d` plus `run_parser()` (text parsing, hashing,
learning), measured around both.

Usage (BENCHMARKS.md has the numbers):
  python3 -m venv ~/.cache/eddy/bench-venv
  ~/.cache/eddy/bench-venv/bin/pip install vowpalwabbit==9.11.9
  ~/.cache/eddy/bench-venv/bin/python training/bench/vw_compare.py target/release/eddy [ROWS] [clicks|dense]

`dense` is the other input shape: 8 numeric features, no ids and no cross
(eddy standardizes them by default; VW's defaults normalize them).
"""

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time


def generate(rows: int, directory: str, seed: int = 7):
    rng = random.Random(seed)
    users = [rng.gauss(0, 0.5) for _ in range(2000)]
    items = [rng.gauss(0, 0.5) for _ in range(500)]
    csv_path = os.path.join(directory, "clicks.csv")
    vw_path = os.path.join(directory, "clicks.vw")
    bayes = 0.0
    with open(csv_path, "w") as c, open(vw_path, "w") as v:
        c.write("label,user,item,group,cat,x\n")
        for _ in range(rows):
            u, i = rng.randrange(2000), rng.randrange(500)
            group, cat = u % 4, i % 5
            x = round(2 * rng.random() - 1, 4)
            inter = 0.8 if group == cat % 4 else -0.4
            p = 1 / (1 + math.exp(-(-1.0 + users[u] + items[i] + inter + 0.7 * x)))
            y = 1 if rng.random() < p else 0
            bayes -= math.log(p) if y else math.log(1 - p)
            c.write(f"{y},{u},{i},{group},{cat},{x}\n")
            v.write(f"{1 if y else -1} |u u{u} |i i{i} |g g{group} |c c{cat} |x x:{x}\n")
    return csv_path, vw_path, bayes / rows


def generate_dense(rows: int, directory: str, seed: int = 7):
    """8 numeric features on their own scales; the label is logistic in a
    linear function of them (so both learners can reach Bayes)."""
    rng = random.Random(seed)
    weights = [rng.gauss(0, 1) for _ in range(8)]
    scales = [10 ** rng.randint(-2, 4) for _ in range(8)]
    csv_path = os.path.join(directory, "dense.csv")
    vw_path = os.path.join(directory, "dense.vw")
    bayes = 0.0
    with open(csv_path, "w") as c, open(vw_path, "w") as v:
        c.write("label," + ",".join(f"f{j}" for j in range(8)) + "\n")
        for _ in range(rows):
            z = [rng.gauss(0, 1) for _ in range(8)]
            p = 1 / (1 + math.exp(-(0.2 + sum(w * x for w, x in zip(weights, z)) / 2)))
            y = 1 if rng.random() < p else 0
            bayes -= math.log(p) if y else math.log(1 - p)
            raw = [round(x * s + s, 6) for x, s in zip(z, scales)]
            c.write(f"{y}," + ",".join(str(x) for x in raw) + "\n")
            v.write(f"{1 if y else -1} |f " + " ".join(f"f{j}:{x}" for j, x in enumerate(raw)) + "\n")
    return csv_path, vw_path, bayes / rows


SHAPE_ARGS = {
    "clicks": (["--categorical", "user,item,group,cat", "--cross", "group,cat"], "-q gc"),
    "dense": ([], ""),
}


def run_eddy(eddy: str, csv_path: str, args=(), shape="clicks"):
    out = subprocess.run(
        [eddy, "learn", "--input", csv_path, "--label", "label",
         *SHAPE_ARGS[shape][0], "--json", *args],
        check=True, capture_output=True, text=True,
    )
    r = json.loads(out.stdout)
    return r["examples"] / r["seconds"], r["logloss"]


def run_vw(vw_path: str, args: str, shape="clicks"):
    from vowpalwabbit import Workspace

    # With -d, VW reads and learns the whole file while the workspace is
    # built; run_parser() finishes whatever is left. Time both.
    started = time.perf_counter()
    ws = Workspace(f"-d {vw_path} --loss_function logistic -b 20 {SHAPE_ARGS[shape][1]} --quiet {args}")
    ws.run_parser()
    seconds = time.perf_counter() - started
    examples = ws.get_weighted_examples()
    loss = ws.get_sum_loss() / examples
    ws.finish()
    return examples / seconds, loss


def main():
    eddy = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    shape = sys.argv[3] if len(sys.argv) > 3 else "clicks"
    with tempfile.TemporaryDirectory() as d:
        csv_path, vw_path, bayes = (generate_dense if shape == "dense" else generate)(rows, d)
        # The same algorithm on both sides (FTRL, VW's has no L1/L2 by
        # default; eddy's numbers as they are), then each with its own
        # defaults (VW's: adaptive, normalized, invariant SGD).
        same = ("--alpha", "0.2", "--beta", "1", "--l1", "0", "--l2", "0", "--standardize", "false")
        results = [
            ("eddy ftrl, alpha 0.2 beta 1", *run_eddy(eddy, csv_path, same, shape)),
            ("vw --ftrl, alpha 0.2 beta 1", *run_vw(vw_path, "--ftrl --ftrl_alpha 0.2 --ftrl_beta 1", shape)),
            ("eddy ftrl, its defaults", *run_eddy(eddy, csv_path, (), shape)),
            ("vw --ftrl, its defaults", *run_vw(vw_path, "--ftrl", shape)),
            ("vw, its defaults", *run_vw(vw_path, "", shape)),
        ]
    print(f"{rows} examples; Bayes-optimal logloss {bayes:.4f}")
    print(f"{'learner':<30} {'examples/s':>12} {'logloss':>9}")
    for name, rate, loss in results:
        print(f"{name:<30} {rate:>12,.0f} {loss:>9.4f}")
    print(f"same settings: eddy / VW = {results[0][1] / results[1][1]:.2f}x speed, "
          f"logloss {results[0][2]:.4f} vs {results[1][2]:.4f}")


if __name__ == "__main__":
    main()
