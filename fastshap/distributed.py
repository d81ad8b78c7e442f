"""The Dask driver: SHAP values and rankings of dask arrays and dataframes.

The same prepared :class:`~fastshap.Explainer` that explains numpy and pandas
input explains each block of a dask collection, so the values of a block are
exactly the values the in-memory path returns for those rows.

Numba threads per task
----------------------
Each task runs the kernels with ``n_jobs`` numba threads. By default (``None``)
that is ``max(1, cores // concurrent tasks)``, so the tasks of one worker
share its cores. A dask.distributed worker process with one thread gives its
task all the cores it may use (``os.sched_getaffinity``). A worker with 4
threads on 4 cores gives each task 1 thread. Outside a distributed
worker, the concurrent tasks are the local scheduler's ``num_workers`` (all
cores by default), or 1 under the synchronous scheduler. ``n_jobs=-1`` gives
each task all cores, and an int gives it that many threads.

Dask is imported only when a dask collection is passed: this module can be
imported, and fastshap used on numpy and pandas, without dask installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sys
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fastshap._validation import check_bool, check_n_jobs, check_positive_int, check_X
from fastshap.explanation import Explanation, _rank_table_from_sums, values_frame

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fastshap.explainer import Explainer

#: Scheduler names under which dask runs one task at a time.
_SYNCHRONOUS_SCHEDULERS = ("sync", "synchronous", "single-threaded")

#: Partial results merged by one task of the tree reduction in :func:`rank`.
_MERGE_FAN_IN = 16

#: Graph key of the explainer node of each explainer, so that one explainer
#: is one key in every graph it goes into.
_EXPLAINER_KEYS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def is_dask_collection(obj: Any) -> bool:
    """Return whether ``obj`` is a dask collection, without importing dask.

    A dask collection can only exist once dask is imported, so without dask
    in ``sys.modules`` this returns False.
    """
    dask = sys.modules.get("dask")
    return dask is not None and dask.is_dask_collection(obj)


# --- SHAP values ------------------------------------------------------------


def explain_dask(
    explainer: Explainer,
    X: Any,
    *,
    interactions: bool = False,
    n_jobs: int | None = None,
    block_rows: int,
    check_additivity: bool,
) -> Explanation:
    """Build the lazy SHAP values of a dask array or dataframe.

    Nothing is computed: the returned ``values`` is a dask array with the
    row chunks of ``X`` (unknown row counts for a dataframe with unknown
    partition lengths). Column names and dtypes are checked against the
    model on the dataframe's meta now, and each partition is checked again
    when it runs.
    """
    _check_task_n_jobs(n_jobs)
    node = _explainer_node(explainer)
    ensemble = explainer.ensemble
    n_outputs = ensemble.n_outputs
    options = (n_jobs, block_rows, check_additivity, interactions)
    if _is_dask_dataframe(X):
        names = _check_frame_meta(X, ensemble)
        values = _frame_values(X, node, names, n_outputs, options)
    else:
        names = _check_array(X, ensemble)
        values = _array_values(X, node, n_outputs, options)
    interaction_values = None
    if interactions:
        # The SHAP values are the row sums of the interaction values, so the
        # kernels run once when both are computed together (dask.compute).
        interaction_values = values
        values = values.sum(axis=2)
    return Explanation(
        values=values,
        base_values=explainer.expected_value.copy(),
        feature_names=names,
        data=X,
        interaction_values=interaction_values,
    )


def _explainer_node(explainer: Explainer) -> Any:
    """Return the explainer as one named node of a dask graph.

    Passing the explainer itself to ``map_blocks`` would embed it, with its
    pattern tables (up to ``memory_limit``, 1 GiB by default), in every task:
    it would be pickled and sent once per block. As one graph key it is sent
    to the scheduler once, and each worker fetches it once and keeps it for
    all its tasks. The key is fixed per explainer, rather than a hash of its
    contents, so that no call has to hash the tables.
    """
    import dask

    key = _EXPLAINER_KEYS.get(explainer)
    if key is None:
        key = f"fastshap-explainer-{uuid.uuid4().hex}"
        _EXPLAINER_KEYS[explainer] = key
    return dask.delayed(explainer, name=key, pure=True)


def _is_dask_dataframe(X: Any) -> bool:
    import dask.dataframe as dd

    return isinstance(X, (dd.DataFrame, dd.Series))


def _check_task_n_jobs(n_jobs: Any) -> None:
    if n_jobs is not None:
        check_n_jobs(n_jobs)


def _check_frame_meta(X: Any, ensemble: Any) -> list[str]:
    """Check the columns of a dask dataframe's meta; return the feature names.

    Categories are unknown in the meta of most dask dataframes, so only the
    columns and their dtypes are checked here. Each partition's categories
    are checked when it runs.
    """
    meta = X._meta
    if isinstance(meta, pd.DataFrame):
        meta = meta.copy()
        for name in meta.columns:
            if isinstance(meta[name].dtype, pd.CategoricalDtype):
                meta[name] = meta[name].cat.set_categories([])
    _, names, _ = check_X(meta, ensemble)
    return names


def _check_array(X: Any, ensemble: Any) -> list[str]:
    """Check the shape, chunks and dtype of a dask array; return the feature names."""
    if X.ndim == 2 and np.isnan(X.shape[1]):
        raise ValueError(
            "`X` has an unknown number of columns. Compute them with "
            "`X.compute_chunk_sizes()` first."
        )
    check_X(np.empty((0,) + tuple(X.shape[1:]), dtype=X.dtype), ensemble)
    if len(X.chunks[1]) != 1:
        raise ValueError(
            f"`X` must have one chunk along the feature axis; got "
            f"{len(X.chunks[1])} chunks of sizes {X.chunks[1]}. Rechunk it with "
            f"`X.rechunk({{1: -1}})`."
        )
    return list(ensemble.feature_names)


def _value_axes(n_features: int, n_outputs: int, interactions: bool) -> tuple[int, ...]:
    """Return the shape of one row's values: features, features again, outputs."""
    axes = (n_features,) * (2 if interactions else 1)
    return axes + ((n_outputs,) if n_outputs > 1 else ())


