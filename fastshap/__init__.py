"""fastshap: exact SHAP values for tree ensembles, fast."""

from fastshap.ensemble import NodeArrays, TreeEnsemble
from fastshap.exceptions import (
    AdditivityError,
    FastshapWarning,
    InteractionValuesNotWrittenWarning,
    ModelFormatError,
    UnsupportedModelError,
)
from fastshap.distributed import rank
from fastshap.explainer import Explainer, explain
from fastshap.explanation import Explanation
from fastshap.models import load_model
from fastshap.tree_explainer import TreeExplainer

__version__ = "0.1.0"

__all__ = [
    "AdditivityError",
    "Explainer",
    "Explanation",
    "FastshapWarning",
    "InteractionValuesNotWrittenWarning",
    "ModelFormatError",
    "NodeArrays",
    "TreeEnsemble",
    "TreeExplainer",
    "UnsupportedModelError",
    "__version__",
    "explain",
    "load_model",
    "rank",
]
