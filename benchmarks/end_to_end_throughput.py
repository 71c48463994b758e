"""End-to-end throughput: env steps/s per worker inside a real ES run, against a bare ``env.step`` loop.

What is measured, for each worker count W in ``--workers`` (default 1 and 2), in rounds:

* ``run``: one iteration of a real ES run (``esrepro.train.Trainer`` on a LocalCluster of W
  single-threaded workers, ``--pairs`` antithetic pairs per iteration, no evaluation episodes), after
  ``--warmup`` untimed ones: timesteps / the workers' seconds = env steps/s per worker. The workers
  time their ``env.step`` calls and record each episode's reset seed and actions.
* inside the run, ``replay``: each env of a worker has a shadow env that replays its episode (same
  reset seed, the actions just taken) every ``SHADOW_STEPS`` steps and at the end of each chunk,
  while the run waits; the run's clock (its worker-seconds) leaves those pauses out. The run and the
  replay of its own episodes thus alternate every ~20 ms in the same process, and the machine's
  changes of speed (+-20% from one second to the next) hit both alike: ``ratio to replay`` = the
  run's env steps per worker-second / the replay's env steps per second of its ``env.step`` calls.
  This is the target's number.
* right after it, for information, ``bare``: W spawned processes at once, each replaying a share of
  the iteration's episodes on one env and stepping a second env with pre-drawn uniform random
  actions, the two alternating in blocks of 50 steps: env steps/s per process of ``bare replay``
  and of ``bare random`` (``esrepro.envs.mujoco.make_env``), and their ratio ``replay/random``,
  free of the machine's changes (MuJoCo's cost per step depends on the state, e.g. its contacts).
  ``ratio random`` = the run's rate / bare random, from different seconds (median over
  ``--iterations`` rounds, with the spread).

The workers' time in the run (their worker-seconds: W x wall less the replay's pauses), as
fractions that add up to 1:

* ``env.step``: the workers' ``env.step`` calls;
* ``loop``: the rest of the chunks of episodes (``tasks.run_episodes`` in the workers): the policy,
  observation normalization, action noise, the episode loop (and this benchmark's timing, record
  and replay bookkeeping of each action, about 0.5 us per step);
* ``between``: a worker's gaps between its chunks inside an iteration (its host's queue, the
  replica update, the coordinator's calls from the master);
* ``idle end``: from a worker's last chunk of an iteration to the end of the iteration (waiting for
  the slowest chunk; the master's update and bookkeeping);
* and, separately, the CPU seconds per iteration of this process (the ES master, the Dask client and
  the LocalCluster's scheduler share it).

Last, ``env.step / replay``: the speed of the run's ``env.step`` calls against the interleaved
replay of the same steps (a loss of the simulator itself inside the run, e.g. k episodes side by
side competing for the core's caches).

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
from esrepro.distributed.cluster import connect
from esrepro.envs.mujoco import make_env
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

#: The goal: env steps/s per worker in the run >= this fraction of the replay of its own episodes.
TARGET = 0.9


BLOCK = 50  # steps of the bare replay and the random reference alternate in blocks of this many
SHADOW_STEPS = 400  # inside the run, each env's shadow replays its last steps every this many steps (~20 ms)


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


def _instrument(env_id):
    """In a worker: from now on, time every ``env.step`` of a task, record each episode's reset seed
    and actions, and replay them on a shadow env of each env every ``SHADOW_STEPS`` steps and at the
    end of each chunk (in ``esrepro.distributed.tasks``, read by ``_take_recording``)."""
    import esrepro.distributed.host_queue as host_queue
    import esrepro.distributed.tasks as tasks
    from esrepro import rollout

    tasks.ENV_STEP_S, tasks.EPISODES, tasks.SPANS = 0.0, [], []
    tasks.REPLAY = [0, 0.0, 0.0]  # the shadows' steps, their env.step seconds, the run's seconds paused for them
    run_episodes, flushes = host_queue.run_episodes, []

    def timed_chunk(*args, **kwargs):
        start = time.time()
        out = run_episodes(*args, **kwargs)
        for flush in flushes:  # the chunk's last steps
            flush()
        tasks.SPANS.append((start, time.time()))
        return out

    host_queue.run_episodes = timed_chunk

    def instrumented(env):
        step, reset = env.step, env.reset
        shadow, pending = make_env(env_id), []

        def flush(seed=None):
            """Replay the steps taken since the last flush on the shadow, then reset it to ``seed``
            if given (the env begins an episode)."""
            start = time.perf_counter()
            for action in pending:
                shadow.step(action)
            stepped = time.perf_counter()
            if seed is not None:
                shadow.reset(seed=seed)
            tasks.REPLAY[0] += len(pending)
            tasks.REPLAY[1] += stepped - start
            tasks.REPLAY[2] += time.perf_counter() - start
            pending.clear()

        def timed_step(action):  # a row of the step's fresh actions array (``act`` allocates one per call)
            env.actions.append(action)  # a copy here cost ~0.5 us a step, 1% of the run's speed
            start = time.perf_counter()
            out = step(action)
            tasks.ENV_STEP_S += time.perf_counter() - start
            pending.append(action)
            if len(pending) == SHADOW_STEPS:
                flush()
            return out

        def recorded_reset(seed=None, **kwargs):
            flush(seed)
            env.actions = []
            tasks.EPISODES.append((seed, env.actions))
            return reset(seed=seed, **kwargs)

        flushes.append(flush)
        env.step, env.reset = timed_step, recorded_reset

    def rollouts(envs, *args, **kwargs):
        for env in envs:
            if "step" not in vars(env):
                instrumented(env)
        return rollout.rollouts(envs, *args, **kwargs)

    tasks.rollouts = rollouts


def _take_recording():
    """In a worker: (``env.step`` seconds, [(reset seed, actions)], [(start, stop) of each chunk of
    episodes], [replayed steps, their env.step seconds, seconds paused]) since the last call."""
    import esrepro.distributed.tasks as tasks

    recording = (tasks.ENV_STEP_S, [(seed, np.array(actions)) for seed, actions in tasks.EPISODES], tasks.SPANS,
                 tasks.REPLAY)
    tasks.ENV_STEP_S, tasks.EPISODES, tasks.SPANS, tasks.REPLAY = 0.0, [], [], [0, 0.0, 0.0]
    return recording


def _iteration(trainer, client):
    """One ``trainer.step()``: (steps, the workers' seconds in the run, master CPU s, its episodes
    [(reset seed, actions)], in worker-seconds: env.step, compute, between, idle; the replay's steps
    and env.step seconds)."""
    me = psutil.Process()
    client.run(_take_recording)
    cpu0, t0, s0 = me.cpu_times(), time.time(), trainer.timesteps
    trainer.step()
    t1, cpu1 = time.time(), me.cpu_times()
    recordings = list(client.run(_take_recording).values())
    compute = between = 0.0
    idle = sum(t1 - t0 for r in recordings if not r[2])  # a worker without any chunk idled all along
    for _, _, spans, replay in (r for r in recordings if r[2]):
        busy = sum(b - a for a, b in spans)
        last = max(b for _, b in spans)
        compute += busy - replay[2]
        idle += t1 - last
        between += (last - t0) - busy
    master_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    env_step, episodes = sum(r[0] for r in recordings), [e for r in recordings for e in r[1]]
    replay_steps, replay_s, paused = (sum(r[3][i] for r in recordings) for i in range(3))
    worker_s = len(recordings) * (t1 - t0) - paused
    return (trainer.timesteps - s0, worker_s, master_cpu, episodes, env_step, compute, between, idle, replay_steps,
            replay_s)


def measure(env_id, workers, args):
    """Per round: (run steps/s per worker, the interleaved replay's steps/s, bare replay and random
    steps/s per process, shares of the workers' seconds: env.step, loop, between, idle end; master CPU
    s; the run's env.step calls, steps/s)."""
    params = run_params(None, env_id, overrides={"iterations": 10**6, "pairs_per_iteration": args.pairs,
                                                 "eval_episodes": 0})
    rounds = []
    with (tempfile.TemporaryDirectory() as out, connect(workers) as client,
          multiprocessing.get_context("spawn").Pool(workers) as pool):
        trainer = Trainer(RunConfig.from_params(env_id, 0, params), out, log=lambda *_: None)
        trainer.connect(client)
        client.run(_instrument, env_id)
        for _ in range(args.warmup):
            _iteration(trainer, client)
        for _ in range(args.iterations):
            (steps, worker_s, master_cpu, episodes, env_step, compute, between, idle, replay_steps,
             replay_s) = _iteration(trainer, client)
            bare_replay, random = bare(pool, env_id, workers, episodes)
            rounds.append((steps / worker_s, replay_steps / replay_s, bare_replay, random, env_step / worker_s,
                           (compute - env_step) / worker_s, between / worker_s, idle / worker_s, master_cpu,
                           steps / env_step))
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
          f"rounds of one iteration (its episodes replayed every {SHADOW_STEPS} steps inside it), then bare "
          f"env.step, after {args.warmup} iterations; medians over rounds")
    print(f"{'W':>2} {'run':>6} {'replay':>6} | {'ratio to replay (min-max)':>25} | {'bare random':>11} "
          f"{'ratio random':>12} {'replay/random':>13} | in the run: {'env.step':>8} {'loop':>6} {'between':>7} "
          f"{'idle end':>8} | {'env.step / replay':>17} | master CPU s/iter")
    ratios = {}
    for w in args.workers:
        rounds = np.array(measure(args.env, w, args))
        vs_replay, vs_random = rounds[:, 0] / rounds[:, 1], rounds[:, 0] / rounds[:, 3]
        ratios[w] = float(np.median(vs_random)), float(np.median(vs_replay))
        run, replay, _, random, *shares, master_cpu, _ = np.median(rounds, axis=0)
        spread = f"({vs_replay.min():.2f}-{vs_replay.max():.2f})"
        physics = np.median(rounds[:, 2] / rounds[:, 3])
        env_step = np.median(rounds[:, 9] / rounds[:, 1])
        print(f"{w:>2} {run:>6,.0f} {replay:>6,.0f} | {ratios[w][1]:>13.2f} {spread:>11} | {random:>11,.0f} "
              f"{ratios[w][0]:>12.2f} {physics:>13.2f} | {'':>11} "
              + " ".join(f"{x:>{n}.2f}" for x, n in zip(shares, (8, 6, 7, 8))) + f" | {env_step:>17.2f} | "
              f"{master_cpu:.3f}")
    to_replay = min(r for _, r in ratios.values())
    print(f"SUMMARY end_to_end_throughput {args.env}: ratio_to_replay={to_replay:.2f} (the lower of "
          + ", ".join(f"W={w} {r:.2f}" for w, (_, r) in ratios.items()) + f"; target >= {TARGET}: "
          f"{'met' if to_replay >= TARGET else 'MISSED'}); to bare env.step with random actions "
          + ", ".join(f"W={w} {r:.2f}" for w, (r, _) in ratios.items()))

if __name__ == "__main__":
    main()
