"""Input and model errors: the type, and a message that names the problem and the fix."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fastshap
from fastshap import ModelFormatError, UnsupportedModelError

xgb = pytest.importorskip("xgboost")


@pytest.fixture(scope="module")
def small_model():
    """An XGBRegressor on the named columns a, b, c, with its data."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    model = xgb.XGBRegressor(n_estimators=3, max_depth=2, n_jobs=1)
    model.fit(frame, frame["a"] + frame["b"])
    return model, frame


# ---------------------------------------------------------------------------
# X
# ---------------------------------------------------------------------------


def test_wrong_number_of_features(small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame.to_numpy()[:, :2])

    message = str(error.value)
    assert "`X` has 2 features" in message
    assert "trained on 3" in message
    assert "same columns" in message


def test_one_dimensional_x(small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame.to_numpy()[0])

    message = str(error.value)
    assert "`X` must be 2-D" in message
    assert "(3,)" in message
    assert "X.reshape(1, -1)" in message


def test_three_dimensional_x(small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame.to_numpy()[None])

    message = str(error.value)
    assert "`X` must be 2-D" in message
    assert "(1, 100, 3)" in message


@pytest.mark.parametrize("dtype", [str, object, complex])
def test_non_numeric_array(dtype, small_model):
    model, frame = small_model

    rows = frame.to_numpy().astype(dtype)

    with pytest.raises(TypeError) as error:
        fastshap.explain(model, rows)

    message = str(error.value)
    assert "`X` must have a numeric dtype" in message
    assert str(rows.dtype) in message
    assert "X.astype(float)" in message


def test_string_column(small_model):
    model, frame = small_model
    rows = frame.assign(b=frame["b"].astype(str))

    with pytest.raises(TypeError) as error:
        fastshap.explain(model, rows)

    message = str(error.value)
    assert "column 'b'" in message
    assert "pd.to_numeric" in message
    assert "category" in message


def test_object_column(small_model):
    model, frame = small_model
    rows = frame.assign(c=frame["c"].astype(object))

    with pytest.raises(TypeError, match="column 'c'"):
        fastshap.explain(model, rows)


def test_pandas_series(small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame["a"])

    message = str(error.value)
    assert "pandas Series" in message
    assert "to_frame().T" in message


def test_missing_column(small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame[["a", "b"]])

    message = str(error.value)
    assert "missing columns ['c']" in message
    assert "unexpected" not in message
    assert "Pass every feature the model was trained on" in message


def test_extra_column(small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame.assign(z=1.0))

    message = str(error.value)
    assert "unexpected columns ['z']" in message
    assert "missing columns" not in message
    assert "X[['a', 'b', 'c']]" in message


def test_renamed_columns(small_model):
    """Columns with other names are an error, never matched by position."""
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, pd.DataFrame(frame.to_numpy()))

    message = str(error.value)
    assert "missing columns ['a', 'b', 'c']" in message
    assert "unexpected columns ['0', '1', '2']" in message


def test_duplicated_columns(small_model):
    model, frame = small_model
    rows = pd.concat([frame, frame[["a"]]], axis=1)

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, rows)

    message = str(error.value)
    assert "duplicated column names: ['a']" in message
    assert "Rename" in message


def test_sparse_matrix(small_model):
    sparse = pytest.importorskip("scipy.sparse")
    model, frame = small_model

    with pytest.raises(TypeError) as error:
        fastshap.explain(model, sparse.csr_matrix(frame.to_numpy()))

    message = str(error.value)
    assert "numpy array or a pandas DataFrame" in message
    assert "csr_matrix" in message


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def test_plain_object_model():
    with pytest.raises(UnsupportedModelError) as error:
        fastshap.explain(object(), np.zeros((2, 3)))

    message = str(error.value)
    assert "builtins.object" in message
    assert "xgboost.core.Booster" in message
    assert "fastshap.TreeEnsemble" in message


def test_linear_regression_model():
    linear_model = pytest.importorskip("sklearn.linear_model")
    X = np.random.default_rng(0).normal(size=(20, 3))
    model = linear_model.LinearRegression().fit(X, X[:, 0])

    with pytest.raises(UnsupportedModelError) as error:
        fastshap.explain(model, X)

    message = str(error.value)
    assert "LinearRegression" in message
    assert "is not supported" in message


