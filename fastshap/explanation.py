"""The result of an explanation: SHAP values, ranking and conversions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray


@dataclass(frozen=True, eq=False)
class Explanation:
    """SHAP values of a set of rows.

    Attributes
    ----------
    values : ndarray of shape (n_rows, n_features) or (n_rows, n_features, n_outputs)
        SHAP value of each feature for each row (and output), in raw (margin)
        space. Each row's values plus ``base_values`` add up to the model's
        raw output for that row.
    base_values : ndarray of shape (n_outputs,)
        Expected raw output of the model, one per output.
    feature_names : list of str
        Name of each column of ``values``.
    data : ndarray or DataFrame, optional
        The explained rows as passed in, used for feature values in
        :meth:`top_features` and :meth:`to_shap`.
    """

    values: NDArray[np.float64]
    base_values: NDArray[np.float64]
    feature_names: list[str]
    data: Any = None

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
            any other by position.
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

        A Series whose index holds exactly the explained DataFrame's index
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

    def to_shap(self) -> Any:
        """Convert to a ``shap.Explanation``, so every ``shap.plots`` function works.

        Requires the ``shap`` package.
        """
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
            values=self.values,
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


def _rank_table(values: NDArray[np.float64], feature_names: list[str]) -> pd.DataFrame:
    mean_abs = np.abs(values).mean(axis=0) if len(values) else np.zeros(values.shape[1])
    mean = values.mean(axis=0) if len(values) else np.zeros(values.shape[1])
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
