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
from fastshap.kernels.batch import _path_dependent_batch, _shap_batch
from fastshap.kernels.interventional import (
    BackgroundSummary,
    _mean_pair_visits,
    _probability_batch,
    beta_table,
    empty_summary_arrays,
    summarise_background,
)
from fastshap.kernels.leaf_paths import LeafPaths, build_leaf_paths, quadrature_table
from fastshap.kernels.pattern_tables import PatternTables, build_pattern_tables
from fastshap.kernels.predict import _predict_batch
from fastshap.models import load_model

logger = logging.getLogger(__name__)

ALGORITHMS = ("auto", "tree_path_dependent", "interventional")

OUTPUTS = ("raw", "probability")

#: Split criteria of scikit-learn tree classifiers, whose raw output already
#: is the class probability.
CLASSIFIER_CRITERIA = ("gini", "entropy", "log_loss")

#: Links whose outputs ``output="probability"`` explains.
PROBABILITY_LINKS = ("logit", "softmax")

#: Gauss-Legendre rule on [0, 1] for the softmax secant (see
#: ``fastshap.kernels.interventional._softmax_secant``).
_GL_POINTS, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
SOFTMAX_RULE = ((_GL_POINTS + 1.0) / 2.0, _GL_WEIGHTS / 2.0)

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

