"""Precomputed SHAP tables over decision patterns, for path-dependent TreeSHAP.

A row enters a leaf's path-dependent SHAP formula only through which of the
leaf's path conditions it satisfies: one bit per distinct feature on the path
(see ``fastshap.kernels.path_dependent``). So a leaf's contributions can be
tabulated once per model over all ``2^d`` bit patterns, and explaining a row
becomes a table lookup per leaf.

Leaves are grouped into blocks: a block is a small subtree (at most
``max_block_splits`` internal nodes) together with its root path. A block's
pattern is the bits of the distinct features on its root path followed by the
decisions of its own internal nodes, and its table row for that pattern is
the sum of the contributions of all its leaves, per slot and output. One
lookup then serves several leaves, and sibling leaves share one table row.

Table layout: block ``b`` owns ``table[table_offsets[b]:table_offsets[b + 1]]``,
indexed as ``[pattern, slot, output]`` in C order, where ``slot`` runs over the
block's distinct features (root-path features first, in path order) and
``output`` over the tree's output range.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.ensemble import TreeEnsemble
from fastshap.kernels.interventional import (
    WORD_BITS,
    BackgroundSummary,
    _interventional_leaf_table,
    _popcount,
    beta_table,
    empty_summary_arrays,
)
from fastshap.kernels.leaf_paths import LeafPaths, _node_parents
from fastshap.kernels.path_dependent import _path_dependent_pairs

#: Largest number of pattern bits (root-path features plus block splits) a
#: block may have; a tree with a larger block is explained by the direct path.
MAX_PATTERN_BITS = 16

#: Largest number of internal nodes in one block. Three (a node and its two
#: children) halves the lookups of one-split blocks for the same table size
#: on full trees, while seven would quadruple the table size.
MAX_BLOCK_SPLITS = 3

#: Largest number of operations per table entry that filling an
#: interventional table may cost. A background pattern with ``k`` bits set
#: adds to ``2^k`` table rows, so a long path with many distinct background
#: patterns could cost far more to tabulate than to explain directly.
MAX_FILL_COST = 64


class PatternTables(NamedTuple):
    """Per-block SHAP tables over decision patterns (see the module docstring).

    Attributes
    ----------
    tree_uses_table : ndarray of shape (n_trees,), bool
        Whether the tree is explained from tables (else by the direct path).
    node_slot : ndarray of shape (n_nodes,), int32
        For an internal node, the slot of its feature among the distinct
        features of its root path (its own split included).
    node_is_new : ndarray of shape (n_nodes,), bool
        Whether the node's feature does not occur above it on its root path.
    node_above_blocks : ndarray of shape (n_nodes,), bool
        Internal nodes strictly above block roots, whose children's prefix
        codes the row kernel computes.
    tree_block_offsets : ndarray of shape (n_trees + 1,), int64
        Tree ``t`` owns blocks ``tree_block_offsets[t]:tree_block_offsets[t + 1]``.
    block_root : ndarray of shape (n_blocks,), int32
        Global node index of each block's root.
    block_prefix_bits : ndarray of shape (n_blocks,), int32
        Number of distinct features on the path from the tree root to the
        block root (the low bits of the pattern).
    block_split_offsets : ndarray of shape (n_blocks + 1,), int64
        Block ``b`` owns ``block_split_node[block_split_offsets[b]:...[b + 1]]``.
    block_split_node : ndarray of shape (n_block_splits,), int32
        Global node index of each of the block's internal nodes, in the order
        of their pattern bits (after the prefix bits).
    block_slot_offsets : ndarray of shape (n_blocks + 1,), int64
        Block ``b`` owns ``block_slot_feature[block_slot_offsets[b]:...[b + 1]]``.
    block_slot_feature : ndarray of shape (n_block_slots,), int32
        Feature of each of the block's slots.
    table_offsets : ndarray of shape (n_blocks + 1,), int64
        Start of each block's table in ``table``.
    table : ndarray of shape (n_entries,), float64
        The tables, see the module docstring for the layout.
    """

    tree_uses_table: NDArray[np.bool_]
    node_slot: NDArray[np.int32]
    node_is_new: NDArray[np.bool_]
    node_above_blocks: NDArray[np.bool_]
    tree_block_offsets: NDArray[np.int64]
    block_root: NDArray[np.int32]
    block_prefix_bits: NDArray[np.int32]
    block_split_offsets: NDArray[np.int64]
    block_split_node: NDArray[np.int32]
    block_slot_offsets: NDArray[np.int64]
    block_slot_feature: NDArray[np.int32]
    table_offsets: NDArray[np.int64]
    table: NDArray[np.float64]

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, in bytes."""
        return int(sum(array.nbytes for array in self))


