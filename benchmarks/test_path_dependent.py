"""pytest-benchmark: path-dependent SHAP values, fastshap against XGBoost.

With benchmarks disabled (the default ``addopts``), each test explains 64
rows of the tiny variant of its model (8 trees of the same depth, see
``benchmarks.models``) once, as a smoke test, and checks fastshap's values
against ``pred_contribs``. ``--benchmark-enable`` times the full models.
Preparation (fastshap's tables) is done before timing starts; the
side-by-side runner ``benchmarks/run.py`` also reports it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from benchmarks import models, peers

xgboost = pytest.importorskip("xgboost")

BENCHMARK_MODELS = ("xgb-d6-100", "xgb-d8-500")
THREADS = (1, 2)

#: Rows per timed call with benchmarks enabled. On one thread of a 2.6 GHz
#: Xeon virtual machine, XGBoost 3.4 takes about a second per call and
#: XGBoost 3.2 four to six seconds. 300 rows are too few for fastshap's
#: steady rate on xgb-d8-500, which ``benchmarks/run.py`` measures.
BENCHMARK_ROWS = {"xgb-d6-100": 5_000, "xgb-d8-500": 300}

#: Timed calls per test with benchmarks enabled, after one warm-up call.
ROUNDS = 5

#: Rows per call of the smoke run.
SMOKE_ROWS = 64

#: Leading rows of each result that are checked against ``pred_contribs``.
CHECKED_ROWS = 16

#: Float32 unit roundoff.
FLOAT32_ROUNDOFF = 2.0**-24


@functools.cache
def load_model(name: str, tiny: bool) -> Any:
    """Return a benchmark model, loaded once per test session."""
    return models.load_model(name, tiny=tiny)


def pred_contribs_tolerance(booster: Any, max_depth: int, values: np.ndarray) -> float:
    """Bound how far XGBoost's float32 ``pred_contribs`` may be from exact values.

    With ``u = 2**-24``, T trees of depth at most D and ``A`` the sum over
    trees of the largest |leaf value|: one tree's value of a feature is a
    weighted mean of differences of leaf expectations, so at most ``2 max
    |leaf|``, and all trees add up to at most ``2A``. XGBoost extends and
    unwinds each path in float32 at about 4 roundings per level, then adds T
    per-tree values in float32, so the error is at most about
    ``u (2A (T + 4D) + |value|)``.
    """
    trees = booster.trees_to_dataframe()
    leaves = trees[trees["Feature"] == "Leaf"]
    # trees_to_dataframe stores a leaf's value in its "Gain" column.
    largest_leaf_sum = leaves["Gain"].abs().groupby(leaves["Tree"]).max().sum()
    n_trees = booster.num_boosted_rounds()
    rounding = 2 * largest_leaf_sum * (n_trees + 4 * max_depth)
    return FLOAT32_ROUNDOFF * (rounding + np.abs(values).max())


def check_against_pred_contribs(booster: Any, max_depth: int, X, values) -> None:
    """Check the first rows of ``values`` against XGBoost's own SHAP values."""
    X = X[:CHECKED_ROWS]
    values = values[:CHECKED_ROWS]
    booster.set_param({"nthread": 1})
    contributions = booster.predict(xgboost.DMatrix(X), pred_contribs=True)
    expected = contributions[:, :-1].astype(np.float64)

    assert values.shape == expected.shape
    assert values.dtype == np.float64
    tolerance = pred_contribs_tolerance(booster, max_depth, expected)
    np.testing.assert_allclose(values, expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("threads", THREADS, ids=lambda n: f"{n}thread")
@pytest.mark.parametrize("model_name", BENCHMARK_MODELS)
@pytest.mark.parametrize("implementation", ["fastshap", "xgboost"])
def test_path_dependent(benchmark, implementation, model_name, threads):
    """Time one call that explains a block of rows, and check fastshap's values."""
    smoke = benchmark.disabled
    booster = load_model(model_name, smoke)
    n_rows = SMOKE_ROWS if smoke else BENCHMARK_ROWS[model_name]
    X = models.explain_rows(n_rows)

    explain = peers.IMPLEMENTATIONS[implementation].prepare(booster, threads)
    explain(X[:CHECKED_ROWS])  # compiles fastshap's kernels outside the timing

    benchmark.group = f"{model_name}, {threads} thread(s), {n_rows} rows"
    benchmark.extra_info["rows"] = n_rows
    values = benchmark.pedantic(explain, args=(X,), rounds=ROUNDS, warmup_rounds=1)

    assert values.shape == (n_rows, models.N_FEATURES)
    assert np.all(np.isfinite(values))
    if implementation == "fastshap":
        max_depth = models.MODELS[model_name].max_depth
        check_against_pred_contribs(booster, max_depth, X, values)
