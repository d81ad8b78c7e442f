"""Side-by-side benchmark of path-dependent SHAP implementations.

Usage, from the repository root::

    python -m benchmarks.run [--models M ...] [--threads N ...] [--output FILE]

For every model and thread count it times each implementation of
``benchmarks.peers`` that applies to the model: fastshap, XGBoost's
``pred_contribs``, LightGBM's ``pred_contrib``, shap's C++ TreeSHAP and,
when ``fasttreeshap_fixed`` is installed, FastTreeSHAP v1 and v2. Each
measurement runs in a fresh process (``benchmarks/measure.py``), and the
runner prints a markdown table.
Each timed call explains enough fresh rows to take about ``--seconds``; the
best of ``--repeats`` calls counts. A measurement whose repeats spread by
more than 10 % is run again, up to twice, and the fastest run is kept.
Other processes on a shared machine distort the timings, so the runner
waits for an idle machine before each measurement, runs it again when other
processes used CPU time meanwhile, and notes a result that stayed disturbed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    # Run as a script (python benchmarks/run.py): make the package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import models, peers

logger = logging.getLogger("benchmarks.run")

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

#: Rows over which preparation time is amortised in the "incl. prep" column.
AMORTISED_ROWS = 20_000

#: Relative spread (slowest / fastest repeat - 1) above which a measurement
#: is run again.
NOISE_THRESHOLD = 0.10

#: Extra runs of a noisy measurement.
MAX_RERUNS = 2

#: Average cores used by other processes below which the machine counts as
#: idle, before and during a measurement.
IDLE_CORES = 0.25

#: Maximum seconds of one measurement before it is reported as failed.
MEASUREMENT_TIMEOUT_SECONDS = 1800

#: Implementation whose values the accuracy column compares against:
#: shap's C++ TreeSHAP, which computes in float64.
REFERENCE_IMPLEMENTATION = "shap"

#: Packages whose versions the report lists.
REPORTED_PACKAGES = (
    "fastshap",
    "numba",
    "numpy",
    "xgboost",
    "lightgbm",
    "scikit-learn",
    "shap",
    "fasttreeshap-fixed",
)


@dataclasses.dataclass
class Measurement:
    """The outcome of one implementation on one model at one thread count."""

    model: str
    implementation: str
    threads: int
    status: str
    note: str = ""
    rows: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)
    prep_seconds: float = 0.0
    peak_rss_bytes: int | None = None
    #: Average cores that other processes used while the child ran.
    other_load: float = 0.0
    #: Whether at least one run of this measurement looked undisturbed.
    steady: bool = False
    max_abs_difference: float | None = None
    values: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def rows_per_second(self) -> float:
        """Rows per second of the fastest repeat, preparation excluded."""
        return self.rows / min(self.seconds)

    @property
    def rows_per_second_with_prep(self) -> float:
        """Rows per second when preparation is paid once per 20,000 rows."""
        return AMORTISED_ROWS / (
            self.prep_seconds + AMORTISED_ROWS / self.rows_per_second
        )

    @property
    def spread(self) -> float:
        """Slowest repeat over the fastest, minus one."""
        return max(self.seconds) / min(self.seconds) - 1.0


# ---------------------------------------------------------------------------
# Running measurements
# ---------------------------------------------------------------------------


def busy_cpu_seconds() -> float | None:
    """Return the CPU seconds all cores have spent busy since boot, from /proc/stat.

    Returns None where /proc/stat is missing, so no load is checked.
    """
    try:
        with open("/proc/stat") as file:
            fields = file.readline().split()
    except OSError:
        return None
    # The fields are user, nice, system, idle, iowait, irq, softirq and
    # steal. Idle and iowait are not busy, and user already contains guest.
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """Return the CPU seconds of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until_idle(max_wait_seconds: float) -> bool:
    """Wait until other processes use under 0.25 cores, and return whether they did."""
    deadline = time.monotonic() + max_wait_seconds
    while True:
        start = busy_cpu_seconds()
        time.sleep(1.0)
        end = busy_cpu_seconds()
        if start is None or end is None:
            return True
        load = end - start
        if load < IDLE_CORES:
            return True
        if time.monotonic() >= deadline:
            logger.warning("other processes use %.1f cores; measuring anyway", load)
            return False
        logger.info("other processes use %.1f cores; waiting to measure", load)
        time.sleep(4.0)


