"""The result of an explanation: SHAP values, ranking and conversions."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fastshap._io import atomic_output
from fastshap.exceptions import InteractionValuesNotWrittenWarning
from fastshap._validation import check_bool


@dataclass(frozen=True, eq=False)
class Explanation:
    """SHAP values of a set of rows.

    Attributes
    ----------
    values : ndarray of shape (n_rows, n_features) or (n_rows, n_features, n_outputs)
        SHAP value of each feature for each row (and output), in raw (margin)
        space, or probability space for ``output="probability"``. Each row's
        values plus ``base_values`` add up to the model's output for that row.
    base_values : ndarray of shape (n_outputs,)
        Expected output of the model, one per output: over the background
        rows for interventional values, over the training data (the trees'
        covers) for path-dependent ones.
    feature_names : list of str
        Name of each column of ``values``.
    data : ndarray or DataFrame, optional
        The explained rows as passed in, used for feature values in
        :meth:`top_features` and :meth:`to_shap`.
    interaction_values : ndarray, optional
        With ``interactions=True``, the SHAP interaction values, shape
        (n_rows, n_features, n_features) or (n_rows, n_features, n_features,
        n_outputs): symmetric matrices whose rows sum to ``values``.
    """

    values: NDArray[np.float64]
    base_values: NDArray[np.float64]
    feature_names: list[str]
    data: Any = None
    interaction_values: Any = None

    @property
    def n_outputs(self) -> int:
        """Number of outputs explained."""
        return 1 if self.values.ndim == 2 else self.values.shape[2]

    def _output_values(self, output: int | None) -> NDArray[np.float64]:
        if self.values.ndim == 2:
            if output not in (None, 0):
                raise ValueError(
                    f"`output` must be None or 0 for a single-output model; got {output!r}."
                )
            return self.values
        if output is None:
            raise ValueError(
                f"the model has {self.n_outputs} outputs; pass `output=` with an "
                f"output index from 0 to {self.n_outputs - 1}."
            )
        is_integer = isinstance(output, (int, np.integer)) and not isinstance(
            output, (bool, np.bool_)
        )
        if not is_integer or not 0 <= output < self.n_outputs:
            raise ValueError(
                f"`output` must be an integer from 0 to {self.n_outputs - 1}; got {output!r}."
            )
        return self.values[:, :, output]

    def rank(self, by: Any = None, *, output: int | None = None) -> pd.DataFrame:
        """Rank features by mean absolute SHAP value.

        Parameters
        ----------
        by : array-like of shape (n_rows,), optional
            Segment label of each row (a Series, array or list). When given,
            features are ranked within each segment. A Series whose index
            has the explained DataFrame's index labels is matched by index,
            any other by position. When ``values`` is a dask array, ``by``
            is a dask Series or array with the same row chunks, and the
            ranking is computed by a streamed reduction.
        output : int, optional
            Output to rank for a multi-output model. When omitted for such a
            model, every output is ranked and an ``output`` column is added.

        Returns
        -------
        DataFrame
            One row per feature (per segment and output), sorted by descending
            ``mean_abs_shap``, with columns ``feature``, ``rank`` (1 is the
            strongest), ``mean_abs_shap``, ``share`` (of the summed mean
            |SHAP| in the group), ``mean_shap`` (mean signed effect) and
            ``sign`` (``"+"``, ``"-"`` or ``"0"``); plus ``segment`` and
            ``n_rows`` when ``by`` is given.
        """
        # Imported here because fastshap.distributed imports this module.
        from fastshap.distributed import is_dask_collection, rank_values

        if is_dask_collection(self.values):
            return rank_values(self, by, output)
        if self.values.ndim == 3 and output is None:
            frames = [
                self.rank(by, output=k).assign(output=k) for k in range(self.n_outputs)
            ]
            return pd.concat(frames, ignore_index=True)
        values = self._output_values(output)
        if by is None:
            return _rank_table(values, self.feature_names)

        labels = np.asarray(self._aligned_labels(by))
        if labels.ndim != 1 or len(labels) != len(values):
            raise ValueError(
                f"`by` must hold one segment label per row ({len(values)}); got "
                f"shape {labels.shape}. Pass a column of the explained data, for "
                f"example `X['segment']`."
            )
        codes, segments = pd.factorize(pd.Series(labels), sort=True)
        if np.any(codes < 0):
            raise ValueError(
                "`by` contains missing labels; fill them first, for example "
                "`by.fillna('unknown')`."
            )
        frames = []
        for code, segment in enumerate(segments):
            mask = codes == code
            table = _rank_table(values[mask], self.feature_names)
            table.insert(0, "segment", segment)
            table["n_rows"] = int(mask.sum())
            frames.append(table)
        return pd.concat(frames, ignore_index=True)

    def _aligned_labels(self, by: Any) -> Any:
        """Return ``by`` in row order.

        A Series whose index contains exactly the explained DataFrame's index
        labels is aligned by index, as pandas would. Any other labels are
        paired with the rows by position.
        """
        if not isinstance(by, pd.Series) or not isinstance(self.data, pd.DataFrame):
            return by
        index = self.data.index
        same_labels = (
            len(by) == len(index)
            and index.is_unique
            and by.index.is_unique
            and index.isin(by.index).all()
        )
        return by.reindex(index) if same_labels else by

    def top_features(self, k: int = 3, *, output: int | None = None) -> pd.DataFrame:
        """List each row's ``k`` features with the largest absolute SHAP value.

        Returns
        -------
        DataFrame
            ``n_rows * k`` rows with columns ``row`` (position of the row),
            ``rank`` (1 to k), ``feature``, ``shap_value`` and, when the
            explained data is known, ``feature_value``.
        """
        values = self._output_values(output)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`k` must be a positive integer; got {k!r}.")
        k = min(int(k), values.shape[1])
        n_rows = values.shape[0]
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
        rows = np.repeat(np.arange(n_rows), k)
        columns = order.ravel()
        table = pd.DataFrame(
            {
                "row": rows,
                "rank": np.tile(np.arange(1, k + 1), n_rows),
                "feature": np.asarray(self.feature_names, dtype=object)[columns],
                "shap_value": values[rows, columns],
            }
        )
        data = self._data_frame()
        if data is not None:
            table["feature_value"] = [
                data.iat[r, c] for r, c in zip(rows.tolist(), columns.tolist())
            ]
        return table

    def to_frame(self, *, output: int | None = None) -> pd.DataFrame:
        """Return the values as a DataFrame, one column per feature plus the base value.

        The base value's column is ``base_value``, or ``base_value_`` (with as
        many underscores as needed) when a feature already has that name.
        """
        values = self._output_values(output)
        frame = pd.DataFrame(values, columns=self.feature_names)
        base_column = "base_value"
        while base_column in frame.columns:
            base_column += "_"
        frame[base_column] = self.base_values[0 if output is None else output]
        data = self._data_frame()
        if data is not None and isinstance(self.data, pd.DataFrame):
            frame.index = self.data.index
        return frame

    def to_parquet(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        output_label: str = "output",
        progress: bool = False,
    ) -> None:
        """Write the values, one column per feature plus the base value, to parquet.

        Interaction values are not written, and an
        ``InteractionValuesNotWrittenWarning`` says so. Save
        ``interaction_values`` separately, for example with ``numpy.save``.

        Columns are the feature names and ``base_value`` for one output. For
        several outputs they are ``FEATURE[{output_label}_K]`` for every
        output ``K`` and feature, then ``base_value[{output_label}_K]``, as
        ``fastshap explain`` writes them. Rows are in the order of
        ``values``, without an index.

        In-memory values go to one file. Dask values go to a parquet dataset:
        a folder with one file ``part.NNNNN.parquet`` per row block, written
        by the workers, so ``path`` must be on storage that every worker
        can reach. Either way the output is written under a temporary name
        next to ``path`` and renamed to ``path`` only when complete, so a
        failed or interrupted write leaves no partial output at ``path``.

        Parameters
        ----------
        path : str or path-like
            File (in-memory values) or folder (dask values) to create.
        overwrite : bool, default=False
            Replace ``path`` if it exists; otherwise an existing ``path``
            raises ``FileExistsError``.
        output_label : str, default="output"
            Word in the column names of a multi-output model, such as
            ``"class"`` for a multi-class classifier.
        progress : bool, default=False
            Show a progress bar on stderr while dask values are computed.
        """
        if self.interaction_values is not None:
            warnings.warn(
                "to_parquet writes the SHAP values only, not the interaction values. "
                "Save `interaction_values` separately, for example with numpy.save "
                "(or dask.array.to_zarr for dask values).",
                InteractionValuesNotWrittenWarning,
                stacklevel=2,
            )
        from fastshap.distributed import is_dask_collection, write_parquet_dataset

        check_bool("overwrite", overwrite)
        check_bool("progress", progress)
        columns = value_columns(self.feature_names, self.n_outputs, output_label)
        path = os.fspath(path)
        if is_dask_collection(self.values):
            write_parquet_dataset(
                self.values, path, columns, self.base_values,
                overwrite=overwrite, progress=progress,
            )
            return
        if os.path.lexists(path) and not overwrite:
            raise FileExistsError(
                f"{path!r} already exists. Pass overwrite=True to replace it, or "
                f"choose another path."
            )
        frame = values_frame(self.values, columns, self.base_values)
        with atomic_output(path, force=overwrite) as temporary:
            frame.to_parquet(temporary, index=False)

    def to_shap(self, *, interactions: bool = False) -> Any:
        """Convert to a ``shap.Explanation``, so every ``shap.plots`` function works.

        With ``interactions``, the Explanation's values are the interaction
        values, as ``shap.TreeExplainer(...)(X, interactions=True)`` returns
        them. Requires the ``shap`` package.
        """
        check_bool("interactions", interactions)
        if interactions and self.interaction_values is None:
            raise ValueError(
                "this Explanation has no interaction values. Explain with "
                "`interactions=True` first."
            )
        try:
            import shap
        except ImportError as error:
            raise ImportError(
                "to_shap() needs the shap package, which is not installed. Install "
                "it with `pip install shap`."
            ) from error

        n_rows = self.values.shape[0]
        if self.values.ndim == 2:
            base = np.full(n_rows, self.base_values[0])
        else:
            base = np.tile(self.base_values, (n_rows, 1))
        data = self._data_frame()
        data_values = None
        if data is not None:
            data_values = np.column_stack(
                [_plot_values(data.iloc[:, j]) for j in range(data.shape[1])]
            ) if data.shape[1] else np.empty((n_rows, 0))
        return shap.Explanation(
            values=self.interaction_values if interactions else self.values,
            base_values=base,
            data=data_values,
            feature_names=list(self.feature_names),
        )

    def _data_frame(self) -> pd.DataFrame | None:
        if self.data is None:
            return None
        if isinstance(self.data, pd.DataFrame):
            return self.data.reset_index(drop=True)
        return pd.DataFrame(np.asarray(self.data), columns=self.feature_names)


def _plot_values(column: pd.Series) -> NDArray[np.float64]:
    """Numeric values of a column for plotting: category codes for categories."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy().astype(np.float64)
        codes[codes < 0] = np.nan
        return codes
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def value_columns(
    feature_names: list[str], n_outputs: int, output_label: str
) -> list[str]:
    """Return the column names of a values table: features, then base values."""
    if n_outputs == 1:
        columns = list(feature_names) + ["base_value"]
    else:
        columns = [
            f"{name}[{output_label}_{k}]"
            for k in range(n_outputs)
            for name in feature_names
        ]
        columns += [f"base_value[{output_label}_{k}]" for k in range(n_outputs)]
    if len(set(columns)) != len(columns):
        raise ValueError(
            "a feature is named like a base value column (base_value). Rename "
            "the feature and retrain the model."
        )
    return columns


