"""What one coordination message costs the master and the Dask scheduler, for the ways a master can
reach the hosts of a run: the choice behind coordinating per host (paper: one relay per machine)
instead of per task.

A ``dask scheduler`` runs in its own process, as on a cluster, with ``--workers`` single-threaded
worker processes; the master is this process (a ``Client`` talking to workers directly where Dask
allows it). Each round sends ``--messages`` small requests, each answered with ~200 bytes (the size
of a batch of results), by one of:

* ``task``: ``Client.map`` of a no-op task, then ``gather`` (today's way: every task passes
  through the scheduler, which also tracks it);
* ``actor call``: a method call on a Dask actor, one actor per worker, all calls in flight at
  once; the call goes from the master to the actor's worker directly, not through the scheduler;
* ``queue``: a message put on a Dask ``Queue`` that the workers get from, answered on a queue the
  master gets from (every put and get is a call to the scheduler, which holds the queues; nothing
  tracked as a task). Dask 2026.8 has no pub/sub any more.

Rounds of the three alternate (the machine's speed changes from second to second). Per message it
prints the master's CPU, the scheduler's CPU and the wall time, medians over ``--repeats`` rounds.

    .venv/bin/python benchmarks/coordination_cost.py [--workers 2] [--messages 400] [--repeats 7]
"""

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from distributed import Client, Queue

from esrepro.distributed.cluster import worker_addresses

REPLY = b"r" * 200
KINDS = ("task", "actor call", "queue")


def noop(i):
    return REPLY


class Echo:
    """An actor: answers each call."""

    async def call(self, i):
        return REPLY


def echo_queue(requests: str, replies: str, count: int):
    """On a worker: answer ``count`` messages of the queue ``requests`` on the queue ``replies``."""
    inbox, outbox = Queue(requests), Queue(replies)
    for _ in range(count):
        outbox.put((inbox.get(), REPLY))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--messages", type=int, default=400, help="messages per round")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="esrepro-coordination-"))
    file = tmp / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not file.exists():
            time.sleep(0.1)
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(file), "--nworkers", str(args.workers), "--nthreads", "1", "--host",
                                       "127.0.0.1", "--no-dashboard"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        with Client(scheduler_file=str(file), direct_to_workers=True) as client:
            client.wait_for_workers(args.workers)
            workers = sorted(worker_addresses(client))
            actors = [client.submit(Echo, workers=[w], actor=True, pure=False).result() for w in workers]
            cpu = {"master": psutil.Process(), "scheduler": psutil.Process(procs[0].pid)}
            n = args.messages

            def tasks():
                client.gather(client.map(noop, range(n), pure=False))

            def actor_calls():
                async def calls():
                    await asyncio.gather(*[actors[i % len(actors)].call(i) for i in range(n)])
                client.sync(calls)

            rounds = itertools.count()

            def queues():
                k = next(rounds)
                requests, replies = Queue(f"requests-{k}"), Queue(f"replies-{k}")
                per_worker = [n // len(workers) + (i < n % len(workers)) for i in range(len(workers))]
                echoes = [client.submit(echo_queue, requests.name, replies.name, k, workers=[w], pure=False)
                          for w, k in zip(workers, per_worker)]
                for i in range(n):
                    requests.put(i)
                for _ in range(n):
                    replies.get(timeout=60)
                client.gather(echoes)

            run = {"task": tasks, "actor call": actor_calls, "queue": queues}
            samples = {kind: [] for kind in KINDS}
            for repeat in range(args.repeats + 1):
                for kind in KINDS[repeat % 3:] + KINDS[:repeat % 3]:
                    before = {k: sum(p.cpu_times()[:2]) for k, p in cpu.items()}
                    t0 = time.perf_counter()
                    run[kind]()
                    wall = time.perf_counter() - t0
                    spent = {k: sum(p.cpu_times()[:2]) - before[k] for k, p in cpu.items()}
                    if repeat:  # the first round of each warms up
                        samples[kind].append((spent["master"] / n, spent["scheduler"] / n, wall / n))
            print(f"{args.workers} workers, {n} messages per round, medians of {args.repeats} rounds (per message):")
            print("| mechanism | master CPU ms | scheduler CPU ms | wall ms |")
            print("|---|---|---|---|")
            for kind in KINDS:
                master, scheduler, wall = (statistics.median(s[i] for s in samples[kind]) for i in range(3))
                print(f"| {kind} | {1e3 * master:.3f} | {1e3 * scheduler:.3f} | {1e3 * wall:.3f} |")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)


if __name__ == "__main__":
    main()