def run_measurement(
    model_name: str, implementation: str, threads: int, options: argparse.Namespace
) -> Measurement:
    """Run ``benchmarks.measure`` in a child process with ``threads`` threads."""
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
        [str(REPOSITORY_ROOT)] + ([existing_path] if existing_path else [])
    )

    with tempfile.TemporaryDirectory(prefix="fastshap-bench-") as result_dir:
        command = [
            sys.executable,
            "-m",
            "benchmarks.measure",
            model_name,
            implementation,
            str(threads),
            result_dir,
            "--seconds",
            str(options.seconds),
            "--max-rows",
            str(options.rows),
            "--repeats",
            str(options.repeats),
        ]
        if options.tiny:
            command.append("--tiny")
        started = time.monotonic()
        busy_before = busy_cpu_seconds()
        children_before = children_cpu_seconds()
        try:
            completed = subprocess.run(
                command,
                cwd=REPOSITORY_ROOT,
                env=environment,
                capture_output=True,
                text=True,
                timeout=MEASUREMENT_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return Measurement(
                model_name,
                implementation,
                threads,
                "failed",
                note=f"timed out after {MEASUREMENT_TIMEOUT_SECONDS} s",
            )

        result_file = Path(result_dir) / "result.json"
        if not result_file.exists():
            error_lines = completed.stderr.strip().splitlines()
            last_line = error_lines[-1] if error_lines else "no output"
            return Measurement(
                model_name,
                implementation,
                threads,
                "failed",
                note=f"exit code {completed.returncode}: {last_line}",
            )
        result = json.loads(result_file.read_text())
        busy_after = busy_cpu_seconds()
        if busy_before is not None and busy_after is not None:
            # CPU time of the machine not spent by the measuring child.
            others = (busy_after - busy_before) - (
                children_cpu_seconds() - children_before
            )
            result["other_load"] = max(others, 0.0) / (time.monotonic() - started)
        if result["status"] == "failed":
            logger.warning(
                "%s on %s failed:\n%s", implementation, model_name, completed.stderr
            )
        values_file = Path(result_dir) / "values.npy"
        values = np.load(values_file) if values_file.exists() else None

    return Measurement(model_name, implementation, threads, values=values, **result)


def looks_disturbed(measurement: Measurement) -> bool:
    """Return whether the repeats spread or other processes competed for CPU."""
    return measurement.spread > NOISE_THRESHOLD or measurement.other_load > IDLE_CORES


def measure_with_reruns(
    model_name: str, implementation: str, threads: int, options: argparse.Namespace
) -> Measurement:
    """Measure, and measure again while the result looks disturbed.

    A result looks disturbed when its repeats spread by more than 10 % or
    other processes used more than 0.25 cores meanwhile. The fastest of
    at most three runs is kept.
    """
    best: Measurement | None = None
    steady = False
    for attempt in range(1 + MAX_RERUNS):
        wait_until_idle(options.idle_timeout)
        measurement = run_measurement(model_name, implementation, threads, options)
        if not measurement.ok:
            return measurement
        if best is None or measurement.rows_per_second > best.rows_per_second:
            best = measurement
        logger.info(
            "%s, %s, %d thread(s): %.0f rows/s over %d rows, spread %.0f %%, "
            "other processes %.2f cores",
            model_name,
            implementation,
            threads,
            measurement.rows_per_second,
            measurement.rows,
            100 * measurement.spread,
            measurement.other_load,
        )
        steady = steady or not looks_disturbed(measurement)
        if steady or options.repeats == 1:
            break
        if attempt < MAX_RERUNS:
            logger.info("measurement looks disturbed; measuring again")
    assert best is not None
    best.steady = steady
    if not steady and best.other_load > IDLE_CORES:
        best.note = f"other processes used {best.other_load:.1f} cores"
    return best


def planned_measurements(options: argparse.Namespace) -> list[tuple[str, str, int]]:
    """List (model, implementation, threads) in run order."""
    plan = []
    for model_name in options.models:
        library = models.MODELS[model_name].library
        for threads in options.threads:
            for name in options.implementations:
                implementation = peers.IMPLEMENTATIONS[name]
                if library not in implementation.libraries:
                    continue
                # shap's TreeSHAP ignores the thread count, so one run is enough.
                if not implementation.uses_threads and threads != min(options.threads):
                    continue
                plan.append((model_name, name, threads))
    return plan


def add_accuracy(measurements: list[Measurement]) -> None:
    """Set each measurement's largest |difference| from the reference values."""
    references: dict[str, np.ndarray] = {}
    for measurement in measurements:
        if measurement.implementation == REFERENCE_IMPLEMENTATION and measurement.ok:
            references.setdefault(measurement.model, measurement.values)
    for measurement in measurements:
        reference = references.get(measurement.model)
        if measurement.ok and reference is not None and measurement.values is not None:
            difference = np.abs(measurement.values - reference)
            measurement.max_abs_difference = float(difference.max())


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def machine_description() -> list[str]:
    """Describe the CPU, memory, Python and package versions, one item per line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{memory_kib / 2**20:.1f} GiB RAM"
    except OSError:
        memory = "RAM unknown"
    versions = []
    for package in REPORTED_PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical cores, {memory}",
        f"Python {platform.python_version()} on {platform.system()} "
        f"{platform.release()}",
        "Packages: " + ", ".join(versions),
        f"fastshap commit: {git_description()}",
    ]


def git_description() -> str:
    """Return ``git describe --always --dirty`` of the repository, or "unknown"."""
    try:
        completed = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip()


def format_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def results_table(measurements: list[Measurement]) -> str:
    """Render all measurements as a markdown table, grouped by model and threads."""
    header = (
        "| model | threads | implementation | rows/s | × fastest peer "
        f"| rows/s incl. prep ({AMORTISED_ROWS:,} rows) | prep (s) "
        "| peak RSS growth (MiB) | max abs diff vs shap | rows per call |"
    )
    lines = [header, "|" + "---|" * 10]
    for measurement in measurements:
        lines.append(table_row(measurement, measurements))
    return "\n".join(lines)


def table_row(measurement: Measurement, measurements: list[Measurement]) -> str:
    name = measurement.implementation
    if not peers.IMPLEMENTATIONS[name].uses_threads:
        name += " (1 thread)"
    cells = [measurement.model, str(measurement.threads), name]
    if not measurement.ok:
        return "| " + " | ".join(cells + [measurement.note] + ["–"] * 6) + " |"

    peer_rates = [
        other.rows_per_second
        for other in measurements
        if other.ok
        and other.model == measurement.model
        and other.implementation != measurement.implementation
        and (
            other.threads == measurement.threads
            or not peers.IMPLEMENTATIONS[other.implementation].uses_threads
        )
    ]
    ratio = "–"
    if peer_rates:
        ratio = f"{measurement.rows_per_second / max(peer_rates):.2f}"
    peak = "n/a"
    if measurement.peak_rss_bytes is not None:
        peak = f"{measurement.peak_rss_bytes / 2**20:,.0f}"
    difference = "–"
    if measurement.max_abs_difference is not None:
        difference = f"{measurement.max_abs_difference:.1e}"
    rate = format_rate(measurement.rows_per_second)
    if measurement.note:
        rate += f" ({measurement.note})"
    cells += [
        rate,
        ratio,
        format_rate(measurement.rows_per_second_with_prep),
        f"{measurement.prep_seconds:.2f}",
        peak,
        difference,
        f"{measurement.rows:,}",
    ]
    return "| " + " | ".join(cells) + " |"


def target_table(measurements: list[Measurement]) -> str:
    """Render fastshap's rows/s over XGBoost's pred_contribs, per model and threads."""
    lines = [
        "| model | threads | fastshap / XGBoost "
        f"| fastshap incl. prep ({AMORTISED_ROWS:,} rows) / XGBoost |",
        "|---|---|---|---|",
    ]
    found = {(m.model, m.implementation, m.threads): m for m in measurements if m.ok}
    for (model_name, implementation, threads), fastshap in found.items():
        if implementation != "fastshap":
            continue
        xgboost = found.get((model_name, "xgboost", threads))
        if xgboost is None:
            continue
        plain = fastshap.rows_per_second / xgboost.rows_per_second
        amortised = fastshap.rows_per_second_with_prep / xgboost.rows_per_second
        lines.append(f"| {model_name} | {threads} | {plain:.2f} | {amortised:.2f} |")
    return "\n".join(lines)


def noisy_notes(measurements: list[Measurement]) -> list[str]:
    """List the measurements that never ran undisturbed, as markdown items."""
    return [
        f"- {m.model}, {m.implementation}, {m.threads} thread(s): every run "
        f"looked disturbed, and the repeats of the fastest spread "
        f"{100 * m.spread:.0f} %."
        for m in measurements
        if m.ok and not m.steady and m.spread > NOISE_THRESHOLD
    ]


def render_report(measurements: list[Measurement], options: argparse.Namespace) -> str:
    parts = []
    if options.tiny:
        parts.append(
            "**--quick run on the tiny models: these numbers are no benchmark.**\n"
        )
    parts.append("\n".join(f"- {line}" for line in machine_description()))
    parts.append(results_table(measurements))
    parts.append(target_table(measurements))
    notes = noisy_notes(measurements)
    if notes:
        parts.append("\n".join(notes))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time path-dependent SHAP implementations side by side."
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(models.MODELS),
        default=list(models.MODELS),
        help="models to run (default: all)",
    )
    parser.add_argument(
        "--threads",
        nargs="+",
        type=int,
        default=[1, 2],
        help="thread counts to run (default: 1 2)",
    )
    parser.add_argument(
        "--implementations",
        nargs="+",
        choices=sorted(peers.IMPLEMENTATIONS),
        default=list(peers.IMPLEMENTATIONS),
        help="implementations to run (default: all)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=20_000,
        help="maximum rows per timed call (default: 20000)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="wall-clock seconds a timed call should take (default: 3)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed calls per measurement (default: 3)",
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
        help="check the runner end to end in a few minutes: tiny models, "
        "0.2 s calls, one repeat, at most 2000 rows",
    )
    parser.add_argument(
        "--output", type=Path, help="also write the report to this file"
    )
    options = parser.parse_args(argv)

    options.tiny = options.quick
    if options.quick:
        options.rows = min(options.rows, 2_000)
        options.seconds = 0.2
        options.repeats = 1
    if options.rows < 1 or options.repeats < 1 or options.seconds <= 0:
        parser.error("--rows and --repeats must be at least 1 and --seconds positive")
    if min(options.threads) < 1:
        parser.error(f"--threads must be at least 1; got {options.threads}")
    return options


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = parse_arguments(argv)

    # Train and cache every model first, so no measurement pays for training.
    for model_name in options.models:
        models.load_model(model_name, tiny=True)
        if not options.tiny:
            models.load_model(model_name)

    measurements = [
        measure_with_reruns(model_name, implementation, threads, options)
        for model_name, implementation, threads in planned_measurements(options)
    ]

    # Bursts of other work on a shared machine pass, so measurements that
    # stayed disturbed get a second chance at the end.
    for index, measurement in enumerate(measurements):
        if not measurement.ok or measurement.steady:
            continue
        logger.info(
            "measuring %s, %s, %d thread(s) again",
            measurement.model,
            measurement.implementation,
            measurement.threads,
        )
        again = measure_with_reruns(
            measurement.model, measurement.implementation, measurement.threads, options
        )
        if again.ok and again.rows_per_second > measurement.rows_per_second:
            measurements[index] = again
        elif again.ok and again.steady:
            measurement.steady = True
            measurement.note = ""
    add_accuracy(measurements)

    report = render_report(measurements, options)
    print(report)
    if options.output is not None:
        models.write_atomic(options.output, report.encode())
        logger.info("wrote %s", options.output)


if __name__ == "__main__":
    main()
