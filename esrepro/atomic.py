"""Atomic file writes: write a temporary file in the target's directory, then ``os.replace``, so a
reader never sees a half-written result (DESIGN.md, Results)."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _replace_from_temp(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent directories."""
    _replace_from_temp(path, lambda f: f.write(text.encode()))


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON atomically (floats round-trip exactly)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npz(path, **arrays) -> None:
    """Write numpy arrays to an ``.npz`` atomically (no object arrays: loadable with
    ``allow_pickle=False``)."""
    _replace_from_temp(path, lambda f: np.savez(f, **arrays))
