"""Loaders that turn a library's model into a :class:`~fastshap.TreeEnsemble`.

Loaders are found through :data:`LOADERS`, keyed by the fully qualified class
name of the model (its own or a base class's), and import their library only
when they run.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable

from fastshap.ensemble import TreeEnsemble
from fastshap.exceptions import UnsupportedModelError

#: Fully qualified model class name -> "module:function" of its loader.
LOADERS: dict[str, str] = {
    "xgboost.core.Booster": "fastshap.models.xgboost:load_booster",
    "xgboost.sklearn.XGBModel": "fastshap.models.xgboost:load_sklearn_model",
    "lightgbm.basic.Booster": "fastshap.models.lightgbm:load_booster",
    "lightgbm.sklearn.LGBMModel": "fastshap.models.lightgbm:load_sklearn_model",
    # scikit-learn: the public classes and their private bases, so that
    # subclasses load too.
    "sklearn.tree._classes.BaseDecisionTree": (
        "fastshap.models.sklearn:load_decision_tree"
    ),
    "sklearn.tree._classes.DecisionTreeRegressor": (
        "fastshap.models.sklearn:load_decision_tree"
    ),
    "sklearn.tree._classes.DecisionTreeClassifier": (
        "fastshap.models.sklearn:load_decision_tree"
    ),
    "sklearn.tree._classes.ExtraTreeRegressor": (
        "fastshap.models.sklearn:load_decision_tree"
    ),
    "sklearn.tree._classes.ExtraTreeClassifier": (
        "fastshap.models.sklearn:load_decision_tree"
    ),
    "sklearn.ensemble._forest.BaseForest": "fastshap.models.sklearn:load_forest",
    "sklearn.ensemble._forest.RandomForestRegressor": (
        "fastshap.models.sklearn:load_forest"
    ),
    "sklearn.ensemble._forest.RandomForestClassifier": (
        "fastshap.models.sklearn:load_forest"
    ),
    "sklearn.ensemble._forest.ExtraTreesRegressor": (
        "fastshap.models.sklearn:load_forest"
    ),
    "sklearn.ensemble._forest.ExtraTreesClassifier": (
        "fastshap.models.sklearn:load_forest"
    ),
    "sklearn.ensemble._gb.BaseGradientBoosting": (
        "fastshap.models.sklearn:load_gradient_boosting"
    ),
    "sklearn.ensemble._gb.GradientBoostingRegressor": (
        "fastshap.models.sklearn:load_gradient_boosting"
    ),
    "sklearn.ensemble._gb.GradientBoostingClassifier": (
        "fastshap.models.sklearn:load_gradient_boosting"
    ),
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "BaseHistGradientBoosting"
    ): "fastshap.models.sklearn:load_hist_gradient_boosting",
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingRegressor"
    ): "fastshap.models.sklearn:load_hist_gradient_boosting",
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingClassifier"
    ): "fastshap.models.sklearn:load_hist_gradient_boosting",
    "sklearn.ensemble._iforest.IsolationForest": (
        "fastshap.models.sklearn:load_isolation_forest"
    ),
}

#: Model file suffix -> "module:function" of its loader.
FILE_LOADERS: dict[str, str] = {
    ".json": "fastshap.models.xgboost:load_file",
    ".ubj": "fastshap.models.xgboost:load_file",
}


def _resolve(target: str) -> Callable[..., TreeEnsemble]:
    module_name, function_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def load_model(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Convert ``model`` into a :class:`~fastshap.TreeEnsemble`.

    Parameters
    ----------
    model : model object, str or path-like
        A supported model (see :data:`LOADERS`), a path to a saved model
        file (see :data:`FILE_LOADERS`), or a ``TreeEnsemble``, which is
        returned as it is.
    missing : float, optional
        The value that counts as missing besides NaN. By default the model's
        own setting (``XGBModel.missing``), else NaN only.

    Raises
    ------
    UnsupportedModelError
        If no loader handles the model's type.
    """
    if isinstance(model, TreeEnsemble):
        return model if missing is None else _with_missing(model, missing)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in FILE_LOADERS:
            raise UnsupportedModelError(
                f"model file {path!r} has suffix {suffix!r}; expected one of "
                f"{sorted(FILE_LOADERS)}. Save an XGBoost model with "
                f"booster.save_model('model.json') or 'model.ubj'."
            )
        return _resolve(FILE_LOADERS[suffix])(path, missing=missing)
    for cls in type(model).__mro__:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in LOADERS:
            return _resolve(LOADERS[name])(model, missing=missing)
    supported = ", ".join(sorted(LOADERS))
    raise UnsupportedModelError(
        f"model of type {type(model).__module__}.{type(model).__qualname__} is "
        f"not supported; expected one of: {supported}, a saved XGBoost model "
        f"file (.json or .ubj), or a fastshap.TreeEnsemble."
    )


def _with_missing(ensemble: TreeEnsemble, missing: float) -> TreeEnsemble:
    import dataclasses

    import numpy as np

    # A library that compares in float32 rounds the missing value like the inputs.
    value = float(np.float32(missing)) if ensemble.float32_inputs else float(missing)
    return dataclasses.replace(ensemble, missing=value)
