"""Concatenation of per-tree node lists into the flat arrays of the schema."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastshap.ensemble import LEAF, NodeArrays


def concatenate_trees(
    packed: list[dict], weights: NDArray[np.float64], tree_output: NDArray[Any], n_outputs: int
) -> tuple[NodeArrays, NDArray[np.int64]]:
    """Concatenate per-tree node lists into global ``NodeArrays`` and tree offsets.

    Each entry of ``packed`` describes one tree with children indexed within
    the tree (``LEAF`` at leaves) and the per-node keys ``left``, ``right``,
    ``feature``, ``threshold``, ``default_left``, ``cover``, ``leaf_value``,
    ``is_categorical``, ``categories`` (a list of codes per node) and,
    optionally, ``zero_is_missing``. Tree ``t``'s leaf values are multiplied
    by ``weights[t]`` and go to output ``tree_output[t]``.
    """
    sizes = [len(p["left"]) for p in packed]
    tree_offsets = np.zeros(len(packed) + 1, dtype=np.int64)
    tree_offsets[1:] = np.cumsum(sizes)
    n_nodes = int(tree_offsets[-1])

    def gather(key: str, dtype: Any) -> NDArray[Any]:
        if not packed:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([np.asarray(p[key]) for p in packed]).astype(dtype)

    shift = np.repeat(tree_offsets[:-1], sizes)
    left = gather("left", np.int64)
    right = gather("right", np.int64)
    left = np.where(left != LEAF, left + shift, LEAF).astype(np.int32)
    right = np.where(right != LEAF, right + shift, LEAF).astype(np.int32)

    value = np.zeros((n_nodes, n_outputs))
    for t, p in enumerate(packed):
        rows = slice(tree_offsets[t], tree_offsets[t + 1])
        value[rows, tree_output[t]] = np.asarray(p["leaf_value"]) * weights[t]

    node_categories = [c for p in packed for c in p["categories"]]
    category_offsets = np.zeros(n_nodes + 1, dtype=np.int64)
    category_offsets[1:] = np.cumsum([len(c) for c in node_categories])
    categories = np.asarray(
        [code for c in node_categories for code in c], dtype=np.float64
    )
    has_zero_flags = bool(packed) and all("zero_is_missing" in p for p in packed)
    nodes = NodeArrays(
        left=left,
        right=right,
        feature=gather("feature", np.int32),
        threshold=gather("threshold", np.float64),
        default_left=gather("default_left", np.bool_),
        cover=gather("cover", np.float64),
        value=value,
        is_categorical=gather("is_categorical", np.bool_),
        category_offsets=category_offsets,
        categories=categories,
        zero_is_missing=gather("zero_is_missing", np.bool_) if has_zero_flags else None,
    )
    return nodes, tree_offsets
