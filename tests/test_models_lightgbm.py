"""fastshap on LightGBM models: loader round trip, pred_contrib and brute force.

Three references, from the strictest:

- LightGBM's ``predict(raw_score=True)``. LightGBM adds the same float64 leaf
  values in the same tree order as fastshap, so the loader's ensemble must
  reproduce it to float64 rounding (:data:`EXACT_RTOL`).
- LightGBM's ``predict(pred_contrib=True)``, computed in float64 by
  LightGBM's TreeSHAP. It and fastshap's algorithms round differently, so
  values agree to :data:`EXACT_RTOL` times the output scale.
- Brute-force Shapley values (``reference.py``) of the loaded ensemble on
  the first rows, to 1e-9, for models over at most 8 features.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np
import pandas as pd
import pytest

import fastshap
import reference
from conftest import assert_shap_close

lgb = pytest.importorskip("lightgbm")

#: Tolerance relative to the output scale (``max(1, max |raw score|)``) of
#: checks that involve only float64 arithmetic. Rounding errors of TreeSHAP in
#: float64 on these small models are about 1e-15 of the output scale.
EXACT_RTOL = 1e-9

#: Rows explained by brute force per model (each costs 2**n_features
#: conditional expectations per tree).
BRUTE_FORCE_ROWS = 3

#: Largest number of features a model may split on for the brute-force check.
BRUTE_FORCE_MAX_FEATURES = 8

#: Parameters that keep LightGBM quiet, single-threaded and reproducible.
QUIET = {"verbose": -1, "n_jobs": 1, "deterministic": True}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def as_booster(model):
    return model if isinstance(model, lgb.Booster) else model.booster_


def lightgbm_outputs(model, X, n_outputs: int):
    """Return LightGBM's SHAP values, bias and raw score in fastshap's layout.

    Values have shape (n_rows, n_features) for one output and (n_rows,
    n_features, n_outputs) for several, the bias shape (n_outputs,), the raw
    score (n_rows,) or (n_rows, n_outputs).
    """
    booster = as_booster(model)
    raw = np.asarray(booster.predict(X, raw_score=True), dtype=np.float64)
    contribs = np.asarray(booster.predict(X, pred_contrib=True), dtype=np.float64)
    n_features = booster.num_feature()
    if n_outputs > 1:
        # LightGBM lays out one block of n_features + 1 columns per class.
        blocks = contribs.reshape(len(contribs), n_outputs, n_features + 1)
        values = np.transpose(blocks[:, :, :-1], (0, 2, 1))
        bias = blocks[0, :, -1]
    else:
        values = contribs[:, :-1]
        bias = contribs[:1, -1]
    return values, bias, raw


def lightgbm_codes(booster, frame: pd.DataFrame) -> np.ndarray:
    """Convert ``frame`` to the float matrix that LightGBM predicts on.

    As LightGBM does, the k-th categorical column gets the k-th list of
    training categories, and values outside that list become NaN.
    """
    training_categories = iter(booster.pandas_categorical or [])
    columns = []
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = next(training_categories)
            codes = pd.Categorical(column, categories=categories).codes
            columns.append(np.where(codes < 0, np.nan, codes).astype(np.float64))
        else:
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns)


def output_scale(raw) -> float:
    return max(1.0, float(np.abs(raw).max()))


def check_against_lightgbm(model, X, *, brute_force: bool = True):
    """Compare fastshap with LightGBM and brute force on one model.

    Checks the loader round trip (``predict_raw`` against ``raw_score``),
    values and base values of both algorithms (tables and direct) against
    ``pred_contrib``, additivity, and brute force on the first rows.
    Returns the default explainer and its explanation.
    """
    explainer = fastshap.Explainer(model)
    ensemble = explainer.ensemble
    expected, bias, raw = lightgbm_outputs(model, X, ensemble.n_outputs)
    tolerance = EXACT_RTOL * output_scale(raw)

    own_raw = explainer.predict_raw(X)
    np.testing.assert_allclose(
        own_raw.reshape(raw.shape),
        raw,
        rtol=0,
        atol=tolerance,
        err_msg="predict_raw vs predict(raw_score=True)",
    )

    explanation = explainer.explain(X)
    assert explainer.tables.tree_uses_table.any(), "the default should use tables"
    assert_shap_close(explanation, expected, bias, raw, atol=tolerance)

    # memory_limit=0 turns the tables off: the direct algorithm must agree.
    direct = fastshap.explain(model, X, memory_limit=0)
    assert_shap_close(direct, expected, bias, raw, atol=tolerance)
    np.testing.assert_allclose(
        direct.values,
        explanation.values,
        rtol=0,
        atol=tolerance,
        err_msg="direct algorithm vs tables",
    )

    if brute_force:
        rows = (
            X.iloc[:BRUTE_FORCE_ROWS]
            if isinstance(X, pd.DataFrame)
            else X[:BRUTE_FORCE_ROWS]
        )
        check_against_brute_force(explainer, explanation, rows, as_booster(model))
    return explainer, explanation


def check_against_brute_force(explainer, explanation, rows, booster):
    """Compare the first rows of ``explanation`` with brute force, to 1e-9."""
    ensemble = explainer.ensemble
    assert len(reference.split_features(ensemble)) <= BRUTE_FORCE_MAX_FEATURES
    if isinstance(rows, pd.DataFrame):
        numeric = lightgbm_codes(booster, rows)
    else:
        numeric = np.asarray(rows, dtype=np.float64)
    expected, expected_base = reference.brute_force_shap(ensemble, numeric)
    if ensemble.n_outputs == 1:
        expected = expected[:, :, 0]
    np.testing.assert_allclose(
        explanation.values[: len(rows)],
        expected,
        rtol=0,
        atol=1e-9,
        err_msg="values vs brute force",
    )
    np.testing.assert_allclose(
        explanation.base_values,
        expected_base,
        rtol=0,
        atol=1e-9,
        err_msg="base_values vs brute force",
    )


def numeric_splits(booster) -> list[dict]:
    """Return every numeric split node of the booster's dump."""
    found = []
    stack = [info["tree_structure"] for info in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" not in node:
            continue
        if node["decision_type"] == "<=":
            found.append(node)
        stack.extend([node["left_child"], node["right_child"]])
    return found


def missing_types(booster) -> set[str]:
    return {node["missing_type"] for node in numeric_splits(booster)}


def make_rows(rng, n_rows: int, n_features: int) -> np.ndarray:
    """Normal rows with NaN, exact zeros, tiny values and negative zeros."""
    X = rng.normal(size=(n_rows, n_features))
    X[rng.random(X.shape) < 0.1] = 0.0
    X[rng.random(X.shape) < 0.03] = 1e-36
    X[rng.random(X.shape) < 0.03] = -0.0
    X[rng.random(X.shape) < 0.12] = np.nan
    return X


def make_target(rng, X, objective: str = "regression", n_classes: int = 3):
    """A target for ``objective`` that depends on values, NaN and zeros of ``X``."""
    Z = np.nan_to_num(X)
    signal = (
        1.5 * Z[:, 0]
        + Z[:, 1] ** 2
        + np.sin(2 * Z[:, 2])
        + 1.0 * np.isnan(X[:, 3])
        - 0.8 * (X[:, 3] == 0)
        + 0.3 * rng.normal(size=len(Z))
    )
    if objective in ("binary", "cross_entropy"):
        return (signal > np.median(signal)).astype(int)
    if objective.startswith("multiclass"):
        edges = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1] ** 0.7)
        return np.digitize(signal, edges)
    if objective == "poisson":
        return rng.poisson(np.exp(signal / 3))
    if objective in ("gamma", "tweedie"):
        return np.exp(signal / 3) * rng.gamma(5.0, 0.2, size=len(Z))
    if objective in ("lambdarank", "rank_xendcg"):
        return np.digitize(signal, np.quantile(signal, [0.4, 0.7, 0.9]))
    return signal


