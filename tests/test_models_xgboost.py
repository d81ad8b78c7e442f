"""fastshap on XGBoost models: loader round trip, pred_contribs and brute force.

Three references, from the strictest:

- Brute-force Shapley values (``reference.py``) of the loaded ensemble, to
  1e-9. They check the kernels on the exact trees XGBoost wrote.
- XGBoost's own ``output_margin`` and ``pred_contribs``. XGBoost computes
  them in float32, so they agree only to the bounds of
  :func:`margin_tolerance` and :func:`shap_tolerance`.
- fastshap's own raw prediction: values plus base value add up to it to
  1e-9 (relative to the margin's magnitude).
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest

import fastshap
import reference
from conftest import FLOAT32_ROUNDOFF, assert_shap_close

xgb = pytest.importorskip("xgboost")

XGBOOST_VERSION = tuple(int(part) for part in xgb.__version__.split(".")[:2])

#: Tolerance of the checks that involve only float64 arithmetic.
EXACT_ATOL = 1e-9

#: Rows explained by brute force per model (each costs 2**n_features
#: conditional expectations per tree).
BRUTE_FORCE_ROWS = 3


# ---------------------------------------------------------------------------
# Tolerances
# ---------------------------------------------------------------------------


def _leaf_magnitudes(ensemble) -> np.ndarray:
    """Return the largest |leaf value| of each tree."""
    nodes = ensemble.nodes
    largest = np.zeros(ensemble.n_trees)
    for tree in range(ensemble.n_trees):
        start, stop = ensemble.tree_offsets[tree], ensemble.tree_offsets[tree + 1]
        is_leaf = nodes.left[start:stop] < 0
        largest[tree] = np.abs(nodes.value[start:stop][is_leaf]).max()
    return largest


def margin_tolerance(ensemble, margin) -> float:
    """Bound the float32 rounding error of XGBoost's ``output_margin``.

    XGBoost adds the base score and T leaf values in float32. By the bound of
    recursive summation, the error is at most ``T u sum |terms|`` with
    ``u = 2**-24``, plus ``u |margin|`` for rounding the result.
    """
    n_terms = ensemble.n_trees + 1
    total = _leaf_magnitudes(ensemble).sum() + np.abs(ensemble.base_score).max()
    return FLOAT32_ROUNDOFF * (n_terms * total + np.abs(margin).max())


def shap_tolerance(ensemble, values) -> float:
    """Bound the float32 rounding error of XGBoost's ``pred_contribs``.

    With ``u = 2**-24``, T trees of depth at most D, and ``A`` the sum over
    trees of the largest |leaf value|:

    - One tree's SHAP value of a feature is a weighted mean (weights summing
      to 1) of differences of expected leaf values, so it is at most
      ``2 max|leaf|`` in magnitude, and the sum over trees at most ``2A``.
    - XGBoost's TreeSHAP extends and unwinds the path in float32 with about
      4 operations per level, so each tree's value carries a relative error
      of about ``4 D u``: ``4 D u 2A`` over all trees.
    - Adding T per-tree values in float32 errs by at most ``T u 2A``.
    - Rounding the result to float32 errs by ``u |value|``.

    The sum, ``2 u A (T + 4 D) + u |value|``, also bounds the bias column,
    which adds T recursive means of depth D. At depths above about 20 the
    divisions of XGBoost's float32 unwinding grow faster than this bound
    (see ``test_deep_tree_exact``), so it is used up to depth 16.
    """
    total = _leaf_magnitudes(ensemble).sum()
    depth = ensemble.max_depth
    rounding = 2 * total * (ensemble.n_trees + 4 * depth)
    return FLOAT32_ROUNDOFF * (rounding + np.abs(values).max())


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def xgboost_outputs(booster, X, *, missing=np.nan, categorical=False):
    """Return XGBoost's SHAP values, bias and margin in fastshap's layout.

    Values have shape (n_rows, n_features) for one output and (n_rows,
    n_features, n_outputs) for several, the bias shape (n_outputs,).
    """
    dmatrix = xgb.DMatrix(X, missing=missing, enable_categorical=categorical, nthread=1)
    contribs = booster.predict(dmatrix, pred_contribs=True).astype(np.float64)
    margin = booster.predict(dmatrix, output_margin=True).astype(np.float64)
    if contribs.ndim == 3:
        values = np.transpose(contribs[:, :, :-1], (0, 2, 1))
        bias = contribs[0, :, -1]
    else:
        values = contribs[:, :-1]
        bias = contribs[:1, -1]
    return values, bias, margin


def category_codes(frame: pd.DataFrame) -> np.ndarray:
    """Convert a DataFrame to floats, categorical columns to codes (NaN for missing)."""
    columns = []
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns)


def check_against_xgboost(
    model, X, *, missing=None, categorical=False, brute_force=True
):
    """Compare fastshap with XGBoost and brute force on one model.

    Checks the loader round trip (``predict_raw`` against ``output_margin``),
    values and base values against ``pred_contribs``, additivity against
    fastshap's own prediction, and brute force on the first rows.
    """
    booster = model if isinstance(model, xgb.Booster) else model.get_booster()
    if missing is None:
        missing = getattr(model, "missing", np.nan)
    explainer = fastshap.Explainer(
        model, missing=None if not isinstance(model, xgb.Booster) else missing
    )
    ensemble = explainer.ensemble
    expected, bias, margin = xgboost_outputs(
        booster, X, missing=missing, categorical=categorical
    )

    own_margin = explainer.predict_raw(X)
    np.testing.assert_allclose(
        own_margin.reshape(margin.shape), margin, rtol=0,
        atol=margin_tolerance(ensemble, margin), err_msg="predict_raw vs output_margin",
    )

    explanation = explainer.explain(X)
    assert_shap_close(
        explanation, expected, bias, margin,
        atol=shap_tolerance(ensemble, expected),
        additivity_atol=margin_tolerance(ensemble, margin) + shap_tolerance(ensemble, expected),
    )
    own = own_margin if explanation.values.ndim == 3 else own_margin[:, 0]
    total = explanation.values.sum(axis=1) + (
        explanation.base_values if explanation.values.ndim == 3
        else explanation.base_values[0]
    )
    np.testing.assert_allclose(
        total, own, rtol=0, atol=EXACT_ATOL * max(1.0, np.abs(own).max()),
        err_msg="additivity against fastshap's own prediction",
    )

    # The direct algorithm, without tables, must give the same values.
    direct = fastshap.Explainer(
        model, missing=None if not isinstance(model, xgb.Booster) else missing,
        memory_limit=0,
    )
    assert direct.tables.table.size == 0
    direct_explanation = direct.explain(X)
    assert_shap_close(
        direct_explanation, expected, bias, margin,
        atol=shap_tolerance(ensemble, expected),
        additivity_atol=margin_tolerance(ensemble, margin) + shap_tolerance(ensemble, expected),
    )
    np.testing.assert_allclose(
        direct_explanation.values, explanation.values, rtol=0,
        atol=EXACT_ATOL * max(1.0, np.abs(own).max()),
        err_msg="direct algorithm vs tables",
    )

    if brute_force:
        rows = X.iloc[:BRUTE_FORCE_ROWS] if isinstance(X, pd.DataFrame) else X[:BRUTE_FORCE_ROWS]
        check_against_brute_force(explainer, explanation, rows)
    return explainer, explanation


def check_against_brute_force(explainer, explanation, rows):
    """Compare the first rows of ``explanation`` with brute force, to 1e-9."""
    ensemble = explainer.ensemble
    numeric = category_codes(rows) if isinstance(rows, pd.DataFrame) else np.asarray(rows, dtype=np.float64)
    expected, expected_base = reference.brute_force_shap(ensemble, numeric)
    if ensemble.n_outputs == 1:
        expected = expected[:, :, 0]
    np.testing.assert_allclose(
        explanation.values[: len(rows)], expected, rtol=0, atol=EXACT_ATOL,
        err_msg="values vs brute force",
    )
    np.testing.assert_allclose(
        explanation.base_values, expected_base, rtol=0, atol=EXACT_ATOL,
        err_msg="base_values vs brute force",
    )


def make_rows(rng, n_rows: int, n_features: int, missing_fraction: float = 0.1):
    X = rng.normal(size=(n_rows, n_features))
    X[rng.random(X.shape) < missing_fraction] = np.nan
    return X


def make_target(rng, X, objective: str, n_classes: int = 3):
    """A target for ``objective`` that depends on several columns of ``X``."""
    Z = np.nan_to_num(X)
    signal = 1.5 * Z[:, 0] + Z[:, 1] ** 2 + np.sin(2 * Z[:, 2]) + 0.3 * rng.normal(size=len(Z))
    if objective in ("binary:logistic", "binary:logitraw", "binary:hinge"):
        return (signal > np.median(signal)).astype(int)
    if objective.startswith("multi:"):
        # Unbalanced classes give distinct per-class intercepts.
        edges = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1] ** 0.7)
        return np.digitize(signal, edges)
    if objective == "count:poisson":
        return rng.poisson(np.exp(signal / 3))
    if objective in ("reg:gamma", "reg:tweedie"):
        return np.exp(signal / 3) * rng.gamma(5.0, 0.2, size=len(Z))
    if objective == "reg:logistic":
        return 1 / (1 + np.exp(-signal))
    if objective == "survival:cox":
        return np.where(rng.random(len(Z)) < 0.8, 1, -1) * np.exp(signal / 3)
    return signal


def train_booster(rng, params: dict, n_trees: int, *, n_rows=200, n_features=6):
    """Train a Booster with one thread on fresh data; return it and the data."""
    X = make_rows(rng, n_rows, n_features)
    objective = params.get("objective", "reg:squarederror")
    params = {"nthread": 1, **params}
    if objective == "survival:aft":
        dtrain = xgb.DMatrix(X, nthread=1)
        lower = np.exp(np.nan_to_num(X[:, 0]) / 2)
        dtrain.set_float_info("label_lower_bound", lower)
        dtrain.set_float_info("label_upper_bound", lower * 1.5)
    elif "num_target" in params:
        target = np.column_stack(
            [make_target(rng, X, objective) for _ in range(params.pop("num_target"))]
        )
        dtrain = xgb.DMatrix(X, target, nthread=1)
    else:
        target = make_target(rng, X, objective, params.get("num_class", 3))
        dtrain = xgb.DMatrix(X, target, nthread=1)
    booster = xgb.train(params, dtrain, n_trees)
    return booster, X


# ---------------------------------------------------------------------------
# The grid: objectives, depths, tree counts, boosters
# ---------------------------------------------------------------------------

GRID = {
    "squarederror-depth1-1tree": ({"max_depth": 1}, 1),
    "squarederror-depth1-1tree": ({"max_depth": 1}, 1),
    "logistic-depth1-50trees": ({"objective": "binary:logistic", "max_depth": 1}, 50),
    "squarederror-depth2-3trees": ({"max_depth": 2}, 3),
    "squarederror-depth6-40trees": ({"max_depth": 6}, 40),
    "squarederror-depth12-15trees": (
        {"max_depth": 12, "min_child_weight": 0, "eta": 0.5}, 15,
    ),
    "squarederror-depth3-500trees": ({"max_depth": 3, "eta": 0.1}, 500),
    "logistic-depth4-30trees": ({"objective": "binary:logistic", "max_depth": 4}, 30),
    "logitraw-depth3-20trees": ({"objective": "binary:logitraw", "max_depth": 3}, 20),
    "hinge-depth3-10trees": ({"objective": "binary:hinge", "max_depth": 3}, 10),
    "softprob3-depth3-10trees": (
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, 10,
    ),
    "softprob5-depth5-20trees": (
        {"objective": "multi:softprob", "num_class": 5, "max_depth": 5}, 20,
    ),
    "softmax4-depth2-8trees": (
        {"objective": "multi:softmax", "num_class": 4, "max_depth": 2}, 8,
    ),
    "poisson-depth4-20trees": ({"objective": "count:poisson", "max_depth": 4}, 20),
    "gamma-depth4-20trees": ({"objective": "reg:gamma", "max_depth": 4}, 20),
    "tweedie-depth3-10trees": ({"objective": "reg:tweedie", "max_depth": 3}, 10),
    "reglogistic-depth3-10trees": ({"objective": "reg:logistic", "max_depth": 3}, 10),
    "absoluteerror-depth3-10trees": (
        {"objective": "reg:absoluteerror", "max_depth": 3}, 10,
    ),
    "quantiles2-depth3-10trees": (
        {"objective": "reg:quantileerror", "quantile_alpha": [0.2, 0.8], "max_depth": 3},
        10,
    ),
    "multitarget2-depth3-10trees": ({"num_target": 2, "max_depth": 3}, 10),
    "cox-depth3-10trees": ({"objective": "survival:cox", "max_depth": 3}, 10),
    "dart-depth3-20trees": (
        {"booster": "dart", "max_depth": 3, "rate_drop": 0.3, "skip_drop": 0.0}, 20,
    ),
    "dart-logistic-depth4-15trees": (
        {"booster": "dart", "objective": "binary:logistic", "max_depth": 4,
         "rate_drop": 0.5, "skip_drop": 0.0, "normalize_type": "forest"},
        15,
    ),
    "lossguide-32leaves-10trees": (
        {"tree_method": "hist", "grow_policy": "lossguide", "max_depth": 0,
         "max_leaves": 32},
        10,
    ),
    "forest3-softprob3-depth4-4trees": (
        {"objective": "multi:softprob", "num_class": 3, "num_parallel_tree": 3,
         "subsample": 0.7, "colsample_bynode": 0.7, "max_depth": 4},
        4,
    ),
}

#: survival:aft stores its base_score in output space: the margin intercept is
#: its log.
GRID_PARAMS = [pytest.param(*case, id=name) for name, case in GRID.items()] + [
    pytest.param(
        {"objective": "survival:aft", "max_depth": 3}, 10, id="aft-depth3-10trees"
    ),
]


def train_grid_booster(params: dict, n_trees: int):
    """Train one grid case, seeded by its parameters so each case is reproducible."""
    seed = zlib.crc32(json.dumps(params, sort_keys=True).encode())
    return train_booster(np.random.default_rng(seed), dict(params), n_trees)


@pytest.mark.parametrize(("params", "n_trees"), GRID_PARAMS)
def test_booster_grid(params, n_trees):
    booster, X = train_grid_booster(params, n_trees)

    check_against_xgboost(booster, X[:40])


def test_grid_reaches_depth_12():
    """The depth-12 case of the grid really has trees 12 levels deep."""
    booster, _ = train_grid_booster(*GRID["squarederror-depth12-15trees"])

    assert fastshap.load_model(booster).max_depth == 12


# ---------------------------------------------------------------------------
# Model kinds and files
# ---------------------------------------------------------------------------


def test_xgbregressor_dataframe(named_regression):
    model, frame = named_regression

    explainer, explanation = check_against_xgboost(model, frame.iloc[:40])

    assert explanation.feature_names == ["a", "b", "c", "d"]


def test_xgbclassifier_binary(rng):
    X = make_rows(rng, 300, 5)
    y = make_target(rng, X, "binary:logistic")
    model = xgb.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(X, y)

    _, explanation = check_against_xgboost(model, X[:40])

    assert explanation.values.shape == (40, 5)


def test_xgbclassifier_multiclass(multiclass_model):
    model, X = multiclass_model

    _, explanation = check_against_xgboost(model, X[:40])

    assert explanation.values.shape == (40, 4, 3)


def test_xgbrfclassifier(rng):
    X = make_rows(rng, 300, 5)
    y = make_target(rng, X, "multi:softprob")
    model = xgb.XGBRFClassifier(n_estimators=4, max_depth=4, n_jobs=1).fit(X, y)

    check_against_xgboost(model, X[:40])


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_model_file_path(suffix, tmp_path, rng):
    """A saved model explains exactly like the Booster it was saved from."""
    booster, X = train_booster(rng, {"objective": "multi:softprob", "num_class": 3,
                                     "max_depth": 4}, 6)
    path = tmp_path / f"model{suffix}"
    booster.save_model(str(path))

    from_path = fastshap.explain(path, X[:30])
    from_string = fastshap.explain(str(path), X[:30])
    from_booster = fastshap.explain(booster, X[:30])

    np.testing.assert_array_equal(from_path.values, from_booster.values)
    np.testing.assert_array_equal(from_path.base_values, from_booster.base_values)
    np.testing.assert_array_equal(from_string.values, from_booster.values)
    check_against_xgboost(booster, X[:30], brute_force=False)


def test_load_model_path_round_trip(tmp_path, rng):
    booster, X = train_booster(rng, {"max_depth": 4}, 5)
    path = tmp_path / "model.json"
    booster.save_model(str(path))

    ensemble = fastshap.load_model(path)

    assert isinstance(ensemble, fastshap.TreeEnsemble)
    assert ensemble.n_trees == 5
    assert ensemble.library == "xgboost"
    margin = booster.predict(xgb.DMatrix(X, nthread=1), output_margin=True)
    predicted = fastshap.Explainer(ensemble).predict_raw(X)[:, 0]
    np.testing.assert_allclose(predicted, margin, rtol=0, atol=margin_tolerance(ensemble, margin))
    np.testing.assert_allclose(
        predicted, reference.predict_raw(ensemble, X)[:, 0], rtol=0, atol=1e-12
    )


def test_early_stopping_best_iteration(rng):
    """An early-stopped XGBRegressor predicts with its best iteration only."""
    X = make_rows(rng, 400, 4)
    y = make_target(rng, X, "reg:squarederror") + rng.normal(scale=2.0, size=400)
    model = xgb.XGBRegressor(
        n_estimators=200, max_depth=4, learning_rate=0.5, early_stopping_rounds=3,
        n_jobs=1,
    ).fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])], verbose=False)
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds()

    explanation = fastshap.explain(model, X[:20])

    margin = model.predict(X[:20], output_margin=True)
    total = explanation.values.sum(axis=1) + explanation.base_values[0]
    np.testing.assert_allclose(total, margin, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------
# Base scores and expected values
# ---------------------------------------------------------------------------


@pytest.mark.skipif(
    XGBOOST_VERSION < (3, 1), reason="XGBoost stores one base_score per class from 3.1"
)
def test_vector_base_score_per_class(rng):
    """Each class's base value is its own intercept plus its trees' mean."""
    booster, X = train_booster(
        rng, {"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, 5
    )
    stored = json.loads(booster.save_config())["learner"]["learner_model_param"]
    intercepts = json.loads(stored["base_score"])
    ensemble = fastshap.load_model(booster)

    assert len(intercepts) == 3
    assert len(set(intercepts)) == 3
    np.testing.assert_array_equal(ensemble.base_score, intercepts)
    expected, bias, _ = xgboost_outputs(booster, X[:5])
    tolerance = shap_tolerance(ensemble, expected)
    explanation = fastshap.explain(booster, X[:5])
    for k in range(3):
        assert explanation.base_values[k] == pytest.approx(bias[k], abs=tolerance), k


def test_expected_value_at_construction(rng):
    """expected_value is final right after construction, one float per output."""
    X = make_rows(rng, 300, 3)
    y = make_target(rng, X, "binary:logistic")
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1).fit(X, y)
    expected, bias, _ = xgboost_outputs(model.get_booster(), X[:5])

    explainer = fastshap.Explainer(model)
    before = explainer.expected_value.copy()
    explainer.explain(X[:5])

    tolerance = shap_tolerance(explainer.ensemble, expected)
    assert isinstance(before, np.ndarray)
    assert before.shape == (1,)
    assert before.dtype == np.float64
    assert before[0] == pytest.approx(bias[0], abs=tolerance)
    np.testing.assert_array_equal(explainer.expected_value, before)


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
        {"booster": "dart", "max_depth": 3, "rate_drop": 0.3, "skip_drop": 0.0},
        {"objective": "count:poisson", "max_depth": 3},
    ],
    ids=["multiclass", "dart", "poisson"],
)
@pytest.mark.parametrize("source", ["booster", "file"])
def test_expected_value_fixed_before_explain(params, source, rng, tmp_path):
    """expected_value equals pred_contribs' bias before any explain call, and stays."""
    booster, X = train_booster(rng, params, 8)
    model = booster
    if source == "file":
        model = tmp_path / "model.json"
        booster.save_model(str(model))
    _, bias, _ = xgboost_outputs(booster, X[:5])

    explainer = fastshap.Explainer(model)
    before = explainer.expected_value.copy()
    explainer.explain(X[:5])

    assert before.shape == np.atleast_1d(bias).shape
    np.testing.assert_allclose(before, np.atleast_1d(bias), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(explainer.expected_value, before)


def test_expected_value_multiclass_shape(multiclass_model):
    model, X = multiclass_model
    expected, bias, _ = xgboost_outputs(model.get_booster(), X[:5])

    explainer = fastshap.Explainer(model)

    assert explainer.expected_value.shape == (3,)
    np.testing.assert_allclose(
        explainer.expected_value, bias, rtol=0,
        atol=shap_tolerance(explainer.ensemble, expected),
    )


# ---------------------------------------------------------------------------
# DART
# ---------------------------------------------------------------------------


def test_dart_tree_weights(rng):
    """Each DART tree's leaves are scaled by its weight_drop."""
    booster, X = train_booster(
        rng, {"booster": "dart", "max_depth": 3, "rate_drop": 0.3, "skip_drop": 0.0}, 20
    )
    model_json = json.loads(booster.save_raw(raw_format="json"))
    gradient_booster = model_json["learner"]["gradient_booster"]
    # XGBoost up to 3.3 saves a "dart" booster with weight_drop beside its
    # gbtree; 3.4 saves a "gbtree" booster with weight_drop inside the model.
    if "gbtree" in gradient_booster:
        model_part = gradient_booster["gbtree"]["model"]
    else:
        model_part = gradient_booster["model"]
    weights = np.asarray(gradient_booster.get("weight_drop", model_part.get("weight_drop")))
    trees = model_part["trees"]

    ensemble = fastshap.load_model(booster)

    assert not np.allclose(weights, 1.0)
    np.testing.assert_allclose(ensemble.tree_weights, weights, rtol=0, atol=0)
    for t, tree in enumerate(trees):
        start = ensemble.tree_offsets[t]
        leaves = ensemble.nodes.left[start:ensemble.tree_offsets[t + 1]] < 0
        stored = np.asarray(tree["split_conditions"], dtype=np.float32)
        stored = stored[np.asarray(tree["left_children"]) == -1].astype(np.float64)
        loaded = ensemble.nodes.value[start:ensemble.tree_offsets[t + 1], 0][leaves]
        np.testing.assert_allclose(np.sort(loaded), np.sort(stored * weights[t]), rtol=1e-15)
    check_against_xgboost(booster, X[:40])


# ---------------------------------------------------------------------------
# Float32 splits
# ---------------------------------------------------------------------------


def test_float32_strict_less_at_split(rng):
    """Rows go left only when float32(x) < split, as in XGBoost.

    x equal to the split, and the float64 just below it (which rounds to the
    split in float32), both go right; the float32 just below goes left.
    """
    X = rng.normal(size=(400, 3))
    y = 3.0 * (X[:, 0] > 0.25) + X[:, 1]
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, y, nthread=1), 3)
    tree = json.loads(booster.save_raw(raw_format="json"))["learner"][
        "gradient_booster"]["model"]["trees"][0]
    feature = tree["split_indices"][0]
    split = np.float32(tree["split_conditions"][0])
    rows = np.zeros((4, 3))
    rows[:, feature] = [
        float(split),
        np.nextafter(float(split), -np.inf),
        float(np.nextafter(split, np.float32(-np.inf))),
        np.nextafter(float(split), np.inf),
    ]
    ensemble = fastshap.load_model(booster)

    assert ensemble.nodes.threshold[0] == float(split)
    assert np.float32(rows[1, feature]) == split
    _, _, margin = xgboost_outputs(booster, rows)
    tolerance = margin_tolerance(ensemble, margin)
    assert abs(margin[0] - margin[2]) > 100 * tolerance
    predicted = fastshap.Explainer(booster).predict_raw(rows)[:, 0]
    assert predicted[0] == predicted[1]
    assert predicted[0] == predicted[3]
    np.testing.assert_allclose(predicted, margin, rtol=0, atol=tolerance)
    check_against_xgboost(booster, rows)


