"""XGBoost loader: reads the booster's JSON model (the public schema of
``Booster.save_raw(raw_format="json")`` and ``save_model("model.json")``).

Supported: XGBoost 2.0 to 3.x models, ``gbtree`` and ``dart`` boosters,
regression, binary, multi-class and multi-target objectives with one output
per tree, numeric and categorical splits, NaN and a custom ``missing`` value.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import numpy as np

from fastshap.ensemble import LEAF, TreeEnsemble, validate_ensemble
from fastshap.exceptions import ModelFormatError, UnsupportedModelError
from fastshap.models._packing import concatenate_trees

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_VERSIONS = ((2, 0), (4, 0))

#: Objectives whose base_score is stored as a probability (logit link).
LOGIT_OBJECTIVES = {"binary:logistic", "reg:logistic"}
#: Objectives whose base_score is stored in output space of a log link.
LOG_OBJECTIVES = {
    "count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"
}
SOFTMAX_OBJECTIVES = {"multi:softprob", "multi:softmax"}
#: Objectives whose base_score is already a raw margin.
IDENTITY_OBJECTIVES = {
    "reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:quantileerror", "reg:linear", "binary:logitraw",
    "binary:hinge", "rank:pairwise", "rank:ndcg", "rank:map",
}


def load_booster(booster: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load an ``xgboost.Booster``."""
    raw = booster.save_raw(raw_format="json")
    return load_json(json.loads(bytes(raw)), missing=missing)


def load_sklearn_model(model: Any, *, missing: float | None = None) -> TreeEnsemble:
    """Load an ``XGBRegressor``, ``XGBClassifier`` or other ``XGBModel``.

    The model's own ``missing`` parameter is used unless ``missing`` is given.
    A model fitted with early stopping is explained as its ``predict`` works:
    with the trees of its first ``best_iteration + 1`` boosting rounds.
    """
    try:
        booster = model.get_booster()
    except Exception as error:  # xgboost raises NotFittedError (a ValueError) or XGBoostError
        raise UnsupportedModelError(
            f"{type(model).__name__} has no trained booster ({error}). "
            f"Call fit() before explaining it."
        ) from error
    best_iteration = _best_iteration(model)
    if best_iteration is not None and best_iteration + 1 < booster.num_boosted_rounds():
        logger.info(
            "explaining the first %d of %d boosting rounds (best_iteration=%d), "
            "as %s.predict does",
            best_iteration + 1, booster.num_boosted_rounds(), best_iteration,
            type(model).__name__,
        )
        booster = booster[: best_iteration + 1]
    if missing is None:
        missing = getattr(model, "missing", None)
    return load_booster(booster, missing=missing)


def _best_iteration(model: Any) -> int | None:
    """Return the early-stopping round the sklearn wrapper predicts with, if any."""
    try:
        # XGBModel.best_iteration raises AttributeError without early stopping.
        best = model.best_iteration
    except AttributeError:
        return None
    return None if best is None else int(best)


