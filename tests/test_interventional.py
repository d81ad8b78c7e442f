"""Interventional SHAP values, interaction values and probability output.

References, from the strictest:

- Brute force from the definitions in ``reference.py``: the interventional
  game ``v(S) = mean over background rows b of f(x_S, b_rest)`` enumerated
  over every subset, its Shapley values and Shapley interaction values, and
  the path-dependent game for interactions without a background. Values,
  interaction values and base values must agree to 1e-9 (:data:`ATOL`).
- The same brute force over hybrid rows predicted by the model's own library,
  which checks the loaded trees and the kernels together. It agrees to 1e-9
  where the library predicts in float64 (LightGBM, scikit-learn). For
  XGBoost, which predicts in float32, it agrees to the rounding bound of
  :func:`float32_margin_error`.
- ``shap.TreeExplainer(model, background,
  feature_perturbation="interventional")``, its ``model_output="probability"``,
  and XGBoost's ``pred_interactions``. These round to float32 somewhere, so
  they agree only to the bounds of :func:`shap_tolerance` and
  :func:`pred_interactions_tolerance`.

Every exactness test runs twice: once with the pattern tables (a memory
limit of 1 GiB) and once with ``memory_limit=0``, which forces the direct
per-leaf algorithm.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
import zlib
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import pytest

import fastshap
import reference
from conftest import FLOAT32_ROUNDOFF, assert_shap_close
from reference import SyntheticSpec

#: Exact algorithms in float64 agree with the references to a few ulps of
#: values of order 10, and 1e-9 still catches any wrong weight or branch.
ATOL = 1e-9

#: Values that must not change at all, up to the order of float64 sums.
IDENTICAL_ATOL = 1e-12

#: Tolerance of sums against the probabilities of ``predict_proba``, which
#: XGBoost computes in float32 (LightGBM and scikit-learn in float64).
PROBABILITY_ATOL = 1e-6

#: memory_limit values that select the tabulated and the direct algorithm.
KERNEL_PATHS = {"tables": 1 << 30, "direct": 0}


@pytest.fixture(params=list(KERNEL_PATHS), ids=list(KERNEL_PATHS))
def memory_limit(request):
    return KERNEL_PATHS[request.param]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def with_output_axis(values: np.ndarray, n_outputs: int) -> np.ndarray:
    """Add the output axis that fastshap drops for single-output models."""
    values = np.asarray(values)
    return values[..., None] if n_outputs == 1 else values


def drop_single_output(values: np.ndarray, n_outputs: int) -> np.ndarray:
    """Drop the last axis of reference values of a single-output ensemble."""
    return values[..., 0] if n_outputs == 1 else values


def check_interaction_structure(explanation, values_alone: np.ndarray) -> None:
    """Check that interaction matrices are exactly symmetric and sum to the SHAP values.

    ``values_alone`` are the SHAP values of the same rows computed without
    ``interactions``, by the order-1 kernels, so the row sums are checked
    against an independent computation.
    """
    n_outputs = explanation.n_outputs
    interactions = with_output_axis(explanation.interaction_values, n_outputs)
    scale = max(1.0, float(np.abs(interactions).max()))
    np.testing.assert_array_equal(
        interactions, np.swapaxes(interactions, 1, 2),
        err_msg="interaction matrices are not symmetric",
    )
    np.testing.assert_allclose(
        interactions.sum(axis=2), with_output_axis(values_alone, n_outputs), rtol=0,
        atol=IDENTICAL_ATOL * scale * interactions.shape[1],
        err_msg="interaction rows vs SHAP values",
    )
    np.testing.assert_allclose(
        explanation.values, values_alone, rtol=0, atol=IDENTICAL_ATOL * scale,
        err_msg="values from interactions=True vs interactions=False",
    )


def check_against_brute_force(model, X, background, memory_limit, *, X_codes=None,
                              background_codes=None, expected=None):
    """Explain ``X`` against ``background`` and compare with brute force.

    The references get ``X_codes`` and ``background_codes``: the same rows as
    float arrays in model column order, with category codes for categorical
    columns. They default to ``X`` and ``background``. ``expected`` may hold
    the references already computed, as :func:`interventional_references`
    returns them. Returns the explainer.
    """
    X_codes = X if X_codes is None else X_codes
    background_codes = background if background_codes is None else background_codes
    explainer = fastshap.Explainer(model, background=background, memory_limit=memory_limit)
    ensemble = explainer.ensemble
    if memory_limit == 0:
        # Trees of a single leaf have empty tables, which fit a budget of 0.
        assert explainer.tables.table.size == 0
    else:
        assert explainer.tables.tree_uses_table.any()
    if expected is None:
        expected = interventional_references(ensemble, X_codes, background_codes)
    values, base, interactions = expected
    margin = reference.predict_raw(ensemble, X_codes)
    n_outputs = ensemble.n_outputs

    explanation = explainer.explain(X)
    assert_shap_close(
        explanation, drop_single_output(values, n_outputs), base,
        drop_single_output(margin, n_outputs), atol=ATOL,
    )

    with_interactions = explainer.explain(X, interactions=True)
    assert with_interactions.interaction_values.shape == drop_single_output(
        interactions, n_outputs
    ).shape
    np.testing.assert_allclose(
        with_interactions.interaction_values, drop_single_output(interactions, n_outputs),
        rtol=0, atol=ATOL, err_msg="interaction values vs brute force",
    )
    check_interaction_structure(with_interactions, explanation.values)
    return explainer


def interventional_references(ensemble, X, background):
    """Return brute-force values, base values and interaction values.

    Shapes are (n_rows, n_features, n_outputs), (n_outputs,) and (n_rows,
    n_features, n_features, n_outputs).
    """
    values, base = reference.brute_force_interventional(ensemble, X, background)
    interactions = reference.brute_force_interactions(ensemble, X, background)
    return values, base, interactions


def subset_members(n_players: int) -> np.ndarray:
    """Return a boolean array whose entry ``[mask, j]`` is true when player ``j`` is in ``mask``."""
    masks = np.arange(1 << n_players)
    return ((masks[:, None] >> np.arange(n_players)) & 1).astype(bool)


def restricted_brute_force(ensemble, X, background, players):
    """Return interventional values by enumerating subsets of ``players`` only.

    Every other feature must have the same value in each explained row and
    each background row. Such a feature changes no hybrid row, so it is a
    null player: its values are 0 and the Shapley values of the others do not
    depend on it. This allows brute force on models with many features.

    Returns values (n_rows, n_features, n_outputs) and interaction values
    (n_rows, n_features, n_features, n_outputs).
    """
    others = np.setdiff1d(np.arange(ensemble.n_features), players)
    X = np.asarray(X, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    for rows in (X, background):
        shared = np.broadcast_to(X[:1, others], rows[:, others].shape)
        np.testing.assert_array_equal(rows[:, others], shared)
    members = subset_members(len(players))
    n_features = ensemble.n_features
    values = np.zeros((len(X), n_features, ensemble.n_outputs))
    interactions = np.zeros((len(X), n_features, n_features, ensemble.n_outputs))
    pairs = np.ix_(players, players)
    for row, x in enumerate(X):
        hybrids = np.repeat(background[None], len(members), axis=0)
        for mask, member in enumerate(members):
            from_x = [players[j] for j in np.flatnonzero(member)]
            hybrids[mask][:, from_x] = x[from_x]
        margins = reference.predict_raw(ensemble, hybrids.reshape(-1, n_features))
        game = margins.reshape(len(members), len(background), -1).mean(axis=1)
        values[row, players] = reference.shapley_values(game, len(players))
        interactions[row][pairs] = reference.shapley_interactions(game, len(players))
    return values, interactions


def library_brute_force(predict_margin: Callable, X: np.ndarray, background: np.ndarray):
    """Return interventional values of the margins that a library predicts itself.

    Every hybrid row (``x`` on the subset, the background row elsewhere) is
    predicted by ``predict_margin``, which maps rows of shape (n, n_features)
    to margins of shape (n, n_outputs). Returns values (n_rows, n_features,
    n_outputs) and the mean margin of the background, (n_outputs,).
    """
    n_features = X.shape[1]
    members = subset_members(n_features)
    background_margin = predict_margin(background)
    values = np.zeros((len(X), n_features, background_margin.shape[1]))
    for row, x in enumerate(X):
        hybrids = np.where(members[:, None, :], x[None, None, :], background[None, :, :])
        margins = predict_margin(hybrids.reshape(-1, n_features))
        game = margins.reshape(len(members), len(background), -1).mean(axis=1)
        values[row] = reference.shapley_values(game, n_features)
    return values, background_margin.mean(axis=0)


def leaf_magnitude_sum(ensemble) -> float:
    """Return ``A``, the sum over trees of the largest |leaf value| of each tree."""
    nodes = ensemble.nodes
    total = 0.0
    for tree in range(ensemble.n_trees):
        start, stop = ensemble.tree_offsets[tree], ensemble.tree_offsets[tree + 1]
        first, last = ensemble.tree_outputs[tree]
        is_leaf = nodes.left[start:stop] < 0
        total += float(np.abs(nodes.value[start:stop][is_leaf][:, first:last]).max())
    return total


def float32_margin_error(ensemble, margin) -> float:
    """Bound the float32 rounding error of a margin that XGBoost predicts.

    XGBoost adds the base score and T leaf values in float32: by the bound of
    recursive summation the error is at most ``T u sum |terms|`` with
    ``u = 2**-24``, plus ``u |margin|`` for rounding the result.
    """
    n_terms = ensemble.n_trees + 1
    total = leaf_magnitude_sum(ensemble) + float(np.abs(ensemble.base_score).max())
    return FLOAT32_ROUNDOFF * (n_terms * total + float(np.abs(margin).max()))


def shap_tolerance(ensemble, values) -> float:
    """Estimate the float32 rounding error of shap's interventional values.

    The estimate assumes that shap rounds each leaf value to float32 once,
    off by at most ``u |leaf|`` with ``u = 2**-24``. A tree's interventional
    value is a weighted mean (weights summing to 1) of differences of two of
    its leaves, so it moves by at most ``2 u max|leaf|``, and the sum over
    trees by ``2 u A`` with ``A`` from :func:`leaf_magnitude_sum`. Rounding
    the result adds ``u |value|``. The sigmoid's secant slope is at most 1/4,
    so the estimate also covers ``model_output="probability"``. The largest
    difference measured on this file's models was 0.15 u A (shap 0.51 and
    0.54).
    """
    return FLOAT32_ROUNDOFF * (2 * leaf_magnitude_sum(ensemble) + float(np.abs(values).max()))


def pred_interactions_tolerance(ensemble, values) -> float:
    """Bound the float32 rounding error of XGBoost's ``pred_interactions``.

    XGBoost runs TreeSHAP in float32 twice per feature, with the feature
    fixed on and off, at about ``4 D`` operations per tree of depth D. For T
    trees, ``u = 2**-24`` and ``A`` from :func:`leaf_magnitude_sum`, the
    error is about ``2 u A (T + 4 D)``, the bound of ``pred_contribs`` in
    test_models_xgboost.py. Rounding the result adds ``u |value|``. The
    largest error measured on this file's models was 0.05 u A (T + 4 D).
    """
    rounding = 2 * leaf_magnitude_sum(ensemble) * (ensemble.n_trees + 4 * ensemble.max_depth)
    return FLOAT32_ROUNDOFF * (rounding + float(np.abs(values).max()))


def sigmoid(margin):
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))


def softmax(margin: np.ndarray) -> np.ndarray:
    shifted = np.exp(margin - margin.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def softmax_probability_reference(ensemble, X, background) -> np.ndarray:
    """Return probability SHAP values of a softmax model from their definition.

    Take each background row ``b`` alone. ``phi_b`` (features by classes)
    are the raw Shapley values of the game with ``b`` as the only background
    row. ``J_b`` is the mean of the softmax Jacobian ``diag(p) - p p^T`` at
    ``m_b + t (m_x - m_b)`` over ``t`` in [0, 1]. The result is the mean of
    ``phi_b J_b^T`` over the background rows. ``J_b`` comes from adaptive
    quadrature (``scipy.integrate.quad_vec``) to about 1e-13, independent of
    fastshap's fixed Gauss-Legendre rule.

    Returns an array of shape (n_rows, n_features, n_outputs).
    """
    integrate = pytest.importorskip("scipy.integrate")
    X = np.asarray(X, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    background_margin = reference.predict_raw(ensemble, background)
    values = np.zeros((len(X), ensemble.n_features, ensemble.n_outputs))
    for row, x in enumerate(X):
        hybrids = reference.hybrid_predictions(ensemble, x, background)
        # Every feature comes from x in the last subset.
        margin_x = hybrids[-1, 0]
        for b, margin_b in enumerate(background_margin):
            phi = reference.shapley_values(hybrids[:, b, :], ensemble.n_features)
            delta = margin_x - margin_b

            def jacobian(t, start=margin_b, step=delta):
                p = softmax(start + t * step)
                return np.diag(p) - np.outer(p, p)

            mean_jacobian, _ = integrate.quad_vec(jacobian, 0.0, 1.0, epsabs=1e-14, epsrel=1e-13)
            values[row] += phi @ mean_jacobian.T
        values[row] /= len(background)
    return values


def logistic_twin(ensemble):
    """Return the one-output logistic ensemble whose margin is ``m_1 - m_0``.

    ``ensemble`` has two outputs and each tree adds to one of them. The
    softmax probability of class 1 is ``sigmoid(m_1 - m_0)``, so the twin
    explains the same probability with the logistic formula: trees of
    output 1 keep their leaf values and trees of output 0 are negated.
    """
    assert ensemble.n_outputs == 2
    first = ensemble.tree_outputs[:, 0]
    assert np.all(ensemble.tree_outputs[:, 1] == first + 1), "a tree adds to both outputs"
    value = np.zeros((len(ensemble.nodes.left), 1))
    for tree in range(ensemble.n_trees):
        start, stop = ensemble.tree_offsets[tree], ensemble.tree_offsets[tree + 1]
        sign = 1.0 if first[tree] == 1 else -1.0
        value[start:stop, 0] = sign * ensemble.nodes.value[start:stop, first[tree]]
    return dataclasses.replace(
        ensemble,
        nodes=ensemble.nodes._replace(value=value),
        tree_outputs=np.tile(np.array([[0, 1]], dtype=np.int32), (ensemble.n_trees, 1)),
        base_score=np.array([ensemble.base_score[1] - ensemble.base_score[0]]),
        link="logit",
    )


# ---------------------------------------------------------------------------
# Synthetic ensembles against brute force
# ---------------------------------------------------------------------------


class SyntheticCase(NamedTuple):
    """A synthetic ensemble and how to draw rows for it."""

    spec: SyntheticSpec
    categorical_features: tuple[int, ...] = ()
    missing_probability: float = 0.1
    #: A value written into about 30% of the cells, besides NaN.
    sentinel: float | None = None


SYNTHETIC_CASES = {
    "repeated-features": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=6, n_features=5, path_features=2,
                      leaf_probability=0.1)
    ),
    "categorical": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=4, n_features=5, categorical_features=(0, 3),
                      n_categories=6),
        categorical_features=(0, 3),
    ),
    "missing-values": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=4, n_features=5, categorical_features=(1,)),
        categorical_features=(1,),
        missing_probability=0.4,
    ),
    "missing-sentinel": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=4, n_features=5, missing=0.25),
        sentinel=0.25,
    ),
    "zero-covers": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=4, n_features=5, zero_cover_probability=0.35,
                      consistent_covers=False)
    ),
    "several-outputs": SyntheticCase(
        SyntheticSpec(n_trees=6, max_depth=4, n_features=5, n_outputs=3,
                      output_ranges="random")
    ),
    "vector-leaves": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=4, n_features=5, n_outputs=2,
                      output_ranges="all")
    ),
    "single-leaf-trees": SyntheticCase(
        SyntheticSpec(n_trees=6, max_depth=4, n_features=5, single_leaf_probability=0.5)
    ),
    "stumps": SyntheticCase(SyntheticSpec(n_trees=6, max_depth=1, n_features=5)),
    "less-equal-float32-breadth-first": SyntheticCase(
        SyntheticSpec(n_trees=4, max_depth=4, n_features=5, decision_type="<=",
                      float32_inputs=True, breadth_first=True)
    ),
}


def background_size(name: str, spec: SyntheticSpec) -> list[int]:
    """Return how often each distinct background row is repeated.

    ``"many-rows"`` has more rows than any leaf has patterns: a path of d
    distinct features has at most ``2**d`` of them.
    """
    if name == "one-row":
        return [1]
    if name == "duplicates":
        return [3, 1, 2]
    if name == "many-rows":
        return [1] * (2 ** min(spec.max_depth, spec.n_features) + 5)
    return [1] * 6


BACKGROUNDS = ["one-row", "duplicates", "many-rows", "distinct"]


def draw_rows(rng, case: SyntheticCase, n_rows: int) -> np.ndarray:
    rows = reference.random_rows(
        rng, n_rows, case.spec.n_features, categorical_features=case.categorical_features,
        n_categories=case.spec.n_categories, missing_probability=case.missing_probability,
    )
    if case.sentinel is not None:
        rows[rng.random(rows.shape) < 0.3] = case.sentinel
    return rows


@functools.lru_cache(maxsize=None)
def synthetic_problem(case_name: str, background_name: str):
    """Build one case's ensemble, rows, background and brute-force references.

    Cached, so both kernel paths compare with the same references.
    """
    case = SYNTHETIC_CASES[case_name]
    rng = np.random.default_rng(zlib.crc32(f"{case_name}/{background_name}".encode()))
    ensemble = reference.random_ensemble(rng, case.spec)
    X = draw_rows(rng, case, 4)
    repeats = background_size(background_name, case.spec)
    distinct = draw_rows(rng, case, len(repeats))
    background = np.repeat(distinct, repeats, axis=0)
    if background_name == "one-row":
        # A row equal to the only background row has all values 0.
        X[0] = background[0]
    expected = interventional_references(ensemble, X, background)
    return ensemble, X, background, expected


@pytest.mark.parametrize("background_name", BACKGROUNDS)
@pytest.mark.parametrize("case_name", list(SYNTHETIC_CASES))
def test_synthetic_interventional(case_name, background_name, memory_limit):
    ensemble, X, background, expected = synthetic_problem(case_name, background_name)

    check_against_brute_force(ensemble, X, background, memory_limit, expected=expected)


def test_synthetic_cases_have_hard_parts():
    """The cases above contain what their names promise."""
    categorical, *_ = synthetic_problem("categorical", "distinct")
    zero_covers, *_ = synthetic_problem("zero-covers", "distinct")
    single_leaf, *_ = synthetic_problem("single-leaf-trees", "distinct")
    _, X, background, _ = synthetic_problem("missing-values", "distinct")
    _, X_sentinel, background_sentinel, _ = synthetic_problem("missing-sentinel", "distinct")
    _, _, background_one, expected_one = synthetic_problem("categorical", "one-row")

    assert categorical.nodes.is_categorical.any()
    assert np.any(zero_covers.nodes.cover == 0)
    assert np.any(np.diff(single_leaf.tree_offsets) == 1)
    assert np.isnan(X).any()
    assert np.isnan(background).any()
    assert np.any(X_sentinel == 0.25)
    assert np.any(background_sentinel == 0.25)
    assert len(background_one) == 1
    assert np.all(expected_one[0][0] == 0.0)


@pytest.mark.parametrize("case_name", list(SYNTHETIC_CASES))
def test_synthetic_path_dependent_interactions(case_name, memory_limit):
    """Without a background, interactions are those of the path-dependent game."""
    ensemble, X, _, _ = synthetic_problem(case_name, "distinct")
    expected = reference.brute_force_interactions(ensemble, X, None)
    expected_values, expected_base = reference.brute_force_shap(ensemble, X)
    n_outputs = ensemble.n_outputs
    explainer = fastshap.Explainer(ensemble, memory_limit=memory_limit)

    values_alone = explainer.explain(X).values
    explanation = explainer.explain(X, interactions=True)

    np.testing.assert_allclose(
        explanation.interaction_values, drop_single_output(expected, n_outputs), rtol=0,
        atol=ATOL, err_msg="interaction values vs brute force",
    )
    assert_shap_close(
        explanation, drop_single_output(expected_values, n_outputs), expected_base,
        drop_single_output(reference.predict_raw(ensemble, X), n_outputs), atol=ATOL,
    )
    check_interaction_structure(explanation, values_alone)


def chain_tree(rng, features: list[int], repeated: list[int] = ()) -> reference._Node:
    """Build a chain whose spine goes left at every split, ``x < 0`` (then ``x < -0.5``).

    The spine splits on ``features`` in order and then again on
    ``repeated``, so its deepest leaf has ``len(features)`` distinct
    features. Each split's right child is a leaf. Rows of -1.0 follow the
    whole spine.
    """
    splits = [(feature, 0.0) for feature in features] + [(f, -0.5) for f in repeated]
    node = reference._Node(cover=1.0, value=rng.normal(size=1))
    for depth, (feature, threshold) in reversed(list(enumerate(splits))):
        cover = 2.0**-depth
        node = reference._Node(
            feature=feature,
            threshold=threshold,
            default_left=bool(depth % 2),
            cover=cover,
            left=node,
            right=reference._Node(cover=cover / 2, value=rng.normal(size=1)),
        )
    return node


def rows_differing_on(rng, n_rows: int, n_features: int, players: list[int]) -> np.ndarray:
    """Draw rows of -1.0 whose ``players`` columns are -1, -0.7, 1 or NaN."""
    rows = np.full((n_rows, n_features), -1.0)
    rows[:, players] = rng.choice([-1.0, -0.7, 1.0, np.nan], size=(n_rows, len(players)))
    return rows


#: Path lengths (distinct features) and the features on which rows differ.
#: Patterns are words of 63 bits, so the players of 64 and 130 sit on both
#: sides of word boundaries (slot s of the spine's leaf is feature s).
LONG_PATHS = {
    20: [1, 5, 12, 19, 21],
    64: [1, 61, 62, 63, 65],
    130: [1, 62, 63, 126, 131],
}


@pytest.mark.parametrize("n_path_features", list(LONG_PATHS))
def test_long_paths(n_path_features, memory_limit, rng):
    """Paths of more than 16 distinct features, over one and several pattern words.

    More than 16 distinct features make the background summary sort the
    patterns instead of counting them in an array.
    """
    n_features = n_path_features + 2
    trees = [
        chain_tree(rng, list(range(n_path_features)), repeated=[3, 7]),
        chain_tree(rng, list(range(2, n_path_features + 2))),
    ]
    ensemble = reference.pack_trees(
        trees, [(0, 1)] * 2, n_features=n_features, n_outputs=1, base_score=[0.3]
    )
    players = LONG_PATHS[n_path_features]
    X = rows_differing_on(rng, 3, n_features, players)
    background = rows_differing_on(rng, 6, n_features, players)
    expected_values, expected_interactions = restricted_brute_force(
        ensemble, X, background, players
    )
    expected_base = reference.predict_raw(ensemble, background).mean(axis=0)
    explainer = fastshap.Explainer(ensemble, background=background, memory_limit=memory_limit)

    explanation = explainer.explain(X)
    with_interactions = explainer.explain(X, interactions=True)

    assert explainer.paths.max_slots == n_path_features
    assert_shap_close(
        explanation, expected_values[:, :, 0], expected_base,
        reference.predict_raw(ensemble, X)[:, 0], atol=ATOL,
    )
    assert np.all(np.abs(explanation.values[:, players]).max(axis=0) > 1e-3)
    np.testing.assert_allclose(
        with_interactions.interaction_values, expected_interactions[..., 0], rtol=0,
        atol=ATOL, err_msg="interaction values vs brute force",
    )
    check_interaction_structure(with_interactions, explanation.values)


# ---------------------------------------------------------------------------
# Trained models
# ---------------------------------------------------------------------------


class TrainedCase(NamedTuple):
    """A trained model with rows to explain and a background.

    ``X`` and ``background`` are what fastshap and shap get (DataFrames for
    XGBoost's categorical model). ``X_codes`` and ``background_codes`` are
    the same rows as float arrays in model order, with category codes.
    """

    model: Any
    X: Any
    background: Any
    X_codes: np.ndarray
    background_codes: np.ndarray
    #: Maps float rows in model order to the library's margins, (n, n_outputs).
    predict_margin: Callable
    #: Whether the library computes margins in float32 (XGBoost).
    float32_margin: bool
    #: The library's probabilities, (n, n_classes), or None for regression.
    predict_proba: Callable | None = None


#: Rows per trained model: the first BACKGROUND_ROWS are the background, the
#: next EXPLAINED_ROWS are explained.
BACKGROUND_ROWS = 12
EXPLAINED_ROWS = 3

#: Parameters that keep LightGBM quiet, single-threaded and reproducible.
LIGHTGBM_QUIET = {"verbose": -1, "n_jobs": 1, "deterministic": True}


def make_rows(rng, n_rows: int, n_features: int = 5, missing_fraction: float = 0.1):
    X = rng.normal(size=(n_rows, n_features))
    X[rng.random(X.shape) < missing_fraction] = np.nan
    return X


def make_signal(rng, X) -> np.ndarray:
    """A target with main effects and one interaction, reading NaN as 0."""
    Z = np.nan_to_num(X)
    return (
        1.5 * Z[:, 0] + Z[:, 1] ** 2 + np.sin(2 * Z[:, 2]) + Z[:, 3] * Z[:, 4]
        + 0.3 * rng.normal(size=len(Z))
    )


def make_classes(rng, X, n_classes: int) -> np.ndarray:
    signal = make_signal(rng, X)
    edges = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1])
    return np.digitize(signal, edges)


def split_rows(X):
    """Split the first rows of ``X`` into the background and the explained rows."""
    background = X[:BACKGROUND_ROWS].copy()
    explained = X[BACKGROUND_ROWS : BACKGROUND_ROWS + EXPLAINED_ROWS].copy()
    return explained, background


def add_missing(explained, background):
    """Put a NaN into one explained row and one background row, in place."""
    explained[0, 1] = np.nan
    background[2, 0] = np.nan


def xgboost_margin(booster, categorical: bool = False) -> Callable:
    xgb = pytest.importorskip("xgboost")

    def predict(rows):
        dmatrix = xgb.DMatrix(
            rows, feature_names=booster.feature_names, feature_types=booster.feature_types,
            enable_categorical=categorical, nthread=1,
        )
        margin = booster.predict(dmatrix, output_margin=True)
        return np.asarray(margin, dtype=np.float64).reshape(len(rows), -1)

    return predict


def numeric_case(model, explained, background, predict_margin, *, float32_margin=False,
                 predict_proba=None) -> TrainedCase:
    return TrainedCase(
        model, explained, background, explained, background, predict_margin,
        float32_margin, predict_proba,
    )


def _train_xgboost(name: str, rng) -> TrainedCase:
    xgb = pytest.importorskip("xgboost")
    if name == "xgboost-categorical":
        return _train_xgboost_categorical(rng)
    X = make_rows(rng, 300)
    if name == "xgboost-regression":
        model = xgb.XGBRegressor(n_estimators=12, max_depth=3, n_jobs=1)
        model.fit(X, make_signal(rng, X))
    elif name == "xgboost-binary":
        model = xgb.XGBClassifier(n_estimators=12, max_depth=3, n_jobs=1)
        model.fit(X, make_classes(rng, X, 2))
    elif name == "xgboost-softprob3":
        model = xgb.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1)
        model.fit(X, make_classes(rng, X, 3))
    elif name == "xgboost-dart":
        model = xgb.XGBRegressor(
            booster="dart", rate_drop=0.3, skip_drop=0.0, n_estimators=12, max_depth=3,
            n_jobs=1,
        )
        with warnings.catch_warnings():
            # XGBoost 3.4 warns that booster="dart" is deprecated, but it still trains.
            warnings.filterwarnings("ignore", message=".*booster=dart.*deprecated")
            model.fit(X, make_signal(rng, X))
    else:
        raise KeyError(name)
    explained, background = split_rows(X)
    add_missing(explained, background)
    predict_proba = model.predict_proba if hasattr(model, "predict_proba") else None
    return numeric_case(
        model, explained, background, xgboost_margin(model.get_booster()),
        float32_margin=True, predict_proba=predict_proba,
    )


def _train_xgboost_categorical(rng) -> TrainedCase:
    """An XGBRegressor with native categorical splits on a pandas column."""
    xgb = pytest.importorskip("xgboost")
    labels = list("pqrstu")
    numeric = make_rows(rng, 300)
    frame = pd.DataFrame(numeric[:, :4], columns=list("abcd"))
    frame["e"] = pd.Categorical(rng.choice(labels, len(frame)), categories=labels)
    frame.loc[rng.random(len(frame)) < 0.1, "e"] = np.nan
    target = make_signal(rng, numeric) + np.where(frame["e"].isin(["p", "r", "u"]), 2.0, 0.0)
    model = xgb.XGBRegressor(
        n_estimators=10, max_depth=3, enable_categorical=True, tree_method="hist",
        max_cat_to_onehot=1, n_jobs=1,
    ).fit(frame, target)
    codes = frame.copy()
    category_codes = frame["e"].cat.codes.astype(np.float64)
    codes["e"] = category_codes.where(category_codes >= 0)
    codes = codes.to_numpy(dtype=np.float64)
    rows = slice(BACKGROUND_ROWS, BACKGROUND_ROWS + EXPLAINED_ROWS)
    return TrainedCase(
        model, frame.iloc[rows], frame.iloc[:BACKGROUND_ROWS], codes[rows],
        codes[:BACKGROUND_ROWS], xgboost_margin(model.get_booster(), categorical=True),
        True,
    )


def _train_lightgbm(name: str, rng) -> TrainedCase:
    lgb = pytest.importorskip("lightgbm")
    settings = {"n_estimators": 12, "num_leaves": 8, **LIGHTGBM_QUIET}
    fit_options = {}
    X = make_rows(rng, 400)
    if name == "lightgbm-regression":
        model = lgb.LGBMRegressor(**settings)
        y = make_signal(rng, X)
    elif name == "lightgbm-binary":
        model = lgb.LGBMClassifier(**settings)
        y = make_classes(rng, X, 2)
    elif name == "lightgbm-multiclass":
        model = lgb.LGBMClassifier(**{**settings, "n_estimators": 6})
        y = make_classes(rng, X, 3)
    elif name == "lightgbm-categorical":
        X[:, 4] = rng.integers(0, 8, size=len(X))
        X[rng.random(len(X)) < 0.1, 4] = np.nan
        codes = np.nan_to_num(X[:, 4], nan=-1)
        y = make_signal(rng, X) + 2.0 * np.isin(codes, [1, 3, 5]) - 1.5 * (codes == 6)
        model = lgb.LGBMRegressor(
            **settings, min_data_per_group=5, cat_smooth=1.0, min_child_samples=5
        )
        fit_options = {"categorical_feature": [4]}
    elif name == "lightgbm-missing":
        # Heavy NaN, and zero_as_missing makes 0.0 missing too.
        X = make_rows(rng, 400, missing_fraction=0.3)
        X[rng.random(X.shape) < 0.1] = 0.0
        y = make_signal(rng, X)
        model = lgb.LGBMRegressor(**settings, zero_as_missing=True)
    else:
        raise KeyError(name)
    model.fit(X, y, **fit_options)
    explained, background = split_rows(X)
    add_missing(explained, background)
    if name == "lightgbm-missing":
        explained[1, 2] = 0.0
        background[3, 1] = 0.0

    def predict(rows):
        margin = model.booster_.predict(rows, raw_score=True)
        return np.asarray(margin, dtype=np.float64).reshape(len(rows), -1)

    predict_proba = model.predict_proba if hasattr(model, "predict_proba") else None
    return numeric_case(model, explained, background, predict, predict_proba=predict_proba)


def _train_sklearn(name: str, rng) -> TrainedCase:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )

    if name == "sklearn-random-forest":
        X = make_rows(rng, 300)
        model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0)
        model.fit(X, make_signal(rng, X))
        margin_of = model.predict
    elif name == "sklearn-gradient-boosting-classifier":
        # GradientBoostingClassifier does not accept NaN.
        X = make_rows(rng, 300, missing_fraction=0.0)
        model = GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=0)
        model.fit(X, make_classes(rng, X, 2))
        margin_of = model.decision_function
    elif name == "sklearn-hist-gradient-boosting":
        X = make_rows(rng, 300)
        model = HistGradientBoostingRegressor(max_iter=8, max_depth=3, learning_rate=0.3)
        model.fit(X, make_signal(rng, X))
        margin_of = model.predict
    elif name == "sklearn-hist-gradient-boosting-classifier":
        X = make_rows(rng, 300)
        model = HistGradientBoostingClassifier(max_iter=8, max_depth=3, learning_rate=0.3)
        model.fit(X, make_classes(rng, X, 2))
        margin_of = model.decision_function
    else:
        raise KeyError(name)
    explained, background = split_rows(X)
    if name != "sklearn-gradient-boosting-classifier":
        add_missing(explained, background)

    def predict(rows):
        return np.asarray(margin_of(rows), dtype=np.float64).reshape(len(rows), -1)

    predict_proba = model.predict_proba if hasattr(model, "predict_proba") else None
    return numeric_case(model, explained, background, predict, predict_proba=predict_proba)


TRAINED_MODELS = [
    "xgboost-regression",
    "xgboost-binary",
    "xgboost-softprob3",
    "xgboost-categorical",
    "xgboost-dart",
    "lightgbm-regression",
    "lightgbm-binary",
    "lightgbm-multiclass",
    "lightgbm-categorical",
    "lightgbm-missing",
    "sklearn-random-forest",
    "sklearn-gradient-boosting-classifier",
    "sklearn-hist-gradient-boosting",
    "sklearn-hist-gradient-boosting-classifier",
]


@functools.lru_cache(maxsize=None)
def trained_case(name: str) -> TrainedCase:
    """Train one model of :data:`TRAINED_MODELS`, seeded by its name, once per session."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name.startswith("xgboost"):
        return _train_xgboost(name, rng)
    if name.startswith("lightgbm"):
        return _train_lightgbm(name, rng)
    return _train_sklearn(name, rng)


@functools.lru_cache(maxsize=None)
def trained_references(name: str):
    """Compute brute-force references of a trained model's loaded ensemble, once per session."""
    case = trained_case(name)
    ensemble = fastshap.load_model(case.model)
    return interventional_references(ensemble, case.X_codes, case.background_codes)


@pytest.mark.parametrize("name", TRAINED_MODELS)
def test_trained_vs_brute_force(name, memory_limit):
    """Values and interactions of the loaded trees match brute force to 1e-9."""
    case = trained_case(name)

    explainer = check_against_brute_force(
        case.model, case.X, case.background, memory_limit, X_codes=case.X_codes,
        background_codes=case.background_codes, expected=trained_references(name),
    )

    if name.endswith("categorical"):
        assert explainer.ensemble.nodes.is_categorical.any()
    if name == "xgboost-dart":
        assert not np.all(explainer.ensemble.tree_weights == 1.0)
    if name == "lightgbm-missing":
        assert explainer.ensemble.nodes.zero_is_missing.any()


@pytest.mark.parametrize("name", TRAINED_MODELS)
def test_trained_vs_library_hybrids(name, memory_limit):
    """Brute force over hybrid rows that the library itself predicts."""
    case = trained_case(name)
    explainer = fastshap.Explainer(case.model, background=case.background,
                                   memory_limit=memory_limit)
    n_outputs = explainer.ensemble.n_outputs

    explanation = explainer.explain(case.X)
    expected, expected_base = library_brute_force(
        case.predict_margin, case.X_codes, case.background_codes
    )

    margin = case.predict_margin(case.X_codes)
    if case.float32_margin:
        margins = np.concatenate([margin, case.predict_margin(case.background_codes)])
        margin_error = float32_margin_error(explainer.ensemble, margins)
        atol = 2 * margin_error
    else:
        margin_error = atol = ATOL * max(1.0, float(np.abs(margin).max()))
    # A Shapley value is a weighted sum of differences of two margins with
    # weights summing to 1, so it errs by at most twice the margin error.
    assert_shap_close(
        explanation, drop_single_output(expected, n_outputs), expected_base,
        drop_single_output(margin, n_outputs), atol=atol,
        additivity_atol=atol + margin_error,
    )


def shap_interventional(model, background, X, model_output: str = "raw"):
    """Return shap's interventional values (fastshap's layout) and expected values.

    Skips the test when shap is not installed or raises for the model.
    shap raises bare ``Exception`` for models it does not know, so any
    exception means unsupported here.
    """
    shap = pytest.importorskip("shap")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.TreeExplainer(
                model, background, feature_perturbation="interventional",
                model_output=model_output,
            )
            # The additivity check of check_against_shap gives the clearer message.
            output = explainer.shap_values(X, check_additivity=False)
    except Exception as error:  # noqa: BLE001 - shap raises bare Exception
        pytest.skip(f"shap {shap.__version__} does not support this model: {error}")
    values = np.asarray(output, dtype=np.float64)
    if isinstance(output, list):
        # Older shap returns one (n_rows, n_features) array per class.
        values = np.transpose(values, (1, 2, 0))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    return values, expected, shap.__version__


def check_against_shap(case: TrainedCase, output: str = "raw") -> None:
    """Compare fastshap's interventional values of ``case`` with shap's.

    shap is a reference only where its own values add up: shap's values plus
    fastshap's base value (checked against brute force elsewhere) must equal
    the model's output, or the test is skipped. Measured with shap 0.51 and
    0.54, they do not add up for DART (shap's values are those of the trees
    without their DART weights), LightGBM's categorical splits and
    ``zero_as_missing``, and HistGradientBoosting models with a NaN in a
    background row. fastshap matches brute force over the library's own
    predictions on all of them.
    """
    explainer = fastshap.Explainer(case.model, background=case.background, output=output)
    ensemble = explainer.ensemble
    explanation = explainer.explain(case.X)
    shap_output = "raw" if output == "raw" else "probability"

    values, expected_value, version = shap_interventional(
        case.model, case.background, case.X, model_output=shap_output
    )

    assert values.shape == explanation.values.shape
    tolerance = shap_tolerance(ensemble, values)
    if output == "raw":
        target = drop_single_output(case.predict_margin(case.X_codes), ensemble.n_outputs)
        target_error = (
            float32_margin_error(ensemble, target) if case.float32_margin
            else ATOL * max(1.0, float(np.abs(target).max()))
        )
    else:
        target = case.predict_proba(case.X)[:, 1]
        target_error = PROBABILITY_ATOL
    base = explanation.base_values if values.ndim == 3 else explanation.base_values[0]
    shap_total = values.sum(axis=1) + base
    if not np.allclose(shap_total, target, rtol=0, atol=tolerance + target_error):
        pytest.skip(
            f"shap {version}'s values do not add up to the model's output, by up to "
            f"{np.abs(shap_total - target).max():.3g}, so they are no reference"
        )
    np.testing.assert_allclose(
        explanation.values, values, rtol=0, atol=tolerance, err_msg="values vs shap"
    )
    shap_base = expected_value if values.ndim == 3 else expected_value[0]
    shap_own_total = values.sum(axis=1) + shap_base
    # NOTE: shap 0.51 with XGBoost 3.2 returns a wrong expected value for one
    # class of the multi-class model here (its values still match), so the
    # base value is compared only where shap's own sums add up.
    if np.allclose(shap_own_total, target, rtol=0, atol=tolerance + target_error):
        np.testing.assert_allclose(
            explanation.base_values, expected_value, rtol=0,
            atol=tolerance + target_error, err_msg="base values vs shap",
        )


@pytest.mark.parametrize("name", TRAINED_MODELS)
def test_trained_vs_shap(name):
    check_against_shap(trained_case(name))


# ---------------------------------------------------------------------------
# Interaction values against XGBoost's pred_interactions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xgboost-regression", "xgboost-binary", "xgboost-softprob3"])
def test_interactions_vs_xgboost(name, memory_limit):
    """Path-dependent interaction values match ``pred_interactions``.

    XGBoost returns (n, p + 1, p + 1), or (n, k, p + 1, p + 1) for k
    classes, with the bias in the last row and column. fastshap returns
    (n, p, p) or (n, p, p, k).
    """
    xgb = pytest.importorskip("xgboost")
    case = trained_case(name)
    booster = case.model.get_booster()
    rows = np.concatenate([case.background, case.X])
    explainer = fastshap.Explainer(case.model, memory_limit=memory_limit)
    ensemble = explainer.ensemble

    explanation = explainer.explain(rows, interactions=True)
    values_alone = explainer.explain(rows).values
    dmatrix = xgb.DMatrix(rows, nthread=1)
    contributions = booster.predict(dmatrix, pred_interactions=True).astype(np.float64)

    if contributions.ndim == 4:
        expected = np.transpose(contributions[:, :, :-1, :-1], (0, 2, 3, 1))
        bias = contributions[0, :, -1, -1]
    else:
        expected = contributions[:, :-1, :-1]
        bias = contributions[:1, -1, -1]
    tolerance = pred_interactions_tolerance(ensemble, expected)
    assert explanation.interaction_values.shape == expected.shape
    np.testing.assert_allclose(
        explanation.interaction_values, expected, rtol=0, atol=tolerance,
        err_msg="interaction values vs pred_interactions",
    )
    np.testing.assert_allclose(
        explanation.base_values, bias, rtol=0, atol=tolerance,
        err_msg="base values vs the bias of pred_interactions",
    )
    check_interaction_structure(explanation, values_alone)

    brute_force = reference.brute_force_interactions(ensemble, case.X, None)
    np.testing.assert_allclose(
        explanation.interaction_values[len(case.background):],
        drop_single_output(brute_force, ensemble.n_outputs), rtol=0, atol=ATOL,
        err_msg="interaction values vs brute force",
    )


# ---------------------------------------------------------------------------
# Probability output
# ---------------------------------------------------------------------------


PROBABILITY_CASES = ["categorical", "missing-values", "single-leaf-trees", "stumps"]


@pytest.mark.parametrize("background_name", ["one-row", "duplicates", "distinct"])
@pytest.mark.parametrize("case_name", PROBABILITY_CASES)
def test_probability_logistic_synthetic(case_name, background_name, memory_limit):
    ensemble, X, background, _ = synthetic_problem(case_name, background_name)
    ensemble = dataclasses.replace(ensemble, link="logit")
    expected, expected_base = reference.brute_force_probability_shap(ensemble, X, background)

    explanation = fastshap.explain(
        ensemble, X, background=background, output="probability", memory_limit=memory_limit
    )

    probability = sigmoid(reference.predict_raw(ensemble, X)[:, 0])
    assert_shap_close(explanation, expected, [expected_base], probability, atol=ATOL)


def test_probability_equal_margins(memory_limit):
    """A background row with the row's margin scales its raw values by 1.

    Trees ``x0 < 0 ? +1 : -1`` and ``x1 < 0 ? -1 : +1`` give x = (-1, -1) and
    b1 = (1, 1) the margin 0, with raw values (+2, -2) for the pair. shap
    0.51 and 0.54 scale such a pair by 1 (their tree_shap.h), not by the
    sigmoid's slope. For b2 = (1, -1), of margin -2, the raw values (+2, 0)
    scale by the secant slope ``s = (sigmoid(0) - sigmoid(-2)) / 2``.
    """
    node = reference._Node

    def stump(feature, left_value):
        return node(
            feature=feature, threshold=0.0, cover=2.0,
            left=node(cover=1.0, value=np.array([left_value])),
            right=node(cover=1.0, value=np.array([-left_value])),
        )

    ensemble = reference.pack_trees(
        [stump(0, 1.0), stump(1, -1.0)], [(0, 1)] * 2, n_features=2, n_outputs=1,
        base_score=[0.0],
    )
    ensemble = dataclasses.replace(ensemble, link="logit")
    X = np.array([[-1.0, -1.0]])
    background = np.array([[1.0, 1.0], [1.0, -1.0]])
    slope = (0.5 - sigmoid(-2.0)) / 2

    explanation = fastshap.explain(
        ensemble, X, background=background, output="probability", memory_limit=memory_limit
    )

    expected = np.array([[(2.0 + 2.0 * slope) / 2, -2.0 / 2]])
    expected_base = (0.5 + sigmoid(-2.0)) / 2
    assert_shap_close(explanation, expected, [expected_base], [0.5], atol=1e-15)
    reference_values, _ = reference.brute_force_probability_shap(ensemble, X, background)
    np.testing.assert_allclose(reference_values, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("background_name", ["one-row", "duplicates", "distinct"])
def test_probability_softmax_synthetic(background_name, memory_limit):
    """Softmax values match the mean-Jacobian definition with margins far apart.

    Leaf values are scaled by 3 so the margins of a pair differ by up to
    about 13, which takes several panels of fastshap's quadrature.
    """
    ensemble, X, background, _ = synthetic_problem("several-outputs", background_name)
    nodes = ensemble.nodes._replace(value=3.0 * ensemble.nodes.value)
    ensemble = dataclasses.replace(ensemble, nodes=nodes, link="softmax")
    expected = softmax_probability_reference(ensemble, X, background)
    expected_base = softmax(reference.predict_raw(ensemble, background)).mean(axis=0)

    explanation = fastshap.explain(
        ensemble, X, background=background, output="probability", memory_limit=memory_limit
    )

    probability = softmax(reference.predict_raw(ensemble, X))
    margin_spread = np.ptp(reference.predict_raw(ensemble, X), axis=1)
    assert margin_spread.max() > 3.0
    assert_shap_close(explanation, expected, expected_base, probability, atol=ATOL)
    np.testing.assert_allclose(
        explanation.values.sum(axis=2), 0.0, rtol=0, atol=IDENTICAL_ATOL,
        err_msg="a feature's values over all classes sum to 0",
    )


def train_two_class_softprob():
    """An XGBoost ``multi:softprob`` model with two classes, and its rows."""
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(zlib.crc32(b"softprob2"))
    X = make_rows(rng, 300)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 2, "max_depth": 3, "nthread": 1},
        xgb.DMatrix(X, make_classes(rng, X, 2), nthread=1), 6,
    )
    explained, background = split_rows(X)
    add_missing(explained, background)
    return fastshap.load_model(booster), explained, background


