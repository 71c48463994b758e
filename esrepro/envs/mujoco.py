"""MuJoCo envs for ES (paper section 4.1) through gymnasium, and the parameters that apply to them
only: the tanh MLP policy, observation normalization and action noise."""

import difflib
import functools
import logging
from dataclasses import dataclass

import gymnasium as gym
import mujoco

from esrepro.policies import mlp
from esrepro.policies.mlp import MLPPolicy

log = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """MuJoCo's warnings (``mju_warning``), each distinct message logged once per process. MuJoCo's
    own handler prints every one and appends it to MUJOCO_LOG.TXT in the working directory; mujoco
    4.0 warns of the deprecated ``settotalmass`` in gymnasium's HalfCheetah XML each time such an
    env is made, dozens of times in a run's log. The simulator's run-time warnings (``mj_warning``:
    unstable simulation, too many contacts, ...) reach this once per MjData, as before."""
    if message not in _warned:
        _warned.add(message)
        log.warning("MuJoCo: %s", message)


mujoco.set_mju_user_warning(_warn_once)  # process-wide: every MuJoCo env made after esrepro.envs is imported


@dataclass(frozen=True)
class MujocoParams:
    """The ES parameters of MuJoCo runs only (config/es_params.schema.yaml has their defaults and
    sources).

    Attributes
    ----------
    hidden : tuple of int
        tanh MLP hidden layer sizes (paper section 4.1: (64, 64)).
    action_bins : int
        0 = continuous actions; 10 = the paper's discretized actions (Hopper, Swimmer).
    obs_norm_prob : float
        Probability that a training rollout records observation statistics (reference 0.01).
    action_noise_std : float
        Gaussian noise std on training actions (reference 0.01).
    """

    hidden: tuple[int, ...]
    action_bins: int
    obs_norm_prob: float
    action_noise_std: float


def check_env_id(env_id: str) -> None:
    """Raise ValueError naming ``env_id`` (and close matches) if gymnasium does not know it."""
    if env_id not in gym.envs.registry:
        close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown env id '{env_id}'{hint}")


def make_env(env_id: str, max_episode_steps: int | None = None) -> gym.Env:
    """A gymnasium env for rollouts: the env's own TimeLimit (or ``max_episode_steps``), without
    the passive env checker (it costs about a third of a MuJoCo step and checks nothing a
    registered env needs)."""
    check_env_id(env_id)
    return gym.make(env_id, max_episode_steps=max_episode_steps, disable_env_checker=True)


def make_run_env(env_id: str, params: MujocoParams, max_episode_steps: int | None,
                 like: gym.Env | None = None) -> gym.Env:
    """The env of an ES run (``make_env``; ``params`` change nothing about the env); with ``like``,
    an env of the same run stepping on its MjModel (``share_model``)."""
    env = make_env(env_id, max_episode_steps)
    return env if like is None else share_model(env, like)


def share_model(env: gym.Env, like: gym.Env) -> gym.Env:
    """``env``, made to step on ``like``'s MjModel, with an MjData of its own. Both must be made
    alike (same id and keyword arguments). ``mj_step`` only reads the model, so the episodes are
    bit-identical. A worker's k envs side by side then keep one copy of the model in the core's
    caches instead of k (HalfCheetah-v5, k = 8: 0.90-0.92 -> 0.93-0.94 of the replay of the same
    episodes, ``benchmarks/rollout_throughput.py`` against ``--own-models``). ``model`` and
    ``data`` are MujocoEnv's documented attributes; its renderer keeps the old ones (a worker's
    envs do not render). Returns ``env``."""
    base = env.unwrapped
    base.model = like.unwrapped.model
    base.data = mujoco.MjData(base.model)
    return env


@functools.cache
def _spaces(env_id: str) -> tuple:
    """(observation size, action low, action high) of ``env_id``, from one env made and closed."""
    env = make_env(env_id)
    space = env.action_space
    env.close()
    return env.observation_space.shape[0], space.low, space.high


def num_params(env_id: str, params: dict) -> int:
    """Length of the parameter vector of ``env_id``'s policy for the run parameters ``params``
    (``hidden``, ``action_bins``), known before any run starts (the workflow checks the noise table
    against it)."""
    obs_dim, low, _ = _spaces(env_id)
    return mlp.num_params(obs_dim, low.size, params["hidden"], params["action_bins"])


def make_policy(env: gym.Env, params: MujocoParams, reference=None) -> MLPPolicy:
    """The tanh MLP for ``env``'s spaces (``reference`` is unused: MuJoCo has no VBN)."""
    space = env.action_space
    return MLPPolicy(env.observation_space.shape[0], space.low, space.high, params.hidden, params.action_bins)
