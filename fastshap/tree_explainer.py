"""A drop-in for ``shap.TreeExplainer``: change the import, keep the code.

``fastshap.TreeExplainer`` takes the arguments of ``shap.TreeExplainer`` in
shap 0.45 and later and returns the same shapes: ``shap_values(X)`` is an
array of shape (n_rows, n_features) for a model with one output and
(n_rows, n_features, n_outputs) for several, ``expected_value`` is a float
or an array of one value per output, and calling the explainer returns a
``shap.Explanation``. Arguments that select something fastshap does not
compute raise ``NotImplementedError`` naming the argument.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastshap.explainer import DEFAULT_MEMORY_LIMIT, Explainer
from fastshap.explanation import Explanation

#: ``feature_perturbation`` values fastshap computes.
_PERTURBATIONS = ("auto", "tree_path_dependent", "interventional")

#: ``model_output`` values fastshap computes.
_MODEL_OUTPUTS = ("raw", "probability")


def _not_implemented(argument: str, value: Any, supported: str) -> NotImplementedError:
    """Return the error for an argument value that fastshap does not compute.

    Arrays and frames are shown by their type, as ``data=<DataFrame>``.
    """
    is_scalar = value is None or isinstance(value, (str, bool, int, float))
    shown_value = repr(value) if is_scalar else f"<{type(value).__name__}>"
    return NotImplementedError(
        f"fastshap.TreeExplainer does not support {argument}={shown_value}. "
        f"{supported[0].upper()}{supported[1:]}. Use shap.TreeExplainer for this "
        f"setting."
    )


def _shap_argument_names(error: ValueError) -> ValueError:
    """Return ``error`` with fastshap.Explainer's argument names replaced by shap's."""
    message = re.sub(r"(?<![\w_])output=", "model_output=", str(error))
    message = message.replace("background=None", "data=None")
    message = message.replace("`background=`", "`data=`").replace("`background`", "`data`")
    return type(error)(message)


class TreeExplainer:
    """Exact TreeSHAP values with the interface of ``shap.TreeExplainer``.

    Parameters
    ----------
    model : model object or str
        A model that :func:`fastshap.load_model` accepts.
    data : ndarray or DataFrame, optional
        Background rows of the interventional algorithm. All rows are used:
        fastshap's cost per explained row does not grow with their number,
        so there is no need to cut them to 100.
    model_output : {"raw", "probability"}, default="raw"
        ``"raw"`` is the margin (log-odds for logistic models).
        ``"probability"`` needs ``data`` and a logistic or softmax model, as
        in shap (see :class:`fastshap.Explainer` for the definition).
    feature_perturbation : {"auto", "tree_path_dependent", "interventional"}, default="auto"
        ``"auto"`` means ``"interventional"`` with ``data`` and
        ``"tree_path_dependent"`` without, as in shap. Path-dependent values
        with ``data`` (covers recomputed from the data) are not supported.
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
        if feature_perturbation not in _PERTURBATIONS:
            raise _not_implemented(
                "feature_perturbation", feature_perturbation,
                "supported are 'auto', 'tree_path_dependent' and 'interventional'",
            )
        if feature_perturbation == "tree_path_dependent" and data is not None:
            raise _not_implemented(
                "data", data,
                "with feature_perturbation='tree_path_dependent' the covers come "
                "from the model, so pass data=None, or use "
                "feature_perturbation='interventional' to explain against data",
            )
        if model_output not in _MODEL_OUTPUTS:
            raise _not_implemented(
                "model_output", model_output,
                "supported are 'raw' (the margin) and 'probability' (with data)",
            )
        if approximate:
            raise _not_implemented("approximate", approximate, "values are always exact")
        if link is not None and getattr(link, "__name__", None) != "identity":
            raise _not_implemented("link", link, "only the identity link is supported")
        if feature_perturbation == "interventional" and data is None:
            raise ValueError(
                "feature_perturbation='interventional' needs background rows; got "
                "data=None. Pass `data=` (for example a sample of the training data)."
            )
        self.model = model
        self.data = data
        self.model_output = model_output
        self.feature_perturbation = (
            "tree_path_dependent" if data is None else "interventional"
        )
        self.n_jobs = n_jobs
        try:
            self._explainer = Explainer(
                model, background=data, output=model_output, memory_limit=memory_limit
            )
        except ValueError as error:
            raise _shap_argument_names(error) from error
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
        """Expected output: a float for one output, an array for several."""
        base = self._explainer.expected_value
        return float(base[0]) if len(base) == 1 else base.copy()

    def _explain(
        self,
        X: Any,
        y: Any,
        tree_limit: Any,
        check_additivity: bool,
        interactions: bool = False,
    ) -> Explanation:
        if y is not None:
            raise _not_implemented(
                "y", y, "labels are only needed for model_output='log_loss'"
            )
        if tree_limit is not None:
            raise _not_implemented(
                "tree_limit", tree_limit, "every tree of the model is explained"
            )
        return self._explainer.explain(
            X, interactions=interactions, n_jobs=self.n_jobs,
            check_additivity=check_additivity,
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
            Values in the units of ``model_output``. Each row's values plus
            ``expected_value`` add up to the model's output.
        """
        if approximate:
            raise _not_implemented("approximate", approximate, "values are always exact")
        return self._explain(X, y, tree_limit, check_additivity).values

    def shap_interaction_values(
        self, X: Any, y: Any = None, tree_limit: Any = None
    ) -> NDArray[np.float64]:
        """Compute the SHAP interaction values of every row of ``X``.

        Returns
        -------
        ndarray of shape (n_rows, n_features, n_features[, n_outputs])
            Symmetric matrices: half the Shapley interaction index off the
            diagonal, and on it the rest of the feature's SHAP value, so that
            each row of a matrix sums to the SHAP value. Path-dependent, or
            interventional with ``data`` (which shap does not offer).
        """
        explanation = self._explain(X, y, tree_limit, True, interactions=True)
        return explanation.interaction_values

    def __call__(
        self,
        X: Any,
        y: Any = None,
        interactions: bool = False,
        check_additivity: bool = True,
    ) -> Any:
        """Compute the SHAP values of ``X`` and return them as a ``shap.Explanation``."""
        explanation = self._explain(X, y, None, check_additivity, interactions)
        if self._feature_names is not None:
            # Values come in X's column order, which may differ from the model's.
            renamed = dict(zip(self._explainer.feature_names, self._feature_names))
            explanation = Explanation(
                values=explanation.values,
                base_values=explanation.base_values,
                feature_names=[renamed[name] for name in explanation.feature_names],
                data=explanation.data,
                interaction_values=explanation.interaction_values,
            )
        return explanation.to_shap(interactions=interactions)