@njit(**NJIT_FLAGS)
def _node_structure(tree_offsets, left, right, feature, max_block_splits):
    """Compute per-node slots, subtree split counts and block roots.

    Returns ``node_slot``, ``node_is_new``, ``prefix_bits`` (distinct features
    on the edges from the root to the node), ``splits_below`` (internal nodes
    in the node's subtree, itself included) and ``is_block_root``.
    """
    n_nodes = left.shape[0]
    parent, _ = _node_parents(tree_offsets, left, right)
    node_slot = np.zeros(n_nodes, dtype=np.int32)
    node_is_new = np.zeros(n_nodes, dtype=np.bool_)
    prefix_bits = np.zeros(n_nodes, dtype=np.int32)
    splits_below = np.zeros(n_nodes, dtype=np.int64)
    is_block_root = np.zeros(n_nodes, dtype=np.bool_)

    for node in range(n_nodes - 1, -1, -1):
        if left[node] >= 0:
            splits_below[node] = 1 + splits_below[left[node]] + splits_below[right[node]]

    for node in range(n_nodes):
        up = parent[node]
        if up >= 0:
            prefix_bits[node] = prefix_bits[up] + (1 if node_is_new[up] else 0)
        if left[node] >= 0:
            # The feature's slot is its first occurrence on the root path.
            slot = -1
            ancestor = up
            while ancestor >= 0:
                if feature[ancestor] == feature[node]:
                    slot = node_slot[ancestor]
                ancestor = parent[ancestor]
            node_is_new[node] = slot < 0
            node_slot[node] = prefix_bits[node] if slot < 0 else slot
        if splits_below[node] <= max_block_splits and (
            up < 0 or splits_below[up] > max_block_splits
        ):
            is_block_root[node] = True
    return node_slot, node_is_new, prefix_bits, splits_below, is_block_root


@njit(**NJIT_FLAGS)
def _leaf_table(n_slots, zero, quad_offsets, quad_t, quad_w, weights, products, out):
    """Fill ``out[o, s]``, the leaf's SHAP weight of slot ``s`` for bit pattern ``o``.

    ``out[o, s] = (o_s - z_s) * integral_0^1 prod_{j != s} (z_j + (o_j - z_j) t) dt``;
    multiplying by the leaf value gives the contribution. The products over
    all patterns of the other slots are built by doubling, one slot at a time.
    """
    n_points = (n_slots + 1) // 2
    q0 = quad_offsets[n_points]
    for s in range(n_slots):
        for q in range(n_points):
            products[0, q] = 1.0
        size = 1
        for j in range(n_slots):
            if j == s:
                continue
            for q in range(n_points):
                t = quad_t[q0 + q]
                off = zero[j] * (1.0 - t)
                on = zero[j] + (1.0 - zero[j]) * t
                for p in range(size):
                    products[p + size, q] = products[p, q] * on
                    products[p, q] *= off
            size *= 2
        for p in range(size):
            total = 0.0
            for q in range(n_points):
                total += quad_w[q0 + q] * products[p, q]
            weights[p] = total
        low = (1 << s) - 1
        for o in range(1 << n_slots):
            others = (o & low) | ((o >> (s + 1)) << s)
            bit = (o >> s) & 1
            out[o, s] = (bit - zero[s]) * weights[others]


