"""How the workers learn each iteration's parameters: the run's ``communication`` setting (paper
Algorithm 2; docs/design.md, "Distribution").

- ``broadcast``: a payload ``(theta, obs_mean, obs_std)`` reaches every worker once per version,
  as in the reference code;
- ``scalar``: every worker keeps a ``Replica`` of the run's state (parameters, Adam, observation
  statistics) and brings it up to date itself from a ``Sync``: the last ``Update``'s noise indices,
  returns and observation sums, a few KB. Every result carries the checksum of the replica's
  parameters; the master, which applies the same update to its own state while the workers run the
  round, compares. A worker without a current replica, or whose checksum differs, is stale: its
  results are dropped, the master sends it the full state once and its tasks run again.

A version is the number of weight updates the parameters have had (= the iteration that produced
them). The master's side is ``Workers``: ``map`` runs tasks on the current version, ``advance``
moves to the next one. The workers' side is ``resolve``, called before every task.
"""

import collections
import pickle
import threading
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from distributed import as_completed, get_worker, wait

from esrepro.distributed import host_update
from esrepro.errors import RunFailed
from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import ESState, OpenES
from esrepro.run_config import RunConfig

#: Rounds of stale answers in a row (each followed by sending the full state) before a run gives up.
MAX_STALE_ROUNDS = 5


@dataclass
class Update:
    """One iteration's update, as scalars: what turns version v - 1 into version v.

    Attributes
    ----------
    noise_indices : ndarray of int64, shape (n,)
    returns : ndarray of float64, shape (n, 2)
        Raw returns; the centered ranks are computed from them by ``OpenES.tell``.
    obs : list of (obs_sum, obs_sumsq, count)
        Observation sums of the recorded rollouts, in pair order.
    """

    noise_indices: np.ndarray
    returns: np.ndarray
    obs: list


def apply_update(es: OpenES, obstat: ObsStats | None, update: Update, shared: Path | None = None) -> float | None:
    """Apply ``update`` to ``es`` and ``obstat``: the same operations in the same order on the
    master and on every replica, so all hold bit-identical state. Returns the update ratio, or
    None when the update is shared with the host's other processes through the file ``shared``
    (``host_update.shared_step``, on the workers)."""
    if shared is None:
        ratio = es.tell(update.noise_indices, update.returns)
    else:
        ratio = host_update.shared_step(es, update.noise_indices, update.returns, shared)
    for s, ss, c in update.obs:
        obstat.increment(s, ss, c)
    return ratio


def checksum(theta: np.ndarray) -> int:
    """CRC32 of the parameter bytes: a replica must match the master's exactly."""
    return zlib.crc32(np.ascontiguousarray(theta).view(np.uint8))


@dataclass
class Sync:
    """What brings a replica to ``version``: the last ``update`` (None for a run's first version).
    A few KB; it leaves before the master has applied the update itself."""

    run_key: str
    version: int
    update: Update | None


@dataclass
class FullState:
    """The master's whole state at ``version``, sent to a worker without a current replica."""

    version: int
    es: ESState
    obstat: tuple | None  # (obs_sum, obs_sumsq, count), None for Atari
    stepsize: float
    l2coeff: float


@dataclass
class Replica:
    """A worker's copy of a run's state at ``version``."""

    version: int
    es: OpenES
    obstat: ObsStats | None
    crc: int
    lock: threading.Lock


_REPLICAS: dict[str, Replica] = {}


class Stale(Exception):
    """This worker has no replica of the run at the version a task needs."""


def load_replica(config: RunConfig, run_key: str, state: FullState) -> str:
    """Install the full state of a run on this worker; returns the worker's address."""
    worker = get_worker()
    noise = worker.plugins[noise_plugin_name(config)].table
    es = OpenES.from_state(state.es, noise, state.stepsize, state.l2coeff)
    obstat = None if state.obstat is None else ObsStats.from_sums(*state.obstat)
    _REPLICAS[run_key] = Replica(state.version, es, obstat, checksum(es.theta), threading.Lock())
    return worker.address


def drop_replica(run_key: str) -> None:
    """Forget a finished run's replica on this worker, and the host's file of its last update."""
    replica = _REPLICAS.pop(run_key, None)
    if replica is not None:
        host_update.remove(run_key, replica.version)


def noise_plugin_name(config: RunConfig) -> str:
    """The name of the worker plugin that holds the run's noise table (``tasks.NoiseTablePlugin``)."""
    return f"esrepro-noise-{config.noise_table_size}-{config.noise_seed}"


