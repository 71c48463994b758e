"""Watching policies (esrepro/play.py): real 1-iteration ES runs on InvertedPendulum (rendered
headless through EGL) and Pong (the emulator's screens), written to GIF and MP4 and read back."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from esrepro.atomic import write_json
from esrepro.play import PolicyFileError, play, render_frames

from conftest import TINY, run_cli


def train(tmp_path_factory, env, params):
    out = tmp_path_factory.mktemp("play") / "run"
    res = run_cli("train", "--env", env, "--seed", 0, "--iterations", 1, "--workers", 1, "--params",
                  json.dumps(params), "--out", out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return train(tmp_path_factory, "InvertedPendulum-v5", TINY)


@pytest.fixture(scope="module")
def pong(tmp_path_factory):
    return train(tmp_path_factory, "ALE/Pong-v5", {"pairs_per_iteration": 1, "eval_episodes": 1,
                                                   "noise_table_size": 2_000_000, "max_episode_steps": 20,
                                                   "vbn_batch_size": 4})


def gif_frames(path):
    """Every frame of a GIF and its duration in ms (Pillow merges identical consecutive frames)."""
    with Image.open(path) as image:
        durations = []
        for i in range(image.n_frames):
            image.seek(i)
            durations.append(image.info["duration"])
    return iio.imread(path, index=None), durations


def test_pendulum_gif(pendulum, tmp_path):
    """60 frames across several episodes (the 1-iteration policy drops the pole within ~30 steps
    and the run caps episodes at 60): every frame in the GIF, 40 ms each, the pole moving."""
    out = play(pendulum, tmp_path / "clip.gif", frames=60, size=64)
    frames, durations = gif_frames(out)
    assert frames.shape == (60, 64, 64, 3) and frames.dtype == np.uint8
    assert durations == [40] * 60
    assert len({f.tobytes() for f in frames}) > 30
    assert np.array_equal(frames, render_frames(pendulum, frames=60, size=64))  # GIF's palette is exact here


def test_pendulum_mp4_and_default_path(pendulum, tmp_path):
    out = play(pendulum, tmp_path / "clip.mp4", frames=20, size=64, fps=10)
    assert iio.imread(out, index=None, plugin="FFMPEG").shape == (20, 64, 64, 3)
    res = run_cli("play", pendulum, "--frames", 5, "--size", 32)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"5 frames -> {pendulum / 'play.gif'}\n"
    assert gif_frames(pendulum / "play.gif")[0].shape[1:] == (32, 32, 3)


def test_pong(pong, tmp_path):
    """Atari clips are the emulator's 210 x 160 RGB screens, one per agent step."""
    frames = render_frames(pong, frames=30)
    assert frames.shape == (30, 210, 160, 3) and frames.dtype == np.uint8 and frames.std() > 0
    out = play(pong, tmp_path / "pong.gif", frames=30)
    kept, durations = gif_frames(out)
    assert sum(durations) == 30 * 40 and kept.shape[1:] == (210, 160, 3)


def test_bad_inputs_end_in_one_line(pendulum, tmp_path):
    res = run_cli("play", pendulum, "--out", tmp_path / "clip.avi")
    assert res.returncode == 2
    assert res.stderr == (f"esrepro: error: output {tmp_path / 'clip.avi'}: unknown clip format '.avi' "
                          "(known: .gif, .mp4)\n")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "run.json").write_bytes((pendulum / "run.json").read_bytes())
    (damaged / "policy.npz").write_bytes((pendulum / "policy.npz").read_bytes()[:200])
    res = run_cli("play", damaged)
    assert res.returncode == 2 and res.stderr.startswith(f"esrepro: error: {damaged / 'policy.npz'} is not a "
                                                         "readable .npz") and res.stderr.count("\n") == 1
    assert not (damaged / "play.gif").exists()
    trpo = tmp_path / "trpo"
    write_json(trpo / "run.json", {"algo": "trpo", "env": "InvertedPendulum-v5", "seed": 0, "wall_time_s": 1.0,
                                   "config": {}})
    with pytest.raises(PolicyFileError, match="algo 'trpo': play renders ES runs"):
        play(trpo)
