"""Watch a policy: render the final policy of an ES run (``policy.npz``) to a GIF or MP4 clip
(``python -m esrepro play RUN_DIR``).

The policy acts as in the run's evaluation (paper section 2; ``esrepro.rollout``): the unperturbed
parameters, no action noise, MuJoCo observations normalized with the run's final statistics, Atari
actions by argmax of the CNN with virtual batch normalization on the run's reference batch; the
env is the run's own (``esrepro.envs``: its kind, episode cap and, for Atari, frame-skip and
no-ops). When an episode ends before the clip does, the next one starts with the next seed.

Frames: MuJoCo through gymnasium's ``rgb_array`` renderer, headless through EGL (``MUJOCO_GL=egl``
unless the environment sets another backend; EGL needs the OS's libEGL, libOpenGL and Mesa
drivers), square, ``size`` pixels; Atari the emulator's own RGB screen (210 x 160) after each agent
step, i.e. every ``frame_skip``-th emulator frame. Written with imageio: ``.gif`` by Pillow,
``.mp4`` (H.264) by the ffmpeg binary of imageio-ffmpeg; atomically.
"""

import os
import zipfile
from pathlib import Path

import numpy as np

from esrepro.atomic import atomic_output
from esrepro.errors import InputError

DEFAULT_FRAMES = 300
"""Frames of a clip (12 s at 25 frames per second)."""

DEFAULT_SIZE = 160
"""Side in pixels of MuJoCo frames."""

DEFAULT_FPS = 25
"""Frames per second of the clip (GIF frame times are whole hundredths of a second: 4)."""

CLIP_SUFFIXES = (".gif", ".mp4")
"""Clip formats, by the output's suffix."""

MLP_KEYS = ("theta", "env_id", "obs_mean", "obs_std")
CNN_KEYS = ("theta", "env_id", "reference_batch")
"""Arrays of ``policy.npz`` read here, for MLP (MuJoCo) and CNN (Atari) policies (``esrepro.train``)."""


class PolicyFileError(InputError):
    """A run directory without a readable ES policy; the message names the file."""


