"""Table files for the command line: reading parquet and CSV, atomic writes."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Iterator

import pandas as pd

#: File suffix -> table format, for input and output tables.
TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class TableError(ValueError):
    """A table file has an unsupported suffix or could not be parsed."""


def table_format(path: str, role: str) -> str:
    """Return ``"parquet"`` or ``"csv"`` from the suffix of ``path``.

    ``role`` names the file in the error message, for example ``"data file"``.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TABLE_FORMATS:
        raise TableError(
            f"{role} {path!r} has suffix {suffix!r}; expected one of "
            f"{', '.join(TABLE_FORMATS)}. Rename the file or convert it to "
            f"parquet or CSV."
        )
    return TABLE_FORMATS[suffix]


def read_table(path: str) -> pd.DataFrame:
    """Read a parquet or CSV file, chosen by its suffix.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    TableError
        If the suffix is not supported or the file cannot be parsed.
    """
    file_format = table_format(path, "data file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file {path!r} not found. Check the path.")
    try:
        if file_format == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
            # pandas renames a repeated CSV header "a" to "a.1", so check the
            # header as written.
            header = pd.read_csv(path, header=None, nrows=1, dtype=str)
            _check_unique_columns(header.iloc[0].tolist() if len(header) else [], path)
        return frame
    except UnicodeDecodeError as error:
        raise TableError(
            f"data file {path!r} is not UTF-8 text ({error.reason} at byte "
            f"{error.start}). Convert it to UTF-8, for example with "
            f"`iconv -f latin1 -t utf-8 IN.csv > OUT.csv`."
        ) from error
    except (OSError, ValueError) as error:
        # pyarrow's ArrowInvalid and pandas' ParserError and EmptyDataError
        # are ValueError subclasses.
        detail = " ".join(str(error).split()) or type(error).__name__
        raise TableError(
            f"data file {path!r} could not be read as {file_format} ({detail}). "
            f"Check that it is a valid {file_format} file."
        ) from error


def _check_unique_columns(names: list, path: str) -> None:
    names = [str(name) for name in names]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise TableError(
            f"data file {path!r} has duplicated column names: {duplicated}. "
            f"Rename them so that each column name occurs once."
        )


def check_output_path(path: str, *, force: bool, role: str = "output file") -> None:
    """Raise unless a new file can be written at ``path``.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    FileExistsError
        If ``path`` exists and ``force`` is false.
    IsADirectoryError
        If ``path`` is a folder.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"the folder of {role} {path!r} does not exist. Create it first "
            f"(mkdir -p {folder}) or choose another path."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{role} {path!r} is a folder. Give a file path, for example "
            f"{os.path.join(path, 'shap.parquet')!r}."
        )
    if os.path.lexists(path) and not force:
        raise FileExistsError(
            f"{role} {path!r} already exists. Pass --force to overwrite it, or "
            f"choose another path."
        )


@contextlib.contextmanager
def atomic_output(path: str, *, force: bool) -> Iterator[str]:
    """Yield a temporary path in the folder of ``path``, then move it to ``path``.

    The body writes the complete file to the temporary path. On success the
    file replaces ``path`` with one ``os.replace``, so readers see either the
    old file or the complete new one. On any exception, including
    ``KeyboardInterrupt``, the temporary file is deleted and ``path`` stays
    as it was.
    """
    check_output_path(path, force=force)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL never reuses an existing file, and mode 0o666 lets the umask set
    # the permissions, as for any new file (tempfile.mkstemp would give 0o600).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(descriptor)
    try:
        yield temporary
        if os.path.lexists(path) and not force:
            raise FileExistsError(
                f"output file {path!r} was created by someone else while this "
                f"command ran. Pass --force to overwrite it, or choose another path."
            )
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_table(frame: pd.DataFrame, path: str, *, force: bool) -> None:
    """Write ``frame`` without its index to a parquet or CSV file, atomically.

    See :func:`atomic_output` for what happens on failure.
    """
    file_format = table_format(path, "output file")
    with atomic_output(path, force=force) as temporary:
        if file_format == "parquet":
            frame.to_parquet(temporary, index=False)
        else:
            frame.to_csv(temporary, index=False)