@pytest.mark.parametrize("source", ["synthetic", "xgboost-softprob2"])
def test_two_class_softmax_matches_logistic(source, memory_limit):
    """A two-class softmax explains class 1 as the logistic model of m_1 - m_0.

    The softmax Jacobian of two classes maps raw values (phi_0, phi_1) to
    ``slope (phi_1 - phi_0)`` for class 1 and its negative for class 0, where
    ``slope`` is the sigmoid's mean slope on the segment, the secant slope.
    """
    if source == "synthetic":
        rng = np.random.default_rng(zlib.crc32(b"two-class"))
        spec = SyntheticSpec(n_trees=6, max_depth=4, n_features=5, n_outputs=2,
                             categorical_features=(1,))
        ensemble = dataclasses.replace(reference.random_ensemble(rng, spec), link="softmax")
        X = reference.random_rows(rng, 4, 5, categorical_features=(1,))
        background = reference.random_rows(rng, 6, 5, categorical_features=(1,))
    else:
        ensemble, X, background = train_two_class_softprob()
        assert ensemble.link == "softmax"
    twin = logistic_twin(ensemble)
    expected, expected_base = reference.brute_force_probability_shap(twin, X, background)

    softmax_explanation = fastshap.explain(
        ensemble, X, background=background, output="probability", memory_limit=memory_limit
    )
    logistic_explanation = fastshap.explain(
        twin, X, background=background, output="probability", memory_limit=memory_limit
    )

    margin = reference.predict_raw(ensemble, X)
    np.testing.assert_allclose(
        reference.predict_raw(twin, X)[:, 0], margin[:, 1] - margin[:, 0], rtol=0,
        atol=IDENTICAL_ATOL,
    )
    assert_shap_close(logistic_explanation, expected, [expected_base],
                      softmax(margin)[:, 1], atol=ATOL)
    np.testing.assert_allclose(
        softmax_explanation.values[:, :, 1], expected, rtol=0, atol=ATOL,
        err_msg="class 1 vs the logistic twin",
    )
    np.testing.assert_allclose(
        softmax_explanation.values[:, :, 0], -expected, rtol=0, atol=ATOL,
        err_msg="class 0 vs the negated logistic twin",
    )
    np.testing.assert_allclose(
        softmax_explanation.base_values, [1.0 - expected_base, expected_base], rtol=0,
        atol=ATOL,
    )


