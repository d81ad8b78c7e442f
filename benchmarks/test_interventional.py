"""pytest-benchmark: interventional SHAP values and interaction values.

With benchmarks disabled (the default ``addopts``), each benchmark explains
64 rows of the tiny variant of ``xgb-d6-100`` (8 trees of depth 6) once, as a
smoke test, and checks the values against shap or XGBoost.
``--benchmark-enable`` times the full model. The last tests run each
measurement of ``benchmarks/interventional.py`` in this process at its
``--quick`` sizes and check the report's ratios on made-up results.
"""

from __future__ import annotations

import argparse
import functools
import warnings
from typing import Any

import numba
import numpy as np
import pytest

from benchmarks import interventional, models

xgboost = pytest.importorskip("xgboost")

MODEL_NAME = interventional.MODEL_NAME
THREADS = (1, 2)
BACKGROUND_ROWS = (100, 10_000)

#: Rows per timed call with benchmarks enabled. With 1 thread of a 2-core
#: 2.6 GHz Xeon, fastshap took about 0.8 s for preparation plus 10,000 rows
#: against 100 background rows (1.3 s against 10,000), and XGBoost 3.4.1
#: about 1.5 s for 2,000 rows of interaction values.
INTERVENTIONAL_ROWS = 10_000
INTERACTION_ROWS = 2_000

#: Timed calls per test with benchmarks enabled, after one warm-up call.
ROUNDS = 5

#: Rows per call of the smoke run.
SMOKE_ROWS = 64

#: Leading rows checked against shap's interventional values. shap 0.54.1
#: explained 2.6 rows/s against 10,000 background rows of the full model.
SHAP_CHECKED_ROWS = 4

#: Leading rows checked against XGBoost's interaction values.
XGBOOST_CHECKED_ROWS = 16

#: Largest allowed |fastshap - shap| for interventional values. An empirical
#: bound: on xgb-d6-100, shap 0.54.1 and fastshap differed by less than 1e-7.
SHAP_TOLERANCE = 1e-6

#: Largest allowed |fastshap - XGBoost| for interaction values, relative to
#: the largest |value|. XGBoost computes them in float32. An empirical bound:
#: on 1,000 rows of xgb-d6-100, XGBoost 3.4.1 differed from fastshap by at
#: most 1.2e-6 of the largest |value|.
INTERACTION_RELATIVE_TOLERANCE = 1e-5


@functools.cache
def load_model(name: str, tiny: bool) -> Any:
    """Return a benchmark model, loaded once per test session."""
    return models.load_model(name, tiny=tiny)


def check_against_shap(model: Any, background, X, values) -> None:
    """Check the first rows of ``values`` against shap's interventional values."""
    shap = pytest.importorskip("shap")
    X = X[:SHAP_CHECKED_ROWS]
    # Keep every background row: shap subsamples a plain array to 100 rows.
    masker = shap.maskers.Independent(background, max_samples=len(background))
    with warnings.catch_warnings():
        # shap warns that more than 1,000 background rows may be slow.
        warnings.filterwarnings(
            "ignore", message=r"Passing \d+ background samples", category=UserWarning
        )
        explainer = shap.TreeExplainer(
            model, masker, feature_perturbation="interventional"
        )
    expected = np.asarray(explainer.shap_values(X, check_additivity=False))

    assert values[:SHAP_CHECKED_ROWS].shape == expected.shape
    np.testing.assert_allclose(
        values[:SHAP_CHECKED_ROWS], expected, rtol=0, atol=SHAP_TOLERANCE
    )


@pytest.mark.parametrize("threads", THREADS, ids=lambda n: f"{n}thread")
@pytest.mark.parametrize("n_background", BACKGROUND_ROWS, ids=lambda n: f"{n}bg")
def test_interventional_explain(benchmark, n_background, threads):
    """Time preparation plus explanation, and check values against shap."""
    import fastshap

    smoke = benchmark.disabled
    model = load_model(MODEL_NAME, smoke)
    n_rows = SMOKE_ROWS if smoke else INTERVENTIONAL_ROWS
    X = models.explain_rows(n_rows)
    background = interventional.background_rows(n_background)
    interventional.warm_up(threads, with_background=True, interactions=False)

    def prepare_and_explain(rows):
        # What fastshap.explain does for 256 rows or more. For fewer, it skips
        # the tables, so the smoke run would time another code path.
        # Explainer takes no thread count, so it prepares on numba's current
        # thread count, which is set here.
        previous_threads = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            explainer = fastshap.Explainer(model, background=background)
            explanation = explainer.explain(
                rows, n_jobs=threads, check_additivity=False
            )
        finally:
            numba.set_num_threads(previous_threads)
        return explanation.values

    benchmark.group = (
        f"interventional, {n_background:,} background rows, {threads} thread(s), "
        f"{n_rows} rows, preparation included"
    )
    benchmark.extra_info["rows"] = n_rows
    values = benchmark.pedantic(
        prepare_and_explain, args=(X,), rounds=ROUNDS, warmup_rounds=1
    )

    assert values.shape == (n_rows, models.N_FEATURES)
    assert np.all(np.isfinite(values))
    check_against_shap(model, background, X, values)