def sigmoid(raw):
    return 1.0 / (1.0 + np.exp(-raw))


# ---------------------------------------------------------------------------
# Missing values and split comparisons
# ---------------------------------------------------------------------------

#: Training options -> missing_type of the numeric splits they produce.
MISSING_CASES = {
    "nan": ({}, "NaN", True),
    "none-use_missing-false": ({"use_missing": False}, "None", True),
    "none-no-nan-in-training": ({}, "None", False),
    "zero-as-missing": ({"zero_as_missing": True}, "Zero", True),
}


@pytest.mark.parametrize(
    ("params", "expected_type", "nan_in_training"),
    list(MISSING_CASES.values()),
    ids=list(MISSING_CASES),
)
def test_missing_type(rng, params, expected_type, nan_in_training):
    """Each missing-value type routes NaN and zero as LightGBM does."""
    X = make_rows(rng, 400, 6)
    X_train = X if nan_in_training else np.nan_to_num(X, nan=0.5)
    y = make_target(rng, X_train)
    model = lgb.LGBMRegressor(
        n_estimators=15, num_leaves=8, min_child_samples=5, **QUIET, **params
    ).fit(X_train, y)

    assert missing_types(model.booster_) == {expected_type}
    check_against_lightgbm(model, X[:60])


def test_missing_type_none_nan_routes_as_zero(rng):
    """NaN at a split with missing_type None goes where 0.0 goes, not default_left."""
    X = rng.normal(size=(500, 3))
    y = 2 * X[:, 0] + (X[:, 1] > 0.3)
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, **QUIET).fit(X, y)
    rows = X[:8].copy()
    rows[:4, 0] = np.nan
    zeros = rows.copy()
    zeros[:4, 0] = 0.0

    explainer, _ = check_against_lightgbm(model, rows)

    np.testing.assert_array_equal(
        explainer.predict_raw(rows), explainer.predict_raw(zeros)
    )
    assert missing_types(model.booster_) == {"None"}