def resolve(payload) -> tuple[tuple, int | None]:
    """((theta, obs_mean, obs_std), checksum of theta) from this worker's replica brought up to
    ``Sync.version``; a broadcast payload is the parameters themselves (checksum None).

    Raises
    ------
    Stale
        If the replica is missing or more than one version behind.
    """
    if not isinstance(payload, Sync):
        return payload, None
    replica = _REPLICAS.get(payload.run_key)
    if replica is None:
        raise Stale
    with replica.lock:
        if replica.version == payload.version - 1 and payload.update is not None:
            apply_update(replica.es, replica.obstat, payload.update, host_update.update_file(payload.run_key,
                                                                                             payload.version))
            host_update.remove(payload.run_key, replica.version)  # the version before: no process needs it now
            replica.version, replica.crc = payload.version, checksum(replica.es.theta)
        if replica.version != payload.version:
            raise Stale
        obstat = replica.obstat
        return (replica.es.theta, obstat and obstat.mean, obstat and obstat.std), replica.crc


def _nbytes(obj) -> int:
    """Size of ``obj`` pickled (what Dask sends for it, give or take its framing)."""
    return len(pickle.dumps(obj, protocol=5))


def _value(x):
    """The task that holds a payload: its result is its argument."""
    return x


class Workers:
    """The master's side: runs tasks on the run's current parameters and brings workers up to date.

    Parameters
    ----------
    client : distributed.Client
    config : RunConfig
    es : OpenES
        The master's strategy (read only: the trainer owns it and calls ``advance`` after each update).
    obstat : ObsStats or None
        The master's observation statistics (read only), None for Atari.
    version : int
        The parameters' version now (the iteration the run is at).
    reference : ndarray or None
        The VBN reference batch (Atari), sent to every worker once.
    run_key : str
        Names this run's replicas on the workers.
    log : callable

    Attributes
    ----------
    bytes_to_workers, bytes_from_workers : int
        Pickled bytes of what this run sent to (payloads, task arguments) and got from (results) the
        workers so far: the application's traffic, without Dask's own messages.
    bytes_full_state : int
        Pickled bytes of the full states sent to workers that joined or restarted (scalar mode), a
        one-off cost per worker kept apart from the per-iteration traffic.
    """

    def __init__(self, client, config: RunConfig, es: OpenES, obstat, version: int, reference, run_key: str, log):
        self.client, self.config, self.es, self.obstat, self.log = client, config, es, obstat, log
        self.version, self.run_key = version, run_key
        self._last_update: Update | None = None
        self._payload_future = None
        self._reference = None if reference is None else client.scatter(reference, broadcast=True, hash=False)
        self.bytes_to_workers = self.bytes_from_workers = self.bytes_full_state = 0
        self._config_bytes = _nbytes(config)

    def count(self) -> int:
        """Workers in the cluster now (at least 1)."""
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def advance(self, update: Update) -> None:
        """The master applied ``update``: the parameters are at the next version."""
        self.version += 1
        self._last_update, self._payload_future = update, None

    def map(self, calls: list[tuple], meanwhile=None) -> list:
        """Results of ``calls`` [(task, *args)], in order; every task gets the run config, the VBN
        reference batch and the parameters of the current version (``resolve``) before its own
        args. The calls go to the scheduler as one graph (one message, not one per task); then
        ``meanwhile()`` runs, if given, while the workers work (the master's own update). Workers
        that answer stale, or whose parameters' checksum differs from the master's (scalar mode),
        get the full state, and their calls run again.

        Raises
        ------
        RunFailed
            If workers still answer stale after ``MAX_STALE_ROUNDS`` rounds of sending the state.
        """
        results, todo = [None] * len(calls), list(range(len(calls)))
        for _ in range(MAX_STALE_ROUNDS + 1):
            futures = self._submit([calls[i] for i in todo])
            if meanwhile is not None:
                meanwhile()
                meanwhile = None
            crc = checksum(self.es.theta) if self.config.scalar else None
            stale = set()
            for i, (address, theta_crc, result) in zip(todo, self.client.gather(futures)):
                self.bytes_from_workers += _nbytes(result)
                if result is None or theta_crc != crc:
                    stale.add(address)
                else:
                    results[i] = result
            todo = [i for i in todo if results[i] is None]
            if not todo:
                return results
            self._send_state(stale)
        raise RunFailed(f"workers {', '.join(sorted(stale))} still hold no current replica of the parameters "
                        f"(version {self.version}) after {MAX_STALE_ROUNDS} attempts to send them the full state; "
                        "rerun to resume from the last checkpoint, or use communication: broadcast")

    def arrivals(self, calls: list[tuple], meanwhile=None) -> "Arrivals":
        """``calls`` running as ``map`` runs them, their results to be taken in the order they
        finish (the first-come batch); ``meanwhile()`` runs once they are submitted."""
        return Arrivals(self, calls, meanwhile)

    def _submit(self, calls: list[tuple]) -> list:
        """Futures of ``calls`` (``_call``), sent to the scheduler as one graph."""
        self.bytes_to_workers += sum(self._config_bytes + _nbytes(call[1:]) for call in calls)
        return self.client.map(_call, calls, config=self.config, reference=self._reference, payload=self._payload(),
                               key=[_key(call[0]) for call in calls])

    def close(self) -> None:
        """Forget this run's replicas on the workers."""
        if self.config.scalar:
            self.client.run(drop_replica, self.run_key)

    def _payload(self):
        """What the workers need to know the current parameters, once per version (one future,
        shared by the evaluation after an update and the next iteration's pairs): the parameters
        and observation statistics (broadcast), or a ``Sync`` (scalar).

        It is the result of a task that returns it, not scattered data: a worker fetches it once
        from a peer, and if every holder dies Dask recomputes it. (A broadcast ``scatter`` hangs
        when a worker dies during its replication.)"""
        if self._payload_future is None:
            if self.config.scalar:
                payload = Sync(self.run_key, self.version, self._last_update)
            else:
                obstat = self.obstat
                payload = (self.es.theta, obstat and obstat.mean, obstat and obstat.std)
            self._payload_future = self.client.submit(_value, payload, pure=False)
            self.bytes_to_workers += _nbytes(payload) * self.count()  # each worker fetches it once
        return self._payload_future

    def send_state(self) -> None:
        """Install the full state on every worker now (scalar mode; a run's start), so that the
        first iteration finds current replicas instead of answering stale."""
        if self.config.scalar:
            self._send_state(self.client.scheduler_info(n_workers=-1)["workers"])

    def _send_state(self, workers):
        """Install the full state on ``workers`` (each joined or restarted), all at once: the state
        is scattered once and each worker fetches it (from the master or a peer) for a load task
        pinned to it. A worker that dies meanwhile is skipped: its tasks run elsewhere, and any
        stale answer comes back."""
        obstat = self.obstat
        state = FullState(self.version, self.es.state(), obstat and (obstat.sum, obstat.sumsq, obstat.count),
                          self.config.stepsize, self.config.l2coeff)
        workers = sorted(workers)
        self.bytes_full_state += _nbytes(state) * len(workers)
        [data] = self.client.scatter([state], hash=False)
        loads = {self.client.submit(load_replica, self.config, self.run_key, data, workers=[w], pure=False): w
                 for w in workers}
        done, not_done = wait(list(loads), timeout=60)
        self.client.cancel(list(not_done))
        failed = not_done | {f for f in done if f.status != "finished"}
        for future in failed:
            self.log(f"could not send the full state to {loads[future]}; it left the cluster?")
        self.log(f"sent the full state (version {self.version}) to {len(workers) - len(failed)} workers")