def test_unsupported_model_is_type_error():
    """UnsupportedModelError subclasses TypeError, so generic handlers catch it."""
    with pytest.raises(TypeError):
        fastshap.explain(object(), np.zeros((2, 3)))


def test_unfitted_xgbregressor():
    with pytest.raises(UnsupportedModelError) as error:
        fastshap.explain(xgb.XGBRegressor(), np.zeros((2, 3)))

    message = str(error.value)
    assert "XGBRegressor" in message
    assert "fit()" in message


def test_gblinear_model():
    X = np.random.default_rng(0).normal(size=(50, 3))
    booster = xgb.train(
        {"booster": "gblinear", "nthread": 1}, xgb.DMatrix(X, X[:, 0], nthread=1), 3
    )

    with pytest.raises(UnsupportedModelError) as error:
        fastshap.explain(booster, X)

    message = str(error.value)
    assert "gblinear" in message
    assert "booster='gbtree'" in message


def test_vector_leaf_model():
    X = np.random.default_rng(0).normal(size=(100, 3))
    Y = np.column_stack([X[:, 0], X[:, 1]])
    params = {
        "tree_method": "hist", "multi_strategy": "multi_output_tree",
        "max_depth": 2, "nthread": 1,
    }
    booster = xgb.train(params, xgb.DMatrix(X, Y, nthread=1), 2)

    with pytest.raises(UnsupportedModelError) as error:
        fastshap.explain(booster, X)

    message = str(error.value)
    assert "vector leaves" in message
    assert "multi_strategy='one_output_per_tree'" in message


# ---------------------------------------------------------------------------
# Model files
# ---------------------------------------------------------------------------


def test_garbage_json_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("{not json")

    with pytest.raises(ModelFormatError) as error:
        fastshap.explain(path, np.zeros((1, 3)))

    message = str(error.value)
    assert str(path) in message
    assert "not valid JSON" in message
    assert "save_model" in message


def test_empty_json_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("")

    with pytest.raises(ModelFormatError, match="not valid JSON"):
        fastshap.explain(path, np.zeros((1, 3)))


def test_truncated_json_file(tmp_path, small_model):
    model, frame = small_model
    text = model.get_booster().save_raw(raw_format="json").decode()
    path = tmp_path / "model.json"
    path.write_text(text[: len(text) // 2])

    with pytest.raises(ModelFormatError, match="not valid JSON"):
        fastshap.explain(path, frame)


def test_garbage_ubj_file(tmp_path):
    path = tmp_path / "model.ubj"
    path.write_bytes(b"\x00\x01 not a model")

    with pytest.raises(ModelFormatError) as error:
        fastshap.explain(path, np.zeros((1, 3)))

    message = str(error.value)
    assert str(path) in message
    assert "could not be read" in message
    assert "save_model" in message


def test_missing_model_file(tmp_path):
    path = tmp_path / "absent.json"

    with pytest.raises(FileNotFoundError) as error:
        fastshap.explain(path, np.zeros((1, 3)))

    message = str(error.value)
    assert str(path) in message
    assert "not found" in message


@pytest.mark.parametrize("suffix", [".txt", ".model", ".pkl", ""])
def test_unsupported_file_suffix(suffix, tmp_path):
    path = tmp_path / f"model{suffix}"
    path.write_text("x")

    with pytest.raises(UnsupportedModelError) as error:
        fastshap.explain(path, np.zeros((1, 3)))

    message = str(error.value)
    assert repr(suffix) in message
    assert "'.json'" in message
    assert "'.ubj'" in message


@pytest.mark.parametrize(
    "content", ["[1, 2, 3]", '"model"', '{"a": 1}'], ids=["list", "string", "object"]
)
def test_json_not_a_model(content, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(content)

    with pytest.raises(ModelFormatError) as error:
        fastshap.explain(path, np.zeros((1, 3)))

    assert str(path) in str(error.value)


def _edited_model_file(tmp_path, small_model, edit):
    model, _ = small_model
    model_json = json.loads(model.get_booster().save_raw(raw_format="json"))
    edit(model_json["learner"]["gradient_booster"]["model"]["trees"][0])
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model_json))
    return path


def test_json_tree_missing_key(tmp_path, small_model):
    path = _edited_model_file(
        tmp_path, small_model, lambda tree: tree.pop("left_children")
    )

    with pytest.raises(ModelFormatError) as error:
        fastshap.explain(path, small_model[1])

    assert "left_children" in str(error.value)


def test_json_tree_child_out_of_range(tmp_path, small_model):
    def point_outside(tree):
        tree["left_children"][0] = len(tree["left_children"]) + 10

    path = _edited_model_file(tmp_path, small_model, point_outside)

    with pytest.raises(ModelFormatError):
        fastshap.explain(path, small_model[1])


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["fast", "Interventional", "", None])
def test_invalid_algorithm(algorithm, small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame, algorithm=algorithm)

    message = str(error.value)
    assert "`algorithm` must be one of" in message
    assert "'tree_path_dependent'" in message
    assert repr(algorithm) in message


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, "2", True])
def test_invalid_n_jobs(n_jobs, small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame, n_jobs=n_jobs)

    message = str(error.value)
    assert "`n_jobs` must be a positive number of threads" in message
    assert "None or -1" in message
    assert repr(n_jobs) in message


