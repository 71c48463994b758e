"""Seconds of a replica update when P worker processes of one host update at once: each its whole
update (``OpenES.step``, as before the update was shared) or the update shared through the host's
file (``esrepro.distributed.host_update.shared_step``).

The paper's batch (5,000 pairs), Humanoid 256-256's 159,505 parameters and the paper's 1 GB noise
table. The P processes start each update together (a barrier), as the workers of a host do at the
start of a round; the script reports the slowest process's time (what the round waits for),
median of ``--repeats``, the two variants alternating.

    .venv/bin/python benchmarks/replica_update.py            # P = 1 2
    .venv/bin/python benchmarks/replica_update.py --processes 1 2 4
"""

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, PAIRS = 159_505, 5000


def worker(variant: str, barrier, queue, repeats: int, folder: str):
    from esrepro.distributed.host_update import shared_step
    from esrepro.es.noise import PAPER_SEED, PAPER_SIZE, NoiseTable
    from esrepro.es.strategy import OpenES

    noise = NoiseTable(PAPER_SIZE, PAPER_SEED)
    rng = np.random.default_rng(0)
    indices, returns = rng.integers(0, PAPER_SIZE - DIM, PAIRS), rng.normal(size=(PAIRS, 2))
    OpenES(np.ones(DIM, np.float32), noise).step(indices, returns)  # map the table's pages
    for r in range(repeats):
        es = OpenES(np.ones(DIM, np.float32), noise)
        barrier.wait()
        t0 = time.perf_counter()
        if variant == "whole":
            es.step(indices, returns)
        else:
            shared_step(es, indices, returns, Path(folder) / f"update-{r}.bin")
        queue.put((r, time.perf_counter() - t0))


def measure(variant: str, processes: int, repeats: int) -> float:
    """Median over repeats of the slowest process's seconds."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    with tempfile.TemporaryDirectory() as folder:
        procs = [ctx.Process(target=worker, args=(variant, barrier, queue, repeats, folder)) for _ in range(processes)]
        for p in procs:
            p.start()
        times = [queue.get() for _ in range(processes * repeats)]
        for p in procs:
            p.join()
    return float(np.median([max(t for r, t in times if r == k) for k in range(repeats)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print("| processes at once | whole update per process, s | shared update, s | ratio |")
    print("|---|---|---|---|")
    ratio = None
    for p in args.processes:
        whole, shared = (measure(variant, p, args.repeats) for variant in ("whole", "shared"))  # fresh processes each
        ratio = whole / shared
        print(f"| {p} | {whole:.3f} | {shared:.3f} | {ratio:.2f} |", flush=True)
    print(f"SUMMARY with {args.processes[-1]} processes of a host updating at once, the shared update is "
          f"{ratio:.2f}x as fast as each process's own (information)")


if __name__ == "__main__":
    main()
