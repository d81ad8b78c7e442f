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
patterns, which is at most ``2^d`` for a path of ``d`` distinct features but
also at most the number of background rows. The pattern tables, built from
the summary for paths of up to 16 bits, make it one lookup per block.

For deep trees without tables, whose leaves have about one pattern per
background row, ``_pair_tree`` walks the tree once per background row
instead and visits only the nodes that the row or the background row
satisfies. Probability output always walks, because its scale depends on
the pair of rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.kernels._common import _category_goes_left, _numeric_goes_left

#: Pattern bits per 64-bit word. Bit ``s`` of a pattern is in word ``s // 63``
#: at position ``s % 63``. The sign bit stays clear, so every word is a
#: non-negative int64 and ``(1 << 63) - 1`` does not overflow.
WORD_BITS = 63

#: Paths with at most this many distinct features count background patterns
#: in a dense array of ``2^d`` counters; longer paths sort the patterns.
DENSE_COUNT_BITS = 16


class BackgroundSummary(NamedTuple):
    """The background's distinct patterns per leaf (see the module docstring).

    Attributes
    ----------
    leaf_offsets : ndarray of shape (n_leaves + 1,), int64
        Leaf ``l`` owns entries ``leaf_offsets[l]:leaf_offsets[l + 1]``.
    pattern_offsets : ndarray of shape (n_leaves + 1,), int64
        Leaf ``l``'s patterns start at ``pattern[pattern_offsets[l]]``, one
        after the other, each ``ceil(d / 63)`` words long for a path of
        ``d`` distinct features.
    pattern : ndarray of shape (n_words,), int64
        Bit ``s`` is set when the background rows of the entry satisfy every
        condition of the path on the leaf's ``s``-th distinct feature.
    weight : ndarray of shape (n_entries,), float64
        Share of the background rows with that pattern.
    n_rows : int
        Number of background rows.
    """

    leaf_offsets: NDArray[np.int64]
    pattern_offsets: NDArray[np.int64]
    pattern: NDArray[np.int64]
    weight: NDArray[np.float64]
    n_rows: int

    @property
    def arrays(self) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """The arrays the kernels take, in their order."""
        return self.leaf_offsets, self.pattern_offsets, self.pattern, self.weight

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, in bytes."""
        return int(sum(array.nbytes for array in self.arrays))


def empty_summary_arrays() -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Kernel arguments that stand for no background (path-dependent values)."""
    offsets = np.zeros(1, dtype=np.int64)
    return offsets, offsets.copy(), np.zeros(0, dtype=np.int64), np.zeros(0)


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
def _n_words(n_slots):
    return max(1, (n_slots + WORD_BITS - 1) // WORD_BITS)


@njit(inline="always", **NJIT_FLAGS)
def _full_word(n_slots, w):
    """Return word ``w`` of the pattern with all ``n_slots`` bits set."""
    bits = min(WORD_BITS, n_slots - w * WORD_BITS)
    return (np.int64(1) << bits) - 1


@njit(inline="always", **NJIT_FLAGS)
def _popcount(bits):
    count = 0
    while bits:
        bits &= bits - 1
        count += 1
    return count


@njit(inline="always", **NJIT_FLAGS)
def _has_bit(words, s):
    return (words[s // WORD_BITS] >> (s % WORD_BITS)) & 1


@njit(inline="always", **NJIT_FLAGS)
def _game_weights(a, c, weight, beta):
    """Return the values of a leaf game with ``a`` features in A and ``c`` in C.

    The first two are the SHAP values of a feature in A and of one in C.
    The next three are the interaction values of two features in A, of one
    in A and one in C, and of two in C. The last two are the diagonal entries
    of a feature in A and of one in C: what the feature's SHAP value has
    beyond its interactions, so that every row of the matrix sums to the
    SHAP value.
    """
    on_a = 0.0
    if a > 0:
        on_a = weight * beta[a - 1, c]
    on_c = 0.0
    if c > 0:
        on_c = -weight * beta[a, c - 1]
    both_a = 0.0
    if a > 1:
        both_a = 0.5 * weight * beta[a - 2, c]
    mixed = 0.0
    if a > 0 and c > 0:
        mixed = -0.5 * weight * beta[a - 1, c - 1]
    both_c = 0.0
    if c > 1:
        both_c = 0.5 * weight * beta[a, c - 2]
    diagonal_a = on_a - (a - 1) * both_a - c * mixed
    diagonal_c = on_c - a * mixed - (c - 1) * both_c
    return on_a, on_c, both_a, mixed, both_c, diagonal_a, diagonal_c


@njit(**NJIT_FLAGS)
def _add_pair_game(out_row, n_slots, only_x, only_b, weight, beta, order):
    """Add the values of one leaf game (see the module docstring) to ``out_row``.

    ``only_x`` and ``only_b`` are the bit sets ``A`` and ``C``, as words. For
    ``order == 1`` the row has one value per slot. For ``order == 2`` it has
    the ``n_slots x n_slots`` interaction matrix in C order.
    """
    a = 0
    c = 0
    for w in range(_n_words(n_slots)):
        a += _popcount(only_x[w])
        c += _popcount(only_b[w])
    if a + c == 0:
        return
    on_a, on_c, both_a, mixed, both_c, diagonal_a, diagonal_c = _game_weights(
        a, c, weight, beta
    )
    if order == 1:
        for s in range(n_slots):
            if _has_bit(only_x, s):
                out_row[s] += on_a
            elif _has_bit(only_b, s):
                out_row[s] += on_c
        return
    for s in range(n_slots):
        s_in_a = _has_bit(only_x, s)
        s_in_c = _has_bit(only_b, s)
        if not (s_in_a or s_in_c):
            continue
        row = s * n_slots
        for r in range(n_slots):
            if r == s:
                out_row[row + r] += diagonal_a if s_in_a else diagonal_c
            elif _has_bit(only_x, r):
                out_row[row + r] += both_a if s_in_a else mixed
            elif _has_bit(only_b, r):
                out_row[row + r] += mixed if s_in_a else both_c


@njit(**NJIT_FLAGS)
def _add_if_covered(out_row, n_slots, ones, q, weight, beta, order, only_x, only_b):
    """Add the leaf game of row bits ``ones`` and background bits ``q`` (word arrays).

    Adds nothing when some slot is satisfied by neither. ``only_x`` and
    ``only_b`` are scratch words.
    """
    for w in range(_n_words(n_slots)):
        if (ones[w] | q[w]) != _full_word(n_slots, w):
            return
        only_x[w] = ones[w] & ~q[w]
        only_b[w] = q[w] & ~ones[w]
    _add_pair_game(out_row, n_slots, only_x, only_b, weight, beta, order)


@njit(**NJIT_FLAGS)
def _interventional_pattern(
    out_row, n_slots, ones, leaf, leaf_offsets, pattern_offsets, pattern, weight,
    beta, order, only_x, only_b,
):
    """Set ``out_row`` to ``leaf``'s values for a row whose bits are ``ones`` (words).

    Sums the leaf games of the leaf's background entries.
    """
    n_words = _n_words(n_slots)
    for s in range(n_slots**order):
        out_row[s] = 0.0
    first = leaf_offsets[leaf]
    for e in range(first, leaf_offsets[leaf + 1]):
        start = pattern_offsets[leaf] + (e - first) * n_words
        _add_if_covered(
            out_row, n_slots, ones, pattern[start:start + n_words], weight[e], beta,
            order, only_x, only_b,
        )


@njit(**NJIT_FLAGS)
def _interventional_leaf_table(
    out, n_slots, leaf, leaf_offsets, pattern_offsets, pattern, weight, beta, order,
    only_x, only_b,
):
    """Fill ``out[o]``, a leaf's values for every row pattern ``o`` (one word).

    Works from the background side: an entry with pattern ``q`` counts for
    exactly the row patterns ``~q | u`` with ``u`` a subset of ``q``, so the
    table costs the sum of ``2^|q|`` over the entries rather than ``4^d``.
    """
    full = _full_word(n_slots, 0)
    out[: 1 << n_slots, :] = 0.0
    first = leaf_offsets[leaf]
    for e in range(first, leaf_offsets[leaf + 1]):
        q = pattern[pattern_offsets[leaf] + e - first]
        only_x[0] = full & ~q
        u = q
        while True:
            only_b[0] = q & ~u
            _add_pair_game(out[only_x[0] | u], n_slots, only_x, only_b, weight[e], beta, order)
            if u == 0:
                break
            u = (u - 1) & q


@njit(**NJIT_FLAGS)
def _leaf_codes(codes, n_slots, decisions, edge_first, edge_last, edge_node, edge_left, edge_slot):
    """Write every background row's pattern for one leaf to ``codes`` (rows x words)."""
    for w in range(_n_words(n_slots)):
        codes[:, w] = _full_word(n_slots, w)
    for e in range(edge_first, edge_last):
        word = edge_slot[e] // WORD_BITS
        clear = ~(np.int64(1) << (edge_slot[e] % WORD_BITS))
        row = decisions[edge_node[e]]
        went_left = edge_left[e]
        for r in range(codes.shape[0]):
            if row[r] != went_left:
                codes[r, word] &= clear


@njit(**NJIT_FLAGS)
def _distinct_sorted(codes, n_words, distinct, counts):
    """Find the distinct rows of ``codes[:, :n_words]`` by sorting; return their number.

    Row indices of the distinct patterns go to ``distinct`` and their row
    counts to ``counts``. Rows are sorted by a hash of their words and
    compared in full with their sorted neighbour, so a hash collision can
    only list one pattern twice, which changes no value.
    """
    n_rows = codes.shape[0]
    hashes = np.empty(n_rows, dtype=np.int64)
    for r in range(n_rows):
        h = np.int64(n_words)
        for w in range(n_words):
            h = h * np.int64(1000003) ^ codes[r, w]
        hashes[r] = h
    order = np.argsort(hashes, kind="mergesort")
    n_distinct = 0
    for i in range(n_rows):
        same = i > 0 and hashes[order[i]] == hashes[order[i - 1]]
        if same:
            for w in range(n_words):
                if codes[order[i], w] != codes[order[i - 1], w]:
                    same = False
        if same:
            counts[n_distinct - 1] += 1
        else:
            distinct[n_distinct] = order[i]
            counts[n_distinct] = 1
            n_distinct += 1
    return n_distinct


@njit(**NJIT_PARALLEL_FLAGS)
def _background_patterns(
    columns, first_tree, last_tree, entry_capacity, word_capacity, n_entries, pattern_out,
    weight_out, dense_bits, tree_offsets, left, feature, threshold, default_left, zero_is_missing,
    is_categorical, category_offsets, categories, missing, strict_less,
    tree_leaf_offsets, slot_offsets, edge_offsets, edge_node, edge_left, edge_slot,
):
    """Write the distinct background patterns of the leaves of trees ``first_tree:last_tree``.

    ``columns`` is the background transposed, one row per feature, so that
    each node reads its feature's values contiguously.

    Leaf ``l`` (counted from the first tree's first leaf) may write
    ``entry_capacity[l]:entry_capacity[l + 1]`` of ``weight_out`` and
    ``word_capacity[l]:...`` of ``pattern_out``. That is room for a pattern
    per background row or per possible pattern, whichever is fewer. The
    leaf's number of distinct patterns goes to ``n_entries[l]``. Leaves of at most
    ``dense_bits`` distinct features count patterns in a dense array.
    """
    n_bg = columns.shape[1]
    leaf_base = tree_leaf_offsets[first_tree]
    for t in prange(first_tree, last_tree):
        start = tree_offsets[t]
        n_nodes = tree_offsets[t + 1] - start
        # One row of decisions per node makes each path edge a contiguous
        # pass over the background rows.
        decisions = np.zeros((n_nodes, n_bg), dtype=np.bool_)
        for node in range(start, tree_offsets[t + 1]):
            if left[node] < 0:
                continue
            values = columns[feature[node]]
            for r in range(n_bg):
                x_value = values[r]
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
        dense = np.zeros(1 << min(max_slots, dense_bits), dtype=np.int64)
        codes = np.empty((n_bg, _n_words(max_slots)), dtype=np.int64)
        distinct = np.empty(n_bg, dtype=np.int64)
        counts = np.empty(n_bg, dtype=np.int64)
        for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
            n_slots = slot_offsets[leaf + 1] - slot_offsets[leaf]
            n_words = _n_words(n_slots)
            _leaf_codes(
                codes, n_slots, decisions, edge_offsets[leaf], edge_offsets[leaf + 1],
                edge_node, edge_left, edge_slot,
            )
            if n_slots <= dense_bits:
                n_distinct = 0
                for r in range(n_bg):
                    code = codes[r, 0]
                    if dense[code] == 0:
                        distinct[n_distinct] = r
                        n_distinct += 1
                    dense[code] += 1
                for i in range(n_distinct):
                    code = codes[distinct[i], 0]
                    counts[i] = dense[code]
                    dense[code] = 0
            else:
                n_distinct = _distinct_sorted(codes, n_words, distinct, counts)
            n_entries[leaf - leaf_base] = n_distinct
            first = entry_capacity[leaf - leaf_base]
            words = word_capacity[leaf - leaf_base]
            for i in range(n_distinct):
                weight_out[first + i] = counts[i] / n_bg
                for w in range(n_words):
                    pattern_out[words + i * n_words + w] = codes[distinct[i], w]


#: Largest scratch memory, in bytes, for the patterns of one group of trees
#: while the background is summarised.
SUMMARY_SCRATCH_BYTES = 64 << 20


def summarise_background(
    ensemble, paths, background: NDArray[np.float64], dense_bits: int = DENSE_COUNT_BITS
) -> BackgroundSummary:
    """Summarise ``background`` (rows in model column order) for ``ensemble``.

    Trees are summarised in groups whose scratch (room for every leaf's
    largest possible number of patterns) stays within
    ``SUMMARY_SCRATCH_BYTES``, then each leaf's patterns are packed.
    """
    n = ensemble.nodes
    n_bg = background.shape[0]
    n_slots = np.diff(paths.slot_offsets)
    n_words = np.maximum(1, -(-n_slots // WORD_BITS))
    possible = np.where(n_slots < 62, np.left_shift(1, np.minimum(n_slots, 61)), n_bg)
    capacity = np.minimum(possible, n_bg)
    leaf_bytes = capacity * (8 + 8 * n_words)
    tree_leaf_offsets = paths.tree_leaf_offsets
    tree_bytes = np.add.reduceat(leaf_bytes, tree_leaf_offsets[:-1]) if len(leaf_bytes) else []
    args = (
        ensemble.tree_offsets, n.left, n.feature, n.threshold, n.default_left,
        n.zero_is_missing, n.is_categorical, n.category_offsets, n.categories,
        ensemble.missing, ensemble.decision_type == "<", tree_leaf_offsets,
        paths.slot_offsets, paths.edge_offsets, paths.edge_node, paths.edge_left,
        paths.edge_slot,
    )
    counts, patterns, weights = [], [], []
    columns = np.ascontiguousarray(background.T)
    n_trees = ensemble.n_trees
    first = 0
    while first < n_trees:
        last = first + 1
        spent = tree_bytes[first]
        while last < n_trees and spent + tree_bytes[last] <= SUMMARY_SCRATCH_BYTES:
            spent += tree_bytes[last]
            last += 1
        leaves = slice(tree_leaf_offsets[first], tree_leaf_offsets[last])
        entry_capacity = np.concatenate([[0], np.cumsum(capacity[leaves])])
        word_capacity = np.concatenate([[0], np.cumsum(capacity[leaves] * n_words[leaves])])
        n_entries = np.zeros(leaves.stop - leaves.start, dtype=np.int64)
        pattern = np.empty(int(word_capacity[-1]), dtype=np.int64)
        weight = np.empty(int(entry_capacity[-1]))
        _background_patterns(
            columns, first, last, entry_capacity, word_capacity, n_entries,
            pattern, weight, dense_bits, *args,
        )
        # Keep each leaf's written entries and words, dropping the unused room.
        entry_starts = entry_capacity[:-1]
        word_starts = word_capacity[:-1]
        kept_words = n_entries * n_words[leaves]
        weights.append(weight[_ranges(entry_starts, n_entries)])
        patterns.append(pattern[_ranges(word_starts, kept_words)])
        counts.append((n_entries, kept_words))
        first = last
    n_entries = np.concatenate([c[0] for c in counts]) if counts else np.zeros(0, np.int64)
    n_pattern_words = np.concatenate([c[1] for c in counts]) if counts else np.zeros(0, np.int64)
    leaf_offsets = np.concatenate([[0], np.cumsum(n_entries)]).astype(np.int64)
    pattern_offsets = np.concatenate([[0], np.cumsum(n_pattern_words)]).astype(np.int64)
    pattern = np.concatenate(patterns) if patterns else np.zeros(0, np.int64)
    weight = np.concatenate(weights) if weights else np.zeros(0)
    return BackgroundSummary(leaf_offsets, pattern_offsets, pattern, weight, int(n_bg))


def _ranges(starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return the indices ``start:start + length`` of every pair, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


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
    the probabilities along the segment. The segment is cut into panels of
    at most one unit of spread in ``delta``, and each panel is integrated by
    the Gauss-Legendre rule ``gl_t``, ``gl_w`` on [0, 1]. The integrand is
    analytic, so 8 points per panel keep the error near float64 rounding.
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
    left, right, feature, threshold, default_left, zero_is_missing, is_categorical,
    category_offsets, categories, missing, strict_less, value, beta, max_depth,
):
    """Write probability SHAP values, shap's ``model_output="probability"``, to ``out``.

    For every background row ``b`` alone, the row's raw interventional values
    (per feature and margin, from ``_pair_tree``) are mapped to probability
    space, and the results averaged over the background. With logistic
    outputs (``softmax`` False) each output's values are scaled by the
    secant slope of the sigmoid, ``(sigmoid(m_x) - sigmoid(m_b)) / (m_x -
    m_b)``, or 1 when the margins are equal, as shap does. With a softmax
    they are multiplied by the mean softmax Jacobian on the segment between
    the two margin vectors (``_softmax_secant``), which reduces to the
    secant slope for one logistic output. Either way the values of a pair
    add up to the change of the probabilities. The map depends on the pair,
    so the cost grows with the number of background rows.
    """
    n_rows = X.shape[0]
    n_bg = B.shape[0]
    n_nodes = left.shape[0]
    n_features = X.shape[1]
    n_out = margin_x.shape[1]
    for i in prange(n_rows):
        row_left = np.zeros(n_nodes, dtype=np.bool_)
        _decisions(X[i], row_left, left, feature, threshold,
                   default_left, zero_is_missing, is_categorical, category_offsets,
                   categories, missing, strict_less)
        pair_phi = np.zeros((n_features, n_out))
        scratch = np.zeros((8, max_depth + 2), dtype=np.int64)
        x_ok = np.ones(n_features, dtype=np.bool_)
        b_ok = np.ones(n_features, dtype=np.bool_)
        jacobian = np.zeros((n_out, n_out))
        probability = np.zeros(n_out)
        delta = np.zeros(n_out)
        out[i] = 0.0
        for r in range(n_bg):
            pair_phi[:, :] = 0.0
            for t in range(tree_offsets.shape[0] - 1):
                _pair_tree(
                    t, pair_phi, 1.0, row_left[tree_offsets[t]:tree_offsets[t + 1]],
                    B[r], tree_offsets, tree_outputs, left, right, feature, threshold,
                    default_left, zero_is_missing, is_categorical, category_offsets,
                    categories, missing, strict_less, value, beta, 1, scratch, x_ok,
                    b_ok,
                )
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


@njit(**NJIT_PARALLEL_FLAGS)
def _mean_pair_visits(
    B, n_pairs, tree_offsets, tree_outputs, left, right, feature, threshold,
    default_left, zero_is_missing, is_categorical, category_offsets, categories,
    missing, strict_less, value, beta, max_depth,
):
    """Return, per tree, the mean number of nodes ``_pair_tree`` visits.

    Measured on ``n_pairs`` pairs of background rows, the first of each pair
    standing in for an explained row.
    """
    n_trees = tree_offsets.shape[0] - 1
    n_bg = B.shape[0]
    visits = np.zeros(n_trees)
    for t in prange(n_trees):
        start = tree_offsets[t]
        x_left = np.zeros(tree_offsets[t + 1] - start, dtype=np.bool_)
        scratch = np.zeros((8, max_depth + 2), dtype=np.int64)
        x_ok = np.ones(B.shape[1], dtype=np.bool_)
        b_ok = np.ones(B.shape[1], dtype=np.bool_)
        unused = np.zeros((1, 1))
        for s in range(n_pairs):
            first = (s * 7919) % n_bg
            second = (s * 104729 + 1) % n_bg
            for node in range(start, tree_offsets[t + 1]):
                if left[node] < 0:
                    continue
                if is_categorical[node]:
                    x_left[node - start] = _category_goes_left(
                        B[first, feature[node]], node, default_left[node],
                        category_offsets, categories, missing,
                    )
                else:
                    x_left[node - start] = _numeric_goes_left(
                        B[first, feature[node]], threshold[node], default_left[node],
                        zero_is_missing[node], missing, strict_less,
                    )
            visits[t] += _pair_tree(
                t, unused, 0.0, x_left, B[second], tree_offsets, tree_outputs, left,
                right, feature, threshold, default_left, zero_is_missing,
                is_categorical, category_offsets, categories, missing, strict_less,
                value, beta, 1, scratch, x_ok, b_ok,
            )
        visits[t] /= max(n_pairs, 1)
    return visits


@njit(**NJIT_FLAGS)
def _add_set_game(
    phi, n_features, only_x, a, only_b, c, weight, value, node, out_first, out_last,
    beta, order,
):
    """Add a leaf game given by its feature lists ``only_x`` (A) and ``only_b`` (C) to ``phi``.

    The values are those of ``_add_pair_game``, written per feature rather
    than per slot; for ``order`` 2, ``phi`` has a row per pair of features.
    """
    if a + c == 0:
        return
    on_a, on_c, both_a, mixed, both_c, diagonal_a, diagonal_c = _game_weights(
        a, c, weight, beta
    )
    if order == 1:
        for k in range(out_first, out_last):
            for i in range(a):
                phi[only_x[i], k] += on_a * value[node, k]
            for i in range(c):
                phi[only_b[i], k] += on_c * value[node, k]
        return
    for k in range(out_first, out_last):
        v = value[node, k]
        for i in range(a):
            row = only_x[i] * n_features
            phi[row + only_x[i], k] += diagonal_a * v
            for j in range(a):
                if j != i:
                    phi[row + only_x[j], k] += both_a * v
            for j in range(c):
                phi[row + only_b[j], k] += mixed * v
        for i in range(c):
            row = only_b[i] * n_features
            phi[row + only_b[i], k] += diagonal_c * v
            for j in range(c):
                if j != i:
                    phi[row + only_b[j], k] += both_c * v
            for j in range(a):
                phi[row + only_x[j], k] += mixed * v


@njit(**NJIT_FLAGS)
def _pair_tree(
    t, phi, weight, x_left, b_row, tree_offsets, tree_outputs, left, right, feature,
    threshold, default_left, zero_is_missing, is_categorical, category_offsets,
    categories, missing, strict_less, value, beta, order, scratch, x_ok, b_ok,
):
    """Add ``weight`` times the interventional values of one row against one background row.

    Walks tree ``t`` depth first. A node is visited only when every feature
    on the way to it is satisfied by the row or by the background row
    (``b_row``). So the cost is the number of such nodes, not the number of
    leaves. ``x_left`` has the row's decision at each node of the tree
    (indexed within the tree). ``x_ok`` and ``b_ok`` are per-feature flags,
    all True on entry and on return. ``scratch`` is an int64 array of shape
    (8, d + 2) for trees of depth ``d``. Returns the number of nodes visited.
    """
    start = tree_offsets[t]
    n_features = x_ok.shape[0]
    stack_node = scratch[0]
    stack_depth = scratch[1]
    stack_state = scratch[2]
    undo_feature = scratch[3]
    undo_state = scratch[4]
    undo_length = scratch[5]
    only_x = scratch[6]
    only_b = scratch[7]
    out_first = tree_outputs[t, 0]
    out_last = tree_outputs[t, 1]
    top = 0
    undo_length[0] = 0
    stack_node[0] = start
    stack_depth[0] = 0
    stack_state[0] = -1
    n_undo = 0
    a = 0
    c = 0
    visited = 0
    while top >= 0:
        node = stack_node[top]
        depth = stack_depth[top]
        state = stack_state[top]
        top -= 1
        # Undo the changes of the subtree explored last, back to this depth.
        while n_undo > undo_length[depth]:
            n_undo -= 1
            f = undo_feature[n_undo]
            a -= 1 if x_ok[f] and not b_ok[f] else 0
            c -= 1 if b_ok[f] and not x_ok[f] else 0
            x_ok[f] = undo_state[n_undo] & 1
            b_ok[f] = undo_state[n_undo] >> 1
            a += 1 if x_ok[f] and not b_ok[f] else 0
            c += 1 if b_ok[f] and not x_ok[f] else 0
        undo_length[depth] = n_undo
        if state >= 0:
            # state = feature * 4 + x flag + 2 * b flag of the parent's split.
            f = state >> 2
            undo_feature[n_undo] = f
            undo_state[n_undo] = _state_bits(x_ok[f], b_ok[f])
            n_undo += 1
            a -= 1 if x_ok[f] and not b_ok[f] else 0
            c -= 1 if b_ok[f] and not x_ok[f] else 0
            x_ok[f] = state & 1
            b_ok[f] = (state >> 1) & 1
            a += 1 if x_ok[f] and not b_ok[f] else 0
            c += 1 if b_ok[f] and not x_ok[f] else 0
        undo_length[depth + 1] = n_undo
        visited += 1
        if left[node] < 0:
            if a + c > 0 and weight != 0.0:
                n_a = 0
                n_c = 0
                for u in range(n_undo):
                    f = undo_feature[u]
                    if x_ok[f] and not b_ok[f]:
                        if _not_listed(only_x, n_a, f):
                            only_x[n_a] = f
                            n_a += 1
                    elif b_ok[f] and not x_ok[f]:
                        if _not_listed(only_b, n_c, f):
                            only_b[n_c] = f
                            n_c += 1
                _add_set_game(
                    phi, n_features, only_x, n_a, only_b, n_c, weight, value, node,
                    out_first, out_last, beta, order,
                )
            continue
        f = feature[node]
        b_value = b_row[f]
        if is_categorical[node]:
            b_goes_left = _category_goes_left(
                b_value, node, default_left[node], category_offsets, categories, missing
            )
        else:
            b_goes_left = _numeric_goes_left(
                b_value, threshold[node], default_left[node], zero_is_missing[node],
                missing, strict_less,
            )
        x_goes_left = x_left[node - start]
        # Push the right child, then the left one, each only when the row or
        # the background row can still reach its leaves.
        new_x = x_ok[f] and not x_goes_left
        new_b = b_ok[f] and not b_goes_left
        if new_x or new_b:
            top += 1
            stack_node[top] = right[node]
            stack_depth[top] = depth + 1
            stack_state[top] = f * 4 + _state_bits(new_x, new_b)
        new_x = x_ok[f] and x_goes_left
        new_b = b_ok[f] and b_goes_left
        if new_x or new_b:
            top += 1
            stack_node[top] = left[node]
            stack_depth[top] = depth + 1
            stack_state[top] = f * 4 + _state_bits(new_x, new_b)
    # Restore every flag for the next call.
    while n_undo > 0:
        n_undo -= 1
        f = undo_feature[n_undo]
        x_ok[f] = undo_state[n_undo] & 1
        b_ok[f] = undo_state[n_undo] >> 1
    return visited


@njit(inline="always", **NJIT_FLAGS)
def _state_bits(x_flag, b_flag):
    """Return the two flags as bits: 1 for the row, 2 for the background row."""
    bits = 0
    if x_flag:
        bits += 1
    if b_flag:
        bits += 2
    return bits


@njit(inline="always", **NJIT_FLAGS)
def _not_listed(items, n_items, item):
    for i in range(n_items):
        if items[i] == item:
            return False
    return True
