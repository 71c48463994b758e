"""Parallel efficiency of the ES master at 18 ... 1,440 workers, with simulated rollouts.

What is real: the master (``esrepro.train.Trainer``: chunking, the replica protocol, the update on the
paper's 1 GB noise table, progress rows), the Dask client, and a Dask scheduler in its own process,
talking over TCP to N real ``distributed.Worker`` s. What is simulated: the work inside each task. A
simulated worker sleeps for its episodes instead of stepping them: episode lengths are drawn from the
lengths recorded in a real Humanoid-v5 ES run (``record_episode_lengths.py``: 256-256 policy), each
step costs the seconds per step measured there, and the adaptive episode cap, if on, cuts them as it
would cut real episodes. A worker that brings its replica up to date (scalar communication) sleeps
for the time the update takes on a host of ``--host-workers`` workers that share it
(``esrepro.distributed.host_update``): its slices, computed one after another here on the paper's
batch and parameter count, spread over the host's workers (the whole update, measured alone, is
printed too).

The simulated workers share ``--processes`` processes (many Dask workers per process), so their own
CPU (receiving tasks, sending results: in a real cluster spread over N cores) competes with the
master and the scheduler for this machine's cores: the script prints that CPU too. Left out: network
latency and bandwidth between hosts, worker start-up, observation statistics (no rollout records
them), and the variance of a real machine's step times.

For each N it prints the median time per iteration over the steady iterations, the ideal time (the
rollout work of the iteration, sleeps included, divided by N), the efficiency (ideal / measured), the
ceiling (the efficiency the same tasks would have with free coordination: ``scheduling_bound.py``,
the same lengths and cap) and the CPU seconds per iteration of the master, the scheduler and the
simulated workers; it appends the rows to ``--csv`` and ends with one ``SUMMARY`` line for the
largest N.

    .venv/bin/python benchmarks/scale_simulation.py                      # N = 18 144 720 1440
    .venv/bin/python benchmarks/scale_simulation.py --workers 18 144 --iterations 3
"""

import argparse
import asyncio
import csv
import json
import math
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


# -- the simulated workers (run in the worker host processes) ----------------------------------------
class Simulation:
    """What a simulated episode costs: lengths drawn from one recorded iteration's lengths
    (``scheduling_bound.recorded_lengths``: scaled, at most the env's limit)."""

    def __init__(self, lengths: np.ndarray, step_s: float, update_s: float):
        self.lengths, self.step_s, self.update_s = lengths, step_s, update_s

    def episode_lengths(self, key: tuple, count: int, cap: int | None) -> np.ndarray:
        """Lengths of ``count`` episodes, deterministic in ``key``, at most the adaptive ``cap``."""
        lengths = np.random.default_rng(key).choice(self.lengths, count)
        return lengths if cap is None else np.minimum(lengths, cap)


SIM: Simulation | None = None
_VERSIONS: dict = {}  # worker address -> replica version (scalar mode)


def sim_resolve(payload):
    """``replicas.resolve`` with the update replaced by a sleep and no parameters: every simulated
    replica's checksum is 0, as the master's (``simulate`` patches its ``checksum``).

    Raises
    ------
    replicas.Stale
        As ``replicas.resolve``.
    """
    from distributed import get_worker

    from esrepro.distributed.replicas import Stale, Sync

    if not isinstance(payload, Sync):
        return (None, None, None), None
    address = get_worker().address
    version = _VERSIONS.get(address)
    if version is None:
        raise Stale
    if version == payload.version - 1 and payload.update is not None:
        time.sleep(SIM.update_s)
        _VERSIONS[address] = version = payload.version
    if version != payload.version:
        raise Stale
    return (None, None, None), 0


def sim_evaluate_pairs(config, reference, params, iteration, start, stop, max_steps=None):
    n = stop - start
    lengths = SIM.episode_lengths((config.seed, iteration, start, stop), 2 * n, max_steps)
    time.sleep(lengths.sum() * SIM.step_s)
    rng = np.random.default_rng((config.seed, iteration, start, stop, 1))
    return {"noise_indices": rng.integers(0, config.noise_table_size - 200_000, n),
            "returns": rng.normal(size=(n, 2)), "lengths": lengths.reshape(n, 2), "obs": []}


def sim_evaluate_policy(config, reference, params, iteration, episodes):
    lengths = SIM.episode_lengths((config.seed, iteration, *episodes), len(episodes), None)
    time.sleep(lengths.sum() * SIM.step_s)
    return np.stack([np.zeros(len(episodes)), lengths], axis=1).astype(np.float64)


def sim_load_replica(config, run_key, state):
    from distributed import get_worker

    _VERSIONS[get_worker().address] = state.version
    return get_worker().address


