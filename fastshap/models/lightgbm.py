"""LightGBM loader: reads ``Booster.dump_model()``, LightGBM's JSON model dump.

Supported are models of LightGBM 4.x (dump format ``"v4"``), boosted with
``gbdt``, ``dart``, ``goss`` or ``rf``. The objective may be a regression,
binary, ``cross_entropy``, multi-class (``multiclass``, ``multiclassova``),
ranking (``lambdarank``, ``rank_xendcg``), log-link (``poisson``, ``gamma``,
``tweedie``) or custom one. Trees may have numeric splits of every
missing-value type, categorical splits, and a single leaf. Linear trees are
rejected.

How LightGBM 4.x routes a row (``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` in include/LightGBM/tree.h), and how the loader
maps it onto the :class:`~fastshap.TreeEnsemble` schema:

- A numeric split sends ``x`` left when ``x <= threshold``.
- ``missing_type`` ``"NaN"``: NaN follows ``default_left``, and zero is
  compared like any other value.
- ``missing_type`` ``"Zero"``: NaN and zero (``|x| <= 1e-35``) follow
  ``default_left``, so the node gets ``zero_is_missing``.
- ``missing_type`` ``"None"``: NaN is replaced by 0.0 and compared, so NaN
  goes left exactly when ``0.0 <= threshold``. The loader stores that
  direction as the node's ``default_left``, whatever direction the dump stores.
- A categorical split truncates ``x`` toward zero and sends the categories
  listed in its threshold (``"1||3||5"``) left. Everything else goes right:
  NaN, values that truncate to a negative integer, and unlisted categories.
  The schema sends listed categories right, so the loader swaps the
  children and sets ``default_left``, which NaN follows, to the side of the
  unlisted categories.

Covers are ``internal_count`` and ``leaf_count`` (row counts, not hessian
sums), which LightGBM's own ``pred_contrib=True`` uses. LightGBM stores no
intercept: ``boost_from_average`` adds the initial score to the leaves of
the first iteration's trees, so ``base_score`` is 0.

A random forest (``boosting="rf"``) predicts the mean of its trees, but
LightGBM's ``raw_score`` and ``pred_contrib`` output their sum. The loader
divides every leaf by the number of iterations, so the ensemble's raw output
is the mean, which ``predict()`` passes through the link.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from fastshap.ensemble import LEAF, TreeEnsemble, validate_ensemble
from fastshap.exceptions import ModelFormatError, UnsupportedModelError
from fastshap.models._packing import concatenate_trees

logger = logging.getLogger(__name__)

#: LightGBM major versions whose dumps the loader reads (tested with LightGBM 4.7.0).
SUPPORTED_MAJOR_VERSIONS = (4,)

#: ``version`` field of the dumps of LightGBM 4.x.
SUPPORTED_DUMP_VERSIONS = ("v4",)

#: LightGBM objective name (the first word of the dump's ``objective``) ->
#: link from the raw score to ``predict()``.
OBJECTIVE_LINKS = {
    "regression": "identity",
    "regression_l1": "identity",
    "huber": "identity",
    "fair": "identity",
    "quantile": "identity",
    "mape": "identity",
    "lambdarank": "identity",
    "rank_xendcg": "identity",
    "binary": "logit",
    "cross_entropy": "logit",
    "multiclassova": "logit",
    "multiclass": "softmax",
    "poisson": "log",
    "gamma": "log",
    "tweedie": "log",
}

#: The dump has no ``objective`` key when the model was trained with a
#: custom objective function, and ``predict()`` then returns the raw score.
CUSTOM_OBJECTIVE = "custom"

#: Missing-value types of a numeric split in the dump.
MISSING_TYPES = ("None", "Zero", "NaN")


def load_booster(booster: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load a ``lightgbm.Booster``.

    As ``Booster.predict`` does, the ensemble keeps only the trees of the
    first ``booster.best_iteration`` iterations when early stopping set it.

    Raises
    ------
    UnsupportedModelError
        If the installed LightGBM is not 4.x, or the model has a feature that
        fastshap cannot explain exactly (see :func:`load_dump`).
    ValueError
        If ``missing`` is a value other than NaN.
    """
    import lightgbm

    _check_lightgbm_version(lightgbm.__version__)
    best_iteration = int(getattr(booster, "best_iteration", 0) or 0)
    n_iterations = booster.current_iteration()
    if 0 < best_iteration < n_iterations:
        logger.info(
            "explaining the first %d of %d boosting iterations (best_iteration=%d), "
            "as Booster.predict does",
            best_iteration,
            n_iterations,
            best_iteration,
        )
    model_dump = booster.dump_model(num_iteration=best_iteration)
    return load_dump(model_dump, missing=missing, source="LightGBM Booster")


