"""An independent point-in-time join: the oracle for `eddy backfill --labels`.

Computes, from the raw MovieLens ratings.csv with polars `join_asof`, the
features every rating should see as of just before its own time (strictly
earlier events only), and compares them with the training set eddy wrote.

Features (see the spec in tests/e2e/backfill.rs):
  n_lifetime, sum_lifetime, mean_lifetime, last_rating_lifetime,
  n_30d, sum_30d, mean_30d.

Windowed values come from cumulative sums: the live 30-day window at the
label's time t holds (t - 30d, t]; without the events at t it holds
(t - 30d, t - 1], so its count is cum(<= t - 1) - cum(<= t - 30d), each a
backward as-of join. This shares no code or method with eddy's streaming
windows.

Usage: training_set_oracle.py RATINGS_CSV TRAINING_DIR [FROM_MS]
Compares the feature columns the training set has; with FROM_MS, only label
events at or after it are expected (a backfill with --from).
Exits 1 and prints the first mismatches if any value differs.
"""

import sys

import warnings

import polars as pl

# The frames are sorted by the as-of key as a whole, hence within each `by`
# group too; polars cannot verify that and warns.
warnings.filterwarnings("ignore", message="Sortedness")

DAY_MS = 86_400_000
WINDOW = 30 * DAY_MS


def main(ratings_csv: str, training_dir: str, from_ms: int | None) -> int:
    ratings = (
        pl.read_csv(ratings_csv)
        .with_columns(ts=pl.col("timestamp") * 1000)
        # The order the quickstart loader produces in (offsets within a time).
        .sort(["ts", "userId", "movieId"])
        .with_row_index("seq")
    )
    # Per user and distinct time: what the events at that time add.
    per_time = (
        ratings.group_by(["userId", "ts"])
        .agg(
            n=pl.len(),
            s=pl.col("rating").sum(),
            last=pl.col("rating").sort_by("seq").last(),
        )
        .sort(["userId", "ts"])
        .with_columns(
            cum_n=pl.col("n").cum_sum().over("userId"),
            cum_s=pl.col("s").cum_sum().over("userId"),
        )
        .sort("ts")
    )
    labels = ratings.select(
        user_id="userId", ts="ts", label=pl.col("rating") >= 4
    ).with_columns(q=pl.col("ts") - 1, q_lo=pl.col("ts") - WINDOW)
    labels = labels.sort("q")
    upto_q = labels.join_asof(
        per_time.select("userId", "ts", "cum_n", "cum_s", "last"),
        left_on="q",
        right_on="ts",
        by_left="user_id",
        by_right="userId",
        strategy="backward",
        allow_exact_matches=True,
        suffix="_q",
    ).sort("q_lo")
    both = upto_q.join_asof(
        per_time.select("userId", "ts", pl.col("cum_n").alias("lo_n"), pl.col("cum_s").alias("lo_s")),
        left_on="q_lo",
        right_on="ts",
        by_left="user_id",
        by_right="userId",
        strategy="backward",
        allow_exact_matches=True,
        suffix="_lo",
    )
    expected = both.select(
        "user_id",
        event_time_ms="ts",
        label="label",
        n_lifetime=pl.col("cum_n").fill_null(0),
        sum_lifetime=pl.col("cum_s").fill_null(0.0),
        mean_lifetime=pl.col("cum_s") / pl.col("cum_n"),
        last_rating_lifetime=pl.col("last"),
        n_30d=pl.col("cum_n").fill_null(0) - pl.col("lo_n").fill_null(0),
        sum_30d=pl.col("cum_s").fill_null(0.0) - pl.col("lo_s").fill_null(0.0),
    ).with_columns(
        mean_30d=pl.when(pl.col("n_30d") > 0).then(pl.col("sum_30d") / pl.col("n_30d"))
    )

    if from_ms is not None:
        expected = expected.filter(pl.col("event_time_ms") >= from_ms)
    got = pl.read_parquet(f"{training_dir}/*.parquet").with_columns(
        event_time_ms=pl.col("event_time").dt.epoch("ms")
    )
    if got.height != expected.height:
        print(f"row count: eddy wrote {got.height}, the oracle has {expected.height}")
        return 1
    # Several ratings of one user can share a time; their features are
    # equal (none sees the others), so match rows by (user, time, label,
    # rank among equal rows).
    key = ["user_id", "event_time_ms", "label"]
    got = got.sort(key).with_columns(k=pl.int_range(pl.len()).over(key))
    expected = expected.sort(key).with_columns(k=pl.int_range(pl.len()).over(key))
    joined = expected.join(got, on=key + ["k"], how="full", suffix="_eddy", coalesce=True)
    bad = 0
    features = [
        c
        for c in [
            "n_lifetime",
            "sum_lifetime",
            "mean_lifetime",
            "last_rating_lifetime",
            "n_30d",
            "sum_30d",
            "mean_30d",
        ]
        if c in got.columns
    ]
    if not features:
        print(f"no known feature column in {got.columns}")
        return 1
    for col in features:
        a, b = pl.col(col), pl.col(f"{col}_eddy")
        if joined.schema[col].is_float():
            same = (a.is_null() & b.is_null()) | ((a - b).abs() <= 1e-9 * (1 + a.abs()))
        else:
            same = (a.is_null() & b.is_null()) | (a == b)
        diff = joined.filter(~same.fill_null(False))
        if diff.height:
            bad += diff.height
            print(f"{col}: {diff.height} rows differ, e.g.")
            print(diff.select(key + [col, f"{col}_eddy"]).head(5))
    if bad:
        return 1
    print(
        f"{expected.height} training rows equal the polars join_asof oracle"
        f" ({len(features)} features)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None))
