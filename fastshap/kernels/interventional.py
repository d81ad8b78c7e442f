"""Interventional SHAP values and interaction values from a background summary.

The interventional value function of a row ``x`` against a background set
``B`` is ``v(S) = mean over b in B of f(x_S, b_rest)``. Each leaf adds its
value to ``f(x_S, b_rest)`` exactly when every feature on its path is
satisfied: by ``x`` for the features in ``S``, by ``b`` for the others. Let
``o`` be the bits of the path's distinct features that ``x`` satisfies (all
conditions on that feature) and ``q`` the bits that ``b`` satisfies. The
leaf's game for the pair is ``1[A in S and S disjoint from C]`` unless some
feature is satisfied by neither, where ``A = o & ~q`` and ``C = q & ~o``;
features in both are null players. With ``a = |A|``, ``c = |C|`` and
``beta(i, j) = i! j! / (i + j + 1)!``, its Shapley values are

    + beta(a - 1, c)    for a feature in A,
    - beta(a, c - 1)    for a feature in C,

and its Shapley interaction indices (pairs of distinct features) are

    + beta(a - 2, c)        both in A,
    - beta(a - 1, c - 1)    one in A and one in C,
    + beta(a, c - 2)        both in C,

of which an interaction value is half (shap's and XGBoost's convention), the
diagonal holding the rest of the feature's SHAP value.

So a leaf enters a row's values only through ``o`` and the background's
distribution of ``q``. The background is summarised once per model: for
every leaf, the distinct patterns ``q`` of the background rows and their
share of the rows. A row's cost then depends on the number of distinct
patterns, at most ``2^d`` for a path of ``d`` distinct features, never on the
number of background rows; the pattern tables remove even that.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.kernels._common import _category_goes_left, _numeric_goes_left

#: Largest number of distinct features on one path that interventional values
#: support: patterns are bits of a 64-bit integer.
MAX_INTERVENTIONAL_SLOTS = 62

#: Paths with at most this many distinct features count background patterns
#: in a dense array of ``2^d`` counters; longer paths sort the patterns.
DENSE_COUNT_BITS = 16


class BackgroundSummary(NamedTuple):
    """The background's distinct patterns per leaf (see the module docstring).

    Attributes
    ----------
    leaf_offsets : ndarray of shape (n_leaves + 1,), int64
        Leaf ``l`` owns entries ``leaf_offsets[l]:leaf_offsets[l + 1]``.
    pattern : ndarray of shape (n_entries,), int64
        Bit ``s`` is set when the background rows of the entry satisfy every
        condition of the path on the leaf's ``s``-th distinct feature.
    weight : ndarray of shape (n_entries,), float64
        Share of the background rows with that pattern.
    n_rows : int
        Number of background rows.
    """

    leaf_offsets: NDArray[np.int64]
    pattern: NDArray[np.int64]
    weight: NDArray[np.float64]
    n_rows: int

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, in bytes."""
        return int(self.leaf_offsets.nbytes + self.pattern.nbytes + self.weight.nbytes)


def beta_table(max_slots: int) -> NDArray[np.float64]:
    """Return ``beta[i, j] = i! j! / (i + j + 1)!`` for ``i, j <= max_slots``.

    Built by ``beta[i, j] = beta[i, j - 1] * j / (i + j + 1)`` from
    ``beta[i, 0] = 1 / (i + 1)``: products and quotients of small integers,
    without factorials that overflow.
    """
    size = max_slots + 1
    beta = np.empty((size, size))
    for i in range(size):
        beta[i, 0] = 1.0 / (i + 1)
        for j in range(1, size):
            beta[i, j] = beta[i, j - 1] * j / (i + j + 1)
    return beta


@njit(inline="always", **NJIT_FLAGS)
def _popcount(bits):
    count = 0
    while bits:
        bits &= bits - 1
        count += 1
    return count


