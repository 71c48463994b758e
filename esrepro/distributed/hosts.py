"""The master's side of the distribution: rounds of episodes run by hosts, not tasks
(docs/design.md, "Distribution"; paper section 2.1, the reference code's one relay per machine).

The run's Dask workers are grouped into hosts by the host part of their addresses. Each host gets a
coordinator (``coordinator.Coordinator``, a Dask actor on one of its workers, which the master calls
over one connection held for the run, ``link.Link``) and every worker process of the run serves its
host's coordinator (``host_queue.HostWorkerPlugin``). A round (the
episodes of one version of the parameters) costs the master a few calls per host, whatever
the number of episodes or workers: the first brings the new version and a block of episodes, the
next ones more blocks as the host's queue runs low (guided: each block is 1/2 of the host's share of
what is left, at least one episode per worker), and the last one its remaining results. The
calls go from the master to the worker directly, not through the Dask scheduler.

Results do not depend on which host or worker ran an episode: they are keyed by pair index and
sign and reduced in pair order (``Trainer``). A host whose coordinator is lost gives its
unfinished blocks back to the others; a host without a current replica (new, restarted, or whose
parameters' checksum differs from the master's) gets the master's full state and its episodes run
again.
"""

import asyncio
import collections
import contextlib
import math
import pickle
import time
import uuid

from distributed import wait

from esrepro.distributed import replicas
from esrepro.distributed.cluster import worker_addresses
from esrepro.distributed.coordinator import Coordinator
from esrepro.distributed.host_queue import HostWorkerPlugin, host_of
from esrepro.distributed.link import Link
from esrepro.distributed.replicas import MAX_STALE_ROUNDS, FullState, Update
from esrepro.distributed.tasks import EVAL, TRAIN
from esrepro.errors import RunFailed
from esrepro.run_config import RunConfig

#: Seconds to wait for a new coordinator on a worker before trying another worker of the host.
COORDINATOR_WAIT_S = 10
#: Seconds a round waits for a host to come back (workers restarting) when it has none left.
HOSTS_WAIT_S = 120
#: Hosts a round may lose, per host the run has had, before the run stops (a coordinator that
#: keeps failing, not workers that come and go).
LOSSES_PER_HOST = 5


def block_size(left: int, workers: int, total: int) -> int:
    """Episodes in a host's next block: half its share (its ``workers`` of the cluster's ``total``)
    of the ``left`` ones, at least one per worker."""
    return max(workers, math.ceil(left * workers / total / 2))


def _pack(obj) -> bytes:
    """``obj`` pickled: what the master and a coordinator exchange instead of Python lists and
    tuples, which Dask's serialization would walk item by item (it cost the master more CPU than
    the rest of the round at 144 workers). Its length is the bytes counted for the network."""
    return pickle.dumps(obj, protocol=5)