def worker_host(scheduler_file: str, count: int, sim: dict, ready: str):
    """A process holding ``count`` simulated Dask workers (one thread each) until killed."""
    global SIM
    import dask
    from distributed import Worker

    import esrepro.distributed.replicas as replicas
    import esrepro.distributed.tasks as tasks

    SIM = Simulation(np.array(sim["lengths"], dtype=np.int64), sim["step_s"], sim["update_s"])
    tasks.evaluate_pairs, tasks.evaluate_policy = sim_evaluate_pairs, sim_evaluate_policy
    replicas.load_replica, replicas.resolve = sim_load_replica, sim_resolve
    tasks.NoiseTablePlugin.setup = lambda self, worker: None  # simulated workers read no noise

    # Each worker's periodic work (the statistical profiler every 10 ms, the event-loop tick every 20 ms,
    # the system monitor) would
    # cost every simulated worker a real worker's CPU on this machine's few cores.
    dask.config.set({"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "1h",
                     "distributed.admin.tick.interval": "1s"})

    async def run():
        workers = [Worker(scheduler_file=scheduler_file, nthreads=1, host="127.0.0.1", dashboard=False,
                          memory_limit=0, validate=False) for _ in range(count)]
        await asyncio.gather(*workers)
        Path(ready).touch()
        await asyncio.Event().wait()

    asyncio.run(run())


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
    mean, std, steps, t0 = np.zeros(dim, np.float32), np.ones(dim, np.float32), 0, time.perf_counter()
    for a in range(0, episodes, len(envs)):
        done = rollouts(envs, policy, mean, std, range(a, a + len(envs)), 0.01,
                        [np.random.default_rng(a + i) for i in range(len(envs))])
        steps += sum(ep.length for ep in done)
    return (time.perf_counter() - t0) / steps, policy.num_params


def update_seconds(pairs: int, num_params: int, host_workers: int) -> tuple[float, float]:
    """Seconds one replica update takes here on the paper's table: (the whole update in one
    process, ``OpenES.step``; the update shared by ``host_workers`` processes, ``shared_step``:
    its slices' time, measured computing them all in one process, spread over the processes)."""
    from esrepro.distributed.host_update import SLICE, shared_step
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
        t0 = time.perf_counter()
        shared_step(OpenES(np.ones(num_params, np.float32), noise), indices, returns, Path(tmp) / "update.bin")
        sliced = time.perf_counter() - t0
    slices = math.ceil(num_params / SLICE)
    return whole, sliced / slices * math.ceil(slices / min(host_workers, slices))


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


