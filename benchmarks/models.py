"""The benchmark models: synthetic data, a registry of models and a disk cache.

Every model is trained deterministically on :func:`make_data` rows (seed
:data:`TRAIN_SEED`) and cached under :func:`cache_dir`, so only the first run
of a machine pays for training. Explained rows come from the same generator
with :data:`EXPLAIN_SEED`: fresh rows of the same distribution.

A cache file's name contains the model name, the training library's version
and a hash of everything that defines the model: specification, training
parameters, data size and :data:`DATA_VERSION`. A change to any of them
trains a new model instead of reading a stale one.

Run ``python -m benchmarks.models`` to train and cache every model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Columns of every data set.
N_FEATURES = 50

#: Training rows of the full-size models.
TRAIN_ROWS = 20_000

#: Training rows and largest tree count of the tiny variants used by the
#: smoke tests.
TINY_TRAIN_ROWS = 2_000
TINY_MAX_TREES = 8

#: Share of entries replaced by NaN, in training and explained rows alike.
MISSING_RATE = 0.05

TRAIN_SEED = 0
EXPLAIN_SEED = 1

#: Bump when :func:`make_data` changes, so cached models are retrained.
DATA_VERSION = 1

#: Environment variable that overrides :func:`cache_dir`.
CACHE_ENV = "FASTSHAP_BENCHMARK_CACHE"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One benchmark model.

    Attributes
    ----------
    name : str
        Registry key, such as ``"xgb-d6-100"``.
    library : {"xgboost", "lightgbm", "sklearn"}
        The library that trains the model and whose native object
        :func:`load_model` returns.
    n_trees : int
        Number of trees (boosting rounds or forest size).
    max_depth : int
        Largest tree depth.
    """

    name: str
    library: str
    n_trees: int
    max_depth: int


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("xgb-d6-100", "xgboost", 100, 6),
        ModelSpec("xgb-d8-500", "xgboost", 500, 8),
        ModelSpec("xgb-d4-1000", "xgboost", 1000, 4),
        ModelSpec("lgbm-d6-100", "lightgbm", 100, 6),
        ModelSpec("lgbm-d8-500", "lightgbm", 500, 8),
        ModelSpec("rf-d12-100", "sklearn", 100, 12),
    )
}


def make_data(
    n_rows: int, seed: int, *, missing_rate: float = MISSING_RATE
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw ``n_rows`` rows of the synthetic regression problem.

    The 50 features are four families: 20 normal features with a shared
    factor (so some are correlated), 10 uniform ones on [0, 1], 10 counts
    (few distinct values, so trees reuse thresholds) and 10 log-normal
    ones. The target sums main effects, two- and three-way interactions,
    thresholds and noise, so the trees split on most features. Missing
    entries are drawn independently, after the target is computed.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    seed : int
        Seed of the generator; the same seed gives the same rows.
    missing_rate : float, default=0.05
        Probability that an entry of ``X`` is NaN.

    Returns
    -------
    X : ndarray of shape (n_rows, 50)
    y : ndarray of shape (n_rows,)
    """
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(n_rows, 1))
    normal = rng.normal(size=(n_rows, 20))
    normal[:, :10] = 0.6 * normal[:, :10] + 0.8 * factor
    uniform = rng.uniform(size=(n_rows, 10))
    counts = rng.poisson(lam=np.linspace(0.5, 5.0, 10), size=(n_rows, 10))
    lognormal = rng.lognormal(sigma=0.75, size=(n_rows, 10))
    X = np.hstack([normal, uniform, counts.astype(np.float64), lognormal])

    y = (
        2.0 * X[:, 0]
        - 1.5 * X[:, 12]
        + X[:, 1] * X[:, 2]
        + np.sin(3.0 * X[:, 3]) * X[:, 20]
        + (X[:, 30] > 1) * X[:, 4]
        + 0.5 * X[:, 5] * X[:, 6] * X[:, 7]
        + np.log1p(X[:, 40]) * X[:, 8]
        + np.abs(X[:, 9]) * X[:, 21]
        + 0.3 * np.maximum(X[:, 35] - 2, 0) * X[:, 41]
        + np.where(X[:, 22] > 0.5, X[:, 13], -X[:, 14])
        + 0.2 * X[:, 15:20].sum(axis=1)
        + 0.1 * np.log(X[:, 42:50]).sum(axis=1)
        + 0.5 * X[:, 23:30].sum(axis=1) * X[:, 10]
        + 0.3 * rng.normal(size=n_rows)
    )

    X[rng.uniform(size=X.shape) < missing_rate] = np.nan
    return X, y


def explain_rows(n_rows: int) -> NDArray[np.float64]:
    """Return ``n_rows`` fresh rows to explain, the same ones on every call."""
    X, _ = make_data(n_rows, EXPLAIN_SEED)
    return X


def cache_dir() -> Path:
    """Return the model cache folder, ``benchmarks/.cache`` unless overridden.

    The environment variable ``FASTSHAP_BENCHMARK_CACHE`` overrides it.
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent / ".cache"


def tiny_variant(spec: ModelSpec) -> ModelSpec:
    """Return the smoke-test variant of ``spec``: same depth, at most 8 trees."""
    return dataclasses.replace(
        spec, name=f"{spec.name}-tiny", n_trees=min(spec.n_trees, TINY_MAX_TREES)
    )


def load_model(name: str, *, tiny: bool = False) -> Any:
    """Return the trained model ``name`` from the cache, training it on a miss.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    tiny : bool, default=False
        Return the tiny variant (at most 8 trees, trained on 2,000 rows),
        which trains in about a second and is meant for smoke tests.

    Returns
    -------
    xgboost.Booster, lightgbm.Booster or sklearn.ensemble.RandomForestRegressor
    """
    if name not in MODELS:
        raise KeyError(
            f"unknown benchmark model {name!r}; expected one of {sorted(MODELS)}"
        )
    spec = tiny_variant(MODELS[name]) if tiny else MODELS[name]
    n_rows = TINY_TRAIN_ROWS if tiny else TRAIN_ROWS
    library = _LIBRARIES[spec.library]
    path = cache_dir() / _cache_name(spec, n_rows, library)

    if path.exists():
        return library.load(path.read_bytes())

    X, y = make_data(n_rows, TRAIN_SEED)
    started = time.perf_counter()
    model = library.train(spec, X, y)
    logger.info(
        "trained %s on %d rows in %.1f s, cached as %s",
        spec.name,
        n_rows,
        time.perf_counter() - started,
        path,
    )
    write_atomic(path, library.dump(model))
    return model


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    Readers see either no file or the whole file, even when two processes
    write the same path at once, because ``os.replace`` is atomic within a
    file system.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# Training, serialisation and loading, one class per library
# ---------------------------------------------------------------------------


class _XGBoost:
    suffix = "ubj"

    @staticmethod
    def version() -> str:
        import xgboost

        return xgboost.__version__

    @staticmethod
    def params(spec: ModelSpec) -> dict[str, Any]:
        return {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "max_depth": spec.max_depth,
            "learning_rate": 0.1,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "seed": 0,
        }

    @classmethod
    def train(
        cls, spec: ModelSpec, X: NDArray[np.float64], y: NDArray[np.float64]
    ) -> Any:
        import xgboost

        dtrain = xgboost.DMatrix(X, label=y)
        return xgboost.train(cls.params(spec), dtrain, num_boost_round=spec.n_trees)

    @staticmethod
    def dump(model: Any) -> bytes:
        return bytes(model.save_raw(raw_format="ubj"))

    @staticmethod
    def load(data: bytes) -> Any:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(data))
        return booster


