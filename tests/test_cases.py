"""Reproducers of failures that other tree SHAP engines had, run against fastshap.

Each case file ``BNN_*.py`` in the cases folder defines ``case()``, which
trains a small model. It returns the model, the rows ``X`` to explain and
reference arrays: ``ref_output`` is the raw output that values plus expected
value add up to, and ``ref_phi*`` and ``ref_expected_value*`` are reference
SHAP values. The cases folder is ``shared/cases`` two levels above this file,
or the folder named by the environment variable ``FASTSHAP_CASES_DIR``. This
module is skipped when the folder does not exist.

These are single inputs. The kinds of failure they stand for are tested in
general in ``test_models_xgboost.py``, ``test_kernels_path_dependent.py`` and
``test_interventional.py``. Every case also runs in both modes, path-dependent
and interventional, with interaction values.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastshap
from conftest import assert_shap_close

CASES_DIR = Path(
    os.environ.get("FASTSHAP_CASES_DIR", Path(__file__).parents[2] / "shared" / "cases")
)

if not CASES_DIR.is_dir():
    pytest.skip(
        f"cases folder {CASES_DIR} not found; set FASTSHAP_CASES_DIR to its path",
        allow_module_level=True,
    )

xgb = pytest.importorskip("xgboost")

from test_kernels_path_dependent import KERNEL_PATHS  # noqa: E402
from test_models_xgboost import margin_tolerance, shap_tolerance  # noqa: E402


def _dropout_weights_in_model() -> bool:
    """Whether this XGBoost writes DART weights to ``gradient_booster.model``.

    XGBoost 3.2 writes ``weight_drop`` beside the ``gbtree`` section of a
    ``dart`` booster. XGBoost 3.4 deprecates ``booster="dart"``, saves every
    tree model as ``gbtree`` and, when ``rate_drop`` is set, writes
    ``weight_drop`` inside its ``model``.
    """
    X = np.arange(8.0).reshape(4, 2)
    params = {
        "booster": "dart",
        "rate_drop": 0.5,
        "skip_drop": 0.0,
        "max_depth": 1,
        "nthread": 1,
        "verbosity": 0,
    }
    booster = xgb.train(params, xgb.DMatrix(X, X[:, 0], nthread=1), 1)
    section = json.loads(booster.save_raw(raw_format="json"))["learner"][
        "gradient_booster"
    ]
    return "weight_drop" in section.get("model", {})


DROPOUT_WEIGHTS_IN_MODEL = _dropout_weights_in_model()

B09_CASE_FILE_OUTDATED = pytest.mark.skipif(
    DROPOUT_WEIGHTS_IN_MODEL,
    reason="the B09 case file reads weight_drop from learner.gradient_booster, "
    f"which XGBoost {xgb.__version__} no longer writes (KeyError in case())",
)

#: Cases with path-dependent references whose models fastshap loads.
LOADED_CASES = [
    pytest.param(name, marks=B09_CASE_FILE_OUTDATED if name == "B09" else ())
    for name in ["B01", "B03", "B04", "B08", "B09", "B12", "B16", "B24"]
] + ["B06", "B13", "B17", "B21"]

#: Keyword arguments of ``case()``. B13 computes its per-leaf reference in
#: pure Python, about 2 s per row on a 2-core machine, so one row is enough.
CASE_ARGUMENTS = {"B13": {"n_rows": 1}}


def _single_thread_libraries():
    """Limit OpenMP and BLAS to one thread while a case trains its models.

    On a 2-core machine shared with other processes, XGBoost's OpenMP threads
    made building all cases take 44 s instead of 6 s.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


@functools.cache
def load_case(name: str) -> dict:
    """Import the case file of ``name`` (for example ``"B04"``) and build its case."""
    paths = sorted(CASES_DIR.glob(f"{name}_*.py"))
    if not paths:
        pytest.skip(f"no case file {name}_*.py in {CASES_DIR}")
    spec = importlib.util.spec_from_file_location(f"fastshap_case_{name}", paths[0])
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        pytest.skip(f"case {name} needs a package that is not installed: {error}")
    with _single_thread_libraries():
        return module.case(**CASE_ARGUMENTS.get(name, {}))


