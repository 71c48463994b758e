"""Parallel efficiency of the ES master at 18 ... 1,440 workers, with simulated rollouts.

What is real: the master (``esrepro.train.Trainer``: the rounds, the batch rule, the update on the
paper's 1 GB noise table, progress rows), the Dask client, a Dask scheduler in its own process, and
one coordinator per host (``esrepro.distributed.coordinator``, a Dask actor on a Dask worker of its
own, at an address of its own: hosts 127.0.0.2, 127.0.0.3, ...), whose queue and messages to the
master are those of a real run. What is simulated: the host's worker processes. Each host has
``--host-workers`` virtual workers that take chunks from the coordinator's queue in its order and
sleep for them: episode lengths drawn from the lengths recorded in a real Humanoid-v5 ES run
(``record_episode_lengths.py``: 256-256 policy), each step costing the seconds per step measured
here, and each slice of the replica update (scalar communication) the seconds a slice takes here
on the paper's batch and parameter count.

The hosts' Dask workers share ``--processes`` processes, so their coordinators' CPU (on a cluster
spread over the hosts) competes with the master and the scheduler for this machine's cores: the
script prints that CPU too. Left out: network latency and bandwidth, worker start-up, observation
statistics (no rollout records them), and the variance of a real machine's step times.

For each N and batch rule (``all``: deterministic; ``first_come``: the reference code's) it prints
the median over the steady iterations of: the time per iteration, the ideal time (the work of the
episodes that made the batch and of the evaluation, divided by N), the efficiency (ideal /
measured; dropped and abandoned work is waste), the ceiling (the efficiency with free
coordination, ``scheduling_bound.py``, one episode per unit, the same lengths), efficiency /
ceiling, the bound of this machine (ideal x cores / the CPU seconds below: an iteration cannot take
less than its CPU seconds over the cores; where this bound is below the ceiling, the machine, not
the design, sets the efficiency), the master's critical path (``Hosts.handover_s``: from an
iteration's last result in to the next iteration's calls to the hosts out; the goal is 5% of the
ideal time), the messages through the scheduler, the master's calls to hosts, and the CPU seconds
of the master, the scheduler and the hosts' processes. Each row replaces the row of the same N and
rule in ``--csv`` (default ``results/scale_simulation.csv``, which Figure 1 draws; rows of other N
and rules are kept; a file of another format is replaced), and it ends with one ``SUMMARY`` line
for the largest N.

    .venv/bin/python benchmarks/scale_simulation.py                      # N = 18 144 720 1440
    .venv/bin/python benchmarks/scale_simulation.py --workers 18 144 --iterations 3
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import psutil
from scheduling_bound import ceiling, recorded_lengths

HERE = Path(__file__).resolve().parent
LENGTHS = HERE / "data" / "humanoid_v5_lengths.npz"


# -- the scheduler: its messages counted -----------------------------------------------------------
def dask_setup(scheduler):
    """Preload of the simulation's scheduler (``dask scheduler --preload scale_simulation.py``):
    count every message through it, received (each operation of an rpc or of a batched stream,
    from workers and clients) and sent (each message its batched streams carry), in
    ``scheduler.esrepro_messages``."""
    import functools
    import inspect

    from distributed.batched import BatchedSend

    scheduler.esrepro_messages = 0

    def count(handler):
        if inspect.iscoroutinefunction(handler):
            @functools.wraps(handler)
            async def counted(*args, **kwargs):
                scheduler.esrepro_messages += 1
                return await handler(*args, **kwargs)
        else:
            @functools.wraps(handler)
            def counted(*args, **kwargs):
                scheduler.esrepro_messages += 1
                return handler(*args, **kwargs)
        return counted

    for handlers in (scheduler.handlers, scheduler.stream_handlers):
        for op, handler in list(handlers.items()):
            handlers[op] = count(handler)
    send = BatchedSend.send

    def counted_send(self, *msgs):
        scheduler.esrepro_messages += len(msgs)
        return send(self, *msgs)

    BatchedSend.send = counted_send


def scheduler_messages(client) -> int:
    """Messages through the scheduler so far (``dask_setup``), this query's own not counted."""
    return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.esrepro_messages) - 1


