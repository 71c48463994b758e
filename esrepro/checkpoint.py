"""Checkpoints of a run's full state, verified when read.

A checkpoint is ``<out_dir>/checkpoint/``: the arrays in ``state-<iteration>.npz``, and the run's
identity, counters, progress rows and a record of every array (SHA-256 of its bytes, shape,
dtype) in ``checkpoint.json``, which names the current ``.npz``. The ``.npz`` is written first and
the JSON replaced after it, both atomically, so a crash at any moment leaves a consistent
checkpoint (the previous one or the new one).

:func:`load` uses a checkpoint only if every check passes; otherwise it raises
:class:`CheckpointDamaged` (a damaged or incomplete file) or :class:`CheckpointMismatch` (another
run's checkpoint), one line naming the file and what is wrong. ES (esrepro/train.py) and the
baselines (esrepro/baselines/common.py, whose arrays are the bytes of SB3's own save files) share
this one mechanism.
"""

import functools
import hashlib
import json
import math
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from esrepro.atomic import write_json, write_npz
from esrepro.errors import InputError

#: Keys of the run parameters that may change between a checkpoint and its resumption: the budget,
#: the stopping target, and two that results do not depend on (the communication mode, and how
#: often checkpoints are written).
BUDGET_KEYS = ("iterations", "timesteps", "target_return", "communication", "checkpoint_every")

#: Keys every checkpoint.json holds besides the caller's counters.
REQUIRED_KEYS = ("identity", "state_file", "iteration", "rows", "checksums")


class CheckpointMismatch(InputError):
    """A checkpoint that belongs to another run configuration."""


class CheckpointDamaged(InputError):
    """A checkpoint file that is missing, unreadable, incomplete, fails its checksum or holds
    non-finite values; it is never used."""


def identity(env_id: str, seed: int, num_params: int, params: dict) -> dict:
    """What a checkpoint must match to be resumed: env, seed, parameter count and every run
    parameter except ``BUDGET_KEYS``."""
    ident = {"env": env_id, "seed": seed, "num_params": num_params,
             "params": {k: v for k, v in params.items() if k not in BUDGET_KEYS}}
    return json.loads(json.dumps(ident))  # the form it takes in the JSON file (tuples -> lists)


def state_path(directory: Path, iteration: int) -> Path:
    """The state file of the checkpoint of ``iteration`` in the run directory ``directory``."""
    return Path(directory) / "checkpoint" / f"state-{iteration:06d}.npz"


def damaged(directory: Path, file: Path, what: str) -> "CheckpointDamaged":
    """The error for ``file`` of the checkpoint in run directory ``directory``: one line naming
    the file, ``what`` is wrong, and how to start over."""
    return CheckpointDamaged(f"damaged checkpoint {file}: {what}; remove {Path(directory) / 'checkpoint'} "
                             "to start over")


def _sha256(a: np.ndarray) -> str:
    """SHA-256 (hex) of the C-ordered bytes of ``a``."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(directory: Path, ident: dict, arrays: dict, scalars: dict) -> None:
    """Write a checkpoint for ``scalars["iteration"]`` and remove older state files.

    Parameters
    ----------
    directory : path-like
        The run's output directory; the checkpoint goes to ``directory/checkpoint/``.
    ident : dict
        From ``identity``.
    arrays : dict of str -> ndarray
        Numeric arrays (parameters, optimizer moments, observation sums, or bytes as uint8);
        checkpoint.json records each one's SHA-256, shape and dtype.
    scalars : dict
        JSON-serialisable counters and progress rows; must hold ``iteration`` (int >= 0) and
        ``rows`` (list of dicts).
    """
    state = state_path(directory, scalars["iteration"])
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    checksums = {k: {"sha256": _sha256(a), "shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()}
    write_npz(state, **arrays)
    write_json(state.parent / "checkpoint.json", {"identity": ident, "state_file": state.name,
                                                  "checksums": checksums, **scalars})
    for old in state.parent.glob("state-*.npz"):
        if old != state:
            old.unlink()


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _is_finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _shape_str(shape) -> str:
    return "(" + ", ".join("any" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _read_json(path: Path, fail) -> dict:
    """checkpoint.json's object with every key of ``REQUIRED_KEYS`` present."""
    try:
        saved = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(path, "empty file" if not path.stat().st_size else f"not valid UTF-8 JSON ({exc})") from None
    if not isinstance(saved, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(saved), "number")
        raise fail(path, f"holds a JSON {kind}, not an object")
    missing = [k for k in REQUIRED_KEYS if k not in saved]
    if missing:
        raise fail(path, f"missing key(s) {', '.join(map(repr, missing))}")
    return saved


def _check_json(path: Path, saved: dict, shapes: Mapping, counters: Iterable[str], fail) -> None:
    """The scalars, the state file name and the array records of checkpoint.json."""
    if not _is_count(saved["iteration"]):
        raise fail(path, f"'iteration' is {saved['iteration']!r}, not a count")
    missing = [k for k in counters if k not in saved]
    if missing:
        raise fail(path, f"missing key(s) {', '.join(map(repr, missing))}")
    for key in counters:
        if not _is_finite_number(saved[key]):
            raise fail(path, f"'{key}' is {saved[key]!r}, not a finite number")
    if not (isinstance(saved["rows"], list) and all(isinstance(r, dict) for r in saved["rows"])):
        raise fail(path, "'rows' is not a list of objects")
    expected_name = state_path(".", saved["iteration"]).name
    if saved["state_file"] != expected_name:
        raise fail(path, f"'state_file' is {saved['state_file']!r}, expected {expected_name!r}")
    records = saved["checksums"]
    if not isinstance(records, dict) or set(records) != set(shapes):
        names = sorted(records) if isinstance(records, dict) else records
        raise fail(path, f"'checksums' records {names!r}, expected the arrays {sorted(shapes)!r}")
    for name, rec in records.items():
        if not (isinstance(rec, dict) and isinstance(rec.get("sha256"), str) and isinstance(rec.get("dtype"), str)
                and isinstance(rec.get("shape"), list) and all(_is_count(n) for n in rec["shape"])):
            raise fail(path, f"'checksums' entry of '{name}' is not {{sha256, shape, dtype}}: {rec!r}")


