"""Host memory: what Dask worker processes holding the noise table cost the host, shared vs private.

What is measured: a LocalCluster from ``esrepro.distributed.cluster.connect`` with 1 and then 2
single-threaded worker processes. Each worker builds the table of ``--size`` float32 values
(default: the paper's 250,000,000 = 1 GB) and keeps a reference to it, then touches every 4 KiB
page (as an ES run does over many iterations), in two modes:

* ``shared``: ``esrepro.es.noise.NoiseTable`` (one file per host in ``$ESREPRO_NOISE_DIR``,
  memory-mapped read-only by every worker; here a temporary directory on /dev/shm, deleted
  before each phase so that every phase builds the file anew, and at the end);
* ``private`` (baseline, ``--no-private`` skips it): each worker generates its own array, as
  the noise table did before it was shared.

For each worker process, from ``/proc/<pid>/smaps_rollup``: RSS (counts every page the process
maps, so pages shared by several workers are counted once per worker) and PSS (each shared page
divided among the processes that map it, so PSS sums to the real total). Both are read when the
worker is idle and after it holds the table; the table's cost is the increase. For the host,
from ``psutil.virtual_memory()``: the increase of ``used`` (psutil 7 on Linux: total -
available, which includes tmpfs pages such as /dev/shm files) and of ``shared`` (tmpfs and
shared memory). The machine may be shared with other jobs: host figures move with them,
per-process PSS does not. MB = 10**6 bytes.

Target: with 2 workers the shared table costs about 1x the table (PSS summed over workers), not
2x as private copies do.

    python benchmarks/host_memory.py [--size 250000000] [--seed 123] [--no-private]
"""

import argparse
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil

from esrepro.distributed.cluster import connect
from esrepro.es.noise import DIR_ENV, PAPER_SEED, PAPER_SIZE, NoiseTable

MB = 1e6
#: Met when 2 workers' summed PSS increase is at most this multiple of the table.
TARGET_RATIO = 1.2


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` as {field: bytes} (Rss, Pss, Pss_Anon, Pss_Shmem, ...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) * 1024  # kB
    return fields


def host_memory() -> dict[str, int]:
    """Host-wide bytes: ``used`` (total - available) and ``shared`` (tmpfs, shared memory)."""
    vm = psutil.virtual_memory()
    return {"used": vm.used, "shared": vm.shared}


def hold_table(mode: str, size: int, seed: int, dask_worker) -> str:
    """Runs in each worker: build or map the table, keep it on the worker, touch every page."""
    if mode == "shared":
        table = NoiseTable(size, seed)
        noise, where = table.noise, str(table.path)
    else:
        noise, where = np.random.default_rng(seed).standard_normal(size, dtype=np.float32), "private"
    dask_worker.esrepro_benchmark_noise = noise  # lives as long as the worker process
    float(noise[::1024].sum())  # 1024 float32 = one 4 KiB page: fault in every page
    return where


def measure(mode: str, workers: int, size: int, seed: int) -> dict:
    """One phase: a fresh cluster of ``workers`` processes; memory before and after the table."""
    with connect(workers) as client:
        pids = client.run(os.getpid)  # worker address -> pid of the worker process (not the nanny)
        host0 = host_memory()
        idle = {a: smaps_rollup(p) for a, p in pids.items()}
        t0 = time.perf_counter()
        where = client.run(hold_table, mode, size, seed)
        seconds = time.perf_counter() - t0
        held = {a: smaps_rollup(p) for a, p in pids.items()}
        host1 = host_memory()
    return {"mode": mode, "workers": workers, "seconds": seconds, "where": sorted(set(where.values())),
            "per_worker": [(pids[a], idle[a], held[a]) for a in sorted(pids)],
            "host": {k: host1[k] - host0[k] for k in host0}}


def report(phase: dict, table_mb: float) -> float:
    """Print one phase; return the PSS increase summed over workers, in MB."""
    print(f"\n{phase['mode']}, {phase['workers']} worker(s): table ready in all workers after "
          f"{phase['seconds']:.1f} s; table at {', '.join(phase['where'])}")
    print(f"  {'pid':>8} {'RSS idle':>9} {'RSS held':>9} {'+RSS':>7} {'PSS idle':>9} {'PSS held':>9} "
          f"{'+PSS':>7} {'PSS_Shmem':>9} {'PSS_Anon':>9}")
    sums = dict.fromkeys(("rss", "pss"), 0.0)
    for pid, idle, held in phase["per_worker"]:
        d_rss, d_pss = (held["Rss"] - idle["Rss"]) / MB, (held["Pss"] - idle["Pss"]) / MB
        sums["rss"] += d_rss
        sums["pss"] += d_pss
        print(f"  {pid:>8} {idle['Rss'] / MB:>9.0f} {held['Rss'] / MB:>9.0f} {d_rss:>7.0f} {idle['Pss'] / MB:>9.0f} "
              f"{held['Pss'] / MB:>9.0f} {d_pss:>7.0f} {held['Pss_Shmem'] / MB:>9.0f} {held['Pss_Anon'] / MB:>9.0f}")
    host = phase["host"]
    print(f"  sum over workers: +RSS {sums['rss']:.0f} MB ({sums['rss'] / table_mb:.2f} x table), "
          f"+PSS {sums['pss']:.0f} MB ({sums['pss'] / table_mb:.2f} x table)")
    print(f"  host: +used {round(host['used'] / MB)} MB ({host['used'] / MB / table_mb:.2f} x table; moves with "
          f"other jobs); +shared (tmpfs) {round(host['shared'] / MB)} MB")
    return sums["pss"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=PAPER_SIZE, help="float32 values in the table")
    ap.add_argument("--seed", type=int, default=PAPER_SEED)
    ap.add_argument("--no-private", action="store_true", help="skip the private-copy baseline")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    table_mb = args.size * 4 / MB
    shm = Path("/dev/shm")
    cache = Path(tempfile.mkdtemp(prefix="esrepro-host-memory-", dir=shm if shm.is_dir() else None))
    print(f"noise table {args.size:,} float32 = {table_mb:.0f} MB; {DIR_ENV}={cache}; "
          f"host {psutil.virtual_memory().total / MB:.0f} MB, load average {psutil.getloadavg()}")

    os.environ[DIR_ENV] = str(cache)  # the workers inherit it
    pss = {}
    try:
        for mode in ("shared",) if args.no_private else ("shared", "private"):
            for workers in (1, 2):
                for f in cache.iterdir():  # each phase builds the table anew
                    f.unlink()
                pss[mode, workers] = report(measure(mode, workers, args.size, args.seed), table_mb)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    print()
    for mode in sorted({m for m, _ in pss}, reverse=True):
        one, two = pss[mode, 1], pss[mode, 2]
        print(f"{mode}: summed +PSS 1 worker {one:.0f} MB, 2 workers {two:.0f} MB; 2 workers / 1 worker "
              f"{two / one:.2f}; 2 workers / table {two / table_mb:.2f}")
    ratio = pss["shared", 2] / table_mb
    print(f"SUMMARY host_memory: 2 workers holding the shared {table_mb:.0f} MB table cost {pss['shared', 2]:.0f} MB "
          f"of PSS ({ratio:.2f} x table); target <= {TARGET_RATIO} x ({'met' if ratio <= TARGET_RATIO else 'MISSED'})")


if __name__ == "__main__":
    main()
