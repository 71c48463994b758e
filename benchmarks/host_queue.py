"""A host-local queue of episodes, measured for real: one coordinator process hands episodes one
at a time to the worker processes of its host over a Unix socket, and they hand back results.

This is the piece of the paper's design (one relay per machine, its workers talking only to it)
that decides how finely a host can split its share of an iteration: if taking an episode and
returning its result costs little beside the episode, a worker can take one at a time and an
iteration's tail inside a host is a single episode (``scheduling_bound.py``: at 1,440 workers the
ceiling is 0.84 with one episode per unit, 0.77 with one pair).

What runs: the coordinator (an asyncio Unix-socket server in this process) owns the queue; each of
``--processes`` spawned worker processes connects, asks for an episode, "runs" it, returns a result
of ~100 bytes (what an episode's result holds: its index, return, length) and asks again. Messages
are pickles behind a 4-byte length (``esrepro.distributed.host_queue``'s framing). Two measurements,
each in ``--repeats`` alternating rounds:

* ``empty``: episodes that cost nothing: the queue's own cost per episode, round trip included
  (wall time per episode over all processes, and the coordinator's CPU per episode);
* ``humanoid``: one host's share of the paper's batch at 1,440 workers (``--episodes``, default
  10,000 / 80 hosts = 125 episodes) on ``--processes`` (default the paper's 18 per host), each
  episode sleeping its length x ``--step-us`` (lengths drawn from the recorded Humanoid-v5 run, as
  ``scale_simulation.py``). Sleeping lets 18 workers run on this machine's 2 cores as on 18; the
  coordinator and the workers' own messaging still use the cores. Efficiency = the episodes' work /
  (processes x the time until the last result is in); the ceiling is list scheduling of the same
  lengths in the same order with free messages (``scheduling_bound.makespan``).

    .venv/bin/python benchmarks/host_queue.py [--processes 18] [--episodes 125] [--repeats 5]
"""

import argparse
import asyncio
import multiprocessing
import os
import pickle
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
from scheduling_bound import LENGTHS, makespan, recorded_lengths

from esrepro.distributed.host_queue import HEADER, receive, send


def worker(path: str) -> None:
    """A worker process: take an episode, run it (sleep its seconds), return its result, again."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    result = None
    try:
        while True:
            send(sock, result)
            item = receive(sock)
            if item is None:
                return
            index, seconds = item
            if seconds:
                time.sleep(seconds)
            result = (index, -1.0, int(seconds * 1e6))
    except EOFError:
        return


class Coordinator:
    """The host's queue: episodes in order, one per request; results kept by episode index."""

    def __init__(self):
        self.items: list[tuple[int, float]] = []
        self.results: dict[int, tuple] = {}
        self.expected = 0
        self.all_in = asyncio.Event()

    def load(self, seconds: list[float]) -> None:
        self.items = list(enumerate(seconds))[::-1]  # popped from the end: in index order
        self.results, self.expected = {}, len(seconds)
        self.all_in.clear()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                result = pickle.loads(await reader.readexactly(HEADER.unpack(await reader.readexactly(4))[0]))
                if result is not None:
                    self.results[result[0]] = result
                    if len(self.results) == self.expected:
                        self.all_in.set()
                while not self.items:  # nothing to hand out until the next round
                    await asyncio.sleep(0.001)
                data = pickle.dumps(self.items.pop(), protocol=5)
                writer.write(HEADER.pack(len(data)) + data)
        except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.CancelledError):
            return  # the worker left, or the measurement ended


async def measure(args, lengths: np.ndarray) -> dict:
    coordinator = Coordinator()
    path = str(Path(tempfile.mkdtemp(prefix="esrepro-queue-")) / "host.sock")
    server = await asyncio.start_unix_server(coordinator.serve, path=path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(path,)) for _ in range(args.processes)]
    for p in procs:
        p.start()
    rng = np.random.default_rng(0)
    samples = {"empty": [], "humanoid": []}
    try:
        for repeat in range(args.repeats + 1):
            for kind in ("empty", "humanoid") if repeat % 2 else ("humanoid", "empty"):
                if kind == "empty":
                    seconds = [0.0] * args.empty
                else:
                    seconds = list(rng.choice(lengths, args.episodes) * args.step_us * 1e-6)
                cpu, t0 = time.process_time(), time.perf_counter()
                coordinator.load(seconds)
                await coordinator.all_in.wait()
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
                if repeat:  # the first round starts the processes
                    ideal = makespan(seconds, args.processes) if kind == "humanoid" else 0.0
                    samples[kind].append((wall / len(seconds), cpu / len(seconds), sum(seconds) / args.processes / wall,
                                          sum(seconds) / args.processes / ideal if ideal else 0.0))
    finally:
        for p in procs:
            p.kill()
        server.close()
        os.unlink(path)
    return {kind: np.median(np.array(s), axis=0) for kind, s in samples.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=18, help="worker processes of the host (paper: 18)")
    ap.add_argument("--episodes", type=int, default=125, help="the host's episodes per iteration (10,000 / 80)")
    ap.add_argument("--empty", type=int, default=20_000, help="episodes of the empty rounds")
    ap.add_argument("--step-us", type=float, default=150.0, help="microseconds per env step of a simulated episode")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    stage, lengths = recorded_lengths(LENGTHS, "last", 1.0, None)
    result = asyncio.run(measure(args, lengths))
    wall, cpu, _, _ = result["empty"]
    _, _, efficiency, of_ceiling = result["humanoid"]
    ceiling = efficiency / of_ceiling
    print(f"{args.processes} worker processes, one coordinator, Unix socket; medians of {args.repeats} rounds")
    print(f"empty episodes: {1e6 * wall:.1f} us per episode handed out and returned (all processes together), "
          f"coordinator CPU {1e6 * cpu:.1f} us per episode")
    print(f"{args.episodes} Humanoid episodes ({stage}, mean {lengths.mean():.0f} steps x {args.step_us:.0f} us): "
          f"efficiency {efficiency:.3f}, ceiling (free messages, same order) {ceiling:.3f}, "
          f"efficiency / ceiling {of_ceiling:.3f}")
    print(f"SUMMARY host_queue: {1e6 * cpu:.1f} us of coordinator CPU per episode; one host's share of the paper's "
          f"batch at 1,440 workers reaches {of_ceiling:.3f} of its ceiling")


if __name__ == "__main__":
    main()