def load_file(path: str, *, missing: float | None = None) -> TreeEnsemble:
    """Load an XGBoost model file (``.json`` directly, ``.ubj`` through xgboost)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"model file {path!r} not found. Check the path, or save the model "
            f"with booster.save_model({path!r})."
        )
    if path.lower().endswith(".json"):
        try:
            with open(path, "rb") as handle:
                model_json = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelFormatError(
                f"model file {path!r} is not valid JSON ({error}). Save the "
                f"model with booster.save_model('model.json')."
            ) from error
        return load_json(model_json, missing=missing, source=path)

    import xgboost

    booster = xgboost.Booster()
    try:
        booster.load_model(path)
    except xgboost.core.XGBoostError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ModelFormatError(
            f"model file {path!r} could not be read by xgboost {xgboost.__version__}"
            f" ({first_line}). Save the model with booster.save_model('model.ubj')."
        ) from error
    return load_booster(booster, missing=missing)


def _parse_base_score(text: str | float) -> list[float]:
    if isinstance(text, (int, float)):
        return [float(text)]
    text = text.strip()
    if text.startswith("["):
        return [float(v) for v in json.loads(text)]
    return [float(text)]


def _margin_base_score(base: list[float], objective: str) -> list[float]:
    """Convert the stored base_score into raw (margin) space."""
    if objective in LOGIT_OBJECTIVES:
        return [math.log(b / (1.0 - b)) for b in base]
    if objective in LOG_OBJECTIVES:
        return [math.log(b) for b in base]
    return base


def _link(objective: str) -> str:
    if objective in LOGIT_OBJECTIVES:
        return "logit"
    if objective in SOFTMAX_OBJECTIVES:
        return "softmax"
    if objective in LOG_OBJECTIVES:
        return "log"
    return "identity"


def _require(mapping: dict, key: str, where: str, source: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ModelFormatError(
            f"{source}: missing key {key!r} in {where}. Expected an XGBoost JSON "
            f"model as written by booster.save_model('model.json')."
        )
    return mapping[key]


def _category_labels(model: dict, n_features: int) -> dict[int, list[str]]:
    """Read the category labels that XGBoost 3.1+ stores under ``cats``."""
    cats = model.get("cats")
    if not cats or not cats.get("enc"):
        return {}
    labels: dict[int, list[str]] = {}
    for column, encoding in enumerate(cats["enc"][:n_features]):
        offsets = encoding.get("offsets") or []
        values = encoding.get("values") or []
        if offsets:
            data = bytes(values)
            labels[column] = [
                data[offsets[i]:offsets[i + 1]].decode("utf-8", "replace")
                for i in range(len(offsets) - 1)
            ]
        elif values:
            labels[column] = [str(v) for v in values]
    return labels


def load_json(
    model_json: dict, *, missing: float | None = None, source: str = "XGBoost model"
) -> TreeEnsemble:
    """Build a ``TreeEnsemble`` from a parsed XGBoost JSON model."""
    if not isinstance(model_json, dict) or "learner" not in model_json:
        raise ModelFormatError(
            f"{source} is not an XGBoost model: expected a JSON object with the "
            f"key 'learner', got {_describe_json(model_json)}. Save the model with "
            f"booster.save_model('model.json')."
        )
    version = _require(model_json, "version", "the top level", source)
    if (
        not isinstance(version, list)
        or len(version) < 2
        or not all(isinstance(v, int) for v in version[:2])
    ):
        raise ModelFormatError(
            f"{source}: 'version' is {version!r}; expected the XGBoost version "
            f"that saved the model, such as [3, 0, 0]."
        )
    version = tuple(version[:2])
    low, high = SUPPORTED_MODEL_VERSIONS
    if not low <= version < high:
        raise UnsupportedModelError(
            f"{source} was saved by XGBoost {'.'.join(map(str, version))}; "
            f"supported are XGBoost {low[0]}.{low[1]} up to but excluding "
            f"{high[0]}.{high[1]}. Re-save the model with a supported XGBoost."
        )
    learner = _require(model_json, "learner", "the top level", source)
    params = _require(learner, "learner_model_param", "learner", source)
    objective = _require(learner, "objective", "learner", source)["name"]
    known = LOGIT_OBJECTIVES | LOG_OBJECTIVES | SOFTMAX_OBJECTIVES | IDENTITY_OBJECTIVES
    if objective not in known:
        # The objective decides how base_score maps to the margin, so an
        # unknown one would give a wrong base value.
        raise UnsupportedModelError(
            f"{source} has objective {objective!r}, which fastshap does not know; "
            f"supported are {sorted(known)}."
        )
    booster = _require(learner, "gradient_booster", "learner", source)
    kind = booster.get("name")
    if kind == "gblinear":
        raise UnsupportedModelError(
            f"{source} is a linear booster (booster='gblinear'); TreeSHAP "
            f"explains tree models only. Train with booster='gbtree' or 'dart'."
        )
    if kind == "dart":
        model = _require(_require(booster, "gbtree", "dart booster", source), "model", "gbtree", source)
        weights = np.asarray(booster.get("weight_drop", []), dtype=np.float64)
    elif kind == "gbtree":
        model = _require(booster, "model", "gradient_booster", source)
        # XGBoost 3.4 saves dropout (DART) models as gbtree, with the tree
        # weights inside the model; older versions have no weights here.
        weights = model.get("weight_drop")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
    else:
        raise UnsupportedModelError(
            f"{source} uses booster {kind!r}; supported are 'gbtree' and 'dart'."
        )

    trees = _require(model, "trees", "model", source)
    if not isinstance(trees, list):
        raise ModelFormatError(
            f"{source}: 'trees' is {_describe_json(trees)}; expected a list of trees."
        )
    tree_info = np.asarray(model.get("tree_info", [0] * len(trees)), dtype=np.int32)
    if weights is None or len(weights) != len(trees):
        weights = np.ones(len(trees))

    n_features = int(params.get("num_feature", 0))
    n_outputs = max(int(params.get("num_class", 0)), int(params.get("num_target", 1)), 1)
    base = _parse_base_score(params.get("base_score", "0.5"))
    if len(base) == 1 and n_outputs > 1:
        base = base * n_outputs
    if len(base) != n_outputs:
        raise ModelFormatError(
            f"{source}: base_score has {len(base)} values but the model has "
            f"{n_outputs} outputs."
        )
    base_score = np.asarray(_margin_base_score(base, objective), dtype=np.float64)

    feature_names = list(learner.get("feature_names") or [])
    if not feature_names:
        feature_names = [f"f{i}" for i in range(n_features)]
    feature_types = list(learner.get("feature_types") or [])

    packed = [_pack_tree(tree, t, source) for t, tree in enumerate(trees)]
    nodes, tree_offsets = concatenate_trees(packed, weights, tree_info, n_outputs)
    tree_outputs = np.stack([tree_info, tree_info + 1], axis=1).astype(np.int32)
    if len(trees) == 0:
        tree_outputs = np.zeros((0, 2), dtype=np.int32)

    ensemble = TreeEnsemble(
        nodes=nodes,
        tree_offsets=tree_offsets,
        tree_outputs=tree_outputs,
        tree_weights=weights,
        base_score=base_score,
        n_features=n_features,
        feature_names=feature_names,
        decision_type="<",
        float32_inputs=True,
        missing=float("nan") if missing is None else float(np.float32(missing)),
        link=_link(objective),
        objective=objective,
        library="xgboost",
        categorical_features={
            column: labels
            for column, labels in _category_labels(model, n_features).items()
            if column < len(feature_types) and feature_types[column] == "c"
        },
    )
    validate_ensemble(ensemble)
    logger.debug("loaded %d XGBoost trees from %s", len(trees), source)
    return ensemble


def _describe_json(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:5])
        return f"an object with keys {keys}" if value else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return f"a {type(value).__name__} ({str(value)[:40]!r})"


#: Per-node arrays of an XGBoost JSON tree that the loader reads.
_TREE_ARRAYS = (
    "left_children", "right_children", "split_indices", "split_conditions",
    "default_left", "sum_hessian",
)


def _check_tree(tree: Any, index: int, source: str) -> None:
    """Raise ModelFormatError unless ``tree`` has consistent node arrays."""
    where = f"tree {index}"
    if not isinstance(tree, dict):
        raise ModelFormatError(
            f"{source}: {where} is {_describe_json(tree)}; expected a JSON object."
        )
    for key in _TREE_ARRAYS:
        array = _require(tree, key, where, source)
        if not isinstance(array, list) or len(array) != len(tree["left_children"]):
            raise ModelFormatError(
                f"{source}: {where} has {key!r} of {_describe_json(array)}; expected "
                f"a list with one entry per node ({len(tree['left_children'])})."
            )
    n_nodes = len(tree["left_children"])
    if n_nodes == 0:
        raise ModelFormatError(f"{source}: {where} has no nodes.")
    for node, left in enumerate(tree["left_children"]):
        if left == -1:
            continue  # a leaf: its right_children entry is not read
        for side, child in (("left", left), ("right", tree["right_children"][node])):
            if not isinstance(child, int) or not 0 < child < n_nodes or child == node:
                raise ModelFormatError(
                    f"{source}: {where} node {node} has {side} child {child!r}; "
                    f"expected -1 (a leaf) or the index of another node, between "
                    f"1 and {n_nodes - 1}."
                )
    n_features_used = max(tree["split_indices"], default=0)
    if not isinstance(n_features_used, int) or n_features_used < 0:
        raise ModelFormatError(
            f"{source}: {where} has split index {n_features_used!r}; expected "
            f"feature indices >= 0."
        )


def _pack_tree(tree: dict, index: int, source: str) -> dict:
    """Walk one tree from its root and return its nodes in pre-order.

    Pruned nodes stay in XGBoost's arrays but cannot be reached from the root,
    so walking from the root drops them.
    """
    tree_param = tree.get("tree_param", {}) if isinstance(tree, dict) else {}
    size_leaf_vector = int(tree_param.get("size_leaf_vector", "1"))
    if size_leaf_vector > 1:
        raise UnsupportedModelError(
            f"{source}: tree {index} has vector leaves (size_leaf_vector="
            f"{size_leaf_vector}), which multi_strategy='multi_output_tree' "
            f"produces. Train with multi_strategy='one_output_per_tree'."
        )
    _check_tree(tree, index, source)
    left = tree["left_children"]
    right = tree["right_children"]
    split_type = tree.get("split_type") or [0] * len(left)
    categories = tree.get("categories") or []
    category_sets = {
        node: categories[segment:segment + size]
        for node, segment, size in zip(
            tree.get("categories_nodes") or [],
            tree.get("categories_segments") or [],
            tree.get("categories_sizes") or [],
        )
    }

    order = []
    seen = set()
    stack = [0]
    while stack:
        node = stack.pop()
        if node in seen:
            raise ModelFormatError(
                f"{source}: tree {index} reaches node {node} twice; expected a "
                f"tree, in which each node has one parent."
            )
        seen.add(node)
        order.append(node)
        if left[node] != -1:
            stack.append(right[node])
            stack.append(left[node])
    position = {node: i for i, node in enumerate(order)}

    packed_left = np.full(len(order), LEAF, dtype=np.int64)
    packed_right = np.full(len(order), LEAF, dtype=np.int64)
    is_categorical = np.zeros(len(order), dtype=bool)
    node_categories = []
    for i, node in enumerate(order):
        if left[node] != -1:
            packed_left[i] = position[left[node]]
            packed_right[i] = position[right[node]]
        if left[node] != -1 and split_type[node] == 1:
            is_categorical[i] = True
            node_categories.append(category_sets.get(node, []))
        else:
            node_categories.append([])

    index_array = np.asarray(order)
    internal = packed_left != LEAF
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32)[index_array]
    return {
        "left": packed_left,
        "right": packed_right,
        "feature": np.where(internal, np.asarray(tree["split_indices"])[index_array], -1),
        "threshold": np.where(internal, conditions, np.nan).astype(np.float64),
        "default_left": np.asarray(tree["default_left"], dtype=bool)[index_array],
        "cover": np.asarray(tree["sum_hessian"], dtype=np.float64)[index_array],
        "leaf_value": np.where(internal, 0.0, conditions).astype(np.float64),
        "is_categorical": is_categorical,
        "categories": node_categories,
    }
