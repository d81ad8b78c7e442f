"""The Dask driver: lazy values and streamed rankings on a real LocalCluster.

Every result computed on the cluster is compared with the in-memory path on
the same rows: values exactly, rankings to 1e-12 (the streamed sums add rows
in another order).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal

import fastshap
from fastshap.cli import main
from fastshap.distributed import task_threads

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pytest.importorskip("xgboost")


@pytest.fixture(scope="module")
def client():
    """A client of a 2-process LocalCluster on 127.0.0.1, one thread per worker."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def segmented(named_regression):
    """The named regression's frame with a segment column, its model and explainer."""
    model, frame = named_regression
    rng = np.random.default_rng(3)
    frame = frame.assign(segment=rng.choice(["north", "south", "east"], len(frame)))
    return model, fastshap.Explainer(model), frame


def _raise_when_called(block):
    raise RuntimeError("a block was computed while the graph was built")


def _drop_d_from_second(part, partition_info=None):
    return part.drop(columns="d") if partition_info["number"] == 1 else part


def _raise_in_third_block(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 2:
        raise RuntimeError("failed on the third block")
    return block


def _log_read(block, path, block_info=None):
    with open(path, "a") as log:
        log.write(f"{block_info[0]['chunk-location'][0]}\n")
    return block


def _slow_copy(block):
    time.sleep(0.05)
    return block.copy()


def _explainer_keys(graph):
    """Return the keys of a graph whose task is the explainer itself."""
    return [
        key for key, task in graph.items()
        if isinstance(getattr(task, "value", None), fastshap.Explainer)
    ]


def _assert_rank_equal(actual, expected):
    pd.testing.assert_frame_equal(
        actual, expected, check_exact=False, rtol=1e-12, atol=0
    )


# --- values -----------------------------------------------------------------


def test_array_values_equal_in_memory(client, segmented):
    model, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]].to_numpy()
    expected = explainer.explain(features)
    X = da.from_array(features, chunks=(90, 4))

    explanation = fastshap.explain(model, X)

    assert isinstance(explanation.values, da.Array)
    assert explanation.values.chunks == (X.chunks[0], (4,))
    assert explanation.data is X
    assert explanation.feature_names == ["a", "b", "c", "d"]
    assert isinstance(explanation.base_values, np.ndarray)
    assert_array_equal(explanation.base_values, expected.base_values)
    assert_array_equal(explanation.values.compute(), expected.values)


def test_dataframe_values_equal_in_memory(client, segmented):
    _, explainer, frame = segmented
    features = frame[["c", "a", "d", "b"]]
    expected = explainer.explain(features)
    X = dd.from_pandas(features, npartitions=5)

    explanation = explainer.explain(X)

    assert explanation.feature_names == ["c", "a", "d", "b"]
    assert explanation.values.shape[1] == 4
    assert_array_equal(explanation.values.compute(), expected.values)


def test_unknown_divisions_keep_nan_chunks(client, segmented):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]]
    X = dd.from_pandas(features, npartitions=3).clear_divisions()

    explanation = explainer.explain(X)

    assert all(np.isnan(size) for size in explanation.values.chunks[0])
    assert_array_equal(explanation.values.compute(), explainer.explain(features).values)


def test_multi_output_values_and_rank(client, multiclass_model):
    model, features = multiclass_model
    explainer = fastshap.Explainer(model)
    expected = explainer.explain(features)
    X = da.from_array(features, chunks=(70, 4))

    explanation = explainer.explain(X)

    assert explanation.values.chunks == (X.chunks[0], (4,), (3,))
    assert_array_equal(explanation.values.compute(), expected.values)
    _assert_rank_equal(fastshap.rank(explainer, X), expected.rank())
    _assert_rank_equal(fastshap.rank(explainer, X, output=2), expected.rank(output=2))
    _assert_rank_equal(explanation.rank(), expected.rank())


@pytest.mark.parametrize("kind", ["array", "dataframe"])
def test_interventional_interactions_equal_in_memory(client, segmented, kind):
    """Background summary and interaction tables travel with the explainer."""
    model, _, frame = segmented
    explainer = fastshap.Explainer(model, background=frame[["a", "b", "c", "d"]].iloc[:150])
    features = frame[["c", "a", "d", "b"]]
    expected = explainer.explain(features, interactions=True)
    if kind == "array":
        features = features[["a", "b", "c", "d"]]
        expected = explainer.explain(features, interactions=True)
        X = da.from_array(features.to_numpy(), chunks=(90, 4))
    else:
        X = dd.from_pandas(features, npartitions=4)

    explanation = explainer.explain(X, interactions=True)
    values, interactions = dask.compute(
        explanation.values, explanation.interaction_values
    )

    assert explanation.feature_names == expected.feature_names
    assert interactions.shape == (len(frame), 4, 4)
    assert_array_equal(explanation.base_values, expected.base_values)
    assert_array_equal(interactions, expected.interaction_values)
    np.testing.assert_allclose(values, expected.values, rtol=0, atol=1e-12)


