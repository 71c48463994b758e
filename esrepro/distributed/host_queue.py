"""The host-local queue, the worker processes' side: each worker process of a host takes chunks of
work from its host's coordinator (``coordinator.Coordinator``) over a Unix socket and hands back
their results, as the reference code's workers talked only to their machine's relay (paper
section 2.1; es_distributed/dist.py).

The coordinator listens on ``socket_path(run_key, host)`` in the host's noise directory; a
``HostWorkerPlugin`` registered for the run starts ``serve`` in a thread of every Dask worker
process (also those that join or restart later), which connects to the coordinator of its own host
(the host part of its address). Messages are pickles behind a 4-byte length. A process that dies
closes its connection, and the coordinator hands its chunk to another. A host's new coordinator (the
master took the old one for lost) replaces the socket file; a process waiting on the old one sees
that and connects to the new one.
"""

import hashlib
import os
import pickle
import select
import socket
import struct
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlparse

from distributed import WorkerPlugin

from esrepro.distributed.host_state import PREFIX, Version, compute_slice, version_file
from esrepro.distributed.tasks import run_episodes
from esrepro.es.noise import NoiseTable, noise_dir

HEADER = struct.Struct("!I")
#: What this process runs now, per run: the kind of its chunk ("slices" or "episodes"); none between
#: chunks (for the tests and the curious: ``client.run`` reads it).
running: dict[str, str] = {}
#: Seconds between attempts to reach a host's coordinator that is not listening yet.
RETRY_S = 0.05
#: Seconds between looks, while a process waits for its next chunk, at whether its host's
#: coordinator was replaced.
CHECK_S = 1.0


def host_of(address: str) -> str:
    """The host of a Dask address (``tcp://10.0.0.7:4523`` -> ``10.0.0.7``): what groups workers into hosts."""
    return urlparse(address).hostname


def socket_path(run_key: str, host: str) -> Path:
    """Where the coordinator of run ``run_key`` on ``host`` listens: the host's name hashed, as a
    socket's whole path must fit in 107 bytes (a long host name, or a noise directory of 50
    characters, had left too few)."""
    return noise_dir() / f"{PREFIX}{run_key}-{hashlib.sha1(host.encode()).hexdigest()[:8]}.sock"


def send(sock: socket.socket, obj) -> None:
    data = pickle.dumps(obj, protocol=5)
    sock.sendall(HEADER.pack(len(data)) + data)


def receive(sock: socket.socket):
    """The next message; raises EOFError when the other side closed the connection."""
    def exactly(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    return pickle.loads(exactly(HEADER.unpack(exactly(HEADER.size))[0]))


class WorkerFailure(str):
    """A chunk's result when running it raised: the traceback."""


class Runner:
    """What a worker process holds for one run: the coordinator's setup (config, VBN reference
    batch), the noise table and the mapped version files."""

    def __init__(self, run_key: str, host: str, setup: dict):
        self.run_key, self.host = run_key, host
        self.config, self.reference = setup["config"], setup["reference"]
        self.dim, self.obs_dim = setup["dim"], setup["obs_dim"]
        self.noise = NoiseTable(self.config.noise_table_size, self.config.noise_seed)
        self._versions: dict[int, tuple] = {}  # version -> (its file's identity, Version)

    def version(self, v: int) -> Version:
        """Version ``v``'s file, mapped; mapped again if the file is not the one mapped before (a
        new coordinator made it again after ``host_state.sweep`` removed it)."""
        path = version_file(self.run_key, self.host, v)
        identity = _identity(path)[:2]
        if self._versions.get(v, (None,))[0] != identity:
            self._versions = {k: x for k, x in self._versions.items() if k >= v - 1}
            self._versions[v] = identity, Version.open(path, self.dim, self.obs_dim)
        return self._versions[v][1]

    def run(self, chunk: dict):
        """The result of one chunk: slices of an update (None), or episodes (``run_episodes``)."""
        if chunk["kind"] == "slices":
            previous, new = self.version(chunk["version"] - 1), self.version(chunk["version"])
            c = self.config
            for lo, hi in chunk["slices"]:
                compute_slice(previous, new, lo, hi, chunk["adam_t"], self.noise, c.stepsize, c.l2coeff,
                              chunk["noise_indices"], chunk["returns"])
            return None
        v = self.version(chunk["version"])
        params = (v.theta, v.obs_mean, v.obs_std) if self.obs_dim else (v.theta, None, None)
        return run_episodes(self.config, self.reference, self.noise, params, chunk["iteration"], chunk["items"],
                            chunk["max_steps"])


def _identity(path: str) -> tuple:
    """What tells a socket file from the one that replaced it (inode numbers alone can be reused)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_ctime_ns


def _replaced(sock: socket.socket, path: str, identity: tuple, stop: threading.Event) -> bool:
    """Wait for the coordinator's next message on ``sock``; True, without one, once ``stop`` is set
    or the socket file at ``path`` is no longer the one connected to (a new coordinator took the
    host over: the old one hands out nothing more)."""
    while not select.select([sock], [], [], CHECK_S)[0]:
        try:
            if stop.is_set() or _identity(path) != identity:
                return True
        except FileNotFoundError:
            return True
    return False


def serve(run_key: str, host: str, stop: threading.Event) -> None:
    """A worker process's loop for run ``run_key``: connect to the host's coordinator (waiting for
    it to listen, and again after it went away or was replaced), then take chunks and return their
    results until ``stop`` is set or the coordinator says the run is over."""
    path, runner = str(socket_path(run_key, host)), None
    while not stop.is_set():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            identity = _identity(path)  # before connecting: a file replaced in between costs a reconnect
            sock.connect(path)
            setup = receive(sock)
            if runner is None:
                runner = Runner(run_key, host, setup)
            result = None
            while not stop.is_set():
                send(sock, result)
                if _replaced(sock, path, identity, stop):
                    break
                chunk = receive(sock)
                if chunk is None:  # the run is over
                    stop.set()
                    break
                running[run_key] = chunk["kind"]
                try:
                    result = runner.run(chunk)
                except Exception:  # the run cannot go on: the coordinator reports it to the master
                    result = WorkerFailure(traceback.format_exc())
                running.pop(run_key, None)
        except (FileNotFoundError, ConnectionRefusedError, EOFError, BrokenPipeError, ConnectionResetError):
            time.sleep(RETRY_S)  # no coordinator yet, or it went away: a new one takes its place
        finally:
            sock.close()


class HostWorkerPlugin(WorkerPlugin):
    """Starts ``serve`` for a run in every worker process, in a thread of its own (the process's
    task thread stays free for Dask)."""

    def __init__(self, run_key: str):
        self.run_key = run_key
        self._stop = self._thread = None

    def setup(self, worker):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=serve, args=(self.run_key, host_of(worker.address), self._stop),
                                        name=f"esrepro-{self.run_key}", daemon=True)
        self._thread.start()

    def teardown(self, worker):
        self._stop.set()