# ---------------------------------------------------------------------------
# Deep trees
# ---------------------------------------------------------------------------


def _sparse_binary(rng, n_rows, n_features, density):
    return (rng.random((n_rows, n_features)) < density).astype(np.float64)


def test_deep_tree_exact(rng):
    """Trees about 80 deep on sparse 0/1 data: exact to 1e-9.

    Unregularised lossguide growth isolates small groups of rows one feature
    at a time, so paths get very deep. XGBoost's float32 pred_contribs is far
    off at this depth, so the reference is the per-leaf product game.
    """
    X = _sparse_binary(rng, 1000, 100, 0.05)
    y = rng.integers(0, 2, 1000)
    params = {
        "objective": "binary:logistic", "tree_method": "hist", "max_depth": 0,
        "grow_policy": "lossguide", "max_leaves": 400, "min_child_weight": 0,
        "reg_lambda": 0, "eta": 1, "max_bin": 2, "nthread": 1,
    }
    booster = xgb.train(params, xgb.DMatrix(X, y, nthread=1), 1)
    explainer = fastshap.Explainer(booster)
    rows = X[:2]

    assert explainer.ensemble.max_depth >= 60
    explanation = explainer.explain(rows)
    expected, expected_base = reference.product_game_shap(explainer.ensemble, rows)
    own_margin = explainer.predict_raw(rows)[:, 0]
    assert_shap_close(explanation, expected[:, :, 0], expected_base, own_margin)
    _, _, margin = xgboost_outputs(booster, rows)
    np.testing.assert_allclose(
        own_margin, margin, rtol=0, atol=margin_tolerance(explainer.ensemble, margin)
    )


