"""The replica update shared by the worker processes of one host (scalar communication).

Every worker process keeps a replica of the run's state and applies each iteration's update to it
itself (paper Algorithm 2; ``replicas``). The update is a weighted sum of the iteration's noise
slices: for the paper's batch (5,000 pairs) and Humanoid's 159,505 parameters it reads about 3 GB
of the noise table and takes 0.4-0.6 s of a core, the same work in every process. On a host of many
workers that is many times the host's memory traffic, while the workers wait for it.

The processes of a host share it instead. The parameters are cut into slices of ``SLICE``; each
process that needs the new version claims free slices one at a time and computes them (an
``OpenES`` on the slice: every operation of the update is elementwise, so a slice is bit-identical
to the same elements of the whole update, ``OpenES.step``), writing the slice's parameters and Adam
moments into one file per run and version in the host's noise directory (``es.noise.noise_dir``).
When every slice is written, each process copies the whole state from the file. A slice claimed by
a process that died is claimed again; after ``WAIT_S`` without progress a process computes the
whole update alone. Two processes computing one slice write the same bytes, so no race changes the
result; the master still checks every replica's checksum.
"""

import fcntl
import math
import os
import time
from pathlib import Path

import numpy as np

from esrepro.es.noise import noise_dir
from esrepro.es.strategy import ESState, OpenES

#: Parameters per slice: large enough that numpy's per-call cost (two calls per pair and slice) stays
#: small beside the arithmetic, small enough that a 256-256 policy's update splits ~10 ways.
SLICE = 16_384

#: Seconds a process waits for slices claimed by live processes before computing the update alone.
WAIT_S = 60.0

_FREE, _DONE = 0, -1  # slice states; a claimed slice holds its process's pid


def update_file(run_key: str, version: int) -> Path:
    """The file through which a host's processes share the state of ``version`` of run ``run_key``."""
    return noise_dir() / f"esrepro-update-{run_key}-{version}.bin"


def shared_step(es: OpenES, noise_indices: np.ndarray, returns: np.ndarray, path: Path) -> None:
    """``es.step(noise_indices, returns)``, sharing the work with the host's other processes that
    call this with the same ``path`` and the same state (see the module docstring).

    Parameters
    ----------
    es : OpenES
        Updated in place: ``theta``, Adam's ``m``, ``v`` (float32, shape (dim,)) and ``t``.
    noise_indices : ndarray of int64, shape (n,)
    returns : ndarray of float64, shape (n, 2)
    path : Path
        ``update_file(run_key, version)`` of the version the update makes.
    """
    dim = es.theta.size
    table = _Table(path, math.ceil(dim / SLICE), dim)
    try:
        deadline = time.monotonic() + WAIT_S
        while not table.all_done():
            k = table.claim()
            if k is not None:
                lo, hi = k * SLICE, min(dim, (k + 1) * SLICE)
                opt = es.optimizer
                part = OpenES.from_state(ESState(es.theta[lo:hi], opt.m[lo:hi], opt.v[lo:hi], opt.t), es.noise,
                                         opt.stepsize, es.l2coeff)
                part.step(noise_indices + lo, returns)
                table.rows[:, lo:hi] = part.theta, part.optimizer.m, part.optimizer.v
                table.finish(k)
            elif time.monotonic() > deadline:
                es.step(noise_indices, returns)
                return
            else:
                time.sleep(0.001)
        es.theta, es.optimizer.m, es.optimizer.v = (np.array(row) for row in table.rows)
        es.optimizer.t += 1
    finally:
        table.close()


def remove(run_key: str, version: int) -> None:
    """Remove the shared file of ``version`` (processes that still map it keep their mapping)."""
    update_file(run_key, version).unlink(missing_ok=True)


class _Table:
    """The shared file: a header of one int64 state per slice (free, done, or the pid of the
    process computing it), then the new parameters and Adam's m and v (float32, shape (3, dim))."""

    def __init__(self, path: Path, slices: int, dim: int):
        header = 8 * slices
        size = header + 4 * 3 * dim
        if not path.exists():  # created whole under a temporary name, then published atomically
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                f.truncate(size)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process published it first
            finally:
                tmp.unlink()
        self.fd = os.open(path, os.O_RDWR)
        self.states = np.memmap(path, dtype=np.int64, mode="r+", shape=(slices,))
        self.rows = np.memmap(path, dtype=np.float32, mode="r+", offset=header, shape=(3, dim))

    def claim(self) -> int | None:
        """A free slice, or one whose process died (or is this one: an earlier call that failed),
        now claimed by this process; None if none."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            for k, state in enumerate(self.states):
                if state == _FREE or state == os.getpid() or (state > 0 and not _alive(int(state))):
                    self.states[k] = os.getpid()
                    return k
            return None
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def finish(self, k: int) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.states[k] = _DONE
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def all_done(self) -> bool:
        return bool((self.states == _DONE).all())

    def close(self) -> None:
        del self.states, self.rows
        os.close(self.fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
