"""End-to-end throughput: env steps/s per worker inside a real ES run, against a bare ``env.step`` loop.

What is measured, for each worker count W in ``--workers`` (default 1 and 2), in rounds:

* ``run``: one iteration of a real ES run (``esrepro.train.Trainer`` on a LocalCluster of W
  single-threaded workers, ``--pairs`` antithetic pairs per iteration, no evaluation episodes), after
  ``--warmup`` untimed ones: timesteps / wall time / W = env steps/s per worker. The workers time
  their ``env.step`` calls and record each episode's reset seed and actions.
* right after it, ``bare``: W spawned processes at once, each replaying a share of the iteration's
  episodes (reset seed, then the recorded actions) on one env, and stepping a second env with
  pre-drawn uniform random actions, the two alternating in blocks of 50 steps: env steps/s per
  process of ``bare replay`` (the simulator's speed for the very trajectories of the run: MuJoCo's
  cost per step depends on the state, e.g. its contacts) and of ``bare random`` (the target's
  reference, ``esrepro.envs.mujoco.make_env``).

The CPUs of a shared machine change speed by +-20% from one second to the next (the same bare loop,
0.5 s at a time, in one process: 6,600 to 12,800 steps/s). Two numbers are immune to that because
both of their parts are measured in the same seconds: ``replay/random`` (blocks of 50 steps
alternate) and the shares of the workers' time inside the run. The ratios run / bare compare
different seconds: medians over ``--iterations`` rounds, with the spread.

The workers' time (W x wall) inside the run, as fractions that add up to 1:

* ``env.step``: the workers' ``env.step`` calls;
* ``loop``: the rest of the chunks of episodes (``tasks.run_episodes`` in the workers): the policy,
  observation normalization, action noise, the episode loop (and this benchmark's timing and record
  of each action, about 0.5 us per step);
* ``between``: a worker's gaps between its chunks inside an iteration (its host's queue, the
  replica update, the coordinator's calls from the master);
* ``idle end``: from a worker's last chunk of an iteration to the end of the iteration (waiting for
  the slowest chunk; the master's update and bookkeeping);
* and, separately, the CPU seconds per iteration of this process (the ES master, the Dask client and
  the LocalCluster's scheduler share it).

``x env.step`` = replay/random x the env.step share: the ratio to random that the run would have if
its ``env.step`` calls ran as fast as the bare replay (both factors free of the machine's changes).
Last, each round's episodes are replayed once more, as a task in each worker: the run's env.step
calls against that replay tell a loss inside the run's tasks from one of the worker process.

    python benchmarks/end_to_end_throughput.py [--env HalfCheetah-v5] [--pairs 20] [--workers 1 2]
                                               [--iterations 8] [--warmup 2]
"""

import argparse
import logging
import multiprocessing
import tempfile
import time
import warnings

import numpy as np
import psutil

from esrepro.config import run_params
from esrepro.distributed.cluster import connect, worker_addresses
from esrepro.envs.mujoco import make_env
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

#: The goal: env steps/s per worker in the run >= this fraction of the replay of its own episodes.
TARGET = 0.9


BLOCK = 50  # steps of the replay and the random reference alternate in blocks of this many


def _bare_steps_per_s(args):
    """Env steps/s of ``env.step`` (replaying ``episodes`` [(reset seed, actions)], and with pre-drawn
    random actions) in this process, on two envs stepped in alternating blocks of ``BLOCK`` steps."""
    env_id, episodes, seed = args
    replay, random = make_env(env_id), make_env(env_id)
    low, high = random.action_space.low, random.action_space.high
    actions = np.random.default_rng(seed).uniform(low, high, (BLOCK, low.size)).astype(np.float32)
    random.reset(seed=seed)
    steps, seconds = 0, [0.0, 0.0]
    for episode_seed, episode in episodes:
        replay.reset(seed=episode_seed)
        for a in range(0, len(episode), BLOCK):
            block = episode[a : a + BLOCK]
            start = time.perf_counter()
            for action in block:
                replay.step(action)
            middle = time.perf_counter()
            for action in actions[: len(block)]:
                _, _, terminated, truncated, _ = random.step(action)
                if terminated or truncated:
                    random.reset()
            seconds[0] += middle - start
            seconds[1] += time.perf_counter() - middle
            steps += len(block)
    return steps / seconds[0], steps / seconds[1]


