"""The shared run loader: every ``run.json``, ``progress.csv`` and reference CSV the aggregation reads
is checked on read, and a missing or damaged one stops it with one line naming the file.

Every algorithm writes the same shared ``progress.csv`` columns (docs/design.md, data flow), so nothing
here branches on the algorithm. A run is identified by ``run.json`` (``algo``, ``env``, ``seed`` and
the experiment's meta columns), never by its directory path. No run is silently dropped: a run
directory that cannot be read is an error, and :func:`warn_left_out` names every run a table or
figure leaves out on purpose.
"""

import csv
import io
import json
import math
import warnings
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from esrepro.errors import InputError
from esrepro.progress import SHARED_COLUMNS


class RunFileError(InputError):
    """A run file or reference table is missing or damaged; the message names the file and the fault."""


class RunSelectionError(InputError):
    """The run directories given cannot make the requested table or figure (none of the needed
    algorithm, two directories holding the same run, runs that disagree on the experiment...)."""


ID_COLUMNS = ("algo", "env", "seed")
"""Columns identifying a run; taken from ``run.json``, never from the directory path."""

PROGRESS_COLUMNS = SHARED_COLUMNS
"""Columns every progress.csv must have; others are kept as they are."""

COUNTER_COLUMNS = ("iteration", "timesteps", "episodes", "wall_time_s")
"""Cumulative counters: a value in every row, finite, and non-decreasing with the iteration."""

RUN_KEYS = {"algo": str, "env": str, "seed": int, "wall_time_s": (int, float), "config": dict}
"""Keys every ``run.json`` must have, with their JSON types."""

_MISSING_VALUES = {"", "nan"}
"""progress.csv fields read as NaN (``write_progress`` writes a missing value as an empty field)."""


def _read_text(path: Path) -> str:
    """The UTF-8 text of `path`; RunFileError if it is missing, unreadable, not text or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path} is not UTF-8 text") from None
    except OSError as err:
        raise RunFileError(f"{path} cannot be read: {err.strerror}") from None
    if not text.strip():
        raise RunFileError(f"{path} is empty")
    return text


def read_run_json(path: Path | str) -> dict:
    """Read and check one ``run.json``.

    Returns
    -------
    dict
        The JSON object; it has every key of :data:`RUN_KEYS` with its type (``seed`` an integer,
        ``algo`` and ``env`` non-empty strings, ``wall_time_s`` a finite number, ``config`` an
        object).

    Raises
    ------
    RunFileError
        If the file is missing, empty, not valid JSON (e.g. truncated), not a JSON object, or lacks
        a key or has one of the wrong type.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunFileError(f"{path} is not valid JSON (truncated?): {err.msg} (line {err.lineno}, "
                           f"column {err.colno})") from None
    if not isinstance(meta, dict):
        raise RunFileError(f"{path} holds a JSON {type(meta).__name__}, not an object")
    missing = [key for key in RUN_KEYS if key not in meta]
    if missing:
        raise RunFileError(f"{path} lacks key(s) {', '.join(missing)}")
    for key, kind in RUN_KEYS.items():
        value = meta[key]
        wrong = (not isinstance(value, kind) or isinstance(value, bool)
                 or (kind is str and not value.strip())
                 or (key == "wall_time_s" and not math.isfinite(value)))
        if wrong:
            raise RunFileError(f"{path} has '{key}' = {json.dumps(value)}, not {_kind_name(kind)}")
    return meta


def _kind_name(kind) -> str:
    return {str: "a non-empty string", int: "an integer", dict: "a JSON object"}.get(kind, "a finite number")


def _read_csv_text(path: Path, required: Iterable[str]) -> tuple[str, list[str], list[list[str]]]:
    """Text, header and data rows of a CSV file; every row has as many fields as the header, the
    header has every `required` column once, there is at least one data row, and the text ends
    with a newline (as every file pandas writes does), so a file cut inside its last field is not
    taken for a shorter value."""
    text = _read_text(path)
    if not text.endswith("\n"):
        raise RunFileError(f"{path} ends in the middle of a line (truncated?)")
    try:
        lines = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as err:
        raise RunFileError(f"{path} is not parseable CSV: {err}") from None
    header, body = lines[0], lines[1:]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise RunFileError(f"{path} has column(s) {', '.join(repeated)} more than once")
    missing = [c for c in required if c not in header]
    if missing:
        raise RunFileError(f"{path} lacks column(s) {', '.join(missing)}")
    if not body:
        raise RunFileError(f"{path} has no rows")
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise RunFileError(f"{path} row {number} has {len(row)} field(s), the header "
                               f"{len(header)} (truncated?)")
    return text, header, body


def _numeric(path: Path, column: str, raw: pd.Series) -> pd.Series:
    """`raw` (strings) as finite numbers, empty or ``nan`` fields as NaN; RunFileError naming the
    row of the first other field that is not a finite number (the header is row 1)."""
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() & ~raw.str.strip().str.lower().isin(_MISSING_VALUES)) | np.isinf(values)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RunFileError(f"{path} column {column} row {row + 2}: {raw.iloc[row]!r} is not a finite "
                           f"number")
    return values


