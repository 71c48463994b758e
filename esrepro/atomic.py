"""Atomic file writes: write a temporary file in the target's directory, then ``os.replace``, so a
reader never sees a half-written result (docs/design.md, Results)."""

import contextlib
import json
import os
import uuid
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; on success move it onto ``path`` with ``os.replace``.

    The parent directory is created. The temporary name keeps the suffix of ``path`` (writers that
    pick the format from the suffix work) and is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent directories."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON atomically (floats round-trip exactly)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npz(path, **arrays) -> None:
    """Write numpy arrays to an ``.npz`` atomically (no object arrays: loadable with
    ``allow_pickle=False``)."""
    with atomic_output(path) as tmp:
        np.savez(tmp, **arrays)