def _array_values(X: Any, node: Any, n_outputs: int, options: tuple) -> Any:
    import dask.array as da

    axes = _value_axes(X.shape[1], n_outputs, options[3])
    chunks = (X.chunks[0],) + tuple((size,) for size in axes)
    extra = {"new_axis": list(range(2, len(chunks)))} if len(chunks) > 2 else {}
    return da.map_blocks(
        _explain_block,
        X,
        node,
        *options,
        chunks=chunks,
        dtype=np.float64,
        meta=np.empty((0,) * len(chunks), dtype=np.float64),
        token="fastshap-values",
        **extra,
    )


def _frame_values(
    X: Any, node: Any, names: list[str], n_outputs: int, options: tuple
) -> Any:
    """Map the explainer over the partitions of a dask dataframe.

    Each partition's values come back as a frame with one column per value
    of a row (``n_features * n_outputs``, times ``n_features`` again for
    interaction values), because a dataframe partition is 2-D, and are then
    reshaped block by block. The row counts stay unknown (NaN chunks) unless
    dask has them already, so nothing is computed to find them.
    """
    axes = _value_axes(len(names), n_outputs, options[3])
    width = int(np.prod(axes))
    columns = [f"v{j}" for j in range(width)]
    meta = pd.DataFrame(np.empty((0, width), dtype=np.float64), columns=columns)
    flat = X.map_partitions(
        _explain_partition,
        node,
        names,
        *options,
        meta=meta,
        align_dataframes=False,
        enforce_metadata=False,
        token="fastshap-values",
    )
    values = flat.to_dask_array()
    if len(axes) == 1:
        return values
    return values.map_blocks(
        _unflatten,
        axes,
        chunks=(values.chunks[0],) + tuple((size,) for size in axes),
        new_axis=list(range(2, len(axes) + 1)),
        dtype=np.float64,
        meta=np.empty((0,) * (len(axes) + 1), dtype=np.float64),
    )


