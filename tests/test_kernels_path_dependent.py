"""Path-dependent SHAP values of synthetic ensembles against brute force.

The references in ``reference.py`` work from the definition of the
path-dependent value function, so these tests pin the kernels' values, base
values and additivity to 1e-9 on cases that trained models rarely produce:
repeated features on a path, zero covers, categorical splits, several
outputs, single-leaf trees and depths up to 90.

Every comparison runs twice: once with the pattern tables (the default
memory limit) and once with ``memory_limit=0``, which forces the direct
per-leaf algorithm.
"""

from __future__ import annotations

import dataclasses

import math

import numpy as np
import pytest

import fastshap
import reference
from conftest import assert_shap_close
from reference import SyntheticSpec

#: Exact algorithms in float64 agree with the references to a few ulps of the
#: values (which are at most about 10 here); 1e-9 leaves room for summing
#: hundreds of leaves and still catches any wrong weight or branch.
ATOL = 1e-9

#: memory_limit values that select the tabulated and the direct algorithm.
KERNEL_PATHS = {"tables": 1 << 30, "direct": 0}


@pytest.fixture(params=list(KERNEL_PATHS), ids=list(KERNEL_PATHS))
def memory_limit(request):
    return KERNEL_PATHS[request.param]


def _squeeze_single_output(values: np.ndarray, ensemble) -> np.ndarray:
    """Drop the output axis of reference values for a single-output ensemble."""
    return values[:, :, 0] if ensemble.n_outputs == 1 else values


def check_against_brute_force(ensemble, X, memory_limit, *, atol=ATOL):
    """Explain ``X`` and compare with brute-force Shapley values."""
    expected, expected_base = reference.brute_force_shap(ensemble, X)
    margin = reference.predict_raw(ensemble, X)
    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)
    assert_shap_close(
        explanation,
        _squeeze_single_output(expected, ensemble),
        expected_base,
        margin if ensemble.n_outputs > 1 else margin[:, 0],
        atol=atol,
    )


# ---------------------------------------------------------------------------
# The references themselves
# ---------------------------------------------------------------------------


def test_and_tree_hand_computed():
    """Two splits that make x0 AND x1, with even covers, have known values.

    v({}) = 1/4, v({0}) = v({1}) = 1/2 and v({0, 1}) = 1 for x = (1, 1), so
    each feature gets (1/2 - 1/4) / 2 + (1 - 1/2) / 2 = 3/8.
    """
    ensemble = reference.pack_trees(
        [_and_tree()], [(0, 1)], n_features=2, n_outputs=1, base_score=[0.0]
    )
    X = np.array([[1.0, 1.0], [0.0, 1.0]])

    values, base = reference.brute_force_shap(ensemble, X)

    assert base[0] == 0.25
    assert values[0, 0, 0] == 0.375
    assert values[0, 1, 0] == 0.375
    # x0 = 0 makes the output 0: v({0}) = 0 and v({0, 1}) = 0.
    assert values[1, 0, 0] == pytest.approx(-0.375)
    assert values[1, 1, 0] == pytest.approx(0.125)


def _and_tree():
    node = reference._Node
    right = node(
        feature=1,
        threshold=0.5,
        cover=2.0,
        left=node(cover=1.0, value=np.array([0.0])),
        right=node(cover=1.0, value=np.array([1.0])),
    )
    return node(
        feature=0,
        threshold=0.5,
        cover=4.0,
        left=node(cover=2.0, value=np.array([0.0])),
        right=right,
    )


def test_and_tree_kernel(memory_limit):
    ensemble = reference.pack_trees(
        [_and_tree()], [(0, 1)], n_features=2, n_outputs=1, base_score=[0.0]
    )
    X = np.array([[1.0, 1.0], [0.0, 1.0]])

    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)

    assert_shap_close(
        explanation,
        [[0.375, 0.375], [-0.375, 0.125]],
        [0.25],
        [1.0, 0.0],
        atol=1e-15,
    )


