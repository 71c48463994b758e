"""Rollout throughput: env-steps/s of a worker's rollouts versus raw ``env.step``.

What is measured (one process, one core, BLAS pools of one thread as in a Dask worker):

* ``rollouts (chunk)``: what a worker runs for a chunk of episodes (``tasks.chunk_rollouts``: up to
  ``MLP_SIDE_BY_SIDE`` episodes side by side, one env each, the envs on one shared MjModel unless
  ``--own-models``) with a 64-64 ``MLPPolicy`` (normc init), action noise std 0.01 from a
  ``numpy.random.Generator`` and observation normalization with arbitrary float32 mean/std arrays.
* ``replay (chunk)``: ``env.step`` replaying, from the same reset seeds, the very actions the policy
  took in those episodes, one episode after another on one env, so the simulator does exactly the
  same work. MuJoCo's cost per step depends on the state (contacts): a cheetah driven by the
  near-zero normc policy lies on the ground with more contacts than one driven by uniform random
  actions. The target is stated against this replay. The two alternate every ``BLOCK_STEPS`` env
  steps (~20 ms; the chunk's clock stops while its replay runs), so that the machine's changes of
  speed (+-20% from one second to the next) hit both alike: one repetition's ratio is steady to a
  few percent, where chunk and replay timed a second apart, or group by group (~0.4 s), gave
  0.75-1.1.
* for information, interleaved episode by episode (rotating order): single-episode ``rollout``,
  ``raw (random)`` (pre-drawn uniform random float32 actions, drawn before timing), ``raw
  (replay)`` (the replay again, for the single-episode ratio) and ``raw (sample)``
  (``env.step(env.action_space.sample())``).

Medians over repetitions are reported. Separately, microseconds per ``env.step`` and per policy
step (the compiled normalize + act, for one row and for a group's rows; action noise) are timed in
isolation.

Target: the worker's rollouts / the replay of their own actions >= 0.95 (against random actions:
information).

    python benchmarks/rollout_throughput.py [--env HalfCheetah-v5] [--steps 20000] [--repeats 10] [--side 8]
                                            [--own-models]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: as esrepro.distributed.cluster sets in workers

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from esrepro.distributed.tasks import MLP_SIDE_BY_SIDE, chunk_rollouts  # noqa: E402
from esrepro.envs.mujoco import make_env, share_model  # noqa: E402
from esrepro.policies.mlp import MLPPolicy  # noqa: E402
from esrepro.rollout import rollout  # noqa: E402

TARGET = 0.95
#: The chunk and its replay alternate every this many env steps (~20 ms).
BLOCK_STEPS = 400


def run_rollout(env, policy, mean, std, seed, noise_std):
    """One ``rollout`` episode from ``reset(seed)`` (action noise seeded by ``seed``); its steps."""
    return rollout(env, policy, mean, std, seed, noise_std, np.random.default_rng(seed)).length


def run_raw(env, seed, actions):
    """``reset(seed)``, then ``step(actions[i])`` until the episode ends; its steps."""
    env.reset(seed=seed)
    i = 0
    while True:
        _, _, terminated, truncated, _ = env.step(actions[i])
        i += 1
        if terminated or truncated:
            return i


def run_sample(env, seed):
    """``reset(seed)``, then ``step(action_space.sample())`` until the episode ends; its steps."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    i = 0
    while True:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        i += 1
        if terminated or truncated:
            return i


class Recorder:
    """Minimal env stand-in recording the actions passed to ``step`` (used untimed)."""

    def __init__(self, env):
        self.env, self.actions = env, []

    def reset(self, **kw):
        self.actions = []
        return self.env.reset(**kw)

    def step(self, action):
        self.actions.append(np.array(action, dtype=np.float32))
        return self.env.step(action)


class Replay:
    """The replay of ``episodes`` [(reset seed, actions)] on ``env``, one episode after another, run a
    few steps at a time (``run``); its steps and seconds add up."""

    def __init__(self, env, episodes):
        self.env, self.episodes = env, episodes
        self.steps, self.seconds, self.episode, self.t = 0, 0.0, 0, 0

    def run(self, n):
        """Step ``n`` more steps of the replay (fewer at its end)."""
        start = time.perf_counter()
        while n > 0 and self.episode < len(self.episodes):
            seed, actions = self.episodes[self.episode]
            if self.t == 0:
                self.env.reset(seed=seed)
            block = actions[self.t : self.t + n]
            for action in block:
                self.env.step(action)
            self.t, n, self.steps = self.t + len(block), n - len(block), self.steps + len(block)
            if self.t == len(actions):
                self.episode, self.t = self.episode + 1, 0
        self.seconds += time.perf_counter() - start