def test_thresholds_compare_less_or_equal(rng):
    """Rows exactly at split thresholds go left, the next float up goes right."""
    X = rng.normal(size=(300, 4))
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, **QUIET).fit(
        X, X[:, 0] + X[:, 1] * X[:, 2]
    )
    splits = numeric_splits(model.booster_)
    rows = np.tile(np.median(X, axis=0), (2 * len(splits), 1))
    for i, node in enumerate(splits):
        rows[2 * i, node["split_feature"]] = node["threshold"]
        rows[2 * i + 1, node["split_feature"]] = np.nextafter(node["threshold"], np.inf)

    explainer, _ = check_against_lightgbm(model, rows)

    assert explainer.ensemble.decision_type == "<="


def test_zero_threshold_boundaries(rng):
    """Values at +-1e-35, LightGBM's zero threshold, are zero for missing_type Zero."""
    X = make_rows(rng, 400, 5)
    model = lgb.LGBMRegressor(
        n_estimators=10, num_leaves=8, zero_as_missing=True, **QUIET
    ).fit(X, make_target(rng, X))
    zero_threshold = float(np.float32(1e-35))
    edge_values = [
        0.0,
        -0.0,
        zero_threshold,
        -zero_threshold,
        np.nextafter(zero_threshold, 1.0),
        np.nextafter(-zero_threshold, -1.0),
        np.nan,
        5e-36,
    ]
    # One row per edge value and column, the other columns from a typical row.
    rows = np.tile(np.nan_to_num(X[0]), (len(edge_values) * X.shape[1], 1))
    for i, value in enumerate(edge_values):
        for column in range(X.shape[1]):
            rows[i * X.shape[1] + column, column] = value

    check_against_lightgbm(model, rows)


def test_cover_is_row_count(rng):
    """Covers are row counts, as LightGBM's pred_contrib uses, not weight sums."""
    X = make_rows(rng, 400, 5)
    weights = rng.choice([0.1, 1.0, 20.0], size=len(X))
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, **QUIET).fit(
        X, make_target(rng, X), sample_weight=weights
    )
    root = model.booster_.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_weight"] != root["internal_count"]

    explainer, _ = check_against_lightgbm(model, X[:40])

    assert explainer.ensemble.nodes.cover[0] == root["internal_count"]


# ---------------------------------------------------------------------------
# Model kinds and objectives
# ---------------------------------------------------------------------------