def _explain_block(
    block: NDArray[Any],
    explainer: Explainer,
    n_jobs: int | None,
    block_rows: int,
    check_additivity: bool,
    interactions: bool,
) -> NDArray[np.float64]:
    """Values of one block of a dask array, as the in-memory path computes them."""
    explanation = explainer.explain(
        block,
        interactions=interactions,
        n_jobs=task_threads(n_jobs),
        block_rows=block_rows,
        check_additivity=check_additivity,
    )
    return explanation.interaction_values if interactions else explanation.values


def _explain_partition(
    part: pd.DataFrame,
    explainer: Explainer,
    names: list[str],
    n_jobs: int | None,
    block_rows: int,
    check_additivity: bool,
    interactions: bool,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """Values of one dataframe partition, flattened to 2-D, in ``names`` order."""
    values = _partition_values(
        part, explainer, names, n_jobs, block_rows, check_additivity, partition_info,
        interactions,
    )
    flat = values.reshape(len(values), -1)
    columns = [f"v{j}" for j in range(flat.shape[1])]
    return pd.DataFrame(flat, index=part.index, columns=columns, copy=False)


def _partition_values(
    part: pd.DataFrame,
    explainer: Explainer,
    names: list[str],
    n_jobs: int | None,
    block_rows: int,
    check_additivity: bool,
    partition_info: dict | None,
    interactions: bool = False,
) -> NDArray[np.float64]:
    try:
        explanation = explainer.explain(
            part,
            interactions=interactions,
            n_jobs=task_threads(n_jobs),
            block_rows=block_rows,
            check_additivity=check_additivity,
        )
    except (ValueError, TypeError) as error:
        if type(error) not in (ValueError, TypeError):
            raise
        number = "?" if partition_info is None else partition_info.get("number", "?")
        raise type(error)(f"partition {number} of `X`: {error}") from error
    values = explanation.interaction_values if interactions else explanation.values
    if explanation.feature_names != names:
        # This partition's columns are in another order than the meta's.
        position = {name: j for j, name in enumerate(explanation.feature_names)}
        columns = [position[name] for name in names]
        values = values[:, columns]
        if interactions:
            values = values[:, :, columns]
    return values


def _unflatten(block: NDArray[np.float64], axes: tuple[int, ...]) -> Any:
    return block.reshape((len(block),) + tuple(axes))


def task_threads(n_jobs: int | None) -> int | None:
    """Return the numba threads of one task; see the module docstring.

    ``n_jobs`` None gives ``max(1, cores // concurrent tasks)``, -1 gives
    None (all cores) and a positive int is returned as is.
    """
    if n_jobs is not None:
        return None if n_jobs == -1 else n_jobs
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, cores // _concurrent_tasks(cores))


def _concurrent_tasks(cores: int) -> int:
    """Return how many tasks may run at once in this process."""
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError):
        # get_worker raises ValueError outside a distributed worker.
        pass
    import dask

    if dask.config.get("scheduler", None) in _SYNCHRONOUS_SCHEDULERS:
        return 1
    return max(1, dask.config.get("num_workers", None) or cores)


# --- Ranking ----------------------------------------------------------------