def read_progress(path: Path | str) -> pd.DataFrame:
    """Read and check one ``progress.csv``.

    Returns
    -------
    DataFrame, shape (n_rows, n_columns)
        Every column numeric (integers where every value is one), rows sorted by ``iteration``.
        :data:`PROGRESS_COLUMNS` are all present.

    Raises
    ------
    RunFileError
        If the file is missing, empty, not parseable, ends inside a line or has a row with the
        wrong number of fields (e.g. truncated), lacks a shared column, has no rows, has a value
        that is not a finite number (empty fields are NaN), a counter (:data:`COUNTER_COLUMNS`)
        that is missing in a row, negative or decreasing with the iteration, an iteration that is
        not a whole number or repeats, or no ``eval_return_mean`` in any row (such a run would
        drop out of every table).
    """
    path = Path(path)
    _, header, body = _read_csv_text(path, PROGRESS_COLUMNS)
    raw = pd.DataFrame(body, columns=header)
    progress = pd.DataFrame({c: _numeric(path, c, raw[c]) for c in header})
    for column in COUNTER_COLUMNS:
        values = progress[column]
        if values.isna().any() or (values < 0).any():
            row = int(np.flatnonzero((values.isna() | (values < 0)).to_numpy())[0])
            raise RunFileError(f"{path} column {column} row {row + 2}: {raw[column].iloc[row]!r} "
                               f"is not a count (a number >= 0 in every row)")
    iterations = progress["iteration"]
    if (iterations != iterations.round()).any():
        raise RunFileError(f"{path} column iteration has a value that is not a whole number")
    if iterations.duplicated().any():
        raise RunFileError(f"{path} repeats iteration {iterations[iterations.duplicated()].iloc[0]:g}")
    progress = progress.sort_values("iteration", ignore_index=True)
    for column in COUNTER_COLUMNS[1:]:
        falls = np.flatnonzero(np.diff(progress[column].to_numpy(dtype=float)) < 0)
        if falls.size:
            raise RunFileError(f"{path} column {column} decreases at iteration "
                               f"{progress['iteration'].iloc[falls[0] + 1]:g} (a cumulative counter)")
    if progress["eval_return_mean"].isna().all():
        raise RunFileError(f"{path} has no eval_return_mean in any row")
    return progress