@njit(**NJIT_FLAGS)
def _add_pair_game(out_row, n_slots, only_x, only_b, weight, beta, order):
    """Add the values of one leaf game (see the module docstring) to ``out_row``.

    ``only_x`` and ``only_b`` are the bit sets ``A`` and ``C``. For
    ``order == 1`` the row holds one value per slot; for ``order == 2`` it
    holds the ``n_slots x n_slots`` interaction matrix in C order.
    """
    a = _popcount(only_x)
    c = _popcount(only_b)
    if a + c == 0:
        return
    on_a = weight * beta[a - 1, c] if a > 0 else 0.0
    on_c = -weight * beta[a, c - 1] if c > 0 else 0.0
    if order == 1:
        for s in range(n_slots):
            if (only_x >> s) & 1:
                out_row[s] += on_a
            elif (only_b >> s) & 1:
                out_row[s] += on_c
        return
    both_a = 0.5 * weight * beta[a - 2, c] if a > 1 else 0.0
    mixed = -0.5 * weight * beta[a - 1, c - 1] if a > 0 and c > 0 else 0.0
    both_c = 0.5 * weight * beta[a, c - 2] if c > 1 else 0.0
    # The diagonal keeps what the feature's SHAP value has beyond its
    # interactions, so that every row of the matrix sums to the SHAP value.
    diagonal_a = on_a - (a - 1) * both_a - c * mixed
    diagonal_c = on_c - a * mixed - (c - 1) * both_c
    for s in range(n_slots):
        s_in_a = (only_x >> s) & 1
        s_in_c = (only_b >> s) & 1
        if not (s_in_a or s_in_c):
            continue
        row = s * n_slots
        for r in range(n_slots):
            r_in_a = (only_x >> r) & 1
            r_in_c = (only_b >> r) & 1
            if r == s:
                out_row[row + r] += diagonal_a if s_in_a else diagonal_c
            elif r_in_a:
                out_row[row + r] += both_a if s_in_a else mixed
            elif r_in_c:
                out_row[row + r] += mixed if s_in_a else both_c


@njit(**NJIT_FLAGS)
def _interventional_pattern(out_row, n_slots, ones, first, last, pattern, weight, beta, order):
    """Set ``out_row`` to a leaf's values for a row whose pattern is ``ones``.

    Sums the leaf games of the background entries ``first:last``; an entry
    counts only when every slot is satisfied by the row or the entry.
    """
    full = (np.int64(1) << n_slots) - 1
    for s in range(out_row.shape[0]):
        out_row[s] = 0.0
    for e in range(first, last):
        q = pattern[e]
        if (ones | q) != full:
            continue
        _add_pair_game(out_row, n_slots, ones & ~q, q & ~ones, weight[e], beta, order)


@njit(**NJIT_FLAGS)
def _interventional_leaf_table(out, n_slots, first, last, pattern, weight, beta, order):
    """Fill ``out[o]``, a leaf's values for every row pattern ``o``.

    Works from the background side: an entry with pattern ``q`` counts for
    exactly the row patterns ``~q | u`` with ``u`` a subset of ``q``, so the
    table costs the sum of ``2^|q|`` over the entries rather than ``4^d``.
    """
    full = (np.int64(1) << n_slots) - 1
    out[: 1 << n_slots, :] = 0.0
    for e in range(first, last):
        q = pattern[e]
        only_x = full & ~q
        u = q
        while True:
            o = only_x | u
            _add_pair_game(out[o], n_slots, only_x, q & ~u, weight[e], beta, order)
            if u == 0:
                break
            u = (u - 1) & q


@njit(**NJIT_PARALLEL_FLAGS)
def _background_patterns(
    B, count_only, leaf_offsets, pattern_out, weight_out,
    tree_offsets, left, feature, threshold, default_left, zero_is_missing,
    is_categorical, category_offsets, categories, missing, strict_less,
    tree_leaf_offsets, slot_offsets, edge_offsets, edge_node, edge_left, edge_slot,
):
    """Count the distinct background patterns of every leaf, or write them.

    With ``count_only`` the number of distinct patterns of leaf ``l`` goes
    to ``leaf_offsets[l + 1]``; otherwise the patterns and their shares go to
    ``pattern_out`` and ``weight_out`` from ``leaf_offsets[l]`` on. Both
    passes list the patterns in the order of their first background row.
    """
    n_bg = B.shape[0]
    for t in prange(tree_offsets.shape[0] - 1):
        start = tree_offsets[t]
        n_nodes = tree_offsets[t + 1] - start
        # One row of decisions per node makes each path edge a contiguous
        # pass over the background rows.
        decisions = np.zeros((n_nodes, n_bg), dtype=np.bool_)
        for node in range(start, tree_offsets[t + 1]):
            if left[node] < 0:
                continue
            for r in range(n_bg):
                x_value = B[r, feature[node]]
                if is_categorical[node]:
                    decisions[node - start, r] = _category_goes_left(
                        x_value, node, default_left[node], category_offsets,
                        categories, missing,
                    )
                else:
                    decisions[node - start, r] = _numeric_goes_left(
                        x_value, threshold[node], default_left[node],
                        zero_is_missing[node], missing, strict_less,
                    )
        max_slots = 0
        for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
            max_slots = max(max_slots, slot_offsets[leaf + 1] - slot_offsets[leaf])
        counts = np.zeros(1 << min(max_slots, DENSE_COUNT_BITS), dtype=np.int64)
        codes = np.empty(n_bg, dtype=np.int64)
        distinct = np.empty(n_bg, dtype=np.int64)
        for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
            n_slots = slot_offsets[leaf + 1] - slot_offsets[leaf]
            codes[:] = (np.int64(1) << n_slots) - 1
            for e in range(edge_offsets[leaf], edge_offsets[leaf + 1]):
                clear = ~(np.int64(1) << edge_slot[e])
                row = decisions[edge_node[e]]
                went_left = edge_left[e]
                for r in range(n_bg):
                    if row[r] != went_left:
                        codes[r] &= clear
            n_distinct = 0
            if n_slots <= DENSE_COUNT_BITS:
                for r in range(n_bg):
                    if counts[codes[r]] == 0:
                        distinct[n_distinct] = codes[r]
                        n_distinct += 1
                    counts[codes[r]] += 1
            else:
                order = np.argsort(codes, kind="mergesort")
                for i in range(n_bg):
                    code = codes[order[i]]
                    if i == 0 or code != codes[order[i - 1]]:
                        distinct[n_distinct] = code
                        n_distinct += 1
            if count_only:
                leaf_offsets[leaf + 1] = n_distinct
            else:
                first = leaf_offsets[leaf]
                for i in range(n_distinct):
                    pattern_out[first + i] = distinct[i]
                    weight_out[first + i] = 0.0
                if n_slots <= DENSE_COUNT_BITS:
                    for i in range(n_distinct):
                        weight_out[first + i] = counts[distinct[i]] / n_bg
                else:
                    for r in range(n_bg):
                        for i in range(n_distinct):
                            if distinct[i] == codes[r]:
                                weight_out[first + i] += 1.0 / n_bg
                                break
            if n_slots <= DENSE_COUNT_BITS:
                for i in range(n_distinct):
                    counts[distinct[i]] = 0


