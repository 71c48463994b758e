"""Tests of the MLP policy (esrepro.policies.mlp), rollouts on real MuJoCo (esrepro.rollout) and env
construction (esrepro.envs.mujoco).

Expected values come from a manual numpy forward pass written out in the test from the documented
parameter layout (each layer's weights (in, out) row-major, then its biases), and from stepping an
independent gymnasium env with the same seed and actions.
"""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from esrepro.envs.mujoco import check_env_id, make_env, share_model
from esrepro.envs.mujoco import num_params as check_num_params
from esrepro.policies import mlp
from esrepro.policies.mlp import MLPPolicy
from esrepro.rollout import rollout, rollouts

ENV_ID = "InvertedPendulum-v5"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def split_layers(theta, sizes):
    """Flat vector -> [(W (in, out), b (out,))] by the documented layout, in float64."""
    theta = np.asarray(theta, dtype=np.float64)
    layers, offset = [], 0
    for i, o in zip(sizes[:-1], sizes[1:]):
        w = theta[offset:offset + i * o].reshape(i, o)
        offset += i * o
        b = theta[offset:offset + o]
        offset += o
        layers.append((w, b))
    assert offset == theta.size
    return layers


def manual_logits(theta, sizes, obs):
    x = np.asarray(obs, dtype=np.float64)
    layers = split_layers(theta, sizes)
    for w, b in layers[:-1]:
        x = np.tanh(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


# --------------------------------------------------------------------------------------------
# MLPPolicy: structure and init
# --------------------------------------------------------------------------------------------

def test_num_params_paper_mlp():
    low, high = -np.ones(6, np.float32), np.ones(6, np.float32)
    # 17*64 + 64 + 64*64 + 64 + 64*6 + 6 = 1152 + 4160 + 390
    assert MLPPolicy(17, low, high, hidden=(64, 64)).num_params == 5702
    # binned: last layer 64 -> 6*10 logits: 64*60 + 60 = 3900
    assert MLPPolicy(17, low, high, hidden=(64, 64), action_bins=10).num_params == 1152 + 4160 + 3900
    # no hidden layer: linear 17 -> 6
    assert MLPPolicy(17, low, high, hidden=()).num_params == 17 * 6 + 6
    # Humanoid scaling config 256-256 on v5's 348-dim obs, 17 actions
    low17, high17 = -np.ones(17), np.ones(17)
    assert MLPPolicy(348, low17, high17, hidden=(256, 256)).num_params == \
        348 * 256 + 256 + 256 * 256 + 256 + 256 * 17 + 17


def test_num_params_of_any_config_is_counted_without_building_the_policy():
    """A run's checks count the parameters of whatever sizes a config gives (the noise table must
    hold them) before any work; building the policy for that allocated its buffers, and a fuzzed
    config's sizes once took a test process to 22 GB."""
    assert mlp.num_params(17, 6, (10**6, 10**6), 10**9) == 17 * 10**6 + 10**6 + 10**12 + 10**6 + 10**6 * 6 * 10**9 \
        + 6 * 10**9
    assert check_num_params("Hopper-v5", {"hidden": [10**7] * 3, "action_bins": 10**6}) > 10**14
    with pytest.raises(ValueError, match="action_bins must be 0"):
        mlp.num_params(17, 6, (64, 64), 1)


@pytest.mark.parametrize("bins", [0, 10])
def test_normc_init(bins):
    low, high = -np.ones(6, np.float32), np.ones(6, np.float32)
    policy = MLPPolicy(17, low, high, hidden=(64, 64), action_bins=bins)
    theta = policy.init_params(np.random.default_rng(0))
    assert theta.dtype == np.float32
    assert theta.shape == (policy.num_params,)
    out = 6 * bins if bins else 6
    sizes = [17, 64, 64, out]
    layers = split_layers(theta, sizes)
    for k, (w, b) in enumerate(layers):
        expected_norm = 0.01 if k == len(layers) - 1 else 1.0
        np.testing.assert_allclose(np.linalg.norm(w, axis=0), expected_norm, rtol=1e-5)
        np.testing.assert_array_equal(b, 0.0)
        # Gaussian direction, not constant: entries vary and have both signs.
        assert np.std(w) > 0 and (w > 0).any() and (w < 0).any()
    # Different generator states -> different parameters; same -> same.
    np.testing.assert_array_equal(theta, policy.init_params(np.random.default_rng(0)))
    assert not np.allclose(theta, policy.init_params(np.random.default_rng(1)))


def test_action_bins_one_raises():
    with pytest.raises(ValueError):
        MLPPolicy(4, [-1.0], [1.0], action_bins=1)
    with pytest.raises(ValueError):
        MLPPolicy(4, [-1.0], [1.0], action_bins=-3)


# --------------------------------------------------------------------------------------------
# MLPPolicy: forward pass
# --------------------------------------------------------------------------------------------

def test_continuous_act_matches_manual_forward_and_clips():
    obs_dim, act_dim = 17, 6
    low = np.array([-1.0, -0.5, -2.0, 0.0, -1.0, -0.4], np.float32)
    high = np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.4], np.float32)
    policy = MLPPolicy(obs_dim, low, high, hidden=(64, 64))
    sizes = [obs_dim, 64, 64, act_dim]
    rng = np.random.default_rng(3)
    # Larger-than-init parameters so some outputs fall outside the bounds.
    theta = (0.3 * rng.standard_normal(policy.num_params)).astype(np.float32)
    policy.set_params(theta)
    n_clipped_low = n_clipped_high = n_inside = 0
    for _ in range(50):
        obs = rng.uniform(-5, 5, obs_dim).astype(np.float32)
        raw = manual_logits(theta, sizes, obs)
        expected = np.minimum(np.maximum(raw, low), high)
        act = policy.act(obs)
        assert act.dtype == np.float32
        assert act.shape == (act_dim,)
        np.testing.assert_allclose(act, expected, rtol=1e-4, atol=1e-5)
        assert np.all(act >= low) and np.all(act <= high)
        n_clipped_low += int(np.sum(raw < low))
        n_clipped_high += int(np.sum(raw > high))
        n_inside += int(np.sum((raw > low) & (raw < high)))
    # The test exercised both clipping sides and the linear region.
    assert n_clipped_low > 0 and n_clipped_high > 0 and n_inside > 0


