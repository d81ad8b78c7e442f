"""Jitted helpers shared by the kernels: routing one row through one node."""

from __future__ import annotations

import numpy as np
from numba import njit

from fastshap._config import NJIT_FLAGS


@njit(**NJIT_FLAGS)
def _goes_left(
    x, node, feature, threshold, default_left, is_categorical,
    category_offsets, categories, missing, strict_less,
):
    """Return whether row ``x`` takes the left child at ``node``.

    A missing value (NaN or ``missing``) follows ``default_left``. A
    categorical node sends codes in its set right and all others left. A
    numeric node compares with ``<`` when ``strict_less`` and ``<=`` otherwise.
    """
    value = x[feature[node]]
    if np.isnan(value) or value == missing:
        return default_left[node]
    if is_categorical[node]:
        for i in range(category_offsets[node], category_offsets[node + 1]):
            if categories[i] == value:
                return False
        return True
    if strict_less:
        return value < threshold[node]
    return value <= threshold[node]