def test_reference_recursions_agree(rng):
    """The all-subsets recursion equals the literal one on every subset."""
    spec = SyntheticSpec(
        n_trees=2, max_depth=4, n_features=4, n_outputs=2, output_ranges="random",
        zero_cover_probability=0.2, consistent_covers=False,
        categorical_features=(2,),
    )
    ensemble = reference.random_ensemble(rng, spec)
    x = reference.random_rows(rng, 1, 4, categorical_features=(2,))[0]
    players = [0, 1, 2, 3]

    all_subsets = reference.subset_expectations(ensemble, x, players)

    for mask in range(16):
        known = {players[bit] for bit in range(4) if mask >> bit & 1}
        literal = reference.conditional_expectation(ensemble, x, known)
        np.testing.assert_allclose(all_subsets[mask], literal, rtol=0, atol=1e-12)


def test_product_game_equals_brute_force(rng):
    """The per-leaf reference used for deep trees agrees with enumeration."""
    spec = SyntheticSpec(
        n_trees=3, max_depth=6, n_features=5, n_outputs=2, output_ranges="all",
        path_features=3, zero_cover_probability=0.2,
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 5, 5)

    brute, brute_base = reference.brute_force_shap(ensemble, X)
    product, product_base = reference.product_game_shap(ensemble, X)

    np.testing.assert_allclose(product, brute, rtol=0, atol=1e-12)
    np.testing.assert_allclose(product_base, brute_base, rtol=0, atol=1e-12)


def test_reference_additivity(rng):
    """Brute-force values sum to the reference prediction (efficiency)."""
    spec = SyntheticSpec(n_trees=3, max_depth=5, n_features=6, n_outputs=3,
                         output_ranges="random", zero_cover_probability=0.3)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 5, 6)

    values, base = reference.brute_force_shap(ensemble, X)

    np.testing.assert_allclose(
        values.sum(axis=1) + base, reference.predict_raw(ensemble, X), rtol=0, atol=1e-12
    )


# ---------------------------------------------------------------------------
# Random ensembles against brute force
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("depth", range(1, 9))
def test_random_depth(depth, seed, memory_limit):
    rng = np.random.default_rng(1000 * depth + seed)
    spec = SyntheticSpec(
        n_trees=3,
        max_depth=depth,
        n_features=6,
        path_features=None if seed % 2 else 3,
        breadth_first=seed >= 2,
        decision_type="<" if seed % 2 else "<=",
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 6, 6)

    check_against_brute_force(ensemble, X, memory_limit)


@pytest.mark.parametrize("path_features", [1, 2])
def test_repeated_path_features(path_features, memory_limit, rng):
    """Trees that split on only one or two features, many times per path."""
    spec = SyntheticSpec(
        n_trees=4, max_depth=7, n_features=4, path_features=path_features,
        leaf_probability=0.1,
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 8, 4)

    check_against_brute_force(ensemble, X, memory_limit)


@pytest.mark.parametrize("consistent_covers", [True, False], ids=["summed", "independent"])
def test_zero_cover_nodes(consistent_covers, memory_limit, rng):
    """Zero-cover leaves and, with independent covers, zero-cover parents."""
    spec = SyntheticSpec(
        n_trees=4, max_depth=5, n_features=5, zero_cover_probability=0.35,
        consistent_covers=consistent_covers,
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 8, 5)

    assert np.any(ensemble.nodes.cover == 0)
    check_against_brute_force(ensemble, X, memory_limit)


def test_zero_cover_root(memory_limit):
    """A root with zero cover gives both subtrees weight 0 in v({})."""
    node = reference._Node
    root = node(
        feature=0,
        threshold=0.0,
        cover=0.0,
        left=node(cover=3.0, value=np.array([2.0])),
        right=node(cover=5.0, value=np.array([-1.0])),
    )
    ensemble = reference.pack_trees([root], [(0, 1)], n_features=1, n_outputs=1,
                                    base_score=[0.5])
    X = np.array([[-1.0], [1.0]])

    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)

    # v({}) = base score, and the feature takes the whole leaf value.
    assert_shap_close(explanation, [[2.0], [-1.0]], [0.5], [2.5, -0.5], atol=1e-15)


