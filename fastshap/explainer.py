"""Validation, algorithm choice and the local driver of the kernels."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterator

import numba
import numpy as np
from numpy.typing import NDArray

from fastshap._validation import (
    check_bool,
    check_callable,
    check_choice,
    check_memory_limit,
    check_missing,
    check_n_jobs,
    check_positive_int,
    check_X,
)
from fastshap.distributed import explain_dask, is_dask_collection
from fastshap.ensemble import TreeEnsemble
from fastshap.exceptions import AdditivityError
from fastshap.explanation import Explanation
from fastshap.kernels.leaf_paths import LeafPaths, build_leaf_paths, quadrature_table
from fastshap.kernels.path_dependent import _path_dependent_batch
from fastshap.kernels.pattern_tables import PatternTables, build_pattern_tables
from fastshap.kernels.predict import _predict_batch
from fastshap.models import load_model

logger = logging.getLogger(__name__)

ALGORITHMS = ("auto", "tree_path_dependent")

#: Largest number of rows a kernel chunk explains tree by tree, so that each
#: tree's nodes and tables, once in cache, serve every row of the chunk.
#: Measured on a 2-core Intel Xeon (2 MiB L2 per core): 2048 rows ran
#: 1.6 times as fast as 128 rows on 500 trees of depth 8, whose 374 MiB of
#: tables far exceed the L2 cache. On 100 trees of depth 6 they were slightly faster.
CHUNK_ROWS = 2048

#: Default memory budget of the pattern tables, in bytes.
DEFAULT_MEMORY_LIMIT = 1 << 30

#: Fewer rows than this, explained once by :func:`explain`, do not pay for
#: building tables. At depth 6 (100 trees) and depth 8 (500 trees), the direct
#: algorithm explained about 150 to 200 rows in the time the tables took to
#: build, measured on a 2-core Intel Xeon.
MIN_TABLE_ROWS = 256

#: Rows per kernel call. Progress is reported and values are written block by block.
DEFAULT_BLOCK_ROWS = 65_536

ProgressCallback = Callable[[int, int], None]


@contextlib.contextmanager
def numba_threads(n_jobs: int | None) -> Iterator[None]:
    """Run the body with ``n_jobs`` numba threads (all cores when None or -1)."""
    n_jobs = check_n_jobs(n_jobs)
    if n_jobs is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_jobs, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class Explainer:
    """A model prepared for explanation: loaded once, reused for every call.

    Parameters
    ----------
    model : model object, str, path-like or TreeEnsemble
        A model that :func:`fastshap.load_model` accepts: an XGBoost or
        LightGBM booster or scikit-learn wrapper, a saved XGBoost model file
        (``.json`` or ``.ubj``) or a ``TreeEnsemble``.
    missing : float, optional
        The value that counts as missing besides NaN. By default the model's
        own ``missing`` parameter.
    algorithm : {"auto", "tree_path_dependent"}, default="auto"
        ``"tree_path_dependent"`` computes the SHAP values of Lundberg et al.
        (2020), Algorithm 2, as ``shap.TreeExplainer(model)`` and XGBoost's
        ``pred_contribs`` define them. ``"auto"`` picks it.
    memory_limit : int or str, default="1GiB"
        Memory budget of the precomputed pattern tables, in bytes or as a
        string such as ``"512MiB"`` or ``"2GB"``. Trees are tabulated, the
        smallest tables first, until the budget is spent. The other trees,
        and trees whose blocks have more than 16 pattern bits (deep paths),
        are explained by the direct algorithm, which needs no tables. Both
        give the same values, but tables are several times faster per row.
        ``0`` turns tables off.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb, fastshap
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> model = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X[:, 0])
    >>> explanation = fastshap.Explainer(model).explain(X[:10])
    >>> explanation.values.shape
    (10, 3)
    """

    def __init__(
        self,
        model: Any,
        *,
        missing: float | None = None,
        algorithm: str = "auto",
        memory_limit: int | str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        check_choice("algorithm", algorithm, ALGORITHMS)
        limit = check_memory_limit("memory_limit", memory_limit)
        missing = check_missing(missing)
        started = time.perf_counter()
        self.ensemble: TreeEnsemble = load_model(model, missing=missing)
        self.algorithm = "tree_path_dependent"
        self.paths: LeafPaths = build_leaf_paths(self.ensemble)
        self.quadrature = quadrature_table(self.paths.max_slots)
        self.tables: PatternTables = build_pattern_tables(
            self.ensemble, self.paths, self.quadrature, limit
        )
        self.expected_value: NDArray[np.float64] = (
            self.ensemble.base_score + self.paths.expected_value
        )
        self.preparation_seconds = time.perf_counter() - started
        n_tabled = int(self.tables.tree_uses_table.sum())
        logger.info(
            "prepared %d trees (max depth %d) in %.2f s: %d from tables (%.1f MiB), "
            "%d by the direct algorithm",
            self.ensemble.n_trees,
            self.ensemble.max_depth,
            self.preparation_seconds,
            n_tabled,
            self.tables.nbytes / 2**20,
            self.ensemble.n_trees - n_tabled,
        )

    @property
    def feature_names(self) -> list[str]:
        """The model's feature names, in the model's order."""
        return list(self.ensemble.feature_names)

    def explain(
        self,
        X: Any,
        *,
        n_jobs: int | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
        check_additivity: bool = True,
        progress: ProgressCallback | None = None,
    ) -> Explanation:
        """Compute the SHAP values of every row of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), DataFrame, or dask collection
            Rows to explain. DataFrame columns are matched to the model's
            features by name, and values come back in the DataFrame's column
            order. Categorical columns are read as category codes. For a
            dask collection nothing is computed: ``values`` is a dask array
            chunked by rows like ``X`` (see :mod:`fastshap.distributed`).
        n_jobs : int, optional
            Number of threads; all cores when None (the default) or -1. For
            dask input, threads per task, by default
            ``max(1, cores // tasks that run at once)``.
        block_rows : int, default=65536
            Rows per kernel call; progress is reported after each block.
        check_additivity : bool, default=True
            Check that values plus the base value equal the ensemble's own
            raw prediction, and raise ``AdditivityError`` if not.
        progress : callable, optional
            Called as ``progress(rows_done, rows_total)`` after each block.

        Returns
        -------
        Explanation
            ``values`` of shape (n_rows, n_features) for one output, or
            (n_rows, n_features, n_outputs) for several.
        """
        check_positive_int("block_rows", block_rows, allow_none=False)
        check_n_jobs(n_jobs)
        check_bool("check_additivity", check_additivity)
        check_callable("progress", progress)
        if is_dask_collection(X):
            if progress is not None:
                raise ValueError(
                    "`progress` is not used for dask input, which is computed "
                    "later. Use dask.diagnostics.ProgressBar or "
                    "distributed.progress when computing the values."
                )
            return explain_dask(
                self, X, n_jobs=n_jobs, block_rows=block_rows,
                check_additivity=check_additivity,
            )
        array, names, caller_order = check_X(X, self.ensemble)
        n_rows = array.shape[0]
        shape = (n_rows, self.ensemble.n_features, self.ensemble.n_outputs)
        values = np.empty(shape)
        # Kernels write in model column order. When the caller's order differs,
        # each block goes through a block-sized buffer instead of a full copy.
        scratch = None
        if caller_order is not None:
            scratch = np.empty((min(block_rows, n_rows),) + shape[1:])

        started = time.perf_counter()
        with numba_threads(n_jobs):
            for start in range(0, n_rows, block_rows):
                stop = min(start + block_rows, n_rows)
                block = values[start:stop] if scratch is None else scratch[: stop - start]
                self._shap_block(array[start:stop], block)
                if check_additivity:
                    self._check_additivity(array[start:stop], block, start)
                if scratch is not None:
                    values[start:stop] = block[:, caller_order, :]
                logger.debug("explained rows %d to %d of %d", start, stop, n_rows)
                if progress is not None:
                    progress(stop, n_rows)
        elapsed = time.perf_counter() - started
        logger.info(
            "explained %d rows in %.2f s (%.0f rows/s)",
            n_rows, elapsed, n_rows / elapsed if elapsed > 0 else float("inf"),
        )

        if self.ensemble.n_outputs == 1:
            values = values[:, :, 0]
        return Explanation(
            values=values,
            base_values=self.expected_value.copy(),
            feature_names=names,
            data=X,
        )

    def predict_raw(self, X: Any) -> NDArray[np.float64]:
        """Return the ensemble's raw (margin) output, shape (n_rows, n_outputs)."""
        array, _, _ = check_X(X, self.ensemble)
        return self._predict(array)

    def _predict(self, array: NDArray[np.float64]) -> NDArray[np.float64]:
        e = self.ensemble
        n = e.nodes
        return _predict_batch(
            array, e.base_score, e.tree_offsets, e.tree_outputs, n.left, n.right,
            n.feature, n.threshold, n.default_left, n.zero_is_missing, n.is_categorical,
            n.category_offsets, n.categories, n.value, e.missing,
            e.decision_type == "<",
        )

    def _shap_block(self, array: NDArray[np.float64], out: NDArray[np.float64]) -> None:
        e = self.ensemble
        n = e.nodes
        p = self.paths
        quad_offsets, quad_t, quad_w = self.quadrature
        # numba's prange gives each thread an equal share of the chunks, so the
        # chunks are of equal size and their number is a multiple of the thread
        # count. Chunks of 2048, 2048 and 463 rows (4,559 rows) would keep one
        # of two threads busy twice as long as the other.
        n_rows = array.shape[0]
        n_threads = numba.get_num_threads()
        n_chunks = n_threads * max(1, -(-n_rows // (n_threads * CHUNK_ROWS)))
        chunk_rows = max(1, -(-n_rows // n_chunks))
        _path_dependent_batch(
            array, out, chunk_rows, p.max_tree_nodes, p.max_slots,
            e.tree_offsets, e.tree_outputs, n.left, n.right, n.feature, n.threshold,
            n.default_left, n.zero_is_missing, n.is_categorical, n.category_offsets,
            n.categories,
            n.value, e.missing, e.decision_type == "<",
            p.tree_leaf_offsets, p.leaf_node, p.slot_offsets, p.slot_feature,
            p.slot_zero, p.edge_offsets, p.edge_node, p.edge_left, p.edge_slot,
            quad_offsets, quad_t, quad_w, *self.tables,
        )

    def _check_additivity(
        self, array: NDArray[np.float64], values: NDArray[np.float64], first_row: int
    ) -> None:
        margin = self._predict(array)
        total = values.sum(axis=1) + self.expected_value
        error = np.abs(total - margin)
        # Float64 sums of large terms of opposite signs (leaves near 1e15 from
        # an init that predicts a probability of exactly 0 or 1) lose about
        # 1e-16 of the terms' magnitude per operation.
        magnitude = np.abs(values).sum(axis=1) + np.abs(self.expected_value)
        tolerance = 1e-6 * np.maximum(1.0, np.abs(margin)) + 1e-12 * magnitude
        if np.any(error > tolerance):
            row, output = np.unravel_index(np.argmax(error - tolerance), error.shape)
            raise AdditivityError(
                f"SHAP values plus the base value differ from the model output by "
                f"{error[row, output]:.3g} at row {first_row + row}, output {output}. "
                f"This is a fastshap bug: please report it with the model."
            )


def explain(
    model: Any,
    X: Any,
    *,
    missing: float | None = None,
    algorithm: str = "auto",
    memory_limit: int | str | None = None,
    n_jobs: int | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    check_additivity: bool = True,
    progress: ProgressCallback | None = None,
) -> Explanation:
    """Compute the SHAP values of ``model`` for every row of ``X``.

    A shortcut for ``Explainer(model, ...).explain(X, ...)``; reuse an
    :class:`Explainer` to explain several data sets with one model without
    preparing it again. See :class:`Explainer` and :meth:`Explainer.explain`
    for the parameters. When ``memory_limit`` is None (the default), tables
    get the default budget of 1 GiB, except for fewer than
    ``MIN_TABLE_ROWS`` (256) rows, which the direct algorithm explains sooner
    than the tables are built. Both give the same values.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb, fastshap
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> model = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X[:, 0])
    >>> exp = fastshap.explain(model, X)
    >>> bool(np.allclose(exp.values.sum(1) + exp.base_values[0],
    ...                  model.predict(X, output_margin=True), atol=1e-5))
    True
    """
    if memory_limit is None:
        n_rows = getattr(X, "shape", (None,))[0]
        few_rows = isinstance(n_rows, (int, np.integer)) and n_rows < MIN_TABLE_ROWS
        memory_limit = 0 if few_rows else DEFAULT_MEMORY_LIMIT
    explainer = Explainer(
        model, missing=missing, algorithm=algorithm, memory_limit=memory_limit
    )
    return explainer.explain(
        X, n_jobs=n_jobs, block_rows=block_rows,
        check_additivity=check_additivity, progress=progress,
    )
