"""fastshap on scikit-learn models: loader round trip, brute force and shap.

Every model is fitted here, small, and checked against:

- its own output (``predict``, ``predict_proba``, ``decision_function``, or
  the path length behind ``score_samples``): ``predict_raw`` equals it to
  :data:`ROUND_TRIP_RTOL`. scikit-learn adds the same float64 leaf values as
  the loaded ensemble, except that forests divide the sum by the number of
  trees where the ensemble adds leaf values already divided, so the two
  differ only in the last bits.
- additivity: values plus the base value add up to that output, for the
  pattern tables (the default) and for the direct algorithm
  (``memory_limit=0``).
- brute-force Shapley values (``reference.py``) of the loaded ensemble on
  the first rows, to :data:`EXACT_ATOL`.
- ``shap.TreeExplainer`` where it supports the model, to
  :data:`SHAP_RTOL`. For these models shap rounds inputs to float32 as
  scikit-learn does and then computes in float64 (shap 0.51 and 0.54), so
  only the order of float64 additions differs. The largest differences
  measured in this file were 3e-15 in values up to 7 and 1.4e-14 in an
  isolation forest's base value of about 11.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastshap
import reference
from conftest import assert_shap_close

sklearn = pytest.importorskip("sklearn")

from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    RandomTreesEmbedding,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)

#: Relative tolerance of ``predict_raw`` against the model's own output.
ROUND_TRIP_RTOL = 1e-12

#: Tolerance of brute force and of the sum check, both float64 only.
EXACT_ATOL = 1e-9

#: Tolerance against shap, relative to the largest |value| (at least 1).
SHAP_RTOL = 1e-10

#: Rows explained by brute force per model.
BRUTE_FORCE_ROWS = 3

N_ROWS = 200
N_FEATURES = 5


# ---------------------------------------------------------------------------
# Data and checks
# ---------------------------------------------------------------------------


def make_rows(rng, n_rows=N_ROWS, n_features=N_FEATURES, missing_fraction=0.1):
    X = rng.normal(size=(n_rows, n_features))
    X[rng.random(X.shape) < missing_fraction] = np.nan
    return X


def make_signal(rng, X):
    """A target that depends on three columns, reading NaN as 0."""
    Z = np.nan_to_num(X)
    return (
        1.5 * Z[:, 0]
        + Z[:, 1] ** 2
        + np.sin(2 * Z[:, 2])
        + 0.3 * rng.normal(size=len(Z))
    )


def make_classes(rng, X, n_classes):
    """Unbalanced classes, so the class priors differ."""
    signal = make_signal(rng, X)
    edges = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1] ** 0.7)
    return np.digitize(signal, edges)


def library_output(model, X):
    """Return the output fastshap explains, as scikit-learn computes it."""
    if isinstance(model, IsolationForest):
        return isolation_path_length(model, X)
    if hasattr(model, "decision_function"):
        return model.decision_function(X)
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    if getattr(model, "loss", None) in ("poisson", "gamma"):
        return np.log(model.predict(X))
    return model.predict(X)


def average_path_length(n):
    """Return c(n), the mean path length of an unsuccessful BST search."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    harmonic = np.log(n - 1.0) + np.euler_gamma
    return 2.0 * harmonic - 2.0 * (n - 1.0) / n


def isolation_path_length(model, X):
    """Invert ``score_samples = -2 ** (-E[h] / c(max_samples_))`` for E[h]."""
    return -np.log2(-model.score_samples(X)) * average_path_length(model.max_samples_)


def check_model(model, X, *, output=None, brute_force=True):
    """Compare fastshap with the model's output and with brute force.

    Checks the round trip of ``predict_raw``, additivity of the default
    (tables) and direct (``memory_limit=0``) explanations against the
    library's output, that both give the same values, and brute force on
    the first rows. Returns the explainer and the default explanation.
    """
    explainer = fastshap.Explainer(model)
    ensemble = explainer.ensemble
    raw = explainer.predict_raw(X)
    if output is None:
        output = library_output(model, X)
    output = np.asarray(output, dtype=np.float64).reshape(raw.shape)
    scale = max(1.0, float(np.abs(output).max()))
    np.testing.assert_allclose(
        raw,
        output,
        rtol=0,
        atol=ROUND_TRIP_RTOL * scale,
        err_msg="predict_raw vs the library's output",
    )

    explanation = fastshap.explain(model, X)
    direct = fastshap.explain(model, X, memory_limit=0)
    margin = output if ensemble.n_outputs > 1 else output[:, 0]
    for name, result in (("tables", explanation), ("direct", direct)):
        assert_shap_close(
            result,
            explanation.values,
            explainer.expected_value,
            margin,
            atol=EXACT_ATOL * scale,
        )
        np.testing.assert_array_equal(
            result.base_values, explainer.expected_value, err_msg=name
        )
    np.testing.assert_allclose(
        direct.values,
        explanation.values,
        rtol=0,
        atol=EXACT_ATOL * scale,
        err_msg="direct algorithm vs tables",
    )

    if brute_force:
        rows = X[:BRUTE_FORCE_ROWS]
        expected, expected_base = reference.brute_force_shap(ensemble, np.asarray(rows))
        if ensemble.n_outputs == 1:
            expected = expected[:, :, 0]
        np.testing.assert_allclose(
            explanation.values[:BRUTE_FORCE_ROWS],
            expected,
            rtol=0,
            atol=EXACT_ATOL,
            err_msg="values vs brute force",
        )
        np.testing.assert_allclose(
            explanation.base_values,
            expected_base,
            rtol=0,
            atol=EXACT_ATOL,
            err_msg="base values vs brute force",
        )
    return explainer, explanation


