"""Path-dependent TreeSHAP by Gauss-Legendre quadrature over per-leaf paths.

For a leaf ``l`` with value ``v`` whose root path splits on the distinct
features ``P``, let ``z_j`` be the product of the cover fractions of the
path's edges on feature ``j`` and ``o_j`` (0 or 1) whether row ``x`` takes
all of them. The path-dependent SHAP value of feature ``i`` is

    phi_i = sum over leaves with i in P of
            v * (o_i - z_i) * integral_0^1 prod_{j in P, j != i} (z_j + (o_j - z_j) t) dt

(Lundberg et al., "From local explanations to global understanding with
explainable AI for trees", Nature Machine Intelligence 2020: the Shapley
weights ``|S|! (d - |S| - 1)! / d!`` are the Beta integrals of
``t^|S| (1 - t)^(d - |S| - 1)``). The integrand is a polynomial of degree
``d - 1``, so Gauss-Legendre quadrature with ``ceil(d / 2)`` nodes is exact.
Every factor lies in [0, 1] and products exclude ``i`` by prefix and suffix
products, so no step divides or cancels: the result keeps float64 precision
at any depth.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.kernels._common import _category_goes_left, _numeric_goes_left
from fastshap.kernels.pattern_tables import _table_tree


@njit(**NJIT_FLAGS)
def _direct_tree(
    t, phi, go_left, ones, prefix, factor, accum, tree_offsets, tree_outputs,
    value, tree_leaf_offsets, leaf_node, slot_offsets, slot_feature, slot_zero,
    edge_offsets, edge_node, edge_left, edge_slot, quad_offsets, quad_t, quad_w,
):
    """Add tree ``t``'s SHAP values for one row to ``phi``, leaf by leaf.

    ``go_left`` contains the row's decision at each node of the tree. For each
    leaf, ``ones`` gets the row's bit per slot, and ``accum[s]`` the
    quadrature of the product of all other slots' factors, built from prefix
    and suffix products so that nothing is divided.
    """
    for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
        s0 = slot_offsets[leaf]
        n_slots = slot_offsets[leaf + 1] - s0
        if n_slots == 0:
            continue
        for s in range(n_slots):
            ones[s] = 1.0
            accum[s] = 0.0
        for e in range(edge_offsets[leaf], edge_offsets[leaf + 1]):
            if go_left[edge_node[e]] != edge_left[e]:
                ones[edge_slot[e]] = 0.0

        n_points = (n_slots + 1) // 2
        q0 = quad_offsets[n_points]
        for q in range(q0, q0 + n_points):
            t_q = quad_t[q]
            product = 1.0
            for s in range(n_slots):
                prefix[s] = product
                zero = slot_zero[s0 + s]
                factor[s] = zero + (ones[s] - zero) * t_q
                product *= factor[s]
            suffix = quad_w[q]
            for s in range(n_slots - 1, -1, -1):
                accum[s] += prefix[s] * suffix
                suffix *= factor[s]

        node = leaf_node[leaf]
        for s in range(n_slots):
            scale = (ones[s] - slot_zero[s0 + s]) * accum[s]
            j = slot_feature[s0 + s]
            for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
                phi[j, k] += scale * value[node, k]


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
    """Write the SHAP values of every row of ``X`` into ``out`` (n_rows, n_features, n_outputs).

    Rows are processed in chunks of ``chunk_rows``, tree by tree within a
    chunk, so one tree's nodes and tables stay in cache while every row of
    the chunk reads them. Row-major order instead reads every table once per
    row, and at depth 8 the tables far exceed the cache. The decisions and
    the table lookups are written inline because a numba call per tree and
    row costs more than the work it would wrap.
    """
    n_rows = X.shape[0]
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
                for node in range(start, stop):
                    if left[node] < 0:
                        continue
                    x_value = X[i, feature[node]]
                    if is_categorical[node]:
                        go_left[node - start] = _category_goes_left(
                            x_value, node, default_left[node], category_offsets,
                            categories, missing,
                        )
                    else:
                        go_left[node - start] = _numeric_goes_left(
                            x_value, threshold[node], default_left[node],
                            zero_is_missing[node], missing, strict_less,
                        )
                if tree_uses_table[t]:
                    _table_tree(
                        t, out[i], go_left, code, tree_offsets, tree_outputs, left,
                        right, node_slot, node_is_new, node_above_blocks,
                        tree_block_offsets, block_root, block_prefix_bits,
                        block_split_offsets, block_split_node, block_slot_offsets,
                        block_slot_feature, table_offsets, table,
                    )
                else:
                    _direct_tree(
                        t, out[i], go_left, ones, prefix, factor, accum,
                        tree_offsets, tree_outputs, value, tree_leaf_offsets,
                        leaf_node, slot_offsets, slot_feature, slot_zero,
                        edge_offsets, edge_node, edge_left, edge_slot,
                        quad_offsets, quad_t, quad_w,
                    )
