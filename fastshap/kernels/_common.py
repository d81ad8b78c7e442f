"""Jitted helpers shared by the kernels: routing a row through split nodes.

Numba passes each array argument of a call as a struct and may adjust its
reference count, which costs far more than a comparison. Helpers called per
node therefore take scalars only, and array work runs in one call per row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastshap._config import NJIT_FLAGS


@njit(inline="always", **NJIT_FLAGS)
def _numeric_goes_left(value, threshold, default_left, missing, strict_less):
    """Return whether ``value`` takes the left child of a numeric split.

    A missing value (NaN or ``missing``) follows ``default_left``; otherwise
    the split compares with ``<`` when ``strict_less`` and ``<=`` otherwise.
    """
    if np.isnan(value) or value == missing:
        return default_left
    if strict_less:
        return value < threshold
    return value <= threshold


@njit(**NJIT_FLAGS)
def _category_goes_left(value, node, default_left, category_offsets, categories, missing):
    """Return whether ``value`` takes the left child of a categorical split.

    Codes in the node's set go right, all others left, and a missing value
    follows ``default_left``. A fractional code is truncated toward zero
    first, as XGBoost and LightGBM convert category values to integers.
    """
    if np.isnan(value) or value == missing:
        return default_left
    code = np.trunc(value)
    result = True
    for i in range(category_offsets[node], category_offsets[node + 1]):
        if categories[i] == code:
            result = False
    return result


@njit(**NJIT_FLAGS)
def _row_decisions(
    x, go_left, left, feature, threshold, default_left, is_categorical,
    category_offsets, categories, missing, strict_less,
):
    """Set ``go_left[node]`` to row ``x``'s direction at every internal node."""
    for node in range(left.shape[0]):
        if left[node] < 0:
            continue
        value = x[feature[node]]
        if is_categorical[node]:
            go_left[node] = _category_goes_left(
                value, node, default_left[node], category_offsets, categories, missing
            )
        else:
            go_left[node] = _numeric_goes_left(
                value, threshold[node], default_left[node], missing, strict_less
            )
