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
from numba import njit

from fastshap._config import NJIT_FLAGS


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


@njit(**NJIT_FLAGS)
def _path_dependent_pairs(
    out_row, n_slots, ones, zero, quad_offsets, quad_t, quad_w, factor, left_product
):
    """Set ``out_row`` to a leaf's interaction weights for the row bits ``ones``.

    ``out_row[s * n_slots + r]`` becomes half the Shapley interaction index of
    slots ``s`` and ``r`` in the leaf's game,
    ``(o_s - z_s)(o_r - z_r) integral_0^1 prod_{j != s, r} (z_j + (o_j - z_j) t) dt``
    (the integral is the Beta form of the index's weights), and the diagonal
    the slot's SHAP weight minus the rest of its row. Multiplying by the leaf
    value gives the contribution. The products that leave out two slots come
    from prefix and suffix products, without division.
    """
    n_points = (n_slots + 1) // 2
    q0 = quad_offsets[n_points]
    for cell in range(n_slots * n_slots):
        out_row[cell] = 0.0
    for q in range(q0, q0 + n_points):
        t_q = quad_t[q]
        for s in range(n_slots):
            factor[s] = zero[s] + (ones[s] - zero[s]) * t_q
        for s in range(n_slots):
            product = 1.0
            for r in range(n_slots):
                left_product[r] = product
                if r != s:
                    product *= factor[r]
            # Cell (s, r) first collects the integral without s and r; cell
            # (s, s) collects the integral without s alone.
            suffix = quad_w[q]
            for r in range(n_slots - 1, -1, -1):
                out_row[s * n_slots + r] += left_product[r] * suffix
                if r != s:
                    suffix *= factor[r]
    # Cell (s, r) with s < r gives both halves, so the matrix is exactly symmetric.
    for s in range(n_slots):
        for r in range(s + 1, n_slots):
            pair = 0.5 * (ones[s] - zero[s]) * (ones[r] - zero[r]) * out_row[s * n_slots + r]
            out_row[s * n_slots + r] = pair
            out_row[r * n_slots + s] = pair
    for s in range(n_slots):
        row = s * n_slots
        off_diagonal = 0.0
        for r in range(n_slots):
            if r != s:
                off_diagonal += out_row[row + r]
        out_row[row + s] = (ones[s] - zero[s]) * out_row[row + s] - off_diagonal
