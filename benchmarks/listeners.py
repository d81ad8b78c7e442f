"""Synthetic "listener satisfaction" table of a music streaming service.

One row is one listener (user) over a month: how often and how long they
listen, how much they skip, how much of their listening is discovery, how
long they have subscribed and on which tier. The target ``satisfaction``
(a survey score, centred near 0) depends on the features through
interactions, for example skips hurt free-tier listeners more, and discovery
pleases new listeners more than old ones. About 5 to 15 % of the values of
``age``, ``discovery_share`` and ``commute_minutes`` are missing (NaN).

Any number of rows can be produced block by block. :func:`make_block` builds
one block from its own seed, so block ``i`` is the same whatever the total.
:func:`listeners_frame` wraps the blocks in a dask DataFrame that generates
each block where and when it is computed.

The data is invented for benchmarks. It follows no real service.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Feature columns, in the order of the generated table.
FEATURES = [
    "sessions_per_week",
    "listening_hours",
    "skip_rate",
    "discovery_share",
    "tenure_months",
    "tier",
    "playlists_followed",
    "offline_share",
    "devices",
    "age",
    "podcast_share",
    "shared_tracks",
    "commute_minutes",
    "ads_per_hour",
]

#: Codes of the ``tier`` column.
TIERS = {0: "free", 1: "student", 2: "individual", 3: "family"}

TARGET = "satisfaction"


def make_block(n_rows: int, seed: int) -> pd.DataFrame:
    """Generate ``n_rows`` listeners from ``seed``, features and ``satisfaction``."""
    rng = np.random.default_rng(seed)
    tier = rng.choice(4, size=n_rows, p=[0.45, 0.1, 0.3, 0.15])
    paid = tier > 0
    tenure = rng.geometric(1 / 18, size=n_rows).astype(np.float64)
    sessions = rng.poisson(4 + 6 * paid, size=n_rows).astype(np.float64)
    hours = rng.gamma(2.0, 1.5 + 0.2 * sessions)
    skip_rate = rng.beta(2, 5 + 2 * paid)
    discovery = rng.beta(2, 6, size=n_rows)
    playlists = rng.poisson(3 + 0.2 * np.minimum(tenure, 60)).astype(np.float64)
    offline = np.where(paid, rng.beta(1, 3, size=n_rows), 0.0)
    devices = 1.0 + rng.poisson(0.8 + 0.7 * (tier == 3))
    age = np.round(rng.normal(34, 12, size=n_rows).clip(13, 90))
    podcasts = rng.beta(1, 5, size=n_rows)
    shared = rng.poisson(0.5 + 2 * discovery).astype(np.float64)
    commute = rng.gamma(2.0, 12.0, size=n_rows)
    ads = np.where(paid, 0.0, rng.normal(9, 2, size=n_rows).clip(2, 16))

    new_listener = tenure < 6
    satisfaction = (
        0.6 * np.log1p(hours)
        - 2.5 * skip_rate * (1 + 1.5 * (tier == 0))
        + 1.8 * discovery * np.where(new_listener, 1.5, 0.4)
        + 0.04 * np.minimum(playlists, 20)
        - 0.05 * ads * (sessions > 6)
        + 0.5 * offline * (commute > 30)
        + 0.3 * podcasts * (age > 40)
        + 0.1 * np.log1p(shared)
        + rng.normal(0, 0.3, size=n_rows)
    )
    frame = pd.DataFrame(
        {
            "sessions_per_week": sessions,
            "listening_hours": hours,
            "skip_rate": skip_rate,
            "discovery_share": discovery,
            "tenure_months": tenure,
            "tier": tier.astype(np.float64),
            "playlists_followed": playlists,
            "offline_share": offline,
            "devices": devices,
            "age": age,
            "podcast_share": podcasts,
            "shared_tracks": shared,
            "commute_minutes": commute,
            "ads_per_hour": ads,
            TARGET: satisfaction,
        }
    )
    # Values are removed after the target is computed, because satisfaction
    # depends on the listener's true values, which the table then lacks.
    missing_shares = {"age": 0.15, "discovery_share": 0.05, "commute_minutes": 0.1}
    for column, share in missing_shares.items():
        frame.loc[rng.random(n_rows) < share, column] = np.nan
    return frame


def block_sizes(n_rows: int, block_rows: int) -> list[int]:
    """Split ``n_rows`` into blocks of ``block_rows`` rows, the last one shorter."""
    sizes = [block_rows] * (n_rows // block_rows)
    if n_rows % block_rows:
        sizes.append(n_rows % block_rows)
    return sizes


def listeners_frame(n_rows: int, *, block_rows: int = 100_000, seed: int = 1000) -> Any:
    """Return a dask DataFrame of ``n_rows`` listeners, generated block by block.

    Block ``i`` is ``make_block(size, seed + i)``. Nothing is generated until
    the frame is computed, so the table may be larger than memory.
    """
    import dask.dataframe as dd

    sizes = block_sizes(n_rows, block_rows)
    seeds = [seed + i for i in range(len(sizes))]
    meta = make_block(0, seed).iloc[:0]
    return dd.from_map(make_block, sizes, seeds, meta=meta, enforce_metadata=False)
