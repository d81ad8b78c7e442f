"""Benchmark of interventional SHAP values and SHAP interaction values.

Usage, from the repository root, with Python 3.12 so that XGBoost 3.4 and
shap 0.54 are used::

    PYENV_VERSION=3.12.1 python3.12 -m benchmarks.interventional \\
        [--threads N ...] [--repeats R] [--output FILE] [--quick]

Every part uses the ``xgb-d6-100`` model of :mod:`benchmarks.models` (100
trees of depth 6, 50 features) and prints one markdown report:

1. Background scaling. ``fastshap.Explainer(model, background=B)`` and then
   ``.explain(X)`` on 10,000 rows, with 100 and with 10,000 background rows.
   The wall time includes preparation (the constructor, which summarises the
   background) and excludes numba compilation, because a warm-up call on the
   tiny model runs first in the same process. The target is that the
   10,000-row background takes at most twice as long as the 100-row one.
2. shap comparison. ``shap.TreeExplainer(model, background,
   feature_perturbation="interventional").shap_values`` on a sample of rows:
   200 rows against the 100-row background and 20 rows against the
   10,000-row one, because shap's cost per row grows with the number of
   background rows. shap's C++ runs on one thread, so fastshap's rate comes
   from part 1 at the lowest thread count. The target is a speed-up of at
   least 100 on the 10,000-row background.
3. Interaction values (path-dependent). ``explain(X, interactions=True)``
   against XGBoost's ``predict(DMatrix, pred_interactions=True)`` and shap's
   ``shap_interaction_values``, which calls XGBoost's for XGBoost models.
   fastshap builds its interaction tables in the first interactions call,
   which is timed apart from the rows/s. The target is at least twice
   XGBoost's rows/s at 2 threads.

Background rows are fresh rows of the benchmark distribution (seed 2), so
they are neither training rows nor explained rows. fastshap is called with
``check_additivity=False``, as in ``benchmarks/run.py``.

Each measurement runs in a fresh process of this module, started with
``--task``, with ``OMP_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` set to its
thread count. As in ``benchmarks/run.py``, the parent waits for an idle
machine before each measurement and runs it again, up to twice, when its
repeats spread by more than 10 % or other processes used more than 0.25
cores meanwhile. The fastest run is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

if __package__ in (None, ""):
    # Run as a script (python benchmarks/interventional.py): make the package
    # importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import measure, models, run

logger = logging.getLogger("benchmarks.interventional")

MODEL_NAME = "xgb-d6-100"

#: Seed of the background rows. Training rows use seed 0 and explained rows
#: seed 1 (see ``benchmarks.models``).
BACKGROUND_SEED = 2

#: Rows of the warm-up calls on the tiny model, which compile or load
#: fastshap's numba kernels before anything is timed.
WARMUP_ROWS = 16

#: Rows whose interaction values are compared across implementations.
ACCURACY_ROWS = 64

#: Largest t(largest background) / t(smallest background) that meets the
#: background scaling target.
MAX_BACKGROUND_RATIO = 2.0

#: Smallest fastshap / shap speed-up on the largest background that meets
#: the target.
MIN_SHAP_SPEEDUP = 100.0

#: Smallest fastshap / XGBoost interaction rows/s ratio that meets the target,
#: and the thread count at which it applies.
MIN_INTERACTION_SPEEDUP = 2.0
INTERACTION_TARGET_THREADS = 2

INTERACTION_IMPLEMENTATIONS = ("fastshap", "xgboost", "shap")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Row counts and timing settings of one run.

    Attributes
    ----------
    tiny : bool
        Use the tiny variant of the model (8 trees).
    explain_rows : int
        Rows explained per call in the background scaling part.
    background_rows : tuple of int
        Background sizes, smallest first.
    shap_rows : dict of int to int
        Rows that shap explains against each background size.
    interaction_seconds : float
        Wall-clock seconds that a timed interactions call should take.
    interaction_max_rows : int
        Maximum rows per timed interactions call.
    """

    tiny: bool
    explain_rows: int
    background_rows: tuple[int, ...]
    shap_rows: dict[int, int]
    interaction_seconds: float
    interaction_max_rows: int