def check_against_shap(model, X, explanation, *, shap_X=None):
    """Compare values and expected values with ``shap.TreeExplainer``."""
    shap = pytest.importorskip("shap")
    explainer = shap.TreeExplainer(model)
    values = np.asarray(explainer.shap_values(X if shap_X is None else shap_X))
    expected_value = np.atleast_1d(
        np.asarray(explainer.expected_value, dtype=np.float64)
    )

    assert values.shape == explanation.values.shape
    scale = max(1.0, float(np.abs(values).max()))
    np.testing.assert_allclose(
        explanation.values,
        values,
        rtol=0,
        atol=SHAP_RTOL * scale,
        err_msg="values vs shap",
    )
    np.testing.assert_allclose(
        explanation.base_values,
        expected_value.ravel(),
        rtol=0,
        atol=SHAP_RTOL * scale,
        err_msg="base values vs shap",
    )


# ---------------------------------------------------------------------------
# Decision trees and forests
# ---------------------------------------------------------------------------

SEEDS = {"random_state": 0}

TREE_REGRESSORS = {
    "decision-tree": lambda: DecisionTreeRegressor(max_depth=5, **SEEDS),
    "extra-tree": lambda: ExtraTreeRegressor(max_depth=5, **SEEDS),
    "random-forest": lambda: RandomForestRegressor(
        n_estimators=6, max_depth=4, **SEEDS
    ),
    "extra-trees": lambda: ExtraTreesRegressor(n_estimators=6, max_depth=4, **SEEDS),
    "random-forest-max-leaf-nodes": lambda: RandomForestRegressor(
        n_estimators=4, max_leaf_nodes=9, max_features=0.6, **SEEDS
    ),
}

TREE_CLASSIFIERS = {
    "decision-tree": lambda: DecisionTreeClassifier(max_depth=5, **SEEDS),
    "extra-tree": lambda: ExtraTreeClassifier(max_depth=5, **SEEDS),
    "random-forest": lambda: RandomForestClassifier(
        n_estimators=6, max_depth=4, **SEEDS
    ),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=6, max_depth=4, **SEEDS),
    "random-forest-balanced": lambda: RandomForestClassifier(
        n_estimators=4, max_depth=4, class_weight="balanced", **SEEDS
    ),
    "extra-trees-entropy-bootstrap": lambda: ExtraTreesClassifier(
        n_estimators=4, max_depth=4, criterion="entropy", bootstrap=True, **SEEDS
    ),
}


@pytest.mark.parametrize("name", list(TREE_REGRESSORS))
def test_tree_regressor_with_missing(name, rng):
    X = make_rows(rng)
    model = TREE_REGRESSORS[name]().fit(X, make_signal(rng, X))

    _, explanation = check_model(model, X[:40])

    assert explanation.values.shape == (40, N_FEATURES)
    check_against_shap(model, X[:40], explanation)


@pytest.mark.parametrize("name", ["decision-tree", "random-forest", "extra-trees"])
def test_tree_regressor_multi_output(name, rng):
    """A regressor fitted on two target columns has one output per column."""
    X = make_rows(rng)
    y = np.column_stack([make_signal(rng, X), np.nan_to_num(X[:, 3]) * 2.0])
    model = TREE_REGRESSORS[name]().fit(X, y)

    explainer, explanation = check_model(model, X[:40])

    assert explainer.ensemble.n_outputs == 2
    assert explanation.values.shape == (40, N_FEATURES, 2)
    check_against_shap(model, X[:40], explanation)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", list(TREE_CLASSIFIERS))