def test_deep_tree_pred_contribs(rng):
    """max_depth=16 on sparse 0/1 data: pred_contribs within float32 rounding."""
    X = _sparse_binary(rng, 1000, 100, 0.05)
    y = rng.integers(0, 2, 1000)
    params = {
        "objective": "binary:logistic", "tree_method": "hist", "max_depth": 16,
        "min_child_weight": 0, "eta": 1, "max_bin": 2, "nthread": 1,
    }
    booster = xgb.train(params, xgb.DMatrix(X, y, nthread=1), 3)

    explainer, _ = check_against_xgboost(booster, X[:30], brute_force=False)

    assert explainer.ensemble.max_depth == 16


# ---------------------------------------------------------------------------
# Zero covers
# ---------------------------------------------------------------------------


def _zero_leaf_cover(model_json: dict, tree_index: int, leaf_number: int) -> None:
    """Set a leaf's sum_hessian to 0 and take its old cover off every ancestor."""
    tree = model_json["learner"]["gradient_booster"]["model"]["trees"][tree_index]
    leaves = [n for n, child in enumerate(tree["left_children"]) if child == -1]
    node = leaves[leaf_number]
    removed = tree["sum_hessian"][node]
    while True:
        tree["sum_hessian"][node] -= removed
        if node == 0:
            break
        node = tree["parents"][node]


