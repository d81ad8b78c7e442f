"""Explanation: rankings, per-row reasons, tables and the conversion to shap.

Every ranking is checked against mean |SHAP| computed here with numpy from
``Explanation.values``, so these tests pin the tables, not the kernels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastshap

RANK_COLUMNS = ["feature", "rank", "mean_abs_shap", "share", "mean_shap", "sign"]


# ---------------------------------------------------------------------------
# Fixtures and references
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regression_explanation(named_regression):
    """Explanation of 200 rows of the a, b, c, d regression, with a shifted index."""
    model, frame = named_regression
    rows = frame.iloc[100:300]
    return fastshap.explain(model, rows)


@pytest.fixture(scope="module")
def multiclass_explanation(multiclass_model):
    """Explanation of 120 rows of the 3-class model, from a numpy array."""
    model, X = multiclass_model
    return fastshap.explain(model, X[:120])


@pytest.fixture
def pyplot():
    """matplotlib.pyplot on the Agg backend, with every figure closed afterwards."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def segment_labels(n_rows: int) -> np.ndarray:
    """Three segments of unequal sizes, interleaved over the rows."""
    return np.asarray(["north", "south", "east", "north", "south"] * n_rows)[:n_rows]


def expected_rank(values: np.ndarray, feature_names: list[str]) -> pd.DataFrame:
    """Rank table computed directly: descending mean |SHAP|, ties by feature name."""
    mean_abs = np.abs(values).mean(axis=0)
    mean = values.mean(axis=0)
    order = np.lexsort((np.asarray(feature_names), -mean_abs))
    return pd.DataFrame(
        {
            "feature": np.asarray(feature_names)[order],
            "rank": np.arange(1, len(order) + 1),
            "mean_abs_shap": mean_abs[order],
            "share": mean_abs[order] / mean_abs.sum(),
            "mean_shap": mean[order],
            "sign": np.where(mean > 0, "+", np.where(mean < 0, "-", "0"))[order],
        }
    )


def assert_rank_equal(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Compare a rank table with :func:`expected_rank`, column by column."""
    assert len(table) == len(expected)
    assert table["feature"].tolist() == expected["feature"].tolist()
    assert table["rank"].tolist() == expected["rank"].tolist()
    for column in ("mean_abs_shap", "share", "mean_shap"):
        np.testing.assert_allclose(
            table[column].to_numpy(dtype=np.float64),
            expected[column].to_numpy(),
            rtol=1e-12,
            atol=1e-15,
            err_msg=column,
        )
    assert table["sign"].tolist() == expected["sign"].tolist()


def expected_top(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest |values|, ties by column position."""
    return np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]


# ---------------------------------------------------------------------------
# rank()
# ---------------------------------------------------------------------------


def test_rank_one_row_per_feature(regression_explanation):
    table = regression_explanation.rank()

    assert len(table) == 4
    assert sorted(table["feature"]) == ["a", "b", "c", "d"]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    for column in RANK_COLUMNS:
        assert column in table.columns, column
    assert "segment" not in table.columns
    assert "output" not in table.columns


def test_rank_matches_numpy(regression_explanation):
    explanation = regression_explanation

    table = explanation.rank()

    assert_rank_equal(
        table, expected_rank(explanation.values, explanation.feature_names)
    )


def test_rank_sorted_by_mean_abs(regression_explanation):
    table = regression_explanation.rank()

    mean_abs = table["mean_abs_shap"].to_numpy()
    assert np.all(np.diff(mean_abs) <= 0)
    # The target is 3a + b**2 + 0.3c, and d has no effect.
    assert table["feature"].tolist() == ["a", "b", "c", "d"]


def test_rank_share_sums_to_one(regression_explanation):
    table = regression_explanation.rank()

    share = table["share"].to_numpy()
    assert share.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(share >= 0)
    np.testing.assert_allclose(
        share, table["mean_abs_shap"] / table["mean_abs_shap"].sum(), rtol=1e-12
    )


def test_rank_sign_of_mean_effect():
    """The sign is that of the mean signed value, not of the mean |value|."""
    values = np.array(
        [
            [3.0, -1.0, 2.0, 0.0],
            [-1.0, -1.0, -2.0, 0.0],
            [1.0, 4.0, 0.0, 0.0],
        ]
    )
    explanation = fastshap.Explanation(
        values=values, base_values=np.array([0.5]), feature_names=["p", "n", "z", "u"]
    )

    table = explanation.rank().set_index("feature")

    assert table.loc["p", "sign"] == "+"
    assert table.loc["n", "sign"] == "+"
    assert table.loc["z", "sign"] == "0"
    assert table.loc["u", "sign"] == "0"
    assert table.loc["u", "mean_abs_shap"] == 0.0
    assert table.loc["n", "mean_shap"] == pytest.approx(2.0 / 3.0)
    negative = fastshap.Explanation(
        values=-values, base_values=np.array([0.5]), feature_names=["p", "n", "z", "u"]
    )
    assert negative.rank().set_index("feature").loc["p", "sign"] == "-"


