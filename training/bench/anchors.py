"""eddy's click model against the learners a user would pick instead.

`eddy learn --model ftrl` with its defaults, against River's logistic
regression (a StandardScaler in front, one-hot for categories; SGD, and
FTRL-Proximal) and Vowpal Wabbit (its defaults, and `--ftrl`), all in the
same predict-then-learn loop over the same rows, on public streams:

- phishing, bananas: real datasets bundled with River;
- agrawal, hyperplane, sea: River's synthetic generators, fixed seeds,
  numeric features left as they come (agrawal's salaries and loans are in
  the hundreds of thousands);
- movielens: ratings of ml-latest-small in time order, label rating >= 4,
  the user and the movie as categories (real, sparse, hashed);
- clicks: the synthetic click stream of `vw_compare.py` (ids, a
  group x category interaction, one numeric feature), whose Bayes-optimal
  logloss is known.

Every learner's progressive metrics are computed the same way (logloss with
probabilities clipped to [1e-15, 1 - 1e-15], accuracy at 0.5, AUC by rank;
eddy's own AUC is binned in 65,536 bins, within 1e-4 of the rank AUC here).

Usage (BENCHMARKS.md has the numbers):
  python3 -m venv ~/.cache/eddy/bench-venv
  ~/.cache/eddy/bench-venv/bin/pip install river==0.26.1 vowpalwabbit==9.11.9
  ~/.cache/eddy/bench-venv/bin/python training/bench/anchors.py target/release/eddy [ROWS]
"""

import math
import os
import re
import subprocess
import sys
import tempfile

from river import compose, datasets, linear_model, optim, preprocessing
from river.datasets import synth
from vowpalwabbit import pyvw

sys.path.insert(0, os.path.dirname(__file__))
from vw_compare import generate as click_stream  # noqa: E402

CLIP = 1e-15
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