def summarise_background(ensemble, paths, background: NDArray[np.float64]) -> BackgroundSummary:
    """Summarise ``background`` (rows in model column order) for ``ensemble``."""
    n = ensemble.nodes
    n_leaves = paths.leaf_node.shape[0]
    leaf_offsets = np.zeros(n_leaves + 1, dtype=np.int64)
    args = (
        ensemble.tree_offsets, n.left, n.feature, n.threshold, n.default_left,
        n.zero_is_missing, n.is_categorical, n.category_offsets, n.categories,
        ensemble.missing, ensemble.decision_type == "<", paths.tree_leaf_offsets,
        paths.slot_offsets, paths.edge_offsets, paths.edge_node, paths.edge_left,
        paths.edge_slot,
    )
    empty_patterns = np.empty(0, dtype=np.int64)
    empty_weights = np.empty(0)
    _background_patterns(background, True, leaf_offsets, empty_patterns, empty_weights, *args)
    leaf_offsets = np.cumsum(leaf_offsets)
    pattern = np.empty(int(leaf_offsets[-1]), dtype=np.int64)
    weight = np.empty(int(leaf_offsets[-1]))
    _background_patterns(background, False, leaf_offsets, pattern, weight, *args)
    return BackgroundSummary(leaf_offsets, pattern, weight, int(background.shape[0]))


@njit(**NJIT_FLAGS)
def _decisions(x, out, left, feature, threshold, default_left,
               zero_is_missing, is_categorical, category_offsets, categories,
               missing, strict_less):
    """Write row ``x``'s decision (goes left) at every internal node to ``out``."""
    for node in range(left.shape[0]):
        if left[node] < 0:
            continue
        x_value = x[feature[node]]
        if is_categorical[node]:
            out[node] = _category_goes_left(
                x_value, node, default_left[node], category_offsets, categories, missing
            )
        else:
            out[node] = _numeric_goes_left(
                x_value, threshold[node], default_left[node], zero_is_missing[node],
                missing, strict_less,
            )


@njit(**NJIT_FLAGS)
def _softmax_secant(m_b, delta, gl_t, gl_w, jacobian, probability):
    """Set ``jacobian`` to the mean of the softmax Jacobian on the segment ``m_b + t delta``.

    ``jacobian[k, l] = integral_0^1 p_k (1[k == l] - p_l) dt`` with ``p`` the
    softmax of ``m_b + t delta``. Then ``jacobian @ delta`` is the change of
    the probabilities along the segment. The integrand is analytic; the
    segment is cut into panels of at most one unit of spread in ``delta``,
    each integrated by the Gauss-Legendre rule ``gl_t``, ``gl_w`` on [0, 1],
    which with 8 points keeps the error near float64 rounding.
    """
    n_out = m_b.shape[0]
    jacobian[:, :] = 0.0
    spread = delta.max() - delta.min()
    n_panels = 1 + int(spread)
    for panel in range(n_panels):
        for q in range(gl_t.shape[0]):
            t = (panel + gl_t[q]) / n_panels
            w = gl_w[q] / n_panels
            largest = -np.inf
            for k in range(n_out):
                largest = max(largest, m_b[k] + t * delta[k])
            total = 0.0
            for k in range(n_out):
                probability[k] = np.exp(m_b[k] + t * delta[k] - largest)
                total += probability[k]
            for k in range(n_out):
                probability[k] /= total
            for k in range(n_out):
                for l in range(n_out):
                    identity = 1.0 if k == l else 0.0
                    jacobian[k, l] += w * probability[k] * (identity - probability[l])