def test_tree_classifier_probabilities(name, n_classes, rng):
    """Classifiers explain predict_proba, with one output per class, two included."""
    X = make_rows(rng)
    model = TREE_CLASSIFIERS[name]().fit(X, make_classes(rng, X, n_classes))

    explainer, explanation = check_model(
        model, X[:40], output=model.predict_proba(X[:40])
    )

    assert explainer.ensemble.link == "identity"
    assert explanation.values.shape == (40, N_FEATURES, n_classes)
    # Probabilities sum to 1 in every row, so each feature's values sum to 0
    # over the classes and the base values to 1.
    np.testing.assert_allclose(explanation.values.sum(axis=2), 0.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(explanation.base_values.sum(), 1.0, rtol=0, atol=1e-12)
    check_against_shap(model, X[:40], explanation)


def test_forest_classifier_string_labels(rng):
    """Class labels of any type map to outputs in the order of classes_."""
    X = make_rows(rng)
    labels = np.array(["low", "mid", "high"])[make_classes(rng, X, 3)]
    model = RandomForestClassifier(n_estimators=3, max_depth=3, **SEEDS).fit(X, labels)

    _, explanation = check_model(model, X[:30], output=model.predict_proba(X[:30]))

    assert list(model.classes_) == ["high", "low", "mid"]
    assert explanation.values.shape == (30, N_FEATURES, 3)


def test_forest_sample_weight_cover(rng):
    """Covers are the weighted sample counts, as shap uses them."""
    X = make_rows(rng)
    weights = rng.uniform(0.1, 3.0, size=len(X))
    model = RandomForestRegressor(n_estimators=3, max_depth=4, **SEEDS)
    model.fit(X, make_signal(rng, X), sample_weight=weights)

    explainer, explanation = check_model(model, X[:30])

    first = model.estimators_[0].tree_
    np.testing.assert_array_equal(
        explainer.ensemble.nodes.cover[: first.node_count],
        first.weighted_n_node_samples,
    )
    check_against_shap(model, X[:30], explanation)


def test_dataframe_feature_names(rng):
    frame = pd.DataFrame(make_rows(rng), columns=["a", "b", "c", "d", "e"])
    model = RandomForestRegressor(n_estimators=3, max_depth=3, **SEEDS)
    model.fit(frame, make_signal(rng, frame.to_numpy()))

    explanation = fastshap.explain(model, frame.iloc[:10])

    assert explanation.feature_names == ["a", "b", "c", "d", "e"]
    total = explanation.values.sum(axis=1) + explanation.base_values[0]
    np.testing.assert_allclose(
        total, model.predict(frame.iloc[:10]), rtol=0, atol=1e-12
    )


def float32_boundary_rows(model, X):
    """Rows whose values sit on and next to each split threshold.

    scikit-learn compares ``float32(x) <= threshold``, so values within a
    float32 rounding of a threshold take the branch of their float32 value.
    """
    tree = model.tree_
    internal = tree.children_left >= 0
    rows = []
    for feature, threshold in zip(tree.feature[internal], tree.threshold[internal]):
        rounded = float(np.float32(threshold))
        candidates = [
            threshold,
            np.nextafter(threshold, np.inf),
            np.nextafter(threshold, -np.inf),
            rounded,
            float(np.nextafter(np.float32(rounded), np.float32(np.inf))),
            float(np.nextafter(np.float32(rounded), np.float32(-np.inf))),
            (rounded + float(np.nextafter(np.float32(rounded), np.float32(np.inf))))
            / 2,
        ]
        for value in candidates:
            row = X[len(rows) % len(X)].copy()
            row[feature] = value
            rows.append(row)
    return np.asarray(rows)


def test_float32_rounding_at_thresholds(rng):
    """Values next to a threshold go where float32(x) <= threshold sends them."""
    X = make_rows(rng, missing_fraction=0.0)
    model = DecisionTreeRegressor(max_depth=6, **SEEDS).fit(X, make_signal(rng, X))
    rows = float32_boundary_rows(model, X)

    explainer, _ = check_model(model, rows, brute_force=False)

    assert explainer.ensemble.float32_inputs
    assert explainer.ensemble.decision_type == "<="
    # The rows really cross: float64 comparisons would send some elsewhere.
    leaves32 = model.apply(rows.astype(np.float32))
    tree = model.tree_
    node = np.zeros(len(rows), dtype=np.int64)
    for _ in range(tree.max_depth):
        internal = tree.children_left[node] >= 0
        values = rows[np.arange(len(rows)), np.maximum(tree.feature[node], 0)]
        goes_left = values <= tree.threshold[node]
        step = np.where(goes_left, tree.children_left[node], tree.children_right[node])
        node = np.where(internal, step, node)
    assert np.any(node != leaves32)


def test_missing_direction_per_node(rng):
    """NaN follows missing_go_to_left at every node, also where it was unseen."""
    X = make_rows(rng, missing_fraction=0.0)
    X[:, 0][X[:, 1] > 0.5] = np.nan
    model = DecisionTreeRegressor(max_depth=5, **SEEDS).fit(X, make_signal(rng, X))
    probe = make_rows(rng, n_rows=60, missing_fraction=0.4)

    explainer, _ = check_model(model, probe)

    tree = model.tree_
    internal = tree.children_left >= 0
    assert len(set(tree.missing_go_to_left[internal].tolist())) == 2
    np.testing.assert_array_equal(
        explainer.ensemble.nodes.default_left[: tree.node_count][internal],
        tree.missing_go_to_left[internal].astype(bool),
    )


class _SubclassedForest(RandomForestRegressor):
    """A user subclass: found through the base class names in LOADERS."""


def test_subclass_loads(rng):
    X = make_rows(rng)
    model = _SubclassedForest(n_estimators=2, max_depth=3, **SEEDS).fit(
        X, make_signal(rng, X)
    )

    ensemble = fastshap.load_model(model)

    assert ensemble.library == "sklearn"
    assert ensemble.n_trees == 2


# ---------------------------------------------------------------------------
# Gradient boosting
# ---------------------------------------------------------------------------

GB_SETTINGS = {"n_estimators": 8, "max_depth": 3, "learning_rate": 0.3, **SEEDS}


@pytest.mark.parametrize(
    "loss", ["squared_error", "absolute_error", "huber", "quantile"]
)
def test_gradient_boosting_regressor_losses(loss, rng):
    """The default init (a DummyRegressor: mean or quantile) is the base score."""
    X = make_rows(rng, missing_fraction=0.0)
    model = GradientBoostingRegressor(loss=loss, **GB_SETTINGS).fit(
        X, make_signal(rng, X)
    )

    explainer, explanation = check_model(model, X[:40])

    np.testing.assert_array_equal(
        explainer.ensemble.base_score, model.init_.constant_[0]
    )
    check_against_shap(model, X[:40], explanation)


def test_gradient_boosting_subsample(rng):
    """Row subsampling gives trees whose covers count only in-bag rows."""
    X = make_rows(rng, missing_fraction=0.0)
    model = GradientBoostingRegressor(subsample=0.6, max_features=3, **GB_SETTINGS)
    model.fit(X, make_signal(rng, X))

    _, explanation = check_model(model, X[:40])

    check_against_shap(model, X[:40], explanation)


def test_gradient_boosting_classifier_binary(rng):
    """Two classes: one output, log-odds, base score logit(prior of class 1)."""
    X = make_rows(rng, missing_fraction=0.0)
    y = make_classes(rng, X, 2)
    model = GradientBoostingClassifier(**GB_SETTINGS).fit(X, y)

    explainer, explanation = check_model(model, X[:40])

    prior = np.mean(y == 1)
    assert explainer.ensemble.link == "logit"
    np.testing.assert_allclose(
        explainer.ensemble.base_score, [np.log(prior / (1 - prior))], rtol=1e-14
    )
    assert explanation.values.shape == (40, N_FEATURES)
    check_against_shap(model, X[:40], explanation)


@pytest.mark.parametrize("n_classes", [3, 4])
def test_gradient_boosting_classifier_multiclass(n_classes, rng):
    """One output per class, starting at the centred log of the class priors."""
    X = make_rows(rng, missing_fraction=0.0)
    y = make_classes(rng, X, n_classes)
    model = GradientBoostingClassifier(**GB_SETTINGS).fit(X, y)

    explainer, explanation = check_model(model, X[:40])

    log_priors = np.log(np.bincount(y) / len(y))
    assert explainer.ensemble.link == "softmax"
    assert explainer.ensemble.n_trees == model.estimators_.size
    np.testing.assert_allclose(
        explainer.ensemble.base_score,
        log_priors - log_priors.mean(),
        rtol=0,
        atol=1e-14,
    )
    assert explanation.values.shape == (40, N_FEATURES, n_classes)


def test_gradient_boosting_exponential_loss(rng):
    """The exponential loss's raw output is half the log-odds."""
    X = make_rows(rng, missing_fraction=0.0)
    y = make_classes(rng, X, 2)
    model = GradientBoostingClassifier(loss="exponential", **GB_SETTINGS).fit(X, y)

    explainer, _ = check_model(model, X[:40])

    prior = np.mean(y == 1)
    np.testing.assert_allclose(
        explainer.ensemble.base_score, [0.5 * np.log(prior / (1 - prior))], rtol=1e-14
    )


@pytest.mark.parametrize(
    "n_classes", [0, 2, 3], ids=["regressor", "binary", "multiclass"]
)
def test_gradient_boosting_init_zero(n_classes, rng):
    """init='zero' starts every output at 0."""
    X = make_rows(rng, missing_fraction=0.0)
    if n_classes:
        model = GradientBoostingClassifier(init="zero", **GB_SETTINGS)
        model.fit(X, make_classes(rng, X, n_classes))
    else:
        model = GradientBoostingRegressor(init="zero", **GB_SETTINGS)
        model.fit(X, make_signal(rng, X) + 3.0)

    explainer, _ = check_model(model, X[:40])

    np.testing.assert_array_equal(explainer.ensemble.base_score, 0.0)


@pytest.mark.parametrize(
    "init",
    [
        DummyRegressor(strategy="constant", constant=2.5),
        DummyRegressor(strategy="quantile", quantile=0.9),
        DummyRegressor(strategy="median"),
    ],
    ids=["constant", "quantile", "median"],
)
def test_gradient_boosting_dummy_regressor_init(init, rng):
    X = make_rows(rng, missing_fraction=0.0)
    model = GradientBoostingRegressor(init=init, **GB_SETTINGS).fit(
        X, make_signal(rng, X)
    )

    explainer, _ = check_model(model, X[:40])

    np.testing.assert_array_equal(
        explainer.ensemble.base_score, model.init_.constant_[0]
    )


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("strategy", ["prior", "uniform", "most_frequent", "constant"])
def test_gradient_boosting_dummy_classifier_init(strategy, n_classes, rng):
    """Every constant DummyClassifier, including the 0/1 probabilities that clip."""
    X = make_rows(rng, missing_fraction=0.0)
    y = make_classes(rng, X, n_classes)
    init = DummyClassifier(
        strategy=strategy, constant=1 if strategy == "constant" else None
    )
    model = GradientBoostingClassifier(init=init, n_estimators=4, max_depth=2, **SEEDS)
    model.fit(X, y)

    if strategy in ("most_frequent", "constant"):
        # The clipped 0/1 probabilities give leaves up to 1e15, and outputs
        # that cancel them to small values lose those digits in float64, so
        # only the loader is checked here.
        explainer = fastshap.Explainer(model)
        output = model.decision_function(X[:40]).reshape(40, -1)
        scale = np.abs(explainer.ensemble.nodes.value).sum()
        np.testing.assert_allclose(
            explainer.predict_raw(X[:40]), output, rtol=0, atol=1e-15 * scale
        )
    else:
        explainer, _ = check_model(model, X[:40])

    # The private _raw_predict_init is what decision_function adds to the trees.
    init_output = model._raw_predict_init(X[:1].astype(np.float32))[0]
    np.testing.assert_allclose(
        explainer.ensemble.base_score, init_output, rtol=1e-14, atol=1e-14
    )


@pytest.mark.parametrize(
    "init",
    [
        DecisionTreeRegressor(max_depth=2, **SEEDS),
        RandomForestRegressor(n_estimators=3, max_depth=3, **SEEDS),
        GradientBoostingRegressor(n_estimators=3, max_depth=2, **SEEDS),
        HistGradientBoostingRegressor(max_iter=3, max_depth=2),
    ],
    ids=[
        "decision-tree",
        "random-forest",
        "gradient-boosting",
        "hist-gradient-boosting",
    ],
)
def test_gradient_boosting_tree_regressor_init(init, rng):
    """A tree-model init adds its trees, which see the float32 inputs too."""
    X = make_rows(rng, missing_fraction=0.0)
    model = GradientBoostingRegressor(init=init, **GB_SETTINGS).fit(
        X, make_signal(rng, X)
    )

    explainer, _ = check_model(model, X[:40])

    n_init_trees = explainer.ensemble.n_trees - model.estimators_.size
    assert n_init_trees == fastshap.load_model(model.init_).n_trees
    assert explainer.ensemble.float32_inputs


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_boosting_tree_classifier_init(n_classes, rng):
    """A decision tree classifier init joins with its leaves in raw space."""
    X = make_rows(rng, missing_fraction=0.0)
    init = DecisionTreeClassifier(max_depth=2, **SEEDS)
    model = GradientBoostingClassifier(init=init, **GB_SETTINGS)
    model.fit(X, make_classes(rng, X, n_classes))

    explainer, _ = check_model(model, X[:40])

    assert explainer.ensemble.n_trees == model.estimators_.size + 1


@pytest.mark.parametrize(
    ("estimator", "init"),
    [
        (GradientBoostingRegressor, LinearRegression()),
        (
            GradientBoostingRegressor,
            HistGradientBoostingRegressor(max_iter=2, loss="poisson"),
        ),
        (GradientBoostingClassifier, LogisticRegression()),
        (GradientBoostingClassifier, DummyClassifier(strategy="stratified")),
        (GradientBoostingClassifier, RandomForestClassifier(n_estimators=2)),
    ],
    ids=[
        "linear",
        "log-link-tree",
        "logistic",
        "stratified-dummy",
        "forest-classifier",
    ],
)
def test_gradient_boosting_unsupported_init(estimator, init, rng):
    """An init whose prediction no tree represents raises, naming the init."""
    X = make_rows(rng, missing_fraction=0.0)
    y = (
        make_classes(rng, X, 2)
        if estimator is GradientBoostingClassifier
        else np.exp(make_signal(rng, X) / 3)
    )
    model = estimator(init=init, n_estimators=2, max_depth=2, **SEEDS).fit(X, y)

    with pytest.raises(fastshap.UnsupportedModelError, match=type(init).__name__):
        fastshap.Explainer(model)


def test_gradient_boosting_early_stopping(rng):
    """Early stopping keeps n_estimators_ stages, all of which predict uses."""
    X = make_rows(rng, n_rows=300, missing_fraction=0.0)
    y = make_signal(rng, X) + rng.normal(scale=2.0, size=len(X))
    model = GradientBoostingRegressor(
        n_estimators=200,
        learning_rate=0.5,
        max_depth=3,
        n_iter_no_change=2,
        validation_fraction=0.3,
        **SEEDS,
    ).fit(X, y)
    assert model.n_estimators_ < 200

    explainer, _ = check_model(model, X[:30])

    assert explainer.ensemble.n_trees == model.n_estimators_


# ---------------------------------------------------------------------------
# Histogram gradient boosting
# ---------------------------------------------------------------------------

HGB_SETTINGS = {"max_iter": 6, "max_depth": 3, "learning_rate": 0.3}


@pytest.mark.parametrize(
    "loss", ["squared_error", "absolute_error", "poisson", "gamma"]
)
def test_hist_gradient_boosting_regressor(loss, rng):
    X = make_rows(rng)
    y = (
        np.exp(make_signal(rng, X) / 3)
        if loss in ("poisson", "gamma")
        else make_signal(rng, X)
    )
    model = HistGradientBoostingRegressor(loss=loss, **HGB_SETTINGS).fit(X, y)

    explainer, explanation = check_model(model, X[:40])

    assert not explainer.ensemble.float32_inputs
    assert explainer.ensemble.link == (
        "log" if loss in ("poisson", "gamma") else "identity"
    )
    np.testing.assert_array_equal(
        explainer.ensemble.base_score, model._baseline_prediction.ravel()
    )
    check_against_shap(model, X[:40], explanation)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_hist_gradient_boosting_classifier(n_classes, rng):
    X = make_rows(rng)
    model = HistGradientBoostingClassifier(**HGB_SETTINGS).fit(
        X, make_classes(rng, X, n_classes)
    )

    explainer, explanation = check_model(model, X[:40])

    n_outputs = 1 if n_classes == 2 else n_classes
    assert explainer.ensemble.n_outputs == n_outputs
    assert explainer.ensemble.link == ("logit" if n_classes == 2 else "softmax")
    check_against_shap(model, X[:40], explanation)


def test_hist_gradient_boosting_float64_thresholds(rng):
    """Histogram gradient boosting compares float64 inputs at the threshold."""
    X = make_rows(rng, missing_fraction=0.0)
    model = HistGradientBoostingRegressor(**HGB_SETTINGS).fit(X, make_signal(rng, X))
    nodes = np.concatenate([p[0].nodes for p in model._predictors])
    splits = nodes[~nodes["is_leaf"].astype(bool)]
    rows = []
    for feature, threshold in zip(splits["feature_idx"], splits["num_threshold"]):
        for value in (
            threshold,
            np.nextafter(threshold, np.inf),
            np.nextafter(threshold, -np.inf),
        ):
            row = X[len(rows) % len(X)].copy()
            row[feature] = value
            rows.append(row)

    check_model(model, np.asarray(rows), brute_force=False)


def categorical_rows(rng, n_rows=N_ROWS):
    """Draw rows whose column 2 is one of the categories -2, 0, 3, 5, 7 or NaN."""
    X = make_rows(rng, n_rows=n_rows)
    X[:, 2] = rng.choice([-2.0, 0.0, 3.0, 5.0, 7.0], size=n_rows)
    X[rng.random(n_rows) < 0.1, 2] = np.nan
    return X


def categorical_target(rng, X):
    category = np.nan_to_num(X[:, 2], nan=1.0)
    effect = {-2.0: 1.0, 0.0: -1.0, 1.0: 2.5, 3.0: 2.0, 5.0: 0.0, 7.0: -2.0}
    return make_signal(rng, X) + np.vectorize(effect.get)(category)


@pytest.mark.parametrize("n_classes", [0, 3], ids=["regressor", "multiclass"])
def test_hist_gradient_boosting_categorical_values(n_classes, rng):
    """Numeric categories match by value, and unseen values go the missing way."""
    X = categorical_rows(rng)
    y = categorical_target(rng, X)
    if n_classes:
        model = HistGradientBoostingClassifier(categorical_features=[2], **HGB_SETTINGS)
        model.fit(X, np.digitize(y, np.quantile(y, [0.3, 0.6])))
    else:
        model = HistGradientBoostingRegressor(categorical_features=[2], **HGB_SETTINGS)
        model.fit(X, y)
    probe = categorical_rows(rng, n_rows=60)
    # Values unseen in training (1, 4, -1, 100) go the missing way, and -0.0
    # is category 0.
    probe[:8, 2] = [1.0, 4.0, -1.0, 100.0, -0.0, -2.0, 7.0, np.nan]

    explainer, explanation = check_model(model, probe)

    nodes = explainer.ensemble.nodes
    assert nodes.is_categorical.any()
    assert np.all(nodes.default_left[nodes.is_categorical])
    assert set(nodes.categories.tolist()) <= {-2.0, 0.0, 3.0, 5.0, 7.0}
    assert np.abs(explanation.values[:, 2]).max() > 0


@pytest.mark.xfail(
    strict=True,
    reason="fastshap truncates category values to integers (2.5 -> 2, -0.5 -> 0), "
    "while scikit-learn treats a fractional value as an unseen category",
)
def test_hist_gradient_boosting_fractional_category_input(rng):
    X = categorical_rows(rng)
    model = HistGradientBoostingRegressor(categorical_features=[2], **HGB_SETTINGS)
    model.fit(X, categorical_target(rng, X))
    probe = categorical_rows(rng, n_rows=40)
    probe[:, 2] = rng.choice([-0.5, 0.5, 3.5, 5.5], size=len(probe))

    raw = fastshap.Explainer(model).predict_raw(probe)[:, 0]

    np.testing.assert_allclose(raw, model.predict(probe), rtol=0, atol=1e-12)


def test_hist_gradient_boosting_categorical_column_order(rng):
    """Feature indices after the preprocessor's reordering map back to X's columns."""
    X = categorical_rows(rng)
    model = HistGradientBoostingRegressor(categorical_features=[2], **HGB_SETTINGS)
    model.fit(X, categorical_target(rng, X) + 3 * np.nan_to_num(X[:, 4]))

    explainer, _ = check_model(model, X[:40])

    nodes = explainer.ensemble.nodes
    numeric = (nodes.left >= 0) & ~nodes.is_categorical
    assert set(nodes.feature[nodes.is_categorical].tolist()) == {2}
    assert 2 not in set(nodes.feature[numeric].tolist())
    assert 4 in set(nodes.feature[numeric].tolist())


def test_hist_gradient_boosting_pandas_categories(rng):
    """String categories of a DataFrame are matched by label."""
    X = categorical_rows(rng)
    labels = np.array(["minus-two", "zero", "three", "five", "seven"])
    codes = np.searchsorted([-2.0, 0.0, 3.0, 5.0, 7.0], np.nan_to_num(X[:, 2], nan=0.0))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    frame["c"] = pd.Categorical(np.where(np.isnan(X[:, 2]), None, labels[codes]))
    model = HistGradientBoostingRegressor(**HGB_SETTINGS).fit(
        frame, categorical_target(rng, X)
    )
    probe = frame.iloc[:40]

    explainer = fastshap.Explainer(model)
    explanation = explainer.explain(probe)
    direct = fastshap.explain(model, probe, memory_limit=0)

    output = model.predict(probe)
    sorted_labels = sorted(labels.tolist())
    assert explainer.ensemble.categorical_features == {2: sorted_labels}
    np.testing.assert_allclose(
        explainer.predict_raw(probe)[:, 0], output, rtol=0, atol=1e-12
    )
    total = explanation.values.sum(axis=1) + explanation.base_values[0]
    np.testing.assert_allclose(total, output, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        direct.values, explanation.values, rtol=0, atol=EXACT_ATOL
    )
    assert explanation.feature_names == ["a", "b", "c", "d", "e"]
    assert np.abs(explanation.values[:, 2]).max() > 0
    # Brute force reads the category codes: positions in the sorted labels.
    assert list(probe["c"].cat.categories) == sorted_labels
    codes = probe["c"].cat.codes.to_numpy().astype(np.float64)
    numeric = probe.assign(c=np.where(codes < 0, np.nan, codes)).to_numpy(np.float64)
    expected, _ = reference.brute_force_shap(
        explainer.ensemble, numeric[:BRUTE_FORCE_ROWS]
    )
    np.testing.assert_allclose(
        explanation.values[:BRUTE_FORCE_ROWS],
        expected[:, :, 0],
        rtol=0,
        atol=EXACT_ATOL,
    )


def test_hist_gradient_boosting_non_integer_categories(rng):
    """Fractional category values cannot be matched after truncation: raise."""
    X = categorical_rows(rng)
    X[:, 2] = X[:, 2] + 0.5
    model = HistGradientBoostingRegressor(categorical_features=[2], **HGB_SETTINGS)
    model.fit(X, categorical_target(rng, X - 0.5))

    with pytest.raises(fastshap.UnsupportedModelError, match="non-integer categories"):
        fastshap.Explainer(model)


# ---------------------------------------------------------------------------
# Isolation forest
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_features", [1.0, 3], ids=["all-features", "three-features"]
)
def test_isolation_forest_path_length(max_features, rng):
    """The raw output is E[h(x)], from which score_samples follows."""
    X = make_rows(rng)
    model = IsolationForest(n_estimators=6, max_features=max_features, **SEEDS).fit(X)
    probe = make_rows(rng, n_rows=40)

    explainer, explanation = check_model(model, probe)

    raw = explainer.predict_raw(probe)[:, 0]
    score = -(2.0 ** (-raw / average_path_length(model.max_samples_)))
    np.testing.assert_allclose(score, model.score_samples(probe), rtol=1e-12, atol=0)
    # shap compares float64 inputs with the thresholds of its IsolationForest
    # trees (the other sklearn models round to float32 first), so it gets
    # float32-rounded rows, on which both comparisons agree.
    rounded = probe.astype(np.float32).astype(np.float64)
    check_against_shap(model, probe, explanation, shap_X=rounded)


