"""Shared fixtures and the one comparison helper of the test suite."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Makes `import reference` work from every test module, however pytest is run.
sys.path.insert(0, str(Path(__file__).parent))

#: Float32 unit roundoff (half the spacing of float32 numbers at 1.0).
FLOAT32_ROUNDOFF = 2.0**-24


def assert_shap_close(
    explanation,
    expected_values,
    expected_base,
    margin,
    atol: float = 1e-9,
    additivity_atol: float | None = None,
) -> None:
    """Check an explanation against reference values and its own additivity.

    Parameters
    ----------
    explanation : fastshap.Explanation
        The result under test.
    expected_values : array of shape (n_rows, n_features[, n_outputs])
        Reference SHAP values, with the output axis exactly when the
        explanation should have one.
    expected_base : array-like of shape (n_outputs,)
        Reference expected value of each output.
    margin : array of shape (n_rows,) or (n_rows, n_outputs)
        Raw model output that each row's values plus the base value must
        add up to.
    atol : float
        Absolute tolerance of values and base values.
    additivity_atol : float, optional
        Absolute tolerance of the sum against ``margin``; ``atol`` by default.
    """
    values = explanation.values
    base = explanation.base_values
    expected_values = np.asarray(expected_values, dtype=np.float64)
    expected_base = np.atleast_1d(np.asarray(expected_base, dtype=np.float64))
    if additivity_atol is None:
        additivity_atol = atol

    assert isinstance(values, np.ndarray), type(values)
    assert values.dtype == np.float64, values.dtype
    assert values.shape == expected_values.shape, (values.shape, expected_values.shape)
    assert np.all(np.isfinite(values)), "values contain NaN or infinity"
    np.testing.assert_allclose(values, expected_values, rtol=0, atol=atol, err_msg="values")

    assert isinstance(base, np.ndarray), type(base)
    assert base.dtype == np.float64, base.dtype
    assert base.shape == expected_base.shape, (base.shape, expected_base.shape)
    np.testing.assert_allclose(base, expected_base, rtol=0, atol=atol, err_msg="base_values")

    n_outputs = len(expected_base)
    total = values.sum(axis=1) + base if values.ndim == 3 else values.sum(axis=1) + base[0]
    margin = np.asarray(margin, dtype=np.float64)
    if values.ndim == 2 and margin.ndim == 2:
        assert margin.shape[1] == 1, margin.shape
        margin = margin[:, 0]
    assert total.shape == margin.shape, (total.shape, margin.shape, n_outputs)
    np.testing.assert_allclose(
        total, margin, rtol=0, atol=additivity_atol, err_msg="values summed plus base"
    )


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, new for each test."""
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def named_regression():
    """An XGBRegressor trained on a DataFrame with named columns, and its data.

    Feature ``a`` has the largest effect, ``b`` a smaller one, ``c`` a small
    one, and ``d`` none.
    """
    xgb = pytest.importorskip("xgboost")
    generator = np.random.default_rng(7)
    frame = pd.DataFrame(generator.normal(size=(400, 4)), columns=["a", "b", "c", "d"])
    target = 3.0 * frame["a"] + frame["b"] ** 2 + 0.3 * frame["c"]
    model = xgb.XGBRegressor(n_estimators=20, max_depth=3, random_state=0)
    model.fit(frame, target)
    return model, frame


@pytest.fixture(scope="session")
def multiclass_model():
    """An XGBClassifier with 3 classes on 4 unnamed features, and its data."""
    xgb = pytest.importorskip("xgboost")
    generator = np.random.default_rng(8)
    X = generator.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0)
    model.fit(X, y)
    return model, X