# -- the master side -----------------------------------------------------------------------------------
def step_seconds(env_id: str, episodes: int = 16) -> tuple[float, int]:
    """Seconds per env step of a worker's rollouts here (``esrepro.rollout.rollouts``, 256-256
    policy, 8 episodes side by side, action noise and observation normalization as in training),
    and the policy's parameter count."""
    from esrepro.envs.mujoco import MujocoParams, make_env, make_policy
    from esrepro.rollout import rollouts

    envs = [make_env(env_id) for _ in range(8)]
    policy = make_policy(envs[0], MujocoParams((256, 256), 0, 0.01, 0.01))
    rng = np.random.default_rng(0)
    theta = policy.init_params(rng)
    policy.set_params(np.stack([theta + 0.02 * rng.standard_normal(theta.size, dtype=np.float32) for _ in envs]))
    dim = envs[0].observation_space.shape[0]
    mean, std = np.zeros(dim, np.float32), np.ones(dim, np.float32)
    policy.act(envs[0].observation_space.sample()[None].repeat(len(envs), 0), mean, std)  # compiles, untimed
    steps, t0 = 0, time.perf_counter()
    for a in range(0, episodes, len(envs)):
        done = rollouts(envs, policy, mean, std, range(a, a + len(envs)), 0.01,
                        [np.random.default_rng(a + i) for i in range(len(envs))])
        steps += sum(ep.length for ep in done)
    return (time.perf_counter() - t0) / steps, policy.num_params


def slice_seconds(pairs: int, num_params: int, workers: int) -> tuple[float, float]:
    """Seconds here of (one slice of the replica update on a host of ``workers`` processes, the
    whole update in one process) on the paper's table (``host_state.compute_slice``,
    ``OpenES.step``)."""
    from esrepro.distributed.host_state import Version, compute_slice, slices
    from esrepro.es.noise import PAPER_SEED, PAPER_SIZE, NoiseTable
    from esrepro.es.strategy import OpenES

    noise = NoiseTable(PAPER_SIZE, PAPER_SEED)
    rng = np.random.default_rng(0)
    indices, returns = rng.integers(0, PAPER_SIZE - num_params, pairs), rng.normal(size=(pairs, 2))
    OpenES(np.ones(num_params, np.float32), noise).step(indices, returns)  # warm the pages
    t0 = time.perf_counter()
    OpenES(np.ones(num_params, np.float32), noise).step(indices, returns)
    whole = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        previous = Version.open(Path(tmp) / "a.bin", num_params, 0, create=True)
        new = Version.open(Path(tmp) / "b.bin", num_params, 0, create=True)
        t0 = time.perf_counter()
        compute_slice(previous, new, *slices(num_params, workers)[0], 1, noise, 0.01, 0.005, indices, returns)
        one = time.perf_counter() - t0
    return one, whole


def host_process(scheduler_file: str, hosts: list[str], ready: str):
    """A process holding one Dask worker per simulated host (each at its own loopback address)
    until killed; its coordinators' virtual workers are simulated (``Coordinator(simulate=...)``)."""
    import dask
    from distributed import Worker

    # Each worker's periodic work would cost every simulated host a real worker's CPU here.
    dask.config.set({"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "1h",
                     "distributed.admin.tick.interval": "1s"})

    async def run():
        workers = [Worker(scheduler_file=scheduler_file, nthreads=1, host=host, dashboard=False, memory_limit=0,
                          validate=False) for host in hosts]
        await asyncio.gather(*workers)
        Path(ready).touch()
        await asyncio.Event().wait()

    asyncio.run(run())


class CPU:
    """CPU seconds of processes since the last ``take``."""

    def __init__(self, pids):
        self.procs = [psutil.Process(p) for p in pids]
        self.last = self._now()

    def _now(self):
        return sum(sum(p.cpu_times()[:2]) for p in self.procs)

    def take(self) -> float:
        now = self._now()
        spent, self.last = now - self.last, now
        return spent