def test_multi_output_probability_equal_in_memory(client, multiclass_model):
    model, features = multiclass_model
    explainer = fastshap.Explainer(model, background=features[:40], output="probability")
    expected = explainer.explain(features[:60])
    X = da.from_array(features[:60], chunks=(25, 4))

    explanation = explainer.explain(X)

    assert explanation.values.chunks == (X.chunks[0], (4,), (3,))
    assert_array_equal(explanation.values.compute(), expected.values)
    total = expected.values.sum(axis=1) + expected.base_values
    np.testing.assert_allclose(total, model.predict_proba(features[:60]), atol=1e-6)


def test_dask_not_imported_for_numpy():
    script = (
        "import sys, numpy as np, xgboost as xgb, fastshap\n"
        "X = np.random.default_rng(0).normal(size=(50, 2))\n"
        "model = xgb.XGBRegressor(n_estimators=2, max_depth=2).fit(X, X[:, 0])\n"
        "fastshap.explain(model, X).rank()\n"
        "fastshap.rank(model, X)\n"
        "assert 'dask' not in sys.modules, 'dask was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr


# --- laziness and the graph ---------------------------------------------------


def test_building_graph_computes_nothing(segmented):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]]
    array = da.from_array(features.to_numpy(), chunks=(100, 4)).map_blocks(
        _raise_when_called, dtype=np.float64, meta=np.empty((0, 0))
    )
    table = dd.from_pandas(features, npartitions=4).map_partitions(
        _raise_when_called, meta=features.iloc[:0]
    )
    starts = []

    class CountComputes(dask.callbacks.Callback):
        def _start(self, dsk):
            starts.append(len(dsk))

    with CountComputes(), dask.config.set(scheduler="sync"):
        from_array = explainer.explain(array)
        from_table = explainer.explain(table)
        from_array.values.__dask_graph__()
        from_table.values.__dask_graph__()
        assert starts == []
        with pytest.raises(RuntimeError, match="while the graph was built"):
            from_array.values.compute()
        with pytest.raises(RuntimeError, match="while the graph was built"):
            from_table.values.compute()


@pytest.mark.parametrize("kind", ["array", "dataframe"])
def test_explainer_is_one_graph_key(segmented, kind):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]]
    if kind == "array":
        X = da.from_array(features.to_numpy(), chunks=(50, 4))
    else:
        X = dd.from_pandas(features, npartitions=8)

    graph = dict(explainer.explain(X).values.__dask_graph__())

    holders = _explainer_keys(graph)
    assert len(holders) == 1
    block_tasks = [
        task for key, task in graph.items()
        if "fastshap-values" in str(key) and hasattr(task, "dependencies")
        and holders[0] in task.dependencies
    ]
    assert len(block_tasks) == X.npartitions


def test_explainer_key_reused(segmented):
    _, explainer, frame = segmented
    X = da.from_array(frame[["a", "b", "c", "d"]].to_numpy(), chunks=(100, 4))

    first = dict(explainer.explain(X).values.__dask_graph__())
    second = dict(explainer.explain(X).values.__dask_graph__())

    assert _explainer_keys(first) == _explainer_keys(second)


# --- validation ---------------------------------------------------------------


def test_missing_column_in_meta(segmented):
    _, explainer, frame = segmented
    X = dd.from_pandas(frame[["a", "b", "c"]], npartitions=2)

    with pytest.raises(ValueError, match=r"missing columns \['d'\]"):
        explainer.explain(X)


def test_missing_column_in_one_partition(client, segmented):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]]
    # dd.from_delayed(..., verify_meta=False) would be the direct way, but in
    # dask 2026.8.0 its to_dask_array() fails with "Missing dependency".
    X = dd.from_pandas(features, npartitions=2).map_partitions(
        _drop_d_from_second, meta=features.iloc[:0], enforce_metadata=False
    )

    explanation = explainer.explain(X)

    message = r"partition 1 of `X`.*missing columns \['d'\]"
    with pytest.raises(ValueError, match=message):
        explanation.values.compute()