def bare(pool, env_id, workers, episodes):
    """Mean env steps/s per process (replay, random) with ``workers`` processes of ``pool`` stepping at
    once, each replaying a share of ``episodes``."""
    rates = pool.map(_bare_steps_per_s, [(env_id, episodes[k::workers], k) for k in range(workers)], chunksize=1)
    return tuple(np.mean(rates, axis=0))


def replay_in_workers(client, env_id, episodes):
    """Mean env steps/s per worker replaying a share of ``episodes`` as a task in each worker, at once
    (``_bare_steps_per_s``, its random-action blocks alternating as in the spawned processes)."""
    addresses = list(worker_addresses(client))
    futures = [client.submit(_bare_steps_per_s, (env_id, episodes[k :: len(addresses)], k), workers=[a], pure=False)
               for k, a in enumerate(addresses)]
    return float(np.mean([f.result()[0] for f in futures]))


def _instrument():
    """In a worker: from now on, time every ``env.step`` of a task and record each episode's reset
    seed and actions (in ``esrepro.distributed.tasks``, read by ``_take_recording``)."""
    import esrepro.distributed.host_queue as host_queue
    import esrepro.distributed.tasks as tasks
    from esrepro import rollout

    tasks.ENV_STEP_S, tasks.EPISODES, tasks.SPANS = 0.0, [], []
    run_episodes = host_queue.run_episodes

    def timed_chunk(*args, **kwargs):
        start = time.time()
        out = run_episodes(*args, **kwargs)
        tasks.SPANS.append((start, time.time()))
        return out

    host_queue.run_episodes = timed_chunk

    def instrumented(env):
        step, reset = env.step, env.reset

        def timed_step(action):  # a row of the step's fresh actions array (``act`` allocates one per call)
            env.actions.append(action)  # a copy here cost ~0.5 us a step, 1% of the run's speed
            start = time.perf_counter()
            out = step(action)
            tasks.ENV_STEP_S += time.perf_counter() - start
            return out

        def recorded_reset(seed=None, **kwargs):
            env.actions = []
            tasks.EPISODES.append((seed, env.actions))
            return reset(seed=seed, **kwargs)

        env.step, env.reset = timed_step, recorded_reset

    def rollouts(envs, *args, **kwargs):
        for env in envs:
            if "step" not in vars(env):
                instrumented(env)
        return rollout.rollouts(envs, *args, **kwargs)

    tasks.rollouts = rollouts


def _take_recording():
    """In a worker: (``env.step`` seconds, [(reset seed, actions)], [(start, stop) of each chunk of
    episodes]) since the last call."""
    import esrepro.distributed.tasks as tasks

    recording = tasks.ENV_STEP_S, [(seed, np.array(actions)) for seed, actions in tasks.EPISODES], tasks.SPANS
    tasks.ENV_STEP_S, tasks.EPISODES, tasks.SPANS = 0.0, [], []
    return recording


def _iteration(trainer, client, workers):
    """One ``trainer.step()``: (steps, wall s, master CPU s, its episodes [(reset seed, actions)], and in
    worker-seconds: env.step, compute, between, idle)."""
    me = psutil.Process()
    client.run(_take_recording)
    cpu0, t0, s0 = me.cpu_times(), time.time(), trainer.timesteps
    trainer.step()
    t1, cpu1 = time.time(), me.cpu_times()
    recordings = list(client.run(_take_recording).values())
    compute = between = 0.0
    idle = sum(t1 - t0 for r in recordings if not r[2])  # a worker without any chunk idled all along
    for _, _, spans in (r for r in recordings if r[2]):
        busy = sum(b - a for a, b in spans)
        last = max(b for _, b in spans)
        compute += busy
        idle += t1 - last
        between += (last - t0) - busy
    master_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    env_step, episodes = sum(r[0] for r in recordings), [e for r in recordings for e in r[1]]
    return trainer.timesteps - s0, t1 - t0, master_cpu, episodes, env_step, compute, between, idle


