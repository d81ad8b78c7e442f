"""Jitted helpers shared by the kernels: routing a row through split nodes.

Numba passes each array argument of a call as a struct and may adjust its
reference count, which costs far more than a comparison. Helpers called per
node therefore take scalars only, and array work runs in one call per row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastshap._config import NJIT_FLAGS
from fastshap.ensemble import ZERO_THRESHOLD


@njit(inline="always", **NJIT_FLAGS)
def _numeric_goes_left(value, threshold, default_left, zero_is_missing, missing, strict_less):
    """Return whether ``value`` takes the left child of a numeric split.

    A missing value (NaN, ``missing``, or zero when ``zero_is_missing``)
    follows ``default_left``. Other values are compared with ``<`` when
    ``strict_less`` and ``<=`` otherwise.
    """
    if np.isnan(value) or value == missing:
        return default_left
    if zero_is_missing and -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
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
