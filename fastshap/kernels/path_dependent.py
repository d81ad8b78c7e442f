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

from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.ensemble import TreeEnsemble
from fastshap.kernels._common import _goes_left


class LeafPaths(NamedTuple):
    """Root-to-leaf paths of every leaf, built once per ensemble.

    Attributes
    ----------
    tree_leaf_offsets : ndarray of shape (n_trees + 1,), int64
        Tree ``t`` owns leaves ``tree_leaf_offsets[t]:tree_leaf_offsets[t + 1]``.
    leaf_node : ndarray of shape (n_leaves,), int32
        Global node index of each leaf.
    slot_offsets : ndarray of shape (n_leaves + 1,), int64
        Leaf ``l`` owns slots ``slot_offsets[l]:slot_offsets[l + 1]``, one per
        distinct feature on its path, in path order.
    slot_feature : ndarray of shape (n_slots,), int32
        Feature of each slot.
    slot_zero : ndarray of shape (n_slots,), float64
        ``z_j``: product of the cover fractions of the path's edges on the
        slot's feature.
    edge_offsets : ndarray of shape (n_leaves + 1,), int64
        Leaf ``l`` owns edges ``edge_offsets[l]:edge_offsets[l + 1]``.
    edge_node : ndarray of shape (n_edges,), int32
        Node the edge leaves, as an index within its tree.
    edge_left : ndarray of shape (n_edges,), bool
        Whether the edge goes to the left child.
    edge_slot : ndarray of shape (n_edges,), int32
        Slot of the edge's feature, counted from the leaf's first slot.
    expected_value : ndarray of shape (n_outputs,), float64
        Cover-weighted mean raw output, without the base score.
    max_slots : int
        Largest number of distinct features on one path.
    max_tree_nodes : int
        Largest number of nodes in one tree.
    """

    tree_leaf_offsets: NDArray[np.int64]
    leaf_node: NDArray[np.int32]
    slot_offsets: NDArray[np.int64]
    slot_feature: NDArray[np.int32]
    slot_zero: NDArray[np.float64]
    edge_offsets: NDArray[np.int64]
    edge_node: NDArray[np.int32]
    edge_left: NDArray[np.bool_]
    edge_slot: NDArray[np.int32]
    expected_value: NDArray[np.float64]
    max_slots: int
    max_tree_nodes: int


@njit(**NJIT_FLAGS)
def _node_parents(tree_offsets, left, right):
    """Return each node's parent (-1 at a root) and whether it is a left child."""
    n_nodes = left.shape[0]
    parent = np.full(n_nodes, -1, dtype=np.int32)
    is_left = np.zeros(n_nodes, dtype=np.bool_)
    for node in range(n_nodes):
        if left[node] >= 0:
            parent[left[node]] = node
            parent[right[node]] = node
            is_left[left[node]] = True
    return parent, is_left


@njit(**NJIT_FLAGS)
def _build_leaf_paths(tree_offsets, left, right, feature, cover, value, tree_outputs):
    """Collect every leaf's edges and merged feature slots (see ``LeafPaths``)."""
    parent, is_left = _node_parents(tree_offsets, left, right)
    n_trees = tree_offsets.shape[0] - 1
    n_leaves = 0
    n_edges = 0
    depth = np.zeros(left.shape[0], dtype=np.int64)
    for node in range(left.shape[0]):
        if parent[node] >= 0:
            depth[node] = depth[parent[node]] + 1
        if left[node] < 0:
            n_leaves += 1
            n_edges += depth[node]

    tree_leaf_offsets = np.zeros(n_trees + 1, dtype=np.int64)
    leaf_node = np.empty(n_leaves, dtype=np.int32)
    slot_offsets = np.zeros(n_leaves + 1, dtype=np.int64)
    slot_feature = np.empty(n_edges, dtype=np.int32)
    slot_zero = np.empty(n_edges, dtype=np.float64)
    edge_offsets = np.zeros(n_leaves + 1, dtype=np.int64)
    edge_node = np.empty(n_edges, dtype=np.int32)
    edge_left = np.empty(n_edges, dtype=np.bool_)
    edge_slot = np.empty(n_edges, dtype=np.int32)
    expected_value = np.zeros(value.shape[1])

    leaf = 0
    n_slots = 0
    for t in range(n_trees):
        start = tree_offsets[t]
        for node in range(start, tree_offsets[t + 1]):
            if left[node] >= 0:
                continue
            leaf_node[leaf] = node
            e0 = edge_offsets[leaf]
            # Walk up to the root, then store the edges root first.
            d = depth[node]
            child = node
            for k in range(d - 1, -1, -1):
                edge_node[e0 + k] = parent[child] - start
                edge_left[e0 + k] = is_left[child]
                child = parent[child]
            s0 = n_slots
            reach = 1.0
            for e in range(e0, e0 + d):
                up = edge_node[e] + start
                down = left[up] if edge_left[e] else right[up]
                fraction = cover[down] / cover[up] if cover[up] > 0 else 0.0
                reach *= fraction
                slot = -1
                for s in range(s0, n_slots):
                    if slot_feature[s] == feature[up]:
                        slot = s
                if slot < 0:
                    slot = n_slots
                    slot_feature[slot] = feature[up]
                    slot_zero[slot] = 1.0
                    n_slots += 1
                slot_zero[slot] *= fraction
                edge_slot[e] = slot - s0
            for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
                expected_value[k] += reach * value[node, k]
            leaf += 1
            slot_offsets[leaf] = n_slots
            edge_offsets[leaf] = e0 + d
        tree_leaf_offsets[t + 1] = leaf
    return (
        tree_leaf_offsets, leaf_node, slot_offsets, slot_feature[:n_slots].copy(),
        slot_zero[:n_slots].copy(), edge_offsets, edge_node, edge_left, edge_slot,
        expected_value,
    )


