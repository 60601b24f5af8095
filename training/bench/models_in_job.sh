#!/usr/bin/env bash
# The cost of training models inside `eddy run`: the MovieLens pipeline
# (datasets/movielens/pipeline.yaml) run to the end of the ratings with no
# model, then with each of its models alone. Run from the repository root
# after `cargo build --release`; it works in a temporary directory.
set -euo pipefail
repo=$(pwd)
eddy="${EDDY:-$repo/target/release/eddy}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$eddy" quickstart --dataset "$repo/datasets/movielens-small" >/dev/null
python3 - "$repo/datasets/movielens/pipeline.yaml" <<'PY'
import re, sys
spec = open(sys.argv[1]).read()
head = spec[: spec.index("\nmodels:")]
open("none.yaml", "w").write(head.replace("name: movielens", "name: bench_none"))
models = spec[spec.index("\nmodels:"):]
# The models section ends at the next top-level key (`serving:`).
end = re.search(r"\n(?=[a-z_]+:)", models[1:])
models = models[: end.start() + 1] if end else models
for block in re.split(r"\n(?=  [a-z_]+:\n)", models)[1:]:
    name = block.strip().split(":")[0]
    text = head.replace("name: movielens", f"name: bench_{name}") + "\nmodels:\n" + block + "\n"
    open(f"{name}.yaml", "w").write(text)
PY
for spec in none.yaml $(ls *.yaml | grep -v none.yaml); do
    for run in 1 2 3; do
        rm -rf "ckpt-$run"
        # A run that fails prints its error instead of an empty line.
        out=$("$eddy" run "$spec" --until-end --metrics-addr 127.0.0.1:0 --checkpoint-url "ckpt-$run" 2>&1) || { echo "$spec run $run failed: $out"; exit 1; }
        echo "$spec run $run: $(grep -E 'events in|examples,' <<<"$out" | tr '\n' ' ')"
    done
done