def test_single_leaf_trees(memory_limit, rng):
    """Trees that are one leaf add to the base value and to no feature."""
    spec = SyntheticSpec(n_trees=6, max_depth=4, n_features=4,
                         single_leaf_probability=0.5)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 6, 4)

    assert np.any(np.diff(ensemble.tree_offsets) == 1)
    check_against_brute_force(ensemble, X, memory_limit)


def test_only_single_leaf_trees(memory_limit, rng):
    spec = SyntheticSpec(n_trees=3, n_features=4, n_outputs=2,
                         single_leaf_probability=1.0)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 4, 4)

    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)

    margin = reference.predict_raw(ensemble, X)
    assert_shap_close(explanation, np.zeros((4, 4, 2)), margin[0], margin)


def test_no_trees(memory_limit):
    """An ensemble without trees explains everything by its base score."""
    ensemble = reference.pack_trees([], [], n_features=3, n_outputs=2,
                                    base_score=[1.0, -2.0])
    X = np.zeros((2, 3))

    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)

    assert_shap_close(explanation, np.zeros((2, 3, 2)), [1.0, -2.0], [[1.0, -2.0]] * 2)


@pytest.mark.parametrize("output_ranges", ["one", "all", "random"])
def test_several_outputs(output_ranges, memory_limit, rng):
    """Trees of one output each, vector-leaf trees and arbitrary ranges."""
    spec = SyntheticSpec(
        n_trees=6, max_depth=5, n_features=5, n_outputs=3,
        output_ranges=output_ranges,
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 6, 5)

    check_against_brute_force(ensemble, X, memory_limit)


def test_categorical_splits(memory_limit, rng):
    """Codes in a node's set go right, others (and unseen codes) left."""
    spec = SyntheticSpec(
        n_trees=4, max_depth=5, n_features=5, categorical_features=(0, 3),
        n_categories=6,
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 10, 5, categorical_features=(0, 3), n_categories=6)

    assert np.any(ensemble.nodes.is_categorical)
    check_against_brute_force(ensemble, X, memory_limit)


def test_missing_default_direction(memory_limit, rng):
    """NaN follows each node's default direction, whichever it is."""
    spec = SyntheticSpec(n_trees=4, max_depth=5, n_features=4,
                         categorical_features=(1,))
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 10, 4, categorical_features=(1,),
                              missing_probability=0.4)

    internal = ensemble.nodes.left >= 0
    assert np.any(ensemble.nodes.default_left[internal])
    assert not np.all(ensemble.nodes.default_left[internal])
    check_against_brute_force(ensemble, X, memory_limit)


def test_missing_sentinel_value(memory_limit, rng):
    """A value equal to the ensemble's ``missing`` counts as missing, like NaN."""
    spec = SyntheticSpec(n_trees=4, max_depth=5, n_features=4, missing=0.25)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 10, 4)
    X[rng.random(X.shape) < 0.3] = 0.25

    check_against_brute_force(ensemble, X, memory_limit)


def test_zero_is_missing_nodes(memory_limit, rng):
    """Zero, and values within ZERO_THRESHOLD of it, follow the default at flagged nodes."""
    spec = SyntheticSpec(n_trees=4, max_depth=5, n_features=4)
    ensemble = reference.random_ensemble(rng, spec)
    nodes = ensemble.nodes
    internal = nodes.left >= 0
    flagged = internal & (rng.random(len(internal)) < 0.5)
    # Thresholds just around zero, so that zero's numeric direction often
    # differs from the node's default direction.
    threshold = np.where(internal, rng.choice([-0.5, 0.5], size=len(internal)), np.nan)
    ensemble = dataclasses.replace(
        ensemble, nodes=nodes._replace(zero_is_missing=flagged, threshold=threshold)
    )
    X = reference.random_rows(rng, 12, 4, missing_probability=0.1)
    zeros = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-30])
    mask = rng.random(X.shape) < 0.5
    X[mask] = rng.choice(zeros, size=mask.sum())

    unflagged = dataclasses.replace(ensemble, nodes=nodes._replace(threshold=threshold))
    assert not np.allclose(
        reference.predict_raw(ensemble, X), reference.predict_raw(unflagged, X)
    )
    check_against_brute_force(ensemble, X, memory_limit)