def test_isolation_forest_leaf_values(rng):
    """Each leaf's value is (depth + c(n_node_samples)) / n_trees."""
    X = make_rows(rng, missing_fraction=0.0)
    model = IsolationForest(n_estimators=2, max_samples=64, **SEEDS).fit(X)

    ensemble = fastshap.load_model(model)

    tree = model.estimators_[0].tree_
    depth = np.zeros(tree.node_count)
    for node in range(tree.node_count):
        if tree.children_left[node] >= 0:
            depth[tree.children_left[node]] = depth[node] + 1
            depth[tree.children_right[node]] = depth[node] + 1
    leaves = np.flatnonzero(tree.children_left < 0)
    expected = [
        (depth[leaf] + average_path_length(tree.n_node_samples[leaf])) / 2
        for leaf in leaves
    ]
    np.testing.assert_allclose(ensemble.nodes.value[leaves, 0], expected, rtol=1e-15)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

ALL_ESTIMATORS = [
    DecisionTreeRegressor,
    DecisionTreeClassifier,
    ExtraTreeRegressor,
    ExtraTreeClassifier,
    RandomForestRegressor,
    RandomForestClassifier,
    ExtraTreesRegressor,
    ExtraTreesClassifier,
    GradientBoostingRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    HistGradientBoostingClassifier,
    IsolationForest,
]


