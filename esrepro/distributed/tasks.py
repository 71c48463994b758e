"""What runs on the Dask workers: chunks of antithetic pairs and evaluation episodes.

Tasks carry only integers and a small ``RunSpec``. The parameters reach a worker in one of two
ways (the run's ``communication`` setting, docs/design.md; paper Algorithm 2):

- ``broadcast``: a payload ``(theta, obs_mean, obs_std)`` scattered to every worker once per
  version, as the reference code does;
- ``scalar``: every worker keeps a ``Replica`` of the parameters, Adam state and observation
  statistics and brings it up to date itself from a ``Sync``: the last update's noise indices,
  returns and observation sums. A worker without a current replica answers ``stale`` and the master
  sends it the full state once (``load_replica``).

What comes back is scalars: noise indices, returns, lengths and the rare observation sums.
"""

import threading
import zlib
from dataclasses import dataclass, replace

import numpy as np
from distributed import WorkerPlugin, get_worker

from esrepro.es.noise import NoiseTable
from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import OpenES, ask, eval_env_seed
from esrepro.rollout import rollouts


@dataclass(frozen=True)
class RunSpec:
    """The static part of a run that workers need; hashable, a few hundred bytes.

    MuJoCo runs set ``hidden`` and ``action_bins``; Atari runs (``env_id`` "ALE/...") set
    ``frame_skip``, ``noop_max`` and ``network`` and have no observation normalization or action
    noise."""

    env_id: str
    run_seed: int
    sigma: float
    noise_table_size: int
    noise_seed: int
    max_episode_steps: int | None
    obs_norm_prob: float = 0.0
    action_noise_std: float = 0.0
    hidden: tuple[int, ...] | None = None
    action_bins: int | None = None
    frame_skip: int | None = None
    noop_max: int | None = None
    network: str | None = None

    @property
    def atari(self) -> bool:
        return self.frame_skip is not None

    @property
    def side_by_side(self) -> int:
        """Episodes a worker steps side by side with one batched policy call: all of a task's for
        the MLP; one for the CNN, whose 6.4 MB of dense weights per parameter vector stay in the
        CPU cache only one at a time (``benchmarks/cnn_forward.py``: 0.5 ms per row at k=1, ~0.9 ms
        at k >= 2)."""
        return 1 if self.atari else 2**31

    @property
    def noise_plugin_name(self) -> str:
        return f"esrepro-noise-{self.noise_table_size}-{self.noise_seed}"


class NoiseTablePlugin(WorkerPlugin):
    """Maps the shared noise table once per worker process (not once per task)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.table = None

    def setup(self, worker):
        self.table = NoiseTable(self.size, self.seed)


def make_run_env(spec: RunSpec):
    """The env of a run: the Atari stack (``esrepro.envs.atari.make_atari_env``) or a MuJoCo env."""
    if spec.atari:
        from esrepro.envs.atari import make_atari_env
        return make_atari_env(spec.env_id, spec.frame_skip, spec.noop_max, spec.max_episode_steps)
    from esrepro.envs.mujoco import make_env
    return make_env(spec.env_id, spec.max_episode_steps)


def build_policy(spec: RunSpec, env, reference=None):
    """The policy network of ``spec`` for ``env``'s spaces: the A3C CNN with virtual batch
    normalization over ``reference`` (uint8 (n, 4, 84, 84)) for Atari, the tanh MLP for MuJoCo."""
    if spec.atari:
        from esrepro.policies.cnn import CNNPolicy
        return CNNPolicy(env.action_space.n, spec.network, reference)
    from esrepro.policies.mlp import MLPPolicy
    space = env.action_space
    return MLPPolicy(env.observation_space.shape[0], space.low, space.high, spec.hidden, spec.action_bins)


_RUNTIME: dict = {}


def _runtime(spec: RunSpec, reference, n_envs: int):
    """This worker's (noise table, ``n_envs`` envs, policy) for ``spec``; envs are built on first
    use and kept (an episode runs on its own env instance, so k episodes step side by side)."""
    key = spec if spec.atari else replace(spec, run_seed=0)  # an Atari policy holds its run's VBN batch
    if key not in _RUNTIME:
        env = make_run_env(spec)
        _RUNTIME[key] = ([env], build_policy(spec, env, reference))
    envs, policy = _RUNTIME[key]
    envs += [make_run_env(spec) for _ in range(n_envs - len(envs))]
    noise = get_worker().plugins[spec.noise_plugin_name].table
    return noise, envs[:n_envs], policy


# -- scalar-only communication -----------------------------------------------------------------
@dataclass
class Update:
    """One iteration's update, as scalars: what turns version v - 1 into version v.

    Attributes
    ----------
    noise_indices : ndarray of int64, shape (n,)
    returns : ndarray of float64, shape (n, 2)
        Raw returns; the centered ranks are computed from them by ``OpenES.tell``.
    obs : list of (obs_sum, obs_sumsq, count)
        Observation sums of the recorded rollouts, in pair order.
    """

    noise_indices: np.ndarray
    returns: np.ndarray
    obs: list


def apply_update(es: OpenES, obstat: ObsStats | None, update: Update) -> float:
    """Apply ``update`` to ``es`` and ``obstat``: the same operations in the same order on the
    master and on every replica, so all hold bit-identical state. Returns the update ratio."""
    ratio = es.tell(update.noise_indices, update.returns)
    for s, ss, c in update.obs:
        obstat.increment(s, ss, c)
    return ratio


def checksum(theta: np.ndarray) -> int:
    """CRC32 of the parameter bytes: a replica must match the master's exactly."""
    return zlib.crc32(np.ascontiguousarray(theta).view(np.uint8))


