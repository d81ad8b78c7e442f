"""The row kernel: SHAP or interaction values of a batch of rows, tree by tree.

One kernel serves every algorithm. Each tree is explained from its pattern
tables when it has them, and otherwise leaf by leaf. Path-dependent SHAP
values then use quadrature (``fastshap.kernels.path_dependent``). Other
values use the leaf's weights for the row's pattern: path-dependent
interactions, and interventional values from the background summary of
``fastshap.kernels.interventional``. Interventional trees whose summary
would cost more are walked once per background row.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.kernels._common import _category_goes_left, _numeric_goes_left
from fastshap.kernels.interventional import (
    WORD_BITS,
    _interventional_pattern,
    _n_words,
    _pair_tree,
)
from fastshap.kernels.path_dependent import _direct_tree, _path_dependent_pairs
from fastshap.kernels.pattern_tables import _table_tree


@njit(**NJIT_FLAGS)
def _direct_tree_by_pattern(
    t, phi, go_left, ones, leaf_weights, factor, left_product, tree_outputs,
    value, tree_leaf_offsets, leaf_node, slot_offsets, slot_feature, slot_zero,
    edge_offsets, edge_node, edge_left, edge_slot, quad_offsets, quad_t, quad_w,
    interventional, order, n_features, bg_offsets, bg_pattern_offsets, bg_pattern,
    bg_weight, beta, words, only_x, only_b,
):
    """Add tree ``t``'s values for one row to ``phi``, from each leaf's weights.

    For ``order`` 2, ``phi`` has a row per pair of features,
    ``i * n_features + j``. ``words``, ``only_x`` and ``only_b`` are scratch
    for the row's pattern bits.
    """
    for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
        s0 = slot_offsets[leaf]
        n_slots = slot_offsets[leaf + 1] - s0
        if n_slots == 0:
            continue
        for s in range(n_slots):
            ones[s] = 1.0
        for e in range(edge_offsets[leaf], edge_offsets[leaf + 1]):
            if go_left[edge_node[e]] != edge_left[e]:
                ones[edge_slot[e]] = 0.0
        if interventional:
            for w in range(_n_words(n_slots)):
                words[w] = 0
            for s in range(n_slots):
                if ones[s] == 1.0:
                    words[s // WORD_BITS] |= np.int64(1) << (s % WORD_BITS)
            _interventional_pattern(
                leaf_weights, n_slots, words, leaf, bg_offsets, bg_pattern_offsets,
                bg_pattern, bg_weight, beta, order, only_x, only_b,
            )
        else:
            _path_dependent_pairs(
                leaf_weights, n_slots, ones, slot_zero[s0:s0 + n_slots], quad_offsets,
                quad_t, quad_w, factor, left_product,
            )
        node = leaf_node[leaf]
        for s in range(n_slots):
            j = slot_feature[s0 + s]
            if order == 1:
                for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
                    phi[j, k] += leaf_weights[s] * value[node, k]
                continue
            for r in range(n_slots):
                w = leaf_weights[s * n_slots + r]
                jr = j * n_features + slot_feature[s0 + r]
                for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
                    phi[jr, k] += w * value[node, k]


@njit(**NJIT_PARALLEL_FLAGS)
def _shap_batch(
    X, out, chunk_rows, max_tree_nodes, max_slots,
    tree_offsets, tree_outputs, left, right, feature, threshold, default_left,
    zero_is_missing, is_categorical, category_offsets, categories, value, missing,
    strict_less, tree_leaf_offsets, leaf_node, slot_offsets, slot_feature, slot_zero,
    edge_offsets, edge_node, edge_left, edge_slot, quad_offsets, quad_t, quad_w,
    interventional, order, bg_offsets, bg_pattern_offsets, bg_pattern, bg_weight, beta,
    background, tree_per_pair, max_depth, tree_uses_table, node_slot, node_is_new, node_above_blocks,
    tree_block_offsets, block_root, block_prefix_bits, block_split_offsets,
    block_split_node, block_slot_offsets, block_slot_feature, table_offsets, table,
):
    """Write the values of every row of ``X`` into ``out``.

    ``out`` has shape (n_rows, n_features, n_outputs) for SHAP values
    (``order`` 1) and (n_rows, n_features * n_features, n_outputs) for
    interaction values (``order`` 2). Values are path-dependent, or
    interventional against the background summary when ``interventional``.
    An interventional tree without tables for which ``tree_per_pair`` is
    set is walked once per row of ``background`` instead, which costs less
    than the summary when deep leaves have about as many distinct patterns
    as there are background rows.

    Rows are processed in chunks of ``chunk_rows``, tree by tree within a
    chunk, so one tree's nodes and tables stay in cache while every row of
    the chunk reads them. Row-major order instead reads every table once per
    row, and at depth 8 the tables far exceed the cache. The decisions are
    written inline because a numba call per tree and row costs more than the
    work it would wrap.
    """
    n_rows = X.shape[0]
    n_features = X.shape[1]
    n_chunks = (n_rows + chunk_rows - 1) // chunk_rows
    for c in prange(n_chunks):
        first = c * chunk_rows
        last = min(first + chunk_rows, n_rows)
        go_left = np.zeros(max(max_tree_nodes, 1), dtype=np.bool_)
        code = np.zeros(max(max_tree_nodes, 1), dtype=np.int64)
        ones = np.empty(max(max_slots, 1))
        prefix = np.empty_like(ones)
        factor = np.empty_like(ones)
        accum = np.empty_like(ones)
        leaf_weights = np.empty(max(max_slots, 1) ** order)
        max_words = _n_words(max_slots)
        words = np.empty(max_words, dtype=np.int64)
        only_x = np.empty(max_words, dtype=np.int64)
        only_b = np.empty(max_words, dtype=np.int64)
        pair_scratch = np.zeros((8, max_depth + 2), dtype=np.int64)
        x_ok = np.ones(n_features, dtype=np.bool_)
        b_ok = np.ones(n_features, dtype=np.bool_)
        n_background = background.shape[0]
        out[first:last] = 0.0
        for t in range(tree_offsets.shape[0] - 1):
            start = tree_offsets[t]
            stop = tree_offsets[t + 1]
            for i in range(first, last):
                _tree_decisions(
                    X[i], go_left, start, stop, left, feature, threshold, default_left,
                    zero_is_missing, is_categorical, category_offsets, categories,
                    missing, strict_less,
                )
                if tree_uses_table[t]:
                    _table_tree(
                        t, out[i], go_left, code, tree_offsets, tree_outputs, left,
                        right, node_slot, node_is_new, node_above_blocks,
                        tree_block_offsets, block_root, block_prefix_bits,
                        block_split_offsets, block_split_node, block_slot_offsets,
                        block_slot_feature, table_offsets, table, order, n_features,
                    )
                elif interventional and tree_per_pair[t]:
                    for r in range(n_background):
                        _pair_tree(
                            t, out[i], 1.0 / n_background, go_left, background[r],
                            tree_offsets, tree_outputs, left, right, feature,
                            threshold, default_left, zero_is_missing, is_categorical,
                            category_offsets, categories, missing, strict_less, value,
                            beta, order, pair_scratch, x_ok, b_ok,
                        )
                elif order == 1 and not interventional:
                    _direct_tree(
                        t, out[i], go_left, ones, prefix, factor, accum,
                        tree_offsets, tree_outputs, value, tree_leaf_offsets,
                        leaf_node, slot_offsets, slot_feature, slot_zero,
                        edge_offsets, edge_node, edge_left, edge_slot,
                        quad_offsets, quad_t, quad_w,
                    )
                else:
                    _direct_tree_by_pattern(
                        t, out[i], go_left, ones, leaf_weights, factor, prefix,
                        tree_outputs, value, tree_leaf_offsets, leaf_node,
                        slot_offsets, slot_feature, slot_zero, edge_offsets,
                        edge_node, edge_left, edge_slot, quad_offsets, quad_t,
                        quad_w, interventional, order, n_features, bg_offsets,
                        bg_pattern_offsets, bg_pattern, bg_weight, beta, words,
                        only_x, only_b,
                    )


@njit(**NJIT_PARALLEL_FLAGS)
def _path_dependent_batch(
    X, out, chunk_rows, max_tree_nodes, max_slots,
    tree_offsets, tree_outputs, left, right, feature, threshold, default_left,
    zero_is_missing, is_categorical, category_offsets, categories, value, missing,
    strict_less, tree_leaf_offsets, leaf_node, slot_offsets, slot_feature, slot_zero,
    edge_offsets, edge_node, edge_left, edge_slot, quad_offsets, quad_t, quad_w,
    tree_uses_table, node_slot, node_is_new, node_above_blocks,
    tree_block_offsets, block_root, block_prefix_bits, block_split_offsets,
    block_split_node, block_slot_offsets, block_slot_feature, table_offsets, table,
):
    """Write the path-dependent SHAP values of every row of ``X`` into ``out``.

    The case of ``_shap_batch`` that most calls need, as a kernel of its
    own: without the interventional and interaction code it compiles in
    about half the time, which a new install or an empty numba cache pays.
    """
    n_rows = X.shape[0]
    n_features = X.shape[1]
    n_chunks = (n_rows + chunk_rows - 1) // chunk_rows
    for c in prange(n_chunks):
        first = c * chunk_rows
        last = min(first + chunk_rows, n_rows)
        go_left = np.zeros(max(max_tree_nodes, 1), dtype=np.bool_)
        code = np.zeros(max(max_tree_nodes, 1), dtype=np.int64)
        ones = np.empty(max(max_slots, 1))
        prefix = np.empty_like(ones)
        factor = np.empty_like(ones)
        accum = np.empty_like(ones)
        out[first:last] = 0.0
        for t in range(tree_offsets.shape[0] - 1):
            start = tree_offsets[t]
            stop = tree_offsets[t + 1]
            for i in range(first, last):
                _tree_decisions(
                    X[i], go_left, start, stop, left, feature, threshold, default_left,
                    zero_is_missing, is_categorical, category_offsets, categories,
                    missing, strict_less,
                )
                if tree_uses_table[t]:
                    _table_tree(
                        t, out[i], go_left, code, tree_offsets, tree_outputs, left,
                        right, node_slot, node_is_new, node_above_blocks,
                        tree_block_offsets, block_root, block_prefix_bits,
                        block_split_offsets, block_split_node, block_slot_offsets,
                        block_slot_feature, table_offsets, table, 1, n_features,
                    )
                else:
                    _direct_tree(
                        t, out[i], go_left, ones, prefix, factor, accum,
                        tree_offsets, tree_outputs, value, tree_leaf_offsets,
                        leaf_node, slot_offsets, slot_feature, slot_zero,
                        edge_offsets, edge_node, edge_left, edge_slot,
                        quad_offsets, quad_t, quad_w,
                    )


@njit(inline="always", **NJIT_FLAGS)
def _tree_decisions(
    x, go_left, start, stop, left, feature, threshold, default_left, zero_is_missing,
    is_categorical, category_offsets, categories, missing, strict_less,
):
    """Write row ``x``'s decision at each internal node of one tree to ``go_left``.

    ``go_left`` is indexed within the tree (node minus ``start``).
    """
    for node in range(start, stop):
        if left[node] < 0:
            continue
        x_value = x[feature[node]]
        if is_categorical[node]:
            go_left[node - start] = _category_goes_left(
                x_value, node, default_left[node], category_offsets, categories, missing,
            )
        else:
            go_left[node - start] = _numeric_goes_left(
                x_value, threshold[node], default_left[node], zero_is_missing[node],
                missing, strict_less,
            )
