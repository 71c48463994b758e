"""Atari environments for ES (paper section 4.2): the ALE through gymnasium with the preprocessing of
DQN and A3C (Mnih et al. 2015, 2016), and the reference batch of virtual batch normalization.

The wrapper stack of ``make_atari_env``, innermost first:

1. ``gym.make("ALE/<Game>-v5", frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")``:
   the emulator skips no frames and has no sticky actions (v5 defaults to frame-skip 4 and sticky
   actions 0.25; the paper follows A3C's deterministic emulator, docs/paper.md "Known traps").
   Minimal action set. v5's cap of 108,000 emulator frames per episode (30 minutes of play) stays,
   whatever the frame_skip. ``AtariPreprocessing`` reads the screens it needs from the emulator
   itself and drops this env's own observation of every frame, so that observation is the cheaper
   grayscale one (33.6 KB, not 100.8 KB of RGB): the same observations, an agent step ~9% faster
   (Pong, frame_skip 4: 410 -> 372 us).
2. ``StartStateReset``: a seeded reset restores a saved start state instead of reloading the ROM
   (our addition, for speed; see its docstring).
3. ``AtariPreprocessing``: at reset, a number of no-op actions drawn uniformly from 1..noop_max
   (one emulator frame each, from the env's ``np_random``, seeded by ``reset(seed=...)``; 0 no-ops
   when noop_max is 0); every agent step repeats the action for ``frame_skip`` emulator frames,
   sums their rewards (no clipping) and observes the pixel-wise max of the last two of them (the
   last one alone when frame_skip is 1); grayscale, resized to 84x84 (cv2 ``INTER_AREA``), uint8;
   losing a life does not end the episode (``terminal_on_life_loss=False``).
4. ``FrameStackObservation(4)``: the last 4 frames, uint8 (4, 84, 84); at reset, the first frame
   repeated.
5. ``TimeLimit(max_episode_steps)`` in agent steps, when given.

No fire-on-reset and no reward clipping (neither is part of the paper's protocol).
"""

import difflib
import functools
import re
from dataclasses import dataclass

import ale_py
import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit

from esrepro.envs.mujoco import check_env_id
from esrepro.policies import cnn
from esrepro.policies.cnn import CNNPolicy

gym.register_envs(ale_py)

#: Emulator frames per agent step of the Table 2 runs (A3C's; Figure 2 varies it).
TABLE2_FRAME_SKIP = 4
#: Frames stacked into one observation (DQN / A3C).
FRAME_STACK = 4
#: Side of the square grayscale frames.
SCREEN_SIZE = 84
_ENV_ID = re.compile(r"ALE/(?P<game>[A-Za-z0-9]+)-v5")


@dataclass(frozen=True)
class AtariParams:
    """The ES parameters of Atari runs only (config/es_params.schema.yaml has their defaults and
    sources).

    Attributes
    ----------
    frame_skip : int
        Emulator frames per agent step (set by the grid: ``TABLE2_FRAME_SKIP`` for Table 2, 1-4 for
        Figure 2).
    noop_max : int
        Up to this many random no-ops at each episode start (paper: 30).
    network : str
        The A3C CNN, "large" or "small" (``esrepro.policies.cnn``).
    vbn_batch_size : int
        Observations in the VBN reference batch (``reference_batch``).
    """

    frame_skip: int
    noop_max: int
    network: str
    vbn_batch_size: int


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is an ALE env id ("ALE/...")."""
    return env_id.startswith("ALE/")


def atari_env_id(game: str) -> str:
    """The gymnasium id of an ALE game: "Pong" -> "ALE/Pong-v5".

    Raises
    ------
    ValueError
        If gymnasium does not know the game (close matches named).
    """
    env_id = f"ALE/{game}-v5"
    if env_id not in gym.envs.registry:
        games = [m["game"] for m in map(_ENV_ID.fullmatch, gym.envs.registry) if m]
        close = difflib.get_close_matches(str(game), games, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown Atari game {game!r}{hint}")
    return env_id


def game_name(env_id: str) -> str:
    """The game of an ALE v5 env id: "ALE/Pong-v5" -> "Pong".

    Raises
    ------
    ValueError
        If ``env_id`` is not of the form "ALE/<Game>-v5".
    """
    match = _ENV_ID.fullmatch(env_id)
    if match is None:
        raise ValueError(f"not an ALE v5 env id (ALE/<Game>-v5): {env_id!r}")
    return match["game"]


class StartStateReset(gym.Wrapper):
    """Seeded resets of an ale_py ``AtariEnv`` that restore a saved start state instead of
    reloading the ROM.

    ale_py's ``reset(seed=s)`` reseeds the emulator and reloads the ROM, about 0.15 s of CPU
    (measured here; longer than 100 agent steps of Pong), and ES seeds every episode. This wrapper does that
    once, with seed 0, at construction and keeps the emulator state right after it (its random
    generator included); ``reset(seed=s)`` then seeds the env's ``np_random`` from s as ale_py
    does (``seed_game``) and restores that state (~0.1 ms). Every seeded episode thus starts from
    the same emulator state, as in the deterministic ALE of DQN and A3C, and the seed decides the
    no-ops that ``AtariPreprocessing`` draws from ``np_random``. ``reset()`` without a seed is
    ale_py's own. A seeded reset observes the grayscale screen, as ``make_atari_env``'s emulator
    env does (``AtariPreprocessing`` reads the screens it uses itself).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        env.reset(seed=0)
        self._start = env.unwrapped.ale.cloneState(include_rng=True)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None:
            return self.env.reset(options=options)
        self.env.unwrapped.seed_game(seed)
        ale = self.env.unwrapped.ale
        ale.restoreState(self._start)
        info = {"lives": ale.lives(), "episode_frame_number": ale.getEpisodeFrameNumber(),
                "frame_number": ale.getFrameNumber()}
        return ale.getScreenGrayscale(), info