def read_reference(path: Path | str, text_columns: Iterable[str] = (),
                   number_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read and check a table of published numbers (``paper/reference/*.csv``).

    Parameters
    ----------
    path : Path or str
        The CSV file.
    text_columns, number_columns : iterable of str
        Columns it must have; those of `number_columns` must hold numbers (empty fields are NaN:
        the paper has no value there).

    Returns
    -------
    DataFrame
        The table as pandas reads it (every column it has).

    Raises
    ------
    RunFileError
        If the file is missing, empty, not parseable, ends inside a line or has a row with the
        wrong number of fields (e.g. truncated), lacks a column, has no rows, or a non-number or
        infinite value in a number column.
    """
    path = Path(path)
    text_columns, number_columns = list(text_columns), list(number_columns)
    text, header, body = _read_csv_text(path, [*text_columns, *number_columns])
    raw = pd.DataFrame(body, columns=header)
    for column in number_columns:
        _numeric(path, column, raw[column])
    return pd.read_csv(io.StringIO(text))


def _lookup(meta: dict, key_path: str) -> object:
    """``meta["a"]["b"]`` for ``key_path`` ``"a.b"``; NaN if a key on the way is missing or null."""
    value = meta
    for key in key_path.split("."):
        if not isinstance(value, dict) or key not in value:
            return np.nan
        value = value[key]
    return np.nan if value is None else value


def load_run(run_dir: Path | str, meta_columns: Mapping[str, str] | None = None,
             required: Mapping[str, Collection[str]] | None = None) -> pd.DataFrame:
    """Read and check one run directory into a table with ``algo``, ``env``, ``seed`` first.

    Parameters
    ----------
    run_dir : Path or str
        Directory holding ``progress.csv`` and ``run.json`` (:func:`read_progress`,
        :func:`read_run_json`).
    meta_columns : mapping of str to str, optional
        Extra ``run.json`` values to add as constant columns after ``seed``: column name -> dotted
        key path, e.g. ``{"frame_skip": "config.frame_skip", "workers": "workers"}``. A run whose
        ``run.json`` lacks the path (or has null there) gets NaN; a value that is not a number,
        string or boolean is an error.
    required : mapping of str to collection of str, optional
        Per algorithm, the meta columns whose value must be a finite number for its runs, e.g.
        ``{"es": ["frame_skip"]}``.

    Returns
    -------
    DataFrame, shape (n_iterations, 3 + n_meta_columns + n_progress_columns)
        One row per iteration, sorted by ``iteration``. Columns of ``progress.csv`` named like the
        id or meta columns are replaced by the values of ``run.json``.

    Raises
    ------
    RunFileError
        If the directory does not exist or holds neither run file, or either file is missing or
        damaged (see :func:`read_progress` and :func:`read_run_json`), or a meta value is not a
        scalar, or a required one is not a finite number.
    """
    run_dir = Path(run_dir)
    progress_path, meta_path = run_dir / "progress.csv", run_dir / "run.json"
    if not run_dir.is_dir():
        raise RunFileError(f"run directory {run_dir} does not exist")
    if not progress_path.exists() and not meta_path.exists():
        raise RunFileError(f"run directory {run_dir} has no run files (progress.csv, run.json)")
    meta = read_run_json(meta_path)
    progress = read_progress(progress_path)
    meta_columns = dict(meta_columns or {})
    values = {column: _lookup(meta, key_path) for column, key_path in meta_columns.items()}
    for column, value in values.items():
        if not isinstance(value, (str, int, float)):
            raise RunFileError(f"{meta_path} has {json.dumps(value)} at {meta_columns[column]}, not a "
                               f"single value")
    for column in (required or {}).get(meta["algo"], ()):
        value = values[column]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            shown = "no value" if value is np.nan else json.dumps(value)
            raise RunFileError(f"{meta_path} has {shown} at {meta_columns[column]}, but {meta['algo']} "
                               f"runs need a number there")
    progress = progress.drop(columns=[c for c in (*ID_COLUMNS, *meta_columns) if c in progress.columns])
    ids = pd.DataFrame({"algo": meta["algo"], "env": meta["env"], "seed": meta["seed"]} | values,
                       index=progress.index)
    return pd.concat([ids, progress], axis=1)


def load_runs(run_dirs: Iterable[Path | str], meta_columns: Mapping[str, str] | None = None,
              required: Mapping[str, Collection[str]] | None = None) -> pd.DataFrame:
    """Read and check many run directories into one long table, one row per (run, iteration).

    Parameters
    ----------
    run_dirs : iterable of Path or str
        Run directories, each as accepted by :func:`load_run`.
    meta_columns, required : mapping, optional
        As in :func:`load_run`. The meta columns also identify a run, so runs that differ only in
        them (e.g. frame-skip variants, or scaling runs on different worker counts with the same
        seed) are allowed side by side.

    Returns
    -------
    DataFrame, shape (total_iterations, 3 + n_meta_columns + n_progress_columns)
        Columns ``algo``, ``env``, ``seed``, the meta columns, then the ``progress.csv`` columns;
        sorted by (algo, env, seed, meta columns..., iteration).

    Raises
    ------
    RunFileError
        As :func:`load_run`, for the first directory that cannot be read.
    RunSelectionError
        If no directory is given, or two directories hold the same run (algo, env, seed, meta
        columns); the message names both.
    """
    keys = [*ID_COLUMNS, *(meta_columns or {})]
    frames, seen = [], {}
    for run_dir in run_dirs:
        frame = load_run(run_dir, meta_columns, required)
        identity = tuple(frame[keys].iloc[0].map(str))
        if identity in seen:
            which = ", ".join(f"{k}={v}" for k, v in zip(keys, identity))
            raise RunSelectionError(f"run directories {seen[identity]} and {run_dir} hold the same run "
                                    f"({which})")
        seen[identity] = run_dir
        frames.append(frame)
    if not frames:
        raise RunSelectionError("no run directories given")
    return pd.concat(frames, ignore_index=True).sort_values([*keys, "iteration"], ignore_index=True)


def warn_left_out(runs_df: pd.DataFrame, left_out: pd.Series, output: str, reason: str,
                  meta_columns: Iterable[str] = ()) -> None:
    """Warn (UserWarning) naming every run a table or figure leaves out on purpose.

    Parameters
    ----------
    runs_df : DataFrame
        Long table from :func:`load_runs`.
    left_out : Series of bool, aligned with `runs_df`
        True on the rows of the runs left out.
    output, reason : str
        What leaves them out (e.g. ``"Table 2"``) and why (e.g. ``"frame_skip is not 4"``).
    meta_columns : iterable of str
        Meta columns shown beside algo, env and seed.
    """
    keys = [*ID_COLUMNS, *meta_columns]
    runs = runs_df.loc[left_out, keys].drop_duplicates()
    if not runs.empty:
        names = "; ".join(" ".join(f"{k}={_shown(v)}" for k, v in zip(keys, row))
                          for row in runs.itertuples(index=False))
        warnings.warn(f"{output} leaves out {len(runs)} run(s) ({reason}): {names}", stacklevel=3)


def _shown(value: object) -> str:
    """A meta value as a reader expects it: ``4.0`` -> ``"4"`` (meta columns turn float beside NaN)."""
    return f"{value:g}" if isinstance(value, float) else str(value)