def rank(
    model: Any,
    X: Any,
    by: Any = None,
    *,
    output: int | None = None,
    n_jobs: int | None = None,
    block_rows: int | None = None,
    check_additivity: bool = True,
    **explainer_options: Any,
) -> pd.DataFrame:
    """Rank the features of ``model`` by mean absolute SHAP value over ``X``.

    For numpy and pandas input this is ``explain(model, X).rank(by)``. For a
    dask array or dataframe it is a streamed reduction: each block is
    explained and reduced to its per-feature sums of |SHAP| and SHAP and its
    row count (per segment when ``by`` is given), in one pass, so the full
    matrix of values is never held. The partial sums are merged and the
    table is computed, with one call to ``dask.compute``.

    Parameters
    ----------
    model : model object, str, path-like, TreeEnsemble or Explainer
        Anything :class:`Explainer` accepts, or a prepared ``Explainer``.
    X : ndarray, DataFrame, dask array or dask DataFrame
        Rows to explain.
    by : str, array-like, dask Series or dask array, optional
        Segment label of each row. A str names a column of the DataFrame
        ``X``; unless it is a model feature, that column is not passed to the
        model. For a dask ``X``, a dask Series or 1-D dask array must have
        the same partitions (row chunks) as ``X``.
    output : int, optional
        Output to rank for a multi-output model; all outputs when omitted.
    n_jobs : int, optional
        Numba threads: for numpy and pandas as in :meth:`Explainer.explain`,
        and per task for dask (see :mod:`fastshap.distributed`).
    block_rows : int, optional
        Rows per kernel call; 65,536 by default.
    check_additivity : bool, default=True
        Check each block's values against the model output.
    **explainer_options
        ``missing``, ``algorithm`` and ``memory_limit`` of :class:`Explainer`,
        used only when ``model`` is not an ``Explainer``.

    Returns
    -------
    DataFrame
        The table of :meth:`Explanation.rank`, with the same columns, order
        and row order. Means from the streamed sums may differ from the
        in-memory means in the last bits, because the rows are added in
        another order.
    """
    from fastshap.explainer import DEFAULT_BLOCK_ROWS, Explainer

    if block_rows is None:
        block_rows = DEFAULT_BLOCK_ROWS
    check_positive_int("block_rows", block_rows, allow_none=False)
    check_bool("check_additivity", check_additivity)
    if isinstance(model, Explainer):
        if explainer_options:
            raise TypeError(
                f"options {sorted(explainer_options)} apply when preparing an "
                f"Explainer, but `model` is already one. Pass them to Explainer()."
            )
        explainer = model
    else:
        explainer = Explainer(model, **explainer_options)

    by_column = by if isinstance(by, str) else None
    features = X
    if by_column is not None:
        features = _features_without(X, by_column, explainer.feature_names)
    if not is_dask_collection(X):
        labels = X[by_column] if by_column is not None else by
        explanation = explainer.explain(
            features, n_jobs=n_jobs, block_rows=block_rows,
            check_additivity=check_additivity,
        )
        return explanation.rank(labels, output=output)

    _check_task_n_jobs(n_jobs)
    n_outputs = explainer.ensemble.n_outputs
    _check_output(output, n_outputs)
    node = _explainer_node(explainer)
    if _is_dask_dataframe(features):
        names = _check_frame_meta(features, explainer.ensemble)
    else:
        names = _check_array(features, explainer.ensemble)
    feature_blocks = _row_blocks(features, "X")
    if by_column is not None:
        label_blocks = _row_blocks(X[by_column], "by")
    elif by is not None:
        label_blocks = _row_blocks(_check_label_collection(X, by), "by")
    else:
        label_blocks = [None] * len(feature_blocks)

    import dask

    block_sums = dask.delayed(_explained_block_sums, pure=True)
    partials = [
        block_sums(
            block, node, labels, names, n_jobs, block_rows, check_additivity, number
        )
        for number, (block, labels) in enumerate(zip(feature_blocks, label_blocks))
    ]
    (sums,) = dask.compute(_merge_tree(partials))
    return _rank_from_sums(sums, names, n_outputs, by is not None, output)