def make_atari_env(env_id: str, frame_skip: int = 4, noop_max: int = 30,
                   max_episode_steps: int | None = None) -> gym.Env:
    """The preprocessed Atari env of the module docstring.

    Parameters
    ----------
    env_id : str
        "ALE/<Game>-v5".
    frame_skip : int
        Emulator frames per agent step, >= 1 (A3C and Table 2: 4; Figure 2: 1, 2, 3, 4).
    noop_max : int
        Up to this many no-op frames at the start of every episode, >= 0 (paper: 30).
    max_episode_steps : int or None
        Episode cap in agent steps, >= 1; None: only v5's cap of 108,000 emulator frames.

    Returns
    -------
    gymnasium.Env
        Observations uint8 (4, 84, 84); Discrete actions (the game's minimal action set); raw
        (unclipped) rewards. Seeded by ``reset(seed=...)``: the episode is then a deterministic
        function of the actions. The passive env checker is off (as in ``esrepro.envs.mujoco``).

    Raises
    ------
    ValueError
        Naming the argument and its value: an env id that is not a known ALE id, frame_skip < 1,
        noop_max < 0 or max_episode_steps < 1.
    """
    if not is_atari(env_id):
        raise ValueError(f"not an Atari env id (ALE/<Game>-v5): {env_id!r}")
    check_env_id(env_id)
    for name, value, low in (("frame_skip", frame_skip, 1), ("noop_max", noop_max, 0),
                             ("max_episode_steps", max_episode_steps, 1)):
        if value is not None and not (isinstance(value, (int, np.integer)) and value >= low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, obs_type="grayscale", disable_env_checker=True)
    env = StartStateReset(env)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=SCREEN_SIZE,
                             terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    env = FrameStackObservation(env, FRAME_STACK)
    if max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps)
    return env


def reference_batch(env_id: str, frame_skip: int, noop_max: int, size: int = 128, seed: int = 0,
                    keep_prob: float = 0.01) -> np.ndarray:
    """The reference batch of virtual batch normalization (paper section 2.2): observations
    visited under uniformly random actions, a function of the arguments alone, so every worker or
    machine building it from the same arguments gets the identical batch.

    The env is ``make_atari_env(env_id, frame_skip, noop_max)``, first reset with ``seed``; a
    generator seeded with ``seed`` draws the actions and keeps each observation (the reset one
    and every later one) with probability ``keep_prob``, resetting (unseeded: the env's own seeded
    generator continues) when an episode ends, until ``size`` are kept.

    The paper does not say how the batch is collected. Choice: the reconstruction
    uber-research/deep-neuroevolution (``es_distributed/es.py`` ``get_ref_batch``, 128
    observations) keeps the first observations of a random-action run, all consecutive, i.e. the
    first seconds of one game; keeping each with probability 0.01 (as the reference code samples
    rollouts for observation statistics) spreads the batch over about size / keep_prob steps,
    several episodes (Pong: ~12,800 agent steps, a few seconds to collect).

    Parameters
    ----------
    env_id, frame_skip, noop_max
        As for ``make_atari_env`` (the batch should come from the env the policy runs on).
    size : int
        Number of observations, >= 1 (the reconstruction and the config default: 128).
    seed : int
    keep_prob : float
        Probability of keeping each visited observation, in (0, 1].

    Returns
    -------
    ndarray of uint8, shape (size, 4, 84, 84)

    Raises
    ------
    ValueError
        Naming the argument and its value (also those of ``make_atari_env``).
    """
    if not (isinstance(size, (int, np.integer)) and size >= 1):
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    if not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
    env = make_atari_env(env_id, frame_skip, noop_max)
    rng = np.random.default_rng(seed)
    batch = np.empty((size, FRAME_STACK, SCREEN_SIZE, SCREEN_SIZE), np.uint8)
    kept = 0
    obs, _ = env.reset(seed=seed)
    while True:
        if rng.random() < keep_prob:
            batch[kept] = obs
            kept += 1
            if kept == size:
                env.close()
                return batch
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()


def make_run_env(env_id: str, params: AtariParams, max_episode_steps: int | None,
                 like: gym.Env | None = None) -> gym.Env:
    """The env of an ES run: ``make_atari_env`` with the run's frame_skip and noop_max (``like``,
    another env of the run, shares nothing: emulators have no shareable model)."""
    return make_atari_env(env_id, params.frame_skip, params.noop_max, max_episode_steps)


#: Actions of ALE's full action set: no game's minimal set (the policy's outputs) is larger.
MAX_ACTIONS = 18


@functools.cache
def n_actions(env_id: str) -> int:
    """The size of the game's minimal action set (the policy's outputs), from one env made and closed."""
    env = gym.make(env_id)
    n = env.action_space.n
    env.close()
    return int(n)


def num_params(env_id: str, params: dict) -> int:
    """Length of the parameter vector of ``env_id``'s policy for the run parameters ``params``
    (``network``), known before any run starts (the workflow checks the noise table against it)."""
    return cnn.num_params(params["network"], n_actions(env_id))


def make_policy(env: gym.Env, params: AtariParams, reference: np.ndarray) -> CNNPolicy:
    """The A3C CNN over ``env``'s actions with virtual batch normalization on ``reference``
    (uint8 (n, 4, 84, 84), from ``reference_batch``)."""
    return CNNPolicy(env.action_space.n, params.network, reference)