def test_feature_chunks_rejected(segmented):
    _, explainer, frame = segmented
    X = da.from_array(frame[["a", "b", "c", "d"]].to_numpy(), chunks=(100, 2))

    with pytest.raises(ValueError, match=r"rechunk\(\{1: -1\}\)"):
        explainer.explain(X)


def test_progress_rejected_for_dask(segmented):
    _, explainer, frame = segmented
    X = da.from_array(frame[["a", "b", "c", "d"]].to_numpy(), chunks=(100, 4))

    with pytest.raises(ValueError, match="ProgressBar"):
        explainer.explain(X, progress=lambda done, total: None)


# --- ranking ------------------------------------------------------------------


def test_rank_streamed_equals_in_memory(client, segmented):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]]
    expected = explainer.explain(features)
    X = dd.from_pandas(frame, npartitions=6)

    overall = fastshap.rank(explainer, X[["a", "b", "c", "d"]])
    by_column = fastshap.rank(explainer, X, by="segment")
    by_series = fastshap.rank(explainer, X[["a", "b", "c", "d"]], by=X["segment"])

    _assert_rank_equal(overall, expected.rank())
    _assert_rank_equal(by_column, expected.rank(by=frame["segment"]))
    _assert_rank_equal(by_series, expected.rank(by=frame["segment"]))
    _assert_rank_equal(fastshap.rank(explainer, frame, by="segment"), by_column)


def test_rank_reads_each_block_once(client, segmented, tmp_path):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]].to_numpy()
    labels = frame["segment"].to_numpy()
    log = tmp_path / "reads.log"
    X = da.from_array(features, chunks=(60, 4)).map_blocks(
        _log_read, str(log), dtype=np.float64
    )
    by = da.from_array(labels, chunks=(60,))

    streamed = fastshap.rank(explainer, X, by=by)

    expected = explainer.explain(features).rank(by=labels)
    _assert_rank_equal(streamed, expected)
    reads = log.read_text().split()
    assert len(reads) == len(X.chunks[0])
    assert sorted(reads, key=int) == [str(i) for i in range(len(X.chunks[0]))]


def test_rank_of_dask_explanation(client, segmented):
    _, explainer, frame = segmented
    expected = explainer.explain(frame[["a", "b", "c", "d"]])
    X = dd.from_pandas(frame, npartitions=4)

    explanation = explainer.explain(X[["a", "b", "c", "d"]])

    _assert_rank_equal(explanation.rank(), expected.rank())
    _assert_rank_equal(
        explanation.rank(by=X["segment"]), expected.rank(by=frame["segment"])
    )


def test_rank_by_feature_column(client, segmented):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]].assign(d=np.round(frame["d"]).clip(-1, 1))
    expected = explainer.explain(features).rank(by=features["d"])

    streamed = fastshap.rank(explainer, dd.from_pandas(features, npartitions=3), by="d")

    _assert_rank_equal(streamed, expected)


def test_rank_missing_label_rejected(client, segmented):
    _, explainer, frame = segmented
    frame = frame.assign(segment=frame["segment"].where(frame.index != 250))
    X = dd.from_pandas(frame, npartitions=3)

    with pytest.raises(ValueError, match="missing labels"):
        fastshap.rank(explainer, X, by="segment")


def test_rank_partition_mismatch_rejected(segmented):
    _, explainer, frame = segmented
    X = dd.from_pandas(frame[["a", "b", "c", "d"]], npartitions=3)
    by = dd.from_pandas(frame["segment"], npartitions=2)

    with pytest.raises(ValueError, match="partitions"):
        fastshap.rank(explainer, X, by=by)


def test_empty_block_rank_and_parquet(segmented, tmp_path):
    """An empty row block used to fail: reshape(0, n, -1) is ambiguous."""
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]].to_numpy()
    X = da.from_array(features, chunks=((0, len(features)), (4,)))

    with dask.config.set(scheduler="sync"):
        streamed = fastshap.rank(explainer, X)
        explainer.explain(X).to_parquet(tmp_path / "values")

    _assert_rank_equal(streamed, explainer.explain(features).rank())
    assert len(pd.read_parquet(tmp_path / "values" / "part.00000.parquet")) == 0
    assert len(pd.read_parquet(tmp_path / "values")) == len(features)


# --- threads per task ---------------------------------------------------------


def test_task_threads_explicit():
    assert task_threads(3) == 3
    assert task_threads(-1) is None