BINARY_MODELS = [
    "xgboost-binary",
    "lightgbm-binary",
    "sklearn-gradient-boosting-classifier",
    "sklearn-hist-gradient-boosting-classifier",
]


@pytest.mark.parametrize("name", BINARY_MODELS)
def test_probability_binary_trained(name, memory_limit):
    case = trained_case(name)
    explainer = fastshap.Explainer(case.model, background=case.background,
                                   output="probability", memory_limit=memory_limit)
    ensemble = explainer.ensemble
    expected, expected_base = reference.brute_force_probability_shap(
        ensemble, case.X_codes, case.background_codes
    )

    explanation = explainer.explain(case.X)

    assert ensemble.link == "logit"
    probability = sigmoid(reference.predict_raw(ensemble, case.X_codes)[:, 0])
    assert_shap_close(explanation, expected, [expected_base], probability, atol=ATOL)
    np.testing.assert_allclose(
        explanation.values.sum(axis=1) + explanation.base_values[0],
        case.predict_proba(case.X)[:, 1], rtol=0, atol=PROBABILITY_ATOL,
        err_msg="values summed plus base vs predict_proba",
    )
    np.testing.assert_allclose(
        explanation.base_values, [case.predict_proba(case.background)[:, 1].mean()],
        rtol=0, atol=PROBABILITY_ATOL, err_msg="base value vs mean predict_proba",
    )


