"""Explain and rank millions of synthetic listeners on a local dask cluster.

    python -m benchmarks.scale [--rows 10000000] [--block-rows 100000]
                               [--workers 2] [--sample-rows 200000]

Steps, each timed:

1. Train an XGBoost regressor of 100 trees of depth 6 on 20,000 rows of
   :mod:`benchmarks.listeners`.
2. Single process: explain ``--sample-rows`` in-memory rows with
   ``Explainer.explain`` (all cores), after a warm-up call.
3. Start a ``LocalCluster`` of ``--workers`` worker processes with one
   thread each, on 127.0.0.1, and warm each worker up.
4. Generation only: compute the row count of the ``--rows`` listeners,
   generated block by block on the workers, to show the share of the time
   spent making data.
5. ``fastshap.rank(explainer, frame, by="tier")``: every row is generated,
   explained and reduced to per-tier sums on the workers, in one pass, so
   the full value matrix is never held.

Prints one JSON object with rows/s of each step, the ratio of the cluster's
rows/s to the single process's, and each worker's peak resident memory
(``VmHWM``, reset before step 5 where the kernel allows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import fastshap
from benchmarks import listeners

TRAIN_ROWS = 20_000
TRAIN_SEED = 0
SAMPLE_SEED = 500


def train_model() -> Any:
    """Train the benchmark's XGBoost model: 100 trees of depth 6 on 20,000 rows."""
    import xgboost as xgb

    data = listeners.make_block(TRAIN_ROWS, TRAIN_SEED)
    model = xgb.XGBRegressor(
        n_estimators=100, max_depth=6, learning_rate=0.1, random_state=0
    )
    model.fit(data[listeners.FEATURES], data[listeners.TARGET])
    return model


def reset_peak_memory() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS; return whether it worked.

    Writing 5 to ``/proc/self/clear_refs`` does this on Linux 4.0 and later.
    """
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        return False
    return True


def peak_memory_bytes() -> int:
    """Return this process's peak resident memory (``VmHWM``) in bytes."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmHWM not found in /proc/self/status")


def _row_count(frame: Any) -> int:
    return int(frame.map_partitions(len).sum().compute())


def single_process_rate(explainer: fastshap.Explainer, n_rows: int) -> float:
    """Return the rows/s of in-memory ``Explainer.explain`` on ``n_rows`` rows."""
    sample = listeners.make_block(n_rows, SAMPLE_SEED)[listeners.FEATURES]
    explainer.explain(sample.iloc[:1000])
    started = time.perf_counter()
    explainer.explain(sample)
    return n_rows / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict:
    """Run the five steps of the module docstring and return the measurements."""
    from distributed import Client, LocalCluster

    started = time.perf_counter()
    model = train_model()
    explainer = fastshap.Explainer(model)
    train_seconds = time.perf_counter() - started
    single_rate = single_process_rate(explainer, args.sample_rows)

    features = listeners.FEATURES
    frame = listeners.listeners_frame(args.rows, block_rows=args.block_rows)[features]
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        warm = listeners.listeners_frame(2_000 * args.workers, block_rows=2_000)
        warm = warm[features]
        fastshap.rank(explainer, warm, by="tier", n_jobs=args.task_threads)

        started = time.perf_counter()
        counted = _row_count(frame)
        generate_seconds = time.perf_counter() - started

        reset = client.run(reset_peak_memory)
        started = time.perf_counter()
        table = fastshap.rank(explainer, frame, by="tier", n_jobs=args.task_threads)
        rank_seconds = time.perf_counter() - started
        peaks = client.run(peak_memory_bytes)

    cluster_rate = args.rows / rank_seconds
    top = table[table["rank"] == 1][["segment", "feature", "mean_abs_shap"]]
    return {
        "rows": args.rows,
        "block_rows": args.block_rows,
        "workers": args.workers,
        "threads_per_worker": 1,
        "task_threads": args.task_threads,
        "cores": len(os.sched_getaffinity(0)),
        "train_seconds": round(train_seconds, 2),
        "single_process_rows_per_s": round(single_rate),
        "sample_rows": args.sample_rows,
        "generated_rows": counted,
        "generate_only_rows_per_s": round(args.rows / generate_seconds),
        "rank_seconds": round(rank_seconds, 2),
        "cluster_rows_per_s": round(cluster_rate),
        "cluster_to_single_process": round(cluster_rate / single_rate, 3),
        "peak_memory_mib_per_worker": {
            address: round(peak / 2**20, 1) for address, peak in peaks.items()
        },
        "peak_reset": all(reset.values()),
        "top_feature_per_tier": top.to_dict(orient="records"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="listeners to explain and rank"
    )
    parser.add_argument(
        "--block-rows", type=int, default=100_000, help="rows per dask partition"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes, one thread each"
    )
    parser.add_argument(
        "--sample-rows",
        type=int,
        default=200_000,
        help="rows of the single-process measurement",
    )
    parser.add_argument(
        "--task-threads",
        type=int,
        default=None,
        help=(
            "numba threads per task (default: fastshap's rule, the worker's "
            "cores divided by its threads)"
        ),
    )
    args = parser.parse_args(argv)
    json.dump(run(args), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