def _booster_from_json(model_json: dict):
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(model_json).encode()))
    booster.set_param({"nthread": 1})
    return booster


@pytest.mark.parametrize("leaf_number", [0, 1])
def test_zero_cover_leaf(leaf_number, rng):
    """A leaf with zero sum_hessian, as XGBoost can write it, stays finite and exact."""
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + 2 * (X[:, 1] > 0)
    trained = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, y, nthread=1), 3)
    model_json = json.loads(trained.save_raw(raw_format="json"))
    _zero_leaf_cover(model_json, 0, leaf_number)
    booster = _booster_from_json(model_json)

    explainer, _ = check_against_xgboost(booster, X[:20])

    assert np.any(explainer.ensemble.nodes.cover == 0)


def test_zero_cover_subtree(rng):
    """A split whose whole subtree has zero cover.

    XGBoost's own pred_contribs rejects this model (a NaN path weight fails
    one of its checks), so the references are brute force and XGBoost's
    margin.
    """
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + 2 * (X[:, 1] > 0)
    trained = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(X, y, nthread=1), 2)
    model_json = json.loads(trained.save_raw(raw_format="json"))
    tree = model_json["learner"]["gradient_booster"]["model"]["trees"][0]
    left = tree["left_children"][0]
    removed = tree["sum_hessian"][left]
    stack = [left]
    while stack:
        node = stack.pop()
        tree["sum_hessian"][node] = 0.0
        if tree["left_children"][node] != -1:
            stack.extend([tree["left_children"][node], tree["right_children"][node]])
    tree["sum_hessian"][0] -= removed
    booster = _booster_from_json(model_json)
    explainer = fastshap.Explainer(booster)
    rows = X[:20]

    internal = explainer.ensemble.nodes.left >= 0
    assert np.any(explainer.ensemble.nodes.cover[internal] == 0)
    expected, expected_base = reference.brute_force_shap(explainer.ensemble, rows)
    own_margin = explainer.predict_raw(rows)[:, 0]
    assert_shap_close(explainer.explain(rows), expected[:, :, 0], expected_base, own_margin)
    margin = booster.predict(xgb.DMatrix(rows, nthread=1), output_margin=True)
    np.testing.assert_allclose(
        own_margin, margin, rtol=0, atol=margin_tolerance(explainer.ensemble, margin)
    )