class Hosts:
    """Runs rounds of episodes on the hosts of ``client``'s cluster.

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
        The VBN reference batch (Atari), given to each coordinator once.
    obs_dim : int
        The observation size (0 for Atari).
    log : callable
    simulate : dict, optional
        Simulated host workers (``Coordinator``'s ``simulate``).

    Attributes
    ----------
    bytes_to_workers, bytes_from_workers, bytes_full_state : int
        Pickled bytes of what the run sent to and got from the hosts so far, and of the full states
        sent to hosts without a current replica (a one-off cost per host).
    calls : int
        Calls to coordinators made so far (the master's messages to hosts).
    hosts_lost : int
        Hosts whose coordinator was lost during a round (their episodes ran elsewhere).
    handover_s : float or None
        The master's critical path into the last round of a new version: seconds from the end of
        the round before (its last result in) to this round's calls to the hosts going out
        (the update, the next ask and the payload in between); None before the second version.
    """

    @property
    def chunks_rerun(self) -> int:
        """Chunks that hosts handed out again because the worker process running them died."""
        return sum(self._chunks_rerun.values())

    def __init__(self, client, config: RunConfig, es, obstat, version: int, reference, obs_dim: int, log,
                 simulate: dict | None = None):
        self.client, self.config, self.es, self.obstat, self.log = client, config, es, obstat, log
        self.version, self.reference, self.obs_dim, self.simulate = version, reference, obs_dim, simulate
        self.run_key = uuid.uuid4().hex[:16]  # short: it is in the name of each host's socket
        self._last_update: Update | None = None
        self._coordinators: dict[str, Link] = {}  # host -> the connection to its coordinator
        self._futures: dict[str, object] = {}  # host -> the coordinator's actor future
        self._at: dict[str, int | None] = {}  # host -> the version its replica holds, as last reported
        self._workers: dict[str, int] = {}  # host -> worker processes, as the scheduler lists them
        self._reported: dict[str, int] = {}  # host -> worker processes, as its coordinator reported
        self.bytes_to_workers = self.bytes_from_workers = self.bytes_full_state = self.calls = 0
        self.hosts_lost, self._last_loss = 0, ""
        self.handover_s: float | None = None
        self._round_end: tuple = (None, 0.0)  # (version, time.perf_counter()) of the last round's end
        self.seen: set[str] = set()  # every host the run has had
        self._chunks_rerun: dict[str, int] = {}  # host -> its coordinator's count
        self._payload: tuple = (None, b"")  # ((kind, version), pickled) of the last payload
        self._detached: set = set()  # calls not awaited (``detach``), held until done
        if simulate is None:
            client.register_plugin(HostWorkerPlugin(self.run_key), name=f"esrepro-{self.run_key}")

    def count(self) -> int:
        """Worker processes in the cluster now (at least 1)."""
        return max(1, len(worker_addresses(self.client)))

    def advance(self, update: Update) -> None:
        """The master applied ``update``: the parameters are at the next version."""
        self.version += 1
        self._last_update = update

    # -- rounds ---------------------------------------------------------------------------------
    def run(self, iteration: int, pairs: range, evals: list[int], cap, chunk_items=None, meanwhile=None):
        """The episodes of ``pairs`` of ``iteration`` (both signs) and of the evaluation episodes
        ``evals`` of the current version, on every host.

        Returns
        -------
        (dict pair index -> list of its two ``run_episodes`` results, by sign, list of evaluation
        results)
        """
        items = [(EVAL, e) for e in evals] + [(TRAIN, j, sign) for j in pairs for sign in (0, 1)]
        rnd = _Round(self, iteration, cap, chunk_items, collections.deque(items), meanwhile)
        self._play(rnd)
        return rnd.pairs, rnd.evals

    def run_first_come(self, iteration: int, pairs: int, timesteps: int, evals: list[int], cap, meanwhile=None):
        """The reference code's batch rule: episodes of pairs 0, 1, 2, ... on every host, pairs
        counted in the order they complete (both episodes in) until they hold at least ``pairs``
        pairs and ``timesteps`` timesteps and the evaluation is done; then every host drops what
        is queued or running.

        Returns
        -------
        (list of the counted pairs' results in order, each the pair's two ``run_episodes``
        results by sign, list of evaluation results, episodes dropped)
        """
        items = [(EVAL, e) for e in evals] + [(TRAIN, j, sign) for j in range(pairs) for sign in (0, 1)]
        rnd = _Round(self, iteration, cap, None, collections.deque(items), meanwhile, first_come=(pairs, timesteps))
        rnd.next_pair = pairs
        self._play(rnd)
        return rnd.counted, rnd.evals, rnd.dropped

    def _play(self, rnd: "_Round") -> None:
        """Run ``rnd`` on the hosts found now, and again on those found then while hosts are lost
        and episodes are left."""
        deadline, lost = time.monotonic() + HOSTS_WAIT_S, self.hosts_lost
        while True:
            if self.hosts_lost - lost > LOSSES_PER_HOST * len(self.seen):
                raise RunFailed(f"{self.hosts_lost - lost} hosts lost in one round, the last one because of: "
                                f"{self._last_loss}")
            if not self.discover():  # every host lost: their workers may be restarting
                if time.monotonic() > deadline:
                    raise RunFailed(f"no host of the cluster could take the run's episodes for {HOSTS_WAIT_S} s")
                time.sleep(0.5)
                continue
            self.client.sync(rnd.run)
            if rnd.finished():
                return
            deadline = time.monotonic() + HOSTS_WAIT_S

    def close(self) -> None:
        """End the run on every host (its worker processes stop serving it)."""
        async def close_all():
            await asyncio.gather(*(self._call(host, "close") for host in self._coordinators), return_exceptions=True)
            await asyncio.gather(*(link.close() for link in self._coordinators.values()), return_exceptions=True)
        self.client.sync(close_all)
        self._coordinators, self._futures = {}, {}
        if self.simulate is None:
            self.client.unregister_worker_plugin(f"esrepro-{self.run_key}")

    # -- hosts ----------------------------------------------------------------------------------
    def discover(self) -> dict[str, Link]:
        """The hosts of the cluster now, each with its coordinator (made for a new host, or one whose
        coordinator was lost, on its first worker) and worker count."""
        workers = collections.defaultdict(list)
        for address in worker_addresses(self.client):
            workers[host_of(address)].append(address)
        self._workers = {host: len(addresses) for host, addresses in workers.items()}
        self.seen |= set(workers)
        for host, future in list(self._futures.items()):
            if future.status != "finished":
                self.lose(host, "its coordinator's worker died between rounds")
        new = [host for host in workers if host not in self._coordinators]
        for attempt in range(max([len(workers[host]) for host in new], default=0)):
            addresses = {host: sorted(workers[host])[attempt % len(workers[host])] for host in new}
            futures = {host: self._make_coordinator(host, address) for host, address in addresses.items()}
            with contextlib.suppress(TimeoutError):
                wait(list(futures.values()), timeout=COORDINATOR_WAIT_S)
            made = {host: addresses[host] for host, future in futures.items() if future.status == "finished"}
            links = self.client.sync(self._connect, made)
            for host, future in futures.items():
                if isinstance(links.get(host), Link):
                    self._coordinators[host] = links[host]
                    self._futures[host] = future  # the actor lives as long as its future is held
                    self._at[host] = None
                else:  # its worker left meanwhile: another worker of the host, if any
                    self.client.cancel([future])
            new = [host for host in new if host not in self._coordinators]
        for host in list(self._coordinators):
            if host not in workers:
                self.lose(host, "no worker of it is left")
        return self._coordinators

    async def _connect(self, addresses: dict[str, str]) -> dict:
        """host -> a ``Link`` to the coordinator on the worker at its address, or the OSError of
        connecting to it."""
        args = self.client.security.get_connection_args("client")
        links = await asyncio.gather(*(Link.open(address, self.run_key, args) for address in addresses.values()),
                                     return_exceptions=True)
        return dict(zip(addresses, links))

    def _make_coordinator(self, host: str, address: str):
        return self.client.submit(Coordinator, self.run_key, host, self.config, self.reference, self.es.theta.size,
                                  self.obs_dim, self.simulate, workers=[address], actor=True, pure=False,
                                  key=f"coordinator-{host}-{uuid.uuid4().hex}")

    def workers_of(self, host: str) -> int:
        """The worker processes ``host`` serves episodes with: as its coordinator last reported,
        else as the scheduler lists them."""
        return self._reported.get(host) or self._workers.get(host, 1)

    def lose(self, host: str, why: str) -> None:
        """Forget a host whose coordinator is gone (a new one is made if the host comes back)."""
        self.log(f"lost host {host} ({why}); its episodes run elsewhere")
        self.hosts_lost, self._last_loss = self.hosts_lost + 1, why
        link = self._coordinators.pop(host, None)
        if link is not None:  # from any thread: the connection belongs to the client's event loop
            self.client.loop.add_callback(link.comm.abort)
        self._futures.pop(host, None)
        self._at.pop(host, None)

    def needs_state(self, host: str) -> bool:
        """Whether only the full state brings ``host`` to the current version (scalar mode, and its
        replica is not one version behind: a new host, or one that diverged)."""
        at = self._at.get(host)
        one_behind = at == self.version - 1 and self._last_update is not None
        return self.config.scalar and at != self.version and not one_behind

    def payload(self, host: str) -> bytes | None:
        """What brings ``host`` to the current version, pickled: the last update's scalars (scalar
        mode, replica one version behind), the parameters (broadcast mode), or the full state."""
        if self._at.get(host) == self.version:
            return None
        if self.needs_state(host):
            return self.full_state(host)
        if self.config.scalar:
            payload = ("update", self._last_update)
        else:
            obstat = self.obstat
            payload = ("theta", self.es.theta, obstat and obstat.mean, obstat and obstat.std)
        key = (payload[0], self.version)  # the same payload for every host: pickled once
        if self._payload[0] != key:
            self._payload = key, _pack(payload)
        self.bytes_to_workers += len(self._payload[1])
        return self._payload[1]

    def full_state(self, host: str) -> bytes:
        """The master's whole state, pickled, for ``host`` (new, restarted, or diverged)."""
        obstat = self.obstat
        state = FullState(self.version, self.es.state(), obstat and (obstat.sum, obstat.sumsq, obstat.count),
                          self.config.stepsize, self.config.l2coeff)
        payload = _pack(("state", state))
        self.bytes_full_state += len(payload)
        self.log(f"sent the full state (version {self.version}) to host {host}")
        return payload

    def detach(self, call) -> None:
        """Run the coroutine ``call`` without awaiting it; what it returns or raises is ignored (a
        lost host is found by the next round's calls)."""
        task = asyncio.ensure_future(call)
        self._detached.add(task)
        task.add_done_callback(lambda t: (self._detached.discard(t), t.cancelled() or t.exception()))

    async def _call(self, host: str, method: str, *args):
        """``method(*args)`` of ``host``'s coordinator; OSError if its worker is gone."""
        self.calls += 1
        if host not in self._coordinators:
            raise OSError(f"host {host} has no coordinator")
        return await self._coordinators[host].call(method, *args)


