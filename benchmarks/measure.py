"""Measure one implementation on one model, in a process of its own.

``benchmarks/run.py`` starts this module once per measurement::

    python -m benchmarks.measure MODEL IMPLEMENTATION THREADS RESULT_DIR [options]

A fresh process keeps one measurement's peak memory, thread pools and
library state out of the next. The parent sets the thread environment
variables (``OMP_NUM_THREADS``, ``NUMBA_NUM_THREADS``) before the libraries
start their pools. The result is ``RESULT_DIR/result.json`` (see
:func:`measure`) and the values of the first rows in ``RESULT_DIR/values.npy``,
which the parent compares across implementations.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks import models, peers

#: Rows explained by the warm-up call on the tiny model, which compiles or
#: loads fastshap's numba kernels before anything is timed.
WARMUP_ROWS = 16

#: Rows whose values are saved for the accuracy comparison.
ACCURACY_ROWS = 256

#: Rows of the first pilot call that sizes the measurement.
PILOT_ROWS = 16


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (Linux 4.0 and later).

    Returns False where ``/proc/self/clear_refs`` is missing or read-only,
    so no peak can be measured.
    """
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        return False
    return True


def read_memory_bytes(field: str) -> int:
    """Return a memory field of ``/proc/self/status``, such as ``VmHWM``, in bytes."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise KeyError(f"field {field!r} not found in /proc/self/status")


def time_call(explain: peers.ExplainFunction, X: NDArray[np.float64]) -> float:
    """Return the wall-clock seconds of one ``explain(X)`` call."""
    started = time.perf_counter()
    explain(X)
    return time.perf_counter() - started


def choose_rows(
    explain: peers.ExplainFunction,
    X: NDArray[np.float64],
    target_seconds: float,
    max_rows: int,
) -> int:
    """Return the row count whose call takes about ``target_seconds``.

    The count is at most ``max_rows``.

    Pilot calls grow fourfold from 16 rows until one takes a tenth of the
    target, then the count is scaled to the target. The pilots also warm up
    caches and thread pools on the full model.
    """
    rows = min(PILOT_ROWS, max_rows)
    while True:
        elapsed = time_call(explain, X[:rows])
        if rows >= max_rows:
            return max_rows
        if elapsed >= target_seconds / 10:
            scaled = int(rows * target_seconds / max(elapsed, 1e-9))
            return max(rows, min(max_rows, scaled))
        rows = min(max_rows, rows * 4)


def measure(
    model_name: str,
    implementation_name: str,
    threads: int,
    *,
    tiny: bool,
    target_seconds: float,
    max_rows: int,
    repeats: int,
    values_path: Path,
) -> dict[str, Any]:
    """Prepare, size, time and check one implementation on one model.

    Returns
    -------
    dict
        ``status`` is ``"ok"``, ``"not supported"`` or ``"failed"``, with a
        ``note``. An ``"ok"`` result also has ``rows`` (rows per timed
        call), ``seconds`` (one wall-clock time per repeat),
        ``prep_seconds`` and ``peak_rss_bytes``. The last is how far the
        peak resident set size grew from just before preparation to the
        end of the timed calls, or None where it cannot be measured.
    """
    implementation = peers.IMPLEMENTATIONS[implementation_name]
    model = models.load_model(model_name, tiny=tiny)
    X = models.explain_rows(max(max_rows, ACCURACY_ROWS))

    try:
        warmup_model = models.load_model(model_name, tiny=True)
        implementation.prepare(warmup_model, threads)(X[:WARMUP_ROWS])
    except peers.NotSupported as error:
        return {"status": "not supported", "note": str(error)}
    del warmup_model

    gc.collect()
    peak_measured = reset_peak_rss()
    baseline = read_memory_bytes("VmRSS") if peak_measured else 0

    started = time.perf_counter()
    explain = implementation.prepare(model, threads)
    prep_seconds = time.perf_counter() - started

    rows = choose_rows(explain, X, target_seconds, max_rows)
    seconds = [time_call(explain, X[:rows]) for _ in range(repeats)]
    peak = read_memory_bytes("VmHWM") - baseline if peak_measured else None

    values = explain(X[:ACCURACY_ROWS])
    np.save(values_path, np.asarray(values, dtype=np.float64))
    return {
        "status": "ok",
        "note": "",
        "rows": rows,
        "seconds": seconds,
        "prep_seconds": prep_seconds,
        "peak_rss_bytes": peak,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(models.MODELS))
    parser.add_argument("implementation", choices=sorted(peers.IMPLEMENTATIONS))
    parser.add_argument("threads", type=int)
    parser.add_argument("result_dir", type=Path)
    parser.add_argument(
        "--tiny", action="store_true", help="use the tiny model variant"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="target wall-clock seconds per timed call",
    )
    parser.add_argument(
        "--max-rows", type=int, default=20_000, help="maximum rows per timed call"
    )
    parser.add_argument("--repeats", type=int, default=3, help="number of timed calls")
    args = parser.parse_args(argv)

    try:
        result = measure(
            args.model,
            args.implementation,
            args.threads,
            tiny=args.tiny,
            target_seconds=args.seconds,
            max_rows=args.max_rows,
            repeats=args.repeats,
            values_path=args.result_dir / "values.npy",
        )
    except Exception as error:  # reported in the table instead of ending the run
        traceback.print_exc()
        result = {"status": "failed", "note": f"{type(error).__name__}: {error}"}
    (args.result_dir / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
