"""Tests of the A3C CNN with virtual batch normalization (esrepro.policies.cnn).

The expected logits come from an independent PyTorch implementation in float64 written from the
documented parameter layout (weights HWIO / (in, out), the dense inputs in (h, w, c) order, then
gamma and beta, or the output bias), with the VBN statistics computed by torch over the reference
batch. Observations are real Pong frames (``esrepro.envs.atari.reference_batch``).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from esrepro.envs.atari import reference_batch
from esrepro.policies.cnn import VBN_EPS, CNNPolicy

N_ACTIONS = 6


@pytest.fixture(scope="module")
def frames():
    """24 real Pong observations, uint8 (24, 4, 84, 84): 16 for the reference batch, 8 to act on."""
    return reference_batch("ALE/Pong-v5", frame_skip=4, noop_max=30, size=24, seed=0, keep_prob=0.2)


def torch_logits(policy, theta, ref, obs):
    """float64 logits (len(obs), n_actions) of ``theta`` with VBN over ``ref``, in torch (one
    thread: torch's thread pool is slow on a small, shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_logits(policy, torch.from_numpy(np.asarray(theta, np.float64)),
                             torch.from_numpy(ref.astype(np.float64)) / 255,
                             torch.from_numpy(obs.astype(np.float64)) / 255)
    finally:
        torch.set_num_threads(threads)


def _torch_logits(policy, theta, r, x):
    offset = 0

    def take(*shape):
        nonlocal offset
        size = int(np.prod(shape))
        offset += size
        return theta[offset - size:offset].reshape(shape)

    for layer in policy.layers:
        w = take(layer.kernel, layer.kernel, layer.channels_in, layer.channels_out)
        if layer.dense:  # inputs in (h, w, c) order of the NHWC map
            x, r = (t.permute(0, 2, 3, 1).flatten(1) if t.ndim == 4 else t for t in (x, r))
            w = w.reshape(-1, layer.channels_out)
            x, r = x @ w, r @ w
        else:  # HWIO -> torch's (out, in, kh, kw)
            w = w.permute(3, 2, 0, 1)
            x, r = F.conv2d(x, w, stride=layer.stride), F.conv2d(r, w, stride=layer.stride)
        if not layer.hidden:
            return (x + take(layer.channels_out)).numpy()
        gamma, beta = take(layer.channels_out), take(layer.channels_out)
        dims = [0, 2, 3] if r.ndim == 4 else [0]
        mean, var = r.mean(dim=dims), r.var(dim=dims, unbiased=False)
        x, r = (F.relu(F.batch_norm(t, mean, var, gamma, beta, training=False, eps=VBN_EPS)) for t in (x, r))