def _read_npz(path: Path, names, fail) -> dict:
    """The arrays ``names`` of the ``.npz`` at ``path`` (every byte read: zip CRCs checked)."""
    if not path.is_file():
        raise fail(path, "missing (checkpoint.json names it)")
    if not path.stat().st_size:
        raise fail(path, "empty file")
    if not zipfile.is_zipfile(path):
        raise fail(path, "not a complete zip archive (an .npz is one): truncated or another kind of file")
    try:
        with np.load(path, allow_pickle=False) as f:
            held = sorted(f.files)
            arrays = {k: f[k] for k in names if k in held}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise fail(path, f"not a readable .npz ({type(exc).__name__}: {exc})") from None
    absent = [k for k in names if k not in held]
    if absent:
        raise fail(path, f"array(s) {', '.join(map(repr, absent))} missing (it holds {held!r})")
    for k, a in arrays.items():
        if not isinstance(a, np.ndarray):  # NpzFile returns a member without the .npy header as bytes
            raise fail(path, f"'{k}' is not a .npy array")
    return arrays


def _check_arrays(path: Path, arrays: dict, records: dict, shapes: Mapping, fail) -> None:
    """Each array against its record (dtype, shape, SHA-256), the expected ``shapes`` and finiteness."""
    for name, a in arrays.items():
        rec, want = records[name], tuple(shapes[name])
        if a.dtype.str != rec["dtype"] or list(a.shape) != rec["shape"]:
            raise fail(path, f"array '{name}' is {a.dtype.str} {_shape_str(a.shape)}, checkpoint.json records "
                                f"{rec['dtype']} {_shape_str(rec['shape'])}")
        if len(a.shape) != len(want) or any(n is not None and n != m for n, m in zip(want, a.shape)):
            raise fail(path, f"array '{name}' has shape {_shape_str(a.shape)}, this run needs {_shape_str(want)}")
        if _sha256(a) != rec["sha256"]:
            raise fail(path, f"array '{name}' fails its SHA-256 checksum (checkpoint.json records "
                                f"{rec['sha256'][:12]}..., the file holds {_sha256(a)[:12]}...)")
        if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
            raise fail(path, f"array '{name}' holds {int(a.size - np.isfinite(a).sum())} non-finite value(s)")


def load(directory: Path, ident: dict, shapes: Mapping[str, tuple], counters: Iterable[str]):
    """The checkpoint in ``directory`` as (arrays, scalars), or None if there is none.

    Parameters
    ----------
    directory : path-like
        The run's output directory (the checkpoint is ``directory/checkpoint/``).
    ident : dict
        From ``identity``; the checkpoint's must be equal.
    shapes : mapping of str -> tuple
        Exactly the arrays the checkpoint must hold and their shapes; ``None`` in a shape accepts
        any length (e.g. ``(None,)`` for bytes).
    counters : iterable of str
        Keys of checkpoint.json that must hold finite numbers (besides ``iteration``, a count,
        and ``rows``, a list of objects, which every checkpoint holds).

    Returns
    -------
    (dict, dict) or None
        The arrays (as saved: dtype and shape recorded, SHA-256 verified, floats finite) and the
        scalars (every key of checkpoint.json except ``identity``, ``state_file``, ``checksums``).

    Raises
    ------
    CheckpointDamaged
        If checkpoint.json is empty, not JSON, not an object, lacks a key, or holds a bad value;
        or its state file is missing, empty, not a readable ``.npz``, lacks an array, holds one
        of another dtype or shape or with other bytes than recorded, or non-finite values. The
        message names the file and what is wrong, and says to remove the checkpoint directory
        to start over.
    CheckpointMismatch
        If the checkpoint was made for another env, seed, parameter count or run parameter
        (budget keys excepted); the message names the differing keys and values.
    """
    folder = Path(directory) / "checkpoint"
    path = folder / "checkpoint.json"
    if not path.is_file():
        return None

    fail = functools.partial(damaged, directory)
    counters = tuple(counters)
    saved = _read_json(path, fail)
    theirs = saved.pop("identity")
    if theirs != ident:
        if not isinstance(theirs, dict) or not isinstance(theirs.get("params"), dict):
            raise fail(path, f"'identity' is not an object with 'params': {theirs!r}")
        diffs = [f"{k}: checkpoint {theirs.get(k)!r} vs run {ident[k]!r}" for k in ("env", "seed", "num_params")
                 if theirs.get(k) != ident[k]]
        diffs += [f"params.{k}: checkpoint {theirs['params'].get(k)!r} vs run {v!r}"
                  for k, v in ident["params"].items() if theirs["params"].get(k) != v]
        diffs += [f"params.{k}: checkpoint {v!r} vs run None" for k, v in theirs["params"].items()
                  if k not in ident["params"]]
        raise CheckpointMismatch(f"checkpoint {path} belongs to another run ({'; '.join(diffs)}); "
                                 "remove that directory or choose another output directory")
    _check_json(path, saved, shapes, counters, fail)
    records = saved.pop("checksums")
    state = folder / saved.pop("state_file")
    arrays = _read_npz(state, shapes, fail)
    _check_arrays(state, arrays, records, shapes, fail)
    return arrays, saved