def test_infinite_inputs(memory_limit, rng):
    """Infinite values compare as numbers: +inf goes right, -inf left."""
    spec = SyntheticSpec(n_trees=3, max_depth=4, n_features=4)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 6, 4)
    X[0] = np.inf
    X[1] = -np.inf

    check_against_brute_force(ensemble, X, memory_limit)


def test_float32_inputs_rounding(memory_limit, rng):
    """With ``float32_inputs`` rows are rounded to float32 before comparing.

    x = nextafter(t, -inf) is below the threshold t in float64 but rounds to
    t in float32, so with ``<`` it goes right.
    """
    spec = SyntheticSpec(n_trees=3, max_depth=4, n_features=3, float32_inputs=True)
    ensemble = reference.random_ensemble(rng, spec)
    thresholds = ensemble.nodes.threshold[ensemble.nodes.left >= 0]
    below = np.nextafter(thresholds, -np.inf)
    X = np.column_stack([rng.choice(below, 8) for _ in range(3)])

    assert np.all(np.float32(below) == thresholds)
    check_against_brute_force(ensemble, X, memory_limit)


def test_mixed_everything(memory_limit):
    """Many seeds with every hard case switched on at once."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        spec = SyntheticSpec(
            n_trees=4,
            max_depth=1 + seed % 8,
            n_features=6,
            n_outputs=1 + seed % 3,
            path_features=3 if seed % 2 else None,
            zero_cover_probability=0.2,
            consistent_covers=seed % 3 != 0,
            categorical_features=(1,),
            output_ranges=("one", "all", "random")[seed % 3],
            breadth_first=seed % 2 == 0,
            decision_type=("<", "<=")[seed % 2],
            single_leaf_probability=0.2,
            missing=-1.0 if seed % 4 == 0 else math.nan,
        )
        ensemble = reference.random_ensemble(rng, spec)
        X = reference.random_rows(rng, 5, 6, categorical_features=(1,))
        check_against_brute_force(ensemble, X, memory_limit)


def test_unused_features_are_zero(memory_limit, rng):
    """Features that no split uses get exactly 0."""
    spec = SyntheticSpec(n_trees=3, max_depth=4, n_features=10, path_features=2)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 6, 10)
    unused = sorted(set(range(10)) - set(reference.split_features(ensemble)))

    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)

    assert unused
    assert np.all(explanation.values[:, unused] == 0.0)


# ---------------------------------------------------------------------------
# Both algorithms, blocks and threads
# ---------------------------------------------------------------------------


def test_memory_limit_selects_path(rng):
    """memory_limit=0 explains every tree directly, the default tabulates."""
    spec = SyntheticSpec(n_trees=4, max_depth=4, n_features=5)
    ensemble = reference.random_ensemble(rng, spec)

    direct = fastshap.Explainer(ensemble, memory_limit=0)
    tabled = fastshap.Explainer(ensemble)

    assert not direct.tables.tree_uses_table.any()
    assert tabled.tables.tree_uses_table.all()


def test_partial_memory_limit(rng):
    """A budget for only some trees' tables mixes both algorithms exactly."""
    spec = SyntheticSpec(n_trees=8, max_depth=6, n_features=6, path_features=4)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 6, 6)
    full = fastshap.Explainer(ensemble)
    budget = full.tables.nbytes // 3

    explainer = fastshap.Explainer(ensemble, memory_limit=budget)

    assert explainer.tables.tree_uses_table.any()
    assert not explainer.tables.tree_uses_table.all()
    expected, expected_base = reference.brute_force_shap(ensemble, X)
    assert_shap_close(
        explainer.explain(X), expected[:, :, 0], expected_base,
        reference.predict_raw(ensemble, X)[:, 0],
    )


