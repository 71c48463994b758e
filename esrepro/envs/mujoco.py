"""Environment construction for ES rollouts (MuJoCo through gymnasium)."""

import difflib

import gymnasium as gym


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