@pytest.mark.parametrize("name", BINARY_MODELS)
def test_probability_vs_shap(name):
    check_against_shap(trained_case(name), output="probability")


@pytest.mark.parametrize("name", ["xgboost-softprob3", "lightgbm-multiclass"])
def test_probability_softmax_trained(name, memory_limit):
    case = trained_case(name)
    explainer = fastshap.Explainer(case.model, background=case.background,
                                   output="probability", memory_limit=memory_limit)
    ensemble = explainer.ensemble
    expected = softmax_probability_reference(ensemble, case.X_codes, case.background_codes)

    explanation = explainer.explain(case.X)

    assert ensemble.link == "softmax"
    probability = softmax(reference.predict_raw(ensemble, case.X_codes))
    expected_base = softmax(reference.predict_raw(ensemble, case.background_codes)).mean(axis=0)
    assert_shap_close(explanation, expected, expected_base, probability, atol=ATOL)
    np.testing.assert_allclose(
        explanation.values.sum(axis=1) + explanation.base_values,
        case.predict_proba(case.X), rtol=0, atol=PROBABILITY_ATOL,
        err_msg="values summed plus base vs predict_proba",
    )
    np.testing.assert_allclose(
        explanation.base_values, case.predict_proba(case.background).mean(axis=0),
        rtol=0, atol=PROBABILITY_ATOL, err_msg="base values vs mean predict_proba",
    )
    np.testing.assert_allclose(
        explanation.values.sum(axis=2), 0.0, rtol=0, atol=IDENTICAL_ATOL,
        err_msg="a feature's values over all classes sum to 0",
    )


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["raw", "probability"])
def test_repeated_background_same_values(output, memory_limit, rng):
    """A background repeated 3 times, in another order, is the same distribution.

    So values, interaction values and base values must not change, which
    also shows that the explainer works from the background's distribution
    and not from its rows one by one.
    """
    spec = SyntheticSpec(n_trees=5, max_depth=5, n_features=5, n_outputs=2,
                         output_ranges="random", categorical_features=(2,))
    ensemble = dataclasses.replace(reference.random_ensemble(rng, spec), link="softmax")
    X = reference.random_rows(rng, 8, 5, categorical_features=(2,))
    background = reference.random_rows(rng, 7, 5, categorical_features=(2,))
    repeated = np.tile(background, (3, 1))[rng.permutation(21)]
    interactions = output == "raw"

    once = fastshap.explain(ensemble, X, background=background, output=output,
                            interactions=interactions, memory_limit=memory_limit)
    thrice = fastshap.explain(ensemble, X, background=repeated, output=output,
                              interactions=interactions, memory_limit=memory_limit)

    np.testing.assert_allclose(thrice.values, once.values, rtol=0, atol=IDENTICAL_ATOL)
    np.testing.assert_allclose(thrice.base_values, once.base_values, rtol=0,
                               atol=IDENTICAL_ATOL)
    if interactions:
        np.testing.assert_allclose(
            thrice.interaction_values, once.interaction_values, rtol=0, atol=IDENTICAL_ATOL
        )