def simulate(hosts: int, batch: str, args, sim: dict, params: dict) -> dict:
    from distributed import Client

    import esrepro.distributed.replicas as replicas
    from esrepro.run_config import RunConfig
    from esrepro.train import Trainer

    replicas.checksum = lambda theta: None  # simulated hosts hold no parameters (their crc is None)
    tmp = Path(tempfile.mkdtemp(prefix="esrepro-sim-"))
    scheduler_file = tmp / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file),
                                  "--preload", str(Path(__file__).resolve())],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    try:
        while not scheduler_file.exists():
            time.sleep(0.1)
        addresses = [f"127.0.{2 + i // 250}.{2 + i % 250}" for i in range(hosts)]
        for i in range(args.processes):
            ready = tmp / f"ready{i}"
            code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import scale_simulation as s; "
                    f"s.host_process({str(scheduler_file)!r}, {addresses[i::args.processes]!r}, {str(ready)!r})")
            if addresses[i::args.processes]:
                procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        with Client(scheduler_file=str(scheduler_file), direct_to_workers=True) as client:
            client.wait_for_workers(hosts, timeout=600)
            config = RunConfig.from_params(args.env, 0, params | {"batch": batch})
            trainer = Trainer(config, tmp / "run", log=lambda line: None)
            trainer.connect(client, simulate=sim)
            cpu = {"master": CPU([os.getpid()]), "scheduler": CPU([scheduler.pid]),
                   "hosts": CPU([p.pid for p in procs])}
            n_workers, rows = hosts * sim["workers"], []
            for i in range(args.iterations + 2):
                for c in cpu.values():
                    c.take()
                messages, calls = scheduler_messages(client), trainer.workers.calls
                trainer.step()
                messages = scheduler_messages(client) - messages - 1  # the query before the step
                # the round: the new iteration's pairs and the evaluation of the parameters they perturb
                row, pairs = trainer.rows[-1], trainer.pending
                work = pairs["pairs"] * 2 * pairs["length_mean"] + config.eval_episodes * row["eval_length_mean"]
                rows.append({"iteration_s": row["iteration_time_s"], "ideal_s": work * sim["step_s"] / n_workers,
                             **{f"{k}_cpu_s": c.take() for k, c in cpu.items()}, "scheduler_messages": messages,
                             "handover_s": trainer.workers.handover_s or np.nan,
                             "host_calls": trainer.workers.calls - calls, "dropped": pairs["dropped_episodes"]})
                print(f"N={n_workers} {batch} iteration {i}: {row['iteration_time_s']:.2f} s (ideal "
                      f"{rows[-1]['ideal_s']:.2f} s), pairs {pairs['pairs']}, mean length {pairs['length_mean']:.0f}, "
                      f"{messages} scheduler messages, {rows[-1]['host_calls']} calls to hosts, "
                      f"{pairs['dropped_episodes']} episodes dropped", flush=True)
            trainer.workers.close()
        steady = rows[2:]  # the first rounds install the state and start the hosts
        out = {k: float(np.nanmedian([r[k] for r in steady])) for k in steady[0]}
        cpu_s = sum(out[f"{k}_cpu_s"] for k in cpu)  # an iteration here takes at least cpu_s / cores
        return out | {"workers": n_workers, "hosts": hosts, "batch": batch,
                      "efficiency": out["ideal_s"] / out["iteration_s"],
                      "machine_bound": out["ideal_s"] * psutil.cpu_count() / cpu_s}
    finally:
        for p in procs:
            p.kill()
        scheduler.kill()