def rank_values(explanation: Explanation, by: Any, output: int | None) -> pd.DataFrame:
    """Rank the features of an explanation whose values are a dask array.

    Streams the value blocks as :func:`rank` does. ``by`` is None, or a dask
    Series or 1-D dask array with the row chunks of ``explanation.values``.
    """
    import dask

    values = explanation.values
    _check_output(output, explanation.n_outputs)
    value_blocks = list(values.to_delayed().reshape(len(values.chunks[0]), -1)[:, 0])
    if by is None:
        label_blocks = [None] * len(value_blocks)
    else:
        if not is_dask_collection(by):
            raise TypeError(
                f"`by` must be a dask Series or dask array when the values are a "
                f"dask array; got {type(by).__name__}. Use fastshap.rank(model, X, "
                f"by=...) to rank a dask collection by a column name."
            )
        label_blocks = _row_blocks(by, "by")
        if len(label_blocks) != len(value_blocks):
            raise ValueError(
                f"`by` has {len(label_blocks)} partitions, but the values have "
                f"{len(value_blocks)} row chunks. Take `by` from the explained data."
            )
    block_sums = dask.delayed(_segment_sums, pure=True)
    partials = [
        block_sums(block, labels, number)
        for number, (block, labels) in enumerate(zip(value_blocks, label_blocks))
    ]
    (sums,) = dask.compute(_merge_tree(partials))
    return _rank_from_sums(
        sums, explanation.feature_names, explanation.n_outputs, by is not None, output
    )


def _features_without(X: Any, column: str, feature_names: list[str]) -> Any:
    """Return ``X`` without the ``by`` column, unless that column is a model feature."""
    columns = getattr(X, "columns", None)
    if columns is None:
        raise TypeError(
            f"`by` is the column name {column!r}, but `X` is a "
            f"{type(X).__name__} without column names. Pass a DataFrame, or the "
            f"segment labels themselves."
        )
    if column not in columns:
        shown = ", ".join(map(str, list(columns)[:20]))
        raise ValueError(
            f"`by` column {column!r} is not in `X`. Pass one of its columns: {shown}."
        )
    if column in feature_names:
        return X
    return X.drop(columns=[column])


def _check_output(output: int | None, n_outputs: int) -> None:
    if output is None:
        return
    if isinstance(output, bool) or not isinstance(output, (int, np.integer)) or not (
        0 <= output < n_outputs
    ):
        raise ValueError(
            f"`output` must be None or an output index from 0 to {n_outputs - 1}; "
            f"got {output!r}."
        )


def _check_label_collection(X: Any, by: Any) -> Any:
    """Check that dask labels ``by`` can be paired with the row blocks of ``X``."""
    if not is_dask_collection(by):
        raise TypeError(
            f"`by` must be a column name, a dask Series or a 1-D dask array when "
            f"`X` is a dask collection; got {type(by).__name__}. Add the labels "
            f"to X as a column and pass its name."
        )
    if getattr(by, "ndim", 1) != 1:
        raise ValueError(
            f"`by` must be 1-D, one label per row; got {by.ndim} dimensions."
        )
    x_blocks = X.npartitions if _is_dask_dataframe(X) else len(X.chunks[0])
    by_blocks = by.npartitions if _is_dask_dataframe(by) else len(by.chunks[0])
    if x_blocks != by_blocks:
        raise ValueError(
            f"`by` has {by_blocks} partitions, but `X` has {x_blocks}. Take `by` "
            f"from X itself, for example `X['segment']`, or pass a column name."
        )
    x_chunks = None if _is_dask_dataframe(X) else X.chunks[0]
    by_chunks = None if _is_dask_dataframe(by) else by.chunks[0]
    if x_chunks is not None and by_chunks is not None and x_chunks != by_chunks:
        raise ValueError(
            f"`by` has row chunks {by_chunks}, but `X` has {x_chunks}. Rechunk it "
            f"with `by.rechunk(X.chunks[0])`."
        )
    return by


def _row_blocks(collection: Any, name: str) -> list[Any]:
    """Return one delayed object per row block of a dask collection."""
    if _is_dask_dataframe(collection):
        return list(collection.to_delayed())
    blocks = collection.to_delayed()
    if blocks.ndim == 2 and blocks.shape[1] != 1:
        raise ValueError(
            f"`{name}` must have one chunk along the feature axis. Rechunk it "
            f"with `{name}.rechunk({{1: -1}})`."
        )
    return list(blocks.reshape(len(blocks), -1)[:, 0])


