"""Worker memory: peak resident memory (RSS) of one Dask worker process during ES iterations.

What is measured: a LocalCluster from ``esrepro.distributed.cluster.connect`` (``--workers``, default
1) runs ``esrepro.train.Trainer`` iterations (``--pairs`` antithetic pairs each, no evaluation) with
a noise table of ``--noise-table-size`` float32 values (default: the config default, 25,000,000 =
100 MB). Two independent readings of each worker process's peak RSS:

* ``ru_maxrss``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` read inside the worker via
  ``client.run`` at the end (the kernel's exact high-water mark of the process);
* ``sampled``: a background thread in this process sampling the worker pids' RSS with psutil every
  ``--interval`` seconds while the plugin is registered and the iterations run.

Also printed: the worker's RSS when idle (before the noise table plugin), after the plugin built the
table, and after the iterations, so that the table, the env/policy runtime and the transient memory
of the iterations can be told apart. MB = 10**6 bytes.

Target: peak worker RSS minus the noise table <= ~300 MB.

    python benchmarks/worker_memory.py [--noise-table-size 25000000] [--workers 1] [--pairs 4] [--iterations 2]
"""

import argparse
import logging
import os
import resource
import tempfile
import threading
import time
import warnings

import psutil

from esrepro.config import run_params
from esrepro.distributed.cluster import connect
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

TARGET_MB = 300
MB = 1e6


def _maxrss_bytes():
    """Peak RSS of the calling process in bytes (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def _rss_bytes():
    return psutil.Process().memory_info().rss


class Sampler(threading.Thread):
    """Samples the RSS of ``pids`` every ``interval`` seconds, keeping each pid's maximum."""

    def __init__(self, pids, interval):
        super().__init__(daemon=True)
        self.procs = {p: psutil.Process(p) for p in pids}
        self.peak = dict.fromkeys(pids, 0)
        self.interval, self.samples = interval, 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            for pid, proc in self.procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            self.samples += 1
            time.sleep(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--noise-table-size", type=int, default=None,
                    help="float32 values in the noise table (default: the config default)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=4, help="antithetic pairs per iteration")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.01, help="RSS sampling period in seconds")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Port .* is already in use")

    overrides = {"iterations": args.iterations, "eval_episodes": 0, "pairs_per_iteration": args.pairs}
    if args.noise_table_size is not None:
        overrides["noise_table_size"] = args.noise_table_size
    params = run_params(None, args.env, overrides=overrides)
    table_mb = params["noise_table_size"] * 4 / MB

    with tempfile.TemporaryDirectory() as tmp, connect(args.workers) as client:
        pids = client.run(os.getpid)  # worker address -> pid of the worker process (not the nanny)
        idle = client.run(_rss_bytes)
        sampler = Sampler(list(pids.values()), args.interval)
        sampler.start()
        trainer = Trainer(RunConfig.from_params(args.env, 0, params), tmp, log=lambda *_: None)
        trainer.connect(client)  # the workers start serving the run's host
        after_table = client.run(_rss_bytes)
        t0 = time.perf_counter()
        for _ in range(args.iterations):
            trainer.step()
        seconds = time.perf_counter() - t0
        after_iters = client.run(_rss_bytes)
        maxrss = client.run(_maxrss_bytes)
        sampler.stop()
        trainer.workers.close()

    print(f"{args.env}: noise table {params['noise_table_size']:,} float32 = {table_mb:.0f} MB; "
          f"{args.workers} worker(s); {args.iterations} iterations x {args.pairs} pairs in {seconds:.1f} s; "
          f"{sampler.samples} RSS samples")
    worst = 0.0
    for addr, pid in pids.items():
        peak = max(maxrss[addr], sampler.peak[pid]) / MB
        worst = max(worst, peak)
        print(f"  worker pid {pid}: RSS idle {idle[addr] / MB:.0f} MB, after table {after_table[addr] / MB:.0f} MB, "
              f"after iterations {after_iters[addr] / MB:.0f} MB; peak: ru_maxrss {maxrss[addr] / MB:.0f} MB, "
              f"sampled {sampler.peak[pid] / MB:.0f} MB; peak minus table {peak - table_mb:.0f} MB")
    rest = worst - table_mb
    print(f"SUMMARY worker_memory: noise table {table_mb:.0f} MB, peak worker RSS {worst:.0f} MB, "
          f"peak minus table {rest:.0f} MB; target <= ~{TARGET_MB} MB ({'met' if rest <= TARGET_MB else 'MISSED'})")


if __name__ == "__main__":
    main()
