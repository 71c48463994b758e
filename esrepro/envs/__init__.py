"""The kinds of env ES runs on, in one table: how to recognise an env id, make the env, build its
policy, and which run parameters apply to it only.

- MuJoCo (paper section 4.1): gymnasium ids such as ``HalfCheetah-v5``; the tanh MLP with
  observation normalization and action noise (``esrepro.envs.mujoco``).
- Atari (paper section 4.2): ``ALE/<Game>-v5``, configured by game name; the A3C CNN with virtual
  batch normalization (``esrepro.envs.atari``).

Every "is this Atari?" in the package is ``kind_of(env_id)``.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields

from esrepro.envs import atari, mujoco


@dataclass(frozen=True)
class EnvKind:
    """One kind of env.

    Attributes
    ----------
    name : str
        "MuJoCo" or "Atari" (for messages).
    es_section : str
        The config section of its ES runs ("es" or "atari").
    params : type
        Frozen dataclass of the ES parameters that apply to this kind only (``MujocoParams``,
        ``AtariParams``); its fields are the parameter names.
    make_env : callable (env_id, kind params, max_episode_steps, like=None) -> gymnasium.Env
        ``like``: an env of the same run that the new one may share read-only state with (MuJoCo:
        its MjModel), for the envs a worker steps side by side.
    make_policy : callable (env, kind params, reference batch or None) -> policy
    num_params : callable (env_id, run parameters as a dict) -> int
        The length of the policy's parameter vector, without making a run's env or policy.
    """

    name: str
    es_section: str
    params: type
    make_env: Callable
    make_policy: Callable
    num_params: Callable

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.params))


MUJOCO = EnvKind("MuJoCo", "es", mujoco.MujocoParams, mujoco.make_run_env, mujoco.make_policy, mujoco.num_params)
ATARI = EnvKind("Atari", "atari", atari.AtariParams, atari.make_run_env, atari.make_policy, atari.num_params)
KINDS = (MUJOCO, ATARI)


def kind_of(env_id: str) -> EnvKind:
    """The kind of a gymnasium env id: Atari for "ALE/...", MuJoCo otherwise."""
    return ATARI if atari.is_atari(env_id) else MUJOCO