def simulate(n_workers: int, args, sim: dict, params: dict) -> dict:
    from distributed import Client

    import esrepro.distributed.replicas as replicas
    from esrepro.run_config import RunConfig
    from esrepro.train import Trainer

    replicas.checksum = lambda theta: 0  # simulated replicas hold no parameters (sim_resolve)
    tmp = Path(tempfile.mkdtemp(prefix="esrepro-sim-"))
    scheduler_file = tmp / "scheduler.json"
    env = os.environ | {"DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": os.environ.get("STEALING", "True")}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file),
                                  "--preload", str(Path(__file__).resolve())],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    hosts = []
    try:
        while not scheduler_file.exists():
            time.sleep(0.1)
        per_host = [n_workers // args.processes + (i < n_workers % args.processes) for i in range(args.processes)]
        for i, count in enumerate(c for c in per_host if c):
            ready = tmp / f"ready{i}"
            code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import scale_simulation as s; "
                    f"s.worker_host({str(scheduler_file)!r}, {count}, json.loads({json.dumps(sim)!r}), {str(ready)!r})")
            hosts.append((subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL), ready))
        with Client(scheduler_file=str(scheduler_file)) as client:
            client.wait_for_workers(n_workers, timeout=600)
            config = RunConfig.from_params(args.env, 0, params)
            trainer = Trainer(config, tmp / "run", log=lambda line: None)
            trainer.connect(client)
            cpu = {"master": CPU([os.getpid()]), "scheduler": CPU([scheduler.pid]),
                   "workers": CPU([h.pid for h, _ in hosts])}
            rows = []
            for i in range(args.iterations + 1):
                for c in cpu.values():
                    c.take()
                messages = scheduler_messages(client)
                trainer.step()
                messages = scheduler_messages(client) - messages - 1  # the query before the step
                # the round: the new iteration's pairs and the evaluation of the parameters they perturb
                row, pairs = trainer.rows[-1], trainer.pending
                work = pairs["pairs"] * 2 * pairs["length_mean"] + config.eval_episodes * row["eval_length_mean"]
                rows.append({"iteration_s": row["iteration_time_s"], "ideal_s": work * sim["step_s"] / n_workers,
                             **{f"{k}_cpu_s": c.take() for k, c in cpu.items()}, "scheduler_messages": messages})
                print(f"N={n_workers} iteration {i}: {row['iteration_time_s']:.2f} s (ideal "
                      f"{rows[-1]['ideal_s']:.2f} s), pairs {pairs['pairs']}, mean length {pairs['length_mean']:.0f}, "
                      f"{messages} scheduler messages", flush=True)
            trainer.workers.close()
        steady = rows[1:]  # the first round starts the workers' envs and caches
        out = {k: float(np.median([r[k] for r in steady])) for k in steady[0]}
        return out | {"workers": n_workers, "efficiency": out["ideal_s"] / out["iteration_s"]}
    finally:
        for h, _ in hosts:
            h.kill()
        scheduler.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[18, 144, 720, 1440])
    ap.add_argument("--iterations", type=int, default=4, help="steady iterations per N (after one warm-up)")
    ap.add_argument("--processes", type=int, default=4, help="processes holding the simulated workers")
    ap.add_argument("--env", default="Humanoid-v5")
    ap.add_argument("--lengths", default=str(LENGTHS), help="npz of record_episode_lengths.py")
    ap.add_argument("--stage", default="last", help="recorded iteration to draw lengths from (or 'last')")
    ap.add_argument("--length-scale", type=float, default=1.0,
                    help="multiply the recorded lengths (capped at the env's 1,000 steps): later training")
    ap.add_argument("--pairs", type=int, default=5000, help="pairs per iteration (paper: 10,000 episodes)")
    ap.add_argument("--min-timesteps", type=int, default=100_000)
    ap.add_argument("--episode-cap-factor", type=float, default=None)
    ap.add_argument("--communication", default="scalar", choices=["scalar", "broadcast"])
    ap.add_argument("--host-workers", type=int, default=18,
                    help="workers per host sharing the replica update (the paper's 18-core machines)")
    ap.add_argument("--scheme", default="current", help="a label for the csv rows")
    ap.add_argument("--csv", default=None, help="append the rows to this csv")
    args = ap.parse_args()

    limit = gym.spec(args.env).max_episode_steps
    stage, lengths = recorded_lengths(args.lengths, args.stage, args.length_scale, None, limit)
    _, capped = recorded_lengths(args.lengths, args.stage, args.length_scale, args.episode_cap_factor, limit)
    step_s, num_params = step_seconds(args.env)
    params = {"hidden": [256, 256], "pairs_per_iteration": args.pairs, "min_timesteps_per_iteration":
              args.min_timesteps, "noise_table_size": 250_000_000, "eval_episodes": 10, "iterations": 10**6,
              "communication": args.communication, "episode_cap_factor": args.episode_cap_factor}
    from esrepro.config import run_params
    params = run_params(None, args.env, overrides=params)
    whole_s, update_s = update_seconds(args.pairs, num_params, args.host_workers)
    update_s = update_s if args.communication == "scalar" else 0.0
    sim = {"lengths": lengths.astype(int).tolist(), "step_s": step_s, "update_s": update_s}
    print(f"episode lengths: {stage} of {args.lengths} x {args.length_scale} (mean {lengths.mean():.0f}, "
          f"max {lengths.max():.0f}); {1e6 * step_s:.0f} us per step; replica update {update_s:.2f} s "
          f"shared by {args.host_workers} workers ({whole_s:.2f} s alone); "
          f"scheme {args.scheme}, communication {args.communication}, cap {args.episode_cap_factor}")
    fields = ["scheme", "episode_cap", "communication", "length_scale", "workers", "iteration_s", "ideal_s",
              "efficiency", "ceiling", "master_cpu_s", "scheduler_cpu_s", "workers_cpu_s", "scheduler_messages"]
    print("| N | iteration s | ideal s | efficiency | ceiling | efficiency / ceiling | master CPU s | scheduler CPU s "
          "| workers' CPU s | scheduler messages |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for n in args.workers:  # each row printed and saved as soon as it is measured
        r = simulate(n, args, sim, params) | {"scheme": args.scheme, "episode_cap": args.episode_cap_factor or "",
                                              "communication": args.communication, "length_scale": args.length_scale,
                                              "ceiling": ceiling(capped, n, pairs=args.pairs,
                                                                 eval_episodes=params["eval_episodes"],
                                                                 min_timesteps=args.min_timesteps)}
        results.append(r)
        print(f"| {r['workers']} | {r['iteration_s']:.2f} | {r['ideal_s']:.2f} | {r['efficiency']:.2f} "
              f"| {r['ceiling']:.2f} | {r['efficiency'] / r['ceiling']:.2f} | {r['master_cpu_s']:.2f} "
              f"| {r['scheduler_cpu_s']:.2f} | {r['workers_cpu_s']:.2f} | {r['scheduler_messages']:.0f} |", flush=True)
        if args.csv:
            path = Path(args.csv)
            new, header = not path.exists(), fields
            if not new:
                with path.open() as f:
                    header = next(csv.reader(f))  # a file of older rows keeps its columns
            with path.open("a", newline="") as f:
                w = csv.DictWriter(f, header, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(r)
    last = results[-1]
    print(f"SUMMARY efficiency at N={last['workers']}: {last['efficiency']:.2f} (ceiling with free coordination "
          f"{last['ceiling']:.2f}; target >= 0.9, paper 0.82): {'met' if last['efficiency'] >= 0.9 else 'MISSED'}")


if __name__ == "__main__":
    main()