def load_sklearn_model(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load an ``LGBMRegressor``, ``LGBMClassifier``, ``LGBMRanker`` or ``LGBMModel``.

    A model fitted with early stopping is explained as its ``predict`` works:
    with the trees of its first ``best_iteration_`` iterations.
    """
    try:
        booster = model.booster_
    except (ValueError, AttributeError) as error:  # LGBMNotFittedError is both
        raise UnsupportedModelError(
            f"{type(model).__name__} has no trained booster ({error}). "
            f"Call fit() before explaining it."
        ) from error
    return load_booster(booster, missing=missing)


def _check_lightgbm_version(version: str) -> None:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = -1
    if major not in SUPPORTED_MAJOR_VERSIONS:
        raise UnsupportedModelError(
            f"LightGBM {version} is installed, but the LightGBM loader supports "
            f"LightGBM 4.x only. Install a 4.x release (pip install "
            f"'lightgbm>=4,<5')."
        )


def load_dump(
    model_dump: dict, *, missing: float | None = None, source: str = "LightGBM model"
) -> TreeEnsemble:
    """Build a ``TreeEnsemble`` from the dict that ``Booster.dump_model()`` returns.

    Parameters
    ----------
    model_dump : dict
        The output of ``Booster.dump_model()``, or the same JSON parsed.
    missing : float, optional
        Must be None or NaN: LightGBM has no custom missing value. Zero is
        missing where a split's ``missing_type`` is ``"Zero"``.
    source : str, default="LightGBM model"
        Name of the model in error messages.

    Raises
    ------
    UnsupportedModelError
        For linear trees (``linear_tree=True``), objectives whose link fastshap
        does not represent, and dump versions other than ``"v4"``.
    ModelFormatError
        If the dump lacks a key or has an inconsistent tree.
    ValueError
        If ``missing`` is a value other than NaN.
    """
    if missing is not None and not math.isnan(missing):
        raise ValueError(
            f"`missing` must be None or NaN for a LightGBM model, got {missing!r}. "
            f"LightGBM treats only NaN (and zero, in splits with missing_type "
            f"'Zero') as missing. Replace the value with NaN in X instead."
        )
    if not isinstance(model_dump, dict) or "tree_info" not in model_dump:
        raise ModelFormatError(
            f"{source} is not a LightGBM model dump: expected a dict with the key "
            f"'tree_info', as Booster.dump_model() returns."
        )
    version = model_dump.get("version")
    if version not in SUPPORTED_DUMP_VERSIONS:
        raise UnsupportedModelError(
            f"{source} has dump version {version!r}, but the loader reads only "
            f"'v4', which LightGBM 4.x writes. Load the model with LightGBM 4.x."
        )

    objective, link = _objective_link(model_dump.get("objective"), source)
    n_outputs = int(
        _require(model_dump, "num_tree_per_iteration", "the top level", source)
    )
    if n_outputs < 1:
        raise ModelFormatError(
            f"{source}: num_tree_per_iteration is {n_outputs}; expected 1 or more."
        )
    n_features = (
        int(_require(model_dump, "max_feature_idx", "the top level", source)) + 1
    )
    feature_names = [str(name) for name in model_dump.get("feature_names") or []]
    if len(feature_names) != n_features:
        feature_names = [f"Column_{i}" for i in range(n_features)]

    tree_info = model_dump["tree_info"]
    if not isinstance(tree_info, list) or len(tree_info) % n_outputs != 0:
        raise ModelFormatError(
            f"{source}: 'tree_info' must be a list whose length is a multiple of "
            f"num_tree_per_iteration ({n_outputs})."
        )
    n_iterations = len(tree_info) // n_outputs
    # A random forest (boosting="rf") predicts the mean of its iterations.
    average = bool(model_dump.get("average_output")) and n_iterations > 0
    tree_weight = 1.0 / n_iterations if average else 1.0
    weights = np.full(len(tree_info), tree_weight)

    packed = [
        _pack_tree(info, index, n_features, source)
        for index, info in enumerate(tree_info)
    ]
    # Each iteration adds one tree per output, in output order.
    tree_classes = np.arange(len(tree_info), dtype=np.int32) % n_outputs
    tree_outputs = np.stack([tree_classes, tree_classes + 1], axis=1)
    nodes, tree_offsets = concatenate_trees(packed, weights, tree_classes, n_outputs)

    ensemble = TreeEnsemble(
        nodes=nodes,
        tree_offsets=tree_offsets,
        tree_outputs=tree_outputs.astype(np.int32),
        tree_weights=weights,
        base_score=np.zeros(n_outputs),
        n_features=n_features,
        feature_names=feature_names,
        decision_type="<=",
        # LightGBM compares float64 inputs in float64.
        # NOTE: LightGBM's predict() casts a numpy array of any dtype other than
        # float32 or float64 to float32, so integers beyond 2**24 in such an
        # array can take other branches there than in fastshap.
        float32_inputs=False,
        missing=float("nan"),
        link=link,
        objective=objective,
        library="lightgbm",
        categorical_features=_category_labels(model_dump, feature_names),
    )
    validate_ensemble(ensemble)
    logger.debug(
        "loaded %d LightGBM trees (%d iterations, %d outputs) from %s",
        len(tree_info),
        n_iterations,
        n_outputs,
        source,
    )
    return ensemble


def _objective_link(objective: Any, source: str) -> tuple[str, str]:
    """Return the objective's name and link, or raise for one fastshap cannot label."""
    if objective is None:
        return CUSTOM_OBJECTIVE, "identity"
    words = str(objective).split()
    name = words[0] if words else ""
    parameters = dict(word.split(":", 1) for word in words[1:] if ":" in word)
    if name == "regression" and "sqrt" in words[1:]:
        raise UnsupportedModelError(
            f"{source} was trained with reg_sqrt=True, so predict() squares the raw "
            f"score, a link fastshap does not represent. Train without reg_sqrt."
        )
    if name not in OBJECTIVE_LINKS:
        raise UnsupportedModelError(
            f"{source} has objective {name!r}, whose link from raw score to "
            f"prediction fastshap does not represent. Supported objectives are "
            f"{', '.join(sorted(OBJECTIVE_LINKS))} and custom objective functions."
        )
    sigmoid = float(parameters.get("sigmoid", "1"))
    if sigmoid != 1.0:
        raise UnsupportedModelError(
            f"{source} was trained with sigmoid={sigmoid:g}, so its probability is "
            f"1 / (1 + exp(-{sigmoid:g} * raw score)), a link fastshap does not "
            f"represent. Train with sigmoid=1 (the default)."
        )
    return name, OBJECTIVE_LINKS[name]


def _require(mapping: Any, key: str, where: str, source: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ModelFormatError(
            f"{source}: missing key {key!r} in {where}. Expected the output of "
            f"LightGBM's Booster.dump_model()."
        )
    return mapping[key]


def _category_labels(
    model_dump: dict, feature_names: list[str]
) -> dict[int, list[str]]:
    """Match the training DataFrame's category labels to categorical features.

    LightGBM stores the categories of each pandas categorical column of the
    training data under ``pandas_categorical``, in column order, but not
    which columns they belong to. Unordered categorical columns are exactly
    the categorical features (the ones whose ``feature_infos`` list category
    values), so when the counts agree they are matched in order. An ordered
    categorical column is split on numerically, like a numeric column, so
    the columns cannot be matched. Then no labels are set and the category
    codes of X are used as they are.
    """
    pandas_categorical = model_dump.get("pandas_categorical")
    if not pandas_categorical:
        return {}
    infos = model_dump.get("feature_infos") or {}
    categorical_columns = [
        column
        for column, name in enumerate(feature_names)
        if isinstance(infos.get(name), dict) and infos[name].get("values")
    ]
    if len(categorical_columns) != len(pandas_categorical):
        logger.warning(
            "the model has %d categorical features but %d pandas categorical "
            "columns (ordered categoricals or categorical_feature set by hand), so "
            "category labels are not matched: pass DataFrames whose categorical "
            "columns have the training categories in the training order",
            len(categorical_columns),
            len(pandas_categorical),
        )
        return {}
    return {
        column: [str(label) for label in labels]
        for column, labels in zip(categorical_columns, pandas_categorical)
    }


def _pack_tree(info: Any, index: int, n_features: int, source: str) -> dict:
    """Walk one dumped tree from its root and return its nodes in pre-order."""
    where = f"tree {index}"
    root = _require(info, "tree_structure", where, source)
    columns: dict[str, list] = {
        key: []
        for key in (
            "left",
            "right",
            "feature",
            "threshold",
            "default_left",
            "zero_is_missing",
            "cover",
            "leaf_value",
            "is_categorical",
            "categories",
        )
    }
    # Each entry: (dumped node, index of its parent in pre-order, whether it is
    # the parent's left child in fastshap's layout).
    stack: list[tuple[Any, int, bool]] = [(root, -1, False)]
    while stack:
        node, parent, is_left = stack.pop()
        position = len(columns["left"])
        if parent >= 0:
            columns["left" if is_left else "right"][parent] = position
        columns["left"].append(LEAF)
        columns["right"].append(LEAF)
        if not isinstance(node, dict):
            raise ModelFormatError(
                f"{source}: {where} has a node of type {type(node).__name__}; "
                f"expected a JSON object."
            )
        if "split_index" not in node:
            _append_leaf(columns, node, where, source)
            continue
        lightgbm_left = _require(node, "left_child", where, source)
        lightgbm_right = _require(node, "right_child", where, source)
        swap = _append_split(columns, node, n_features, where, source)
        # Push the right child first, so the left subtree comes next in pre-order.
        stack.append((lightgbm_left if swap else lightgbm_right, position, False))
        stack.append((lightgbm_right if swap else lightgbm_left, position, True))
    return columns


def _append_leaf(columns: dict[str, list], node: dict, where: str, source: str) -> None:
    if "leaf_coeff" in node or "leaf_features" in node:
        raise UnsupportedModelError(
            f"{source}: {where} has linear leaves (linear_tree=True). TreeSHAP "
            f"cannot explain linear leaves exactly, because a leaf's output then "
            f"depends on features beyond its path. Train without linear_tree."
        )
    columns["feature"].append(-1)
    columns["threshold"].append(math.nan)
    columns["default_left"].append(False)
    columns["zero_is_missing"].append(False)
    # A tree that is a single leaf has no split, so its cover is never divided.
    columns["cover"].append(float(node.get("leaf_count", 0)))
    columns["leaf_value"].append(float(_require(node, "leaf_value", where, source)))
    columns["is_categorical"].append(False)
    columns["categories"].append([])


def _append_split(
    columns: dict[str, list], node: dict, n_features: int, where: str, source: str
) -> bool:
    """Append one split node and return whether its children are swapped."""
    feature = _require(node, "split_feature", where, source)
    if not isinstance(feature, int) or not 0 <= feature < n_features:
        raise ModelFormatError(
            f"{source}: {where} splits on feature {feature!r}; expected an index "
            f"between 0 and {n_features - 1} (max_feature_idx)."
        )
    decision_type = _require(node, "decision_type", where, source)
    threshold = _require(node, "threshold", where, source)
    columns["feature"].append(feature)
    columns["cover"].append(float(_require(node, "internal_count", where, source)))
    columns["leaf_value"].append(0.0)

    if decision_type == "==":
        categories = [int(code) for code in str(threshold).split("||") if code != ""]
        columns["threshold"].append(math.nan)
        # NaN goes where the unlisted categories go: LightGBM's right child,
        # which becomes fastshap's left child.
        columns["default_left"].append(True)
        columns["zero_is_missing"].append(False)
        columns["is_categorical"].append(True)
        columns["categories"].append(categories)
        return True

    if decision_type != "<=":
        raise ModelFormatError(
            f"{source}: {where} has decision_type {decision_type!r}; expected "
            f"'<=' (numeric) or '==' (categorical)."
        )
    missing_type = node.get("missing_type", "None")
    if missing_type not in MISSING_TYPES:
        raise ModelFormatError(
            f"{source}: {where} has missing_type {missing_type!r}; expected one "
            f"of {', '.join(MISSING_TYPES)}."
        )
    threshold = float(threshold)
    if missing_type == "None":
        # LightGBM compares NaN as 0.0, so NaN goes where zero goes.
        default_left = 0.0 <= threshold
    else:
        default_left = bool(_require(node, "default_left", where, source))
    columns["threshold"].append(threshold)
    columns["default_left"].append(default_left)
    columns["zero_is_missing"].append(missing_type == "Zero")
    columns["is_categorical"].append(False)
    columns["categories"].append([])
    return False