def measure(env_id, workers, args):
    """Per round: (run steps/s per worker, bare replay and random steps/s per process, shares of the
    workers' time W x wall: env.step, loop, between, idle end; master CPU s; the run's env.step calls
    and the replay in the workers, steps/s per worker)."""
    params = run_params(None, env_id, overrides={"iterations": 10**6, "pairs_per_iteration": args.pairs,
                                                 "eval_episodes": 0})
    rounds = []
    with (tempfile.TemporaryDirectory() as out, connect(workers) as client,
          multiprocessing.get_context("spawn").Pool(workers) as pool):
        trainer = Trainer(RunConfig.from_params(env_id, 0, params), out, log=lambda *_: None)
        trainer.connect(client)
        client.run(_instrument)
        for _ in range(args.warmup):
            _iteration(trainer, client, workers)
        for _ in range(args.iterations):
            steps, seconds, master_cpu, episodes, env_step, compute, between, idle = _iteration(trainer, client,
                                                                                                workers)
            replay, random = bare(pool, env_id, workers, episodes)
            total = workers * seconds
            rounds.append((steps / seconds / workers, replay, random, env_step / total, (compute - env_step) / total,
                           between / total, idle / total, master_cpu, steps / env_step,
                           replay_in_workers(client, env_id, episodes)))
        trainer.workers.close()
    return rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--pairs", type=int, default=20, help="antithetic pairs per iteration")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iterations", type=int, default=8, help="timed rounds per worker count")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"{args.env}, 64-64 policy, {args.pairs} pairs per iteration, no evaluation episodes; {args.iterations} "
          f"rounds of one iteration, then bare env.step, after {args.warmup} iterations; medians over rounds")
    print(f"{'W':>2} {'bare random':>11} {'bare replay':>11} {'run':>6} | {'ratio random (min-max)':>22} "
          f"{'replay':>6} | {'replay/random':>13} {'x env.step':>10} | in the run: {'env.step':>8} {'loop':>6} "
          f"{'between':>7} {'idle end':>8} | master CPU s/iter")
    ratios = {}
    for w in args.workers:
        rounds = np.array(measure(args.env, w, args))
        vs_replay, vs_random = rounds[:, 0] / rounds[:, 1], rounds[:, 0] / rounds[:, 2]
        ratios[w] = float(np.median(vs_random)), float(np.median(vs_replay))
        run, replay, random, *shares, master_cpu, _, _ = np.median(rounds, axis=0)
        spread = f"({vs_random.min():.2f}-{vs_random.max():.2f})"
        physics = rounds[:, 1] / rounds[:, 2]
        expected = np.median(physics * rounds[:, 3])
        print(f"{w:>2} {random:>11,.0f} {replay:>11,.0f} {run:>6,.0f} | {ratios[w][0]:>10.2f} {spread:>11} "
              f"{ratios[w][1]:>6.2f} | {np.median(physics):>13.2f} {expected:>10.2f} | {'':>11} "
              + " ".join(f"{x:>{n}.2f}" for x, n in zip(shares, (8, 6, 7, 8))) + f" | {master_cpu:.3f}")
        in_tasks = np.median(rounds[:, 8] / rounds[:, 9])
        in_workers = np.median(rounds[:, 9] / rounds[:, 1])
        print(f"   the run's env.step calls at {in_tasks:.2f}x the speed of the same episodes replayed one after "
              "another in the same workers right after the iteration; that replay in the workers at "
              f"{in_workers:.2f}x the bare replay (medians of per-round ratios)")
    to_replay = min(r for _, r in ratios.values())
    print(f"SUMMARY end_to_end_throughput {args.env}: ratio_to_replay={to_replay:.2f} (the lower of "
          + ", ".join(f"W={w} {r:.2f}" for w, (_, r) in ratios.items()) + f"; target >= {TARGET}: "
          f"{'met' if to_replay >= TARGET else 'MISSED'}); to bare env.step with random actions "
          + ", ".join(f"W={w} {r:.2f}" for w, (r, _) in ratios.items()))

if __name__ == "__main__":
    main()