def values_frame(
    values: NDArray[np.float64], columns: list[str], base_values: NDArray[np.float64]
) -> pd.DataFrame:
    """Lay out values of shape (n_rows, n_features[, n_outputs]) under ``columns``."""
    n_rows = len(values)
    if values.ndim == 2:
        values = values[:, :, np.newaxis]
    # Output-major order, as value_columns names them.
    flat = values.transpose(0, 2, 1).reshape(n_rows, values.shape[1] * values.shape[2])
    base = np.broadcast_to(
        np.asarray(base_values, dtype=np.float64), (n_rows, len(base_values))
    )
    return pd.DataFrame(np.hstack([flat, base]), columns=columns)


def _rank_table(values: NDArray[np.float64], feature_names: list[str]) -> pd.DataFrame:
    return _rank_table_from_sums(
        np.abs(values).sum(axis=0), values.sum(axis=0), len(values), feature_names
    )


def _rank_table_from_sums(
    sum_abs: NDArray[np.float64],
    sums: NDArray[np.float64],
    n_rows: int,
    feature_names: list[str],
) -> pd.DataFrame:
    """Build the rank table from per-feature sums of |SHAP| and SHAP over ``n_rows``.

    ``sum / n_rows`` is what ``mean(axis=0)`` computes, so the table of a
    matrix equals the table of its sums bit for bit.
    """
    mean_abs = sum_abs / n_rows if n_rows else np.zeros(len(sum_abs))
    mean = sums / n_rows if n_rows else np.zeros(len(sums))
    total = mean_abs.sum()
    share = mean_abs / total if total > 0 else np.zeros_like(mean_abs)
    table = pd.DataFrame(
        {
            "feature": list(feature_names),
            "mean_abs_shap": mean_abs,
            "share": share,
            "mean_shap": mean,
            "sign": np.where(mean > 0, "+", np.where(mean < 0, "-", "0")),
        }
    )
    table = table.sort_values(
        ["mean_abs_shap", "feature"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    table.insert(1, "rank", np.arange(1, len(table) + 1))
    return table
