"""The state of a run on one host: one file per version of the parameters, shared by the host's
processes (docs/design.md, "Distribution").

The host's coordinator (``coordinator.Coordinator``) owns the files, and holds the run's lock file
on the host while it lives (``claim``); its worker processes read the parameters and observation
statistics of a version from them, and in the scalar communication mode (paper Algorithm 2)
compute the next version's slices into them. A version's file holds, as
float32: the parameters, Adam's two moments (scalar mode; zeros in broadcast mode), then the
observation mean and std (MuJoCo; none for Atari). It lives in the host's noise directory
(``es.noise.noise_dir``: /dev/shm by default), so a version costs one copy per host whatever the
number of its processes. A run that ends removes its files; a run that was killed leaves them,
until a later run's coordinator on the host sweeps them away (``sweep``).

The update is elementwise over the parameters (``OpenES.step``), so it is cut into slices that
the host's processes compute one each, all at once (``slices``): a slice is bit-identical to the
same elements of the whole update, whatever the cut, and the host reads the noise table once per
update instead of once per process.
"""

import collections
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esrepro.es.noise import NoiseTable, noise_dir
from esrepro.es.strategy import ESState, OpenES

#: Parameters per slice at least: enough that a slice's own costs (its chunk's round trip, reading
#: the pairs' weights) stay small beside its share of the noise table. A 256-256 policy's update
#: (159,505 parameters) still splits 18 ways, one slice for each process of an 18-process host.
SLICE = 8_192
#: Seconds a killed run's files stay untouched before ``sweep`` removes them.
STALE_S = 600
#: What every file of a run on a host starts with: ``esrepro-host-<run key>-<host>``.
PREFIX = "esrepro-host-"


def version_file(run_key: str, host: str, version: int) -> Path:
    """The file of ``version`` of run ``run_key`` on ``host`` (an address's host part)."""
    return noise_dir() / f"{PREFIX}{run_key}-{host}-{version}.bin"


def lock_file(run_key: str, host: str) -> Path:
    """Run ``run_key``'s lock file on ``host`` (``claim``)."""
    return noise_dir() / f"{PREFIX}{run_key}-{host}.lock"


def claim(run_key: str, host: str) -> int:
    """Hold run ``run_key``'s lock on ``host`` (a shared ``flock`` of its lock file) until the
    descriptor returned is closed or the process ends; ``sweep`` leaves the files of a run whose
    lock is held alone."""
    fd = os.open(lock_file(run_key, host), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def sweep() -> list[Path]:
    """Remove the files of killed runs from this host's noise directory: runs whose lock nobody
    holds (their coordinators' processes are gone) and whose files were all left untouched for
    ``STALE_S`` seconds. Returns the paths removed."""
    runs = collections.defaultdict(list)
    for path in noise_dir().glob(f"{PREFIX}*"):
        runs[path.name[len(PREFIX):].split("-", 1)[0]].append(path)  # run keys are hex, without "-"
    removed = []
    for paths in runs.values():
        try:
            if (time.time() - max(p.stat().st_mtime for p in paths) < STALE_S
                    or any(_held(p) for p in paths if p.suffix == ".lock")):
                continue
        except FileNotFoundError:  # its run is ending: it removes its own
            continue
        for path in paths:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (``claim``)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def slices(dim: int, workers: int) -> list[tuple[int, int]]:
    """The slices of a ``dim``-parameter update on a host of ``workers`` processes, as (start,
    stop) bounds: one per process, so that they run in one round (20 slices for 18 processes
    took two rounds, the second on 2 processes while 16 waited), of at least ``SLICE`` parameters
    where ``dim`` allows."""
    n = max(1, min(workers, dim // SLICE))
    return [(k * dim // n, (k + 1) * dim // n) for k in range(n)]


@dataclass
class Version:
    """A version's file, mapped: ``theta``, ``adam_m``, ``adam_v`` (float32, shape (dim,)) and
    ``obs_mean``, ``obs_std`` (float32, shape (obs_dim,); empty for Atari), views of one array."""

    theta: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray

    @classmethod
    def open(cls, path: Path, dim: int, obs_dim: int, create: bool = False) -> "Version":
        """Map ``path`` for reading and writing; ``create``: make it (zeros) if it does not exist.
        A version installed again (the full state after a stale replica) is written into the same
        file, never a new one, so that every process that mapped it reads the new values."""
        if create and not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                f.truncate(4 * (3 * dim + 2 * obs_dim))
            tmp.replace(path)
        data = np.memmap(path, dtype=np.float32, mode="r+", shape=(3 * dim + 2 * obs_dim,))
        return cls(data[:dim], data[dim:2 * dim], data[2 * dim:3 * dim], data[3 * dim:3 * dim + obs_dim],
                   data[3 * dim + obs_dim:])

    def write(self, state: ESState | None, theta: np.ndarray, obs_mean, obs_std) -> None:
        """Fill in a whole version: the parameters, Adam's moments if ``state`` is given, and the
        observation statistics (None for Atari)."""
        self.theta[:] = theta
        if state is not None:
            self.adam_m[:], self.adam_v[:] = state.adam_m, state.adam_v
        if obs_mean is not None:
            self.obs_mean[:], self.obs_std[:] = obs_mean, obs_std


def compute_slice(previous: Version, new: Version, lo: int, hi: int, adam_t: int, noise: NoiseTable,
                  stepsize: float, l2coeff: float, noise_indices: np.ndarray, returns: np.ndarray) -> None:
    """The update's elements ``lo`` to ``hi`` from ``previous`` into ``new``: an ``OpenES`` holding
    those elements of the parameters and Adam's moments (step ``adam_t``), told the noise indices
    shifted by the slice's start (``OpenES.step``)."""
    part = OpenES.from_state(ESState(previous.theta[lo:hi], previous.adam_m[lo:hi], previous.adam_v[lo:hi], adam_t),
                             noise, stepsize, l2coeff)
    part.step(noise_indices + lo, returns)
    new.theta[lo:hi], new.adam_m[lo:hi], new.adam_v[lo:hi] = part.theta, part.optimizer.m, part.optimizer.v
