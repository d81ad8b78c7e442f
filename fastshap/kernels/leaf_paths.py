"""Root-to-leaf paths of every leaf and the Gauss-Legendre rules, built once per model.

Both path-dependent algorithms read these: the direct one leaf by leaf, the
pattern tables when they are built.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from fastshap._config import NJIT_FLAGS
from fastshap.ensemble import TreeEnsemble


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