def metrics(predictions, labels):
    """Progressive logloss, accuracy and AUC of probabilities."""
    n = len(labels)
    loss = 0.0
    correct = 0
    for p, y in zip(predictions, labels):
        q = min(max(p, CLIP), 1 - CLIP)
        loss -= math.log(q) if y else math.log(1 - q)
        correct += (p >= 0.5) == bool(y)
    # AUC by rank, ties shared.
    order = sorted(range(n), key=lambda i: predictions[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and predictions[order[j + 1]] == predictions[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(1 for y in labels if y)
    negatives = n - positives
    auc = (
        (sum(r for r, y in zip(ranks, labels) if y) - positives * (positives + 1) / 2)
        / (positives * negatives)
        if positives and negatives
        else float("nan")
    )
    return {"logloss": loss / n, "accuracy": correct / n, "auc": auc}


def streams(rows):
    """(name, rows of (features dict, label), categorical columns, Bayes logloss)."""
    take = lambda ds, n: [(dict(x), bool(y)) for x, y in ds.take(n)]  # noqa: E731
    yield "phishing", take(datasets.Phishing(), rows), [], None
    yield "bananas", take(datasets.Bananas(), rows), [], None
    yield "agrawal", take(synth.Agrawal(seed=42), rows), ["elevel", "car", "zipcode"], None
    yield "hyperplane", take(synth.Hyperplane(seed=42, n_features=10), rows), [], None
    yield "sea", take(synth.SEA(seed=42), rows), [], None
    ratings = []
    with open(os.path.join(REPO, "datasets", "movielens-small", "ratings.csv")) as f:
        next(f)
        for line in f:
            user, movie, rating, ts = line.strip().split(",")
            ratings.append((int(ts), user, movie, float(rating) >= 4.0))
    ratings.sort()
    yield "movielens", [
        ({"user": u, "movie": m}, y) for _, u, m, y in ratings[:rows]
    ], ["user", "movie"], None
    with tempfile.TemporaryDirectory() as d:
        csv_path, _, bayes = click_stream(rows, d)
        with open(csv_path) as f:
            header = next(f).strip().split(",")
            out = []
            for line in f:
                v = line.strip().split(",")
                x = dict(zip(header[1:], v[1:]))
                x["x"] = float(x["x"])
                out.append((x, v[0] == "1"))
    yield "clicks", out, ["user", "item", "group", "cat"], bayes


def column(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))


def run_eddy(eddy, data, categorical, work):
    """`eddy learn` with its defaults; metrics recomputed from its output."""
    names = sorted({k for x, _ in data for k in x}, key=str)
    path = os.path.join(work, "stream.csv")
    with open(path, "w") as f:
        f.write(",".join(["label"] + [column(n) for n in names]) + "\n")
        for x, y in data:
            f.write(",".join(["1" if y else "0"] + [str(x.get(n, "")) for n in names]) + "\n")
    args = [eddy, "--data-dir", work, "learn", "--input", path, "--label", "label"]
    for c in categorical:
        args += ["--categorical", column(c)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    out = done.stdout + done.stderr
    m = re.search(r"logloss ([0-9.]+), AUC ([0-9.]+), accuracy ([0-9.]+)", out)
    rate = re.search(r"\(([0-9]+)/s\)", out)
    return {
        "logloss": float(m.group(1)),
        "auc": float(m.group(2)),
        "accuracy": float(m.group(3)),
        "rate": int(rate.group(1)),
    }


def vw_line(x, y, categorical):
    feats = []
    for k, v in x.items():
        name = column(k)
        if k in categorical or isinstance(v, str):
            feats.append(f"{name}={column(v)}")
        else:
            feats.append(f"{name}:{float(v)}")
    return f"{1 if y else -1} | " + " ".join(feats)


def run_vw(data, categorical, extra):
    ws = pyvw.Workspace(f"--loss_function logistic --link logistic --quiet {extra}")
    predictions = []
    for x, y in data:
        ex = ws.parse(vw_line(x, y, categorical))
        predictions.append(ws.predict(ex))
        ws.learn(ex)
        ws.finish_example(ex)
    ws.finish()
    return metrics(predictions, [y for _, y in data])


def river_model(numeric, categorical, optimizer):
    parts = []
    if numeric:
        parts.append(compose.Select(*numeric) | preprocessing.StandardScaler())
    if categorical:
        parts.append(compose.Select(*categorical) | preprocessing.OneHotEncoder())
    features = parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)
    return features | linear_model.LogisticRegression(optimizer=optimizer)


def run_river(data, categorical, optimizer):
    names = sorted({k for x, _ in data for k in x}, key=str)
    numeric = [n for n in names if n not in categorical]
    model = river_model(numeric, [c for c in categorical if c in names], optimizer)
    predictions = []
    for x, y in data:
        x = {k: (str(v) if k in categorical else v) for k, v in x.items()}
        predictions.append(model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, y)
    return metrics(predictions, [y for _, y in data])


def main():
    eddy = os.path.abspath(sys.argv[1])
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    learners = [
        ("River LR (SGD) + scaler", lambda d, c: run_river(d, c, optim.SGD(0.01))),
        (
            "River LR (FTRL) + scaler",
            lambda d, c: run_river(d, c, optim.FTRLProximal()),
        ),
        ("VW defaults", lambda d, c: run_vw(d, c, "")),
        ("VW --ftrl", lambda d, c: run_vw(d, c, "--ftrl")),
    ]
    print("| stream | rows | learner | logloss | AUC | accuracy |")
    print("|---|---:|---|---:|---:|---:|")
    for name, data, categorical, bayes in streams(rows):
        with tempfile.TemporaryDirectory() as work:
            results = [("eddy learn (defaults)", run_eddy(eddy, data, categorical, work))]
        for label, run in learners:
            results.append((label, run(data, categorical)))
        for label, r in results:
            print(
                f"| {name} | {len(data)} | {label} | {r['logloss']:.4f} | {r['auc']:.4f} | {r['accuracy']:.4f} |",
                flush=True,
            )
        if bayes is not None:
            print(f"| {name} | {len(data)} | Bayes-optimal | {bayes:.4f} | | |", flush=True)


if __name__ == "__main__":
    main()
