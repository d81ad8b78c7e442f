"""The packed tree ensemble that every loader builds and every kernel reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

#: Link functions between the raw (margin) output and the model's prediction.
LINKS = ("identity", "logit", "softmax", "log")

#: Sentinel in ``left`` and ``right`` that marks a leaf.
LEAF = -1


class NodeArrays(NamedTuple):
    """Flat per-node arrays of all trees, concatenated tree after tree.

    Node ``i`` of tree ``t`` is at index ``tree_offsets[t] + i``. Child indices
    in ``left`` and ``right`` are global (already offset), and ``LEAF`` (-1)
    marks a leaf. Every tree's root is its first node.

    Attributes
    ----------
    left, right : ndarray of shape (n_nodes,), int32
        Global index of the left and right child, or -1 at a leaf.
    feature : ndarray of shape (n_nodes,), int32
        Column of ``X`` that the node splits on, -1 at a leaf.
    threshold : ndarray of shape (n_nodes,), float64
        Split value. A numeric node sends ``x`` left when ``x < threshold``
        (``decision_type == "<"``) or ``x <= threshold`` (``"<="``).
    default_left : ndarray of shape (n_nodes,), bool
        Direction of a missing value (NaN, or the ensemble's ``missing``).
    cover : ndarray of shape (n_nodes,), float64
        Training weight (hessian sum or sample count) that reached the node.
        It may be zero. Path-dependent SHAP values use ``cover[child] /
        cover[parent]`` as the probability of each branch, and 0 where the
        parent's cover is 0.
    value : ndarray of shape (n_nodes, n_outputs), float64
        Leaf values in raw (margin) space, already multiplied by the tree's
        weight. Rows of internal nodes are unused.
    is_categorical : ndarray of shape (n_nodes,), bool
        Whether the node is a categorical split.
    category_offsets : ndarray of shape (n_nodes + 1,), int64
        CSR offsets into ``categories``: node ``i`` owns
        ``categories[category_offsets[i]:category_offsets[i + 1]]``.
    categories : ndarray of shape (n_category_entries,), float64
        Category codes of categorical splits. A code in the node's set goes
        right, any other code goes left (XGBoost's convention), and a missing
        value follows ``default_left``. Inputs are truncated toward zero
        before they are looked up, so 2.7 is category 2.
    zero_is_missing : ndarray of shape (n_nodes,), bool, optional
        Whether a numeric node also treats zero (``|x| <= ZERO_THRESHOLD``)
        as missing, as LightGBM's ``missing_type=Zero`` splits do. When
        omitted, :class:`TreeEnsemble` fills it with False.
    """

    left: NDArray[np.int32]
    right: NDArray[np.int32]
    feature: NDArray[np.int32]
    threshold: NDArray[np.float64]
    default_left: NDArray[np.bool_]
    cover: NDArray[np.float64]
    value: NDArray[np.float64]
    is_categorical: NDArray[np.bool_]
    category_offsets: NDArray[np.int64]
    categories: NDArray[np.float64]
    zero_is_missing: NDArray[np.bool_] | None = None


#: Largest magnitude that a ``zero_is_missing`` node counts as zero (LightGBM's
#: ``kZeroThreshold``, 1e-35f, in LightGBM's include/LightGBM/meta.h).
ZERO_THRESHOLD = float(np.float32(1e-35))


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A tree ensemble in one schema for every library.

    The raw output of row ``x`` for output ``k`` is
    ``base_score[k] + sum of value[leaf(t, x), k]`` over the trees ``t`` whose
    ``tree_outputs`` range contains ``k``.

    Attributes
    ----------
    nodes : NodeArrays
        Per-node arrays, see :class:`NodeArrays`.
    tree_offsets : ndarray of shape (n_trees + 1,), int64
        Tree ``t`` owns nodes ``tree_offsets[t]:tree_offsets[t + 1]``.
    tree_outputs : ndarray of shape (n_trees, 2), int32
        The half-open range of outputs each tree adds to. A tree of one
        class of a multi-class booster covers one output; a tree with a
        vector leaf covers all of them.
    tree_weights : ndarray of shape (n_trees,), float64
        Weight of each tree (DART's ``weight_drop``, else 1). It is already
        folded into ``nodes.value`` and kept for reference.
    base_score : ndarray of shape (n_outputs,), float64
        Raw-space intercept of each output.
    n_features : int
        Number of input columns the model expects.
    feature_names : list of str
        Name of each input column.
    decision_type : {"<", "<="}
        Comparison of numeric splits.
    float32_inputs : bool
        Whether the library rounds inputs to float32 before comparing them to
        thresholds (XGBoost and scikit-learn do).
    missing : float
        The value that counts as missing besides NaN (NaN when none).
    link : {"identity", "logit", "softmax", "log"}
        Link from raw output to the model's prediction.
    objective : str
        The library's name of the model's objective.
    library : str
        The library the model came from.
    categorical_features : dict of int to list of str
        Category labels of categorical features, by column, where the model
        stores them. Category code ``c`` of column ``j`` is label
        ``categorical_features[j][c]``.
    """

    nodes: NodeArrays
    tree_offsets: NDArray[np.int64]
    tree_outputs: NDArray[np.int32]
    tree_weights: NDArray[np.float64]
    base_score: NDArray[np.float64]
    n_features: int
    feature_names: list[str]
    decision_type: str = "<"
    float32_inputs: bool = True
    missing: float = float("nan")
    link: str = "identity"
    objective: str = ""
    library: str = ""
    categorical_features: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes.zero_is_missing is None:
            filled = np.zeros(len(self.nodes.left), dtype=np.bool_)
            # The dataclass is frozen, so the one normalisation bypasses __setattr__.
            object.__setattr__(self, "nodes", self.nodes._replace(zero_is_missing=filled))

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return len(self.tree_offsets) - 1

    @property
    def n_outputs(self) -> int:
        """Number of raw outputs (classes of a multi-class model, else 1)."""
        return len(self.base_score)

    @property
    def max_depth(self) -> int:
        """Largest number of edges from a root to a leaf."""
        return int(tree_depths(self).max(initial=0))


def tree_depths(ensemble: TreeEnsemble) -> NDArray[np.int64]:
    """Compute the depth of every tree (0 for a tree that is a single leaf)."""
    left = ensemble.nodes.left
    right = ensemble.nodes.right
    depths = np.zeros(ensemble.n_trees, dtype=np.int64)
    node_depth = np.zeros(len(left), dtype=np.int64)
    for t in range(ensemble.n_trees):
        start, stop = ensemble.tree_offsets[t], ensemble.tree_offsets[t + 1]
        deepest = 0
        # Children always come after their parent in every supported layout,
        # so one forward pass sets each node's depth before its children's.
        for node in range(start, stop):
            if left[node] != LEAF:
                child_depth = node_depth[node] + 1
                node_depth[left[node]] = child_depth
                node_depth[right[node]] = child_depth
                deepest = max(deepest, child_depth)
        depths[t] = deepest
    return depths


def validate_ensemble(ensemble: TreeEnsemble) -> None:
    """Raise ``ValueError`` if the ensemble's arrays break the schema."""
    nodes = ensemble.nodes
    n_nodes = len(nodes.left)
    for name in NodeArrays._fields:
        array = getattr(nodes, name)
        expected = n_nodes + 1 if name == "category_offsets" else n_nodes
        if name == "categories":
            continue
        if len(array) != expected:
            raise ValueError(
                f"TreeEnsemble.nodes.{name} has {len(array)} entries, "
                f"expected {expected} (one per node)."
            )
    if ensemble.tree_offsets[-1] != n_nodes:
        raise ValueError(
            f"TreeEnsemble.tree_offsets ends at {ensemble.tree_offsets[-1]}, "
            f"expected the node count {n_nodes}."
        )
    internal = nodes.left != LEAF
    children = np.concatenate([nodes.left[internal], nodes.right[internal]])
    parents = np.concatenate([np.flatnonzero(internal)] * 2)
    if np.any(children <= parents):
        raise ValueError("TreeEnsemble: every child must come after its parent.")
    if np.any(nodes.feature[internal] >= ensemble.n_features):
        raise ValueError(
            "TreeEnsemble: a split uses a feature index >= n_features "
            f"({ensemble.n_features})."
        )
    if ensemble.decision_type not in ("<", "<="):
        raise ValueError(
            f"TreeEnsemble.decision_type must be '<' or '<='; "
            f"got {ensemble.decision_type!r}."
        )
    if ensemble.link not in LINKS:
        raise ValueError(
            f"TreeEnsemble.link must be one of {LINKS}; got {ensemble.link!r}."
        )
