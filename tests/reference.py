"""Slow reference implementations for the tests, written from the definitions.

Everything here is plain Python and numpy over a :class:`fastshap.TreeEnsemble`
and shares no code with fastshap's kernels.

- :func:`predict_raw` follows each row down every tree.
- :func:`conditional_expectation` is the path-dependent value function ``v(S)``
  of TreeSHAP: a split on a feature in ``S`` follows the row, and a split on
  any other feature averages its children weighted by
  ``cover[child] / cover[parent]`` (weight 0 when the parent's cover is 0).
- :func:`brute_force_shap` computes exact Shapley values of ``v`` by summing
  over every subset of the features the ensemble splits on, so it is only
  practical for about 10 features or fewer.
- :func:`product_game_shap` computes the same values leaf by leaf. Each leaf
  contributes a product game, whose Shapley values follow from expanding a
  polynomial with non-negative coefficients. It never divides, so it stays
  exact in float64 for trees of any depth and any number of features.
- :func:`random_ensemble` and :func:`deep_ensemble` build synthetic
  ensembles with the hard cases: repeated features on a path, zero covers,
  categorical splits, default directions for missing values, several
  outputs and single-leaf trees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fastshap import NodeArrays, TreeEnsemble
from fastshap.ensemble import ZERO_THRESHOLD

# ---------------------------------------------------------------------------
# Routing and prediction
# ---------------------------------------------------------------------------


def _comparable(ensemble: TreeEnsemble, value: float) -> float:
    """Round ``value`` as the model's library does before comparing it."""
    if ensemble.float32_inputs and not math.isnan(value):
        with np.errstate(over="ignore"):
            return float(np.float32(value))
    return float(value)


def is_missing(ensemble: TreeEnsemble, value: float) -> bool:
    """Whether ``value`` is missing: NaN, or equal to the ensemble's ``missing``.

    Both sides are rounded to float32 first when the ensemble compares in
    float32, as XGBoost compares ``float32(x)`` with ``float32(missing)``.
    """
    if math.isnan(value):
        return True
    if math.isnan(ensemble.missing):
        return False
    return _comparable(ensemble, value) == _comparable(ensemble, ensemble.missing)


def goes_left(ensemble: TreeEnsemble, node: int, x: np.ndarray) -> bool:
    """Whether row ``x`` takes the left child at ``node``."""
    nodes = ensemble.nodes
    value = float(x[nodes.feature[node]])
    if is_missing(ensemble, value):
        return bool(nodes.default_left[node])
    zero = abs(value) <= ZERO_THRESHOLD
    if nodes.zero_is_missing[node] and not nodes.is_categorical[node] and zero:
        return bool(nodes.default_left[node])
    if nodes.is_categorical[node]:
        start = nodes.category_offsets[node]
        stop = nodes.category_offsets[node + 1]
        # A category in the node's set goes right, every other value left.
        # Fractional codes are truncated toward zero, as XGBoost does.
        return float(np.trunc(value)) not in set(nodes.categories[start:stop].tolist())
    value = _comparable(ensemble, value)
    if ensemble.decision_type == "<":
        return value < nodes.threshold[node]
    return value <= nodes.threshold[node]


def _is_leaf(ensemble: TreeEnsemble, node: int) -> bool:
    return ensemble.nodes.left[node] < 0


def _tree_output_mask(ensemble: TreeEnsemble, tree: int) -> np.ndarray:
    """Boolean mask of the outputs that ``tree`` adds to."""
    first, stop = ensemble.tree_outputs[tree]
    mask = np.zeros(ensemble.n_outputs, dtype=bool)
    mask[first:stop] = True
    return mask


def _leaf_value(ensemble: TreeEnsemble, tree: int, leaf: int) -> np.ndarray:
    """The leaf's values on the tree's outputs and 0 on every other output.

    Values outside the tree's output range are unused by the schema, so they
    are never read (a synthetic ensemble may store NaN there).
    """
    mask = _tree_output_mask(ensemble, tree)
    return np.where(mask, ensemble.nodes.value[leaf], 0.0)