@pytest.mark.parametrize("estimator", ALL_ESTIMATORS, ids=lambda e: e.__name__)
def test_unfitted_model_raises(estimator):
    with pytest.raises(fastshap.UnsupportedModelError, match="not fitted.*Call fit"):
        fastshap.Explainer(estimator())


def test_multi_output_classifier_raises(rng):
    X = make_rows(rng)
    y = np.column_stack([make_classes(rng, X, 2), make_classes(rng, X, 3)])
    model = RandomForestClassifier(n_estimators=2, max_depth=2, **SEEDS).fit(X, y)

    with pytest.raises(fastshap.UnsupportedModelError, match="2 target columns"):
        fastshap.Explainer(model)


def test_random_trees_embedding_raises(rng):
    model = RandomTreesEmbedding(n_estimators=2, max_depth=2, **SEEDS).fit(
        make_rows(rng)
    )

    with pytest.raises(fastshap.UnsupportedModelError, match="neither a classifier"):
        fastshap.Explainer(model)


def test_old_sklearn_version_raises(monkeypatch, rng):
    X = make_rows(rng)
    model = DecisionTreeRegressor(max_depth=2).fit(X, make_signal(rng, X))
    monkeypatch.setattr(sklearn, "__version__", "1.3.2")

    with pytest.raises(fastshap.UnsupportedModelError, match="scikit-learn 1.3.2"):
        fastshap.Explainer(model)


def test_newer_sklearn_version_warns(monkeypatch, rng):
    X = make_rows(rng)
    model = DecisionTreeRegressor(max_depth=2).fit(X, make_signal(rng, X))
    monkeypatch.setattr(sklearn, "__version__", "1.12.0")

    with pytest.warns(fastshap.FastshapWarning, match="scikit-learn 1.12.0") as record:
        fastshap.Explainer(model)

    assert record[0].filename == __file__