def test_repeated_background_trained(memory_limit):
    case = trained_case("lightgbm-multiclass")
    repeated = np.concatenate([case.background] * 3)

    once = fastshap.explain(case.model, case.X, background=case.background,
                            interactions=True, memory_limit=memory_limit)
    thrice = fastshap.explain(case.model, case.X, background=repeated,
                              interactions=True, memory_limit=memory_limit)

    np.testing.assert_allclose(thrice.values, once.values, rtol=0, atol=IDENTICAL_ATOL)
    np.testing.assert_allclose(
        thrice.interaction_values, once.interaction_values, rtol=0, atol=IDENTICAL_ATOL
    )


def test_background_frame_column_order(named_regression, memory_limit):
    """A background DataFrame is matched to the model's features by name."""
    model, frame = named_regression
    X = frame.iloc[:5]
    background = frame.iloc[100:130]
    shuffled = background[["c", "a", "d", "b"]]

    by_name = fastshap.explain(model, X, background=shuffled, interactions=True,
                               memory_limit=memory_limit)
    in_order = fastshap.explain(model, X, background=background.to_numpy(),
                                interactions=True, memory_limit=memory_limit)

    np.testing.assert_allclose(by_name.values, in_order.values, rtol=0, atol=IDENTICAL_ATOL)
    np.testing.assert_allclose(by_name.interaction_values, in_order.interaction_values,
                               rtol=0, atol=IDENTICAL_ATOL)
    np.testing.assert_allclose(by_name.base_values, in_order.base_values, rtol=0,
                               atol=IDENTICAL_ATOL)