def predict_raw(ensemble: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    """Return the raw output of every row, shape (n_rows, n_outputs)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.tile(np.asarray(ensemble.base_score, dtype=np.float64), (len(X), 1))
    for row, x in enumerate(X):
        for tree in range(ensemble.n_trees):
            node = int(ensemble.tree_offsets[tree])
            while not _is_leaf(ensemble, node):
                if goes_left(ensemble, node, x):
                    node = int(ensemble.nodes.left[node])
                else:
                    node = int(ensemble.nodes.right[node])
            out[row] += _leaf_value(ensemble, tree, node)
    return out


# ---------------------------------------------------------------------------
# The path-dependent value function and brute-force Shapley values
# ---------------------------------------------------------------------------


def _cover_fraction(ensemble: TreeEnsemble, parent: int, child: int) -> float:
    cover = ensemble.nodes.cover
    if cover[parent] > 0:
        return float(cover[child] / cover[parent])
    return 0.0


def conditional_expectation(
    ensemble: TreeEnsemble, x: np.ndarray, known: set[int]
) -> np.ndarray:
    """Return ``v(S)`` for the feature set ``known``, shape (n_outputs,).

    Written as the definition reads: one recursion per tree, so use it on
    single subsets. :func:`subset_expectations` computes all subsets at once.
    """

    def expectation(tree: int, node: int) -> np.ndarray:
        if _is_leaf(ensemble, node):
            return _leaf_value(ensemble, tree, node)
        left = int(ensemble.nodes.left[node])
        right = int(ensemble.nodes.right[node])
        if int(ensemble.nodes.feature[node]) in known:
            child = left if goes_left(ensemble, node, x) else right
            return expectation(tree, child)
        left_weight = _cover_fraction(ensemble, node, left)
        right_weight = _cover_fraction(ensemble, node, right)
        return left_weight * expectation(tree, left) + right_weight * expectation(
            tree, right
        )

    total = np.asarray(ensemble.base_score, dtype=np.float64).copy()
    for tree in range(ensemble.n_trees):
        total = total + expectation(tree, int(ensemble.tree_offsets[tree]))
    return total


def split_features(ensemble: TreeEnsemble) -> list[int]:
    """Return the sorted features that some split of the ensemble uses."""
    internal = ensemble.nodes.left >= 0
    return sorted(set(ensemble.nodes.feature[internal].tolist()))


def subset_expectations(
    ensemble: TreeEnsemble, x: np.ndarray, players: list[int]
) -> np.ndarray:
    """Return ``v(S)`` for every subset ``S`` of ``players``.

    Row ``mask`` of the result, shape (2 ** len(players), n_outputs), is
    ``v(S)`` for ``S = {players[b] for each bit b set in mask}``. It is the
    recursion of :func:`conditional_expectation`, evaluated for all subsets
    at once. A feature that is not in ``players`` counts as unknown.
    """
    n_subsets = 1 << len(players)
    masks = np.arange(n_subsets)
    known_by_feature = {
        feature: ((masks >> bit) & 1).astype(bool)[:, None]
        for bit, feature in enumerate(players)
    }
    never_known = np.zeros((n_subsets, 1), dtype=bool)

    def expectation(tree: int, node: int) -> np.ndarray:
        if _is_leaf(ensemble, node):
            return np.tile(_leaf_value(ensemble, tree, node), (n_subsets, 1))
        left = int(ensemble.nodes.left[node])
        right = int(ensemble.nodes.right[node])
        left_values = expectation(tree, left)
        right_values = expectation(tree, right)
        followed = left_values if goes_left(ensemble, node, x) else right_values
        averaged = (
            _cover_fraction(ensemble, node, left) * left_values
            + _cover_fraction(ensemble, node, right) * right_values
        )
        known = known_by_feature.get(int(ensemble.nodes.feature[node]), never_known)
        return np.where(known, followed, averaged)

    total = np.tile(np.asarray(ensemble.base_score, dtype=np.float64), (n_subsets, 1))
    for tree in range(ensemble.n_trees):
        total += expectation(tree, int(ensemble.tree_offsets[tree]))
    return total


def shapley_weight(subset_size: int, n_players: int) -> float:
    """Return ``|S|! (n - |S| - 1)! / n!``, the Shapley weight of one subset."""
    numerator = math.factorial(subset_size) * math.factorial(n_players - subset_size - 1)
    return numerator / math.factorial(n_players)


def brute_force_shap(
    ensemble: TreeEnsemble, X: np.ndarray, max_players: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Return exact Shapley values of ``v`` by enumerating every subset.

    The players are the features the ensemble splits on. Features no split
    uses get the value 0, which is their Shapley value as null players.

    Returns
    -------
    values : ndarray of shape (n_rows, n_features, n_outputs)
    expected_value : ndarray of shape (n_outputs,)
        ``v`` of the empty set, which is the same for every row.
    """
    players = split_features(ensemble)
    n_players = len(players)
    if n_players > max_players:
        raise ValueError(
            f"brute force over {n_players} features needs 2**{n_players} "
            f"subsets; use product_game_shap instead, or raise max_players."
        )
    X = np.asarray(X, dtype=np.float64)
    values = np.zeros((len(X), ensemble.n_features, ensemble.n_outputs))
    masks = np.arange(1 << n_players)
    sizes = np.array([bin(mask).count("1") for mask in masks])
    weight_by_size = np.array(
        [shapley_weight(size, n_players) for size in range(n_players)]
    )
    expected_value = np.asarray(ensemble.base_score, dtype=np.float64).copy()
    for row, x in enumerate(X):
        v = subset_expectations(ensemble, x, players)
        expected_value = v[0]
        for bit, feature in enumerate(players):
            without = masks[(masks >> bit) & 1 == 0]
            marginal = v[without | (1 << bit)] - v[without]
            values[row, feature] = weight_by_size[sizes[without]] @ marginal
    return values, expected_value


# ---------------------------------------------------------------------------
# Per-leaf product games (exact at any depth)
# ---------------------------------------------------------------------------


def _leaf_paths(ensemble: TreeEnsemble, tree: int, x: np.ndarray):
    """Yield ``(leaf, zero, one)`` for every leaf of ``tree``.

    ``zero[j]`` is the product of the cover fractions of the path's edges
    that split on feature ``j``, and ``one[j]`` is 1.0 when row ``x`` takes
    all of those edges and 0.0 otherwise.
    """
    stack = [(int(ensemble.tree_offsets[tree]), {}, {})]
    while stack:
        node, zero, one = stack.pop()
        if _is_leaf(ensemble, node):
            yield node, zero, one
            continue
        feature = int(ensemble.nodes.feature[node])
        left = int(ensemble.nodes.left[node])
        right = int(ensemble.nodes.right[node])
        row_goes_left = goes_left(ensemble, node, x)
        for child, taken in ((left, row_goes_left), (right, not row_goes_left)):
            child_zero = dict(zero)
            child_one = dict(one)
            fraction = _cover_fraction(ensemble, node, child)
            child_zero[feature] = child_zero.get(feature, 1.0) * fraction
            child_one[feature] = child_one.get(feature, 1.0) * float(taken)
            stack.append((child, child_zero, child_one))


def _product_game_values(zero: dict, one: dict) -> dict[int, float]:
    """Return the Shapley values of ``u(S) = prod_j (one[j] if j in S else zero[j])``.

    For player ``i`` the value is ``(one[i] - zero[i])`` times the sum over
    subsets ``S`` of the other players of ``w(|S|) prod_{j in S} one[j]
    prod_{j not in S} zero[j]``. The subsets of size ``s`` sum to the
    coefficient of ``t**s`` in ``prod_{j != i} (zero[j] + one[j] t)``, so the
    sum is ``sum_s w(s) coefficient[s]``: only products and sums of
    non-negative numbers, with no division and no cancellation.
    """
    players = list(zero)
    n_players = len(players)
    weights = np.array(
        [1.0 / (n_players * math.comb(n_players - 1, s)) for s in range(n_players)]
    )
    factors = [np.array([zero[j], one[j]]) for j in players]
    # prefix[a] is the product of the factors before player a and suffix[a]
    # the product of those after it, so their product leaves out player a.
    prefix = [np.array([1.0])]
    for factor in factors[:-1]:
        prefix.append(np.convolve(prefix[-1], factor))
    suffix = [np.array([1.0])]
    for factor in reversed(factors[1:]):
        suffix.append(np.convolve(suffix[-1], factor))
    suffix.reverse()
    values = {}
    for a, player in enumerate(players):
        coefficients = np.convolve(prefix[a], suffix[a])
        values[player] = (one[player] - zero[player]) * float(weights @ coefficients)
    return values


def product_game_shap(ensemble: TreeEnsemble, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return path-dependent SHAP values as the sum of per-leaf product games.

    Leaf ``l`` of a tree contributes the game ``value[l] * prod_j (one[j] if j
    in S else zero[j])`` over the distinct features ``j`` of its path, and
    ``v(S)`` is the sum of these games over all leaves and trees, so the
    Shapley values add up the same way.

    Returns
    -------
    values : ndarray of shape (n_rows, n_features, n_outputs)
    expected_value : ndarray of shape (n_outputs,)
    """
    X = np.asarray(X, dtype=np.float64)
    values = np.zeros((len(X), ensemble.n_features, ensemble.n_outputs))
    expected_value = np.asarray(ensemble.base_score, dtype=np.float64).copy()
    for row, x in enumerate(X):
        for tree in range(ensemble.n_trees):
            for leaf, zero, one in _leaf_paths(ensemble, tree, x):
                leaf_value = _leaf_value(ensemble, tree, leaf)
                if row == 0:
                    expected_value += math.prod(zero.values()) * leaf_value
                for feature, weight in _product_game_values(zero, one).items():
                    values[row, feature] += weight * leaf_value
    return values, expected_value


# ---------------------------------------------------------------------------
# Synthetic ensembles
# ---------------------------------------------------------------------------

#: Split thresholds of synthetic trees. Rows drawn from the same grid (see
#: :func:`random_rows`) often equal a threshold, which tests ``<`` against
#: ``<=``.
THRESHOLD_GRID = np.array([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0])


@dataclass
class _Node:
    """One node of a tree under construction."""

    feature: int = -1
    threshold: float = math.nan
    default_left: bool = False
    categories: list[int] = field(default_factory=list)
    is_categorical: bool = False
    cover: float = 0.0
    value: np.ndarray | None = None
    left: "_Node | None" = None
    right: "_Node | None" = None

    @property
    def is_leaf(self) -> bool:
        return self.left is None


@dataclass(frozen=True)
class SyntheticSpec:
    """Options of :func:`random_ensemble`.

    Attributes
    ----------
    n_trees, max_depth, n_features, n_outputs : int
        Size of the ensemble. A tree is at most ``max_depth`` deep.
    leaf_probability : float
        Chance that a node above ``max_depth`` becomes a leaf anyway, so trees
        are unbalanced. The root becomes a leaf with ``single_leaf_probability``.
    path_features : int or None
        When set, each tree splits on only this many distinct features, so
        features repeat on paths even in shallow trees.
    zero_cover_probability : float
        Chance that a leaf's cover is 0. Internal covers are the sums of
        their children's, unless ``consistent_covers`` is False, in which
        case every node draws its own cover and may be 0 on its own.
    categorical_features : tuple of int
        Features whose splits are categorical, with codes 0 to
        ``n_categories - 1``.
    output_ranges : {"one", "all", "random"}
        Outputs of each tree: one output (round robin, as XGBoost's
        multi-class trees), all outputs (vector leaves), or a random
        contiguous range.
    breadth_first : bool
        Store nodes level by level instead of depth first.
    """

    n_trees: int = 3
    max_depth: int = 4
    n_features: int = 5
    n_outputs: int = 1
    leaf_probability: float = 0.15
    single_leaf_probability: float = 0.0
    path_features: int | None = None
    zero_cover_probability: float = 0.0
    consistent_covers: bool = True
    categorical_features: tuple[int, ...] = ()
    n_categories: int = 5
    output_ranges: str = "one"
    breadth_first: bool = False
    decision_type: str = "<"
    float32_inputs: bool = False
    missing: float = math.nan


def _grow(rng, spec: SyntheticSpec, features: list[int], depth: int, root: bool) -> _Node:
    """Grow a random subtree, with covers drawn later."""
    stop_probability = spec.single_leaf_probability if root else spec.leaf_probability
    if depth == spec.max_depth or rng.random() < stop_probability:
        return _Node()
    feature = int(rng.choice(features))
    node = _Node(feature=feature, default_left=bool(rng.random() < 0.5))
    if feature in spec.categorical_features:
        node.is_categorical = True
        size = int(rng.integers(1, spec.n_categories))
        node.categories = sorted(
            rng.choice(spec.n_categories, size=size, replace=False).tolist()
        )
    else:
        node.threshold = float(rng.choice(THRESHOLD_GRID))
    node.left = _grow(rng, spec, features, depth + 1, root=False)
    node.right = _grow(rng, spec, features, depth + 1, root=False)
    return node


def _set_covers(rng, spec: SyntheticSpec, node: _Node) -> float:
    """Draw covers bottom-up and return the subtree's cover."""
    if node.is_leaf:
        if rng.random() < spec.zero_cover_probability:
            node.cover = 0.0
        else:
            node.cover = float(rng.integers(1, 20))
        return node.cover
    children = _set_covers(rng, spec, node.left) + _set_covers(rng, spec, node.right)
    if spec.consistent_covers:
        node.cover = children
    elif rng.random() < spec.zero_cover_probability:
        node.cover = 0.0
    else:
        node.cover = float(rng.integers(1, 40))
    return node.cover


def _order(root: _Node, breadth_first: bool) -> list[_Node]:
    """List the nodes of a tree so that every child comes after its parent."""
    if breadth_first:
        order = [root]
        for node in order:
            if not node.is_leaf:
                order.extend([node.left, node.right])
        return order
    order = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        if not node.is_leaf:
            stack.extend([node.right, node.left])
    return order


def pack_trees(
    roots: list[_Node],
    tree_outputs: list[tuple[int, int]],
    *,
    n_features: int,
    n_outputs: int,
    base_score=None,
    breadth_first: bool = False,
    decision_type: str = "<",
    float32_inputs: bool = False,
    missing: float = math.nan,
) -> TreeEnsemble:
    """Pack trees of ``_Node`` into a ``TreeEnsemble``.

    Rows of ``value`` that the schema leaves unused (internal nodes, and
    outputs outside a tree's range) are NaN, so reading them shows up as NaN.
    """
    ordered = [_order(root, breadth_first) for root in roots]
    sizes = [len(nodes) for nodes in ordered]
    tree_offsets = np.zeros(len(roots) + 1, dtype=np.int64)
    tree_offsets[1:] = np.cumsum(sizes)
    n_nodes = int(tree_offsets[-1])

    left = np.full(n_nodes, -1, dtype=np.int32)
    right = np.full(n_nodes, -1, dtype=np.int32)
    feature = np.full(n_nodes, -1, dtype=np.int32)
    threshold = np.full(n_nodes, np.nan)
    default_left = np.zeros(n_nodes, dtype=bool)
    cover = np.zeros(n_nodes)
    value = np.full((n_nodes, n_outputs), np.nan)
    is_categorical = np.zeros(n_nodes, dtype=bool)
    category_lists = []
    for tree, nodes in enumerate(ordered):
        start = int(tree_offsets[tree])
        index = {id(node): start + i for i, node in enumerate(nodes)}
        first, stop = tree_outputs[tree]
        for node in nodes:
            i = index[id(node)]
            cover[i] = node.cover
            category_lists.append(node.categories)
            if node.is_leaf:
                value[i, first:stop] = node.value[first:stop]
                continue
            left[i] = index[id(node.left)]
            right[i] = index[id(node.right)]
            feature[i] = node.feature
            threshold[i] = node.threshold
            default_left[i] = node.default_left
            is_categorical[i] = node.is_categorical

    category_offsets = np.zeros(n_nodes + 1, dtype=np.int64)
    category_offsets[1:] = np.cumsum([len(c) for c in category_lists])
    categories = np.array([c for cs in category_lists for c in cs], dtype=np.float64)
    if base_score is None:
        base_score = np.zeros(n_outputs)
    return TreeEnsemble(
        nodes=NodeArrays(
            left=left,
            right=right,
            feature=feature,
            threshold=threshold,
            default_left=default_left,
            cover=cover,
            value=value,
            is_categorical=is_categorical,
            category_offsets=category_offsets,
            categories=categories,
        ),
        tree_offsets=tree_offsets,
        tree_outputs=np.asarray(tree_outputs, dtype=np.int32).reshape(-1, 2),
        tree_weights=np.ones(len(roots)),
        base_score=np.asarray(base_score, dtype=np.float64),
        n_features=n_features,
        feature_names=[f"f{i}" for i in range(n_features)],
        decision_type=decision_type,
        float32_inputs=float32_inputs,
        missing=missing,
    )


def _draw_output_range(rng, spec: SyntheticSpec, tree: int) -> tuple[int, int]:
    if spec.output_ranges == "one":
        output = tree % spec.n_outputs
        return output, output + 1
    if spec.output_ranges == "all":
        return 0, spec.n_outputs
    first = int(rng.integers(0, spec.n_outputs))
    return first, int(rng.integers(first + 1, spec.n_outputs + 1))


def _set_leaf_values(rng, node: _Node, n_outputs: int) -> None:
    if node.is_leaf:
        node.value = rng.normal(size=n_outputs)
        return
    _set_leaf_values(rng, node.left, n_outputs)
    _set_leaf_values(rng, node.right, n_outputs)


def random_ensemble(rng: np.random.Generator, spec: SyntheticSpec) -> TreeEnsemble:
    """Build a random ensemble as ``spec`` describes (see :class:`SyntheticSpec`)."""
    roots = []
    tree_outputs = []
    for tree in range(spec.n_trees):
        if spec.path_features is None:
            features = list(range(spec.n_features))
        else:
            features = sorted(
                rng.choice(spec.n_features, size=spec.path_features, replace=False).tolist()
            )
        root = _grow(rng, spec, features, depth=0, root=True)
        _set_covers(rng, spec, root)
        _set_leaf_values(rng, root, spec.n_outputs)
        roots.append(root)
        tree_outputs.append(_draw_output_range(rng, spec, tree))
    return pack_trees(
        roots,
        tree_outputs,
        n_features=spec.n_features,
        n_outputs=spec.n_outputs,
        base_score=rng.normal(size=spec.n_outputs),
        breadth_first=spec.breadth_first,
        decision_type=spec.decision_type,
        float32_inputs=spec.float32_inputs,
        missing=spec.missing,
    )


def random_rows(
    rng: np.random.Generator,
    n_rows: int,
    n_features: int,
    *,
    categorical_features: tuple[int, ...] = (),
    n_categories: int = 5,
    missing_probability: float = 0.1,
) -> np.ndarray:
    """Draw rows that hit split thresholds exactly, fall between them and are NaN.

    Categorical columns get codes 0 to ``n_categories`` inclusive, so one code
    is in no split's set.
    """
    on_grid = rng.choice(THRESHOLD_GRID, size=(n_rows, n_features))
    off_grid = rng.uniform(-1.5, 1.5, size=(n_rows, n_features))
    X = np.where(rng.random((n_rows, n_features)) < 0.5, on_grid, off_grid)
    for column in categorical_features:
        X[:, column] = rng.integers(0, n_categories + 1, size=n_rows)
    X[rng.random((n_rows, n_features)) < missing_probability] = np.nan
    return X


def deep_ensemble(
    rng: np.random.Generator,
    *,
    depth: int,
    n_features: int,
    branch_probability: float = 0.0,
    n_trees: int = 1,
) -> TreeEnsemble:
    """Build trees of exactly ``depth`` levels that stay small.

    Each tree has a spine of ``depth`` splits. Off the spine, a child splits
    again with ``branch_probability`` (0 gives a chain, where every split has
    one leaf child). Each split draws its feature from ``n_features``, so
    with few features they repeat along the spine. Each split passes a
    fraction between 0.3 and 0.7 of its cover to its left child, so the
    deepest leaf's cover is about ``0.5 ** depth`` of the root's.
    """
    roots = []
    for _ in range(n_trees):
        root = _deep_subtree(rng, depth, n_features, branch_probability, spine=True)
        _set_leaf_values(rng, root, 1)
        roots.append(root)
    return pack_trees(
        roots,
        [(0, 1)] * n_trees,
        n_features=n_features,
        n_outputs=1,
        base_score=[0.5],
    )


def _deep_subtree(
    rng,
    depth: int,
    n_features: int,
    branch_probability: float,
    spine: bool,
    cover: float = 1.0,
) -> _Node:
    if depth == 0 or (not spine and rng.random() >= branch_probability):
        return _Node(cover=cover)
    node = _Node(
        feature=int(rng.integers(0, n_features)),
        threshold=float(rng.choice(THRESHOLD_GRID)),
        default_left=bool(rng.random() < 0.5),
        cover=cover,
    )
    fraction = float(rng.uniform(0.3, 0.7))
    spine_left = bool(rng.random() < 0.5)
    left_cover = cover * fraction
    right_cover = cover - left_cover
    node.left = _deep_subtree(
        rng, depth - 1, n_features, branch_probability, spine and spine_left, left_cover
    )
    node.right = _deep_subtree(
        rng, depth - 1, n_features, branch_probability, spine and not spine_left, right_cover
    )
    return node


# ---------------------------------------------------------------------------
# Interventional values, interaction values and probability output
# ---------------------------------------------------------------------------


def _check_players(n_players: int, max_players: int) -> None:
    if n_players > max_players:
        raise ValueError(
            f"brute force over {n_players} features needs 2**{n_players} "
            f"subsets. Use fewer features or raise max_players."
        )


def _check_background(ensemble: TreeEnsemble, background: np.ndarray) -> np.ndarray:
    background = np.asarray(background, dtype=np.float64)
    if background.ndim != 2 or background.shape[1] != ensemble.n_features:
        raise ValueError(
            f"background must have shape (n_background, {ensemble.n_features}), "
            f"got {background.shape}."
        )
    if len(background) == 0:
        raise ValueError("background is empty. Pass at least one row.")
    return background


def _subset_members(n_players: int) -> np.ndarray:
    """Return ``members[mask, j]``, whether player ``j`` is in subset ``mask``."""
    masks = np.arange(1 << n_players)
    return ((masks[:, None] >> np.arange(n_players)) & 1).astype(bool)


def hybrid_predictions(
    ensemble: TreeEnsemble,
    x: np.ndarray,
    background: np.ndarray,
    max_players: int = 10,
) -> np.ndarray:
    """Predict every hybrid of row ``x`` with each background row.

    The hybrid of subset ``S`` and background row ``b`` takes ``x``'s values
    on the features in ``S`` and ``b``'s values on every other feature. The
    players are all ``ensemble.n_features`` features, and subset ``mask``
    follows the bit convention of :func:`subset_expectations`.

    Returns
    -------
    ndarray of shape (2 ** n_features, n_background, n_outputs)
        Raw outputs from :func:`predict_raw`, so they include ``base_score``.
    """
    n_features = ensemble.n_features
    _check_players(n_features, max_players)
    background = _check_background(ensemble, background)
    x = np.asarray(x, dtype=np.float64)
    members = _subset_members(n_features)
    hybrids = np.where(members[:, None, :], x[None, None, :], background[None, :, :])
    margins = predict_raw(ensemble, hybrids.reshape(-1, n_features))
    return margins.reshape(len(members), len(background), ensemble.n_outputs)


def interventional_game(
    ensemble: TreeEnsemble,
    x: np.ndarray,
    background: np.ndarray,
    max_players: int = 10,
) -> np.ndarray:
    """Return the interventional value function ``v(S)`` of row ``x``.

    ``v(S)`` is the mean raw output over the background rows of the hybrids
    of :func:`hybrid_predictions`. Row ``mask`` of the result, shape
    (2 ** n_features, n_outputs), is ``v(S)`` for the features ``S`` whose
    bits are set in ``mask``. Row 0, ``v`` of the empty set, is the mean raw
    output of the background, and the last row is the raw output of ``x``.
    Both include ``base_score``.
    """
    return hybrid_predictions(ensemble, x, background, max_players).mean(axis=1)


def _game_table(game, n_players: int) -> np.ndarray:
    """Return ``game`` as an array of ``v(S)`` indexed by subset bitmask.

    ``game`` is either such an array already, of shape (2 ** n_players,
    n_outputs), or a callable that takes a frozenset of player indices and
    returns a number or an array of shape (n_outputs,).
    """
    if callable(game):
        values = []
        for members in _subset_members(n_players):
            subset = frozenset(np.flatnonzero(members).tolist())
            values.append(np.atleast_1d(game(subset)))
        table = np.array(values, dtype=np.float64)
    else:
        table = np.asarray(game, dtype=np.float64)
    if table.ndim != 2 or len(table) != 1 << n_players:
        raise ValueError(
            f"game must have shape (2**{n_players}, n_outputs), got {table.shape}."
        )
    return table


def shapley_values(game, n_players: int) -> np.ndarray:
    """Return the exact Shapley values of ``game``, shape (n_players, n_outputs).

    ``game`` is an array of ``v(S)`` indexed by subset bitmask, or a callable
    on frozensets of player indices, as :func:`_game_table` describes.
    """
    v = _game_table(game, n_players)
    masks = np.arange(1 << n_players)
    sizes = np.array([bin(mask).count("1") for mask in masks])
    weight_by_size = np.array(
        [shapley_weight(size, n_players) for size in range(n_players)]
    )
    values = np.zeros((n_players, v.shape[1]))
    for player in range(n_players):
        without = masks[(masks >> player) & 1 == 0]
        marginal = v[without | (1 << player)] - v[without]
        values[player] = weight_by_size[sizes[without]] @ marginal
    return values


def shapley_interactions(game, n_players: int) -> np.ndarray:
    """Return the Shapley interaction values of ``game``.

    For ``i != j`` the Shapley interaction index is
    ``SII[i, j] = sum over S in N - {i, j} of |S|! (n - |S| - 2)! / (n - 1)!
    * (v(S + i + j) - v(S + i) - v(S + j) + v(S))``. The result splits it
    evenly between the two cells, ``phi[i, j] = phi[j, i] = SII[i, j] / 2``,
    and sets ``phi[i, i] = phi_i - sum_{j != i} phi[i, j]`` where ``phi_i`` is
    the Shapley value. So each row sums to that player's Shapley value, and
    the matrix is symmetric. ``game`` is as in :func:`shapley_values`.

    Returns
    -------
    ndarray of shape (n_players, n_players, n_outputs)
    """
    v = _game_table(game, n_players)
    masks = np.arange(1 << n_players)
    sizes = np.array([bin(mask).count("1") for mask in masks])
    # |S|! (n - |S| - 2)! / (n - 1)! is the Shapley weight in a game of
    # n - 1 players.
    weight_by_size = np.array(
        [shapley_weight(size, n_players - 1) for size in range(n_players - 1)]
    )
    interactions = np.zeros((n_players, n_players, v.shape[1]))
    for i in range(n_players):
        for j in range(i + 1, n_players):
            pair = (1 << i) | (1 << j)
            rest = masks[masks & pair == 0]
            with_i = v[rest | (1 << i)]
            with_j = v[rest | (1 << j)]
            difference = v[rest | pair] - with_i - with_j + v[rest]
            half_index = weight_by_size[sizes[rest]] @ difference / 2
            interactions[i, j] = half_index
            interactions[j, i] = half_index
    values = shapley_values(v, n_players)
    for i in range(n_players):
        # The diagonal is still 0 here, so the row sum is the off-diagonal sum.
        interactions[i, i] = values[i] - interactions[i].sum(axis=0)
    return interactions


def brute_force_interventional(
    ensemble: TreeEnsemble,
    X: np.ndarray,
    background: np.ndarray,
    max_players: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Return exact Shapley values of the interventional game of each row.

    The game is :func:`interventional_game`, over all ``ensemble.n_features``
    features.

    Returns
    -------
    values : ndarray of shape (n_rows, n_features, n_outputs)
    expected_value : ndarray of shape (n_outputs,)
        The mean raw output of the background rows, ``base_score`` included.
        It is ``v`` of the empty set for every row.
    """
    background = _check_background(ensemble, background)
    _check_players(ensemble.n_features, max_players)
    X = np.asarray(X, dtype=np.float64)
    values = np.zeros((len(X), ensemble.n_features, ensemble.n_outputs))
    expected_value = predict_raw(ensemble, background).mean(axis=0)
    for row, x in enumerate(X):
        v = interventional_game(ensemble, x, background, max_players)
        values[row] = shapley_values(v, ensemble.n_features)
    return values, expected_value


def brute_force_interactions(
    ensemble: TreeEnsemble,
    X: np.ndarray,
    background: np.ndarray | None = None,
    max_players: int = 10,
) -> np.ndarray:
    """Return exact Shapley interaction values of each row.

    Without ``background`` the game is the path-dependent ``v`` of
    :func:`subset_expectations`, whose players are the features the ensemble
    splits on, as in :func:`brute_force_shap`. Features no split uses get 0
    in their rows and columns. With ``background`` the game is
    :func:`interventional_game` over all features. Each row of a row's matrix
    sums to the matching Shapley value of the same game.

    Returns
    -------
    ndarray of shape (n_rows, n_features, n_features, n_outputs)
    """
    X = np.asarray(X, dtype=np.float64)
    n_features = ensemble.n_features
    values = np.zeros((len(X), n_features, n_features, ensemble.n_outputs))
    if background is None:
        players = split_features(ensemble)
        _check_players(len(players), max_players)
        for row, x in enumerate(X):
            v = subset_expectations(ensemble, x, players)
            pairs = np.ix_(players, players)
            values[row][pairs] = shapley_interactions(v, len(players))
        return values
    background = _check_background(ensemble, background)
    _check_players(n_features, max_players)
    for row, x in enumerate(X):
        v = interventional_game(ensemble, x, background, max_players)
        values[row] = shapley_interactions(v, n_features)
    return values


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    """Return ``1 / (1 + exp(-margin))`` without overflow for large ``|margin|``."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(margin, dtype=np.float64)))


def brute_force_probability_shap(
    ensemble: TreeEnsemble,
    X: np.ndarray,
    background: np.ndarray,
    max_players: int = 10,
) -> tuple[np.ndarray, float]:
    """Return interventional SHAP values of the probability of a logistic model.

    For each background row ``b`` separately, the raw Shapley values
    ``phi_b`` of the game with ``b`` as the only background row are rescaled
    by ``(sigmoid(m_x) - sigmoid(m_b)) / (m_x - m_b)``, where ``m_x`` and
    ``m_b`` are the raw outputs of ``x`` and ``b``. The factor is 1.0 when
    ``m_x == m_b``, where ``phi_b`` sums to 0 and so do the rescaled values.
    The result is the mean of the rescaled values over the background rows,
    and each row's values sum to ``sigmoid(m_x) - expected_value``.

    NOTE: this is meant to match shap's ``model_output="probability"`` with
    interventional perturbation, but it is written from the formula above and
    not checked against shap, including the factor 1.0 for equal margins.
    When ``m_x`` and ``m_b`` differ only in their last few digits, the
    quotient keeps few correct digits.

    Returns
    -------
    values : ndarray of shape (n_rows, n_features)
    expected_value : float
        The mean of ``sigmoid(m_b)`` over the background rows.
    """
    if ensemble.n_outputs != 1:
        raise ValueError(
            f"probability output needs a model with one output, got "
            f"{ensemble.n_outputs} outputs."
        )
    background = _check_background(ensemble, background)
    _check_players(ensemble.n_features, max_players)
    X = np.asarray(X, dtype=np.float64)
    values = np.zeros((len(X), ensemble.n_features))
    background_margins = predict_raw(ensemble, background)[:, 0]
    expected_value = float(_sigmoid(background_margins).mean())
    for row, x in enumerate(X):
        hybrids = hybrid_predictions(ensemble, x, background, max_players)
        # Every feature comes from x in the last subset.
        margin_x = float(hybrids[-1, 0, 0])
        for b, margin_b in enumerate(background_margins):
            phi_b = shapley_values(hybrids[:, b, :], ensemble.n_features)[:, 0]
            if margin_x == margin_b:
                factor = 1.0
            else:
                factor = float(
                    (_sigmoid(margin_x) - _sigmoid(margin_b)) / (margin_x - margin_b)
                )
            values[row] += factor * phi_b
        values[row] /= len(background)
    return values, expected_value
