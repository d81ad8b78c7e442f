"""scikit-learn loader: reads fitted trees from their ``tree_`` arrays.

Supported: scikit-learn 1.4 up to but excluding 1.10, tested with 1.9.1.
Older versions raise :class:`~fastshap.UnsupportedModelError`, newer ones
load with a :class:`~fastshap.FastshapWarning`. The raw output that the
loaded ensemble computes, and that its SHAP values add up to, is:

- ``DecisionTreeRegressor``, ``ExtraTreeRegressor``,
  ``RandomForestRegressor``, ``ExtraTreesRegressor``: ``predict``, with one
  output per target column.
- ``DecisionTreeClassifier``, ``ExtraTreeClassifier``,
  ``RandomForestClassifier``, ``ExtraTreesClassifier``: ``predict_proba``,
  with one output per class, two classes included. Each tree's leaf value
  is its class distribution, and a forest averages its trees.
- ``GradientBoostingRegressor``: ``predict``. ``GradientBoostingClassifier``:
  ``decision_function``, with one output for two classes and one per class
  for more. The ``init`` estimator's prediction becomes the base score when
  it is constant (``"zero"``, ``DummyRegressor``, ``DummyClassifier``), and
  its trees join the ensemble when it is a tree model (see
  :func:`load_gradient_boosting`).
- ``HistGradientBoostingRegressor``: ``predict``, or ``log(predict)`` for
  the ``poisson`` and ``gamma`` losses. ``HistGradientBoostingClassifier``:
  ``decision_function``.
- ``IsolationForest``: the expected path length ``E[h(x)]``, as
  ``shap.TreeExplainer`` explains it (see :func:`load_isolation_forest`).

scikit-learn's trees round inputs to float32 and send ``x`` left when
``float32(x) <= threshold``, with float64 thresholds. Histogram gradient
boosting compares float64 inputs. Both send a missing value (NaN) where
each node's ``missing_go_to_left`` sends it. The cover of a node is
``weighted_n_node_samples``, as in ``shap.TreeExplainer``, and the training
sample ``count`` in histogram gradient boosting, which stores no weighted
count.

Histogram gradient boosting has no public tree arrays, so its loader reads
the private ``_predictors``, ``_baseline_prediction``, ``_preprocessor``,
``_bin_mapper`` and ``_loss`` of a fitted model. These can change between
releases, so the loader checks the scikit-learn version.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray
from scipy.special import logit
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from fastshap.ensemble import LEAF, NodeArrays, TreeEnsemble, validate_ensemble
from fastshap.exceptions import FastshapWarning, ModelFormatError, UnsupportedModelError

logger = logging.getLogger(__name__)

#: scikit-learn versions the loader reads: the lower bound included, the upper
#: bound excluded. From 1.4, gradient boosting maps its init prediction to raw
#: space with the links of the shared loss module (``sklearn._loss.link``),
#: which :func:`_probabilities_to_raw` follows.
SUPPORTED_VERSIONS = ((1, 4), (1, 10))

#: Raw-space link of each scikit-learn loss link class (``sklearn._loss.link``).
#: ``HalfLogitLink`` (the exponential loss, whose raw output is half the
#: log-odds) has no entry in ``fastshap.ensemble.LINKS``, so its raw output
#: is explained as it is, with the identity link.
_LINKS = {
    "IdentityLink": "identity",
    "LogLink": "log",
    "LogitLink": "logit",
    "HalfLogitLink": "identity",
    "MultinomialLogit": "softmax",
}


@dataclass
class _Tree:
    """One tree in local node numbering (-1 marks a leaf), before packing.

    ``value`` has shape (n_nodes, width), is already multiplied by
    ``weight``, and adds to outputs ``first_output`` to
    ``first_output + width``. ``categories[i]`` is the set of codes of a
    categorical node ``i`` that go right.
    """

    left: NDArray[np.int64]
    right: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    default_left: NDArray[np.bool_]
    cover: NDArray[np.float64]
    value: NDArray[np.float64]
    weight: float = 1.0
    first_output: int = 0
    is_categorical: NDArray[np.bool_] | None = None
    categories: dict[int, list[float]] = field(default_factory=dict)


@dataclass
class _Parsed:
    """The trees and settings of one model, before packing."""

    trees: list[_Tree]
    base_score: NDArray[np.float64]
    link: str
    objective: str
    float32_inputs: bool
    categorical_features: dict[int, list[str]] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Public loaders (registered in fastshap.models.LOADERS)
# ---------------------------------------------------------------------------


def load_decision_tree(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load a ``DecisionTreeRegressor``, ``DecisionTreeClassifier`` or extra tree.

    A regressor explains ``predict`` (one output per target column), a
    classifier ``predict_proba`` (one output per class).
    """
    _check_model(model, "tree_")
    return _pack(_parse_tree_model(model, [model]), model, missing)