@pytest.mark.parametrize("with_background", [True, False], ids=["interventional", "path"])
def test_frame_column_order_kept(named_regression, with_background, memory_limit):
    """Values and both axes of the interaction matrices come back in the caller's order."""
    model, frame = named_regression
    order = ["d", "b", "a", "c"]
    position = [list(frame.columns).index(name) for name in order]
    background = frame.iloc[100:120] if with_background else None

    in_model_order = fastshap.explain(model, frame.iloc[:6], background=background,
                                      interactions=True, memory_limit=memory_limit)
    in_caller_order = fastshap.explain(model, frame.iloc[:6][order], background=background,
                                       interactions=True, memory_limit=memory_limit)

    assert in_caller_order.feature_names == order
    np.testing.assert_allclose(
        in_caller_order.values, in_model_order.values[:, position], rtol=0,
        atol=IDENTICAL_ATOL,
    )
    np.testing.assert_allclose(
        in_caller_order.interaction_values,
        in_model_order.interaction_values[:, position][:, :, position], rtol=0,
        atol=IDENTICAL_ATOL,
    )
    # Feature "a" has the largest effect on this model, so a mix-up shows.
    assert np.abs(in_caller_order.values[:, 2]).mean() > np.abs(
        in_caller_order.values[:, 0]
    ).mean()


