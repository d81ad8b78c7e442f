"""The implementations that the benchmarks compare, behind one interface.

Each :class:`Implementation` turns a trained model and a thread count into
an ``explain(X) -> values`` function. Its ``prepare`` step does the once per
model work (fastshap's tables, shap's model parsing), so callers can time it
apart from explaining rows. Values come back as float64 of shape
(n_rows, n_features), without the bias column that XGBoost and LightGBM
append. The pytest-benchmark suite and the side-by-side runner both build
their callables here, so the two cannot time different calls.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

ExplainFunction = Callable[[NDArray[np.float64]], NDArray[np.float64]]


class NotSupported(Exception):
    """The implementation cannot explain this model, or is not installed."""


@dataclasses.dataclass(frozen=True)
class Implementation:
    """One way to compute path-dependent SHAP values.

    Attributes
    ----------
    name : str
        Label in tables and test ids.
    libraries : tuple of str
        Model libraries (``ModelSpec.library``) it is run on.
    prepare : callable
        ``prepare(model, threads)`` does the once per model work and returns
        the ``explain(X)`` function. Raises :class:`NotSupported` when the
        implementation cannot explain the model.
    uses_threads : bool
        Whether the thread count changes anything. shap's own TreeSHAP
        runs on one thread whatever the count.
    """

    name: str
    libraries: tuple[str, ...]
    prepare: Callable[[Any, int], ExplainFunction]
    uses_threads: bool = True


def _prepare_fastshap(model: Any, threads: int) -> ExplainFunction:
    import fastshap

    try:
        explainer = fastshap.Explainer(model)
    except fastshap.UnsupportedModelError as error:
        raise NotSupported("not supported yet") from error

    def explain(X: NDArray[np.float64]) -> NDArray[np.float64]:
        # XGBoost and LightGBM do not check additivity either.
        return explainer.explain(X, n_jobs=threads, check_additivity=False).values

    return explain


def _prepare_xgboost(model: Any, threads: int) -> ExplainFunction:
    import xgboost

    def explain(X: NDArray[np.float64]) -> NDArray[np.float64]:
        # Set on every call, because callers may share one Booster between
        # thread counts. Building the DMatrix is part of what a
        # pred_contribs call costs.
        model.set_param({"nthread": threads})
        dmatrix = xgboost.DMatrix(X, nthread=threads)
        contributions = model.predict(dmatrix, pred_contribs=True)
        return contributions[:, :-1].astype(np.float64)

    return explain


def _prepare_lightgbm(model: Any, threads: int) -> ExplainFunction:
    def explain(X: NDArray[np.float64]) -> NDArray[np.float64]:
        contributions = model.predict(X, pred_contrib=True, num_threads=threads)
        return np.asarray(contributions)[:, :-1].astype(np.float64)

    return explain


def _prepare_shap(model: Any, threads: int) -> ExplainFunction:
    import shap

    explainer = shap.TreeExplainer(model)
    # shap forwards XGBoost and LightGBM models to their own pred_contribs,
    # which the "xgboost" and "lightgbm" rows already time. The model type
    # "internal" makes shap run its own C++ TreeSHAP instead, as it does for
    # scikit-learn models. (A private attribute of shap 0.51 and 0.54.)
    explainer.model.model_type = "internal"

    def explain(X: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(explainer.shap_values(X, check_additivity=False))

    return explain


def _fasttreeshap_preparer(algorithm: str) -> Callable[[Any, int], ExplainFunction]:
    def prepare(model: Any, threads: int) -> ExplainFunction:
        try:
            import fasttreeshap_fixed
        except ImportError as error:
            raise NotSupported("fasttreeshap_fixed is not installed") from error

        explainer = fasttreeshap_fixed.TreeExplainer(
            model, algorithm=algorithm, n_jobs=threads
        )

        def explain(X: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(explainer.shap_values(X, check_additivity=False))

        return explain

    return prepare


ALL_LIBRARIES = ("xgboost", "lightgbm", "sklearn")

IMPLEMENTATIONS: dict[str, Implementation] = {
    implementation.name: implementation
    for implementation in (
        Implementation("fastshap", ALL_LIBRARIES, _prepare_fastshap),
        Implementation("xgboost", ("xgboost",), _prepare_xgboost),
        Implementation("lightgbm", ("lightgbm",), _prepare_lightgbm),
        Implementation("shap", ALL_LIBRARIES, _prepare_shap, uses_threads=False),
        Implementation("fasttreeshap-v1", ALL_LIBRARIES, _fasttreeshap_preparer("v1")),
        Implementation("fasttreeshap-v2", ALL_LIBRARIES, _fasttreeshap_preparer("v2")),
    )
}