def test_task_threads_default(client):
    cores = len(os.sched_getaffinity(0))

    on_worker = client.submit(task_threads, None, pure=False).result()
    with dask.config.set(scheduler="sync"):
        synchronous = task_threads(None)
    with dask.config.set(scheduler="threads", num_workers=cores):
        threaded = task_threads(None)

    assert on_worker == cores
    assert synchronous == cores
    assert threaded == 1


# --- parquet output -----------------------------------------------------------


def test_to_parquet_dataset_equals_in_memory(client, segmented, tmp_path):
    _, explainer, frame = segmented
    features = frame[["a", "b", "c", "d"]]
    expected = explainer.explain(features)
    X = da.from_array(features.to_numpy(), chunks=(150, 4))
    path = tmp_path / "values.parquet"

    explainer.explain(X).to_parquet(path)

    assert sorted(os.listdir(tmp_path)) == ["values.parquet"]
    parts = sorted(os.listdir(path))
    assert parts == ["part.00000.parquet", "part.00001.parquet", "part.00002.parquet"]
    written = pd.read_parquet(path)
    assert list(written.columns) == ["a", "b", "c", "d", "base_value"]
    assert_array_equal(written[["a", "b", "c", "d"]].to_numpy(), expected.values)
    assert (written["base_value"] == expected.base_values[0]).all()


def test_to_parquet_multi_output_columns(client, multiclass_model, tmp_path):
    model, features = multiclass_model
    explainer = fastshap.Explainer(model)
    expected = explainer.explain(features)
    X = da.from_array(features, chunks=(100, 4))

    explainer.explain(X).to_parquet(tmp_path / "lazy", output_label="class")
    expected.to_parquet(tmp_path / "eager.parquet", output_label="class")

    lazy = pd.read_parquet(tmp_path / "lazy")
    eager = pd.read_parquet(tmp_path / "eager.parquet")
    pd.testing.assert_frame_equal(lazy, eager)
    assert lazy.columns[0] == "f0[class_0]"
    assert lazy.columns[-1] == "base_value[class_2]"
    assert_array_equal(lazy["f1[class_2]"].to_numpy(), expected.values[:, 1, 2])


def test_to_parquet_existing_path(client, segmented, tmp_path):
    _, explainer, frame = segmented
    X = da.from_array(frame[["a", "b", "c", "d"]].to_numpy(), chunks=(200, 4))
    explanation = explainer.explain(X)
    path = tmp_path / "values"
    path.mkdir()
    (path / "old.parquet").write_text("old")

    with pytest.raises(FileExistsError, match="overwrite=True"):
        explanation.to_parquet(path)
    assert os.listdir(path) == ["old.parquet"]

    explanation.to_parquet(path, overwrite=True)
    assert sorted(os.listdir(path)) == ["part.00000.parquet", "part.00001.parquet"]
    assert sorted(os.listdir(tmp_path)) == ["values"]


def test_to_parquet_failure_leaves_nothing(client, segmented, tmp_path):
    _, explainer, frame = segmented
    X = da.from_array(frame[["a", "b", "c", "d"]].to_numpy(), chunks=(100, 4))
    failing = X.map_blocks(_raise_in_third_block, dtype=np.float64)
    path = tmp_path / "values.parquet"

    with pytest.raises(RuntimeError, match="third block"):
        explainer.explain(failing).to_parquet(path)

    assert os.listdir(tmp_path) == []


