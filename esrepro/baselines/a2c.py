"""The A2C baseline of the paper's Atari comparison (Table 2, "A2C FF"): one run of
Stable-Baselines3's A2C on one game.

Provenance
----------
- Algorithm: Advantage Actor-Critic, the synchronous, deterministic variant of A3C (Mnih et al.
  2016, arXiv:1602.01783; OpenAI baselines' A2C), as implemented by SB3 (``stable_baselines3.A2C``:
  ``n_envs`` envs stepped in lockstep, one gradient step on each ``n_steps * n_envs`` rollout).
  No maintained asynchronous A3C exists.
- What the paper says (Salimans et al. 2017, section 4.2, Table 2 of v2): an "A2C FF" column
  trained for 320M frames (80M agent steps at frame skip 4); no hyperparameters.
- Hyperparameters: rl-baselines3-zoo's Atari A2C (hyperparams/a2c.yml, "atari"): SB3's
  AtariWrapper, frame_stack 4, CnnPolicy, n_envs 16, ent_coef 0.01, vf_coef 0.25,
  ``RMSpropTFLike(eps=1e-5)``; SB3's A2C defaults otherwise (n_steps 5, learning_rate 7e-4,
  gamma 0.99, gae_lambda 1, max_grad_norm 0.5). Defaults and sources are in
  config/a2c_params.schema.yaml.
- Network: SB3's CnnPolicy, the Nature DQN CNN (conv 32x8x8/4, 64x4x4/2, 64x3x3/1, fc 512) shared
  by policy and value heads, inputs scaled to [0, 1] (as OpenAI baselines' A2C); A3C's paper
  used a smaller CNN for its FF agent.
- Training env (the zoo's protocol): ``gym.make(env_id, frameskip=1,
  repeat_action_probability=0)`` (no emulator frame skip, no sticky actions), SB3's Monitor (raw
  game returns for progress.csv), SB3's AtariWrapper (up to ``noop_max`` no-ops, ``frame_skip``
  with max-pooling, life loss ends an episode, FIRE at reset, 84x84 gray, rewards clipped to their
  sign), ``VecFrameStack(4)``; SB3 transposes the stack to channels-first for the CNN.
- Evaluation env (the paper's Atari protocol, section 4.2 and the ES runs of this suite):
  :func:`esrepro.envs.atari.make_atari_env`: the same frame skip, 84x84 gray and 4-frame stack, up to
  ``noop_max`` random no-ops, unclipped rewards, a whole game (no life-loss terminal). The policy
  acts deterministically (most probable action). Its gray frames (ALE's grayscale) match the
  training frames (OpenCV's RGB->gray) to within rounding, and the stack order is the same
  (oldest first, newest last): tests/test_a2c.py compares them. Differences from training: at
  reset the stack repeats the first frame (training: zeros), and nothing presses FIRE at reset
  or after a lost life, so a policy that leaves that to the training wrapper (e.g. Breakout) can
  idle until the episode cap (``eval_max_episode_steps``). progress.csv's ``return_*`` columns
  are the other measure: raw whole-game returns of the training envs (stochastic policy, the
  training wrappers), as OpenAI baselines and the zoo report A2C.

Outputs in ``out_dir``: ``progress.csv`` (the suite's shared columns, then ``return_min,
length_mean, updates, eval_time_s, frames``), ``policy.zip`` (SB3 model), ``run.json``,
``checkpoint/`` (the latest checkpoint; a rerun resumes from it: docs/baselines.md). Every file
is written atomically.
"""

from esrepro import config
from esrepro.baselines.common import Setup, train_baseline
from esrepro.envs.atari import FRAME_STACK, make_atari_env  # importing it registers the ALE ids


def check_emulator_frameskip(env) -> None:
    """Raise ValueError unless the ALE emulator under ``env`` skips no frames (``frameskip=1``).

    SB3's AtariWrapper repeats each action ``frame_skip`` times itself; on an ALE v5 env with its
    default emulator frameskip 4 every agent step would silently be 4 * 4 = 16 frames (docs/paper.md,
    known traps). Checked like gymnasium's AtariPreprocessing (``env.unwrapped._frameskip``).
    """
    frameskip = getattr(env.unwrapped, "_frameskip", None)
    if frameskip != 1:
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(f"env '{name}' has emulator frameskip={frameskip!r}; the A2C training wrapper "
                         "skips frames itself and needs frameskip=1 (gym.make(env_id, frameskip=1))")


def wrap_training_env(env, frame_skip: int = 4, noop_max: int = 30):
    """SB3's ``AtariWrapper(env, noop_max, frame_skip)`` (the zoo's A2C training protocol: life loss
    ends an episode, rewards clipped to their sign; observations uint8, shape (84, 84, 1)), after
    :func:`check_emulator_frameskip`.

    Raises
    ------
    ValueError
        If ``env``'s emulator skips frames itself.
    """
    from stable_baselines3.common.atari_wrappers import AtariWrapper

    check_emulator_frameskip(env)
    return AtariWrapper(env, noop_max=noop_max, frame_skip=frame_skip)