def test_blocks_and_threads_agree(memory_limit, rng):
    """Row blocks and thread counts change nothing, to the last bit."""
    spec = SyntheticSpec(n_trees=5, max_depth=6, n_features=6, n_outputs=2)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 101, 6)
    explainer = fastshap.Explainer(ensemble, memory_limit=memory_limit)

    whole = explainer.explain(X, n_jobs=1).values
    blocks = explainer.explain(X, block_rows=7, n_jobs=2).values
    rows = explainer.explain(X, block_rows=1).values

    np.testing.assert_array_equal(blocks, whole)
    np.testing.assert_array_equal(rows, whole)


def test_progress_callback(rng):
    spec = SyntheticSpec(n_trees=2, max_depth=3, n_features=3)
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 10, 3)
    calls = []

    fastshap.explain(ensemble, X, block_rows=4, progress=lambda done, total: calls.append((done, total)))

    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_predict_raw_matches_reference(rng):
    spec = SyntheticSpec(
        n_trees=5, max_depth=6, n_features=5, n_outputs=3, output_ranges="random",
        categorical_features=(2,), missing=0.5,
    )
    ensemble = reference.random_ensemble(rng, spec)
    X = reference.random_rows(rng, 30, 5, categorical_features=(2,))

    predicted = fastshap.Explainer(ensemble).predict_raw(X)

    np.testing.assert_allclose(predicted, reference.predict_raw(ensemble, X), rtol=0, atol=1e-12)


def test_expected_value_before_explain(rng):
    """expected_value is v({}) as soon as the explainer exists."""
    spec = SyntheticSpec(n_trees=4, max_depth=5, n_features=5, n_outputs=2,
                         zero_cover_probability=0.2)
    ensemble = reference.random_ensemble(rng, spec)
    x = reference.random_rows(rng, 1, 5)[0]

    explainer = fastshap.Explainer(ensemble)

    expected = reference.conditional_expectation(ensemble, x, set())
    assert explainer.expected_value.shape == (2,)
    np.testing.assert_allclose(explainer.expected_value, expected, rtol=0, atol=ATOL)


# ---------------------------------------------------------------------------
# Deep trees
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "n_features", "branch_probability"),
    [(60, 8, 0.0), (75, 5, 0.2), (90, 8, 0.1)],
)
def test_deep_tree_brute_force(depth, n_features, branch_probability, memory_limit):
    """Depth 60 to 90 on at most 8 features, so subsets can be enumerated.

    Deep paths repeat features many times, and covers shrink to about
    2**-depth of the root's, which breaks algorithms that divide by path
    weights.
    """
    rng = np.random.default_rng(depth)
    ensemble = reference.deep_ensemble(
        rng, depth=depth, n_features=n_features,
        branch_probability=branch_probability, n_trees=2,
    )
    X = reference.random_rows(rng, 4, n_features, missing_probability=0.05)

    assert ensemble.max_depth == depth
    check_against_brute_force(ensemble, X, memory_limit)


def test_deep_tree_many_features(memory_limit):
    """Depth 80 with up to 80 distinct features, against per-leaf product games."""
    rng = np.random.default_rng(80)
    ensemble = reference.deep_ensemble(rng, depth=80, n_features=80,
                                       branch_probability=0.1)
    X = reference.random_rows(rng, 3, 80, missing_probability=0.05)

    expected, expected_base = reference.product_game_shap(ensemble, X)
    explanation = fastshap.explain(ensemble, X, memory_limit=memory_limit)

    assert len(reference.split_features(ensemble)) > 40
    assert_shap_close(
        explanation, expected[:, :, 0], expected_base,
        reference.predict_raw(ensemble, X)[:, 0],
    )