def test_continuous_act_with_normc_init_is_small_and_unclipped():
    policy = MLPPolicy(17, -np.ones(6), np.ones(6), hidden=(64, 64))
    theta = policy.init_params(np.random.default_rng(0))
    policy.set_params(theta)
    obs = np.random.default_rng(1).uniform(-5, 5, 17).astype(np.float32)
    act = policy.act(obs)
    np.testing.assert_allclose(act, manual_logits(theta, [17, 64, 64, 6], obs), rtol=1e-4, atol=1e-6)
    # output columns of norm 0.01 on tanh features in [-1, 1]^64: |a| <= 0.01 * 8
    assert np.all(np.abs(act) <= 0.08)


def test_binned_act_matches_manual_argmax():
    obs_dim, act_dim, bins = 11, 3, 10
    low = np.array([-1.0, -2.0, 0.0], np.float32)
    high = np.array([1.0, 2.0, 3.0], np.float32)
    policy = MLPPolicy(obs_dim, low, high, hidden=(64, 64), action_bins=bins)
    sizes = [obs_dim, 64, 64, act_dim * bins]
    # 10 evenly spaced values per dimension, by hand: low + k (high - low) / 9
    grid = low[:, None].astype(np.float64) + \
        np.arange(bins)[None, :] * (high - low)[:, None].astype(np.float64) / (bins - 1)
    rng = np.random.default_rng(7)
    theta = rng.standard_normal(policy.num_params).astype(np.float32)
    policy.set_params(theta)
    seen = [set() for _ in range(act_dim)]
    for _ in range(200):
        obs = rng.uniform(-3, 3, obs_dim).astype(np.float32)
        logits = manual_logits(theta, sizes, obs).reshape(act_dim, bins)
        k = logits.argmax(axis=1)
        act = policy.act(obs)
        assert act.dtype == np.float32
        assert act.shape == (act_dim,)
        np.testing.assert_allclose(act, grid[np.arange(act_dim), k], rtol=1e-6, atol=1e-6)
        for d in range(act_dim):
            # the action is one of the 10 grid values of its dimension
            assert np.min(np.abs(grid[d] - act[d])) < 1e-6
            seen[d].add(int(k[d]))
    # Several different bins were selected in every dimension (argmax is per dimension).
    assert all(len(s) >= 3 for s in seen)


