"""Shared noise table (paper section 2.1, Algorithm 2; reference code es_distributed/es.py,
class SharedNoiseTable).

Every worker holds the same block of Gaussian noise, built from a fixed seed, so a perturbation
travels as one integer: the start index of a contiguous slice. As in the reference code (which
put the table in ``multiprocessing`` shared memory), the table exists once per host: the first
process builds it as an ``.npy`` file in a host-local directory and every process on the host
(master and Dask workers) memory-maps that file read-only, so the pages are shared.
"""

import contextlib
import fcntl
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

#: Size of the reference code's table: 250,000,000 float32 values (1 GB), seed 123.
PAPER_SIZE = 250_000_000
PAPER_SEED = 123

#: Environment variable naming the directory of the table files (default: /dev/shm, else the
#: system temp directory).
DIR_ENV = "ESREPRO_NOISE_DIR"

#: Bumped whenever the file content or layout for a given (size, seed) changes.
FORMAT_VERSION = 1

#: float32 values generated per block while building (16 MB): no full-size private temporary.
BUILD_BLOCK = 1 << 22

#: Leading values compared with the generator on every open (cheap check against a file of
#: the right shape holding other data).
CHECK_VALUES = 1024

log = logging.getLogger(__name__)


def noise_dir() -> Path:
    """The directory holding the table files (and each host's files of a run's versions,
    ``distributed.host_state``, and its coordinator's socket): ``$ESREPRO_NOISE_DIR`` if set
    (created if missing), else ``/dev/shm`` when it is a writable directory, else
    ``tempfile.gettempdir()``.

    Raises
    ------
    ValueError
        If ``ESREPRO_NOISE_DIR`` is set but cannot be created or is not a directory.
    """
    configured = os.environ.get(DIR_ENV)
    if configured:
        try:
            os.makedirs(configured, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{DIR_ENV}={configured!r} is not a usable directory: {err}") from err
        return Path(configured)
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def _generate_head(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(min(size, CHECK_VALUES), dtype=np.float32)


def _open_valid(path: Path, size: int, seed: int) -> np.ndarray | None:
    """The file at ``path`` mapped read-only, or None if it is missing, unreadable as ``.npy``,
    of another shape or dtype, or its leading values differ from the generator's."""
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return None
    except (ValueError, OSError, EOFError) as err:  # bad header, or shorter than its header says
        log.warning("noise table file %s is corrupt (%s); rebuilding it", path, err)
        return None
    head = _generate_head(seed, size)
    if table.dtype != np.float32 or table.shape != (size,) or not np.array_equal(table[:head.size], head):
        log.warning("noise table file %s holds other data (dtype %s, shape %s); rebuilding it",
                    path, table.dtype, table.shape)
        return None
    return np.asarray(table)  # a plain ndarray view; keeps the mapping alive through .base


def _build(path: Path, size: int, seed: int) -> None:
    """Write the table to a temporary file next to ``path`` and rename it into place (atomic:
    a crash mid-write never leaves a partial table under ``path``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(size,))
        if hasattr(os, "posix_fallocate"):  # Linux; reserve the pages: ENOSPC here, not SIGBUS later
            with open(tmp, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, os.path.getsize(tmp))
        rng = np.random.default_rng(seed)
        for start in range(0, size, BUILD_BLOCK):  # same stream as one standard_normal(size) call
            rng.standard_normal(dtype=np.float32, out=out[start:start + BUILD_BLOCK])
        out.flush()
        del out
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other users' processes may map it too
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class NoiseTable:
    """A seeded block of standard-normal float32 noise, one copy per host, shared by all its
    processes through a read-only memory map.

    Parameters
    ----------
    size : int
        Number of float32 values (4 * size bytes, once per host). The paper's table is
        ``PAPER_SIZE`` (1 GB); the default config uses 25,000,000 (100 MB).
    seed : int
        Seed of the generator that fills the table.

    Attributes
    ----------
    noise : ndarray of float32, shape (size,)
        The table, read-only (``noise[i] = x`` raises ValueError).
    path : pathlib.Path
        The file the table is mapped from.
    built : bool
        True if this process generated the file, False if it mapped an existing one.

    Notes
    -----
    The table lives in ``<dir>/esrepro-noise-v<FORMAT_VERSION>-<size>-<seed>.npy`` with ``<dir>``
    from ``noise_dir()``: ``$ESREPRO_NOISE_DIR``, else ``/dev/shm``, else the temp directory.
    The directory should be host-local (``fcntl.flock`` locking; a shared file system would
    serve every host from one file). Where /dev/shm is small (containers often get 64 MB), set
    ``ESREPRO_NOISE_DIR`` to a local disk directory: the file is then shared through the page
    cache, again one copy per host. The first process to need the table builds it under
    an exclusive lock on ``<file>.lock``, writing a temporary file and renaming it into place;
    the others wait on the lock and then map the finished file. On every open the header
    (dtype, shape), the file length and the first 1024 values are checked; a file that fails
    is rebuilt.

    The file persists after the run ends: it is a per-host cache that later runs with the same
    (size, seed) map at once. It occupies RAM while it sits in /dev/shm (tmpfs). Delete it with
    ``rm <dir>/esrepro-noise-*`` when no run is using it (processes that still map it keep
    their pages until they exit).

    Deviation from the reference code: values come from ``numpy.random.default_rng(seed)
    .standard_normal(size, dtype=float32)`` rather than ``RandomState(seed).randn(size)``
    cast to float32: the same distribution, generated without a float64 temporary (which would
    need 8 GB at the paper's size). The build fills the file block by block from one generator,
    which yields exactly the values of a single ``standard_normal(size)`` call.

    Raises
    ------
    ValueError
        If ``size`` is not positive, or ``ESREPRO_NOISE_DIR`` is not a usable directory.
    OSError
        If the directory has no room for the table (``ENOSPC`` from ``posix_fallocate``) or
        cannot be written.
    """

    def __init__(self, size: int, seed: int):
        if size <= 0:
            raise ValueError(f"noise table size must be positive, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.path = noise_dir() / f"esrepro-noise-v{FORMAT_VERSION}-{self.size}-{self.seed}.npy"
        self.built = False
        noise = _open_valid(self.path, self.size, self.seed)
        if noise is None:
            noise = self._build_locked()
        self.noise = noise

    def _build_locked(self) -> np.ndarray:
        lock = os.open(f"{self.path}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            noise = _open_valid(self.path, self.size, self.seed)  # another process may have built it
            if noise is None:
                for stale in self.path.parent.glob(self.path.name + ".*.tmp"):  # crashed builders
                    stale.unlink(missing_ok=True)
                log.info("building noise table %s (%.0f MB)", self.path, self.size * 4 / 1e6)
                _build(self.path, self.size, self.seed)
                self.built = True
                noise = _open_valid(self.path, self.size, self.seed)
                if noise is None:
                    raise OSError(f"noise table {self.path} does not read back as written")
            return noise
        finally:
            os.close(lock)  # releases the lock

    def __reduce__(self):
        """Pickle as (size, seed), never the data: the receiving process maps its host's table."""
        return NoiseTable, (self.size, self.seed)

    def get(self, index: int, dim: int) -> np.ndarray:
        """The perturbation starting at ``index``: a read-only float32 view of shape (dim,)."""
        if not 0 <= index <= self.size - dim:
            raise IndexError(f"noise slice [{index}, {index + dim}) outside table of size {self.size}")
        return self.noise[index : index + dim]

    def sample_index(self, rng: np.random.Generator, dim: int) -> int:
        """A uniformly random start index whose slice of length ``dim`` fits in the table.

        Raises
        ------
        ValueError
            If the table is smaller than ``dim``.
        """
        if dim > self.size:
            raise ValueError(f"noise table of size {self.size} is smaller than the {dim} parameters")
        return int(rng.integers(0, self.size - dim + 1))