@njit(**NJIT_FLAGS)
def _add_leaf_to_block(
    leaf, b, leaf_weights, block_prefix_bits, block_split_offsets,
    block_split_node, block_slot_offsets, block_slot_feature, table_offsets,
    table, n_out, out_start, value, leaf_node, slot_offsets, slot_feature,
    edge_offsets, edge_node, edge_left, edge_slot, tree_start, slot_map, edge_split,
    order,
):
    """Add a leaf's contributions to its block's table, for every block pattern.

    ``leaf_weights[o]`` contains one weight per leaf slot (``order == 1``) or one
    per pair of leaf slots (``order == 2``, C order) for leaf pattern ``o``.
    """
    prefix = block_prefix_bits[b]
    s_first = block_split_offsets[b]
    n_splits = block_split_offsets[b + 1] - s_first
    n_block_slots = block_slot_offsets[b + 1] - block_slot_offsets[b]
    l0 = slot_offsets[leaf]
    n_slots = slot_offsets[leaf + 1] - l0
    e_first = edge_offsets[leaf]
    e_last = edge_offsets[leaf + 1]
    node = leaf_node[leaf]

    for s in range(n_slots):
        for bs in range(block_slot_offsets[b], block_slot_offsets[b + 1]):
            if block_slot_feature[bs] == slot_feature[l0 + s]:
                slot_map[s] = bs - block_slot_offsets[b]
    # Edges at the block's own splits depend on the pattern's high bits.
    for e in range(e_first, e_last):
        edge_split[e - e_first] = -1
        for i in range(n_splits):
            if block_split_node[s_first + i] == edge_node[e] + tree_start:
                edge_split[e - e_first] = i

    for pattern in range(1 << (prefix + n_splits)):
        o = (pattern & ((1 << prefix) - 1)) | (((1 << n_slots) - 1) ^ ((1 << prefix) - 1))
        for e in range(e_first, e_last):
            i = edge_split[e - e_first]
            if i >= 0:
                went_left = (pattern >> (prefix + i)) & 1
                if went_left != (1 if edge_left[e] else 0):
                    o &= ~(1 << edge_slot[e])
        if order == 1:
            row = table_offsets[b] + pattern * n_block_slots * n_out
            for s in range(n_slots):
                w = leaf_weights[o, s]
                cell = row + slot_map[s] * n_out
                for k in range(n_out):
                    table[cell + k] += w * value[node, out_start + k]
            continue
        row = table_offsets[b] + pattern * n_block_slots * n_block_slots * n_out
        for s in range(n_slots):
            for r in range(n_slots):
                w = leaf_weights[o, s * n_slots + r]
                cell = row + (slot_map[s] * n_block_slots + slot_map[r]) * n_out
                for k in range(n_out):
                    table[cell + k] += w * value[node, out_start + k]


