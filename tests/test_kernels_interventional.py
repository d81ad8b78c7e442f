"""Interventional kernels on inputs that trained models rarely produce.

Paths through more distinct features than one 63-bit pattern word holds,
the sorted (not dense) count of background patterns, the summary split
into groups of trees, and trees whose tables would cost too much to fill.
Values are compared with brute force over the features on which the rows
differ from the background. Every other feature is a null player of the
interventional game. So its Shapley value is zero, and leaving it out of
the enumeration changes no other value.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import fastshap
import reference
from fastshap.kernels import interventional, pattern_tables
from test_kernels_path_dependent import KERNEL_PATHS

ATOL = 1e-9


@pytest.fixture(params=list(KERNEL_PATHS), ids=list(KERNEL_PATHS))
def memory_limit(request):
    return KERNEL_PATHS[request.param]


def shapley_over_players(ensemble, x, background, players):
    """Interventional Shapley values of ``x`` with only ``players`` enumerated."""
    n_players = len(players)
    margins = np.zeros(1 << n_players)
    for mask in range(1 << n_players):
        rows = background.copy()
        for k, feature in enumerate(players):
            if mask >> k & 1:
                rows[:, feature] = x[feature]
        margins[mask] = reference.predict_raw(ensemble, rows)[:, 0].mean()
    phi = np.zeros(ensemble.n_features)
    for k, feature in enumerate(players):
        for mask in range(1 << n_players):
            if mask >> k & 1:
                continue
            size = bin(mask).count("1")
            weight = (
                math.factorial(size) * math.factorial(n_players - size - 1)
                / math.factorial(n_players)
            )
            phi[feature] += weight * (margins[mask | 1 << k] - margins[mask])
    return phi, margins[0]


def spine_row(ensemble, rng):
    """A row that follows the first tree's longest path as far as it can."""
    nodes = ensemble.nodes
    x = rng.normal(size=ensemble.n_features)
    fixed = set()
    node = 0
    while nodes.left[node] >= 0:
        left, right = nodes.left[node], nodes.right[node]
        # The spine continues into the child that is not a leaf.
        go_left = nodes.left[left] >= 0
        feature = int(nodes.feature[node])
        if feature not in fixed:
            offset = -0.25 if go_left else 0.25
            x[feature] = nodes.threshold[node] + offset
            fixed.add(feature)
        goes_left = x[feature] <= nodes.threshold[node]
        node = left if goes_left else right
    return x


def test_paths_longer_than_one_pattern_word(memory_limit):
    """Paths through more than 63 distinct features, patterns of several words."""
    rng = np.random.default_rng(7)
    ensemble = reference.deep_ensemble(
        rng, depth=110, n_features=300, branch_probability=0.05
    )
    x = spine_row(ensemble, rng)
    split_features = np.unique(ensemble.nodes.feature[ensemble.nodes.left >= 0])
    players = [int(f) for f in rng.choice(split_features, 6, replace=False)]
    background = np.tile(x, (5, 1))
    for row in background:
        changed = rng.choice(players, 3, replace=False)
        row[changed] = x[changed] + rng.normal(size=3)

    explainer = fastshap.Explainer(ensemble, background=background, memory_limit=memory_limit)
    explanation = explainer.explain(x[None, :])

    assert explainer.paths.max_slots > interventional.WORD_BITS
    expected, expected_base = shapley_over_players(ensemble, x, background, players)
    np.testing.assert_allclose(explanation.values[0], expected, rtol=0, atol=ATOL)
    assert explanation.base_values[0] == pytest.approx(expected_base, abs=ATOL)
    assert np.abs(expected).max() > 1e-3


@pytest.mark.parametrize("n_rows", [1, 7, 40])
def test_sorted_pattern_count(n_rows):
    """Counting patterns by sorting gives the dense count's summary."""
    rng = np.random.default_rng(3)
    spec = reference.SyntheticSpec(n_trees=4, max_depth=5, n_features=6)
    ensemble = reference.random_ensemble(rng, spec)
    background = reference.random_rows(rng, n_rows, ensemble.n_features)
    background = np.vstack([background, background[:1]])
    paths = fastshap.Explainer(ensemble).paths

    dense = interventional.summarise_background(ensemble, paths, background)
    by_sorting = interventional.summarise_background(
        ensemble, paths, background, dense_bits=0
    )

    np.testing.assert_array_equal(by_sorting.leaf_offsets, dense.leaf_offsets)
    for leaf in range(len(dense.leaf_offsets) - 1):
        entries = slice(dense.leaf_offsets[leaf], dense.leaf_offsets[leaf + 1])
        expected = dict(zip(dense.pattern[entries], dense.weight[entries]))
        found = dict(zip(by_sorting.pattern[entries], by_sorting.weight[entries]))
        assert found == pytest.approx(expected, abs=1e-15)