def xgboost_interactions(booster: Any, X, threads: int) -> np.ndarray:
    """Return XGBoost's interaction values without the bias row and column."""
    booster.set_param({"nthread": threads})
    values = booster.predict(
        xgboost.DMatrix(X, nthread=threads), pred_interactions=True
    )
    return values[:, :-1, :-1].astype(np.float64)


@pytest.mark.parametrize("threads", THREADS, ids=lambda n: f"{n}thread")
@pytest.mark.parametrize("implementation", ["fastshap", "xgboost"])
def test_interaction_values(benchmark, implementation, threads):
    """Time interaction values, and check fastshap's against XGBoost's."""
    import fastshap

    smoke = benchmark.disabled
    booster = load_model(MODEL_NAME, smoke)
    n_rows = SMOKE_ROWS if smoke else INTERACTION_ROWS
    X = models.explain_rows(n_rows)

    if implementation == "fastshap":
        explainer = fastshap.Explainer(booster)

        def explain(rows):
            explanation = explainer.explain(
                rows, interactions=True, n_jobs=threads, check_additivity=False
            )
            return explanation.interaction_values

    else:

        def explain(rows):
            return xgboost_interactions(booster, rows, threads)

    # Compiles fastshap's kernels and builds its interaction tables outside
    # the timing.
    explain(X[:XGBOOST_CHECKED_ROWS])

    benchmark.group = f"interaction values, {threads} thread(s), {n_rows} rows"
    benchmark.extra_info["rows"] = n_rows
    values = benchmark.pedantic(explain, args=(X,), rounds=ROUNDS, warmup_rounds=1)

    shape = (n_rows, models.N_FEATURES, models.N_FEATURES)
    assert values.shape == shape
    assert np.all(np.isfinite(values))
    if implementation == "fastshap":
        checked = values[:XGBOOST_CHECKED_ROWS]
        expected = xgboost_interactions(booster, X[:XGBOOST_CHECKED_ROWS], 1)
        tolerance = INTERACTION_RELATIVE_TOLERANCE * max(1.0, np.abs(expected).max())
        np.testing.assert_allclose(checked, expected, rtol=0, atol=tolerance)


# ---------------------------------------------------------------------------
# benchmarks/interventional.py at its --quick sizes, in this process
# ---------------------------------------------------------------------------


def quick_task(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "threads": 1, "quick": True, "repeats": 2, **fields}


@pytest.mark.parametrize("n_background", interventional.QUICK_SIZES.background_rows)
def test_quick_background_task(tmp_path, n_background):
    """The background task times preparation and explanation of every repeat."""
    task = quick_task("background", background_rows=n_background)
    result = interventional.run_task(task, tmp_path)

    assert result["rows"] == interventional.QUICK_SIZES.explain_rows
    assert len(result["seconds"]) == 2
    assert len(result["prep_seconds"]) == 2
    assert len(result["explain_seconds"]) == 2
    for total, prep, explain in zip(
        result["seconds"], result["prep_seconds"], result["explain_seconds"]
    ):
        assert prep > 0
        assert explain > 0
        assert total >= prep + explain


def test_quick_shap_task(tmp_path):
    """The shap task times shap and finds it close to fastshap."""
    pytest.importorskip("shap")
    n_background = interventional.QUICK_SIZES.background_rows[-1]
    task = quick_task("shap", background_rows=n_background)
    result = interventional.run_task(task, tmp_path)

    assert result["rows"] == interventional.QUICK_SIZES.shap_rows[n_background]
    assert len(result["seconds"]) == 2
    assert result["prep_seconds"] >= 0
    assert result["max_abs_difference"] < SHAP_TOLERANCE