class _LightGBM:
    suffix = "txt"

    @staticmethod
    def version() -> str:
        import lightgbm

        return lightgbm.__version__

    @staticmethod
    def params(spec: ModelSpec) -> dict[str, Any]:
        # LightGBM grows trees leaf-wise: 2**depth leaves with the depth
        # limit gives trees of about the size of XGBoost's depth-wise ones.
        return {
            "objective": "regression",
            "max_depth": spec.max_depth,
            "num_leaves": 2**spec.max_depth,
            "learning_rate": 0.1,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
            "seed": 0,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }

    @classmethod
    def train(
        cls, spec: ModelSpec, X: NDArray[np.float64], y: NDArray[np.float64]
    ) -> Any:
        import lightgbm

        dataset = lightgbm.Dataset(X, label=y)
        return lightgbm.train(cls.params(spec), dataset, num_boost_round=spec.n_trees)

    @staticmethod
    def dump(model: Any) -> bytes:
        return model.model_to_string().encode()

    @staticmethod
    def load(data: bytes) -> Any:
        import lightgbm

        return lightgbm.Booster(model_str=data.decode())


class _ScikitLearn:
    suffix = "pkl"

    @staticmethod
    def version() -> str:
        import sklearn

        return sklearn.__version__

    @staticmethod
    def params(spec: ModelSpec) -> dict[str, Any]:
        return {
            "n_estimators": spec.n_trees,
            "max_depth": spec.max_depth,
            "random_state": 0,
        }

    @classmethod
    def train(
        cls, spec: ModelSpec, X: NDArray[np.float64], y: NDArray[np.float64]
    ) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        # n_jobs does not change the trees: each tree has its own seed.
        return RandomForestRegressor(**cls.params(spec), n_jobs=-1).fit(X, y)

    @staticmethod
    def dump(model: Any) -> bytes:
        return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(data: bytes) -> Any:
        # The cache is written by this module only, so unpickling it is as
        # safe as importing this module.
        return pickle.loads(data)


_LIBRARIES: dict[str, Any] = {
    "xgboost": _XGBoost,
    "lightgbm": _LightGBM,
    "sklearn": _ScikitLearn,
}


def _cache_name(spec: ModelSpec, n_rows: int, library: Any) -> str:
    recipe = {
        "spec": dataclasses.asdict(spec),
        "params": library.params(spec),
        "n_rows": n_rows,
        "n_features": N_FEATURES,
        "missing_rate": MISSING_RATE,
        "seed": TRAIN_SEED,
        "data_version": DATA_VERSION,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[
        :12
    ]
    return f"{spec.name}-{spec.library}{library.version()}-{digest}.{library.suffix}"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for model_name in MODELS:
        load_model(model_name, tiny=True)
        load_model(model_name)