def _explained_block_sums(
    block: Any,
    explainer: Explainer,
    labels: Any,
    names: list[str],
    n_jobs: int | None,
    block_rows: int,
    check_additivity: bool,
    number: int,
) -> dict:
    """Explain one block and reduce its values to sums per segment."""
    if isinstance(block, (pd.DataFrame, pd.Series)):
        values = _partition_values(
            block, explainer, names, n_jobs, block_rows, check_additivity,
            {"number": number},
        )
    else:
        values = _explain_block(
            block, explainer, n_jobs, block_rows, check_additivity, False
        )
    return _segment_sums(values, labels, number)


def _segment_sums(values: NDArray[np.float64], labels: Any, number: int) -> dict:
    """Reduce a block of values to ``{segment: (sum |SHAP|, sum SHAP, rows)}``.

    Sums have shape (n_features, n_outputs). Without labels the one segment
    is None.
    """
    if values.ndim == 2:
        values = values[:, :, np.newaxis]
    if labels is None:
        return {None: (np.abs(values).sum(axis=0), values.sum(axis=0), len(values))}
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(values):
        raise ValueError(
            f"`by` has {len(labels)} labels in partition {number}, which has "
            f"{len(values)} rows. Take `by` from the explained data."
        )
    codes, segments = pd.factorize(pd.Series(labels))
    if np.any(codes < 0):
        raise ValueError(
            "`by` contains missing labels; fill them first, for example "
            "`by.fillna('unknown')`."
        )
    if len(segments) == 0:
        return {}
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(segments)))
    ordered = values[order]
    sum_abs = np.add.reduceat(np.abs(ordered), starts, axis=0)
    sums = np.add.reduceat(ordered, starts, axis=0)
    counts = np.diff(np.append(starts, len(values)))
    return {
        segment: (sum_abs[i], sums[i], int(counts[i]))
        for i, segment in enumerate(segments)
    }


def _merge_sums(*partials: dict) -> dict:
    merged: dict = {}
    for partial in partials:
        for segment, (sum_abs, sums, count) in partial.items():
            if segment in merged:
                old_abs, old_sums, old_count = merged[segment]
                merged[segment] = (
                    old_abs + sum_abs, old_sums + sums, old_count + count
                )
            else:
                merged[segment] = (sum_abs, sums, count)
    return merged


def _merge_tree(partials: list[Any]) -> Any:
    """Merge delayed partial sums in a tree of fan-in ``_MERGE_FAN_IN``."""
    import dask

    merge = dask.delayed(_merge_sums, pure=True)
    if not partials:
        return merge()
    while len(partials) > 1:
        partials = [
            merge(*partials[i : i + _MERGE_FAN_IN])
            for i in range(0, len(partials), _MERGE_FAN_IN)
        ]
    return partials[0]


def _rank_from_sums(
    sums: dict,
    feature_names: list[str],
    n_outputs: int,
    segmented: bool,
    output: int | None,
) -> pd.DataFrame:
    """Lay out merged sums as :meth:`Explanation.rank` lays out its table."""
    if n_outputs > 1 and output is None:
        frames = [
            _rank_from_sums(sums, feature_names, n_outputs, segmented, k)
            .assign(output=k)
            for k in range(n_outputs)
        ]
        return pd.concat(frames, ignore_index=True)
    k = 0 if output is None else int(output)
    n_features = len(feature_names)
    if not segmented:
        zeros = np.zeros((n_features, n_outputs))
        sum_abs, total, count = sums.get(None, (zeros, zeros, 0))
        return _rank_table_from_sums(sum_abs[:, k], total[:, k], count, feature_names)

    # Segments in the order of pd.factorize(..., sort=True), as in-memory.
    _, segments = pd.factorize(pd.Series(list(sums)), sort=True)
    frames = []
    for segment in segments:
        sum_abs, total, count = sums[segment]
        table = _rank_table_from_sums(sum_abs[:, k], total[:, k], count, feature_names)
        table.insert(0, "segment", segment)
        table["n_rows"] = count
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


# --- Parquet output -----------------------------------------------------------