def random_theta(policy, rng, spread=0.3):
    """Initial parameters plus Gaussian noise: gamma, beta and the biases far from 1 and 0."""
    theta = policy.init_params(rng)
    return theta + (spread * rng.standard_normal(theta.size)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# structure and init
# --------------------------------------------------------------------------------------------

def test_num_params(frames):
    ref = frames[:4]
    large = CNNPolicy(N_ACTIONS, "large", ref)
    # conv 8x8x4->32, 4x4x32->64, 3x3x64->64 (no bias, gamma and beta), dense 7*7*64->512, out 512->6
    assert large.num_params == (8 * 8 * 4 * 32 + 2 * 32) + (4 * 4 * 32 * 64 + 2 * 64) + \
        (3 * 3 * 64 * 64 + 2 * 64) + (7 * 7 * 64 * 512 + 2 * 512) + (512 * 6 + 6) == 1_687_878
    small = CNNPolicy(18, "small", ref)
    # conv 8x8x4->16, 4x4x16->32, dense 9*9*32->256, out 256->18
    assert small.num_params == (8 * 8 * 4 * 16 + 2 * 16) + (4 * 4 * 16 * 32 + 2 * 32) + \
        (9 * 9 * 32 * 256 + 2 * 256) + (256 * 18 + 18)


@pytest.mark.parametrize("network", ["large", "small"])
def test_init_params(frames, network):
    policy = CNNPolicy(N_ACTIONS, network, frames[:4])
    theta = policy.init_params(np.random.default_rng(0))
    assert theta.dtype == np.float32 and theta.shape == (policy.num_params,)
    np.testing.assert_array_equal(theta, policy.init_params(np.random.default_rng(0)))
    offset = 0
    for layer in policy.layers:
        n = layer.fan_in * layer.channels_out
        w = theta[offset:offset + n]
        fan_out = layer.channels_out * (1 if layer.dense else layer.kernel ** 2)
        limit = np.sqrt(6 / (layer.fan_in + fan_out))
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit  # Glorot uniform
        assert abs(w.mean()) < 0.05 * limit
        offset += n
        extra = theta[offset:offset + layer.num_params - n]
        offset += layer.num_params - n
        if layer.hidden:
            np.testing.assert_array_equal(extra, [1.0] * layer.channels_out + [0.0] * layer.channels_out)
        else:
            np.testing.assert_array_equal(extra, 0.0)
    assert offset == policy.num_params


# --------------------------------------------------------------------------------------------
# forward pass and VBN
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("network", ["large", "small"])
def test_logits_match_torch(frames, network):
    ref, obs = frames[:16], frames[16:]
    policy = CNNPolicy(N_ACTIONS, network, ref)
    rng = np.random.default_rng(1)
    thetas = np.stack([policy.init_params(rng), random_theta(policy, rng)])
    for theta in thetas:
        expected = torch_logits(policy, theta, ref, obs)
        policy.set_params(np.tile(theta, (len(obs), 1)))
        got = policy.logits(obs).copy()
        assert got.dtype == np.float32 and got.shape == (len(obs), N_ACTIONS)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        np.testing.assert_array_equal(policy.act(obs), expected.argmax(axis=1))
        policy.set_params(theta)
        np.testing.assert_allclose(policy.logits(obs[0]), expected[0], rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max())


def test_vbn_normalizes_the_reference_batch(frames):
    """Read the dense layer's normalized units out through the output layer: with beta 10 (so
    that the ReLU passes everything) and gamma 1, logit j on observation o is 10 + the normalized
    pre-activation of unit j, which over the reference batch has mean 0 and std
    sqrt(var / (var + eps)) ~ 1 (population std)."""
    ref = frames[:16]
    policy = CNNPolicy(N_ACTIONS, "large", ref)
    theta = random_theta(policy, np.random.default_rng(2))
    out = policy.layers[-1]
    end_dense = policy.num_params - out.num_params
    theta[end_dense - 2 * 512:end_dense - 512] = 1.0   # gamma
    theta[end_dense - 512:end_dense] = 10.0            # beta
    readout = np.zeros((512, N_ACTIONS), np.float32)
    readout[np.arange(N_ACTIONS), np.arange(N_ACTIONS)] = 1.0
    theta[end_dense:] = np.concatenate([readout.ravel(), np.zeros(N_ACTIONS, np.float32)])
    policy.set_params(np.tile(theta, (len(ref), 1)))
    units = policy.logits(ref) - 10.0
    np.testing.assert_allclose(units.mean(axis=0), 0.0, atol=1e-4)
    assert np.all(units.std(axis=0) > 0.95) and np.all(units.std(axis=0) <= 1.0 + 1e-5)


def test_vbn_statistics_come_from_the_loaded_parameters(frames):
    """Scaling the first convolution's weights scales its pre-activations and their reference
    statistics alike: once the variance dwarfs eps, the logits do not change. Statistics frozen
    at an earlier set_params would not follow."""
    policy = CNNPolicy(N_ACTIONS, "small", frames[:16])
    theta = random_theta(policy, np.random.default_rng(3))
    first = policy.layers[0].fan_in * policy.layers[0].channels_out
    scaled = [theta.copy() for _ in range(2)]
    scaled[0][:first] *= 100
    scaled[1][:first] *= 1000
    policy.set_params(np.stack(scaled))
    logits = policy.logits(np.stack([frames[20]] * 2))
    np.testing.assert_allclose(logits[0], logits[1], rtol=1e-3, atol=1e-3 * np.abs(logits).max())
    policy.set_params(scaled[0])
    np.testing.assert_array_equal(policy.logits(frames[20]), logits[0])


def test_reference_batch_changes_the_output(frames):
    theta = random_theta(CNNPolicy(N_ACTIONS, "large", frames[:2]), np.random.default_rng(4))
    outputs = []
    for ref in (frames[:8], frames[8:16], frames[:8].copy()):
        policy = CNNPolicy(N_ACTIONS, "large", ref)
        policy.set_params(theta)
        outputs.append(policy.logits(frames[20]).copy())
    assert not np.allclose(outputs[0], outputs[1], rtol=1e-3)
    np.testing.assert_array_equal(outputs[0], outputs[2])


@pytest.mark.parametrize("network", ["large", "small"])
def test_rows_are_independent(frames, network):
    """Row i's logits are bit-identical whatever k is and whatever the other rows hold."""
    policy = CNNPolicy(N_ACTIONS, network, frames[:16])
    rng = np.random.default_rng(5)
    thetas = np.stack([random_theta(policy, rng) for _ in range(5)])
    obs = frames[16:21]
    policy.set_params(thetas)
    together = policy.logits(obs).copy()
    actions = policy.act(obs)
    assert actions.dtype == np.int64 and actions.shape == (5,)
    np.testing.assert_array_equal(actions, together.argmax(axis=1))
    for i in range(5):
        policy.set_params(thetas[i])
        np.testing.assert_array_equal(policy.logits(obs[i]), together[i])
        np.testing.assert_array_equal(policy.logits(obs[i:i + 1])[0], together[i])
        action = policy.act(obs[i])
        assert isinstance(action, int) and action == actions[i]
    order = [3, 0, 4, 1, 2]
    policy.set_params(thetas[order])
    np.testing.assert_array_equal(policy.logits(obs[order]), together[order])
    policy.set_params(thetas[[2, 2]])  # a row next to a copy of itself
    np.testing.assert_array_equal(policy.logits(obs[[2, 2]]), together[[2, 2]])


def test_set_params_keeps_a_copy(frames):
    policy = CNNPolicy(N_ACTIONS, "small", frames[:8])
    theta = random_theta(policy, np.random.default_rng(6))
    policy.set_params(theta)
    before = policy.logits(frames[20]).copy()
    theta[:] = 0
    np.testing.assert_array_equal(policy.logits(frames[20]), before)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------

def test_bad_input_raises(frames):
    ref = frames[:4]
    with pytest.raises(ValueError, match="'medium'"):
        CNNPolicy(N_ACTIONS, "medium", ref)
    with pytest.raises(ValueError, match="n_actions.*0"):
        CNNPolicy(0, "large", ref)
    with pytest.raises(ValueError, match="reference_batch.*float32"):
        CNNPolicy(N_ACTIONS, "large", ref.astype(np.float32))
    with pytest.raises(ValueError, match=r"reference_batch.*\(4, 84, 84, 4\)"):
        CNNPolicy(N_ACTIONS, "large", ref.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"reference_batch.*\(1, 4, 84, 84\)"):
        CNNPolicy(N_ACTIONS, "large", ref[:1])
    policy = CNNPolicy(N_ACTIONS, "small", ref)
    with pytest.raises(ValueError, match=rf"theta.*{policy.num_params}.*\(7,\)"):
        policy.set_params(np.zeros(7, np.float32))
    policy.set_params(np.zeros((3, policy.num_params), np.float32))
    with pytest.raises(ValueError, match=r"obs.*\(2, 4, 84, 84\)"):
        policy.act(frames[:2])
    with pytest.raises(ValueError, match=r"obs.*\(4, 84, 84\)"):
        policy.act(frames[0])  # one observation, three loaded parameter vectors
    with pytest.raises(ValueError, match="obs.*float32"):
        policy.act(frames[:3].astype(np.float32))