def load_forest(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load a random forest or extra-trees regressor or classifier.

    The ensemble averages its trees (each tree's values are divided by the
    number of trees). A regressor explains ``predict``, a classifier
    ``predict_proba``, with one output per class.
    """
    _check_model(model, "estimators_")
    if not (is_classifier(model) or is_regressor(model)):
        raise UnsupportedModelError(
            f"{type(model).__name__} is neither a classifier nor a regressor "
            f"(RandomTreesEmbedding is a transformer). fastshap explains the "
            f"predictions of forest regressors and classifiers."
        )
    return _pack(_parse_tree_model(model, list(model.estimators_)), model, missing)


def load_gradient_boosting(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load a ``GradientBoostingRegressor`` or ``GradientBoostingClassifier``.

    The raw output is ``predict`` of a regressor and ``decision_function`` of
    a classifier: the init estimator's raw prediction plus ``learning_rate``
    times the sum of the trees. The init estimator must be one of:

    - ``"zero"``: a base score of 0.
    - a ``DummyRegressor``, or a ``DummyClassifier`` with any strategy but
      ``"stratified"``: its constant prediction is the base score. For a
      classifier, that is the predicted class probabilities, clipped to
      ``[eps, 1 - eps]`` and mapped to raw space as ``decision_function``
      does: the log-odds of class 1 (half of it for the exponential loss)
      for two classes, and ``log(p_k) - mean_j log(p_j)`` for more.
    - a scikit-learn tree model: the trees of a regression tree, forest or
      gradient boosting regressor with an identity link join the ensemble,
      and a single ``DecisionTreeClassifier`` or ``ExtraTreeClassifier``
      joins with its leaf probabilities mapped to raw space as above.

    Other init estimators raise ``UnsupportedModelError``, because their
    prediction varies with ``x`` in a way no tree represents.
    """
    _check_model(model, "estimators_")
    estimators = model.estimators_
    n_outputs = estimators.shape[1]
    learning_rate = float(model.learning_rate)
    base_score, init = _gradient_boosting_init(model, n_outputs)

    trees = list(init.trees) if init is not None else []
    if init is not None:
        logger.debug(
            "adding the %d trees of the init estimator %s",
            len(init.trees),
            type(model.init_).__name__,
        )
    # Stage-major order, as scikit-learn's predict adds the stages.
    for stage in estimators:
        for output, estimator in enumerate(stage):
            tree = estimator.tree_
            trees.append(
                _read_tree(
                    tree,
                    tree.value[:, 0, :1],
                    weight=learning_rate,
                    first_output=output,
                )
            )
    parsed = _Parsed(
        trees=trees,
        base_score=base_score,
        link=_loss_link(model),
        objective=str(model.loss),
        # The init estimator also receives the float32 inputs.
        float32_inputs=True,
    )
    if init is not None:
        parsed.categorical_features = init.categorical_features
    return _pack(parsed, model, missing)


def load_hist_gradient_boosting(
    model: Any, *, missing: float | None = None
) -> TreeEnsemble:
    """Load a ``HistGradientBoostingRegressor`` or ``HistGradientBoostingClassifier``.

    The raw output is ``_baseline_prediction`` plus the sum of the trees:
    ``decision_function`` of a classifier, ``predict`` of a regressor with an
    identity link, and the log of ``predict`` with the ``poisson`` and
    ``gamma`` losses.

    Categorical splits are read from the raw-category bitsets. Categories of
    a numeric column are matched by value, so pass their values (not pandas
    category codes). String categories are matched by label, so pass a
    DataFrame with a categorical column. The ensemble's
    ``categorical_features`` lists the labels. Values unseen in training
    follow the node's missing-value direction, as in scikit-learn.
    """
    _check_model(model, "_predictors")
    return _pack(_parse_hist_gradient_boosting(model), model, missing)


def load_isolation_forest(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load an ``IsolationForest`` as its expected path length ``E[h(x)]``.

    ``h_t(x)`` is the depth (in edges) of the leaf of tree ``t`` that ``x``
    reaches, plus ``c(n)`` for the ``n`` training samples of that leaf.
    ``c(n)`` is the average path length of an unsuccessful search in a
    binary search tree of ``n`` keys (see :func:`_average_path_length`). The
    ensemble's raw output is the mean of ``h_t(x)`` over the trees.

    ``score_samples(x) = -2 ** (-E[h(x)] / c(max_samples_))`` and
    ``decision_function(x) = score_samples(x) - offset_`` are monotone in
    ``E[h(x)]`` but not linear, and path-dependent SHAP values are exact
    only for a sum of trees. So, like ``shap.TreeExplainer``, fastshap
    explains ``E[h(x)]``: a feature with a negative value shortens the path,
    which makes the row more anomalous.
    """
    _check_model(model, "estimators_")
    return _pack(_parse_isolation_forest(model), model, missing)


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise UnsupportedModelError(
            f"scikit-learn reports the invalid version {version!r}. Expected a "
            f"version such as '1.9.1'."
        )
    return int(match.group(1)), int(match.group(2))


def _caller_stacklevel() -> int:
    """Return the ``stacklevel`` of the first frame outside fastshap."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package + os.sep
    ):
        frame = frame.f_back
        level += 1
    return level


def _check_model(model: Any, fitted_attribute: str) -> None:
    """Raise ``UnsupportedModelError`` for an unsupported version or unfitted model."""
    version = _version_tuple(sklearn.__version__)
    low, high = SUPPORTED_VERSIONS
    if version < low:
        raise UnsupportedModelError(
            f"{type(model).__name__} comes from scikit-learn {sklearn.__version__}, "
            f"but fastshap reads models of scikit-learn {low[0]}.{low[1]} up to but "
            f"excluding {high[0]}.{high[1]}. Upgrade scikit-learn and refit the model."
        )
    if version >= high:
        warnings.warn(
            f"scikit-learn {sklearn.__version__} is newer than the versions "
            f"fastshap was tested with (up to {high[0]}.{high[1] - 1}). Check "
            f"that Explainer.predict_raw matches the model's output.",
            FastshapWarning,
            stacklevel=_caller_stacklevel(),
        )
    try:
        check_is_fitted(model, fitted_attribute)
    except NotFittedError as error:
        raise UnsupportedModelError(
            f"{type(model).__name__} is not fitted. Call fit() before explaining it."
        ) from error


def _check_single_output(model: Any) -> None:
    if int(getattr(model, "n_outputs_", 1)) > 1:
        raise UnsupportedModelError(
            f"{type(model).__name__} was fitted on {model.n_outputs_} target "
            f"columns (multi-output classification), whose predict_proba is one "
            f"array per column. Fit one classifier per target column."
        )


# ---------------------------------------------------------------------------
# Decision trees and forests
# ---------------------------------------------------------------------------


def _read_tree(
    tree: Any,
    value: NDArray[np.float64],
    *,
    weight: float = 1.0,
    first_output: int = 0,
    columns: NDArray[np.int64] | None = None,
) -> _Tree:
    """Convert a fitted ``sklearn.tree._tree.Tree`` with per-node ``value``.

    ``columns`` maps the tree's feature indices to columns of ``X``, for a
    tree fitted on a subset of the columns.
    """
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    is_leaf = left == LEAF
    # Leaves store feature -2 and threshold -2 (scikit-learn's TREE_UNDEFINED).
    feature = np.where(is_leaf, 0, np.asarray(tree.feature, dtype=np.int64))
    if columns is not None:
        feature = np.asarray(columns, dtype=np.int64)[feature]
    value = np.asarray(value, dtype=np.float64).reshape(len(left), -1)
    return _Tree(
        left=left,
        right=np.where(is_leaf, LEAF, right),
        feature=np.where(is_leaf, -1, feature),
        threshold=np.where(
            is_leaf, np.nan, np.asarray(tree.threshold, dtype=np.float64)
        ),
        default_left=np.asarray(tree.missing_go_to_left, dtype=np.bool_),
        cover=np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
        value=np.where(is_leaf[:, None], value * weight, 0.0),
        weight=weight,
        first_output=first_output,
    )


def _class_probabilities(tree: Any, n_classes: int) -> NDArray[np.float64]:
    """Return each node's class distribution: its class weights over their sum.

    scikit-learn 1.4 and later already store the fractions, and dividing
    again changes them by at most a few units in the last place.
    """
    weights = np.asarray(tree.value[:, 0, :n_classes], dtype=np.float64)
    totals = weights.sum(axis=1, keepdims=True)
    return weights / np.where(totals > 0, totals, 1.0)


def _parse_tree_model(model: Any, estimators: list[Any]) -> _Parsed:
    """Read a decision tree (one estimator) or a forest (the mean of its trees)."""
    weight = 1.0 / len(estimators)
    if is_classifier(model):
        _check_single_output(model)
        n_classes = int(model.n_classes_)
        trees = [
            _read_tree(e.tree_, _class_probabilities(e.tree_, n_classes), weight=weight)
            for e in estimators
        ]
        n_outputs = n_classes
    else:
        trees = [
            _read_tree(e.tree_, e.tree_.value[:, :, 0], weight=weight)
            for e in estimators
        ]
        n_outputs = int(model.n_outputs_)
    return _Parsed(
        trees=trees,
        base_score=np.zeros(n_outputs),
        link="identity",
        objective=str(getattr(model, "criterion", "")),
        float32_inputs=True,
    )


# ---------------------------------------------------------------------------
# Gradient boosting
# ---------------------------------------------------------------------------


def _loss_link(model: Any) -> str:
    """Return the fastshap link of the model's scikit-learn loss."""
    name = type(model._loss.link).__name__
    if name not in _LINKS:
        raise UnsupportedModelError(
            f"{type(model).__name__} uses the unsupported link {name} "
            f"(loss={model.loss!r}). fastshap supports the links {sorted(_LINKS)}."
        )
    return _LINKS[name]


def _clip_epsilon() -> float:
    """Return the epsilon that gradient boosting clips init probabilities with.

    scikit-learn 1.8 changed it from the float32 to the float64 machine
    epsilon.
    """
    if _version_tuple(sklearn.__version__) >= (1, 8):
        return float(np.finfo(np.float64).eps)
    return float(np.finfo(np.float32).eps)


def _probabilities_to_raw(
    model: Any, proba: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Map init class probabilities (n, n_classes) to raw space (n, n_outputs).

    This follows ``decision_function``: probabilities are clipped to
    ``[eps, 1 - eps]``, two classes give the log-odds of class 1 (half of it
    for the half-logit link of the exponential loss), and more classes the
    symmetric multinomial logit ``log(p_k / gmean(p))``.
    """
    eps = _clip_epsilon()
    link = type(model._loss.link).__name__
    if link in ("LogitLink", "HalfLogitLink"):
        positive = np.clip(proba[:, 1], eps, 1 - eps)
        raw = logit(positive)
        return (0.5 * raw if link == "HalfLogitLink" else raw)[:, None]
    if link == "MultinomialLogit":
        clipped = np.clip(proba, eps, 1 - eps)
        geometric_mean = np.exp(np.mean(np.log(clipped), axis=1))
        return np.log(clipped / geometric_mean[:, None])
    raise UnsupportedModelError(
        f"{type(model).__name__} uses the link {link} (loss={model.loss!r}), "
        f"whose init prediction fastshap cannot map to raw space."
    )


def _gradient_boosting_init(
    model: Any, n_outputs: int
) -> tuple[NDArray[np.float64], _Parsed | None]:
    """Return the base score and, for a tree-model init, its parsed trees."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    if isinstance(init, str) and init == "zero":
        return np.zeros(n_outputs), None
    # Any row gives a constant estimator's prediction. This one is float32, as
    # scikit-learn passes it.
    row = np.zeros((1, int(model.n_features_in_)), dtype=np.float32)
    if is_classifier(model):
        if isinstance(init, DummyClassifier) and init.strategy != "stratified":
            return _probabilities_to_raw(model, init.predict_proba(row))[0], None
        if _is_single_tree_classifier(init):
            return np.zeros(n_outputs), _classifier_init_trees(model, init)
    else:
        if isinstance(init, DummyRegressor):
            return np.asarray(init.predict(row), dtype=np.float64).reshape(1), None
        parsed = _parse_regressor_init(init)
        if parsed is not None:
            return parsed.base_score, parsed
    raise UnsupportedModelError(
        f"{type(model).__name__} has the init estimator {type(init).__name__}, "
        f"whose prediction fastshap cannot represent as trees. Supported are "
        f"init=None, 'zero', a DummyRegressor, a DummyClassifier (not "
        f"strategy='stratified', which is random), a scikit-learn tree, forest "
        f"or gradient boosting regressor, and a single decision tree classifier."
    )


def _is_single_tree_classifier(init: Any) -> bool:
    from sklearn.tree import BaseDecisionTree

    return isinstance(init, BaseDecisionTree) and is_classifier(init)


def _classifier_init_trees(model: Any, init: Any) -> _Parsed:
    """Read a decision tree classifier init with its leaves in raw space."""
    _check_model(init, "tree_")
    _check_single_output(init)
    proba = _class_probabilities(init.tree_, int(init.n_classes_))
    raw = _probabilities_to_raw(model, proba)
    tree = _read_tree(init.tree_, raw)
    return _Parsed(
        trees=[tree],
        base_score=np.zeros(raw.shape[1]),
        link="identity",
        objective=str(init.criterion),
        float32_inputs=True,
    )


def _parse_regressor_init(init: Any) -> _Parsed | None:
    """Parse a single-output scikit-learn tree regressor, or return None."""
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )
    from sklearn.tree import BaseDecisionTree

    if not is_regressor(init):
        return None
    if isinstance(init, BaseDecisionTree):
        _check_model(init, "tree_")
        parsed = _parse_tree_model(init, [init])
    elif isinstance(init, BaseForest):
        _check_model(init, "estimators_")
        parsed = _parse_tree_model(init, list(init.estimators_))
    elif isinstance(init, BaseGradientBoosting):
        ensemble = load_gradient_boosting(init)
        return _Parsed(
            trees=_unpack(ensemble),
            base_score=ensemble.base_score,
            link=ensemble.link,
            objective=ensemble.objective,
            float32_inputs=True,
            categorical_features=ensemble.categorical_features,
        )
    elif isinstance(init, BaseHistGradientBoosting):
        _check_model(init, "_predictors")
        parsed = _parse_hist_gradient_boosting(init)
    else:
        return None
    if len(parsed.base_score) != 1 or parsed.link != "identity":
        raise UnsupportedModelError(
            f"the init estimator {type(init).__name__} has {len(parsed.base_score)} "
            f"outputs and the {parsed.link!r} link, but a gradient boosting init "
            f"must predict one value with the identity link."
        )
    return parsed


def _unpack(ensemble: TreeEnsemble) -> list[_Tree]:
    """Split a packed ensemble back into trees in local node numbering."""
    nodes = ensemble.nodes
    trees = []
    for t in range(ensemble.n_trees):
        start, stop = int(ensemble.tree_offsets[t]), int(ensemble.tree_offsets[t + 1])
        first, last = (int(v) for v in ensemble.tree_outputs[t])
        rows = slice(start, stop)
        is_categorical = nodes.is_categorical[rows]
        offsets = nodes.category_offsets
        trees.append(
            _Tree(
                left=np.where(nodes.left[rows] == LEAF, LEAF, nodes.left[rows] - start),
                right=np.where(
                    nodes.right[rows] == LEAF, LEAF, nodes.right[rows] - start
                ),
                feature=nodes.feature[rows].astype(np.int64),
                threshold=nodes.threshold[rows],
                default_left=nodes.default_left[rows],
                cover=nodes.cover[rows],
                value=nodes.value[rows, first:last],
                weight=float(ensemble.tree_weights[t]),
                first_output=first,
                is_categorical=is_categorical,
                categories={
                    i - start: nodes.categories[offsets[i] : offsets[i + 1]].tolist()
                    for i in range(start, stop)
                    if nodes.is_categorical[i]
                },
            )
        )
    return trees


# ---------------------------------------------------------------------------
# Histogram gradient boosting
# ---------------------------------------------------------------------------


def _bitset_members(bitset: NDArray[np.uint32]) -> NDArray[np.int64]:
    """Return the codes set in a scikit-learn bitset (bit c % 32 of word c // 32)."""
    words = np.ascontiguousarray(bitset, dtype="<u4").view(np.uint8)
    return np.flatnonzero(np.unpackbits(words, bitorder="little"))


def _is_nan(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _selected_columns(
    selection: Any, n_features: int, preprocessor: Any
) -> NDArray[np.int64]:
    """Convert a ``ColumnTransformer`` column selection to column indices."""
    selection = np.asarray(selection)
    if selection.dtype == np.bool_:
        return np.flatnonzero(selection)
    if selection.dtype.kind in "iu":
        return selection.astype(np.int64) % n_features
    names = [str(name) for name in preprocessor.feature_names_in_]
    return np.asarray([names.index(str(name)) for name in selection], dtype=np.int64)


def _hist_columns(
    model: Any,
) -> tuple[
    NDArray[np.int64], dict[int, NDArray[np.float64] | None], dict[int, list[str]]
]:
    """Map the trees' feature indices back to the columns of ``X``.

    With categorical features, scikit-learn's ``_preprocessor`` puts the
    ordinal-encoded categorical columns first. Returns the column of each
    tree feature index, for each categorical feature index the category
    value of each code (None when categories are strings, which are matched
    by label), and the labels of string categories by column.
    """
    n_features = int(model.n_features_in_)
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is None:
        return np.arange(n_features), {}, {}

    columns = np.full(n_features, -1, dtype=np.int64)
    for name, transformer, selection in preprocessor.transformers_:
        output = preprocessor.output_indices_[name]
        if isinstance(transformer, str) and transformer == "drop":
            continue
        indices = _selected_columns(selection, n_features, preprocessor)
        columns[output] = indices
    if np.any(columns < 0):
        raise ModelFormatError(
            f"{type(model).__name__}: the columns of its preprocessor do not cover "
            f"all {n_features} features. Expected the encoder and numerical "
            f"columns of a fitted HistGradientBoosting model."
        )

    encoder = preprocessor.named_transformers_["encoder"]
    first = preprocessor.output_indices_["encoder"].start
    category_values: dict[int, NDArray[np.float64] | None] = {}
    labels: dict[int, list[str]] = {}
    for offset, categories in enumerate(encoder.categories_):
        index = first + offset
        # The encoder lists NaN last when the training data had it. NaN is a
        # missing value, not a category.
        known = [c for c in categories if not _is_nan(c)]
        if np.asarray(categories).dtype.kind in "biuf":
            values = np.asarray(known, dtype=np.float64)
            if np.any(values != np.trunc(values)):
                raise UnsupportedModelError(
                    f"{type(model).__name__}: categorical feature "
                    f"{_column_name(model, columns[index])} has non-integer "
                    f"categories ({values[values != np.trunc(values)][:3].tolist()}), "
                    f"but fastshap truncates category values to integers. Encode "
                    f"the categories as integers and refit."
                )
            # NOTE: a pandas categorical column with these numeric values
            # reaches the ensemble as category codes, not values, so its rows
            # take wrong branches. Pass such columns as numbers.
            category_values[index] = values
        else:
            category_values[index] = None
            labels[int(columns[index])] = [str(c) for c in known]
    return columns, category_values, labels


def _column_name(model: Any, column: int) -> str:
    names = getattr(model, "feature_names_in_", None)
    return repr(str(names[column])) if names is not None else f"at index {column}"


def _read_hist_tree(
    predictor: Any,
    output: int,
    columns: NDArray[np.int64],
    category_values: dict[int, NDArray[np.float64] | None],
    known_bitsets: NDArray[np.uint32],
    known_index: NDArray[np.uint32],
) -> _Tree:
    """Convert one ``TreePredictor`` of histogram gradient boosting."""
    nodes = predictor.nodes
    is_leaf = nodes["is_leaf"].astype(np.bool_)
    is_categorical = nodes["is_categorical"].astype(np.bool_) & ~is_leaf
    left = np.where(is_leaf, LEAF, nodes["left"].astype(np.int64))
    right = np.where(is_leaf, LEAF, nodes["right"].astype(np.int64))
    default_left = nodes["missing_go_to_left"].astype(np.bool_)
    feature_index = nodes["feature_idx"].astype(np.int64)

    categories: dict[int, list[float]] = {}
    for node in np.flatnonzero(is_categorical):
        index = int(feature_index[node])
        goes_left = _bitset_members(
            predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]]
        )
        known = _bitset_members(known_bitsets[known_index[index]])
        # scikit-learn sends the left set left, the other known codes right,
        # and unknown codes where missing values go. In fastshap's schema the
        # set goes right and everything else (missing values included) left,
        # so the set is the known codes that do not go the missing way.
        # NOTE: fastshap truncates an input to an integer before the lookup.
        # So a fractional value (2.5, or -0.5) takes the branch of category 2
        # (or 0), but scikit-learn treats it as unseen and sends it the
        # missing way.
        if default_left[node]:
            goes_right = np.setdiff1d(known, goes_left)
        else:
            left[node], right[node] = right[node], left[node]
            default_left[node] = True
            goes_right = goes_left
        categories[int(node)] = _category_values(goes_right, category_values.get(index))

    return _Tree(
        left=left,
        right=right,
        feature=np.where(is_leaf, -1, columns[feature_index]),
        threshold=np.where(is_leaf | is_categorical, np.nan, nodes["num_threshold"]),
        default_left=default_left,
        cover=nodes["count"].astype(np.float64),
        value=np.where(is_leaf, nodes["value"], 0.0)[:, None],
        first_output=output,
        is_categorical=is_categorical,
        categories=categories,
    )


