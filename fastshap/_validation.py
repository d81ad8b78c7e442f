"""Input checks at the public boundary. Kernels never re-validate."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fastshap.ensemble import TreeEnsemble

def check_choice(name: str, value: Any, allowed: tuple) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}."
        )


def check_positive_int(name: str, value: Any, *, allow_none: bool = True) -> None:
    """Raise unless ``value`` is a positive int (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")


def check_n_jobs(value: Any) -> int | None:
    """Return the thread count that ``n_jobs`` requests: None (all cores) for None or -1."""
    if value is None or (isinstance(value, (int, np.integer)) and value == -1):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"`n_jobs` must be a positive number of threads, or None or -1 for all "
            f"cores; got {value!r}."
        )
    return int(value)


def check_missing(value: Any) -> float | None:
    """Return ``missing`` as a float (None stays None), or raise naming the argument."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"`missing` must be a number that marks missing values, such as -999 "
            f"or np.nan, or None for the model's own setting; got {value!r}."
        )
    return float(value)


def check_bool(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")


def check_callable(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is None or callable."""
    if value is not None and not callable(value):
        raise TypeError(
            f"`{name}` must be a function called as {name}(rows_done, rows_total), "
            f"or None; got {value!r}."
        )


_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def check_memory_limit(name: str, value: Any) -> int:
    """Convert a memory size (bytes, or a string like ``"512MiB"``) to bytes."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise ValueError(
        f"`{name}` must be a number of bytes (an int >= 0) or a size such as "
        f"'512MiB' or '2GB'; got {value!r}."
    )


def has_default_names(ensemble: TreeEnsemble) -> bool:
    """Return whether the model's feature names are XGBoost's defaults f0, f1, ..."""
    return list(ensemble.feature_names) == [f"f{i}" for i in range(ensemble.n_features)]


def check_X(
    X: Any, ensemble: TreeEnsemble
) -> tuple[NDArray[np.float64], list[str], NDArray[np.intp] | None]:
    """Validate ``X`` and convert it to the kernels' layout.

    Returns
    -------
    array : ndarray of shape (n_rows, n_features), float64, C-contiguous
        The rows with columns in the model's order, rounded to float32 when
        the model compares in float32, and categories as the model's codes.
    feature_names : list of str
        Column names in the caller's order (the order of returned values).
    caller_order : ndarray of int or None
        ``caller_order[j]`` is the model column of the caller's column ``j``,
        or None when the two orders agree.
    """
    if isinstance(X, pd.Series):
        raise ValueError(
            "`X` must be 2-D (n_rows, n_features); got a pandas Series. For one "
            "row use `X.to_frame().T`."
        )
    if isinstance(X, pd.DataFrame):
        array, names, order = _frame_to_array(X, ensemble)
    else:
        array, names, order = _array_to_array(X, ensemble), list(ensemble.feature_names), None
    if ensemble.float32_inputs:
        with np.errstate(over="ignore"):
            array = array.astype(np.float32).astype(np.float64)
    return np.ascontiguousarray(array, dtype=np.float64), names, order


def _array_to_array(X: Any, ensemble: TreeEnsemble) -> NDArray[np.float64]:
    if not hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        raise TypeError(
            f"`X` must be a numpy array or a pandas DataFrame; got "
            f"{type(X).__name__}."
        )
    array = np.asarray(X)
    if array.ndim != 2:
        hint = " For one row use `X.reshape(1, -1)`." if array.ndim == 1 else ""
        raise ValueError(
            f"`X` must be 2-D (n_rows, n_features); got shape {array.shape}.{hint}"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`X` must have a numeric dtype; got {array.dtype}. Convert it with "
            f"`X.astype(float)`, or pass a DataFrame with categorical columns."
        )
    if array.shape[1] != ensemble.n_features:
        raise ValueError(
            f"`X` has {array.shape[1]} features, but the model was trained on "
            f"{ensemble.n_features}. Pass the same columns the model was "
            f"trained on, in the same order."
        )
    return array.astype(np.float64, copy=False)


def _frame_to_array(
    X: pd.DataFrame, ensemble: TreeEnsemble
) -> tuple[NDArray[np.float64], list[str], NDArray[np.intp] | None]:
    columns = [str(c) for c in X.columns]
    model_names = list(ensemble.feature_names)
    if len(set(columns)) != len(columns):
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        raise ValueError(f"`X` has duplicated column names: {duplicated}. Rename them.")

    if set(columns) == set(model_names):
        position = {name: j for j, name in enumerate(columns)}
        model_order = [position[name] for name in model_names]
    elif has_default_names(ensemble) and len(columns) == ensemble.n_features:
        # The model was trained without feature names: match by position.
        model_order = list(range(len(columns)))
    else:
        missing = [n for n in model_names if n not in set(columns)]
        extra = [c for c in columns if c not in set(model_names)]
        problems = []
        if missing:
            problems.append(f"missing columns {missing[:10]}")
        if extra:
            problems.append(f"unexpected columns {extra[:10]}")
        if missing:
            fix = "Pass every feature the model was trained on, with the same names."
        elif len(model_names) <= 10:
            fix = f"Select the model's columns with `X[{model_names}]`."
        else:
            fix = "Select the model's columns with `X[fastshap.Explainer(model).feature_names]`."
        raise ValueError(
            f"`X` columns do not match the model's features: {' and '.join(problems)}. "
            f"{fix}"
        )

    array = np.empty((len(X), len(columns)), dtype=np.float64)
    for model_column, j in enumerate(model_order):
        array[:, model_column] = _column_values(X.iloc[:, j], columns[j], model_column, ensemble)
    model_order_array = np.asarray(model_order, dtype=np.intp)
    if np.array_equal(model_order_array, np.arange(len(columns))):
        return array, columns, None
    # Values come out in model order: the caller's column j is model column
    # caller_order[j].
    caller_order = np.argsort(model_order_array)
    return array, columns, caller_order


def _column_values(
    series: pd.Series, name: str, model_column: int, ensemble: TreeEnsemble
) -> NDArray[np.float64]:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _category_codes(series, name, model_column, ensemble)
    labels = ensemble.categorical_features.get(model_column)
    if labels is not None and ensemble.library == "xgboost":
        # XGBoost itself rejects a non-categorical column for a categorical
        # feature: numbers there would be read as category codes unchecked.
        shown = labels[:5] + (["..."] if len(labels) > 5 else [])
        raise TypeError(
            f"column {name!r} of `X` has dtype {dtype}, but the model was trained "
            f"on it as a categorical with categories {shown}. Convert it with "
            f"`X[{name!r}].astype(pd.CategoricalDtype(categories))` using the "
            f"training categories, or pass category codes in a numpy array."
        )
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    raise TypeError(
        f"column {name!r} of `X` has dtype {dtype}; expected a numeric, boolean or "
        f"categorical column. Convert it with `pd.to_numeric(X[{name!r}])`, or "
        f"with `.astype('category')` if the model was trained on categories."
    )


def _category_codes(
    series: pd.Series, name: str, model_column: int, ensemble: TreeEnsemble
) -> NDArray[np.float64]:
    labels = ensemble.categorical_features.get(model_column)
    categories = [str(c) for c in series.cat.categories]
    codes = series.cat.codes.to_numpy().astype(np.float64)
    if labels is not None and categories != labels[: len(categories)]:
        index = {label: code for code, label in enumerate(labels)}
        unknown = [c for c in categories if c not in index]
        if unknown:
            raise ValueError(
                f"column {name!r} of `X` has categories the model was not trained "
                f"on: {unknown[:10]}. Set them to NaN, or retrain the model."
            )
        remap = np.asarray([index[c] for c in categories], dtype=np.float64)
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0).astype(np.intp)], -1.0)
    codes[codes < 0] = np.nan
    return codes
