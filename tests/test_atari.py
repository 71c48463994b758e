"""Tests of the Atari env stack and the VBN reference batch (esrepro.envs.atari), on real ALE games.

Emulator frames are counted with the ALE's own episode frame counter; rewards and lives come from
real play with seeded random actions.
"""

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from esrepro.envs.atari import StartStateReset, atari_env_id, game_name, is_atari, make_atari_env, reference_batch

PONG = "ALE/Pong-v5"
REFERENCE = Path(__file__).resolve().parent.parent / "paper" / "reference"


def random_actions(env, seed, n):
    return np.random.default_rng(seed).integers(env.action_space.n, size=n)


def test_observation_and_action_spaces():
    env = make_atari_env(PONG)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 6  # Pong's minimal action set
    # At reset the stack repeats the first frame; after a step the newest frame is the last one.
    assert all(np.array_equal(obs[0], obs[i]) for i in range(4))
    for action in random_actions(env, 0, 20):
        obs, *_ = env.step(int(action))
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert obs.max() > obs.min()  # a real picture, not a blank frame


@pytest.mark.parametrize("frame_skip", [1, 2, 3, 4])
def test_emulator_frames_per_agent_step(frame_skip):
    env = make_atari_env(PONG, frame_skip=frame_skip, noop_max=30)
    ale = env.unwrapped.ale
    env.reset(seed=frame_skip)
    noops = ale.getEpisodeFrameNumber()  # one emulator frame per no-op
    assert 1 <= noops <= 30
    for action in random_actions(env, frame_skip, 10):
        before = ale.getEpisodeFrameNumber()
        env.step(int(action))
        assert ale.getEpisodeFrameNumber() - before == frame_skip


def test_noops_drawn_from_the_seeded_env():
    env = make_atari_env(PONG, noop_max=30)
    ale = env.unwrapped.ale
    counts = []
    for seed in range(8):
        env.reset(seed=seed)
        counts.append(ale.getEpisodeFrameNumber())
    assert all(1 <= c <= 30 for c in counts) and len(set(counts)) > 1
    for seed in range(8):  # the same seed gives the same number of no-ops
        env.reset(seed=seed)
        assert ale.getEpisodeFrameNumber() == counts[seed]
    no_noop = make_atari_env(PONG, noop_max=0)
    no_noop.reset(seed=0)
    assert no_noop.unwrapped.ale.getEpisodeFrameNumber() == 0


def test_rewards_are_not_clipped():
    # Space Invaders: shooting an invader scores 5 to 30 points in one step.
    env = make_atari_env(atari_env_id("SpaceInvaders"), frame_skip=4)
    env.reset(seed=0)
    rewards = [env.step(int(a))[1] for a in random_actions(env, 0, 300)]
    assert max(rewards) > 1
    assert min(rewards) >= 0


def test_losing_a_life_does_not_end_the_episode():
    env = make_atari_env(atari_env_id("Breakout"), frame_skip=4)
    ale = env.unwrapped.ale
    env.reset(seed=0)
    lives = [ale.lives()]
    assert lives[0] == 5
    for step, action in enumerate(random_actions(env, 0, 5000)):  # noqa: B007 (read after the loop)
        _, _, terminated, truncated, _ = env.step(int(action))
        lives.append(ale.lives())
        if terminated or truncated:
            break
    assert terminated and not truncated, "a random Breakout game should end within 5000 steps"
    # Every life was lost while the episode went on; it terminated only when none was left.
    assert lives[-1] == 0
    assert sorted(set(lives), reverse=True) == [5, 4, 3, 2, 1, 0]
    assert step > 5


def test_seeded_episode_is_deterministic():
    actions = random_actions(make_atari_env(PONG), 1, 150)

    def play(env, seed):
        obs, _ = env.reset(seed=seed)
        frames, rewards = [obs], []
        for a in actions:
            obs, reward, *_ = env.step(int(a))
            frames.append(obs)
            rewards.append(reward)
        return np.stack(frames), rewards

    env = make_atari_env(PONG, frame_skip=3)
    frames, rewards = play(env, 7)
    other, _ = play(env, 8)
    assert not np.array_equal(frames, other)  # another seed: other no-ops, other frames
    # The same seed again, after other play on this env and on a fresh env: the same episode.
    for again in (play(env, 7), play(make_atari_env(PONG, frame_skip=3), 7)):
        np.testing.assert_array_equal(frames, again[0])
        assert rewards == again[1]
    # A seeded reset starts from the state a real ROM load with that seed gives (noop_max 0:
    # the start state alone), compared with ale_py's own seeded reset under the same actions.
    env = make_atari_env(PONG, frame_skip=1, noop_max=0)
    for a in actions:
        env.step(int(a))
    env.reset(seed=0)
    raw = env.unwrapped
    raw_env = make_atari_env(PONG, frame_skip=1, noop_max=0).unwrapped
    raw_env.reset(seed=0)
    for a in actions[:50]:
        env.step(int(a))
        raw_env.step(int(a))
        np.testing.assert_array_equal(raw.ale.getScreenRGB(), raw_env.ale.getScreenRGB())