def test_summary_in_groups_of_trees(monkeypatch):
    """A scratch budget of one tree at a time gives the same summary."""
    rng = np.random.default_rng(11)
    spec = reference.SyntheticSpec(n_trees=6, max_depth=4, n_features=5)
    ensemble = reference.random_ensemble(rng, spec)
    background = reference.random_rows(rng, 40, ensemble.n_features)
    paths = fastshap.Explainer(ensemble).paths
    whole = interventional.summarise_background(ensemble, paths, background)

    monkeypatch.setattr(interventional, "SUMMARY_SCRATCH_BYTES", 1)
    grouped = interventional.summarise_background(ensemble, paths, background)

    for array, expected in zip(grouped.arrays, whole.arrays):
        np.testing.assert_array_equal(array, expected)


def test_summary_weights_are_shares(memory_limit):
    """Each leaf's weights sum to one, and a repeated background changes nothing."""
    rng = np.random.default_rng(5)
    spec = reference.SyntheticSpec(n_trees=3, max_depth=4, n_features=5)
    ensemble = reference.random_ensemble(rng, spec)
    background = reference.random_rows(rng, 9, ensemble.n_features)
    X = reference.random_rows(rng, 4, ensemble.n_features)

    explainer = fastshap.Explainer(ensemble, background=background, memory_limit=memory_limit)
    repeated = fastshap.Explainer(
        ensemble, background=np.vstack([background] * 3), memory_limit=memory_limit
    )

    summary = explainer.background_summary
    sums = np.add.reduceat(summary.weight, summary.leaf_offsets[:-1])
    np.testing.assert_allclose(sums, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(repeated.background_summary.pattern, summary.pattern)
    np.testing.assert_allclose(
        repeated.explain(X).values, explainer.explain(X).values, rtol=0, atol=1e-12
    )


def test_costly_tables_left_to_direct(monkeypatch):
    """Trees whose tables cost too much to fill are explained directly, with equal values."""
    rng = np.random.default_rng(13)
    spec = reference.SyntheticSpec(n_trees=4, max_depth=4, n_features=6)
    ensemble = reference.random_ensemble(rng, spec)
    background = reference.random_rows(rng, 30, ensemble.n_features)
    X = reference.random_rows(rng, 5, ensemble.n_features)
    tabled = fastshap.Explainer(ensemble, background=background)

    monkeypatch.setattr(pattern_tables, "MAX_FILL_COST", 0)
    direct = fastshap.Explainer(ensemble, background=background)

    assert tabled.tables.tree_uses_table.any()
    assert not direct.tables.tree_uses_table.any()
    for interactions in (False, True):
        left = tabled.explain(X, interactions=interactions)
        right = direct.explain(X, interactions=interactions)
        np.testing.assert_allclose(left.values, right.values, rtol=0, atol=1e-12)
        if interactions:
            np.testing.assert_allclose(
                left.interaction_values, right.interaction_values, rtol=0, atol=1e-12
            )


def test_beta_table_matches_factorials():
    beta = interventional.beta_table(20)

    for i, j in itertools.product(range(21), repeat=2):
        expected = math.factorial(i) * math.factorial(j) / math.factorial(i + j + 1)
        assert beta[i, j] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(
    "spec",
    [
        reference.SyntheticSpec(n_trees=4, max_depth=4, n_features=6),
        reference.SyntheticSpec(
            n_trees=4, max_depth=4, n_features=6, n_outputs=3, output_ranges="random",
            categorical_features=(1,), path_features=2, zero_cover_probability=0.2,
        ),
    ],
    ids=["numeric", "categorical-multi-output"],
)
@pytest.mark.parametrize("interactions", [False, True])
def test_walk_per_background_row(spec, interactions):
    """Trees walked once per background row match brute force."""
    rng = np.random.default_rng(17)
    ensemble = reference.random_ensemble(rng, spec)
    categorical = spec.categorical_features
    X = reference.random_rows(rng, 5, ensemble.n_features, categorical_features=categorical)
    background = reference.random_rows(
        rng, 9, ensemble.n_features, categorical_features=categorical
    )
    explainer = fastshap.Explainer(ensemble, background=background, memory_limit=0)
    explainer.tree_per_pair[:] = True

    explanation = explainer.explain(X, interactions=interactions)

    expected, expected_base = reference.brute_force_interventional(ensemble, X, background)
    values = explanation.values.reshape(expected.shape)
    np.testing.assert_allclose(values, expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(explanation.base_values, expected_base, rtol=0, atol=ATOL)
    if interactions:
        expected_pairs = reference.brute_force_interactions(ensemble, X, background)
        pairs = explanation.interaction_values.reshape(expected_pairs.shape)
        np.testing.assert_allclose(pairs, expected_pairs, rtol=0, atol=ATOL)


def test_deep_trees_walked_per_background_row():
    """Without tables, deep leaves with as many patterns as background rows are walked."""
    rng = np.random.default_rng(19)
    ensemble = reference.deep_ensemble(rng, depth=40, n_features=30, branch_probability=0.5)
    background = reference.random_rows(rng, 200, 30)
    X = reference.random_rows(rng, 3, 30)

    walked = fastshap.Explainer(ensemble, background=background, memory_limit=0)
    from_summary = fastshap.Explainer(ensemble, background=background, memory_limit=0)
    from_summary.tree_per_pair[:] = False

    assert walked.tree_per_pair.all()
    np.testing.assert_allclose(
        walked.explain(X).values, from_summary.explain(X).values, rtol=0, atol=1e-12
    )
