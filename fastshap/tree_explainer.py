"""A drop-in for ``shap.TreeExplainer``: change the import, keep the code.

``fastshap.TreeExplainer`` takes the arguments of ``shap.TreeExplainer`` in
shap 0.45 and later and returns the same shapes: ``shap_values(X)`` is an
array of shape (n_rows, n_features) for a model with one output and
(n_rows, n_features, n_outputs) for several, ``expected_value`` is a float
or an array of one value per output, and calling the explainer returns a
``shap.Explanation``. Arguments that select something fastshap does not
compute yet raise ``NotImplementedError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastshap.explainer import DEFAULT_MEMORY_LIMIT, Explainer
from fastshap.explanation import Explanation

#: ``feature_perturbation`` values that select path-dependent SHAP values.
_PATH_DEPENDENT = ("auto", "tree_path_dependent")


def _not_implemented(argument: str, value: Any, supported: str) -> NotImplementedError:
    return NotImplementedError(
        f"fastshap.TreeExplainer does not support {argument}={value!r} yet; "
        f"{supported}. Use shap.TreeExplainer for this setting."
    )


class TreeExplainer:
    """Path-dependent TreeSHAP values with the interface of ``shap.TreeExplainer``.

    Parameters
    ----------
    model : model object or str
        A model that :func:`fastshap.load_model` accepts.
    data : array-like, optional
        Background data of the interventional algorithm. Not supported yet:
        it must be None.
    model_output : str, default="raw"
        Only ``"raw"`` (the margin: log-odds for logistic models) is
        supported.
    feature_perturbation : {"auto", "tree_path_dependent"}, default="auto"
        ``"auto"`` without ``data`` means ``"tree_path_dependent"``, as in
        shap. ``"interventional"`` is not supported yet.
    feature_names : list of str, optional
        Names for the output's features, instead of the model's.
    approximate : bool, default=False
        Saabas values are not computed: it must be False.
    link, linearize_link : optional
        Only the identity link (None) is supported.
    memory_limit : int or str, default="1GiB"
        fastshap's memory budget of precomputed tables, see
        :class:`fastshap.Explainer`.
    n_jobs : int, optional
        Number of threads; all cores by default.

    Examples
    --------
    >>> import numpy as np, xgboost as xgb
    >>> from fastshap import TreeExplainer
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> model = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X, X[:, 0])
    >>> TreeExplainer(model).shap_values(X[:4]).shape
    (4, 3)
    """

    def __init__(
        self,
        model: Any,
        data: Any = None,
        model_output: str = "raw",
        feature_perturbation: str = "auto",
        feature_names: list[str] | None = None,
        approximate: bool = False,
        link: Any = None,
        linearize_link: Any = None,
        *,
        memory_limit: int | str = DEFAULT_MEMORY_LIMIT,
        n_jobs: int | None = None,
    ) -> None:
        if data is not None:
            raise _not_implemented(
                "data", type(data).__name__,
                "interventional SHAP values against background data are not "
                "computed yet, so pass data=None for path-dependent values",
            )
        if feature_perturbation not in _PATH_DEPENDENT:
            raise _not_implemented(
                "feature_perturbation", feature_perturbation,
                "supported are 'auto' and 'tree_path_dependent'",
            )
        if model_output != "raw":
            raise _not_implemented(
                "model_output", model_output,
                "values are in the raw margin units only, model_output='raw'",
            )
        if approximate:
            raise _not_implemented("approximate", approximate, "values are always exact")
        if link is not None and getattr(link, "__name__", None) != "identity":
            raise _not_implemented("link", link, "only the identity link is supported")
        self.model = model
        self.data = None
        self.model_output = model_output
        self.feature_perturbation = "tree_path_dependent"
        self.n_jobs = n_jobs
        self._explainer = Explainer(model, memory_limit=memory_limit)
        self._feature_names = None if feature_names is None else list(feature_names)
        if (
            self._feature_names is not None
            and len(self._feature_names) != self._explainer.ensemble.n_features
        ):
            raise ValueError(
                f"`feature_names` has {len(self._feature_names)} names but the model "
                f"has {self._explainer.ensemble.n_features} features. Pass one name "
                f"per feature, or None for the model's own names."
            )

    @property
    def expected_value(self) -> float | NDArray[np.float64]:
        """Expected raw output: a float for one output, an array for several."""
        base = self._explainer.expected_value
        return float(base[0]) if len(base) == 1 else base.copy()

    def _explain(self, X: Any, y: Any, tree_limit: Any, check_additivity: bool) -> Explanation:
        if y is not None:
            raise _not_implemented(
                "y", type(y).__name__, "labels are only needed for model_output='log_loss'"
            )
        if tree_limit is not None:
            raise _not_implemented(
                "tree_limit", tree_limit, "every tree of the model is explained"
            )
        return self._explainer.explain(
            X, n_jobs=self.n_jobs, check_additivity=check_additivity
        )

    def shap_values(
        self,
        X: Any,
        y: Any = None,
        tree_limit: Any = None,
        approximate: bool = False,
        check_additivity: bool = True,
        from_call: bool = False,
    ) -> NDArray[np.float64]:
        """Compute the SHAP values of every row of ``X``.

        Returns
        -------
        ndarray of shape (n_rows, n_features) or (n_rows, n_features, n_outputs)
            Values in raw margin units. Each row's values plus
            ``expected_value`` add up to the model's raw output.
        """
        if approximate:
            raise _not_implemented("approximate", approximate, "values are always exact")
        return self._explain(X, y, tree_limit, check_additivity).values

    def shap_interaction_values(self, X: Any, y: Any = None, tree_limit: Any = None) -> Any:
        """Not implemented yet: raises ``NotImplementedError``."""
        raise NotImplementedError(
            "fastshap.TreeExplainer does not compute SHAP interaction values yet. "
            "Use shap.TreeExplainer(model).shap_interaction_values(X) for now."
        )

    def __call__(
        self,
        X: Any,
        y: Any = None,
        interactions: bool = False,
        check_additivity: bool = True,
    ) -> Any:
        """Compute the SHAP values of ``X`` and return them as a ``shap.Explanation``."""
        if interactions:
            raise _not_implemented(
                "interactions", interactions, "interaction values are not computed yet"
            )
        explanation = self._explain(X, y, None, check_additivity)
        if self._feature_names is not None:
            # Values come in X's column order, which may differ from the model's.
            renamed = dict(zip(self._explainer.feature_names, self._feature_names))
            explanation = Explanation(
                values=explanation.values,
                base_values=explanation.base_values,
                feature_names=[renamed[name] for name in explanation.feature_names],
                data=explanation.data,
            )
        return explanation.to_shap()