@njit(**NJIT_PARALLEL_FLAGS)
def _probability_batch(
    X, B, margin_x, margin_b, out, softmax, gl_t, gl_w, tree_offsets, tree_outputs,
    left, feature, threshold, default_left, zero_is_missing, is_categorical,
    category_offsets, categories, missing, strict_less, value, tree_leaf_offsets,
    leaf_node, slot_offsets, slot_feature, edge_offsets, edge_node, edge_left,
    edge_slot, beta, max_slots,
):
    """Write probability SHAP values, shap's ``model_output="probability"``, to ``out``.

    For every background row ``b`` alone, the row's raw interventional values
    (per feature and margin) are mapped to probability space and the results
    averaged over the background. With logistic outputs (``softmax`` False)
    each output's values are scaled by the secant slope of the sigmoid,
    ``(sigmoid(m_x) - sigmoid(m_b)) / (m_x - m_b)``, or 1 when the margins are
    equal, as shap does. With a softmax they are multiplied by the mean
    softmax Jacobian on the segment between the two margin vectors
    (``_softmax_secant``), which reduces to the secant slope for one logistic
    output. Either way the values of a pair add up to the change of the
    probabilities. The map depends on the pair, so the cost grows with the
    number of background rows.
    """
    n_rows = X.shape[0]
    n_bg = B.shape[0]
    n_nodes = left.shape[0]
    n_features = X.shape[1]
    n_out = margin_x.shape[1]
    background_left = np.zeros((n_bg, n_nodes), dtype=np.bool_)
    for r in prange(n_bg):
        _decisions(B[r], background_left[r], left, feature, threshold,
                   default_left, zero_is_missing, is_categorical, category_offsets,
                   categories, missing, strict_less)
    for i in prange(n_rows):
        row_left = np.zeros(n_nodes, dtype=np.bool_)
        _decisions(X[i], row_left, left, feature, threshold,
                   default_left, zero_is_missing, is_categorical, category_offsets,
                   categories, missing, strict_less)
        pair_phi = np.zeros((n_features, n_out))
        leaf_weights = np.zeros(max(max_slots, 1))
        jacobian = np.zeros((n_out, n_out))
        probability = np.zeros(n_out)
        delta = np.zeros(n_out)
        out[i] = 0.0
        for r in range(n_bg):
            pair_phi[:, :] = 0.0
            for t in range(tree_offsets.shape[0] - 1):
                for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
                    s0 = slot_offsets[leaf]
                    n_slots = slot_offsets[leaf + 1] - s0
                    if n_slots == 0:
                        continue
                    full = (np.int64(1) << n_slots) - 1
                    ones = full
                    q = full
                    for e in range(edge_offsets[leaf], edge_offsets[leaf + 1]):
                        node = edge_node[e] + tree_offsets[t]
                        clear = ~(np.int64(1) << edge_slot[e])
                        if row_left[node] != edge_left[e]:
                            ones &= clear
                        if background_left[r, node] != edge_left[e]:
                            q &= clear
                    if (ones | q) != full or ones == q:
                        continue
                    leaf_weights[:n_slots] = 0.0
                    _add_pair_game(
                        leaf_weights, n_slots, ones & ~q, q & ~ones, 1.0, beta, 1
                    )
                    node = leaf_node[leaf]
                    for s in range(n_slots):
                        j = slot_feature[s0 + s]
                        for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
                            pair_phi[j, k] += leaf_weights[s] * value[node, k]
            for k in range(n_out):
                delta[k] = margin_x[i, k] - margin_b[r, k]
            if softmax:
                _softmax_secant(margin_b[r], delta, gl_t, gl_w, jacobian, probability)
                for j in range(n_features):
                    for k in range(n_out):
                        total = 0.0
                        for m in range(n_out):
                            total += jacobian[k, m] * pair_phi[j, m]
                        out[i, j, k] += total / n_bg
                continue
            for k in range(n_out):
                if delta[k] == 0.0:
                    scale = 1.0
                else:
                    scale = (
                        1.0 / (1.0 + np.exp(-margin_x[i, k]))
                        - 1.0 / (1.0 + np.exp(-margin_b[r, k]))
                    ) / delta[k]
                for j in range(n_features):
                    out[i, j, k] += scale * pair_phi[j, k] / n_bg