#: name -> (estimator class, objective, extra parameters, link)
OBJECTIVES = {
    "regression": (lgb.LGBMRegressor, "regression", {}, "identity"),
    "regression_l1": (lgb.LGBMRegressor, "regression_l1", {}, "identity"),
    "huber": (lgb.LGBMRegressor, "huber", {}, "identity"),
    "quantile": (lgb.LGBMRegressor, "quantile", {"alpha": 0.8}, "identity"),
    "fair": (lgb.LGBMRegressor, "fair", {}, "identity"),
    "mape": (lgb.LGBMRegressor, "mape", {}, "identity"),
    "poisson": (lgb.LGBMRegressor, "poisson", {}, "log"),
    "gamma": (lgb.LGBMRegressor, "gamma", {}, "log"),
    "tweedie": (lgb.LGBMRegressor, "tweedie", {"tweedie_variance_power": 1.3}, "log"),
    "binary": (lgb.LGBMClassifier, "binary", {}, "logit"),
    "cross_entropy": (lgb.LGBMRegressor, "cross_entropy", {}, "logit"),
    "multiclass": (lgb.LGBMClassifier, "multiclass", {}, "softmax"),
    "multiclassova": (lgb.LGBMClassifier, "multiclassova", {}, "logit"),
    "lambdarank": (lgb.LGBMRanker, "lambdarank", {}, "identity"),
    "rank_xendcg": (lgb.LGBMRanker, "rank_xendcg", {}, "identity"),
}


def fit_objective(rng, name: str, n_estimators: int = 12):
    """Fit the estimator of ``OBJECTIVES[name]`` on fresh data with NaN."""
    estimator, objective, params, _ = OBJECTIVES[name]
    X = make_rows(rng, 360, 6)
    y = make_target(rng, X, objective)
    model = estimator(
        objective=objective,
        n_estimators=n_estimators,
        num_leaves=8,
        min_child_samples=5,
        **QUIET,
        **params,
    )
    if estimator is lgb.LGBMRanker:
        model.fit(X, y, group=[30] * 12)
    else:
        model.fit(X, y)
    return model, X


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective(rng, name):
    model, X = fit_objective(rng, name)

    explainer, _ = check_against_lightgbm(model, X[:50])

    ensemble = explainer.ensemble
    assert ensemble.objective == OBJECTIVES[name][1]
    assert ensemble.link == OBJECTIVES[name][3]
    assert ensemble.library == "lightgbm"
    np.testing.assert_array_equal(ensemble.base_score, np.zeros(ensemble.n_outputs))


@pytest.mark.parametrize("name", ["poisson", "gamma", "tweedie"])
def test_log_link_predictions(rng, name):
    """Raw values are in log space: exp(raw) is the model's prediction."""
    model, X = fit_objective(rng, name)

    raw = fastshap.Explainer(model).predict_raw(X[:50])[:, 0]

    np.testing.assert_allclose(np.exp(raw), model.predict(X[:50]), rtol=1e-12)


def test_binary_logit_predictions(rng):
    model, X = fit_objective(rng, "binary")

    raw = fastshap.Explainer(model).predict_raw(X[:50])[:, 0]

    np.testing.assert_allclose(
        sigmoid(raw), model.predict_proba(X[:50])[:, 1], rtol=1e-12
    )


def test_multiclass_shape_and_softmax(rng):
    """Trees interleave by class, values have shape (n, p, k)."""
    model, X = fit_objective(rng, "multiclass", n_estimators=8)

    explainer, explanation = check_against_lightgbm(model, X[:40])

    assert explanation.values.shape == (40, 6, 3)
    assert explanation.base_values.shape == (3,)
    classes = explainer.ensemble.tree_outputs[:, 0]
    np.testing.assert_array_equal(classes, np.arange(24) % 3)
    raw = explainer.predict_raw(X[:40])
    probabilities = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, model.predict_proba(X[:40]), rtol=1e-12)


def test_train_booster_and_model_string(rng):
    """A Booster from lgb.train and one reloaded from its model string."""
    X = make_rows(rng, 300, 5)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 8, **QUIET},
        lgb.Dataset(X, make_target(rng, X, "binary")),
        num_boost_round=10,
    )
    reloaded = lgb.Booster(model_str=booster.model_to_string())

    check_against_lightgbm(booster, X[:40])
    check_against_lightgbm(reloaded, X[:40], brute_force=False)