FULL_SIZES = Sizes(
    tiny=False,
    explain_rows=10_000,
    background_rows=(100, 10_000),
    # On one thread of a 2.6 GHz Xeon, shap 0.54.1 explained about 250 rows/s
    # against 100 background rows and 2.6 rows/s against 10,000 (measured by
    # this script), so each sample takes under 10 s.
    shap_rows={100: 200, 10_000: 20},
    interaction_seconds=3.0,
    # 5,000 rows of 50 x 50 float64 interaction values are 95 MiB per call.
    interaction_max_rows=5_000,
)

QUICK_SIZES = Sizes(
    tiny=True,
    explain_rows=500,
    background_rows=(20, 500),
    shap_rows={20: 20, 500: 4},
    interaction_seconds=0.05,
    interaction_max_rows=200,
)


def background_rows(n_rows: int) -> NDArray[np.float64]:
    """Return ``n_rows`` background rows, the same ones on every call."""
    X, _ = models.make_data(n_rows, BACKGROUND_SEED)
    return X


# ---------------------------------------------------------------------------
# Measurements, each in a process of its own
# ---------------------------------------------------------------------------


def warm_up(threads: int, *, with_background: bool, interactions: bool) -> None:
    """Compile or load fastshap's numba kernels on the tiny model."""
    import fastshap

    tiny_model = models.load_model(MODEL_NAME, tiny=True)
    X = models.explain_rows(WARMUP_ROWS)
    background = background_rows(WARMUP_ROWS) if with_background else None
    explainer = fastshap.Explainer(tiny_model, background=background)
    explainer.explain(X, interactions=interactions, n_jobs=threads)