def write_parquet_dataset(
    values: Any,
    path: str,
    columns: list[str],
    base_values: NDArray[np.float64],
    *,
    overwrite: bool,
    progress: bool,
) -> int:
    """Write dask values to a parquet dataset at ``path``, one file per row block.

    The files are written into a temporary folder next to ``path``, which is
    renamed to ``path`` once every block is written. On any error the
    temporary folder is removed and ``path`` is left as it was. Returns the
    number of rows written.
    """
    import dask

    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"the folder of {path!r} does not exist. Create it first "
            f"(mkdir -p {folder}) or choose another path."
        )
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path!r} already exists. Pass overwrite=True to replace it, or "
            f"choose another path."
        )
    blocks = list(values.to_delayed().reshape(len(values.chunks[0]), -1)[:, 0])
    digits = max(5, len(str(len(blocks) - 1)))
    token = secrets.token_hex(6)
    temporary = os.path.join(folder, f".{name}.{token}.tmp")
    os.mkdir(temporary)
    try:
        write = dask.delayed(_write_part, pure=False)
        writes = [
            write(block, os.path.join(temporary, f"part.{i:0{digits}d}.parquet"),
                  columns, base_values)
            for i, block in enumerate(blocks)
        ]
        n_rows = sum(_compute_with_progress(writes, progress))
        _replace_path(temporary, path, overwrite=overwrite, token=token)
    except BaseException:
        _remove_folder(temporary)
        raise
    return n_rows


#: Seconds to keep removing a failed write's temporary folder while blocks
#: that were already running finish their files in it.
REMOVE_RETRY_SECONDS = 10.0


def _remove_folder(folder: str) -> None:
    """Remove ``folder``, again while other workers still finish files in it.

    When one block fails, dask raises at once while blocks on other workers
    may still be writing. A file that appears during the removal leaves the
    folder behind, so the removal repeats until the folder is gone. Blocks
    that start later fail, as their folder no longer exists.
    """
    deadline = time.monotonic() + REMOVE_RETRY_SECONDS
    while True:
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if os.path.lexists(folder):
        logger.warning("could not remove the temporary folder %s", folder)


def _write_part(
    block: NDArray[np.float64], path: str, columns: list[str], base_values: NDArray
) -> int:
    values_frame(block, columns, base_values).to_parquet(path, index=False)
    return len(block)


def _compute_with_progress(tasks: list[Any], progress: bool) -> list[Any]:
    """Compute ``tasks``, with a progress bar on stderr when ``progress`` is true.

    Under a dask.distributed client the bar is ``distributed.progress``,
    which draws on stdout, so stdout is redirected to stderr meanwhile.
    Otherwise it is ``dask.diagnostics.ProgressBar``.
    """
    import dask

    if not progress:
        return list(dask.compute(*tasks))
    client = _current_client()
    if client is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr):
            return list(dask.compute(*tasks))
    from distributed import progress as show_progress

    futures = client.compute(tasks)
    with contextlib.redirect_stdout(sys.stderr):
        show_progress(futures)
        sys.stdout.write("\n")
    return client.gather(futures)


def _current_client() -> Any:
    """Return the default dask.distributed client, or None when there is none."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _replace_path(temporary: str, path: str, *, overwrite: bool, token: str) -> None:
    """Rename ``temporary`` to ``path``, replacing an existing ``path`` if allowed.

    An existing ``path`` is first renamed aside, so that ``path`` is missing
    only between two renames and is never a mix of old and new files.
    """
    if not os.path.lexists(path):
        os.rename(temporary, path)
        return
    if not overwrite:
        raise FileExistsError(
            f"{path!r} was created by another process while the values were written. "
            f"Pass overwrite=True to replace it, or choose another path."
        )
    folder, name = os.path.split(os.path.abspath(path))
    old = os.path.join(folder, f".{name}.{token}.old")
    os.rename(path, old)
    try:
        os.rename(temporary, path)
    except BaseException:
        os.rename(old, path)
        raise
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old)
    else:
        os.unlink(old)