def test_binned_endpoints_are_low_and_high():
    # Linear policy with a hand-set bias: logits of dim 0 peak at bin 0, dim 1 at bin 9.
    low = np.array([-0.7, 0.2], np.float32)
    high = np.array([0.9, 1.4], np.float32)
    policy = MLPPolicy(3, low, high, hidden=(), action_bins=10)
    theta = np.zeros(policy.num_params, np.float32)
    bias = np.zeros(20, np.float32)
    bias[0] = 1.0       # dim 0, bin 0
    bias[10 + 9] = 1.0  # dim 1, bin 9
    theta[3 * 20:] = bias
    policy.set_params(theta)
    act = policy.act(np.zeros(3, np.float32))
    np.testing.assert_array_equal(act, [low[0], high[1]])
    bias[:] = 0
    bias[4] = 1.0       # dim 0, bin 4 -> -0.7 + 4 * 1.6 / 9
    bias[10 + 2] = 1.0  # dim 1, bin 2 -> 0.2 + 2 * 1.2 / 9
    theta[3 * 20:] = bias
    policy.set_params(theta)
    np.testing.assert_allclose(policy.act(np.zeros(3, np.float32)),
                               [-0.7 + 4 * 1.6 / 9, 0.2 + 2 * 1.2 / 9], rtol=1e-6, atol=1e-6)