def build_leaf_paths(ensemble: TreeEnsemble) -> LeafPaths:
    """Build the per-leaf path tables of ``ensemble`` (once per model)."""
    nodes = ensemble.nodes
    arrays = _build_leaf_paths(
        ensemble.tree_offsets, nodes.left, nodes.right, nodes.feature,
        nodes.cover, nodes.value, ensemble.tree_outputs,
    )
    slot_offsets = arrays[2]
    max_slots = int(np.diff(slot_offsets).max(initial=0))
    max_tree_nodes = int(np.diff(ensemble.tree_offsets).max(initial=0))
    return LeafPaths(*arrays, max_slots=max_slots, max_tree_nodes=max_tree_nodes)


def quadrature_table(max_slots: int) -> tuple[NDArray, NDArray, NDArray]:
    """Return Gauss-Legendre rules on [0, 1] for 1 to ``ceil(max_slots / 2)`` nodes.

    Rule ``n`` occupies ``nodes[offsets[n]:offsets[n] + n]``; ``offsets`` has
    an entry for every ``n`` from 0 to the largest rule.
    """
    largest = max(1, (max_slots + 1) // 2)
    offsets = np.zeros(largest + 1, dtype=np.int64)
    points = []
    weights = []
    for n in range(1, largest + 1):
        offsets[n] = sum(len(p) for p in points)
        x, w = np.polynomial.legendre.leggauss(n)
        points.append((x + 1.0) / 2.0)
        weights.append(w / 2.0)
    return offsets, np.concatenate(points), np.concatenate(weights)


@njit(**NJIT_FLAGS)
def _leaf_shapley_weights(ones, zero, n_slots, quad_offsets, quad_t, quad_w, prefix, factor, accum):
    """Set ``accum[s]`` to the integral of the product over all slots but ``s``."""
    n_points = (n_slots + 1) // 2
    q0 = quad_offsets[n_points]
    for s in range(n_slots):
        accum[s] = 0.0
    for q in range(q0, q0 + n_points):
        t = quad_t[q]
        product = 1.0
        for s in range(n_slots):
            prefix[s] = product
            factor[s] = zero[s] + (ones[s] - zero[s]) * t
            product *= factor[s]
        suffix = quad_w[q]
        for s in range(n_slots - 1, -1, -1):
            accum[s] += prefix[s] * suffix
            suffix *= factor[s]


@njit(**NJIT_FLAGS)
def _path_dependent_row(
    x, phi, go_left, ones, prefix, factor, accum,
    tree_offsets, tree_outputs, left, feature, threshold, default_left,
    is_categorical, category_offsets, categories, value, missing, strict_less,
    tree_leaf_offsets, leaf_node, slot_offsets, slot_feature, slot_zero,
    edge_offsets, edge_node, edge_left, edge_slot, quad_offsets, quad_t, quad_w,
):
    """Add the SHAP values of row ``x`` to ``phi`` (n_features, n_outputs)."""
    for t in range(tree_offsets.shape[0] - 1):
        start = tree_offsets[t]
        for node in range(start, tree_offsets[t + 1]):
            if left[node] >= 0:
                go_left[node - start] = _goes_left(
                    x, node, feature, threshold, default_left, is_categorical,
                    category_offsets, categories, missing, strict_less,
                )
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
            zero = slot_zero[s0:s0 + n_slots]
            _leaf_shapley_weights(
                ones, zero, n_slots, quad_offsets, quad_t, quad_w, prefix, factor, accum
            )
            node = leaf_node[leaf]
            for s in range(n_slots):
                scale = (ones[s] - zero[s]) * accum[s]
                j = slot_feature[s0 + s]
                for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
                    phi[j, k] += scale * value[node, k]


@njit(**NJIT_PARALLEL_FLAGS)
def _path_dependent_batch(
    X, out, n_chunks, max_tree_nodes, max_slots,
    tree_offsets, tree_outputs, left, feature, threshold, default_left,
    is_categorical, category_offsets, categories, value, missing, strict_less,
    tree_leaf_offsets, leaf_node, slot_offsets, slot_feature, slot_zero,
    edge_offsets, edge_node, edge_left, edge_slot, quad_offsets, quad_t, quad_w,
):
    """Write the SHAP values of every row of ``X`` into ``out`` (n_rows, n_features, n_outputs).

    Rows are split into ``n_chunks`` chunks so each chunk allocates its
    scratch arrays once.
    """
    n_rows = X.shape[0]
    n_chunks = max(1, min(n_rows, n_chunks))
    for c in prange(n_chunks):
        go_left = np.empty(max(max_tree_nodes, 1), dtype=np.bool_)
        ones = np.empty(max(max_slots, 1))
        prefix = np.empty_like(ones)
        factor = np.empty_like(ones)
        accum = np.empty_like(ones)
        for i in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            out[i] = 0.0
            _path_dependent_row(
                X[i], out[i], go_left, ones, prefix, factor, accum,
                tree_offsets, tree_outputs, left, feature, threshold, default_left,
                is_categorical, category_offsets, categories, value, missing,
                strict_less, tree_leaf_offsets, leaf_node, slot_offsets,
                slot_feature, slot_zero, edge_offsets, edge_node, edge_left,
                edge_slot, quad_offsets, quad_t, quad_w,
            )
