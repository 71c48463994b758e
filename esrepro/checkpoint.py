"""Checkpoints of a run's full state: arrays in ``checkpoint/state-<iteration>.npz``, scalars,
progress rows and the run's identity in ``checkpoint/checkpoint.json`` which names the current
``.npz``. The ``.npz`` is written first and the JSON replaced after it, both atomically, so a crash
at any moment leaves a consistent checkpoint (the previous one or the new one)."""

import json
from pathlib import Path

import numpy as np

from esrepro.atomic import write_json, write_npz
from esrepro.errors import InputError

#: Keys of the run parameters that may change between a checkpoint and its resumption: the budget,
#: the stopping target, and the communication mode (results do not depend on it).
BUDGET_KEYS = ("iterations", "timesteps", "target_return", "communication")


class CheckpointMismatch(InputError):
    """A checkpoint that belongs to another run configuration."""


def identity(env_id: str, seed: int, num_params: int, params: dict) -> dict:
    """What a checkpoint must match to be resumed: env, seed, parameter count and every run
    parameter except ``BUDGET_KEYS``."""
    ident = {"env": env_id, "seed": seed, "num_params": num_params,
             "params": {k: v for k, v in params.items() if k not in BUDGET_KEYS}}
    return json.loads(json.dumps(ident))  # the form it takes in the JSON file (tuples -> lists)


def save(directory: Path, ident: dict, arrays: dict, scalars: dict) -> None:
    """Write a checkpoint for ``scalars["iteration"]`` and remove older state files.

    Parameters
    ----------
    ident : dict
        From ``identity``.
    arrays : dict of str -> ndarray
        Numeric arrays (parameters, optimizer moments, observation sums).
    scalars : dict
        JSON-serialisable counters and progress rows; must hold ``iteration``.
    """
    directory = Path(directory) / "checkpoint"
    name = f"state-{scalars['iteration']:06d}.npz"
    write_npz(directory / name, **arrays)
    write_json(directory / "checkpoint.json", {"identity": ident, "state_file": name, **scalars})
    for old in directory.glob("state-*.npz"):
        if old.name != name:
            old.unlink()


def load(directory: Path, ident: dict):
    """The checkpoint in ``directory`` as (arrays, scalars), or None if there is none.

    Raises
    ------
    CheckpointMismatch
        If the checkpoint was made for another env, seed, parameter count or run parameter
        (budget keys excepted); the message names the differing keys and values.
    """
    path = Path(directory) / "checkpoint" / "checkpoint.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    theirs = saved.pop("identity")
    if theirs != ident:
        diffs = [f"{k}: checkpoint {theirs.get(k)!r} vs run {ident[k]!r}" for k in ("env", "seed", "num_params")
                 if theirs.get(k) != ident[k]]
        diffs += [f"params.{k}: checkpoint {theirs['params'].get(k)!r} vs run {v!r}"
                  for k, v in ident["params"].items() if theirs["params"].get(k) != v]
        raise CheckpointMismatch(f"checkpoint {path} belongs to another run ({'; '.join(diffs)}); "
                                 "remove that directory or choose another output directory")
    with np.load(path.parent / saved.pop("state_file"), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, saved
