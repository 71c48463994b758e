"""The coordinator of one host: the relay between the ES master and the host's worker processes
(paper section 2.1; the reference code ran one relay per machine, es_distributed/dist.py).

It is a Dask actor on one worker process of the host, and its methods run on that process's event
loop. The master calls it a few times per round (``hosts.Hosts``), over one connection held for the
run (``link``: cheaper than an actor call each time): a round's first call brings the new version
of the parameters (the update's scalars, the parameters themselves, or the full state)
and a block of episodes; later calls bring more blocks until the round is done. In between, the
host's worker processes (``host_queue.serve``) take chunks of the queue over a Unix socket: first
the update's slices, then episodes, a chunk at a time (guided: each takes 1/(2 x workers) of what
is left, at least one episode), so an iteration's tail on the host is one episode. The master
exchanges O(1) messages per host and block, never one per episode or per worker.

A worker process that dies closes its connection; its chunk goes back to the queue. With
``simulate``, no process connects: that many virtual workers take chunks in the same order and
sleep for them (``benchmarks/scale_simulation.py``).
"""

import asyncio
import collections
import math
import os
import pickle

from distributed import get_worker

from esrepro.distributed.host_queue import HEADER, WorkerFailure, socket_path
from esrepro.distributed.host_state import Version, claim, lock_file, slices, sweep, version_file
from esrepro.distributed.link import handler_name, serve
from esrepro.distributed.replicas import FullState, Update, checksum
from esrepro.distributed.tasks import EVAL, TRAIN
from esrepro.errors import RunFailed
from esrepro.es.noise import DIR_ENV
from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import ESState
from esrepro.run_config import RunConfig

#: The longest path a Unix socket may have (Linux: 108 bytes with the final NUL).
SOCKET_PATH_MAX = 107


def chunk_size(queued: int, workers: int) -> int:
    """Episodes a worker process takes at once (guided): 1/(2 x ``workers``) of the ``queued``
    ones, at least one."""
    return math.ceil(queued / (2 * max(1, workers)))


class WorkerError(Exception):
    """A chunk raised on a worker process (a bug, or an env that cannot run): the run stops."""