def test_to_parquet_in_memory_file(segmented, tmp_path):
    _, explainer, frame = segmented
    explanation = explainer.explain(frame[["a", "b", "c", "d"]])
    path = tmp_path / "values.parquet"

    explanation.to_parquet(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        explanation.to_parquet(path)
    explanation.to_parquet(path, overwrite=True)

    assert os.path.isfile(path)
    assert sorted(os.listdir(tmp_path)) == ["values.parquet"]
    assert_array_equal(
        pd.read_parquet(path).drop(columns="base_value").to_numpy(), explanation.values
    )


# --- command line ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, segmented):
    """The segmented regression saved as a model file, a parquet file and a folder."""
    model, _, frame = segmented
    folder = tmp_path_factory.mktemp("cli")
    model.save_model(str(folder / "model.json"))
    frame.to_parquet(folder / "data.parquet", index=False)
    (folder / "parts").mkdir()
    for i, start in enumerate(range(0, len(frame), 150)):
        part = frame.iloc[start : start + 150]
        part.to_parquet(folder / "parts" / f"part.{i}.parquet", index=False)
    assert main(["explain", str(folder / "model.json"), str(folder / "data.parquet"),
                 "-o", str(folder / "expected.parquet"), "-q"]) == 0
    return folder


def test_cli_scheduler_matches_in_memory(client, cli_files, tmp_path, capsys):
    output = tmp_path / "values.parquet"

    status = main([
        "explain", str(cli_files / "model.json"), str(cli_files / "parts"),
        "-o", str(output), "--scheduler", client.scheduler.address,
    ])

    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out == ""
    assert "Completed" in captured.err
    assert "wrote SHAP values of 400 rows" in captured.err
    assert os.path.isdir(output)
    expected = pd.read_parquet(cli_files / "expected.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(output), expected)


def test_cli_scheduler_single_file(client, cli_files, tmp_path, capsys):
    """A single parquet file (one partition) explains on the cluster."""
    status = main([
        "explain", str(cli_files / "model.json"), str(cli_files / "data.parquet"),
        "-o", str(tmp_path / "values.parquet"), "-q",
        "--scheduler", client.scheduler.address,
    ])

    assert status == 0, capsys.readouterr().err
    expected = pd.read_parquet(cli_files / "expected.parquet")
    written = pd.read_parquet(tmp_path / "values.parquet")
    pd.testing.assert_frame_equal(written, expected)


def test_cli_parquet_folder_local_dask(cli_files, tmp_path, capsys):
    output = tmp_path / "values.parquet"

    status = main([
        "explain", str(cli_files / "model.json"), str(cli_files / "parts"),
        "-o", str(output),
    ])

    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Completed" in captured.err
    expected = pd.read_parquet(cli_files / "expected.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(output), expected)


def test_cli_bad_scheduler_address(cli_files, tmp_path, capsys):
    # Port 1 on the loopback interface: nothing listens there.
    started = time.monotonic()

    status = main([
        "explain", str(cli_files / "model.json"), str(cli_files / "data.parquet"),
        "-o", str(tmp_path / "values.parquet"), "-q",
        "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "2",
    ])

    assert status == 2
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert "could not connect to the dask scheduler at 'tcp://127.0.0.1:1'" in err
    assert os.listdir(tmp_path) == []


def test_cli_missing_parquet_path(client, cli_files, tmp_path, capsys):
    status = main([
        "explain", str(cli_files / "model.json"), str(tmp_path / "absent"),
        "-o", str(tmp_path / "values.parquet"), "-q",
        "--scheduler", client.scheduler.address,
    ])

    assert status == 2
    assert "data '" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_cli_missing_column_in_dataset(client, cli_files, tmp_path, capsys):
    data = tmp_path / "data.parquet"
    pd.read_parquet(cli_files / "data.parquet").drop(columns="c").to_parquet(data)

    status = main([
        "explain", str(cli_files / "model.json"), str(data),
        "-o", str(tmp_path / "values.parquet"), "-q",
        "--scheduler", client.scheduler.address,
    ])

    assert status == 2
    assert "missing 1 column" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["data.parquet"]


def test_cli_existing_dataset_output(client, cli_files, tmp_path, capsys):
    output = tmp_path / "values.parquet"
    output.mkdir()

    status = main([
        "explain", str(cli_files / "model.json"), str(cli_files / "parts"),
        "-o", str(output), "-q",
    ])

    assert status == 2
    assert "--force" in capsys.readouterr().err
    assert os.listdir(output) == []


# --- failures ---------------------------------------------------------------


def test_worker_killed_mid_run(client, segmented):
    """Killing a worker process mid-compute loses no rows and duplicates none."""
    _, explainer, frame = segmented
    rows = np.tile(frame[["a", "b", "c", "d"]].to_numpy(), (10, 1))
    expected = explainer.explain(rows).values
    # 80 blocks of 50 rows, each delayed 0.05 s, take about 2 s on 2 workers.
    X = da.from_array(rows, chunks=(50, 4)).map_blocks(_slow_copy, dtype=np.float64)
    values = explainer.explain(X).values
    pids = client.run(os.getpid)

    future = client.compute(values)
    deadline = time.monotonic() + 30
    done = 0
    while time.monotonic() < deadline and done < 10:
        held = [key for keys in client.has_what().values() for key in keys]
        done = sum("fastshap-values" in str(key) for key in held)
        time.sleep(0.05)
    killed = next(iter(pids.values()))
    os.kill(killed, signal.SIGKILL)
    result = future.result(timeout=60)

    assert 10 <= done < 80, "the worker was not killed mid-run"
    assert killed not in client.run(os.getpid).values()
    assert result.shape == expected.shape
    assert_array_equal(result, expected)