def test_n_jobs_minus_one_means_all_cores(small_model):
    model, frame = small_model

    everything = fastshap.explain(model, frame, n_jobs=-1)
    one = fastshap.explain(model, frame, n_jobs=1)

    np.testing.assert_array_equal(everything.values, one.values)


@pytest.mark.parametrize("missing", ["x", "-999", True, [1.0]])
def test_invalid_missing(missing, small_model):
    model, frame = small_model

    with pytest.raises(TypeError) as error:
        fastshap.explain(model, frame, missing=missing)

    message = str(error.value)
    assert "`missing` must be a number" in message
    assert repr(missing) in message


@pytest.mark.parametrize("check_additivity", ["no", 0, None])
def test_invalid_check_additivity(check_additivity, small_model):
    model, frame = small_model

    with pytest.raises(TypeError, match=r"`check_additivity` must be True or False"):
        fastshap.explain(model, frame, check_additivity=check_additivity)


@pytest.mark.parametrize("progress", [5, "bar"])
def test_invalid_progress(progress, small_model):
    model, frame = small_model

    with pytest.raises(TypeError) as error:
        fastshap.explain(model, frame, progress=progress)

    message = str(error.value)
    assert "`progress` must be a function" in message
    assert repr(progress) in message


@pytest.mark.parametrize("block_rows", [0, -5, None, 2.0, False])
def test_invalid_block_rows(block_rows, small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.explain(model, frame, block_rows=block_rows)

    message = str(error.value)
    assert "`block_rows` must be a positive integer" in message
    assert repr(block_rows) in message


@pytest.mark.parametrize("memory_limit", [-1, "abc", 1.5, "12 parsecs", None])
def test_invalid_memory_limit(memory_limit, small_model):
    model, frame = small_model

    with pytest.raises(ValueError) as error:
        fastshap.Explainer(model, memory_limit=memory_limit)

    message = str(error.value)
    assert "`memory_limit`" in message
    assert "'512MiB'" in message
    assert repr(memory_limit) in message


def test_valid_arguments_accepted(small_model):
    """The boundaries of every argument check are accepted."""
    model, frame = small_model

    explanation = fastshap.explain(
        model, frame, algorithm="tree_path_dependent", n_jobs=1, block_rows=1,
        memory_limit="1MiB",
    )

    assert explanation.values.shape == (100, 3)


def test_explain_tables_only_for_enough_rows(small_model, caplog):
    """One-shot explain() skips building tables for fewer than MIN_TABLE_ROWS rows."""
    from fastshap.explainer import MIN_TABLE_ROWS

    model, frame = small_model
    rows = pd.concat([frame] * 3, ignore_index=True)
    assert len(rows) >= MIN_TABLE_ROWS

    with caplog.at_level("INFO", logger="fastshap.explainer"):
        few = fastshap.explain(model, rows.iloc[:10])
        many = fastshap.explain(model, rows)

    prepared = [r.getMessage() for r in caplog.records if r.getMessage().startswith("prepared")]
    assert ": 0 from tables" in prepared[0]
    assert ": 0 from tables" not in prepared[1]
    np.testing.assert_allclose(few.values, many.values[:10], rtol=0, atol=1e-12)
