"""Raw (margin) prediction of a packed ensemble, used to check loaders and values."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fastshap._config import NJIT_FLAGS, NJIT_PARALLEL_FLAGS
from fastshap.kernels._common import _category_goes_left, _numeric_goes_left


@njit(**NJIT_FLAGS)
def _predict_row(
    x, out, tree_offsets, tree_outputs, left, right, feature, threshold,
    default_left, zero_is_missing, is_categorical, category_offsets, categories, value,
    missing, strict_less,
):
    """Add every tree's leaf value for row ``x`` to ``out`` (n_outputs,)."""
    for t in range(len(tree_offsets) - 1):
        node = tree_offsets[t]
        while left[node] >= 0:
            x_value = x[feature[node]]
            if is_categorical[node]:
                goes_left = _category_goes_left(
                    x_value, node, default_left[node], category_offsets,
                    categories, missing,
                )
            else:
                goes_left = _numeric_goes_left(
                    x_value, threshold[node], default_left[node],
                    zero_is_missing[node], missing, strict_less,
                )
            node = left[node] if goes_left else right[node]
        for k in range(tree_outputs[t, 0], tree_outputs[t, 1]):
            out[k] += value[node, k]


@njit(**NJIT_PARALLEL_FLAGS)
def _predict_batch(
    X, base_score, tree_offsets, tree_outputs, left, right, feature, threshold,
    default_left, zero_is_missing, is_categorical, category_offsets, categories, value,
    missing, strict_less,
):
    """Return the raw output, shape (n_rows, n_outputs), of every row of ``X``."""
    out = np.empty((X.shape[0], base_score.shape[0]))
    for i in prange(X.shape[0]):
        out[i, :] = base_score
        _predict_row(
            X[i], out[i], tree_offsets, tree_outputs, left, right, feature,
            threshold, default_left, zero_is_missing, is_categorical, category_offsets,
            categories, value, missing, strict_less,
        )
    return out