class _Round:
    """One round's bookkeeping on the master (``Hosts.run``, ``Hosts.run_first_come``)."""

    def __init__(self, hosts: Hosts, iteration: int, cap, chunk_items, pool, meanwhile, first_come=None):
        self.hosts, self.iteration, self.cap, self.chunk_items = hosts, iteration, cap, chunk_items
        self.pool, self.meanwhile, self.first_come = pool, meanwhile, first_come
        self.n_evals = sum(item[0] == EVAL for item in pool)
        self.pairs: dict[int, list] = {}  # pair index -> its episodes' results by sign (None: not in yet)
        self.evals: list = []
        self.counted: list = []
        self.timesteps = self.dropped = 0
        self.next_pair = 0
        self.assigned: dict[str, dict] = {}  # host -> items sent and not reported (keys, in order)
        self.stale: collections.Counter = collections.Counter()

    def _take(self, host: str) -> list:
        """A block for ``host``: half its share (by workers) of what is left, at least one item per
        worker; in a first-come round, more pairs whenever the pool runs low and the batch is not full."""
        hosts = self.hosts
        workers, total = hosts.workers_of(host), sum(hosts.workers_of(h) for h in hosts._coordinators) or 1
        if self.first_come is not None and not self._full() and len(self.pool) < 2 * workers:
            while len(self.pool) < 2 * total:  # one episode per worker of the cluster
                self.pool.extend((TRAIN, self.next_pair, sign) for sign in (0, 1))
                self.next_pair += 1
        size = block_size(len(self.pool), workers, total)
        block = [self.pool.popleft() for _ in range(min(size, len(self.pool)))]
        self.assigned.setdefault(host, {}).update(dict.fromkeys(block))
        return block

    def _full(self) -> bool:
        pairs, timesteps = self.first_come
        return len(self.counted) >= pairs and self.timesteps >= timesteps

    def _record(self, host: str, results: list) -> None:
        assigned = self.assigned.get(host, {})
        for r in results:  # its item: ("train", j, sign) or ("eval", e)
            assigned.pop(r[:3] if r[0] == TRAIN else r[:2], None)
        for r in results:
            if r[0] == EVAL:
                self.evals.append(r)
                continue
            episodes = self.pairs.setdefault(r[1], [None, None])
            if episodes[r[2]] is not None:  # in already (from a chunk run again)
                continue
            episodes[r[2]] = r
            if self.first_come is not None and None not in episodes:
                if self._full():
                    self.dropped += 2
                else:
                    self.counted.append(episodes)
                    self.timesteps += episodes[0][5] + episodes[1][5]

    def finished(self) -> bool:
        """Every episode of the round is in, or, first come, the batch is full and evaluated."""
        if self.first_come is not None:
            return self._full() and len(self.evals) == self.n_evals
        return not self.pool and not any(self.assigned.values())

    async def run(self):
        """Play the round on the hosts ``discover`` found; returns when it is finished, or when no
        host is left to run what remains (lost hosts: ``Hosts._play`` looks for hosts again)."""
        hosts = self.hosts
        coordinators = dict(hosts._coordinators)
        calls: dict[str, asyncio.Task] = {}

        def start(host, payload=None):
            block = _pack(self._take(host))
            context = {"iteration": self.iteration, "max_steps": self.cap}
            payload = hosts.payload(host) if payload is None else payload
            hosts.bytes_to_workers += len(block)
            calls[host] = asyncio.ensure_future(hosts._call(
                host, "start", hosts.version, payload, block, context, bool(self.pool) or self.first_come is not None,
                self.chunk_items))

        later = [host for host in coordinators if hosts.needs_state(host)]  # after the master's own update
        for host in coordinators:
            if host not in later:
                start(host)
        if hosts._round_end[0] not in (None, hosts.version):
            hosts.handover_s = time.perf_counter() - hosts._round_end[1]
        meanwhile, self.meanwhile = self.meanwhile, None

        async def master_crc():  # the master's own update, in a thread: the calls above go out meanwhile
            if meanwhile is not None:
                await asyncio.get_running_loop().run_in_executor(None, meanwhile)
            return replicas.checksum(hosts.es.theta) if hosts.config.scalar else None

        state = asyncio.ensure_future(master_crc())
        if later:  # a full state holds the parameters: those the master's own update made
            await state
            for host in later:
                start(host)
        while calls:
            done, _ = await asyncio.wait(calls.values(), return_when=asyncio.FIRST_COMPLETED)
            crc = await state  # replies are checked against the master's state (at once when done)
            for host in [h for h, task in calls.items() if task in done]:
                task = calls.pop(host)
                try:
                    reply = task.result()
                except OSError as e:  # the coordinator's worker is gone (CommClosedError among them)
                    self.pool.extendleft(reversed(self.assigned.pop(host, {})))
                    hosts.lose(host, str(e))
                    continue
                if reply.get("stale") or (hosts.config.scalar and reply["crc"] != crc):
                    self.stale[host] += 1
                    if self.stale[host] > MAX_STALE_ROUNDS:
                        raise RunFailed(f"host {host} still holds no current replica of the parameters (version "
                                        f"{hosts.version}) after {MAX_STALE_ROUNDS} attempts to send it the full "
                                        "state; rerun to resume from the last checkpoint, or use communication: "
                                        "broadcast")
                    self.pool.extendleft(reversed(self.assigned.pop(host, {})))
                    hosts._at[host] = None
                    start(host, hosts.full_state(host))
                    continue
                hosts._at[host] = hosts.version
                hosts._reported[host] = reply["workers"]
                hosts._chunks_rerun[f"{host}-{id(coordinators[host])}"] = reply["chunks_rerun"]
                hosts.bytes_from_workers += len(reply["results"])
                self._record(host, pickle.loads(reply["results"]))
                if self.finished():
                    continue
                # more for the host, or (the pool empty, or a first-come batch full and only its
                # evaluation awaited) a call that reports once what the host holds is done
                full = self.first_come is not None and self._full()
                more = not full and (bool(self.pool) or self.first_come is not None)
                if more or self.assigned.get(host):
                    block = _pack(self._take(host) if more else [])
                    hosts.bytes_to_workers += len(block)
                    more = more and (bool(self.pool) or self.first_come is not None)  # after the take
                    calls[host] = asyncio.ensure_future(hosts._call(host, "add", block, more, self.chunk_items))
            if self.first_come is not None and self.finished():
                break
        await state  # done before the round ends, even one whose hosts were all lost
        if self.finished():
            hosts._round_end = (hosts.version, time.perf_counter())
        if self.first_come is not None and self.finished():
            for task in calls.values():
                task.cancel()
            # What the hosts still hold of the round (queued, running, or in a reply not read) is
            # dropped: counted here from what was sent, and each host told to stop it, without
            # waiting for its answer (the next round's first call to it comes after on its connection).
            self.dropped += sum(len(items) for items in self.assigned.values())
            self.dropped += sum(None in episodes for episodes in self.pairs.values())  # one episode in
            for host in coordinators:
                hosts.detach(hosts._call(host, "abandon"))