# ---------------------------------------------------------------------------
# Missing values
# ---------------------------------------------------------------------------

MISSING_VALUES = [-999.0, 0.3, 1e-8]


def _rows_with_sentinel(rng, missing):
    X = rng.normal(size=(400, 4)).round(2)
    X[rng.random(X.shape) < 0.2] = missing
    X[rng.random(X.shape) < 0.05] = np.nan
    Z = np.where(np.isnan(X) | (X == missing), 0.0, X)
    y = np.where(X[:, 0] == missing, 4.0, Z[:, 0]) + Z[:, 1]
    return X, y


@pytest.mark.parametrize("missing", MISSING_VALUES)
def test_custom_missing_sklearn(missing, rng):
    """XGBRegressor(missing=m): values equal to m and NaN are both missing."""
    X, y = _rows_with_sentinel(rng, missing)
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, missing=missing, n_jobs=1)
    model.fit(X, y)

    explainer, _ = check_against_xgboost(model, X[:40])

    assert explainer.ensemble.missing == float(np.float32(missing))


@pytest.mark.parametrize("missing", MISSING_VALUES)
def test_custom_missing_near_sentinel(missing, rng):
    """A float64 that rounds to float32(m) is missing too, as in XGBoost."""
    X, y = _rows_with_sentinel(rng, missing)
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3, missing=missing, n_jobs=1)
    model.fit(X, y)
    near = X[:40].copy()
    near[near == missing] = np.nextafter(missing, np.inf)

    assert np.any(np.float32(near) == np.float32(missing))
    check_against_xgboost(model, near)