#: Pairs of background rows on which the cost of walking a tree per
#: background row is measured.
PAIR_SAMPLES = 32

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
    background : ndarray or DataFrame of shape (n_background, n_features), optional
        Background rows for interventional SHAP values: the Shapley values of
        ``v(S) = mean over b in background of f(x_S, b_rest)``, as
        ``shap.TreeExplainer(model, background,
        feature_perturbation="interventional")`` defines them. The
        background is summarised once, here. For trees with pattern tables
        the cost of each explained row then does not grow with the number of
        background rows. Deeper trees are explained from the summary or
        walked once per background row, whichever costs less.
    output : {"raw", "probability"}, default="raw"
        ``"raw"`` explains the margin. ``"probability"`` explains the
        probability of a logistic or softmax model against ``background``,
        as shap's ``model_output="probability"`` defines it: for each
        background row, the raw values of the pair are mapped to
        probabilities by the secant slope of the sigmoid, then averaged.
        These add up to the probability but are not the exact Shapley values
        of the probability; see the README. Its cost per row grows with the
        number of background rows.
    missing : float, optional
        The value that counts as missing besides NaN. By default the model's
        own ``missing`` parameter.
    algorithm : {"auto", "tree_path_dependent", "interventional"}, default="auto"
        ``"tree_path_dependent"`` computes the SHAP values of Lundberg et al.
        (2020), Algorithm 2, as ``shap.TreeExplainer(model)`` and XGBoost's
        ``pred_contribs`` define them. ``"interventional"`` needs
        ``background``. ``"auto"`` picks ``"interventional"`` when a
        background is given and ``"tree_path_dependent"`` otherwise.
    memory_limit : int or str, default="1GiB"
        Memory budget of the precomputed pattern tables, in bytes or as a
        string such as ``"512MiB"`` or ``"2GB"``. Trees are tabulated, the
        smallest tables first, until the budget is spent. The other trees,
        and trees whose blocks have more than 16 pattern bits (deep paths),
        are explained by the direct algorithm, which needs no tables. Both
        give the same values, but tables are several times faster per row.
        ``0`` turns tables off. Interaction values get their own tables,
        within the same budget, when first asked for.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb, fastshap
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> model = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X[:, 0])
    >>> explanation = fastshap.Explainer(model).explain(X[:10])
    >>> explanation.values.shape
    (10, 3)
    >>> fastshap.Explainer(model, background=X[:100]).explain(X[:10]).values.shape
    (10, 3)
    """

    def __init__(
        self,
        model: Any,
        *,
        background: Any = None,
        output: str = "raw",
        missing: float | None = None,
        algorithm: str = "auto",
        memory_limit: int | str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        check_choice("algorithm", algorithm, ALGORITHMS)
        check_choice("output", output, OUTPUTS)
        limit = check_memory_limit("memory_limit", memory_limit)
        missing = check_missing(missing)
        started = time.perf_counter()
        self.ensemble: TreeEnsemble = load_model(model, missing=missing)
        self.algorithm = _choose_algorithm(algorithm, background, output, self.ensemble)
        self.output = output
        self.memory_limit = limit
        self.paths: LeafPaths = build_leaf_paths(self.ensemble)
        self.quadrature = quadrature_table(self.paths.max_slots)
        self._beta = beta_table(max(self.paths.max_slots, 1))
        self.background: NDArray[np.float64] | None = None
        self._background_margin: NDArray[np.float64] | None = None
        self.background_summary: BackgroundSummary | None = None
        if background is not None:
            self.background = _check_background(background, self.ensemble)
            self.background_summary = summarise_background(
                self.ensemble, self.paths, self.background
            )
        self.tree_per_pair = self._choose_per_pair_trees()
        self.tables: PatternTables = self._build_tables(order=1)
        self._interaction_tables: PatternTables | None = None
        self.expected_value: NDArray[np.float64] = self._expected_value()
        self.preparation_seconds = time.perf_counter() - started
        n_tabled = int(self.tables.tree_uses_table.sum())
        logger.info(
            "prepared %d trees (max depth %d) in %.2f s for %s values: %d from "
            "tables (%.1f MiB), %d by the direct algorithm",
            self.ensemble.n_trees,
            self.ensemble.max_depth,
            self.preparation_seconds,
            self.algorithm,
            n_tabled,
            self.tables.nbytes / 2**20,
            self.ensemble.n_trees - n_tabled,
        )

    def _choose_per_pair_trees(self) -> NDArray[np.bool_]:
        """Mark the trees that cost less to walk per background row than to read from the summary.

        Per explained row, the summary costs about its number of entries in
        the tree's leaves. Walking costs the number of background rows times
        the nodes a walk visits, measured on pairs of background rows. Only
        trees without tables use either.
        """
        n_trees = self.ensemble.n_trees
        if self.background_summary is None or n_trees == 0:
            return np.zeros(n_trees, dtype=bool)
        e = self.ensemble
        n = e.nodes
        visits = _mean_pair_visits(
            self.background, min(PAIR_SAMPLES, len(self.background)), e.tree_offsets,
            e.tree_outputs, n.left, n.right, n.feature, n.threshold, n.default_left,
            n.zero_is_missing, n.is_categorical, n.category_offsets, n.categories,
            e.missing, e.decision_type == "<", n.value,
            self._beta, e.max_depth,
        )
        entries = np.diff(self.background_summary.leaf_offsets)
        leaf_starts = self.paths.tree_leaf_offsets[:-1]
        summary_cost = np.add.reduceat(entries, leaf_starts) if len(entries) else 0
        summary_cost = np.where(np.diff(self.paths.tree_leaf_offsets) > 0, summary_cost, 0)
        return len(self.background) * visits < summary_cost

    def _build_tables(self, order: int) -> PatternTables:
        limit = self.memory_limit
        if order == 2:
            limit = max(0, limit - self.tables.nbytes)
        return build_pattern_tables(
            self.ensemble, self.paths, self.quadrature, limit,
            background=self.background_summary, order=order,
        )

    def _expected_value(self) -> NDArray[np.float64]:
        if self.background is None:
            return self.ensemble.base_score + self.paths.expected_value
        self._background_margin = self._predict(self.background)
        margin = self._background_margin
        if self.output == "probability":
            return transform_margin(margin, self.ensemble.link).mean(axis=0)
        return margin.mean(axis=0)

    @property
    def feature_names(self) -> list[str]:
        """The model's feature names, in the model's order."""
        return list(self.ensemble.feature_names)

    def explain(
        self,
        X: Any,
        *,
        interactions: bool = False,
        n_jobs: int | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
        check_additivity: bool = True,
        progress: ProgressCallback | None = None,
    ) -> Explanation:
        """Compute the SHAP values, and optionally interaction values, of every row of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), DataFrame, or dask collection
            Rows to explain. DataFrame columns are matched to the model's
            features by name, and values come back in the DataFrame's column
            order. Categorical columns are read as category codes. For a
            dask collection nothing is computed: ``values`` is a dask array
            chunked by rows like ``X`` (see :mod:`fastshap.distributed`).
        interactions : bool, default=False
            Also compute SHAP interaction values, as ``shap_interaction_values``
            and XGBoost's ``pred_interactions`` define them: half the Shapley
            interaction index off the diagonal, and on the diagonal the rest
            of each feature's SHAP value, so that every row of a matrix sums
            to the SHAP value. Path-dependent or interventional like the SHAP
            values; not available with ``output="probability"``.
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
            (n_rows, n_features, n_outputs) for several. With
            ``interactions``, ``interaction_values`` of shape
            (n_rows, n_features, n_features[, n_outputs]) as well.
        """
        check_bool("interactions", interactions)
        check_positive_int("block_rows", block_rows, allow_none=False)
        check_n_jobs(n_jobs)
        check_bool("check_additivity", check_additivity)
        check_callable("progress", progress)
        if interactions and self.output == "probability":
            raise NotImplementedError(
                "interaction values are not available with output='probability' "
                "(shap does not define them either). Use output='raw' for "
                "interaction values in margin space."
            )
        if is_dask_collection(X):
            if progress is not None:
                raise ValueError(
                    "`progress` is not used for dask input, which is computed "
                    "later. Use dask.diagnostics.ProgressBar or "
                    "distributed.progress when computing the values."
                )
            return explain_dask(
                self, X, interactions=interactions, n_jobs=n_jobs,
                block_rows=block_rows, check_additivity=check_additivity,
            )
        array, names, caller_order = check_X(X, self.ensemble)
        n_rows = array.shape[0]
        n_features = self.ensemble.n_features
        n_outputs = self.ensemble.n_outputs
        order = 2 if interactions else 1
        if interactions and self._interaction_tables is None:
            self._interaction_tables = self._build_tables(order=2)
            logger.info(
                "built interaction tables for %d of %d trees (%.1f MiB)",
                int(self._interaction_tables.tree_uses_table.sum()),
                self.ensemble.n_trees,
                self._interaction_tables.nbytes / 2**20,
            )
        shape = (n_rows, n_features**order, n_outputs)
        try:
            values = np.empty(shape)
        except MemoryError as error:
            raise _values_memory_error(shape, interactions) from error
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
                self._values_block(array[start:stop], block, order)
                if check_additivity:
                    shap_block = block
                    if interactions:
                        shap_block = block.reshape(
                            stop - start, n_features, n_features, n_outputs
                        ).sum(axis=2)
                    self._check_additivity(array[start:stop], shap_block, start)
                if scratch is not None:
                    values[start:stop] = _reorder_features(
                        block, caller_order, n_features, order
                    )
                logger.debug("explained rows %d to %d of %d", start, stop, n_rows)
                if progress is not None:
                    progress(stop, n_rows)
        elapsed = time.perf_counter() - started
        logger.info(
            "explained %d rows in %.2f s (%.0f rows/s)",
            n_rows, elapsed, n_rows / elapsed if elapsed > 0 else float("inf"),
        )

        interaction_values = None
        if interactions:
            interaction_values = values.reshape(n_rows, n_features, n_features, n_outputs)
            values = interaction_values.sum(axis=2)
            if n_outputs == 1:
                interaction_values = interaction_values[..., 0]
        if n_outputs == 1:
            values = values[:, :, 0]
        return Explanation(
            values=values,
            base_values=self.expected_value.copy(),
            feature_names=names,
            data=X,
            interaction_values=interaction_values,
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

    def _values_block(
        self, array: NDArray[np.float64], out: NDArray[np.float64], order: int
    ) -> None:
        """Write the values of ``array``'s rows to ``out``, in model column order."""
        e = self.ensemble
        n = e.nodes
        p = self.paths
        if self.output == "probability":
            _probability_batch(
                array, self.background, self._predict(array), self._background_margin,
                out, e.link == "softmax", *SOFTMAX_RULE, e.tree_offsets, e.tree_outputs,
                n.left, n.right, n.feature, n.threshold, n.default_left, n.zero_is_missing,
                n.is_categorical, n.category_offsets, n.categories, e.missing,
                e.decision_type == "<", n.value, self._beta,
                e.max_depth,
            )
            return
        summary = self.background_summary
        bg_arrays = empty_summary_arrays() if summary is None else summary.arrays
        tables = self.tables if order == 1 else self._interaction_tables
        quad_offsets, quad_t, quad_w = self.quadrature
        # numba's prange gives each thread an equal share of the chunks, so the
        # chunks are of equal size and their number is a multiple of the thread
        # count. Chunks of 2048, 2048 and 463 rows (4,559 rows) would keep one
        # of two threads busy twice as long as the other.
        n_rows = array.shape[0]
        n_threads = numba.get_num_threads()
        n_chunks = n_threads * max(1, -(-n_rows // (n_threads * CHUNK_ROWS)))
        chunk_rows = max(1, -(-n_rows // n_chunks))
        if summary is None and order == 1:
            _path_dependent_batch(
                array, out, chunk_rows, p.max_tree_nodes, p.max_slots,
                e.tree_offsets, e.tree_outputs, n.left, n.right, n.feature, n.threshold,
                n.default_left, n.zero_is_missing, n.is_categorical, n.category_offsets,
                n.categories, n.value, e.missing, e.decision_type == "<",
                p.tree_leaf_offsets, p.leaf_node, p.slot_offsets, p.slot_feature,
                p.slot_zero, p.edge_offsets, p.edge_node, p.edge_left, p.edge_slot,
                quad_offsets, quad_t, quad_w, *tables,
            )
            return
        _shap_batch(
            array, out, chunk_rows, p.max_tree_nodes, p.max_slots,
            e.tree_offsets, e.tree_outputs, n.left, n.right, n.feature, n.threshold,
            n.default_left, n.zero_is_missing, n.is_categorical, n.category_offsets,
            n.categories,
            n.value, e.missing, e.decision_type == "<",
            p.tree_leaf_offsets, p.leaf_node, p.slot_offsets, p.slot_feature,
            p.slot_zero, p.edge_offsets, p.edge_node, p.edge_left, p.edge_slot,
            quad_offsets, quad_t, quad_w, summary is not None, order, *bg_arrays,
            self._beta,
            np.zeros((0, e.n_features)) if self.background is None else self.background,
            self.tree_per_pair, e.max_depth, *tables,
        )

    def _check_additivity(
        self, array: NDArray[np.float64], values: NDArray[np.float64], first_row: int
    ) -> None:
        margin = self._predict(array)
        if self.output == "probability":
            margin = transform_margin(margin, self.ensemble.link)
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


def _choose_algorithm(
    algorithm: str, background: Any, output: str, ensemble: TreeEnsemble
) -> str:
    """Return the algorithm that ``algorithm``, ``background`` and ``output`` ask for."""
    if algorithm == "auto":
        algorithm = "tree_path_dependent" if background is None else "interventional"
    if algorithm == "interventional" and background is None:
        raise ValueError(
            "algorithm='interventional' needs background rows; got background=None. "
            "Pass `background=` (for example a sample of the training data) or use "
            "algorithm='tree_path_dependent'."
        )
    if algorithm == "tree_path_dependent" and background is not None:
        raise ValueError(
            "`background` is used by interventional values only; got it with "
            "algorithm='tree_path_dependent'. Drop `background`, or use "
            "algorithm='interventional' or 'auto'."
        )
    if output == "probability":
        if background is None:
            raise ValueError(
                "output='probability' needs background rows, as shap's "
                "model_output='probability' does; got background=None. Pass "
                "`background=`, or explain the margin with output='raw'."
            )
        if ensemble.link == "identity" and ensemble.objective in CLASSIFIER_CRITERIA:
            raise ValueError(
                f"output='probability' is for margin models; this scikit-learn "
                f"classifier (criterion {ensemble.objective!r}) already explains "
                f"class probabilities with output='raw'. Use output='raw'."
            )
        if ensemble.link not in PROBABILITY_LINKS:
            raise ValueError(
                f"output='probability' explains logistic and softmax models; this "
                f"model's objective {ensemble.objective!r} has the {ensemble.link!r} "
                f"link. Use output='raw'."
            )
    return algorithm


def _check_background(background: Any, ensemble: TreeEnsemble) -> NDArray[np.float64]:
    """Validate the background rows and return them in model column order."""
    if is_dask_collection(background):
        raise TypeError(
            "`background` must be in memory (a numpy array or pandas DataFrame); got "
            "a dask collection. Pass a sample that fits in memory, for example "
            "`frame.sample(frac=0.01).compute()` or `array[:10_000].compute()`."
        )
    try:
        array, _, _ = check_X(background, ensemble)
    except (ValueError, TypeError) as error:
        # check_X names its argument X; here the rows are the background.
        raise type(error)(str(error).replace("`X`", "`background`")) from error
    if array.shape[0] == 0:
        raise ValueError(
            "`background` must have at least one row; got 0 rows. Pass a sample "
            "of the data the model was trained on."
        )
    return array


def transform_margin(margin: NDArray[np.float64], link: str) -> NDArray[np.float64]:
    """Map raw margins (n_rows, n_outputs) to probabilities by ``link``."""
    if link == "softmax":
        shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-margin))


def _values_memory_error(shape: tuple[int, int, int], interactions: bool) -> MemoryError:
    """Return the error for a value array that does not fit in memory, with the fixes."""
    gib = 8 * float(np.prod(shape)) / 2**30
    values_name = "interaction values" if interactions else "SHAP values"
    return MemoryError(
        f"the {values_name} of {shape[0]:,} rows need {gib:.1f} GiB, more than is free. "
        f"Explain fewer rows per call, or pass a dask array or dataframe to compute "
        f"them block by block."
    )


def _reorder_features(
    block: NDArray[np.float64], caller_order: NDArray[np.intp], n_features: int, order: int
) -> NDArray[np.float64]:
    """Reorder a block's feature axes from model order to the caller's order."""
    if order == 1:
        return block[:, caller_order, :]
    square = block.reshape(len(block), n_features, n_features, -1)
    square = square[:, caller_order][:, :, caller_order]
    return square.reshape(block.shape)


def explain(
    model: Any,
    X: Any,
    *,
    background: Any = None,
    interactions: bool = False,
    output: str = "raw",
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
    than the tables are built. Both give the same values. With a
    ``background`` the tables are always built, as the interventional
    algorithms without them cost far more per row.

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
        # Without tables, interventional values cost a walk per background
        # row or a pass over the summary, far more than path-dependent ones.
        skip_tables = few_rows and background is None
        memory_limit = 0 if skip_tables else DEFAULT_MEMORY_LIMIT
    explainer = Explainer(
        model, background=background, output=output, missing=missing,
        algorithm=algorithm, memory_limit=memory_limit,
    )
    return explainer.explain(
        X, interactions=interactions, n_jobs=n_jobs, block_rows=block_rows,
        check_additivity=check_additivity, progress=progress,
    )