def test_dart_and_goss(rng):
    X = make_rows(rng, 400, 6)
    y = make_target(rng, X)
    dart = lgb.LGBMRegressor(
        boosting_type="dart", drop_rate=0.3, n_estimators=15, num_leaves=8, **QUIET
    ).fit(X, y)
    goss = lgb.LGBMRegressor(
        data_sample_strategy="goss", n_estimators=15, num_leaves=8, **QUIET
    ).fit(X, y)

    check_against_lightgbm(dart, X[:40])
    check_against_lightgbm(goss, X[:40])


def test_random_forest_averages_trees(rng):
    """boosting='rf' predicts the mean of its trees: raw_score is their sum.

    LightGBM's raw_score and pred_contrib add the trees up, and predict()
    divides by the number of iterations before applying the link. fastshap
    explains the mean, the value the link applies to.
    """
    X = make_rows(rng, 400, 5)
    model = lgb.LGBMClassifier(
        boosting_type="rf",
        bagging_freq=1,
        bagging_fraction=0.6,
        n_estimators=12,
        num_leaves=8,
        **QUIET,
    ).fit(X, make_target(rng, X, "binary"))
    rows = X[:40]
    explainer = fastshap.Explainer(model)
    expected, bias, raw = lightgbm_outputs(model, rows, 1)

    own_raw = explainer.predict_raw(rows)[:, 0]
    explanation = explainer.explain(rows)

    tolerance = EXACT_RTOL * output_scale(raw)
    np.testing.assert_allclose(own_raw, raw / 12, rtol=0, atol=tolerance)
    np.testing.assert_allclose(
        sigmoid(own_raw), model.predict_proba(rows)[:, 1], rtol=1e-12
    )
    assert_shap_close(explanation, expected / 12, bias / 12, raw / 12, atol=tolerance)


def test_sklearn_dataframe_feature_names(rng):
    X = make_rows(rng, 300, 4)
    frame = pd.DataFrame(X, columns=["age", "income", "debt", "score"])
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, **QUIET).fit(
        frame, make_target(rng, X)
    )

    explainer, explanation = check_against_lightgbm(model, frame.iloc[:40])

    assert explainer.feature_names == ["age", "income", "debt", "score"]
    assert explanation.feature_names == ["age", "income", "debt", "score"]


def test_numpy_default_feature_names(rng):
    X = make_rows(rng, 300, 4)
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, **QUIET).fit(
        X, make_target(rng, X)
    )

    assert fastshap.Explainer(model).feature_names == [f"Column_{i}" for i in range(4)]


# ---------------------------------------------------------------------------
# Categorical splits
# ---------------------------------------------------------------------------

#: Category code values that probe LightGBM's conversion to int: negative
#: (right), between -1 and 0 (category 0), fractional (truncated), beyond
#: the bitset (right), and beyond int32 or infinite. C++ leaves the int
#: conversion of the last ones undefined, and on x86-64 they go right.
ODD_CODES = [-1.0, -1.5, -0.5, 2.7, 3.999, 9.0, 64.0, 1e10, np.inf, -np.inf, np.nan]


def categorical_rows(rng, n_rows: int, n_categories: int = 8) -> np.ndarray:
    X = make_rows(rng, n_rows, 5)
    X[:, 4] = rng.integers(0, n_categories, size=n_rows)
    X[rng.random(n_rows) < 0.1, 4] = np.nan
    return X


def categorical_target(rng, X) -> np.ndarray:
    codes = np.nan_to_num(X[:, 4], nan=-1)
    return make_target(rng, X) + 2.0 * np.isin(codes, [1, 3, 5]) - 1.5 * (codes == 6)


CATEGORICAL_PARAMS = {
    "min_data_per_group": 5,
    "cat_smooth": 1.0,
    "min_child_samples": 5,
}