@pytest.mark.parametrize("missing", MISSING_VALUES)
def test_custom_missing_booster(missing, rng):
    """A Booster explained with ``missing=m`` matches DMatrix(missing=m)."""
    X, y = _rows_with_sentinel(rng, missing)
    booster = xgb.train({"max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, y, missing=missing, nthread=1), 10)

    check_against_xgboost(booster, X[:40], missing=missing)


@pytest.mark.parametrize("missing", [-999.0, 0.3, 1e-8])
def test_custom_missing_ensemble(missing, rng):
    """explain(ensemble, X, missing=m) on a loaded ensemble matches XGBoost."""
    X, y = _rows_with_sentinel(rng, missing)
    booster = xgb.train({"max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, y, missing=missing, nthread=1), 10)
    ensemble = fastshap.load_model(booster)
    expected, bias, margin = xgboost_outputs(booster, X[:40], missing=missing)

    explanation = fastshap.explain(ensemble, X[:40], missing=missing)

    tolerance = shap_tolerance(ensemble, expected)
    assert_shap_close(explanation, expected, bias, margin,
                      atol=tolerance, additivity_atol=tolerance + margin_tolerance(ensemble, margin))


# ---------------------------------------------------------------------------
# Single-leaf trees
# ---------------------------------------------------------------------------


def test_single_leaf_trees(rng):
    """Trees pruned to one leaf (large gamma) mixed with normal trees."""
    X = make_rows(rng, 300, 4)
    y = make_target(rng, X, "reg:squarederror") + 5.0
    params = {"max_depth": 3, "gamma": 1e6, "base_score": 0.0, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(X, y, nthread=1), 3)
    booster = xgb.train({**params, "gamma": 0.0}, xgb.DMatrix(X, y, nthread=1), 3,
                        xgb_model=booster)

    explainer, _ = check_against_xgboost(booster, X[:40])

    sizes = np.diff(explainer.ensemble.tree_offsets)
    assert np.all(sizes[:3] == 1)
    assert np.all(sizes[3:] > 1)


def test_constant_target(rng):
    """A constant target gives only single-leaf trees and all-zero values."""
    X = make_rows(rng, 200, 3)
    booster = xgb.train({"max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, np.full(200, 3.0), nthread=1), 3)

    _, explanation = check_against_xgboost(booster, X[:20])

    assert np.all(explanation.values == 0.0)


# ---------------------------------------------------------------------------
# DataFrames and categories
# ---------------------------------------------------------------------------


def test_dataframe_column_order(named_regression):
    """Permuted DataFrame columns give the same value for each column name."""
    model, frame = named_regression
    aligned = frame.iloc[:20]
    permuted = aligned[["c", "a", "d", "b"]]
    expected, bias, margin = xgboost_outputs(model.get_booster(), aligned)

    explanation = fastshap.explain(model, permuted)

    assert explanation.feature_names == ["c", "a", "d", "b"]
    order = [aligned.columns.get_loc(name) for name in permuted.columns]
    tolerance = shap_tolerance(fastshap.load_model(model), expected)
    np.testing.assert_allclose(explanation.values, expected[:, order], rtol=0, atol=tolerance)
    # Column "a" carries the largest effect wherever it is placed.
    assert np.abs(explanation.values).mean(axis=0).argmax() == permuted.columns.get_loc("a")
    aligned_values = fastshap.explain(model, aligned).values
    np.testing.assert_array_equal(explanation.values, aligned_values[:, order])


def test_column_order_multiclass(multiclass_model):
    """Permuted columns of a multi-class model keep each column's values on every class."""
    _, X = multiclass_model
    frame = pd.DataFrame(X, columns=["w", "x", "y", "z"])
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1).fit(frame, y)
    frame = frame.iloc[:20]
    permuted = frame[["z", "x", "w", "y"]]

    aligned = fastshap.explain(model, frame)
    explanation = fastshap.explain(model, permuted)

    assert explanation.values.ndim == 3
    assert explanation.feature_names == list(permuted.columns)
    order = [frame.columns.get_loc(name) for name in permuted.columns]
    np.testing.assert_array_equal(explanation.values, aligned.values[:, order, :])


def test_column_order_categorical(categorical_model):
    """Permuted columns of a categorical model match pred_contribs per column name."""
    model, frame = categorical_model
    rows = frame.iloc[:30]
    permuted = rows[["num2", "cat", "num"]]
    expected, _, _ = xgboost_outputs(model.get_booster(), rows, categorical=True)

    explanation = fastshap.explain(model, permuted)

    order = [rows.columns.get_loc(name) for name in permuted.columns]
    tolerance = shap_tolerance(fastshap.load_model(model), expected)
    np.testing.assert_allclose(explanation.values, expected[:, order], rtol=0, atol=tolerance)


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_categorical_model_file(suffix, categorical_model, tmp_path):
    """A categorical model saved to a file explains like XGBoost's pred_contribs."""
    model, frame = categorical_model
    path = tmp_path / f"model{suffix}"
    model.save_model(str(path))
    rows = frame.iloc[:30]
    expected, bias, margin = xgboost_outputs(model.get_booster(), rows, categorical=True)

    explanation = fastshap.explain(path, rows)

    ensemble = fastshap.load_model(path)
    assert ensemble.categorical_features or np.any(ensemble.nodes.is_categorical)
    tolerance = shap_tolerance(ensemble, expected)
    assert_shap_close(
        explanation, expected, bias, margin, atol=tolerance,
        additivity_atol=tolerance + margin_tolerance(ensemble, margin),
    )


def _categorical_frame(rng, n_rows=500):
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n_rows),
            "cat": pd.Categorical(
                rng.choice(list("abcdefgh"), n_rows), categories=list("abcdefgh")
            ),
            "num2": rng.normal(size=n_rows),
        }
    )
    frame.loc[rng.random(n_rows) < 0.1, "cat"] = np.nan
    frame.loc[rng.random(n_rows) < 0.1, "num"] = np.nan
    target = (
        np.nan_to_num(frame["num"])
        + 2.0 * frame["cat"].isin(["b", "d", "f"])
        - 1.0 * frame["cat"].isin(["a"])
        + 0.5 * frame["num2"]
    )
    return frame, target


@pytest.fixture(scope="module", params=[1, 64], ids=["partition", "one-hot"])
def categorical_model(request):
    """An XGBRegressor with native categorical splits, with its data.

    With 8 categories, max_cat_to_onehot=1 makes XGBoost split on sets of
    categories and max_cat_to_onehot=64 on one category at a time.
    """
    rng = np.random.default_rng(request.param)
    frame, target = _categorical_frame(rng)
    model = xgb.XGBRegressor(
        n_estimators=10, max_depth=4, enable_categorical=True, tree_method="hist",
        max_cat_to_onehot=request.param, n_jobs=1,
    ).fit(frame, target)
    return model, frame


def test_categorical_splits(categorical_model):
    model, frame = categorical_model

    explainer, _ = check_against_xgboost(model, frame.iloc[:40], categorical=True)

    assert explainer.ensemble.nodes.is_categorical.any()


def test_categorical_partition_sets(categorical_model):
    """The partition model has splits whose category set has several codes."""
    model, _ = categorical_model
    ensemble = fastshap.load_model(model)
    nodes = ensemble.nodes
    sizes = np.diff(nodes.category_offsets)[nodes.is_categorical]

    if model.get_params()["max_cat_to_onehot"] == 1:
        assert sizes.max() > 1
    else:
        assert sizes.max() == 1


def test_category_order_ignored(categorical_model):
    """Reordered or fewer categories are matched by label, as XGBoost does."""
    model, frame = categorical_model
    rows = frame.iloc[:40].copy()
    reordered = rows.copy()
    reordered["cat"] = reordered["cat"].cat.reorder_categories(list("hgfedcba"))
    subset = rows.copy()
    kept = ["f", "b", "d"]
    subset["cat"] = pd.Categorical(
        subset["cat"].astype(object).where(subset["cat"].isin(kept), None),
        categories=kept,
    )
    explainer = fastshap.Explainer(model)
    ensemble = explainer.ensemble

    for changed in (reordered, subset):
        _, _, margin = xgboost_outputs(model.get_booster(), changed, categorical=True)
        np.testing.assert_allclose(
            explainer.predict_raw(changed)[:, 0], margin, rtol=0,
            atol=margin_tolerance(ensemble, margin),
        )
    np.testing.assert_array_equal(
        explainer.explain(reordered).values, explainer.explain(rows).values
    )


def test_unseen_category_label(categorical_model):
    """A category label the model never saw is rejected, naming the column and label."""
    model, frame = categorical_model
    rows = frame.iloc[:5].copy()
    rows["cat"] = pd.Categorical(["z"] * 5, categories=list("abcdefghz"))

    with pytest.raises(ValueError, match=r"'cat'.*\['z'\]"):
        fastshap.explain(model, rows)


def test_numeric_column_for_categorical_feature(categorical_model):
    """A DataFrame with codes instead of a categorical column is rejected, as XGBoost does."""
    model, frame = categorical_model
    rows = frame.iloc[:5].assign(cat=frame["cat"].iloc[:5].cat.codes)

    with pytest.raises(TypeError) as error:
        fastshap.explain(model, rows)

    message = str(error.value)
    assert "'cat'" in message
    assert "categorical" in message
    assert "astype(pd.CategoricalDtype" in message


def test_unknown_objective_rejected(rng, tmp_path):
    """An objective the loader does not know is an error, not a guessed base value."""
    booster, _ = train_booster(rng, {"objective": "binary:logistic", "max_depth": 2}, 2)
    model_json = json.loads(booster.save_raw(raw_format="json"))
    model_json["learner"]["objective"]["name"] = "made:up"
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model_json))

    with pytest.raises(fastshap.UnsupportedModelError, match=r"objective 'made:up'"):
        fastshap.load_model(path)