class Arrivals:
    """Tasks of one version whose results are taken as they finish (``Workers.arrivals``).

    Iterating yields (call, result) in arrival order; ``add`` submits more calls meanwhile and
    ``abandon`` cancels those not yet taken. A stale answer (scalar mode) sends the worker the full
    state and runs its call again, as ``Workers.map`` does.
    """

    def __init__(self, workers: Workers, calls: list[tuple], meanwhile=None):
        self.workers, self._calls = workers, {}
        self._pending = as_completed()
        self.add(calls)
        if meanwhile is not None:
            meanwhile()
        self._crc = checksum(workers.es.theta) if workers.config.scalar else None
        self._stale = collections.Counter()  # stale answers per worker

    def add(self, calls: list[tuple]) -> None:
        for call, future in zip(calls, self.workers._submit(calls)):
            self._calls[future.key] = future, call
            self._pending.add(future)

    def __iter__(self):
        for future in self._pending:
            _, call = self._calls.pop(future.key)
            address, theta_crc, result = future.result()
            self.workers.bytes_from_workers += _nbytes(result)
            if result is not None and theta_crc == self._crc:
                yield call, result
                continue
            self._stale[address] += 1
            if self._stale[address] > MAX_STALE_ROUNDS:
                raise RunFailed(f"worker {address} still holds no current replica of the parameters (version "
                                f"{self.workers.version}) after {MAX_STALE_ROUNDS} attempts to send the full state; "
                                "rerun to resume from the last checkpoint, or use communication: broadcast")
            self.workers._send_state([address])
            self.add([call])

    def abandon(self) -> list[tuple]:
        """Cancel the calls not taken yet (queued or running: a running task finishes on its
        worker, unused); returns them."""
        self._pending.clear()
        futures, calls = zip(*self._calls.values()) if self._calls else ((), ())
        self._calls = {}
        self.workers.client.cancel(list(futures))
        return list(calls)


def _key(task) -> str:
    """A unique task key named after ``task`` (the dashboard and the tests see what runs)."""
    return f"{task.__name__}-{uuid.uuid4().hex}"


def _call(call: tuple, config: RunConfig, reference, payload) -> tuple:
    """Run ``call`` = (task, *args) as ``task(config, reference, params, *args)`` with the
    parameters ``resolve(payload)`` gives (``Workers.map``). Returns (this worker's address, the
    parameters' checksum or None, the task's result), the result None if the worker is stale."""
    task, *args = call
    try:
        params, theta_crc = resolve(payload)
    except Stale:
        return get_worker().address, None, None
    return get_worker().address, theta_crc, task(config, reference, params, *args)