def test_null_features_are_zero(memory_limit, rng):
    """A feature equal in the row and every background row gets exactly 0.

    Such a feature changes no hybrid row, so it is a null player.
    """
    spec = SyntheticSpec(n_trees=5, max_depth=5, n_features=6, n_outputs=2,
                         categorical_features=(1,))
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 5, 6, categorical_features=(1,))
    background = reference.random_rows(rng, 8, 6, categorical_features=(1,))
    background[:, 3] = 0.25
    X[:, 3] = 0.25
    background[:, 4] = np.nan
    X[:, 4] = np.nan

    explanation = fastshap.explain(ensemble, X, background=background, interactions=True,
                                   memory_limit=memory_limit)

    assert np.all(explanation.values[:, [3, 4]] == 0.0)
    assert np.all(explanation.interaction_values[:, [3, 4]] == 0.0)
    assert np.all(explanation.interaction_values[:, :, [3, 4]] == 0.0)
    assert np.any(explanation.values[:, [0, 1, 2, 5]] != 0.0)


def test_row_equal_to_one_row_background(memory_limit, rng):
    """Against itself as the only background row, a row has all values 0."""
    spec = SyntheticSpec(n_trees=4, max_depth=4, n_features=5, n_outputs=3)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 3, 5)

    for row in X:
        explanation = fastshap.explain(ensemble, row[None], background=row[None],
                                       interactions=True, memory_limit=memory_limit)

        assert np.all(explanation.values == 0.0)
        assert np.all(explanation.interaction_values == 0.0)
        np.testing.assert_allclose(explanation.base_values,
                                   reference.predict_raw(ensemble, row[None])[0],
                                   rtol=0, atol=IDENTICAL_ATOL)