def measure_background(task: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    """Time Explainer construction plus explain on ``sizes.explain_rows`` rows.

    Returns ``seconds`` (the total of each repeat) and, per repeat,
    ``prep_seconds`` (``Explainer.preparation_seconds``) and
    ``explain_seconds`` (the ``explain`` call).
    """
    import fastshap

    threads = task["threads"]
    warm_up(threads, with_background=True, interactions=False)
    model = models.load_model(MODEL_NAME, tiny=sizes.tiny)
    X = models.explain_rows(sizes.explain_rows)
    background = background_rows(task["background_rows"])

    totals, prep_seconds, explain_seconds = [], [], []
    for _ in range(task["repeats"]):
        gc.collect()
        started = time.perf_counter()
        explainer = fastshap.Explainer(model, background=background)
        prepared = time.perf_counter()
        explainer.explain(X, n_jobs=threads, check_additivity=False)
        finished = time.perf_counter()
        totals.append(finished - started)
        prep_seconds.append(explainer.preparation_seconds)
        explain_seconds.append(finished - prepared)
        del explainer
    return {
        "rows": len(X),
        "seconds": totals,
        "prep_seconds": prep_seconds,
        "explain_seconds": explain_seconds,
    }


def measure_shap(task: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    """Time shap's interventional ``shap_values`` and compare it with fastshap.

    Returns ``seconds`` per repeat, ``prep_seconds`` (the ``TreeExplainer``
    constructor) and ``max_abs_difference`` from fastshap's values.
    """
    import shap

    import fastshap

    model = models.load_model(MODEL_NAME, tiny=sizes.tiny)
    background = background_rows(task["background_rows"])
    X = models.explain_rows(sizes.shap_rows[task["background_rows"]])

    # A plain array is subsampled to 100 rows by shap 0.54. An Independent
    # masker with max_samples set to the background size keeps every row.
    masker = shap.maskers.Independent(background, max_samples=len(background))
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Passing \d+ background samples", category=UserWarning
        )
        started = time.perf_counter()
        explainer = shap.TreeExplainer(
            model, masker, feature_perturbation="interventional"
        )
        prep_seconds = time.perf_counter() - started

    seconds = []
    for _ in range(task["repeats"]):
        started = time.perf_counter()
        shap_values = explainer.shap_values(X, check_additivity=False)
        seconds.append(time.perf_counter() - started)

    fastshap_values = (
        fastshap.Explainer(model, background=background).explain(X, n_jobs=1).values
    )
    difference = np.abs(np.asarray(shap_values, dtype=np.float64) - fastshap_values)
    return {
        "rows": len(X),
        "seconds": seconds,
        "prep_seconds": prep_seconds,
        "max_abs_difference": float(difference.max()),
    }


def prepare_interactions(
    implementation: str, model: Any, threads: int
) -> tuple[Callable[[NDArray[np.float64]], NDArray[np.float64]], float, float | None]:
    """Prepare one implementation of path-dependent interaction values.

    Returns the ``explain(X) -> values of shape (n, p, p)`` function, the
    preparation seconds and, for fastshap, the seconds of the first
    interactions call, which builds the interaction tables (None otherwise).
    """
    if implementation == "fastshap":
        import fastshap

        warm_up(threads, with_background=False, interactions=True)
        started = time.perf_counter()
        explainer = fastshap.Explainer(model)
        prep_seconds = time.perf_counter() - started
        first_row = models.explain_rows(1)
        started = time.perf_counter()
        explainer.explain(
            first_row, interactions=True, n_jobs=threads, check_additivity=False
        )
        table_seconds = time.perf_counter() - started

        def explain_fastshap(X: NDArray[np.float64]) -> NDArray[np.float64]:
            explanation = explainer.explain(
                X, interactions=True, n_jobs=threads, check_additivity=False
            )
            return explanation.interaction_values

        return explain_fastshap, prep_seconds, table_seconds

    if implementation == "xgboost":
        import xgboost

        def explain_xgboost(X: NDArray[np.float64]) -> NDArray[np.float64]:
            # Building the DMatrix is part of what a pred_interactions call costs.
            model.set_param({"nthread": threads})
            dmatrix = xgboost.DMatrix(X, nthread=threads)
            values = model.predict(dmatrix, pred_interactions=True)
            return values[:, :-1, :-1]

        return explain_xgboost, 0.0, None

    if implementation == "shap":
        import shap

        # shap 0.54 calls pred_interactions on this same Booster, so its
        # nthread parameter sets shap's thread count as well.
        model.set_param({"nthread": threads})
        started = time.perf_counter()
        explainer = shap.TreeExplainer(model)
        prep_seconds = time.perf_counter() - started

        def explain_shap(X: NDArray[np.float64]) -> NDArray[np.float64]:
            return explainer.shap_interaction_values(X)

        return explain_shap, prep_seconds, None

    raise ValueError(
        f"unknown interactions implementation {implementation!r}; expected one "
        f"of {INTERACTION_IMPLEMENTATIONS}"
    )


def measure_interactions(
    task: dict[str, Any], sizes: Sizes, values_path: Path
) -> dict[str, Any]:
    """Time one implementation of interaction values and save its first rows.

    Returns ``rows`` per timed call, ``seconds`` per repeat,
    ``prep_seconds`` and ``table_seconds`` (see :func:`prepare_interactions`).
    The values of the first 64 rows go to ``values_path``.
    """
    model = models.load_model(MODEL_NAME, tiny=sizes.tiny)
    X = models.explain_rows(max(sizes.interaction_max_rows, ACCURACY_ROWS))
    explain, prep_seconds, table_seconds = prepare_interactions(
        task["implementation"], model, task["threads"]
    )

    rows = measure.choose_rows(
        explain, X, sizes.interaction_seconds, sizes.interaction_max_rows
    )
    seconds = [measure.time_call(explain, X[:rows]) for _ in range(task["repeats"])]
    values = explain(X[:ACCURACY_ROWS])
    np.save(values_path, np.asarray(values, dtype=np.float64))
    return {
        "rows": rows,
        "seconds": seconds,
        "prep_seconds": prep_seconds,
        "table_seconds": table_seconds,
    }


def run_task(task: dict[str, Any], result_dir: Path) -> dict[str, Any]:
    """Run one measurement in this process and return its result."""
    sizes = QUICK_SIZES if task["quick"] else FULL_SIZES
    if task["kind"] == "background":
        return measure_background(task, sizes)
    if task["kind"] == "shap":
        return measure_shap(task, sizes)
    if task["kind"] == "interactions":
        return measure_interactions(task, sizes, result_dir / "values.npy")
    raise ValueError(
        f"unknown task kind {task['kind']!r}; expected background, shap or interactions"
    )


# ---------------------------------------------------------------------------
# Running the children
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Measurement:
    """The outcome of one task: its result, or why it failed."""

    task: dict[str, Any]
    status: str
    note: str = ""
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Average cores that other processes used while the child ran.
    other_load: float = 0.0
    #: Whether at least one run of this measurement looked undisturbed.
    steady: bool = False
    values: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def seconds(self) -> float:
        """Seconds of the fastest repeat."""
        return min(self.result["seconds"])

    @property
    def rows_per_second(self) -> float:
        """Rows per second of the fastest repeat."""
        return self.result["rows"] / self.seconds

    @property
    def spread(self) -> float:
        """Slowest repeat over the fastest, minus one."""
        return max(self.result["seconds"]) / self.seconds - 1.0

    def fastest_repeat(self, key: str) -> float:
        """Return ``result[key]`` of the repeat with the lowest total seconds."""
        index = int(np.argmin(self.result["seconds"]))
        return self.result[key][index]


def child_environment(threads: int) -> dict[str, str]:
    """Return the environment of a child: thread counts and the repository on the path."""
    environment = dict(os.environ)
    for variable in (
        "OMP_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
    ):
        environment[variable] = str(threads)
    existing_path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(run.REPOSITORY_ROOT)] + ([existing_path] if existing_path else [])
    )
    return environment