def test_categorical_integer_codes(rng):
    """Unseen, NaN, negative, fractional and huge codes route as in LightGBM."""
    X = categorical_rows(rng, 500)
    # Category 7 never occurs in training, so no split lists it.
    X[X[:, 4] == 7, 4] = 2
    model = lgb.LGBMRegressor(
        n_estimators=15, num_leaves=8, **CATEGORICAL_PARAMS, **QUIET
    ).fit(X, categorical_target(rng, X), categorical_feature=[4])
    rows = np.tile(X[:5], (len(ODD_CODES) + 1, 1))
    for i, code in enumerate([*ODD_CODES, 7.0]):
        rows[i * 5 : (i + 1) * 5, 4] = code

    explainer, _ = check_against_lightgbm(model, rows)

    assert explainer.ensemble.nodes.is_categorical.any()


def test_categorical_multiclass(rng):
    X = categorical_rows(rng, 450)
    y = np.digitize(categorical_target(rng, X), [-0.5, 1.5])
    model = lgb.LGBMClassifier(
        n_estimators=6, num_leaves=6, **CATEGORICAL_PARAMS, **QUIET
    ).fit(X, y, categorical_feature=[4])
    rows = X[:30].copy()
    rows[: len(ODD_CODES), 4] = ODD_CODES

    _, explanation = check_against_lightgbm(model, rows)

    assert explanation.values.shape == (30, 5, 3)