@dataclass
class Sync:
    """What brings a replica to ``version``: the last ``update`` (None for version 0) and the
    master's checksum of the parameters at ``version``. Scattered once per version; a few KB."""

    run_key: str
    version: int
    update: Update | None
    theta_crc: int


@dataclass
class Replica:
    """A worker's copy of a run's state at ``version``."""

    version: int
    es: OpenES
    obstat: ObsStats | None
    crc: int
    lock: threading.Lock


_REPLICAS: dict[str, Replica] = {}


class Stale(Exception):
    """This worker has no replica of the run at the version a task needs."""


def load_replica(spec: RunSpec, run_key: str, state: dict) -> str:
    """Install the full state of a run on this worker (once per worker that joins or restarts).

    ``state`` holds ``version``, ``theta``, ``adam_m``, ``adam_v``, ``adam_t``, ``stepsize``,
    ``l2coeff`` and, for MuJoCo, ``obs_sum``, ``obs_sumsq``, ``obs_count``. Returns the worker's
    address."""
    worker = get_worker()
    noise = worker.plugins[spec.noise_plugin_name].table
    es = OpenES(state["theta"], noise, state["stepsize"], state["l2coeff"])
    es.optimizer.m, es.optimizer.v, es.optimizer.t = state["adam_m"].copy(), state["adam_v"].copy(), state["adam_t"]
    obstat = None
    if "obs_sum" in state:
        obstat = ObsStats(state["obs_sum"].size)
        obstat.sum, obstat.sumsq, obstat.count = state["obs_sum"].copy(), state["obs_sumsq"].copy(), state["obs_count"]
    _REPLICAS[run_key] = Replica(state["version"], es, obstat, checksum(es.theta), threading.Lock())
    return worker.address


def value(x):
    """The task that holds a payload: its result is its argument."""
    return x


def drop_replica(run_key: str) -> None:
    """Forget a finished run's replica on this worker."""
    _REPLICAS.pop(run_key, None)


def _resolve(params):
    """(theta, obs_mean, obs_std) from a broadcast payload, or from this worker's replica brought
    up to ``Sync.version``.

    Raises
    ------
    Stale
        If the replica is missing, more than one version behind, or differs from the master's.
    """
    if not isinstance(params, Sync):
        return params
    replica = _REPLICAS.get(params.run_key)
    if replica is None:
        raise Stale
    with replica.lock:
        if replica.version == params.version - 1 and params.update is not None:
            apply_update(replica.es, replica.obstat, params.update)
            replica.version, replica.crc = params.version, checksum(replica.es.theta)
        if replica.version != params.version or replica.crc != params.theta_crc:
            raise Stale
        obstat = replica.obstat
        return replica.es.theta, obstat and obstat.mean, obstat and obstat.std