def _read_policy_npz(path: Path, keys) -> dict:
    """The arrays ``keys`` of ``policy.npz``, checked: present, finite (numbers), loadable without pickle."""
    if not path.is_file():
        raise PolicyFileError(f"{path} is missing: play renders ES runs' final policies (policy.npz)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise PolicyFileError(f"{path} lacks array(s) {', '.join(missing)}")
            arrays = {k: npz[k] for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        if isinstance(e, PolicyFileError):
            raise
        raise PolicyFileError(f"{path} is not a readable .npz (truncated?): {e}") from None
    for key, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise PolicyFileError(f"{path} array '{key}' holds non-finite values")
    return arrays


def load_policy(run_dir):
    """The final ES policy of ``run_dir``, ready to act.

    Returns
    -------
    config : esrepro.run_config.RunConfig
        From ``run.json`` ``config`` (env, episode cap, the kind's parameters).
    policy : MLPPolicy or CNNPolicy
        The final parameters loaded (``theta`` of ``policy.npz``).
    obs_mean, obs_std : ndarray of float32, shape (obs_dim,), or None
        The final observation statistics (MuJoCo); None for Atari.

    Raises
    ------
    esrepro.analysis.runs.RunFileError
        If ``run.json`` is missing or damaged.
    PolicyFileError
        If the run is not an ES run, ``policy.npz`` is missing, damaged or of another env, or its
        parameters do not fit the run's policy.
    """
    from esrepro.analysis.runs import read_run_json
    from esrepro.envs import ATARI
    from esrepro.run_config import RunConfig

    run_dir = Path(run_dir)
    meta = read_run_json(run_dir / "run.json")
    if meta["algo"] != "es":
        raise PolicyFileError(f"{run_dir / 'run.json'}: algo '{meta['algo']}': play renders ES runs (policy.npz)")
    config = RunConfig.from_params(meta["env"], meta["seed"], meta["config"])
    path = run_dir / "policy.npz"
    arrays = _read_policy_npz(path, CNN_KEYS if config.kind is ATARI else MLP_KEYS)
    if str(arrays["env_id"]) != config.env_id:
        raise PolicyFileError(f"{path} is a policy of {arrays['env_id']}, run.json's env is {config.env_id}")
    env = config.kind.make_env(config.env_id, config.env, config.max_episode_steps)
    try:
        policy = config.kind.make_policy(env, config.env, arrays.get("reference_batch"))
    finally:
        env.close()
    if arrays["theta"].shape != (policy.num_params,):
        raise PolicyFileError(f"{path} array 'theta' has shape {arrays['theta'].shape}, the run's policy "
                              f"({config.env_id}) has {policy.num_params} parameters")
    policy.set_params(arrays["theta"])
    return config, policy, arrays.get("obs_mean"), arrays.get("obs_std")


def render_frames(run_dir, frames: int = DEFAULT_FRAMES, seed: int = 0, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Play ``run_dir``'s final policy for ``frames`` frames (episode ``i`` reset with ``seed + i``).

    Returns
    -------
    ndarray of uint8, shape (frames, height, width, 3)
        MuJoCo: (frames, size, size, 3); Atari: (frames, 210, 160, 3). Each episode gives the
        frame after its reset, then one per step (its last one included).

    Raises
    ------
    InputError
        As :func:`load_policy`.
    """
    import gymnasium as gym

    from esrepro.envs import ATARI

    config, policy, obs_mean, obs_std = load_policy(run_dir)
    if config.kind is ATARI:
        env = config.kind.make_env(config.env_id, config.env, config.max_episode_steps)
        screen = env.unwrapped.ale.getScreenRGB
    else:
        os.environ.setdefault("MUJOCO_GL", "egl")  # read when mujoco is first imported (by gym.make)
        env = gym.make(config.env_id, render_mode="rgb_array", width=size, height=size,
                       max_episode_steps=config.max_episode_steps, disable_env_checker=True)
        screen = env.render
    try:
        episode = 0
        obs, _ = env.reset(seed=seed)
        clip = [screen()]
        while len(clip) < frames:
            action = policy.act(obs) if obs_mean is None else policy.act(obs, obs_mean, obs_std)
            obs, _, terminated, truncated, _ = env.step(action)
            clip.append(screen())
            if (terminated or truncated) and len(clip) < frames:
                episode += 1
                obs, _ = env.reset(seed=seed + episode)
                clip.append(screen())
    finally:
        env.close()
    return np.stack(clip).astype(np.uint8, copy=False)


def write_clip(path, frames: np.ndarray, fps: int = DEFAULT_FPS) -> None:
    """Write ``frames`` (uint8 (n, height, width, 3)) to ``path`` as a looping GIF or an MP4, by
    its suffix, atomically (:func:`check_clip_path` first)."""
    import imageio.v3 as iio

    path = Path(path)
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".gif":
            iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
        else:  # imageio-ffmpeg; sizes a multiple of 16 need no rescaling
            iio.imwrite(tmp, frames, plugin="FFMPEG", extension=".mp4", fps=fps, macro_block_size=1)


def check_clip_path(path) -> Path:
    """``path`` as a Path if its suffix names a clip format.

    Raises
    ------
    InputError
        Naming the path and the formats known.
    """
    path = Path(path)
    if path.suffix.lower() not in CLIP_SUFFIXES:
        raise InputError(f"output {path}: unknown clip format '{path.suffix}' (known: {', '.join(CLIP_SUFFIXES)})")
    return path


def play(run_dir, out=None, frames: int = DEFAULT_FRAMES, seed: int = 0, size: int = DEFAULT_SIZE,
         fps: int = DEFAULT_FPS) -> Path:
    """Render ``run_dir``'s final ES policy (:func:`render_frames`) to ``out`` (default
    ``run_dir/play.gif``) and return the path written.

    Raises
    ------
    InputError
        For an unknown clip format, or as :func:`load_policy`; nothing is written.
    """
    out = check_clip_path(Path(run_dir) / "play.gif" if out is None else out)
    write_clip(out, render_frames(run_dir, frames, seed, size), fps)
    return out