class Coordinator:
    """The host's queue and its copy of the run's state (one version file per version,
    ``host_state``).

    Parameters
    ----------
    run_key, host : str
        The run and the host (an address's host part) this coordinator serves.
    config : RunConfig
    reference : ndarray of uint8 or None
        The VBN reference batch (Atari), handed to each worker process once.
    dim, obs_dim : int
        The parameter count and the observation size (0 for Atari).
    simulate : dict, optional
        ``workers`` (count), ``lengths`` (episode lengths to draw from), ``step_s`` (seconds per
        step), ``slice_s`` (seconds per update slice): virtual workers instead of processes.
    """

    def __init__(self, run_key: str, host: str, config: RunConfig, reference, dim: int, obs_dim: int,
                 simulate: dict | None = None):
        self.run_key, self.host, self.config, self.reference = run_key, host, config, reference
        self.dim, self.obs_dim, self.simulate = dim, obs_dim, simulate
        self.version = self.crc = None
        self.adam_t, self.obstat = 0, None
        self.queue: collections.deque = collections.deque()  # chunks' items not handed out yet
        self.context: dict = {}  # what the round's episode chunks carry besides their items
        self.round = 0  # chunks of earlier rounds are abandoned: their results are dropped
        self.in_flight = 0  # items handed out in this round and not returned
        self.results: list = []  # returned since the last report
        self.connected = 0
        self.chunks_rerun = 0  # chunks handed out again after their worker process died
        self.failure: str | None = None  # the traceback of a chunk that raised
        self._changed = self._server = None
        self._versions: dict[int, Version] = {}
        self._slice_context: dict = {}  # what an update's slice chunks carry besides their slice
        self._slices_left = 0
        self._lock = claim(run_key, host)  # before any file of the run: ``sweep`` leaves them alone
        sweep()  # killed runs' files
        self._worker = get_worker()  # the master's calls arrive through its handler (``link.Link``)
        self._worker.handlers[handler_name(run_key)] = self._master

    # -- the master's calls ---------------------------------------------------------------------
    async def start(self, version: int, payload: bytes | None, items: bytes, context: dict, more: bool,
                    chunk_items=None) -> dict:
        """Begin a round on ``version`` of the parameters, then run ``items`` (``add``).

        Parameters
        ----------
        version : int
        payload : bytes or None
            What brings the host to ``version``, pickled: ("update", Update) from ``version - 1``
            (scalar mode; the host's processes compute its slices), ("theta", theta, obs_mean,
            obs_std) (broadcast mode), ("state", FullState) (a host without a current replica),
            or None when the host is at ``version`` already.
        items, context, more, chunk_items
            As ``add``; ``context`` also holds ``iteration`` and ``max_steps`` for the round's
            training episodes.

        Returns
        -------
        dict
            As ``add``, or {"stale": True} when ``payload`` cannot bring the host to ``version``
            (the master then sends the full state).
        """
        await self._started()
        if payload is not None:
            payload = pickle.loads(payload)
            if payload[0] == "update" and self.version == version - 1:
                await self._update(version, payload[1])
            elif payload[0] == "theta":
                self._install(version, None, *payload[1:])
            elif payload[0] == "state":
                state: FullState = payload[1]
                self.obstat = None if state.obstat is None else ObsStats.from_sums(*state.obstat)
                self.adam_t = state.es.adam_t
                self._install(version, state.es, state.es.theta, *self._obs_stats())
        if self.version != version:
            return {"stale": True}
        self.round += 1
        self.queue.clear()
        self.in_flight, self.results = 0, []
        self.context = {"kind": "episodes", "version": version} | context
        return await self.add(items, more, chunk_items)

    async def add(self, items: bytes, more: bool, chunk_items=None) -> dict:
        """Queue ``items`` (a pickled list of ``tasks.run_episodes``'s items) and report back once
        the queue holds fewer items than the host has workers (``more``: the master has more for
        it) or once every item of the round is done. ``chunk_items``: items per chunk (None:
        guided).

        Returns
        -------
        dict
            ``results``: ``run_episodes`` results returned since the last report (a pickled
            list: Dask would walk a list item by item); ``crc``: the checksum of the version's
            parameters; ``workers``: processes connected; ``chunks_rerun``: chunks handed out
            again so far because their process died.
        """
        self.queue.extend(pickle.loads(items))
        self.context["chunk_items"] = chunk_items
        self._wake()
        if more:  # report when the host's workers would soon run out
            await self._until(lambda: len(self.queue) < max(1, self.connected) or self.failure)
        else:  # report when the round is done here
            await self._until(lambda: (not self.queue and not self.in_flight) or self.failure)
        if self.failure:
            raise WorkerError(f"a worker process of host {self.host} failed:\n{self.failure}")
        results, self.results = self.results, []
        return {"results": pickle.dumps(results, protocol=5), "crc": self.crc, "workers": self.connected,
                "chunks_rerun": self.chunks_rerun}

    async def abandon(self) -> None:
        """Drop the round's queued items and the results of its chunks in flight (the first-come
        batch is full; the master counts them)."""
        self.queue.clear()
        self.round += 1
        self.in_flight = 0
        self._wake()

    async def close(self) -> None:
        """End the run on this host: the worker processes stop serving it, the files go."""
        self.round += 1
        self.queue.clear()
        self.queue.append(None)  # every worker's next chunk: the end
        self._wake()
        await asyncio.sleep(0.2)
        if self._server is not None:
            self._server.close()
            socket_path(self.run_key, self.host).unlink(missing_ok=True)
        if self._worker.handlers.get(handler_name(self.run_key)) == self._master:  # not a newer coordinator's
            del self._worker.handlers[handler_name(self.run_key)]
        for v in list(self._versions):
            version_file(self.run_key, self.host, v).unlink(missing_ok=True)
        lock_file(self.run_key, self.host).unlink(missing_ok=True)
        os.close(self._lock)

    async def _master(self, comm):
        """The master's connection (a handler of this worker's: ``link``)."""
        return await serve(comm, self)

    # -- the host's side ------------------------------------------------------------------------
    async def _started(self):
        if self._changed is not None:
            return
        self._changed = asyncio.Event()
        if self.simulate:
            for _ in range(self.simulate["workers"]):
                asyncio.get_running_loop().create_task(self._virtual_worker())
            self.connected = self.simulate["workers"]
        else:
            path = socket_path(self.run_key, self.host)
            if len(os.fsencode(path)) > SOCKET_PATH_MAX:
                raise RunFailed(f"the host queue's socket {path} is longer than {SOCKET_PATH_MAX} bytes: set "
                                f"{DIR_ENV} to a shorter directory")
            path.unlink(missing_ok=True)
            self._server = await asyncio.start_unix_server(self._serve, path=str(path))
            os.chmod(path, 0o600)

    def _wake(self):
        """Something changed: every ``_until`` checks its condition again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _until(self, condition):
        while not condition():
            await self._changed.wait()

    async def _next_chunk(self):
        """The next chunk for a worker: waits until the queue has one. Slices go one at a time;
        episodes of one kind as many as ``chunk_items``, or 1/(2 x workers) of those queued."""
        await self._until(lambda: self.queue)
        if self.queue[0] is None:
            return None
        if self.queue[0][0] == "slice":
            item = self.queue.popleft()
            return self.round, [item], {"kind": "slices", "slices": [item[1:]]} | self._slice_context
        kind = self.queue[0][0]
        size = self.context.get("chunk_items") or chunk_size(len(self.queue), self.connected)
        items = []
        while self.queue and self.queue[0] is not None and self.queue[0][0] == kind and len(items) < size:
            items.append(self.queue.popleft())
        self.in_flight += len(items)
        iteration = self.context["version"] if kind == EVAL else self.context["iteration"]
        return self.round, items, self.context | {"iteration": iteration, "items": items}

    def _done(self, chunk, result) -> None:
        round_, items, message = chunk
        if isinstance(result, WorkerFailure):
            self.failure = result
        elif message["kind"] == "slices":
            self._slices_left -= 1
        elif round_ == self.round:
            self.in_flight -= len(items)
            self.results += result
        self._wake()

    def _requeue(self, chunk) -> None:
        """A worker died with ``chunk``: its items go back to the front of the queue."""
        round_, items, message = chunk
        if message["kind"] == "slices" or round_ == self.round:
            if message["kind"] != "slices":
                self.in_flight -= len(items)
            self.queue.extendleft(reversed(items))
            self.chunks_rerun += 1
            self._wake()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One worker process's connection: the setup, then a chunk per result."""
        chunk = None
        self.connected += 1
        try:
            await self._write(writer, {"config": self.config, "reference": self.reference, "dim": self.dim,
                                       "obs_dim": self.obs_dim})
            while True:
                result = await self._read(reader)
                if chunk is not None:
                    self._done(chunk, result)
                    chunk = None
                chunk = await self._next_chunk()
                await self._write(writer, None if chunk is None else chunk[2])
                if chunk is None:
                    return
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            if chunk is not None:
                self._requeue(chunk)
        finally:
            self.connected -= 1
            writer.close()

    @staticmethod
    async def _read(reader):
        size = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
        return pickle.loads(await reader.readexactly(size))

    @staticmethod
    async def _write(writer, obj):
        data = pickle.dumps(obj, protocol=5)
        writer.write(HEADER.pack(len(data)) + data)
        await writer.drain()

    async def _virtual_worker(self):
        """A simulated worker process: takes chunks in queue order and sleeps for them."""
        sim = self.simulate
        while True:
            chunk = await self._next_chunk()
            if chunk is None:
                return
            _, items, message = chunk
            if message["kind"] == "slices":
                await asyncio.sleep(sim["slice_s"])
                self._done(chunk, None)
                continue
            # draws from the hash of (seed, iteration, item): the same for any N, and cheap (a
            # generator per item cost the simulated hosts more CPU than their coordinators)
            keys = [(self.config.seed, message["iteration"], *item[1:]) for item in items]
            lengths = [int(sim["lengths"][hash(key) % len(sim["lengths"])]) for key in keys]
            if message["max_steps"] is not None and items[0][0] == TRAIN:
                lengths = [min(n, message["max_steps"]) for n in lengths]
            await asyncio.sleep(sum(lengths) * sim["step_s"])
            results = []
            for item, key, n in zip(items, keys, lengths):
                if item[0] == TRAIN:
                    results.append((TRAIN, item[1], item[2], hash((*key, 1)) % 10**6, hash((*key, 2)) % 10**6 / 10**6,
                                    n, None, None))
                else:
                    results.append((EVAL, item[1], 0.0, n))
            self._done(chunk, results)

    # -- versions -------------------------------------------------------------------------------
    def _version(self, v: int, create: bool = False) -> Version:
        if create or v not in self._versions:
            self._versions[v] = Version.open(version_file(self.run_key, self.host, v), self.dim, self.obs_dim, create)
        for old in [k for k in self._versions if k < v - 1]:  # no process reads them any more
            del self._versions[old]
            version_file(self.run_key, self.host, old).unlink(missing_ok=True)
        return self._versions[v]

    def _obs_stats(self):
        return (None, None) if self.obstat is None else (self.obstat.mean, self.obstat.std)

    def _install(self, version: int, state: ESState | None, theta, obs_mean, obs_std) -> None:
        self._version(version, create=True).write(state, theta, obs_mean, obs_std)
        self.version, self.crc = version, (None if self.simulate else checksum(theta))

    async def _update(self, version: int, update: Update) -> None:
        """Bring the host from ``version - 1`` to ``version``: its processes compute the update's
        slices into the new version's file (``host_state.compute_slice``), then the observation
        statistics are added here."""
        self._version(version, create=True)
        self._slice_context = {"version": version, "adam_t": self.adam_t, "noise_indices": update.noise_indices,
                               "returns": update.returns}
        bounds = slices(self.dim, self.connected)
        self._slices_left = len(bounds)
        self.queue.clear()
        self.queue.extend(("slice", lo, hi) for lo, hi in bounds)
        self._wake()
        await self._until(lambda: not self._slices_left or self.failure)
        if self.failure:
            raise WorkerError(f"a worker process of host {self.host} failed:\n{self.failure}")
        for s, ss, c in update.obs:
            self.obstat.increment(s, ss, c)
        new = self._versions[version]
        if self.obstat is not None:
            new.obs_mean[:], new.obs_std[:] = self.obstat.mean, self.obstat.std
        self.adam_t += 1
        self.version, self.crc = version, (None if self.simulate else checksum(new.theta))