def save_row(path: Path, row: dict) -> None:
    """Put ``row`` into the csv at ``path`` in place of the row of the same batch rule and N
    (atomically: the file is whole before and after)."""
    import pandas as pd

    from esrepro.atomic import atomic_output

    rows = pd.DataFrame([row])
    if path.exists():
        old = pd.read_csv(path)
        if list(old.columns) == list(rows.columns):
            same = (old["batch"] == row["batch"]) & (old["workers"] == row["workers"])
            rows = pd.concat([old[~same], rows], ignore_index=True)
        else:
            print(f"{path}: another format (columns {', '.join(old.columns)}); replaced")
    with atomic_output(path) as tmp:
        rows.sort_values(["batch", "workers"]).to_csv(tmp, index=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[18, 144, 720, 1440])
    ap.add_argument("--iterations", type=int, default=3, help="steady iterations per N (after two warm-ups)")
    ap.add_argument("--processes", type=int, default=4, help="processes holding the simulated hosts")
    ap.add_argument("--host-workers", type=int, default=18, help="worker processes per host (the paper's machines)")
    ap.add_argument("--batch", nargs="+", default=["all", "first_come"], choices=["all", "first_come"])
    ap.add_argument("--env", default="Humanoid-v5")
    ap.add_argument("--lengths", default=str(LENGTHS), help="npz of record_episode_lengths.py")
    ap.add_argument("--stage", default="last", help="recorded iteration to draw lengths from (or 'last')")
    ap.add_argument("--pairs", type=int, default=5000, help="pairs per iteration (paper: 10,000 episodes)")
    ap.add_argument("--min-timesteps", type=int, default=100_000)
    ap.add_argument("--step-us", type=float, help="simulated microseconds per env step (default: measured here "
                    "now; give one to compare sittings, as this machine's speed changes by +-20%%)")
    ap.add_argument("--csv", default=str(HERE / "results" / "scale_simulation.csv"),
                    help="csv whose rows of the same N and rule are replaced ('' : none)")
    args = ap.parse_args()

    limit = gym.spec(args.env).max_episode_steps
    stage, lengths = recorded_lengths(args.lengths, args.stage, 1.0, None, limit)
    step_s, num_params = step_seconds(args.env)
    step_s = step_s if args.step_us is None else args.step_us * 1e-6
    slice_s, whole_s = slice_seconds(args.pairs, num_params, args.host_workers)
    params = {"hidden": [256, 256], "pairs_per_iteration": args.pairs, "min_timesteps_per_iteration":
              args.min_timesteps, "noise_table_size": 250_000_000, "eval_episodes": 10, "iterations": 10**6,
              "communication": "scalar"}
    from esrepro.config import run_params
    params = run_params(None, args.env, overrides=params)
    sim = {"workers": args.host_workers, "lengths": lengths.astype(int).tolist(), "step_s": step_s,
           "slice_s": slice_s}
    print(f"episode lengths: {stage} of {args.lengths} (mean {lengths.mean():.0f}, max {lengths.max():.0f}); "
          f"{1e6 * step_s:.0f} us per step ({'measured' if args.step_us is None else 'given'}); a slice of the "
          f"replica update {slice_s:.3f} s (the whole update in one process {whole_s:.2f} s); {args.host_workers} "
          "workers per host")
    fields = ["batch", "workers", "hosts", "iteration_s", "ideal_s", "efficiency", "ceiling", "machine_bound",
              "handover_s", "master_cpu_s", "scheduler_cpu_s", "hosts_cpu_s", "scheduler_messages", "host_calls",
              "dropped"]
    print("| N | batch | iteration s | ideal s | efficiency | ceiling | efficiency / ceiling | bound here "
          "| handover s (/ ideal) | scheduler messages | calls to hosts | master CPU s | scheduler CPU s "
          "| hosts' CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for n in args.workers:  # each row printed and saved as soon as it is measured
        hosts = max(1, n // args.host_workers)
        for batch in args.batch:
            unit = "one episode" if batch == "all" else "first come, one episode"
            r = simulate(hosts, batch, args, sim, params) | {
                "ceiling": ceiling(lengths, n, unit, pairs=args.pairs, eval_episodes=params["eval_episodes"],
                                   min_timesteps=args.min_timesteps)}
            results[n, batch] = r
            print(f"| {n} | {batch} | {r['iteration_s']:.2f} | {r['ideal_s']:.2f} | {r['efficiency']:.2f} "
                  f"| {r['ceiling']:.2f} | {r['efficiency'] / r['ceiling']:.2f} | {r['machine_bound']:.2f} "
                  f"| {r['handover_s']:.3f} ({r['handover_s'] / r['ideal_s']:.1%}) | {r['scheduler_messages']:.0f} "
                  f"| {r['host_calls']:.0f} | {r['master_cpu_s']:.2f} | {r['scheduler_cpu_s']:.2f} "
                  f"| {r['hosts_cpu_s']:.2f} |", flush=True)
            if args.csv:
                save_row(Path(args.csv), {k: r[k] for k in fields})
    n = args.workers[-1]
    det, fc = results.get((n, "all")), results.get((n, "first_come"))
    print(f"SUMMARY N={n} all_efficiency={det['efficiency'] if det else float('nan'):.3f} "
          f"all_ceiling={det['ceiling'] if det else float('nan'):.3f} "
          f"first_come_efficiency={fc['efficiency'] if fc else float('nan'):.3f} "
          f"scheduler_messages_per_iteration={(det or fc)['scheduler_messages']:.0f}")


if __name__ == "__main__":
    main()
