"""Numba kernels: pure functions over the flat arrays of a ``TreeEnsemble``.

One module per algorithm. Each has a serial ``_<algo>_row`` kernel and a
``_<algo>_batch`` driver that runs it over rows in parallel with ``prange``.
Callers validate inputs first; kernels never do.
"""