class Pausing:
    """A policy whose ``act`` runs ``replay`` for as many steps as its k episodes took since the last
    pause, once they are ``block`` or more: the chunk and its replay alternate every few
    milliseconds, so the machine's changes of speed hit both alike. ``paused`` adds up the seconds
    spent in the replay."""

    def __init__(self, policy, replay, block):
        self.policy, self.replay, self.block = policy, replay, block
        self.pending, self.paused = 0, 0.0

    def set_params(self, thetas):
        self.policy.set_params(thetas)

    def act(self, obs, *stats):
        self.pending += len(obs)
        if self.pending >= self.block:
            start = time.perf_counter()
            self.replay.run(self.pending)
            self.paused += time.perf_counter() - start
            self.pending = 0
        return self.policy.act(obs, *stats)


def per_call_us(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--steps", type=int, default=20000, help="env steps per repetition and variant (approx.)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--action-noise-std", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", type=int, default=MLP_SIDE_BY_SIDE,
                    help="episodes side by side in the chunk (default: the worker's, tasks.MLP_SIDE_BY_SIDE)")
    ap.add_argument("--own-models", action="store_true",
                    help="each env of the chunk on a model of its own (a worker's share one: mujoco.share_model)")
    ap.add_argument("--profile", action="store_true",
                    help="also print a cProfile of 5 rollout episodes (top functions by own time)")
    args = ap.parse_args()

    env_roll, env_raw = make_env(args.env), make_env(args.env)
    obs_dim = env_roll.observation_space.shape[0]
    space = env_roll.action_space
    max_steps = env_roll.spec.max_episode_steps or 1000
    policy = MLPPolicy(obs_dim, space.low, space.high, (64, 64))
    rng = np.random.default_rng(args.seed)
    theta = policy.init_params(rng)
    policy.set_params(theta)
    mean = rng.standard_normal(obs_dim).astype(np.float32)
    std = rng.uniform(0.5, 2.0, obs_dim).astype(np.float32)

    n_eps = max(1, round(args.steps / max_steps))
    seed_sets = [[1000 * (r + 1) + e for e in range(n_eps)] for r in range(args.repeats)]
    # Untimed preparation: uniform random actions, and the actions each rollout episode takes.
    random_actions, replay_actions = {}, {}
    rec = Recorder(make_env(args.env))
    for s in (s for seeds in seed_sets for s in seeds):
        random_actions[s] = rng.uniform(space.low, space.high, (max_steps, space.shape[0])).astype(np.float32)
        run_rollout(rec, policy, mean, std, s, args.action_noise_std)
        replay_actions[s] = np.stack(rec.actions)
    run_rollout(env_roll, policy, mean, std, 0, args.action_noise_std)  # warm-up
    # What a worker runs for a chunk of episodes: up to --side side by side (one env each).
    side = min(n_eps, args.side)
    chunk_envs = [make_env(args.env) for _ in range(side)]
    if not args.own_models:  # as a worker's envs
        chunk_envs = [chunk_envs[0], *(share_model(env, chunk_envs[0]) for env in chunk_envs[1:])]
    chunk_policy = MLPPolicy(obs_dim, space.low, space.high, (64, 64))

    def interleaved(seeds):
        """The chunk's episodes of ``seeds`` as a worker runs them, alternating every ``BLOCK_STEPS``
        env steps with the replay of as many steps of the same episodes; (chunk steps, seconds,
        replay steps, seconds)."""
        replay = Replay(env_raw, [(s, replay_actions[s]) for s in seeds])
        pausing = Pausing(chunk_policy, replay, BLOCK_STEPS)
        start = time.perf_counter()
        episodes = chunk_rollouts(chunk_envs, pausing, np.tile(theta, (len(seeds), 1)), mean, std, seeds,
                                  args.action_noise_std, [np.random.default_rng(s) for s in seeds])
        seconds = time.perf_counter() - start - pausing.paused
        replay.run(sum(len(replay_actions[s]) for s in seeds))  # its last steps (the chunk's since the last pause)
        return sum(ep.length for ep in episodes), seconds, replay.steps, replay.seconds

    variants = {
        "rollout": lambda s: run_rollout(env_roll, policy, mean, std, s, args.action_noise_std),
        "raw (random)": lambda s: run_raw(env_raw, s, random_actions[s]),
        "raw (replay)": lambda s: run_raw(env_raw, s, replay_actions[s]),
        "raw (sample)": lambda s: run_sample(env_raw, s),
    }
    names = list(variants)
    blocks = ["rollouts (chunk)", "replay (chunk)"]
    rates = {k: [] for k in [*blocks, *names]}
    ratio_random, ratio_replay, single_random, single_replay = [], [], [], []
    print(f"{args.env}: {args.repeats} repetitions of {n_eps} episodes (<= {max_steps} steps); the chunk ({side} "
          f"side by side) alternates with its replay every {BLOCK_STEPS} env steps, the other variants are "
          "interleaved episode by episode")
    for r, seeds in enumerate(seed_sets):
        steps, secs = dict.fromkeys(rates, 0), dict.fromkeys(rates, 0.0)
        steps[blocks[0]], secs[blocks[0]], steps[blocks[1]], secs[blocks[1]] = interleaved(seeds)
        for e, s in enumerate(seeds):
            for k in names[e % len(names):] + names[: e % len(names)]:
                t = time.perf_counter()
                steps[k] += variants[k](s)
                secs[k] += time.perf_counter() - t
        this = {k: steps[k] / secs[k] for k in rates}
        for k in rates:
            rates[k].append(this[k])
        ratio_random.append(this["rollouts (chunk)"] / this["raw (random)"])
        ratio_replay.append(this["rollouts (chunk)"] / this["replay (chunk)"])
        single_random.append(this["rollout"] / this["raw (random)"])
        single_replay.append(this["rollout"] / this["raw (replay)"])
        print(f"  rep {r}: " + ", ".join(f"{k} {this[k]:6.0f}" for k in rates) + " steps/s"
              f" | chunk ratio vs its replay {ratio_replay[-1]:.3f}, vs random {ratio_random[-1]:.3f}", flush=True)

    # Component costs, each timed in isolation (interleaved over 3 rounds, medians).
    obs = env_raw.reset(seed=1)[0]
    action0 = np.zeros(space.shape, dtype=np.float32)
    noise_rng = np.random.default_rng(1)
    replay_seed = seed_sets[0][0]
    chunk_policy.set_params(np.tile(theta, (side, 1)))
    group_obs = np.tile(obs, (side, 1))
    cursor = {"random": 0, "replay": 0}

    def step_from(kind, actions, seed):
        i = cursor[kind] % len(actions)
        if i == 0:
            env_raw.reset(seed=seed)
        cursor[kind] += 1
        env_raw.step(actions[i])

    components = {
        "env.step (random actions)": lambda: step_from("random", random_actions[replay_seed], replay_seed),
        "env.step (policy's actions)": lambda: step_from("replay", replay_actions[replay_seed], replay_seed),
        "policy.act (normalize + MLP)": lambda: policy.act(obs, mean, std),
        f"policy.act, {side} rows (a group's step)": lambda: chunk_policy.act(group_obs, mean, std),
        "action noise (draw, scale, add)": lambda: action0 + args.action_noise_std * noise_rng.standard_normal(
            space.shape, dtype=np.float32),
        "action_space.sample()": space.sample,
    }
    comp = {k: [] for k in components}
    for _ in range(3):
        for k, fn in components.items():
            comp[k].append(per_call_us(fn, 5000 if k.startswith("env") else 20000))
    print("component costs (us per call, isolated, median of 3):")
    for k, v in comp.items():
        print(f"  {k:36s} {statistics.median(v):7.2f}")

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [run_rollout(env_roll, policy, mean, std, s, args.action_noise_std)
                              for s in range(5)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)

    med = {k: statistics.median(v) for k, v in rates.items()}
    print("medians, steps/s per worker: " + ", ".join(f"{k} {v:.0f}" for k, v in med.items()))
    print("medians, us per step:        " + ", ".join(f"{k} {1e6 / v:.1f}" for k, v in med.items()))
    m_rand, m_rep = statistics.median(ratio_random), statistics.median(ratio_replay)
    print(f"  rollouts (chunk) / its replay: median {m_rep:.3f} of {args.repeats} repetitions "
          f"({min(ratio_replay):.3f}-{max(ratio_replay):.3f})")
    print(f"  single-episode rollout / raw(random) (information): {statistics.median(single_random):.3f}")
    print(f"  single-episode rollout / raw(replay) (interleaved episode by episode, steadier than the chunk's ratio): "
          f"{statistics.median(single_replay):.3f}")
    print(f"  rollouts (chunk) / raw(sample) (information): {med['rollouts (chunk)'] / med['raw (sample)']:.3f}")

    def verdict(x):
        return "met" if x >= TARGET else "MISSED"

    print(f"SUMMARY rollout_throughput {args.env}: worker rollouts ({n_eps} episodes, {side} side by side) / raw "
          f"env.step steps/s = {m_rep:.3f} vs the policy's own actions replayed, interleaved ("
          f"target >= {TARGET}: {verdict(m_rep)}), {m_rand:.3f} vs random actions (information)")


if __name__ == "__main__":
    main()