def _numeric_category_rows(frame, codes):
    rows = np.zeros((len(codes), 3))
    rows[:, 0] = frame["num"].fillna(0.0).to_numpy()[: len(codes)]
    rows[:, 1] = codes
    rows[:, 2] = frame["num2"].to_numpy()[: len(codes)]
    return rows


def _xgboost_margin_categorical(model, rows):
    dmatrix = xgb.DMatrix(
        rows, feature_names=["num", "cat", "num2"], feature_types=["q", "c", "q"],
        enable_categorical=True, nthread=1,
    )
    return model.get_booster().predict(dmatrix, output_margin=True).astype(np.float64)


def test_category_codes_out_of_range(categorical_model):
    """Codes above the largest category and negative codes go where XGBoost sends them."""
    model, frame = categorical_model
    rows = _numeric_category_rows(frame, [0, 3, 7, 8, 100, 5000, -1, -3, np.nan])
    explainer = fastshap.Explainer(model)

    margin = _xgboost_margin_categorical(model, rows)

    np.testing.assert_allclose(
        explainer.predict_raw(rows)[:, 0], margin, rtol=0,
        atol=margin_tolerance(explainer.ensemble, margin),
    )
    explanation = explainer.explain(rows)
    total = explanation.values.sum(axis=1) + explanation.base_values[0]
    np.testing.assert_allclose(
        total, margin, rtol=0, atol=margin_tolerance(explainer.ensemble, margin) + 1e-9
    )