def categorical_frame(rng, n_rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Build a frame with two unordered categoricals, one with an unused label."""
    X = make_rows(rng, n_rows, 3)
    colors = rng.choice(["red", "green", "blue", "black"], size=n_rows)
    sizes = rng.choice([10, 20, 30], size=n_rows).astype(float)
    sizes[rng.random(n_rows) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "a": X[:, 0],
            "color": pd.Categorical(
                colors, categories=["red", "green", "blue", "black", "white"]
            ),
            "b": X[:, 1],
            "size": pd.Categorical(sizes, categories=[10.0, 20.0, 30.0]),
            "c": X[:, 2],
        }
    )
    frame.loc[rng.random(n_rows) < 0.1, "color"] = np.nan
    y = (
        np.nan_to_num(X[:, 0])
        + 2.0 * np.isin(colors, ["green", "black"])
        - 1.0 * (sizes == 20)
        + 0.2 * rng.normal(size=n_rows)
    )
    return frame, y


def test_categorical_pandas(rng, caplog):
    """Pandas categoricals: NaN, an unused training label and reordered categories."""
    frame, y = categorical_frame(rng, 500)
    model = lgb.LGBMRegressor(
        n_estimators=15, num_leaves=8, **CATEGORICAL_PARAMS, **QUIET
    ).fit(frame, y)
    rows = frame.iloc[:40].copy()
    # "white" is a training category that no training row has.
    rows.loc[rows.index[:5], "color"] = "white"
    rows.loc[rows.index[5:10], "color"] = np.nan

    with caplog.at_level(logging.WARNING, logger="fastshap.models.lightgbm"):
        explainer, _ = check_against_lightgbm(model, rows)

    assert not caplog.records
    assert explainer.ensemble.categorical_features == {
        1: ["red", "green", "blue", "black", "white"],
        3: ["10.0", "20.0", "30.0"],
    }
    reordered = rows.copy()
    reordered["color"] = reordered["color"].cat.reorder_categories(
        ["white", "black", "blue", "green", "red"]
    )
    check_against_lightgbm(model, reordered)


def test_categorical_pandas_unknown_label(rng):
    """A label outside the training categories raises. Set to NaN, it matches."""
    frame, y = categorical_frame(rng, 400)
    model = lgb.LGBMRegressor(
        n_estimators=8, num_leaves=8, **CATEGORICAL_PARAMS, **QUIET
    ).fit(frame, y)
    rows = frame.iloc[:20].copy()
    rows["color"] = rows["color"].cat.add_categories(["purple"])
    rows.loc[rows.index[:3], "color"] = "purple"

    with pytest.raises(ValueError, match="purple"):
        fastshap.explain(model, rows)

    rows["color"] = rows["color"].cat.remove_categories(["purple"])
    assert rows["color"].iloc[:3].isna().all()
    check_against_lightgbm(model, rows)


def test_categorical_pandas_ordered_column(rng, caplog):
    """An ordered categorical is split on numerically, so labels are not matched."""
    frame, y = categorical_frame(rng, 400)
    frame["grade"] = pd.Categorical(
        rng.choice(["low", "mid", "high"], size=len(frame)),
        categories=["low", "mid", "high"],
        ordered=True,
    )
    y = y + 1.5 * (frame["grade"] == "high").to_numpy()
    model = lgb.LGBMRegressor(
        n_estimators=10, num_leaves=8, **CATEGORICAL_PARAMS, **QUIET
    ).fit(frame, y)

    with caplog.at_level(logging.WARNING, logger="fastshap.models.lightgbm"):
        explainer, _ = check_against_lightgbm(model, frame.iloc[:40])

    assert explainer.ensemble.categorical_features == {}
    assert any("pandas categorical" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# Single-leaf trees and early stopping
# ---------------------------------------------------------------------------


def test_single_leaf_huge_min_data_in_leaf(rng):
    X = make_rows(rng, 100, 4)
    model = lgb.LGBMRegressor(n_estimators=5, min_child_samples=1000, **QUIET).fit(
        X, make_target(rng, X)
    )

    explainer, explanation = check_against_lightgbm(model, X[:10])

    assert explainer.ensemble.max_depth == 0
    np.testing.assert_array_equal(explanation.values, np.zeros((10, 4)))


def test_single_leaf_constant_target(rng):
    X = make_rows(rng, 100, 4)
    model = lgb.LGBMRegressor(n_estimators=5, **QUIET).fit(X, np.full(100, 2.5))

    _, explanation = check_against_lightgbm(model, X[:10])

    np.testing.assert_array_equal(explanation.values, np.zeros((10, 4)))
    np.testing.assert_allclose(explanation.base_values, [2.5], rtol=1e-15)


def test_single_leaf_trees_among_splits(rng):
    """A class without training rows gets single-leaf trees between split trees."""
    X = make_rows(rng, 300, 5)
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int)
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "num_leaves": 4, **QUIET},
        lgb.Dataset(X, y),
        num_boost_round=4,
    )
    sizes = [info["num_leaves"] for info in booster.dump_model()["tree_info"]]
    assert min(sizes) == 1
    assert max(sizes) > 1

    check_against_lightgbm(booster, X[:30])


def validation_split(rng, objective: str = "regression"):
    X = make_rows(rng, 500, 5)
    y = make_target(rng, X, objective)
    return X[:350], y[:350], X[350:], y[350:]


def test_early_stopping_sklearn(rng):
    """Only the trees of best_iteration_ are explained, as predict() uses.

    The sklearn wrapper drops the trees after the best iteration when it
    stops early, so the loaded ensemble has best_iteration_ iterations.
    """
    X, y, X_valid, y_valid = validation_split(rng, "multiclass")
    model = lgb.LGBMClassifier(
        n_estimators=300, learning_rate=0.3, num_leaves=8, **QUIET
    )
    if "eval_X" in inspect.signature(model.fit).parameters:
        validation = {"eval_X": (X_valid,), "eval_y": (y_valid,)}  # LightGBM 4.7+
    else:
        validation = {"eval_set": [(X_valid, y_valid)]}
    model.fit(X, y, callbacks=[lgb.early_stopping(3, verbose=False)], **validation)
    assert 0 < model.best_iteration_ < 300

    explainer, _ = check_against_lightgbm(model, X_valid[:30], brute_force=False)

    assert explainer.ensemble.n_trees == 3 * model.best_iteration_


def test_early_stopping_booster(rng, caplog):
    """A Booster that kept the trees after its best iteration predicts without them."""
    X, y, X_valid, y_valid = validation_split(rng)
    train = lgb.Dataset(X, y)
    booster = lgb.train(
        {"num_leaves": 8, "learning_rate": 0.5, **QUIET},
        train,
        num_boost_round=300,
        valid_sets=[lgb.Dataset(X_valid, y_valid, reference=train)],
        callbacks=[lgb.early_stopping(3, verbose=False)],
        keep_training_booster=True,
    )
    assert 0 < booster.best_iteration < booster.current_iteration()

    with caplog.at_level(logging.INFO, logger="fastshap.models.lightgbm"):
        explainer, _ = check_against_lightgbm(booster, X_valid[:30], brute_force=False)

    assert explainer.ensemble.n_trees == booster.best_iteration
    assert any("best_iteration" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_linear_tree_rejected(rng):
    X = rng.normal(size=(300, 3))
    y = 2 * X[:, 0] + X[:, 1]
    model = lgb.LGBMRegressor(
        n_estimators=3, num_leaves=4, linear_tree=True, **QUIET
    ).fit(X, y)

    for target in (model, model.booster_):
        with pytest.raises(fastshap.UnsupportedModelError, match="linear_tree"):
            fastshap.Explainer(target)


@pytest.mark.parametrize(
    ("params", "objective_kind", "option"),
    [
        ({"reg_sqrt": True}, "regression", "reg_sqrt"),
        ({"objective": "cross_entropy_lambda"}, "binary", "cross_entropy_lambda"),
        ({"objective": "binary", "sigmoid": 2.0}, "binary", "sigmoid=2"),
    ],
    ids=["reg_sqrt", "cross_entropy_lambda", "sigmoid"],
)
def test_unsupported_link_rejected(rng, params, objective_kind, option):
    """Objectives whose link fastshap cannot label raise an error naming the option."""
    X = make_rows(rng, 200, 4)
    booster = lgb.train(
        {"num_leaves": 4, **QUIET, **params},
        lgb.Dataset(X, make_target(rng, X, objective_kind)),
        num_boost_round=2,
    )

    with pytest.raises(fastshap.UnsupportedModelError, match=option):
        fastshap.Explainer(booster)


def test_custom_objective_identity_link(rng):
    X = make_rows(rng, 300, 4)

    def squared_error(y_true, y_pred):
        return y_pred - y_true, np.ones_like(y_pred)

    model = lgb.LGBMRegressor(
        objective=squared_error, n_estimators=8, num_leaves=8, **QUIET
    ).fit(X, make_target(rng, X))

    explainer, _ = check_against_lightgbm(model, X[:30])

    assert explainer.ensemble.objective == "custom"
    assert explainer.ensemble.link == "identity"


def test_custom_missing_value_rejected(rng):
    X = make_rows(rng, 200, 4)
    model = lgb.LGBMRegressor(n_estimators=2, **QUIET).fit(X, make_target(rng, X))

    with pytest.raises(ValueError, match="missing"):
        fastshap.Explainer(model, missing=-999.0)
    assert fastshap.Explainer(model, missing=np.nan).ensemble.n_trees == 2


def test_unfitted_model_rejected():
    with pytest.raises(fastshap.UnsupportedModelError, match="fit"):
        fastshap.Explainer(lgb.LGBMRegressor())


def test_unsupported_lightgbm_version(rng, monkeypatch):
    X = make_rows(rng, 200, 4)
    model = lgb.LGBMRegressor(n_estimators=2, **QUIET).fit(X, make_target(rng, X))
    monkeypatch.setattr(lgb, "__version__", "3.3.5")

    with pytest.raises(fastshap.UnsupportedModelError, match=r"4\.x"):
        fastshap.Explainer(model)


def test_malformed_dumps_rejected(rng):
    from fastshap.models.lightgbm import load_dump

    X = make_rows(rng, 200, 4)
    model = lgb.LGBMRegressor(n_estimators=2, num_leaves=4, **QUIET).fit(
        X, make_target(rng, X)
    )
    dump = model.booster_.dump_model()

    with pytest.raises(fastshap.ModelFormatError, match="tree_info"):
        load_dump({"trees": []})
    with pytest.raises(fastshap.UnsupportedModelError, match="v4"):
        load_dump({**dump, "version": "v3"})
    with pytest.raises(fastshap.UnsupportedModelError, match="objective 'survival'"):
        load_dump({**dump, "objective": "survival"})

    broken = model.booster_.dump_model()
    broken["tree_info"][0]["tree_structure"]["split_feature"] = 9
    with pytest.raises(fastshap.ModelFormatError, match="feature 9"):
        load_dump(broken)

    broken = model.booster_.dump_model()
    del broken["tree_info"][1]["tree_structure"]["left_child"]["leaf_value"]
    with pytest.raises(fastshap.ModelFormatError, match="leaf_value"):
        load_dump(broken)
