"""Would hosts pay to compute the replica update in slices across hosts?

In the scalar mode (paper Algorithm 2) every host applies each update itself: its processes compute
slices of ``OpenES.step`` (``esrepro.distributed.host_state``), which reads pairs x parameters floats
of the noise table, the whole update per host. The alternative: each of H hosts computes 1/H of the
parameters' update and the hosts exchange their slices (each receives (H - 1)/H of the new
parameters, 4 bytes each) before the round's episodes start.

What is measured, on the paper's table (1 GB) and batch (5,000 pairs) with a Humanoid-v5 256-256
policy: the update of 1/P of the parameters in one process, for P = 1 (the whole update), 18 (a
host's share of it today, 18 processes a host) and 18 x H (a process's share if the H hosts split
it); and the same 1/18 share run by 1 and by 2 processes at once (the memory bandwidth they share:
18 processes of a real host read the table at once). It prints, per H, the per-host update (the
critical path of a round's start: episodes wait for it) both ways and the bytes each host would
receive, against the ideal iteration at 1,440 workers (``scale_simulation.py``).

    .venv/bin/python benchmarks/update_share.py [--pairs 5000] [--repeats 5]
"""

import argparse
import multiprocessing
import statistics
import time

import numpy as np

from esrepro.envs.mujoco import num_params
from esrepro.es.noise import PAPER_SEED, PAPER_SIZE, NoiseTable
from esrepro.es.strategy import OpenES

DIM = num_params("Humanoid-v5", {"hidden": (256, 256), "action_bins": 0})  # 159,505
HOST_PROCESSES = 18


def share_seconds(elements: int, pairs: int, repeats: int, seed: int = 0) -> float:
    """Median seconds of ``OpenES.step`` on ``elements`` parameters at ``pairs`` pairs."""
    noise, rng = NoiseTable(PAPER_SIZE, PAPER_SEED), np.random.default_rng(seed)
    times = []
    for _ in range(repeats):
        indices, returns = rng.integers(0, PAPER_SIZE - DIM, pairs), rng.normal(size=(pairs, 2))
        es = OpenES(np.ones(elements, np.float32), noise)
        t0 = time.perf_counter()
        es.step(indices, returns)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hosts", type=int, nargs="+", default=[8, 40, 80])
    args = ap.parse_args()
    share_seconds(DIM // HOST_PROCESSES, args.pairs, 1)  # maps the table's pages
    whole = share_seconds(DIM, args.pairs, args.repeats)
    host_share = DIM // HOST_PROCESSES
    alone = share_seconds(host_share, args.pairs, args.repeats)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pair = pool.starmap(share_seconds, [(host_share, args.pairs, args.repeats, s) for s in (1, 2)])
    together = max(pair)
    print(f"{DIM:,} parameters, {args.pairs:,} pairs, the paper's table: the whole update in one process "
          f"{whole:.3f} s; 1/{HOST_PROCESSES} of it {alone:.4f} s alone, {together:.4f} s with 2 processes at once "
          f"(x{together / alone:.2f})")
    print("| hosts | per host today: 1/18 per process | per host, 1/H of the update: 1/(18 H) per process | "
          "bytes in per host and iteration |")
    print("|---|---|---|---|")
    for h in args.hosts:
        split = share_seconds(max(1, DIM // (HOST_PROCESSES * h)), args.pairs, args.repeats)
        print(f"| {h} | {alone:.4f} s | {split:.4f} s + the exchange | {4 * DIM * (h - 1) // h:,} |")
    print(f"SUMMARY update_share: a host's update {alone:.4f} s (one process's 1/18, alone; x{together / alone:.2f} "
          f"with 2 at once here), at 1/{h} per host {split:.4f} s + {4 * DIM * (h - 1) // h:,} bytes in per host")


if __name__ == "__main__":
    main()