def _stale() -> dict:
    return {"stale": get_worker().address}


# -- tasks ------------------------------------------------------------------------------------------
def _rollouts(envs, policy, thetas, obs_mean, obs_std, env_seeds, action_noise_std=0.0, rngs=None, record_obs=None):
    """``rollouts`` of the parameter rows ``thetas``, ``len(envs)`` episodes side by side at a time."""
    k, n = len(envs), len(thetas)
    rngs, record_obs = rngs or [None] * n, record_obs or [False] * n
    episodes = []
    for a in range(0, n, k):
        policy.set_params(thetas[a : a + k])
        episodes += rollouts(envs[: len(thetas[a : a + k])], policy, obs_mean, obs_std, env_seeds[a : a + k],
                             action_noise_std, rngs[a : a + k], record_obs[a : a + k])
    return episodes


def evaluate_pairs(spec: RunSpec, reference, params, iteration: int, start: int, stop: int) -> dict:
    """Evaluate antithetic pairs ``start <= j < stop`` of ``iteration``, all 2(stop - start)
    episodes side by side (``rollouts``).

    Parameters
    ----------
    reference : ndarray of uint8, shape (n, 4, 84, 84), or None
        The run's VBN reference batch (Atari), scattered once per run.
    params : tuple (theta, obs_mean, obs_std) or Sync
        The iteration's parameters (float32, shape (num_params,)) and observation statistics
        ((obs_dim,), None for Atari), or what brings this worker's replica to them.

    Returns
    -------
    dict with ``noise_indices`` int64 (k,), ``returns`` float64 (k, 2) and ``lengths`` int64 (k, 2)
    (column 0: theta + sigma eps, column 1: theta - sigma eps), and ``obs``: a list of
    (pair index, obs_sum, obs_sumsq, count) for the recorded rollouts, in pair order.
    Or ``{"stale": worker address}`` if this worker needs the full state first (scalar mode).
    """
    try:
        theta, obs_mean, obs_std = _resolve(params)
    except Stale:
        return _stale()
    noise, envs, policy = _runtime(spec, reference, min(2 * (stop - start), spec.side_by_side))
    pairs = [ask(spec.run_seed, iteration, j, noise, theta.size, spec.obs_norm_prob) for j in range(start, stop)]
    eps = np.stack([spec.sigma * noise.get(p.noise_index, theta.size) for p in pairs])
    episodes = _rollouts(envs, policy, np.stack([theta + eps, theta - eps], axis=1).reshape(-1, theta.size),
                         obs_mean, obs_std, [p.env_seed for p in pairs for _ in range(2)], spec.action_noise_std,
                         [r for p in pairs for r in p.action_rngs], [rec for p in pairs for rec in p.record_obs])
    recorded = [(j, ep) for j, ep in zip(np.repeat(np.arange(start, stop), 2), episodes) if ep.obs_sum is not None]
    return {"noise_indices": np.array([p.noise_index for p in pairs], dtype=np.int64),
            "returns": np.array([ep.ret for ep in episodes]).reshape(-1, 2),
            "lengths": np.array([ep.length for ep in episodes], dtype=np.int64).reshape(-1, 2),
            "obs": [(int(j), ep.obs_sum, ep.obs_sumsq, ep.length) for j, ep in recorded]}


def evaluate_policy(spec: RunSpec, reference, params, iteration: int, episodes: list[int]):
    """Deterministic evaluation (no perturbation, no action noise) of the parameters; Atari
    episodes start with up to ``noop_max`` random no-ops (the paper's protocol).

    Returns
    -------
    ndarray of float64, shape (len(episodes), 2): return and length of each episode; or
    ``{"stale": worker address}`` as ``evaluate_pairs``.
    """
    try:
        theta, obs_mean, obs_std = _resolve(params)
    except Stale:
        return _stale()
    _, envs, policy = _runtime(spec, reference, min(len(episodes), spec.side_by_side))
    results = _rollouts(envs, policy, np.tile(theta, (len(episodes), 1)), obs_mean, obs_std,
                        [eval_env_seed(spec.run_seed, iteration, e) for e in episodes])
    return np.array([(ep.ret, ep.length) for ep in results], dtype=np.float64)
