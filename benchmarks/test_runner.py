"""Smoke tests of the side-by-side runner: one in-process measurement and the report."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from benchmarks import measure, models, run

pytest.importorskip("xgboost")


def test_measure_tiny_fastshap(tmp_path):
    """One measurement of fastshap on a tiny model returns a complete result."""
    values_path = tmp_path / "values.npy"
    result = measure.measure(
        "xgb-d6-100",
        "fastshap",
        1,
        tiny=True,
        target_seconds=0.01,
        max_rows=64,
        repeats=2,
        values_path=values_path,
    )

    assert result["status"] == "ok", result
    assert 1 <= result["rows"] <= 64
    assert len(result["seconds"]) == 2
    assert result["prep_seconds"] >= 0
    if Path("/proc/self/clear_refs").exists():
        assert result["peak_rss_bytes"] is not None
    values = np.load(values_path)
    assert values.shape == (measure.ACCURACY_ROWS, models.N_FEATURES)


def test_choose_rows_stops_at_max_rows():
    """Row sizing never exceeds max_rows, even for a call that takes no time."""
    X = np.zeros((1000, 3))
    rows = measure.choose_rows(
        lambda block: block, X, target_seconds=10.0, max_rows=500
    )
    assert rows == 500


def fake_measurement(implementation, threads, rows_per_second, prep_seconds=0.0):
    return run.Measurement(
        "xgb-d6-100",
        implementation,
        threads,
        "ok",
        rows=1000,
        seconds=[1000 / rows_per_second, 1050 / rows_per_second],
        prep_seconds=prep_seconds,
        peak_rss_bytes=2**20,
    )


def test_report_ratios():
    """The report divides by the fastest other implementation of the same group."""
    measurements = [
        fake_measurement("fastshap", 1, 4000.0, prep_seconds=1.0),
        fake_measurement("xgboost", 1, 1000.0),
        fake_measurement("shap", 1, 2000.0),
        fake_measurement("fastshap", 2, 8000.0, prep_seconds=1.0),
        fake_measurement("xgboost", 2, 2000.0),
        run.Measurement(
            "rf-d12-100", "fastshap", 1, "not supported", note="not supported yet"
        ),
    ]
    options = argparse.Namespace(tiny=False)
    report = run.render_report(measurements, options)
    rows = {
        line.split(" | ")[2]: line
        for line in report.splitlines()
        if "| xgb-d6-100 | 1 |" in line
    }

    # fastshap against shap, the fastest of the others at one thread.
    assert "| 4,000 | 2.00 |" in rows["fastshap"]
    # 20,000 rows take 5 s plus 1 s of preparation.
    assert "| 3,333 |" in rows["fastshap"]
    assert "| 1,000 | 0.25 |" in rows["xgboost"]
    # shap runs on one thread and counts as a peer at two threads as well.
    assert "| xgb-d6-100 | 2 | fastshap | 8,000 | 4.00 |" in report
    # 20,000 rows take 2.5 s plus 1 s of preparation: 5,714 rows/s.
    assert "| xgb-d6-100 | 2 | 4.00 | 2.86 |" in report
    assert "| rf-d12-100 | 1 | fastshap | not supported yet |" in report
