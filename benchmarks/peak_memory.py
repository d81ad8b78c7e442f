"""Peak memory of explaining many rows in blocks, in a process of its own.

    python -m benchmarks.peak_memory [--model xgb-d8-500] [--rows 1000000]

The rows (50 float64 features) are generated in the process before the
measurement starts, so the reported peak is what a user who already has
the data in memory pays: the input, the value array, fastshap's tables and
whatever the explanation allocates besides. The peak is the process's
``VmHWM`` (peak resident set size) from ``/proc/self/status``. Prints one
JSON object and exits with status 1 when the peak exceeds ``--limit-gib``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import fastshap
from benchmarks import models
from benchmarks.measure import read_memory_bytes


def generate_rows(n_rows: int, block_rows: int = 100_000) -> np.ndarray:
    """Return ``n_rows`` benchmark rows, generated a block at a time to bound memory."""
    X = np.empty((n_rows, models.N_FEATURES))
    for start in range(0, n_rows, block_rows):
        stop = min(start + block_rows, n_rows)
        block, _ = models.make_data(stop - start, models.EXPLAIN_SEED + start)
        X[start:stop] = block
    return X


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="xgb-d8-500", choices=sorted(models.MODELS))
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to explain")
    parser.add_argument(
        "--limit-gib",
        type=float,
        default=4.0,
        help="fail when the peak resident memory exceeds this many GiB (default: 4)",
    )
    options = parser.parse_args(argv)

    model = models.load_model(options.model)
    X = generate_rows(options.rows)
    before = read_memory_bytes("VmRSS")

    started = time.perf_counter()
    explainer = fastshap.Explainer(model)
    prepared = time.perf_counter()
    explanation = explainer.explain(X)
    finished = time.perf_counter()

    peak = read_memory_bytes("VmHWM")
    result = {
        "model": options.model,
        "rows": options.rows,
        "features": X.shape[1],
        "input_mib": round(X.nbytes / 2**20, 1),
        "values_mib": round(explanation.values.nbytes / 2**20, 1),
        "tables_mib": round(explainer.tables.nbytes / 2**20, 1),
        "rss_before_mib": round(before / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "preparation_seconds": round(prepared - started, 2),
        "explain_seconds": round(finished - prepared, 2),
        "rows_per_second": round(options.rows / (finished - prepared)),
    }
    print(json.dumps(result, indent=2))
    return 0 if peak <= options.limit_gib * 2**30 else 1


if __name__ == "__main__":
    sys.exit(main())