@njit(**NJIT_PARALLEL_FLAGS)
def _fill_tables(
    tree_uses_table, tree_offsets, tree_outputs, node_block, block_prefix_bits,
    block_split_offsets, block_split_node, block_slot_offsets,
    block_slot_feature, table_offsets, table, value, tree_leaf_offsets,
    leaf_node, slot_offsets, slot_feature, slot_zero, edge_offsets, edge_node,
    edge_left, edge_slot, quad_offsets, quad_t, quad_w, interventional, order,
    bg_offsets, bg_pattern_offsets, bg_pattern, bg_weight, beta,
):
    """Fill the tables of all tabled trees, in parallel over trees.

    Path-dependent tables weigh each leaf by its cover fractions; with
    ``interventional`` they weigh it by the background summary (the
    ``bg_*`` arrays of ``BackgroundSummary``). ``order`` 2 tabulates
    interaction values instead of SHAP values.
    """
    for t in prange(tree_offsets.shape[0] - 1):
        if not tree_uses_table[t]:
            continue
        first = tree_leaf_offsets[t]
        last = tree_leaf_offsets[t + 1]
        max_slots, max_edges = _largest_path(first, last, slot_offsets, edge_offsets)
        leaf_weights = np.empty((1 << max_slots, max_slots**order))
        weights = np.empty(1 << max_slots)
        ones = np.empty(max_slots)
        factor = np.empty(max_slots)
        left_product = np.empty(max_slots)
        only_x = np.empty(1, dtype=np.int64)
        only_b = np.empty(1, dtype=np.int64)
        products = np.empty((1 << max_slots, (max_slots + 1) // 2))
        slot_map = np.empty(max_slots, dtype=np.int64)
        edge_split = np.empty(max_edges, dtype=np.int64)
        for leaf in range(first, last):
            l0 = slot_offsets[leaf]
            n_slots = slot_offsets[leaf + 1] - l0
            if n_slots == 0:
                continue
            zero = slot_zero[l0:l0 + n_slots]
            if interventional:
                _interventional_leaf_table(
                    leaf_weights, n_slots, leaf, bg_offsets, bg_pattern_offsets,
                    bg_pattern, bg_weight, beta, order, only_x, only_b,
                )
            elif order == 1:
                _leaf_table(
                    n_slots, zero, quad_offsets, quad_t, quad_w, weights, products,
                    leaf_weights,
                )
            else:
                for o in range(1 << n_slots):
                    for s in range(n_slots):
                        ones[s] = (o >> s) & 1
                    _path_dependent_pairs(
                        leaf_weights[o], n_slots, ones, zero, quad_offsets, quad_t,
                        quad_w, factor, left_product,
                    )
            _add_leaf_to_block(
                leaf, node_block[leaf_node[leaf]], leaf_weights, block_prefix_bits,
                block_split_offsets, block_split_node, block_slot_offsets,
                block_slot_feature, table_offsets, table,
                tree_outputs[t, 1] - tree_outputs[t, 0], tree_outputs[t, 0],
                value, leaf_node, slot_offsets, slot_feature, edge_offsets,
                edge_node, edge_left, edge_slot, tree_offsets[t], slot_map, edge_split,
                order,
            )


@njit(**NJIT_PARALLEL_FLAGS)
def _fill_path_dependent_tables(
    tree_uses_table, tree_offsets, tree_outputs, node_block, block_prefix_bits,
    block_split_offsets, block_split_node, block_slot_offsets,
    block_slot_feature, table_offsets, table, value, tree_leaf_offsets,
    leaf_node, slot_offsets, slot_feature, slot_zero, edge_offsets, edge_node,
    edge_left, edge_slot, quad_offsets, quad_t, quad_w,
):
    """Fill path-dependent SHAP value tables, the case of ``_fill_tables`` most models need.

    As a kernel of its own, without the interventional and interaction
    weights, it compiles in a fraction of the time, which a new install or
    an empty numba cache pays.
    """
    for t in prange(tree_offsets.shape[0] - 1):
        if not tree_uses_table[t]:
            continue
        first = tree_leaf_offsets[t]
        last = tree_leaf_offsets[t + 1]
        max_slots, max_edges = _largest_path(first, last, slot_offsets, edge_offsets)
        leaf_weights = np.empty((1 << max_slots, max_slots))
        weights = np.empty(1 << max_slots)
        products = np.empty((1 << max_slots, (max_slots + 1) // 2))
        slot_map = np.empty(max_slots, dtype=np.int64)
        edge_split = np.empty(max_edges, dtype=np.int64)
        for leaf in range(first, last):
            l0 = slot_offsets[leaf]
            n_slots = slot_offsets[leaf + 1] - l0
            if n_slots == 0:
                continue
            _leaf_table(
                n_slots, slot_zero[l0:l0 + n_slots], quad_offsets, quad_t, quad_w,
                weights, products, leaf_weights,
            )
            _add_leaf_to_block(
                leaf, node_block[leaf_node[leaf]], leaf_weights, block_prefix_bits,
                block_split_offsets, block_split_node, block_slot_offsets,
                block_slot_feature, table_offsets, table,
                tree_outputs[t, 1] - tree_outputs[t, 0], tree_outputs[t, 0],
                value, leaf_node, slot_offsets, slot_feature, edge_offsets,
                edge_node, edge_left, edge_slot, tree_offsets[t], slot_map, edge_split,
                1,
            )


@njit(**NJIT_FLAGS)
def _largest_path(first, last, slot_offsets, edge_offsets):
    """Return the most slots and edges (at least 1) of the leaves ``first:last``."""
    max_slots = 1
    max_edges = 1
    for leaf in range(first, last):
        max_slots = max(max_slots, slot_offsets[leaf + 1] - slot_offsets[leaf])
        max_edges = max(max_edges, edge_offsets[leaf + 1] - edge_offsets[leaf])
    return max_slots, max_edges


@njit(**NJIT_FLAGS)
def _interventional_fill_cost(
    n_trees, tree_leaf_offsets, slot_offsets, bg_offsets, bg_pattern_offsets,
    bg_pattern, order,
):
    """Return, per tree, the operations that filling its interventional tables costs.

    A tree with a path of more than 62 distinct features gets the largest
    cost, as its patterns take several words and its blocks are too wide
    to tabulate anyway.
    """
    cost = np.zeros(n_trees, dtype=np.int64)
    for t in range(n_trees):
        for leaf in range(tree_leaf_offsets[t], tree_leaf_offsets[t + 1]):
            n_slots = slot_offsets[leaf + 1] - slot_offsets[leaf]
            if n_slots > WORD_BITS:
                cost[t] = np.iinfo(np.int64).max
                break
            first = bg_offsets[leaf]
            for e in range(first, bg_offsets[leaf + 1]):
                q = bg_pattern[bg_pattern_offsets[leaf] + e - first]
                cost[t] += (np.int64(1) << _popcount(q)) * n_slots**order
    return cost


def _block_layout(ensemble: TreeEnsemble, max_block_splits: int, order: int) -> dict:
    """Choose the blocks of every tree and the size of their tables.

    A block's table has one entry per pattern, per slot (``order`` 1) or pair
    of slots (``order`` 2), and per output.
    """
    nodes = ensemble.nodes
    node_slot, node_is_new, prefix_bits, splits_below, is_block_root = _node_structure(
        ensemble.tree_offsets, nodes.left, nodes.right, nodes.feature, max_block_splits
    )
    parent, _ = _node_parents(ensemble.tree_offsets, nodes.left, nodes.right)
    block_root = np.flatnonzero(is_block_root).astype(np.int32)
    tree_of_node = np.repeat(
        np.arange(ensemble.n_trees), np.diff(ensemble.tree_offsets)
    )
    block_tree = tree_of_node[block_root]
    tree_block_offsets = np.zeros(ensemble.n_trees + 1, dtype=np.int64)
    np.add.at(tree_block_offsets, block_tree + 1, 1)
    tree_block_offsets = np.cumsum(tree_block_offsets)

    split_lists = []
    slot_lists = []
    for b, root in enumerate(block_root):
        splits = _subtree_internal_nodes(nodes.left, nodes.right, int(root))
        features = _root_path_features(parent, nodes.feature, int(root))
        for node in splits:
            if nodes.feature[node] not in features:
                features.append(int(nodes.feature[node]))
        split_lists.append(splits)
        slot_lists.append(features)

    block_prefix_bits = prefix_bits[block_root].astype(np.int32)
    block_splits = np.asarray([len(s) for s in split_lists], dtype=np.int64)
    block_slots = np.asarray([len(s) for s in slot_lists], dtype=np.int64)
    outputs = np.diff(ensemble.tree_outputs, axis=1)[:, 0] if ensemble.n_trees else np.zeros(0, np.int64)
    pattern_bits = block_prefix_bits + block_splits
    entries = np.where(
        pattern_bits <= MAX_PATTERN_BITS,
        (2 ** np.minimum(pattern_bits, MAX_PATTERN_BITS))
        * block_slots**order
        * outputs[block_tree],
        0,
    )
    too_wide = np.zeros(ensemble.n_trees, dtype=bool)
    np.logical_or.at(too_wide, block_tree, pattern_bits > MAX_PATTERN_BITS)
    tree_entries = np.zeros(ensemble.n_trees, dtype=np.int64)
    np.add.at(tree_entries, block_tree, entries)
    return {
        "node_slot": node_slot,
        "node_is_new": node_is_new,
        "splits_below": splits_below,
        "is_block_root": is_block_root,
        "block_root": block_root,
        "block_tree": block_tree,
        "tree_block_offsets": tree_block_offsets,
        "split_lists": split_lists,
        "slot_lists": slot_lists,
        "block_prefix_bits": block_prefix_bits,
        "block_entries": entries,
        "tree_entries": tree_entries,
        "too_wide": too_wide,
    }


@njit(**NJIT_FLAGS)
def _node_blocks(left, right, is_block_root):
    """Return each node's block index, or -1 for nodes above every block."""
    node_block = np.full(left.shape[0], -1, dtype=np.int64)
    n_blocks = 0
    for node in range(left.shape[0]):
        if is_block_root[node]:
            node_block[node] = n_blocks
            n_blocks += 1
        if left[node] >= 0 and node_block[node] >= 0:
            node_block[left[node]] = node_block[node]
            node_block[right[node]] = node_block[node]
    return node_block


def _subtree_internal_nodes(left: NDArray, right: NDArray, root: int) -> list[int]:
    found = []
    stack = [root]
    while stack:
        node = stack.pop()
        if left[node] >= 0:
            found.append(node)
            stack.append(int(right[node]))
            stack.append(int(left[node]))
    return found


def _root_path_features(parent: NDArray, feature: NDArray, node: int) -> list[int]:
    """Distinct features on the edges from the tree root to ``node``, in path order."""
    path = []
    current = int(parent[node])
    while current >= 0:
        path.append(current)
        current = int(parent[current])
    features: list[int] = []
    for up in reversed(path):
        if int(feature[up]) not in features:
            features.append(int(feature[up]))
    return features


def choose_tabled_trees(tree_entries: NDArray, too_wide: NDArray, budget_entries: int) -> NDArray:
    """Pick the trees to tabulate: smallest tables first, until the budget is spent."""
    uses_table = np.zeros(len(tree_entries), dtype=bool)
    spent = 0
    for t in np.argsort(tree_entries, kind="stable"):
        if too_wide[t]:
            continue
        if spent + tree_entries[t] > budget_entries:
            break
        uses_table[t] = True
        spent += tree_entries[t]
    return uses_table


def build_pattern_tables(
    ensemble: TreeEnsemble,
    paths: LeafPaths,
    quadrature: tuple[NDArray, NDArray, NDArray],
    memory_limit: int,
    max_block_splits: int = MAX_BLOCK_SPLITS,
    *,
    background: BackgroundSummary | None = None,
    order: int = 1,
) -> PatternTables:
    """Build the pattern tables of ``ensemble`` within ``memory_limit`` bytes.

    Tables hold path-dependent values, or interventional values against
    ``background`` when given; SHAP values for ``order`` 1 and interaction
    values for ``order`` 2. Trees whose tables do not fit, whose blocks would
    need more than ``MAX_PATTERN_BITS`` pattern bits, or whose interventional
    tables would cost more than ``MAX_FILL_COST`` operations per entry to
    fill, are left to the direct algorithm.
    """
    layout = _block_layout(ensemble, max_block_splits, order)
    too_wide = layout["too_wide"]
    if background is not None:
        fill_cost = _interventional_fill_cost(
            ensemble.tree_offsets.shape[0] - 1, paths.tree_leaf_offsets,
            paths.slot_offsets, background.leaf_offsets, background.pattern_offsets,
            background.pattern, order,
        )
        too_wide = too_wide | (fill_cost > MAX_FILL_COST * layout["tree_entries"])
        bg_arrays = background.arrays
    else:
        bg_arrays = empty_summary_arrays()
    uses_table = choose_tabled_trees(layout["tree_entries"], too_wide, memory_limit // 8)

    block_keep = uses_table[layout["block_tree"]]
    entries = np.where(block_keep, layout["block_entries"], 0)
    table_offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    table_offsets[1:] = np.cumsum(entries)
    table = np.zeros(int(table_offsets[-1]))

    split_lists = layout["split_lists"]
    slot_lists = layout["slot_lists"]
    block_split_offsets = np.zeros(len(split_lists) + 1, dtype=np.int64)
    block_split_offsets[1:] = np.cumsum([len(s) for s in split_lists])
    block_slot_offsets = np.zeros(len(slot_lists) + 1, dtype=np.int64)
    block_slot_offsets[1:] = np.cumsum([len(s) for s in slot_lists])
    block_split_node = np.asarray([n for s in split_lists for n in s], dtype=np.int32)
    block_slot_feature = np.asarray([f for s in slot_lists for f in s], dtype=np.int32)

    nodes = ensemble.nodes
    fill_arguments = (
        uses_table, ensemble.tree_offsets, ensemble.tree_outputs,
        _node_blocks(nodes.left, nodes.right, layout["is_block_root"]),
        layout["block_prefix_bits"], block_split_offsets, block_split_node,
        block_slot_offsets, block_slot_feature, table_offsets, table,
        nodes.value, paths.tree_leaf_offsets,
        paths.leaf_node, paths.slot_offsets, paths.slot_feature, paths.slot_zero,
        paths.edge_offsets, paths.edge_node, paths.edge_left, paths.edge_slot,
        *quadrature,
    )
    if background is None and order == 1:
        _fill_path_dependent_tables(*fill_arguments)
    else:
        _fill_tables(
            *fill_arguments, background is not None, order, *bg_arrays,
            beta_table(max(paths.max_slots, 1)),
        )

    internal = nodes.left >= 0
    above = internal & ~_inside_blocks(nodes.left, nodes.right, layout["is_block_root"])
    return PatternTables(
        tree_uses_table=uses_table,
        node_slot=layout["node_slot"],
        node_is_new=layout["node_is_new"],
        node_above_blocks=above,
        tree_block_offsets=layout["tree_block_offsets"],
        block_root=layout["block_root"],
        block_prefix_bits=layout["block_prefix_bits"],
        block_split_offsets=block_split_offsets,
        block_split_node=block_split_node,
        block_slot_offsets=block_slot_offsets,
        block_slot_feature=block_slot_feature,
        table_offsets=table_offsets,
        table=table,
    )


@njit(**NJIT_FLAGS)
def _inside_blocks(left, right, is_block_root):
    """Mark every node that is a block root or lies below one."""
    inside = is_block_root.copy()
    for node in range(left.shape[0]):
        if inside[node] and left[node] >= 0:
            inside[left[node]] = True
            inside[right[node]] = True
    return inside


@njit(**NJIT_FLAGS)
def _table_tree(
    t, phi, go_left, code, tree_offsets, tree_outputs, left, right,
    node_slot, node_is_new, node_above_blocks, tree_block_offsets, block_root,
    block_prefix_bits, block_split_offsets, block_split_node,
    block_slot_offsets, block_slot_feature, table_offsets, table, order, n_features,
):
    """Add tree ``t``'s SHAP values for one row to ``phi``, one lookup per block.

    For ``order`` 2 the tables hold interaction values and ``phi`` has a row
    per pair of features, ``i * n_features + j``.

    ``go_left`` contains the row's decision at each node of the tree (indexed
    within the tree). ``code`` is scratch for each node's prefix pattern:
    bit ``s`` is whether the row satisfies every condition on the root
    path's ``s``-th distinct feature.
    """
    start = tree_offsets[t]
    code[0] = 0
    for node in range(start, tree_offsets[t + 1]):
        if not node_above_blocks[node]:
            continue
        bit = 1 if go_left[node - start] else 0
        slot = node_slot[node]
        current = code[node - start]
        if node_is_new[node]:
            code[left[node] - start] = current | (bit << slot)
            code[right[node] - start] = current | ((1 - bit) << slot)
        else:
            code[left[node] - start] = current & ~((1 - bit) << slot)
            code[right[node] - start] = current & ~(bit << slot)

    out_start = tree_outputs[t, 0]
    n_out = tree_outputs[t, 1] - out_start
    # One loop per order, so that the order-1 loop has no branch per block.
    if order == 1:
        for b in range(tree_block_offsets[t], tree_block_offsets[t + 1]):
            pattern = _block_pattern(
                b, code, go_left, start, block_root, block_prefix_bits,
                block_split_offsets, block_split_node,
            )
            slot_first = block_slot_offsets[b]
            n_slots = block_slot_offsets[b + 1] - slot_first
            row = table_offsets[b] + pattern * n_slots * n_out
            for s in range(n_slots):
                j = block_slot_feature[slot_first + s]
                for k in range(n_out):
                    phi[j, out_start + k] += table[row + s * n_out + k]
        return
    for b in range(tree_block_offsets[t], tree_block_offsets[t + 1]):
        pattern = _block_pattern(
            b, code, go_left, start, block_root, block_prefix_bits,
            block_split_offsets, block_split_node,
        )
        slot_first = block_slot_offsets[b]
        n_slots = block_slot_offsets[b + 1] - slot_first
        row = table_offsets[b] + pattern * n_slots * n_slots * n_out
        for s in range(n_slots):
            j = block_slot_feature[slot_first + s] * n_features
            for r in range(n_slots):
                cell = row + (s * n_slots + r) * n_out
                jr = j + block_slot_feature[slot_first + r]
                for k in range(n_out):
                    phi[jr, out_start + k] += table[cell + k]


@njit(inline="always", **NJIT_FLAGS)
def _block_pattern(
    b, code, go_left, start, block_root, block_prefix_bits, block_split_offsets,
    block_split_node,
):
    """Return the row's pattern in block ``b``: prefix bits, then the block's decisions."""
    prefix = block_prefix_bits[b]
    pattern = code[block_root[b] - start]
    s_first = block_split_offsets[b]
    for i in range(block_split_offsets[b + 1] - s_first):
        if go_left[block_split_node[s_first + i] - start]:
            pattern |= 1 << (prefix + i)
    return pattern