def test_category_codes_fractional(categorical_model):
    """Fractional category codes are truncated toward zero, as XGBoost does."""
    model, frame = categorical_model
    rows = _numeric_category_rows(frame, [0.5, 1.5, 2.5, 3.7, 5.2, 6.9])
    explainer = fastshap.Explainer(model)

    margin = _xgboost_margin_categorical(model, rows)

    np.testing.assert_allclose(
        explainer.predict_raw(rows)[:, 0], margin, rtol=0,
        atol=margin_tolerance(explainer.ensemble, margin),
    )


def test_categorical_numpy_codes_match_dataframe(categorical_model):
    """A numeric array of category codes explains like the DataFrame."""
    model, frame = categorical_model
    rows = frame.iloc[:20]

    from_frame = fastshap.explain(model, rows)
    from_codes = fastshap.explain(model, category_codes(rows))

    np.testing.assert_array_equal(from_codes.values, from_frame.values)


def test_multiclass_brute_force_all_outputs(multiclass_model):
    """Brute force agrees on every class of a multi-class model."""
    model, X = multiclass_model
    explainer = fastshap.Explainer(model)
    explanation = explainer.explain(X[:4])

    assert explanation.values.shape == (4, 4, 3)
    check_against_brute_force(explainer, explanation, X[:4])