def _category_values(
    codes: NDArray[np.int64], values: NDArray[np.float64] | None
) -> list[float]:
    """Translate encoder codes to the category values that ``X`` contains."""
    if values is None:
        return [float(code) for code in codes]
    if len(codes) and codes.max() >= len(values):
        raise ModelFormatError(
            f"a categorical split uses category code {int(codes.max())}, but the "
            f"feature has {len(values)} categories."
        )
    return sorted(float(v) for v in values[codes])


def _parse_hist_gradient_boosting(model: Any) -> _Parsed:
    columns, category_values, labels = _hist_columns(model)
    known_bitsets, known_index = model._bin_mapper.make_known_categories_bitsets()
    trees = [
        _read_hist_tree(
            predictor, output, columns, category_values, known_bitsets, known_index
        )
        for iteration in model._predictors
        for output, predictor in enumerate(iteration)
    ]
    return _Parsed(
        trees=trees,
        base_score=np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1),
        link=_loss_link(model),
        objective=str(model.loss),
        float32_inputs=False,
        categorical_features=labels,
    )


# ---------------------------------------------------------------------------
# Isolation forest
# ---------------------------------------------------------------------------


def _average_path_length(n_samples: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return ``c(n)``, the mean path length of an unsuccessful BST search.

    ``c(n) = 2 H(n - 1) - 2 (n - 1) / n`` for ``n > 2``, ``c(2) = 1`` and
    ``c(n) = 0`` below 2. The harmonic number ``H(i)`` is approximated by
    ``ln(i) + euler_gamma``, as scikit-learn's ``score_samples`` does.
    """
    n = np.asarray(n_samples, dtype=np.float64)
    lengths = np.zeros_like(n)
    lengths[n == 2] = 1.0
    large = n > 2
    lengths[large] = (
        2.0 * (np.log(n[large] - 1.0) + np.euler_gamma)
        - 2.0 * (n[large] - 1.0) / n[large]
    )
    return lengths


def _node_depths(
    left: NDArray[np.int64], right: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Return each node's depth in edges (children come after their parent)."""
    depths = np.zeros(len(left))
    for node in range(len(left)):
        if left[node] != LEAF:
            depths[left[node]] = depths[node] + 1
            depths[right[node]] = depths[node] + 1
    return depths


def _parse_isolation_forest(model: Any) -> _Parsed:
    n_features = int(model.n_features_in_)
    weight = 1.0 / len(model.estimators_)
    trees = []
    for estimator, features in zip(model.estimators_, model.estimators_features_):
        tree = estimator.tree_
        left = np.asarray(tree.children_left, dtype=np.int64)
        right = np.asarray(tree.children_right, dtype=np.int64)
        path_length = _node_depths(left, right) + _average_path_length(
            tree.n_node_samples
        )
        # score_samples indexes the columns only when each tree has fewer
        # than all of them, even if bootstrap_features drew them.
        columns = np.asarray(features) if len(features) != n_features else None
        trees.append(_read_tree(tree, path_length, weight=weight, columns=columns))
    return _Parsed(
        trees=trees,
        base_score=np.zeros(1),
        link="identity",
        objective="isolation_forest_path_length",
        float32_inputs=True,
    )


# ---------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------


def _feature_names(model: Any, n_features: int) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return [f"f{i}" for i in range(n_features)]
    return [str(name) for name in names]


def _pack(parsed: _Parsed, model: Any, missing: float | None) -> TreeEnsemble:
    """Concatenate the parsed trees into a validated ``TreeEnsemble``."""
    trees = parsed.trees
    n_outputs = len(parsed.base_score)
    sizes = [len(tree.left) for tree in trees]
    tree_offsets = np.zeros(len(trees) + 1, dtype=np.int64)
    tree_offsets[1:] = np.cumsum(sizes)
    n_nodes = int(tree_offsets[-1])

    def gather(name: str, dtype: Any) -> NDArray[Any]:
        if not trees:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([getattr(tree, name) for tree in trees]).astype(dtype)

    shift = np.repeat(tree_offsets[:-1], sizes)
    left = gather("left", np.int64)
    right = gather("right", np.int64)
    value = np.zeros((n_nodes, n_outputs))
    tree_outputs = np.zeros((len(trees), 2), dtype=np.int32)
    category_lists: list[list[float]] = []
    is_categorical = np.zeros(n_nodes, dtype=np.bool_)
    for t, tree in enumerate(trees):
        start, stop = int(tree_offsets[t]), int(tree_offsets[t + 1])
        first = tree.first_output
        width = tree.value.shape[1]
        if first + width > n_outputs:
            raise ModelFormatError(
                f"{type(model).__name__}: tree {t} adds to outputs {first} to "
                f"{first + width - 1}, but the model has {n_outputs} outputs."
            )
        value[start:stop, first : first + width] = tree.value
        tree_outputs[t] = (first, first + width)
        if tree.is_categorical is not None:
            is_categorical[start:stop] = tree.is_categorical
        category_lists.extend(tree.categories.get(i, []) for i in range(stop - start))

    category_offsets = np.zeros(n_nodes + 1, dtype=np.int64)
    category_offsets[1:] = np.cumsum([len(c) for c in category_lists])
    nodes = NodeArrays(
        left=np.where(left != LEAF, left + shift, LEAF).astype(np.int32),
        right=np.where(right != LEAF, right + shift, LEAF).astype(np.int32),
        feature=gather("feature", np.int32),
        threshold=gather("threshold", np.float64),
        default_left=gather("default_left", np.bool_),
        cover=gather("cover", np.float64),
        value=value,
        is_categorical=is_categorical,
        category_offsets=category_offsets,
        categories=np.asarray(
            [c for cs in category_lists for c in cs], dtype=np.float64
        ),
    )
    if missing is None:
        missing_value = float("nan")
    elif parsed.float32_inputs:
        missing_value = float(np.float32(missing))
    else:
        missing_value = float(missing)

    n_features = int(model.n_features_in_)
    ensemble = TreeEnsemble(
        nodes=nodes,
        tree_offsets=tree_offsets,
        tree_outputs=tree_outputs,
        tree_weights=np.asarray([tree.weight for tree in trees], dtype=np.float64),
        base_score=np.asarray(parsed.base_score, dtype=np.float64),
        n_features=n_features,
        feature_names=_feature_names(model, n_features),
        decision_type="<=",
        float32_inputs=parsed.float32_inputs,
        missing=missing_value,
        link=parsed.link,
        objective=parsed.objective,
        library="sklearn",
        categorical_features=parsed.categorical_features,
    )
    validate_ensemble(ensemble)
    logger.debug(
        "loaded %d scikit-learn trees (%d nodes) from %s",
        len(trees),
        n_nodes,
        type(model).__name__,
    )
    return ensemble