@pytest.mark.parametrize("implementation", interventional.INTERACTION_IMPLEMENTATIONS)
def test_quick_interactions_task(tmp_path, implementation):
    """The interactions task times calls and saves the first rows' values."""
    if implementation == "shap":
        pytest.importorskip("shap")
    task = quick_task("interactions", implementation=implementation)
    result = interventional.run_task(task, tmp_path)

    assert 1 <= result["rows"] <= interventional.QUICK_SIZES.interaction_max_rows
    assert len(result["seconds"]) == 2
    assert result["prep_seconds"] >= 0
    if implementation == "fastshap":
        assert result["table_seconds"] > 0
    else:
        assert result["table_seconds"] is None
    values = np.load(tmp_path / "values.npy")
    shape = (interventional.ACCURACY_ROWS, models.N_FEATURES, models.N_FEATURES)
    assert values.shape == shape


def fake_measurement(
    task: dict[str, Any], rows: int, seconds: float, **result: Any
) -> interventional.Measurement:
    return interventional.Measurement(
        task,
        "ok",
        result={"rows": rows, "seconds": [seconds, 1.05 * seconds], **result},
        steady=True,
    )


def test_report_ratios_and_targets():
    """The report divides the right measurements and judges each target."""
    background = [
        fake_measurement(
            {"kind": "background", "threads": 1, "background_rows": n_background},
            10_000,
            total,
            prep_seconds=[prep, prep],
            explain_seconds=[total - prep, total - prep],
        )
        for n_background, total, prep in ((100, 1.0, 0.1), (10_000, 2.5, 1.5))
    ]
    shap = [
        fake_measurement(
            {"kind": "shap", "threads": 1, "background_rows": 100},
            200,
            0.625,
            prep_seconds=0.01,
            max_abs_difference=1e-8,
        ),
        fake_measurement(
            {"kind": "shap", "threads": 1, "background_rows": 10_000},
            20,
            6.25,
            prep_seconds=0.01,
            max_abs_difference=2e-8,
        ),
    ]
    interactions = []
    for threads, fastshap_seconds in ((1, 1.0), (2, 0.6)):
        interactions += [
            fake_measurement(
                {
                    "kind": "interactions",
                    "threads": threads,
                    "implementation": "fastshap",
                },
                3_000,
                fastshap_seconds,
                prep_seconds=0.1,
                table_seconds=0.4,
            ),
            fake_measurement(
                {
                    "kind": "interactions",
                    "threads": threads,
                    "implementation": "xgboost",
                },
                1_000,
                1.0,
                prep_seconds=0.0,
                table_seconds=None,
            ),
            interventional.Measurement(
                {"kind": "interactions", "threads": threads, "implementation": "shap"},
                "failed",
                note="ImportError: no shap",
            ),
        ]
    options = argparse.Namespace(
        threads=[1, 2], repeats=2, quick=False, sizes=interventional.FULL_SIZES
    )
    report = interventional.render_report(
        background + shap + interactions,
        options,
        "python -m benchmarks.interventional",
        commit_at_start="0000000",
    )

    # 1 s of which 0.1 s preparation: 10,000 rows/s in all, 11,111 explaining.
    assert "| 1 | 100 | 0.100 | 0.900 | 1.000 | 10,000 | 11,111 |" in report
    # 2.5 s against 1 s misses the target of at most 2.
    assert "| 1 | 2.50 | **not met** |" in report
    # No 2-thread background measurement ran.
    assert "| 2 | 100 | not run |" in report
    # 10,000 rows in 2.5 s against shap's 3.2 rows/s: a speed-up of 1,250.
    shap_row = "| 10,000 | 20 | 3.2 | 0.010 | 10,000 | 4,000 | 3,125 | 1,250 "
    assert shap_row + "| 2.0e-08 | met |" in report
    # 3,000 rows/s, and 10,000 rows in 0.5 s of preparation and tables plus
    # 3.33 s: 2,609 rows/s, against XGBoost's 1,000.
    assert "| 1 | 3.00 | 2.61 | – |" in report
    # 5,000 rows/s against XGBoost's 1,000 at 2 threads meets the target of 2.
    assert "| 2 | 5.00 | 4.00 | met |" in report
    assert "| 2 | shap | failed: ImportError: no shap |" in report
    # No commit of this repository is described as 0000000.
    assert "**fastshap changed during this run**" in report