def test_rank_ties_broken_by_name():
    values = np.array([[1.0, -1.0, 2.0], [-1.0, 1.0, 0.0]])
    explanation = fastshap.Explanation(
        values=values, base_values=np.array([0.0]), feature_names=["b", "c", "a"]
    )

    table = explanation.rank()

    assert table["feature"].tolist() == ["a", "b", "c"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert_rank_equal(table, expected_rank(values, ["b", "c", "a"]))


def test_rank_permuted_columns(named_regression):
    """A permuted DataFrame ranks each feature by its own column's values."""
    model, frame = named_regression
    rows = frame.iloc[:100]

    aligned = fastshap.explain(model, rows).rank()
    permuted = fastshap.explain(model, rows[["d", "c", "b", "a"]]).rank()

    pd.testing.assert_frame_equal(permuted, aligned)


# ---------------------------------------------------------------------------
# rank(by=...)
# ---------------------------------------------------------------------------


LABEL_CONTAINERS = {
    "list": lambda labels: list(labels),
    "ndarray": lambda labels: np.asarray(labels),
    # The index of the explained rows, as ``X["segment"]`` would have.
    "series": lambda labels: pd.Series(labels, index=np.arange(100, 100 + len(labels))),
    "categorical": lambda labels: pd.Series(pd.Categorical(labels)),
}


@pytest.mark.parametrize("container", list(LABEL_CONTAINERS))
def test_rank_by_segment_rows(container, regression_explanation):
    """Each segment's ranking is the ranking of that segment's rows alone."""
    explanation = regression_explanation
    labels = segment_labels(len(explanation.values))

    table = explanation.rank(by=LABEL_CONTAINERS[container](labels))

    assert table["segment"].tolist() == sorted(table["segment"].tolist())
    assert list(table["segment"].unique()) == ["east", "north", "south"]
    for segment in ("east", "north", "south"):
        rows = labels == segment
        part = table[table["segment"] == segment].reset_index(drop=True)
        assert part["n_rows"].tolist() == [int(rows.sum())] * 4
        assert_rank_equal(
            part, expected_rank(explanation.values[rows], explanation.feature_names)
        )
        alone = fastshap.Explanation(
            values=explanation.values[rows],
            base_values=explanation.base_values,
            feature_names=explanation.feature_names,
        ).rank()
        pd.testing.assert_frame_equal(part[alone.columns], alone)


def test_rank_by_segment_shares(regression_explanation):
    labels = segment_labels(len(regression_explanation.values))

    table = regression_explanation.rank(by=labels)

    totals = table.groupby("segment")["share"].sum()
    np.testing.assert_allclose(totals.to_numpy(), 1.0, rtol=0, atol=1e-12)


def test_rank_by_single_segment(regression_explanation):
    explanation = regression_explanation
    labels = ["all"] * len(explanation.values)

    table = explanation.rank(by=labels)

    overall = explanation.rank()
    pd.testing.assert_frame_equal(table[overall.columns], overall)
    assert table["n_rows"].tolist() == [len(explanation.values)] * 4


def test_rank_by_data_column(named_regression):
    """A column of the explained DataFrame works as ``by``, as in the docs."""
    model, frame = named_regression
    rows = frame.iloc[:150].copy()
    explanation = fastshap.explain(model, rows)
    segment = np.where(rows["a"] > 0, "high_a", "low_a")

    table = explanation.rank(by=pd.Series(segment, index=rows.index))

    high = table[table["segment"] == "high_a"].reset_index(drop=True)
    assert_rank_equal(
        high,
        expected_rank(explanation.values[segment == "high_a"], ["a", "b", "c", "d"]),
    )


@pytest.mark.parametrize("length", [0, 1, 199, 201])
def test_rank_by_wrong_length(length, regression_explanation):
    with pytest.raises(ValueError) as error:
        regression_explanation.rank(by=["x"] * length)

    message = str(error.value)
    assert "`by`" in message
    assert "one segment label per row (200)" in message
    assert f"({length},)" in message


def test_rank_by_two_dimensional(regression_explanation):
    with pytest.raises(ValueError, match=r"`by`.*\(200, 2\)"):
        regression_explanation.rank(by=np.zeros((200, 2)))


def test_rank_by_missing_labels(regression_explanation):
    labels = pd.Series(segment_labels(200)).where(lambda s: s != "east", None)

    with pytest.raises(ValueError, match="`by` contains missing labels"):
        regression_explanation.rank(by=labels)


# ---------------------------------------------------------------------------
# Several outputs
# ---------------------------------------------------------------------------


def test_rank_each_output(multiclass_explanation):
    explanation = multiclass_explanation

    for k in range(3):
        table = explanation.rank(output=k)

        assert "output" not in table.columns
        assert_rank_equal(
            table, expected_rank(explanation.values[:, :, k], explanation.feature_names)
        )


def test_rank_all_outputs(multiclass_explanation):
    """Without ``output=``, every output is ranked and labelled."""
    explanation = multiclass_explanation

    table = explanation.rank()

    assert len(table) == 3 * 4
    assert table["output"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for k in range(3):
        part = table[table["output"] == k].drop(columns="output").reset_index(drop=True)
        pd.testing.assert_frame_equal(part, explanation.rank(output=k))


def test_rank_by_segment_all_outputs(multiclass_explanation):
    explanation = multiclass_explanation
    labels = segment_labels(120)

    table = explanation.rank(by=labels)

    assert len(table) == 3 * 3 * 4
    for k in range(3):
        for segment in ("east", "north", "south"):
            selected = (table["output"] == k) & (table["segment"] == segment)
            part = table[selected].reset_index(drop=True)
            assert_rank_equal(
                part,
                expected_rank(
                    explanation.values[labels == segment, :, k],
                    explanation.feature_names,
                ),
            )


@pytest.mark.parametrize("output", [3, -1, 1.0, "0"])
def test_rank_invalid_output(output, multiclass_explanation):
    with pytest.raises(ValueError, match=r"`output` must be an integer from 0 to 2"):
        multiclass_explanation.rank(output=output)


def test_single_output_rejects_output_index(regression_explanation):
    with pytest.raises(ValueError, match=r"`output` must be None or 0"):
        regression_explanation.rank(output=1)

    pd.testing.assert_frame_equal(
        regression_explanation.rank(output=0), regression_explanation.rank()
    )


@pytest.mark.parametrize("method", ["top_features", "to_frame"])
def test_multi_output_requires_output(method, multiclass_explanation):
    with pytest.raises(ValueError) as error:
        getattr(multiclass_explanation, method)()

    message = str(error.value)
    assert "3 outputs" in message
    assert "output=" in message


@pytest.mark.parametrize("method", ["rank", "top_features", "to_frame"])
def test_boolean_output_rejected(method, multiclass_explanation):
    with pytest.raises(ValueError, match=r"`output`"):
        getattr(multiclass_explanation, method)(output=True)


# ---------------------------------------------------------------------------
# top_features(k)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_features_match_argsort(k, regression_explanation):
    explanation = regression_explanation
    values = explanation.values

    table = explanation.top_features(k)

    n_rows = len(values)
    assert len(table) == n_rows * k
    assert table["row"].tolist() == np.repeat(np.arange(n_rows), k).tolist()
    assert table["rank"].tolist() == np.tile(np.arange(1, k + 1), n_rows).tolist()
    columns = expected_top(values, k)
    names = np.asarray(explanation.feature_names)
    assert table["feature"].tolist() == names[columns].ravel().tolist()
    expected_values = np.take_along_axis(values, columns, axis=1).ravel()
    np.testing.assert_array_equal(table["shap_value"].to_numpy(), expected_values)


def test_top_features_dataframe_values(named_regression):
    """``feature_value`` is the row's value of that feature, by position, not index."""
    model, frame = named_regression
    rows = frame.iloc[[5, 3, 300, 42]][["c", "a", "d", "b"]]
    explanation = fastshap.explain(model, rows)

    table = explanation.top_features(2)

    for entry in table.itertuples():
        assert entry.feature_value == rows[entry.feature].iloc[entry.row]
        column = list(rows.columns).index(entry.feature)
        assert entry.shap_value == explanation.values[entry.row, column]


def test_top_features_array_values(multiclass_model):
    model, X = multiclass_model
    explanation = fastshap.explain(model, X[:10])

    table = explanation.top_features(3, output=2)

    columns = expected_top(explanation.values[:, :, 2], 3)
    np.testing.assert_array_equal(
        table["feature_value"].to_numpy(dtype=np.float64),
        np.take_along_axis(X[:10], columns, axis=1).ravel(),
    )
    np.testing.assert_array_equal(
        table["shap_value"].to_numpy(),
        np.take_along_axis(explanation.values[:, :, 2], columns, axis=1).ravel(),
    )


def test_top_features_without_data():
    values = np.array([[0.1, -0.5, 0.3], [2.0, 0.0, -2.0]])
    explanation = fastshap.Explanation(
        values=values, base_values=np.array([1.0]), feature_names=["x", "y", "z"]
    )

    table = explanation.top_features(2)

    assert "feature_value" not in table.columns
    # Row 1 ties x and z at |2.0|: the earlier column comes first.
    assert table["feature"].tolist() == ["y", "z", "x", "z"]
    assert table["shap_value"].tolist() == [-0.5, 0.3, 2.0, -2.0]


@pytest.mark.parametrize("k", [5, 100])
def test_top_features_k_too_large(k, regression_explanation):
    """k larger than the number of features lists every feature once per row."""
    explanation = regression_explanation

    table = explanation.top_features(k)

    assert len(table) == len(explanation.values) * 4
    pd.testing.assert_frame_equal(table, explanation.top_features(4))
    for _, features in table.groupby("row")["feature"]:
        assert sorted(features) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("k", [0, -1, -100, 2.0, True, "3", None])
def test_top_features_invalid_k(k, regression_explanation):
    with pytest.raises(ValueError, match=r"`k` must be a positive integer"):
        regression_explanation.top_features(k)


def test_top_features_numpy_integer_k(regression_explanation):
    table = regression_explanation.top_features(np.int64(2))

    pd.testing.assert_frame_equal(table, regression_explanation.top_features(2))


# ---------------------------------------------------------------------------
# to_frame()
# ---------------------------------------------------------------------------


def test_to_frame_columns_and_values(regression_explanation):
    explanation = regression_explanation

    frame = explanation.to_frame()

    assert frame.columns.tolist() == ["a", "b", "c", "d", "base_value"]
    np.testing.assert_array_equal(
        frame[["a", "b", "c", "d"]].to_numpy(), explanation.values
    )
    assert np.all(frame["base_value"] == explanation.base_values[0])


def test_to_frame_keeps_dataframe_index(regression_explanation):
    """Rows 100 to 299 of the data keep their index labels."""
    frame = regression_explanation.to_frame()

    assert frame.index.tolist() == list(range(100, 300))


def test_to_frame_each_output(multiclass_explanation):
    explanation = multiclass_explanation

    for k in range(3):
        frame = explanation.to_frame(output=k)

        assert frame.columns.tolist() == ["f0", "f1", "f2", "f3", "base_value"]
        np.testing.assert_array_equal(
            frame[["f0", "f1", "f2", "f3"]].to_numpy(), explanation.values[:, :, k]
        )
        assert np.all(frame["base_value"] == explanation.base_values[k])
        assert frame.index.tolist() == list(range(120))


def test_to_frame_rows_add_up(regression_explanation, named_regression):
    """Each row of the table sums to the model's raw output."""
    model, frame = named_regression
    table = regression_explanation.to_frame()

    margin = model.predict(frame.iloc[100:300], output_margin=True)

    np.testing.assert_allclose(table.sum(axis=1).to_numpy(), margin, rtol=0, atol=1e-4)


def test_to_frame_feature_named_base_value():
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    explanation = fastshap.Explanation(
        values=values, base_values=np.array([10.0]), feature_names=["a", "base_value"]
    )

    frame = explanation.to_frame()

    assert list(frame.columns) == ["a", "base_value", "base_value_"]
    np.testing.assert_array_equal(frame.iloc[:, :2].to_numpy(), values)
    np.testing.assert_array_equal(frame["base_value_"].to_numpy(), [10.0, 10.0])


# ---------------------------------------------------------------------------
# to_shap()
# ---------------------------------------------------------------------------


def test_to_shap_single_output(regression_explanation, named_regression):
    shap = pytest.importorskip("shap")
    _, frame = named_regression
    explanation = regression_explanation

    converted = explanation.to_shap()

    assert isinstance(converted, shap.Explanation)
    np.testing.assert_array_equal(converted.values, explanation.values)
    assert converted.base_values.shape == (200,)
    np.testing.assert_array_equal(
        converted.base_values, np.full(200, explanation.base_values[0])
    )
    assert list(converted.feature_names) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(converted.data, frame.iloc[100:300].to_numpy())


def test_to_shap_several_outputs(multiclass_explanation, multiclass_model):
    shap = pytest.importorskip("shap")
    _, X = multiclass_model
    explanation = multiclass_explanation

    converted = explanation.to_shap()

    assert isinstance(converted, shap.Explanation)
    assert converted.values.shape == (120, 4, 3)
    np.testing.assert_array_equal(converted.values, explanation.values)
    assert converted.base_values.shape == (120, 3)
    np.testing.assert_array_equal(
        converted.base_values, np.tile(explanation.base_values, (120, 1))
    )
    assert list(converted.feature_names) == ["f0", "f1", "f2", "f3"]
    np.testing.assert_array_equal(converted.data, X[:120])


@pytest.mark.parametrize("fixture", ["named_regression", "multiclass_model"])
def test_to_shap_matches_tree_explainer(fixture, request):
    """Shapes and values agree with shap's own TreeExplainer on the same model.

    shap delegates XGBoost models to ``pred_contribs``, which is float32, so
    values agree to 1e-5 on these unit-scale models.
    """
    shap = pytest.importorskip("shap")
    model, X = request.getfixturevalue(fixture)
    rows = X.iloc[:30] if isinstance(X, pd.DataFrame) else X[:30]

    converted = fastshap.explain(model, rows).to_shap()
    reference = shap.TreeExplainer(model)(rows)

    assert converted.values.shape == reference.values.shape
    assert np.shape(converted.base_values) == np.shape(reference.base_values)
    np.testing.assert_allclose(converted.values, reference.values, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        converted.base_values, reference.base_values, rtol=0, atol=1e-5
    )
    np.testing.assert_array_equal(converted.data, np.asarray(reference.data))


def test_to_shap_categorical_codes():
    """Categorical columns become their category codes, NaN where missing."""
    pytest.importorskip("shap")
    data = pd.DataFrame(
        {
            "x": [0.5, np.nan, 2.0],
            "cat": pd.Categorical(["b", None, "a"], categories=["a", "b"]),
        }
    )
    explanation = fastshap.Explanation(
        values=np.zeros((3, 2)),
        base_values=np.array([0.0]),
        feature_names=["x", "cat"],
        data=data,
    )

    converted = explanation.to_shap()

    np.testing.assert_array_equal(
        converted.data, np.array([[0.5, 1.0], [np.nan, np.nan], [2.0, 0.0]])
    )


def test_to_shap_without_data():
    pytest.importorskip("shap")
    explanation = fastshap.Explanation(
        values=np.ones((2, 3)),
        base_values=np.array([0.0]),
        feature_names=["x", "y", "z"],
    )

    converted = explanation.to_shap()

    assert converted.data is None
    np.testing.assert_array_equal(converted.values, np.ones((2, 3)))


def test_shap_plots_single_output(regression_explanation, pyplot):
    shap = pytest.importorskip("shap")
    converted = regression_explanation.to_shap()

    shap.plots.bar(converted, show=False)
    shap.plots.beeswarm(converted, show=False)
    shap.plots.waterfall(converted[0], show=False)

    assert len(pyplot.get_fignums()) >= 1


def test_shap_plots_one_class(multiclass_explanation, pyplot):
    shap = pytest.importorskip("shap")
    converted = multiclass_explanation.to_shap()

    shap.plots.bar(converted[:, :, 1], show=False)
    shap.plots.beeswarm(converted[:, :, 2], show=False)

    assert len(pyplot.get_fignums()) >= 1


def test_rank_by_series_aligned_by_index(regression_explanation):
    """A Series of labels in another row order is matched by index, not position."""
    frame = regression_explanation.data
    labels = pd.Series(np.where(np.arange(len(frame)) % 2 == 0, "even", "odd"), index=frame.index)
    shuffled = labels.sample(frac=1.0, random_state=0)

    from_shuffled = regression_explanation.rank(by=shuffled)
    from_aligned = regression_explanation.rank(by=labels)

    pd.testing.assert_frame_equal(from_shuffled, from_aligned)


def test_rank_by_series_other_index_by_position(regression_explanation):
    """A Series with other index labels pairs labels with rows by position."""
    frame = regression_explanation.data
    labels = np.where(np.arange(len(frame)) % 3 == 0, "x", "y")
    foreign = pd.Series(labels, index=np.arange(len(frame)) + 10_000)

    from_foreign = regression_explanation.rank(by=foreign)
    from_array = regression_explanation.rank(by=labels)

    pd.testing.assert_frame_equal(from_foreign, from_array)