def test_blocks_threads_and_reuse_agree(memory_limit, rng):
    """Row blocks, thread counts and reusing the explainer change nothing."""
    spec = SyntheticSpec(n_trees=5, max_depth=5, n_features=5, n_outputs=2)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 41, 5)
    background = reference.random_rows(rng, 9, 5)
    explainer = fastshap.Explainer(ensemble, background=background, memory_limit=memory_limit)

    whole = explainer.explain(X, n_jobs=1)
    interactions = explainer.explain(X, interactions=True, block_rows=6, n_jobs=2)
    blocks = explainer.explain(X, block_rows=7, n_jobs=2)
    rows = explainer.explain(X, block_rows=1)

    np.testing.assert_array_equal(blocks.values, whole.values)
    np.testing.assert_array_equal(rows.values, whole.values)
    np.testing.assert_allclose(interactions.values, whole.values, rtol=0,
                               atol=IDENTICAL_ATOL)
    np.testing.assert_allclose(
        explainer.expected_value, reference.predict_raw(ensemble, background).mean(axis=0),
        rtol=0, atol=IDENTICAL_ATOL,
    )


def test_algorithm_interventional_explicit(rng):
    """algorithm='interventional' gives the values that 'auto' picks with a background."""
    spec = SyntheticSpec(n_trees=3, max_depth=4, n_features=4)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 4, 4)
    background = reference.random_rows(rng, 5, 4)

    explicit = fastshap.explain(ensemble, X, background=background, algorithm="interventional")
    automatic = fastshap.explain(ensemble, X, background=background)
    path_dependent = fastshap.explain(ensemble, X)

    np.testing.assert_array_equal(explicit.values, automatic.values)
    assert not np.allclose(explicit.values, path_dependent.values)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.fixture
def small_ensemble(rng):
    spec = SyntheticSpec(n_trees=2, max_depth=3, n_features=4)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 3, 4)
    background = reference.random_rows(rng, 5, 4)
    return ensemble, X, background


def test_interventional_without_background(small_ensemble):
    ensemble, X, _ = small_ensemble

    with pytest.raises(ValueError, match="algorithm='interventional' needs background") as error:
        fastshap.explain(ensemble, X, algorithm="interventional")

    assert "background=" in str(error.value)
    assert "tree_path_dependent" in str(error.value)


def test_background_with_path_dependent(small_ensemble):
    ensemble, X, background = small_ensemble

    with pytest.raises(ValueError, match="`background`") as error:
        fastshap.Explainer(ensemble, background=background, algorithm="tree_path_dependent")

    assert "algorithm='tree_path_dependent'" in str(error.value)
    assert "Drop `background`" in str(error.value)


def test_probability_without_background(small_ensemble):
    ensemble, X, _ = small_ensemble
    ensemble = dataclasses.replace(ensemble, link="logit")

    with pytest.raises(ValueError, match="output='probability' needs background") as error:
        fastshap.explain(ensemble, X, output="probability")

    assert "background=" in str(error.value)
    assert "output='raw'" in str(error.value)


@pytest.mark.parametrize("name", ["xgboost-regression", "lightgbm-regression"])
def test_probability_of_regression_model(name):
    case = trained_case(name)

    with pytest.raises(ValueError, match="output='probability'") as error:
        fastshap.Explainer(case.model, background=case.background, output="probability")

    assert "'identity' link" in str(error.value)
    assert "output='raw'" in str(error.value)


def test_probability_interactions_not_implemented(small_ensemble):
    ensemble, X, background = small_ensemble
    ensemble = dataclasses.replace(ensemble, link="logit")
    explainer = fastshap.Explainer(ensemble, background=background, output="probability")

    with pytest.raises(NotImplementedError, match="output='probability'") as error:
        explainer.explain(X, interactions=True)

    assert "output='raw'" in str(error.value)


def test_empty_background(small_ensemble):
    ensemble, X, background = small_ensemble

    with pytest.raises(ValueError, match="`background` must have at least one row"):
        fastshap.explain(ensemble, X, background=background[:0])


def test_background_wrong_width(small_ensemble):
    ensemble, X, background = small_ensemble

    with pytest.raises(ValueError, match="`background` has 3 features") as error:
        fastshap.explain(ensemble, X, background=background[:, :3])

    assert "trained on 4" in str(error.value)
    assert "`X`" not in str(error.value)


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        (["a", "b", "c", "x"], "unexpected columns ['x']"),
        (["a", "b", "c"], "missing columns ['d']"),
    ],
    ids=["unexpected", "missing"],
)
def test_background_frame_wrong_columns(named_regression, columns, problem):
    model, frame = named_regression
    background = frame.iloc[:10].rename(columns={"d": "x"})[columns]

    with pytest.raises(ValueError, match="`background` columns do not match") as error:
        fastshap.explain(model, frame.iloc[:3], background=background)

    assert problem in str(error.value)
    assert "Pass every feature the model was trained on" in str(error.value)
    assert "`X`" not in str(error.value)


def test_dask_background(small_ensemble):
    ensemble, X, background = small_ensemble
    dask_array = pytest.importorskip("dask.array")

    with pytest.raises(TypeError, match="`background` must be in memory") as error:
        fastshap.explain(ensemble, X, background=dask_array.from_array(background))

    assert ".compute()" in str(error.value)