def test_act_normalizes_and_clips_observations_in_float32():
    """With observation statistics, the layers see clip((float32(obs) - mean) / std, -5, 5): read
    out through an identity linear policy (no hidden layer, bounds wider than the clip)."""
    obs = np.array([0.0, 1.0, 100.0, -100.0, 2.0, -0.6, 5.5])  # float64, as MuJoCo returns them
    mean = np.array([0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.5], dtype=np.float32)
    std = np.array([1.0, 0.25, 1.0, 1.0, 0.2, 0.1, 1.0], dtype=np.float32)
    policy = MLPPolicy(7, -10 * np.ones(7), 10 * np.ones(7), hidden=())
    policy.set_params(np.concatenate([np.eye(7, dtype=np.float32).ravel(), np.zeros(7, np.float32)]))
    out = policy.act(obs, mean, std)
    assert out.dtype == np.float32 and out.shape == obs.shape
    raw = (obs - mean) / std
    np.testing.assert_allclose(out, np.where(raw > 5, 5.0, np.where(raw < -5, -5.0, raw)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out[[2, 3]], [5.0, -5.0])
    assert out[4] == np.float32(5.0)  # exactly at the bound
    np.testing.assert_array_equal(policy.act(obs.astype(np.float32)), np.clip(obs, -10, 10).astype(np.float32))


def in_order_float32(theta, sizes, obs, mean, std):
    """The documented forward in float32, each output's sum over the inputs in order, one input at a
    time (numpy's elementwise float32 operations, which fuse nothing), and tanh as the documented
    rational function (Eigen's coefficients, Horner's rule, clamped to [-9, 9])."""
    f32 = np.float32
    x = np.clip((obs.astype(f32) - mean) / std, f32(-5), f32(5))
    for k, (w, b) in enumerate(split_layers(theta, sizes)):
        w, b = w.astype(f32), b.astype(f32)
        h = np.zeros(w.shape[1], f32)
        for i in range(w.shape[0]):
            h = h + x[i] * w[i]
        h = h + b
        if k < len(sizes) - 2:
            v = np.clip(h, -mlp._TANH_CLAMP, mlp._TANH_CLAMP)
            v2 = v * v
            a1, a3, a5, a7, a9, a11, a13 = mlp._TANH_ALPHA
            b0, b2, b4, b6 = mlp._TANH_BETA
            p = v2 * (v2 * (v2 * (v2 * (v2 * (v2 * a13 + a11) + a9) + a7) + a5) + a3) + a1
            h = v * p / (v2 * (v2 * (v2 * b6 + b4) + b2) + b0)
        x = h
    return x


@pytest.mark.parametrize("hidden", [(64, 64), (7, 13), (3,)])
def test_forward_is_the_in_order_float32_computation(hidden):
    """The compiled forward computes, bit for bit, the float32 sums over the inputs in order (its
    loops may take several inputs per pass over the outputs, never reorder a sum): layer sizes
    that are and are not multiples of its four inputs per pass."""
    obs_dim, action_dim = 11, 3
    policy = MLPPolicy(obs_dim, -np.full(action_dim, 100.0), np.full(action_dim, 100.0), hidden=hidden)
    rng = np.random.default_rng(3)
    mean, std = rng.standard_normal(obs_dim).astype(np.float32), rng.uniform(0.3, 2, obs_dim).astype(np.float32)
    sizes = [obs_dim, *hidden, action_dim]
    for _ in range(20):
        theta = (rng.uniform(0.1, 2) * rng.standard_normal(policy.num_params)).astype(np.float32)
        obs = 3 * rng.standard_normal(obs_dim)
        policy.set_params(theta)
        np.testing.assert_array_equal(policy.act(obs, mean, std), in_order_float32(theta, sizes, obs, mean, std))


def test_rows_side_by_side_act_as_each_alone():
    """k policies in one call: each row's action is bit-identical to the same policy alone."""
    policy = MLPPolicy(11, -np.ones(3), np.ones(3), hidden=(64, 64), action_bins=10)
    rng = np.random.default_rng(5)
    thetas = 0.3 * rng.standard_normal((4, policy.num_params)).astype(np.float32)
    obs, mean, std = rng.standard_normal((4, 11)), np.zeros(11, np.float32), np.full(11, 0.7, np.float32)
    policy.set_params(thetas)
    together = policy.act(obs, mean, std)
    for theta, o, action in zip(thetas, obs, together):
        policy.set_params(theta)
        np.testing.assert_array_equal(policy.act(o, mean, std), action)


def test_set_params_changes_output():
    policy = MLPPolicy(5, -np.ones(2), np.ones(2), hidden=(8, 8))
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(5).astype(np.float32)
    t1 = policy.init_params(rng)
    t2 = policy.init_params(rng)
    policy.set_params(t1)
    a1 = policy.act(obs).copy()
    policy.set_params(t2)
    a2 = policy.act(obs).copy()
    assert not np.allclose(a1, a2)
    np.testing.assert_allclose(a2, manual_logits(t2, [5, 8, 8, 2], obs), rtol=1e-4, atol=1e-7)
    policy.set_params(t1)
    np.testing.assert_array_equal(policy.act(obs), a1)
    # The policy holds its own copy: changing the caller's vector later has no effect.
    t1[:] = 0
    np.testing.assert_array_equal(policy.act(obs), a1)


# --------------------------------------------------------------------------------------------
# rollout on MuJoCo InvertedPendulum-v5
# --------------------------------------------------------------------------------------------

class ActionRecorder(gym.Wrapper):
    """Records the actions actually sent to the env."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def reset(self, **kwargs):
        self.actions = []
        return self.env.reset(**kwargs)

    def step(self, action):
        self.actions.append(np.array(action, copy=True))
        return self.env.step(action)


class ObsRecorder:
    """Wraps a policy and records the observations it is shown, normalized by the statistics it is
    handed (as ``MLPPolicy.act`` normalizes them)."""

    def __init__(self, policy):
        self.policy = policy
        self.seen = []

    def act(self, obs, obs_mean, obs_std):  # one env: obs has shape (1, obs_dim) (rollouts batches episodes)
        normalized = np.clip((obs.astype(np.float32) - obs_mean) / obs_std, -5, 5)
        self.seen.append(normalized.reshape(-1))
        return self.policy.act(obs, obs_mean, obs_std)


def pendulum_policy(theta_seed=0, hidden=(64, 64)):
    env = make_env(ENV_ID)
    policy = MLPPolicy(env.observation_space.shape[0], env.action_space.low,
                       env.action_space.high, hidden=hidden)
    env.close()
    rng = np.random.default_rng(theta_seed)
    policy.set_params((0.5 * rng.standard_normal(policy.num_params)).astype(np.float32))
    return policy


def stabilizing_policy():
    """A linear MLPPolicy (no hidden layer) with a hand-set balancing controller
    a = x + 10 angle + xdot + angledot, which keeps the pendulum up for the whole episode."""
    env = make_env(ENV_ID)
    policy = MLPPolicy(4, env.action_space.low, env.action_space.high, hidden=())
    env.close()
    policy.set_params(np.array([1.0, 10.0, 1.0, 1.0, 0.0], np.float32))
    return policy


ZERO_MEAN = np.zeros(4, np.float32)
UNIT_STD = np.ones(4, np.float32)


def test_rollout_deterministic_for_same_seed_and_params():
    policy = pendulum_policy(0)
    env_a, env_b = make_env(ENV_ID), make_env(ENV_ID)
    mean = np.array([0.0, 0.01, 0.0, 0.0], np.float32)
    std = np.array([0.5, 0.1, 1.0, 2.0], np.float32)
    e1 = rollout(env_a, policy, mean, std, env_seed=1234, record_obs=True)
    e2 = rollout(env_b, policy, mean, std, env_seed=1234, record_obs=True)
    e3 = rollout(env_a, policy, mean, std, env_seed=1234, record_obs=True)  # env reused
    for e in (e2, e3):
        assert e.ret == e1.ret
        assert e.length == e1.length
        np.testing.assert_array_equal(e.obs_sum, e1.obs_sum)
        np.testing.assert_array_equal(e.obs_sumsq, e1.obs_sumsq)
    # A different env seed starts from a different state.
    e4 = rollout(env_a, policy, mean, std, env_seed=1235, record_obs=True)
    assert not np.array_equal(e4.obs_sum, e1.obs_sum)
    # With action noise: deterministic given the noise stream's seed.
    n1 = rollout(env_a, stabilizing_policy(), ZERO_MEAN, UNIT_STD, 5, action_noise_std=0.01,
                 rng=np.random.default_rng(9), record_obs=True)
    n2 = rollout(env_b, stabilizing_policy(), ZERO_MEAN, UNIT_STD, 5, action_noise_std=0.01,
                 rng=np.random.default_rng(9), record_obs=True)
    assert (n1.ret, n1.length) == (n2.ret, n2.length)
    np.testing.assert_array_equal(n1.obs_sum, n2.obs_sum)
    env_a.close()
    env_b.close()


@pytest.mark.parametrize("noise_std", [0.0, 0.05])
def test_rollout_obs_sums_match_independent_env(noise_std):
    env = ActionRecorder(make_env(ENV_ID))
    policy = ObsRecorder(pendulum_policy(1))
    mean = np.array([0.02, -0.01, 0.1, 0.0], np.float32)
    std = np.array([0.5, 0.05, 1.5, 0.2], np.float32)
    rng = np.random.default_rng(4) if noise_std else None
    ep = rollout(env, policy, mean, std, env_seed=77, action_noise_std=noise_std, rng=rng,
                 record_obs=True)
    actions = env.actions
    assert len(actions) == ep.length >= 1
    assert len(policy.seen) == ep.length

    # Step an independent env (plain gymnasium.make) with the same seed and actions.
    ref = gym.make(ENV_ID)
    obs, _ = ref.reset(seed=77)
    fed, total, done = [], 0.0, False
    for a in actions:
        assert not done
        fed.append(obs)
        obs, r, term, trunc, _ = ref.step(a)
        total += float(r)
        done = term or trunc
    assert done  # the episode ended exactly where rollout stopped
    ref.close()
    fed = np.array(fed, dtype=np.float64)
    np.testing.assert_allclose(ep.obs_sum, fed.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ep.obs_sumsq, np.square(fed).sum(axis=0), rtol=1e-12, atol=1e-12)
    assert ep.obs_sum.dtype == np.float64 and ep.obs_sumsq.dtype == np.float64
    assert ep.ret == pytest.approx(total)

    # The policy saw clip((o - mean) / std, -5, 5) of exactly those observations.
    normed = np.clip((fed - mean.astype(np.float64)) / std.astype(np.float64), -5, 5)
    np.testing.assert_allclose(np.array(policy.seen), normed, rtol=1e-5, atol=1e-5)

    if noise_std:
        # Actions sent to the env are the policy output plus noise, not the bare output.
        clean = np.array([policy.policy.act(o) for o in policy.seen])
        diff = np.array(actions).ravel() - clean.ravel()
        assert np.all(np.abs(diff) > 0) and np.std(diff) < 4 * noise_std
    env.close()


def test_rollout_without_record_obs_has_no_sums():
    env = make_env(ENV_ID)
    ep = rollout(env, pendulum_policy(2), ZERO_MEAN, UNIT_STD, env_seed=0)
    assert ep.obs_sum is None and ep.obs_sumsq is None
    assert ep.length >= 1
    env.close()


def test_rollout_length_within_env_limit_and_full_episode():
    env = make_env(ENV_ID)
    limit = env.spec.max_episode_steps
    assert limit == 1000
    for seed in range(3):
        ep = rollout(env, pendulum_policy(seed), ZERO_MEAN, UNIT_STD, env_seed=seed)
        assert 1 <= ep.length <= limit
    # A balancing controller survives until truncation at exactly the env's limit;
    # InvertedPendulum-v5 pays 1 per step.
    ep = rollout(env, stabilizing_policy(), ZERO_MEAN, UNIT_STD, env_seed=0)
    assert ep.length == limit
    assert ep.ret == pytest.approx(float(limit))
    env.close()


def test_max_episode_steps_caps_length():
    env = make_env(ENV_ID, max_episode_steps=10)
    ep = rollout(env, stabilizing_policy(), ZERO_MEAN, UNIT_STD, env_seed=0, record_obs=True)
    assert ep.length == 10
    assert ep.ret == pytest.approx(10.0)
    for seed in range(3):
        assert rollout(env, pendulum_policy(seed), ZERO_MEAN, UNIT_STD, seed).length <= 10
    env.close()


@pytest.mark.parametrize("bad_id", ["NoSuchEnv-v0", "InvertedPendulum-v99"])
def test_unknown_env_id_raises_value_error_naming_it(bad_id):
    with pytest.raises(ValueError, match=bad_id):
        make_env(bad_id)
    with pytest.raises(ValueError, match=bad_id):
        check_env_id(bad_id)


def test_check_env_id_accepts_known_id():
    check_env_id(ENV_ID)  # no exception


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5"])
def test_envs_on_a_shared_model_step_as_on_their_own(env_id):
    """Episodes side by side on envs that share one MjModel (``share_model``, as a worker's envs)
    are bit-identical to the same episodes on envs with models of their own: returns, lengths and
    observation sums (Hopper's episodes end at different steps)."""
    probe = make_env(env_id)
    obs_dim, space = probe.observation_space.shape[0], probe.action_space
    policy = MLPPolicy(obs_dim, space.low, space.high, hidden=(16, 16))
    rng = np.random.default_rng(4)
    policy.set_params(0.5 * rng.standard_normal((3, policy.num_params)).astype(np.float32))
    mean, std = np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)

    def episodes(envs):
        return rollouts(envs, policy, mean, std, [11, 12, 13], 0.01, [np.random.default_rng(s) for s in range(3)],
                        [True] * 3, max_steps=300)

    own = episodes([make_env(env_id) for _ in range(3)])
    first = make_env(env_id)
    shared = episodes([first, share_model(make_env(env_id), first), share_model(make_env(env_id), first)])
    assert shared[1].length > 1
    for a, b in zip(own, shared):
        assert (a.ret, a.length) == (b.ret, b.length)
        np.testing.assert_array_equal(a.obs_sum, b.obs_sum)
        np.testing.assert_array_equal(a.obs_sumsq, b.obs_sumsq)


def test_mujoco_warnings_are_logged_once_per_process_without_a_log_file(tmp_path):
    """mujoco 4.0 warns of the deprecated ``settotalmass`` in HalfCheetah's XML each time the env is
    made; with esrepro's handler a fresh process making it three times logs it once and writes no
    MUJOCO_LOG.TXT into its working directory (MuJoCo's own handler prints it three times and
    writes that file)."""
    script = ("from esrepro.envs.mujoco import make_env\n"
              "for _ in range(3):\n"
              "    make_env('HalfCheetah-v5')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert output.count("settotalmass") == 1, output
    assert "MuJoCo: " in output
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