def make_training_env(env_id: str, seed: int, params: dict):
    """The training VecEnv: ``VecFrameStack(DummyVecEnv([wrap_training_env(Monitor(gym.make(env_id,
    frameskip=1, repeat_action_probability=0)))] * n_envs), 4)``; observations uint8, shape
    (n_envs, 84, 84, 4), newest frame last. Env ``i`` is reset with seed ``seed + i`` first."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    env = make_vec_env(env_id, n_envs=params["n_envs"], seed=seed, wrapper_class=wrap_training_env,
                       wrapper_kwargs={"frame_skip": params["frame_skip"], "noop_max": params["noop_max"]},
                       env_kwargs={"frameskip": 1, "repeat_action_probability": 0.0, "render_mode": None,
                                   "disable_env_checker": True})
    return VecFrameStack(env, n_stack=FRAME_STACK)


def build(env_id: str, seed: int, params: dict) -> Setup:
    """The untrained A2C model on its training VecEnv (:func:`make_training_env`) and the evaluation
    env (:func:`esrepro.envs.atari.make_atari_env`), for validated ``params``.

    Raises
    ------
    ValueError
        If ``env_id`` is not an ALE id, or the evaluation observations do not have the shape the
        policy takes (channels-first (4, 84, 84)).
    """
    from stable_baselines3 import A2C
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

    eval_env = make_atari_env(env_id, frame_skip=params["frame_skip"], noop_max=params["noop_max"],
                              max_episode_steps=params["eval_max_episode_steps"])
    model = A2C(
        "CnnPolicy", make_training_env(env_id, seed, params), learning_rate=params["learning_rate"],
        n_steps=params["n_steps"], gamma=params["gamma"], gae_lambda=params["gae_lambda"],
        ent_coef=params["ent_coef"], vf_coef=params["vf_coef"], max_grad_norm=params["max_grad_norm"],
        policy_kwargs={"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": params["rmsprop_eps"]}},
        seed=seed, device="cpu", verbose=0)
    if eval_env.observation_space.shape != model.observation_space.shape:
        model.get_env().close()
        eval_env.close()
        raise ValueError(f"evaluation observations of '{env_id}' have shape {eval_env.observation_space.shape}, "
                         f"the A2C policy takes {model.observation_space.shape}")
    frame_skip = params["frame_skip"]
    return Setup(model, eval_env, extra_columns=lambda timesteps: {"frames": timesteps * frame_skip})


def train_a2c(env_id: str, seed: int, params: dict, out_dir, threads: int = 1, log=print) -> dict:
    """Train SB3's A2C on the Atari game ``env_id`` and write ``out_dir/{progress.csv, policy.zip,
    run.json, checkpoint/}``, resuming from ``out_dir``'s checkpoint if any.

    Parameters
    ----------
    env_id : str
        An ALE id, e.g. ``"ALE/Pong-v5"``.
    seed : int
        Seeds torch, numpy, Python's ``random``, the training envs (env ``i`` gets ``seed + i`` at
        its first reset) and the evaluation episodes (:func:`esrepro.baselines.common.eval_seed`).
    params : dict
        Run parameters (config/a2c_params.schema.yaml, checked with
        ``esrepro.config.validate_params(params, "a2c")``); missing keys get the schema's defaults.
    out_dir, threads, log
        As for :func:`esrepro.baselines.common.train_baseline` (output directory, torch threads,
        progress-line callback).

    Returns
    -------
    dict
        The content of run.json: ``algo`` "a2c", ``timesteps`` in agent steps, ``frames`` =
        timesteps * frame_skip, ``final_eval_return_mean``, config and provenance.

    Raises
    ------
    esrepro.config.ConfigError
        Naming the bad key of ``params`` and its value.
    ValueError
        For an unknown ``env_id``.
    esrepro.checkpoint.CheckpointDamaged, esrepro.checkpoint.CheckpointMismatch
        For a damaged checkpoint in ``out_dir``, or one of another run.

    Notes
    -----
    progress.csv's ``timesteps`` are agent steps of all envs together and ``frames`` the emulator
    frames; ``return_*`` are raw (unclipped) whole-game returns of the training envs and
    ``length_mean`` their length in emulator frames (SB3's Monitor sits on the frameskip=1 base
    env, under AtariWrapper), ``eval_*`` the returns and lengths (agent steps) of the evaluation
    protocol. Stopping, evaluation points, checkpoints and determinism: see
    :func:`esrepro.baselines.common.train_baseline`.
    """
    return train_baseline("a2c", env_id, seed, config.validate_params(params, "a2c"), out_dir, threads, log, build)
