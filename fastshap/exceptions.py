"""Exceptions and warnings raised by fastshap."""


class UnsupportedModelError(TypeError):
    """The model's type, or a feature of it, cannot be explained exactly."""


class ModelFormatError(ValueError):
    """A model file or serialised model could not be read."""


class AdditivityError(RuntimeError):
    """SHAP values plus the base value do not add up to the model's output."""


class FastshapWarning(UserWarning):
    """Base class of fastshap's warnings."""


class InteractionValuesNotWrittenWarning(FastshapWarning):
    """An Explanation with interaction values was written without them."""