def first_key(case: dict, *keys: str):
    """Return the value of the first of ``keys`` that the case defines."""
    for key in keys:
        if key in case:
            return case[key]
    raise KeyError(f"the case defines none of {keys}")


def path_dependent_references(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """Reference values and expected value of the path-dependent mode."""
    phi = first_key(
        case, "ref_phi_tree_path_dependent", "ref_phi", "ref_phi_in_caller_order"
    )
    expected_value = first_key(
        case, "ref_expected_value_tree_path_dependent", "ref_expected_value"
    )
    phi = np.asarray(phi, dtype=np.float64)
    expected_value = np.atleast_1d(expected_value).astype(np.float64)
    return phi, expected_value


# ---------------------------------------------------------------------------
# XGBoost cases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOADED_CASES)
def test_case_matches_reference(name):
    """Values, expected value and additivity agree to float32 rounding."""
    case = load_case(name)
    explainer = fastshap.Explainer(case["model"])
    ensemble = explainer.ensemble
    phi, expected_value = path_dependent_references(case)
    margin = np.asarray(case["ref_output"], dtype=np.float64)

    explanation = explainer.explain(case["X"])

    values_atol = shap_tolerance(ensemble, phi)
    assert_shap_close(
        explanation,
        phi,
        expected_value,
        margin,
        atol=values_atol,
        additivity_atol=values_atol + margin_tolerance(ensemble, margin),
    )


@pytest.mark.parametrize("name", LOADED_CASES)
def test_case_exact_additivity(name):
    """Values plus expected value equal fastshap's own raw prediction to 1e-9."""
    case = load_case(name)
    explainer = fastshap.Explainer(case["model"])

    explanation = explainer.explain(case["X"])

    own = explainer.predict_raw(case["X"])
    if explanation.values.ndim == 2:
        own = own[:, 0]
        total = explanation.values.sum(axis=1) + explanation.base_values[0]
    else:
        total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(
        total, own, rtol=0, atol=1e-9 * max(1.0, np.abs(own).max())
    )


@pytest.mark.parametrize("name", LOADED_CASES)
def test_case_expected_value_fixed(name):
    """expected_value is final at construction and unchanged by explain()."""
    case = load_case(name)
    _, expected_value = path_dependent_references(case)
    explainer = fastshap.Explainer(case["model"])

    before = explainer.expected_value.copy()
    explanation = explainer.explain(case["X"])

    np.testing.assert_allclose(
        before,
        expected_value,
        rtol=0,
        atol=shap_tolerance(explainer.ensemble, expected_value),
    )
    np.testing.assert_array_equal(explainer.expected_value, before)
    np.testing.assert_array_equal(explanation.base_values, before)


def test_b01_base_score_per_class():
    case = load_case("B01")

    ensemble = fastshap.load_model(case["model"])

    assert len(set(case["base_score_vector"].tolist())) == 3
    np.testing.assert_array_equal(ensemble.base_score, case["base_score_vector"])


def test_b04_categorical_splits_loaded():
    case = load_case("B04")

    ensemble = fastshap.load_model(case["model"])

    assert ensemble.nodes.is_categorical.any()
    assert ensemble.categorical_features == {1: ["a", "b", "c", "d"]}


def test_b08_model_missing_value_used():
    case = load_case("B08")

    ensemble = fastshap.load_model(case["model"])

    assert ensemble.missing == case["missing"]
    assert np.any(case["X"] == case["missing"])


@B09_CASE_FILE_OUTDATED
def test_b09_dart_weights_loaded():
    case = load_case("B09")

    ensemble = fastshap.load_model(case["model"])

    assert not np.allclose(case["tree_weights"], 1.0)
    np.testing.assert_array_equal(ensemble.tree_weights, case["tree_weights"])


@pytest.mark.parametrize("dart_booster", [True, False], ids=["dart", "gbtree"])
def test_b09_dropout_weights(dart_booster):
    """B09's model, checked against pred_contribs without reading the JSON.

    With ``rate_drop`` and ``booster="gbtree"``, XGBoost 3.2 drops no trees
    and 3.4 drops trees as DART did. Either way the values must match.
    """
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = X[:, 0] + X[:, 1] ** 2
    booster_kind = {"booster": "dart"} if dart_booster else {}
    model = xgb.XGBRegressor(
        n_estimators=20,
        max_depth=3,
        rate_drop=0.3,
        skip_drop=0.0,
        n_jobs=1,
        random_state=0,
        **booster_kind,
    )
    with warnings.catch_warnings():
        # XGBoost 3.4 warns that booster="dart" is deprecated.
        warnings.simplefilter("ignore", UserWarning)
        model.fit(X, y)
    rows = X[:6]
    dmatrix = xgb.DMatrix(rows, nthread=1)
    contributions = model.get_booster().predict(dmatrix, pred_contribs=True)
    margin = model.get_booster().predict(dmatrix, output_margin=True)
    explainer = fastshap.Explainer(model)
    phi = contributions[:, :-1].astype(np.float64)

    explanation = explainer.explain(rows)

    values_atol = shap_tolerance(explainer.ensemble, phi)
    assert_shap_close(
        explanation,
        phi,
        contributions[0, -1],
        margin,
        atol=values_atol,
        additivity_atol=values_atol + margin_tolerance(explainer.ensemble, margin),
    )


def test_b12_rows_at_split_go_right():
    """x at the split, and float64 values either side of it, all round to the split."""
    case = load_case("B12")
    feature, split = case["root_split"]
    explainer = fastshap.Explainer(case["model"])

    explanation = explainer.explain(case["X"])

    assert np.all(np.float32(case["X"][:, feature]) == np.float32(split))
    np.testing.assert_array_equal(explanation.values[1], explanation.values[0])
    np.testing.assert_array_equal(explanation.values[2], explanation.values[0])
    margin = case["ref_output"]
    assert margin[0] == margin[1] == margin[2]


def test_b16_caller_column_order():
    case = load_case("B16")

    explanation = fastshap.explain(case["model"], case["X"])

    assert explanation.feature_names == ["c", "a", "b"]
    # Column "a", second in the caller's order, carries the large effect.
    assert np.abs(explanation.values).mean(axis=0).argmax() == 1
    aligned = fastshap.explain(case["model"], case["X_aligned"])
    np.testing.assert_array_equal(explanation.values, aligned.values[:, [2, 0, 1]])


def test_b24_zero_cover_references():
    """Finite values equal to the exact reference and to XGBoost's pred_contribs."""
    case = load_case("B24")
    explainer = fastshap.Explainer(case["model"])

    explanation = explainer.explain(case["X"])

    assert np.any(explainer.ensemble.nodes.cover == 0)
    assert np.all(np.isfinite(explanation.values))
    atol = shap_tolerance(explainer.ensemble, case["ref_phi"])
    np.testing.assert_allclose(explanation.values, case["ref_phi"], rtol=0, atol=atol)
    np.testing.assert_allclose(
        explanation.values, case["ref_phi_xgboost"], rtol=0, atol=atol
    )
    assert explanation.base_values[0] == pytest.approx(
        case["ref_expected_value_xgboost"], abs=atol
    )


# ---------------------------------------------------------------------------
# Cases with several models, and outputs not supported yet
# ---------------------------------------------------------------------------


def _case_models(case: dict) -> dict:
    """Every model in a case: ``model`` and extras such as ``model_binary``."""
    return {
        key: value
        for key, value in case.items()
        if key.startswith("model") and key != "model_output"
    }


@pytest.mark.parametrize("name", ["B17", "B21"])
def test_case_extra_models(name):
    """Every further model of a case (``model_<suffix>``) matches its references."""
    case = load_case(name)
    extras = {key: model for key, model in _case_models(case).items() if key != "model"}
    assert extras, "the case has no further models"

    for key, model in extras.items():
        suffix = key[len("model"):]
        explainer = fastshap.Explainer(model)
        expected = np.asarray(case[f"ref_phi{suffix}"], dtype=np.float64)
        margin = np.asarray(case[f"ref_output{suffix}"], dtype=np.float64)

        explanation = explainer.explain(case["X"])

        values_atol = shap_tolerance(explainer.ensemble, expected)
        assert_shap_close(
            explanation,
            expected,
            case[f"ref_expected_value{suffix}"],
            margin,
            atol=values_atol,
            additivity_atol=values_atol + margin_tolerance(explainer.ensemble, margin),
        )


def test_b22_probability_output():
    """Binary: shap's rescaled definition; values add up to predict_proba."""
    case = load_case("B22")

    explanation = fastshap.explain(
        case["model"], case["X"], background=case["background"], output="probability"
    )

    # The reference rescales XGBoost's float32 margins.
    np.testing.assert_allclose(
        explanation.values, case["ref_phi_shap_semantics"], rtol=0, atol=1e-6
    )
    assert explanation.base_values[0] == pytest.approx(case["ref_expected_value"], abs=1e-6)
    total = explanation.values.sum(axis=1) + explanation.base_values[0]
    np.testing.assert_allclose(total, case["ref_output"], rtol=0, atol=1e-6)
    # shap's definition is not the exact Shapley value of the probability.
    assert np.abs(explanation.values - case["ref_phi_exact_shapley"]).max() > 1e-3


def test_b22_softmax_probability_output():
    """Softmax: per-class values add up to predict_proba; base is the background mean."""
    case = load_case("B22")

    explanation = fastshap.explain(
        case["model_multiclass"], case["X"], background=case["background"],
        output="probability",
    )

    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, case["ref_output_multiclass"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        explanation.base_values, case["ref_expected_value_multiclass"], rtol=0, atol=1e-6
    )


# ---------------------------------------------------------------------------
# Interventional values and interaction values of every case
# ---------------------------------------------------------------------------

#: Cases with brute-force interventional references.
INTERVENTIONAL_CASES = [
    pytest.param(name, marks=B09_CASE_FILE_OUTDATED if name == "B09" else ())
    for name in ["B01", "B04", "B06", "B08", "B09", "B12"]
]


def _background(case: dict):
    """The case's background rows, or its explained rows when it has none."""
    return case["background"] if "background" in case else case["X"]


@pytest.mark.parametrize("name", INTERVENTIONAL_CASES)
def test_case_interventional_reference(name):
    """Interventional values match the case's brute force over the library's predict."""
    case = load_case(name)
    explainer = fastshap.Explainer(case["model"], background=case["background"])
    phi = np.asarray(case["ref_phi_interventional"], dtype=np.float64)
    expected_value = np.atleast_1d(case["ref_expected_value_interventional"])
    margin = np.asarray(case["ref_output"], dtype=np.float64)

    explanation = explainer.explain(case["X"])

    values_atol = shap_tolerance(explainer.ensemble, phi)
    assert_shap_close(
        explanation,
        phi.reshape(explanation.values.shape),
        expected_value,
        margin,
        atol=values_atol,
        additivity_atol=values_atol + margin_tolerance(explainer.ensemble, margin),
    )


@pytest.mark.parametrize("name", LOADED_CASES + ["B22"])
@pytest.mark.parametrize("memory_limit", list(KERNEL_PATHS.values()), ids=list(KERNEL_PATHS))
def test_case_both_modes(name, memory_limit):
    """Every case in both modes: exact additivity, and interactions that sum to the values."""
    case = load_case(name)
    background = _background(case)

    for options in ({}, {"background": background}):
        explainer = fastshap.Explainer(case["model"], memory_limit=memory_limit, **options)
        explanation = explainer.explain(case["X"], interactions=True)

        own = explainer.predict_raw(case["X"])
        values = explanation.values.reshape(len(own), -1, own.shape[1])
        total = values.sum(axis=1) + explanation.base_values
        np.testing.assert_allclose(
            total, own, rtol=0, atol=1e-9 * max(1.0, np.abs(own).max())
        )
        interactions = explanation.interaction_values
        np.testing.assert_allclose(
            interactions.sum(axis=2), explanation.values, rtol=0, atol=1e-9
        )
        np.testing.assert_array_equal(interactions, np.swapaxes(interactions, 1, 2))
        if options:
            mean = explainer.predict_raw(background).mean(axis=0)
            np.testing.assert_allclose(explainer.expected_value, mean, rtol=0, atol=1e-12)


def test_b04_interactions_match_xgboost():
    """Categorical splits: interaction values equal pred_interactions."""
    case = load_case("B04")
    explainer = fastshap.Explainer(case["model"])

    explanation = explainer.explain(case["X"], interactions=True)

    expected = np.asarray(case["ref_interactions"], dtype=np.float64)
    atol = shap_tolerance(explainer.ensemble, expected)
    np.testing.assert_allclose(explanation.interaction_values, expected, rtol=0, atol=atol)


# ---------------------------------------------------------------------------
# B13: deep scikit-learn trees, packed by hand
# ---------------------------------------------------------------------------


def _pack_forest(model) -> fastshap.TreeEnsemble:
    """Pack a fitted RandomForestClassifier's public ``tree_`` arrays, as probabilities.

    Each leaf contains its class fractions divided by the number of trees, so
    the raw output is ``predict_proba``. scikit-learn sends ``x`` left when
    ``float32(x) <= threshold`` and numbers every child after its parent.
    """
    n_trees = len(model.estimators_)
    n_classes = len(model.classes_)
    arrays = {
        name: [] for name in ("left", "right", "feature", "threshold", "cover", "value")
    }
    offsets = [0]
    for estimator in model.estimators_:
        tree = estimator.tree_
        start = offsets[-1]
        is_leaf = tree.children_left < 0
        counts = tree.value[:, 0, :]
        arrays["left"].append(np.where(is_leaf, -1, tree.children_left + start))
        arrays["right"].append(np.where(is_leaf, -1, tree.children_right + start))
        arrays["feature"].append(np.where(is_leaf, -1, tree.feature))
        arrays["threshold"].append(tree.threshold)
        arrays["cover"].append(tree.weighted_n_node_samples)
        arrays["value"].append(counts / counts.sum(axis=1, keepdims=True) / n_trees)
        offsets.append(start + tree.node_count)
    n_nodes = offsets[-1]
    nodes = fastshap.NodeArrays(
        left=np.concatenate(arrays["left"]).astype(np.int32),
        right=np.concatenate(arrays["right"]).astype(np.int32),
        feature=np.concatenate(arrays["feature"]).astype(np.int32),
        threshold=np.concatenate(arrays["threshold"]).astype(np.float64),
        default_left=np.ones(n_nodes, dtype=bool),
        cover=np.concatenate(arrays["cover"]).astype(np.float64),
        value=np.concatenate(arrays["value"]).astype(np.float64),
        is_categorical=np.zeros(n_nodes, dtype=bool),
        category_offsets=np.zeros(n_nodes + 1, dtype=np.int64),
        categories=np.zeros(0, dtype=np.float64),
    )
    return fastshap.TreeEnsemble(
        nodes=nodes,
        tree_offsets=np.asarray(offsets, dtype=np.int64),
        tree_outputs=np.tile(np.array([[0, n_classes]], dtype=np.int32), (n_trees, 1)),
        tree_weights=np.ones(n_trees),
        base_score=np.zeros(n_classes),
        n_features=model.n_features_in_,
        feature_names=[f"f{j}" for j in range(model.n_features_in_)],
        decision_type="<=",
        float32_inputs=True,
    )


@pytest.mark.parametrize(
    "memory_limit", list(KERNEL_PATHS.values()), ids=list(KERNEL_PATHS)
)
def test_b13_deep_forest_exact(memory_limit):
    """Trees about 75 levels deep, against B13's exact per-leaf reference, to 1e-9."""
    pytest.importorskip("sklearn")
    case = load_case("B13")
    ensemble = _pack_forest(case["model"])

    explanation = fastshap.explain(ensemble, case["X"], memory_limit=memory_limit)

    assert ensemble.max_depth == max(case["tree_depths"])
    assert ensemble.max_depth > 60
    assert_shap_close(
        explanation,
        case["ref_phi"],
        case["ref_expected_value"],
        case["ref_output"],
        atol=1e-9,
    )
