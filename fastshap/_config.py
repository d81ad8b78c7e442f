"""Numba compilation flags, decided in one place.

Every ``@njit`` in ``fastshap.kernels`` takes its flags from :data:`NJIT_FLAGS`
or :data:`NJIT_PARALLEL_FLAGS`, never hard-coded ones.

Environment variables
---------------------
FASTSHAP_CACHE
    ``1`` (default) stores compiled kernels in numba's on-disk cache, so a
    new process skips compilation. ``0`` turns the cache off.
FASTSHAP_FASTMATH
    ``1`` lets numba reorder floating-point operations. Results may then
    differ from the exact values in the last bits, so it is off by default
    and turning it on warns.
"""

from __future__ import annotations

import os
import warnings


class FastmathWarning(UserWarning):
    """Warns that fastmath is on, so values may differ in the last bits."""


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(
        f"Environment variable {name} must be 0 or 1; got {raw!r}. "
        f"Unset it or set it to 0 or 1."
    )


CACHE = _env_flag("FASTSHAP_CACHE", True)
FASTMATH = _env_flag("FASTSHAP_FASTMATH", False)

if FASTMATH:
    warnings.warn(
        "FASTSHAP_FASTMATH=1: numba may reorder floating-point operations, so "
        "SHAP values can differ from the exact values in the last bits.",
        FastmathWarning,
        stacklevel=2,
    )

NJIT_FLAGS = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True}
NJIT_PARALLEL_FLAGS = {**NJIT_FLAGS, "parallel": True}