def run_child(task: dict[str, Any]) -> Measurement:
    """Run ``task`` in a child process and measure the load of other processes."""
    with tempfile.TemporaryDirectory(prefix="fastshap-bench-") as result_dir:
        command = [
            sys.executable,
            "-m",
            "benchmarks.interventional",
            "--task",
            json.dumps(task),
            "--result-dir",
            result_dir,
        ]
        started = time.monotonic()
        busy_before = run.busy_cpu_seconds()
        children_before = run.children_cpu_seconds()
        try:
            completed = subprocess.run(
                command,
                cwd=run.REPOSITORY_ROOT,
                env=child_environment(task["threads"]),
                capture_output=True,
                text=True,
                timeout=run.MEASUREMENT_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            note = f"timed out after {run.MEASUREMENT_TIMEOUT_SECONDS} s"
            return Measurement(task, "failed", note=note)

        busy_after = run.busy_cpu_seconds()
        other_load = 0.0
        if busy_before is not None and busy_after is not None:
            # CPU time of the machine not spent by the measuring child.
            others = (busy_after - busy_before) - (
                run.children_cpu_seconds() - children_before
            )
            other_load = max(others, 0.0) / (time.monotonic() - started)

        result_file = Path(result_dir) / "result.json"
        if not result_file.exists():
            error_lines = completed.stderr.strip().splitlines()
            last_line = error_lines[-1] if error_lines else "no output"
            note = f"exit code {completed.returncode}: {last_line}"
            return Measurement(task, "failed", note=note)
        outcome = json.loads(result_file.read_text())
        if outcome["status"] != "ok":
            logger.warning("task %s failed:\n%s", task, completed.stderr)
            return Measurement(task, "failed", note=outcome["note"])
        values_file = Path(result_dir) / "values.npy"
        values = np.load(values_file) if values_file.exists() else None

    return Measurement(
        task, "ok", result=outcome["result"], other_load=other_load, values=values
    )


def looks_disturbed(measurement: Measurement) -> bool:
    """Return whether the repeats spread or other processes competed for CPU."""
    return (
        measurement.spread > run.NOISE_THRESHOLD
        or measurement.other_load > run.IDLE_CORES
    )


def measure_with_reruns(
    task: dict[str, Any], options: argparse.Namespace
) -> Measurement:
    """Measure ``task``, and measure again while the result looks disturbed.

    The fastest of at most three runs is kept. A --quick run neither waits
    for an idle machine nor runs a measurement again.
    """
    best: Measurement | None = None
    steady = False
    for attempt in range(1 + run.MAX_RERUNS):
        if not options.quick:
            run.wait_until_idle(options.idle_timeout)
        measurement = run_child(task)
        if not measurement.ok:
            return measurement
        if best is None or measurement.rows_per_second > best.rows_per_second:
            best = measurement
        logger.info(
            "%s: %.1f rows/s over %d rows, spread %.0f %%, other processes %.2f cores",
            describe_task(task),
            measurement.rows_per_second,
            measurement.result["rows"],
            100 * measurement.spread,
            measurement.other_load,
        )
        steady = steady or not looks_disturbed(measurement)
        if steady or options.quick or options.repeats == 1:
            break
        if attempt < run.MAX_RERUNS:
            logger.info("measurement looks disturbed; measuring again")
    assert best is not None
    best.steady = steady
    if not steady and best.other_load > run.IDLE_CORES:
        best.note = f"other processes used {best.other_load:.1f} cores"
    return best


def describe_task(task: dict[str, Any]) -> str:
    if task["kind"] == "interactions":
        return f"{task['implementation']} interactions, {task['threads']} thread(s)"
    return (
        f"{task['kind']}, {task['background_rows']:,} background rows, "
        f"{task['threads']} thread(s)"
    )


def planned_tasks(options: argparse.Namespace) -> list[dict[str, Any]]:
    """List the tasks of a run in run order."""
    sizes = options.sizes
    common = {"quick": options.quick, "repeats": options.repeats}
    tasks = []
    for threads in options.threads:
        for n_background in sizes.background_rows:
            tasks.append(
                {
                    "kind": "background",
                    "threads": threads,
                    "background_rows": n_background,
                    **common,
                }
            )
    for n_background in sizes.background_rows:
        tasks.append(
            {"kind": "shap", "threads": 1, "background_rows": n_background, **common}
        )
    for threads in options.threads:
        for implementation in INTERACTION_IMPLEMENTATIONS:
            tasks.append(
                {
                    "kind": "interactions",
                    "threads": threads,
                    "implementation": implementation,
                    **common,
                }
            )
    return tasks


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def find(measurements: list[Measurement], **conditions: Any) -> Measurement | None:
    """Return the measurement whose task has every ``key=value`` of ``conditions``."""
    for measurement in measurements:
        if all(measurement.task.get(key) == value for key, value in conditions.items()):
            return measurement
    return None


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def failed_row(measurement: Measurement | None, leading: list[str], width: int) -> str:
    note = "not run" if measurement is None else f"failed: {measurement.note}"
    cells = leading + [note]
    cells += ["–"] * (width - len(cells))
    return "| " + " | ".join(cells) + " |"


def rate_cell(measurement: Measurement, rate: float) -> str:
    text = run.format_rate(rate)
    if measurement.note:
        text += f" ({measurement.note})"
    return text


def background_section(
    measurements: list[Measurement], options: argparse.Namespace
) -> str:
    sizes = options.sizes
    smallest, largest = sizes.background_rows[0], sizes.background_rows[-1]
    lines = [
        "## 1. Background scaling",
        "",
        f"`Explainer(model, background=B)` and then `.explain(X, n_jobs=threads)` "
        f"on {sizes.explain_rows:,} rows. *total* is both, from the repeat with "
        "the lowest total. Numba compilation happened before, in a warm-up call.",
        "",
        "| threads | background rows | prep (s) | explain (s) | total (s) "
        "| rows/s incl. prep | rows/s explain only |",
        "|---|---|---|---|---|---|---|",
    ]
    for threads in options.threads:
        for n_background in sizes.background_rows:
            measurement = find(
                measurements,
                kind="background",
                threads=threads,
                background_rows=n_background,
            )
            leading = [str(threads), f"{n_background:,}"]
            if measurement is None or not measurement.ok:
                lines.append(failed_row(measurement, leading, 7))
                continue
            prep = measurement.fastest_repeat("prep_seconds")
            explain = measurement.fastest_repeat("explain_seconds")
            rows = measurement.result["rows"]
            lines.append(
                "| "
                + " | ".join(
                    leading
                    + [
                        f"{prep:.3f}",
                        f"{explain:.3f}",
                        f"{measurement.seconds:.3f}",
                        rate_cell(measurement, measurement.rows_per_second),
                        run.format_rate(rows / explain),
                    ]
                )
                + " |"
            )

    lines += [
        "",
        f"| threads | total ({largest:,} background rows) / total ({smallest:,}) "
        f"| target ≤ {MAX_BACKGROUND_RATIO:g} |",
        "|---|---|---|",
    ]
    for threads in options.threads:
        small = find(
            measurements, kind="background", threads=threads, background_rows=smallest
        )
        large = find(
            measurements, kind="background", threads=threads, background_rows=largest
        )
        if small is None or large is None or not (small.ok and large.ok):
            lines.append(f"| {threads} | – | – |")
            continue
        ratio = large.seconds / small.seconds
        lines.append(
            f"| {threads} | {ratio:.2f} | {verdict(ratio <= MAX_BACKGROUND_RATIO)} |"
        )
    return "\n".join(lines)


def shap_section(measurements: list[Measurement], options: argparse.Namespace) -> str:
    sizes = options.sizes
    threads = min(options.threads)
    largest = sizes.background_rows[-1]
    lines = [
        "## 2. fastshap against shap, interventional",
        "",
        "shap: `TreeExplainer(model, Independent(B, max_samples=len(B)), "
        'feature_perturbation="interventional").shap_values(X, '
        "check_additivity=False)` on the rows shown, one thread. fastshap: part 1 "
        f"at {threads} thread(s), explaining {sizes.explain_rows:,} rows; "
        "*incl. prep* counts the Explainer construction. *max abs diff* compares "
        "the two on shap's rows.",
        "",
        "| background rows | shap rows | shap rows/s | shap prep (s) "
        "| fastshap rows/s explain only | fastshap rows/s incl. prep "
        "| speed-up explain only | speed-up incl. prep | max abs diff "
        f"| target ≥ {MIN_SHAP_SPEEDUP:g} on {largest:,} rows (incl. prep) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_background in sizes.background_rows:
        shap_measurement = find(measurements, kind="shap", background_rows=n_background)
        fastshap_measurement = find(
            measurements,
            kind="background",
            threads=threads,
            background_rows=n_background,
        )
        leading = [f"{n_background:,}"]
        if shap_measurement is None or not shap_measurement.ok:
            lines.append(failed_row(shap_measurement, leading, 10))
            continue
        shap_rate = shap_measurement.rows_per_second
        cells = leading + [
            str(shap_measurement.result["rows"]),
            rate_cell(shap_measurement, shap_rate),
            f"{shap_measurement.result['prep_seconds']:.3f}",
        ]
        if fastshap_measurement is None or not fastshap_measurement.ok:
            cells += ["–"] * 4
            target = "–"
        else:
            explain = fastshap_measurement.fastest_repeat("explain_seconds")
            explain_rate = fastshap_measurement.result["rows"] / explain
            total_rate = fastshap_measurement.rows_per_second
            speedup = total_rate / shap_rate
            cells += [
                run.format_rate(explain_rate),
                rate_cell(fastshap_measurement, total_rate),
                f"{explain_rate / shap_rate:,.0f}",
                f"{speedup:,.0f}",
            ]
            target = verdict(speedup >= MIN_SHAP_SPEEDUP)
            if n_background != largest:
                target = "–"
        cells += [f"{shap_measurement.result['max_abs_difference']:.1e}", target]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interaction_section(
    measurements: list[Measurement], options: argparse.Namespace
) -> str:
    amortised_rows = options.sizes.explain_rows
    lines = [
        "## 3. Interaction values, path-dependent",
        "",
        "fastshap: `Explainer(model)` (*prep*), then a first "
        "`explain(X[:1], interactions=True)` that builds the interaction tables "
        "(*tables*), then the timed `explain(X, interactions=True, "
        "check_additivity=False)` calls. XGBoost: `predict(DMatrix(X), "
        "pred_interactions=True)` with `nthread` set on the Booster, DMatrix "
        "included. shap: `TreeExplainer(model).shap_interaction_values(X)`, "
        "which calls the same XGBoost function. Calls are sized to about "
        f"{options.sizes.interaction_seconds:g} s; *max abs diff* compares the "
        f"first {ACCURACY_ROWS} rows with XGBoost's float32 values.",
        "",
        "| threads | implementation | rows/s | prep (s) | tables (s) "
        "| rows per call | max abs diff vs XGBoost |",
        "|---|---|---|---|---|---|---|",
    ]
    reference = next(
        (
            m.values
            for m in measurements
            if m.ok
            and m.task["kind"] == "interactions"
            and m.task["implementation"] == "xgboost"
            and m.values is not None
        ),
        None,
    )
    for threads in options.threads:
        for implementation in INTERACTION_IMPLEMENTATIONS:
            measurement = find(
                measurements,
                kind="interactions",
                threads=threads,
                implementation=implementation,
            )
            leading = [str(threads), implementation]
            if measurement is None or not measurement.ok:
                lines.append(failed_row(measurement, leading, 7))
                continue
            table_seconds = measurement.result["table_seconds"]
            difference = "–"
            if reference is not None and measurement.values is not None:
                difference = f"{np.abs(measurement.values - reference).max():.1e}"
            cells = leading + [
                rate_cell(measurement, measurement.rows_per_second),
                f"{measurement.result['prep_seconds']:.3f}",
                "–" if table_seconds is None else f"{table_seconds:.3f}",
                f"{measurement.result['rows']:,}",
                difference,
            ]
            lines.append("| " + " | ".join(cells) + " |")

    lines += [
        "",
        "| threads | fastshap / XGBoost | fastshap incl. prep and tables "
        f"({amortised_rows:,} rows) / XGBoost "
        f"| target ≥ {MIN_INTERACTION_SPEEDUP:g} at "
        f"{INTERACTION_TARGET_THREADS} threads |",
        "|---|---|---|---|",
    ]
    for threads in options.threads:
        fastshap = find(
            measurements,
            kind="interactions",
            threads=threads,
            implementation="fastshap",
        )
        xgboost = find(
            measurements, kind="interactions", threads=threads, implementation="xgboost"
        )
        if fastshap is None or xgboost is None or not (fastshap.ok and xgboost.ok):
            lines.append(f"| {threads} | – | – | – |")
            continue
        ratio = fastshap.rows_per_second / xgboost.rows_per_second
        setup = fastshap.result["prep_seconds"] + fastshap.result["table_seconds"]
        amortised_rate = amortised_rows / (
            setup + amortised_rows / fastshap.rows_per_second
        )
        target = "–"
        if threads == INTERACTION_TARGET_THREADS:
            target = verdict(ratio >= MIN_INTERACTION_SPEEDUP)
        lines.append(
            f"| {threads} | {ratio:.2f} | "
            f"{amortised_rate / xgboost.rows_per_second:.2f} | {target} |"
        )
    return "\n".join(lines)


def disturbed_notes(measurements: list[Measurement]) -> list[str]:
    """List the measurements that never ran undisturbed, as markdown items."""
    return [
        f"- {describe_task(m.task)}: every run looked disturbed; the fastest had "
        f"repeats that spread {100 * m.spread:.0f} % while other processes used "
        f"{m.other_load:.2f} cores."
        for m in measurements
        if m.ok and not m.steady
    ]


def render_report(
    measurements: list[Measurement],
    options: argparse.Namespace,
    command: str,
    commit_at_start: str,
) -> str:
    """Render the markdown report of a run.

    ``commit_at_start`` is :func:`benchmarks.run.git_description` before the
    first measurement. The report warns when it differs from the one at the
    end, or when either has uncommitted changes.
    """
    sizes = options.sizes
    spec = models.MODELS[MODEL_NAME]
    model_description = f"{MODEL_NAME} ({spec.n_trees} trees"
    if sizes.tiny:
        model_description = f"{MODEL_NAME}, tiny variant ({models.TINY_MAX_TREES} trees"
    model_description += (
        f" of max depth {spec.max_depth}, {models.N_FEATURES} features)"
    )

    parts = ["# Interventional SHAP values and interaction values"]
    if options.quick:
        parts.append(
            "**--quick run on the tiny model: these numbers are no benchmark.**"
        )
    header = [
        f"Command: `{command}`",
        f"Date: {datetime.date.today().isoformat()}",
        f"Model: {model_description}. Background rows are fresh rows of the "
        f"benchmark distribution (seed {BACKGROUND_SEED}), neither training nor "
        "explained rows.",
        f"Each measurement ran in a fresh process, and the fastest of its "
        f"{options.repeats} repeat(s) counts.",
    ]
    parts.append("\n".join(f"- {line}" for line in header + run.machine_description()))
    commit_at_end = run.git_description()
    if commit_at_start != commit_at_end:
        parts.append(
            f"**fastshap changed during this run**: `git describe --always --dirty` "
            f"was {commit_at_start} at the start and {commit_at_end} at the end, so "
            "the measurements may come from different versions."
        )
    elif commit_at_end.endswith("-dirty"):
        parts.append(
            "**fastshap had uncommitted changes**, which the commit above does not "
            "contain and which may have changed during the run."
        )

    parts.append(background_section(measurements, options))
    parts.append(shap_section(measurements, options))
    parts.append(interaction_section(measurements, options))
    notes = disturbed_notes(measurements)
    if notes:
        parts.append("Disturbed measurements:\n\n" + "\n".join(notes))
    return "\n\n".join(parts) + "\n"


def command_line(argv: list[str]) -> str:
    """Return the shell command that started this run, with PYENV_VERSION if set."""
    words = [Path(sys.executable).name, "-m", "benchmarks.interventional", *argv]
    prefix = ""
    if os.environ.get("PYENV_VERSION"):
        prefix = f"PYENV_VERSION={shlex.quote(os.environ['PYENV_VERSION'])} "
    return prefix + shlex.join(words)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time interventional SHAP values and interaction values."
    )
    parser.add_argument(
        "--threads",
        nargs="+",
        type=int,
        default=[1, 2],
        help="thread counts to run (default: 1 2)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed calls per measurement; the fastest counts (default: 3)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="maximum seconds to wait for an idle machine before each measurement "
        "(default: 300)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="check the benchmark end to end in under a minute: tiny model, "
        "500 explained rows, backgrounds of 20 and 500 rows, one repeat",
    )
    parser.add_argument(
        "--output", type=Path, help="also write the report to this file"
    )
    # A child process runs one measurement (see run_child).
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--result-dir", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)

    if options.quick:
        options.repeats = 1
    options.sizes = QUICK_SIZES if options.quick else FULL_SIZES
    if options.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {options.repeats}")
    if min(options.threads) < 1:
        parser.error(f"--threads must be at least 1; got {options.threads}")
    if (options.task is None) != (options.result_dir is None):
        parser.error("--task and --result-dir go together")
    return options


def child_main(task_json: str, result_dir: Path) -> None:
    """Run one task and write ``result_dir/result.json``, also when it fails."""
    try:
        outcome = {
            "status": "ok",
            "result": run_task(json.loads(task_json), result_dir),
        }
    except Exception as error:  # reported in the report instead of ending the run
        traceback.print_exc()
        outcome = {"status": "failed", "note": f"{type(error).__name__}: {error}"}
    (result_dir / "result.json").write_text(json.dumps(outcome))


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    options = parse_arguments(arguments)
    if options.task is not None:
        child_main(options.task, options.result_dir)
        return

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    commit_at_start = run.git_description()
    # Train and cache the models first, so no measurement pays for training.
    models.load_model(MODEL_NAME, tiny=True)
    if not options.quick:
        models.load_model(MODEL_NAME)

    measurements = [
        measure_with_reruns(task, options) for task in planned_tasks(options)
    ]
    report = render_report(
        measurements, options, command_line(arguments), commit_at_start
    )
    print(report)
    if options.output is not None:
        models.write_atomic(options.output, report.encode())
        logger.info("wrote %s", options.output)


if __name__ == "__main__":
    main()