@pytest.mark.parametrize("frame_skip", [1, 4])
def test_observations_are_those_of_the_rgb_stack(frame_skip):
    """``make_atari_env`` builds its emulator with grayscale observations, which
    ``AtariPreprocessing`` drops (it reads the screens it needs itself): its episodes equal, frame
    for frame, those of the same stack on gymnasium's default RGB observations (Breakout: its
    screen has colours whose gray levels differ; 300 agent steps with a reset in between)."""
    def rgb_stack():
        env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0, disable_env_checker=True)
        env = AtariPreprocessing(StartStateReset(env), noop_max=30, frame_skip=frame_skip, screen_size=84,
                                 terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
        return FrameStackObservation(env, 4)

    def play(env):
        frames, rewards = [env.reset(seed=5)[0]], []
        for i, a in enumerate(random_actions(env, 2, 300)):
            obs, reward, *_ = env.step(int(a))
            frames.append(obs)
            rewards.append(reward)
            if i == 150:
                frames.append(env.reset(seed=6)[0])
        return np.stack(frames), rewards

    ours, rgb = play(make_atari_env("ALE/Breakout-v5", frame_skip=frame_skip)), play(rgb_stack())
    assert ours[0].shape == (302, 4, 84, 84) and ours[0].std() > 0
    np.testing.assert_array_equal(ours[0], rgb[0])
    assert ours[1] == rgb[1]


def test_time_limit_counts_agent_steps():
    env = make_atari_env(PONG, frame_skip=4, max_episode_steps=7)
    env.reset(seed=0)
    ends = [env.step(0)[3] for _ in range(7)]
    assert ends == [False] * 6 + [True]


def test_reference_batch_is_seeded():
    kwargs = dict(env_id=PONG, frame_skip=4, noop_max=30, size=6, keep_prob=0.1)
    batch = reference_batch(**kwargs, seed=0)
    assert batch.shape == (6, 4, 84, 84) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch, reference_batch(**kwargs, seed=0))
    assert not np.array_equal(batch, reference_batch(**kwargs, seed=1))
    # Observations from different moments, not one observation repeated.
    assert len({b.tobytes() for b in batch}) == 6


def test_game_ids():
    assert atari_env_id("Pong") == PONG and game_name(PONG) == "Pong" and is_atari(PONG)
    assert not is_atari("HalfCheetah-v5")
    with open(REFERENCE / "atari_es_vs_a3c.csv") as f:
        games = [row["ale_game"] for row in csv.DictReader(f)]
    assert len(games) == 51
    for game in games:  # every game of the paper's Table 2 exists in the ALE
        assert game_name(atari_env_id(game)) == game


@pytest.mark.parametrize("kwargs, needle", [
    (dict(frame_skip=0), "frame_skip"), (dict(frame_skip=-2), "frame_skip"),
    (dict(frame_skip=2.5), "frame_skip"), (dict(noop_max=-1), "noop_max"),
    (dict(max_episode_steps=0), "max_episode_steps"),
])
def test_bad_env_arguments_raise(kwargs, needle):
    value = str(next(iter(kwargs.values())))
    with pytest.raises(ValueError, match=needle) as err:
        make_atari_env(PONG, **kwargs)
    assert value in str(err.value)


def test_bad_ids_raise():
    with pytest.raises(ValueError, match="'Pongg'.*Pong"):
        atari_env_id("Pongg")
    with pytest.raises(ValueError, match="HalfCheetah-v5"):
        make_atari_env("HalfCheetah-v5")
    with pytest.raises(ValueError, match="ALE/Pongg-v5"):
        make_atari_env("ALE/Pongg-v5")
    with pytest.raises(ValueError, match="PongNoFrameskip-v4"):
        game_name("PongNoFrameskip-v4")
    with pytest.raises(ValueError, match="size.*0"):
        reference_batch(PONG, 4, 30, size=0)
    with pytest.raises(ValueError, match="keep_prob.*1.5"):
        reference_batch(PONG, 4, 30, keep_prob=1.5)
