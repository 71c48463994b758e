"""Policies evaluated by ES, as flat float32 parameter vectors.

MuJoCo: the reference code's MujocoPolicy (es_distributed/policies.py): normalized observations,
a tanh MLP (paper section 4.1: two hidden layers of 64 units), a linear output, either continuous
or discretized into bins per action dimension (the paper uses 10 bins for Hopper and Swimmer).

A policy step runs once per env step, so the whole of it (normalization, layers, clipping or bins)
is one compiled call (numba, ``_forward``) for the k episodes a worker steps side by side: 6.9 us
for 8 rows of the 64-64 policy, 2.4 us for one, against a MuJoCo step of 40-80 us per episode
(benchmarks/README.md).
The compiled code keeps IEEE float32 in a fixed order (no fast-math), so an action depends only on
its parameters and observation.
"""

import numpy as np
from numba import njit

#: Observations are clipped to [-CLIP, CLIP] after normalization (reference code: ob_clip 5).
CLIP = np.float32(5.0)
#: tanh's 13/6-degree rational approximation in float32, clamped to [-9, 9] (Eigen's
#: generic_fast_tanh_float, Eigen/src/Core/MathFunctionsImpl.h: the float32 tanh of TensorFlow's CPU
#: kernels, which the reference code ran): accurate to a few ulp, and plain arithmetic, so the
#: loop over a layer's units vectorizes (a libm ``tanhf`` call per unit was half the 64-64 step).
_TANH_CLAMP = np.float32(9.0)
_TANH_ALPHA = tuple(np.float32(c) for c in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                            5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                            -2.76076847742355e-16))
_TANH_BETA = tuple(np.float32(c) for c in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                           1.19825839466702e-06))


@njit(cache=True, nogil=True, inline="always")
def _tanh(v):  # pragma: no cover (compiled)
    """tanh of a float32 (``_TANH_ALPHA``, ``_TANH_BETA``): Horner's rule in Eigen's order."""
    x = min(max(v, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    a1, a3, a5, a7, a9, a11, a13 = _TANH_ALPHA
    b0, b2, b4, b6 = _TANH_BETA
    p = x2 * (x2 * (x2 * (x2 * (x2 * (x2 * a13 + a11) + a9) + a7) + a5) + a3) + a1
    q = x2 * (x2 * (x2 * b6 + b4) + b2) + b0
    return x * p / q


@njit(cache=True, nogil=True, error_model="numpy")
def _dense(x, theta, offset, a, b, h):  # pragma: no cover (compiled)
    """``h`` (float32, (b,)) = x[:a] @ W, W the (a, b) weights at ``theta[offset:]``. Each output's
    sum runs over the inputs in order, four inputs per pass over ``h``: ((h + x0 w0) + x1 w1) + ...
    is the same float32 sum as one input per pass (no fused multiply-add without fast-math), and
    keeps ``h`` in registers for four of them (8 rows of the 64-64 policy: 10.1 -> 8.1 us per
    forward; eight inputs per pass: no faster)."""
    h[:] = 0.0
    i = 0
    while i + 4 <= a:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        w0 = theta[offset + i * b : offset + (i + 1) * b]  # 1-d views, so that LLVM vectorizes over outputs
        w1 = theta[offset + (i + 1) * b : offset + (i + 2) * b]
        w2 = theta[offset + (i + 2) * b : offset + (i + 3) * b]
        w3 = theta[offset + (i + 3) * b : offset + (i + 4) * b]
        for j in range(b):
            h[j] = (((h[j] + x0 * w0[j]) + x1 * w1[j]) + x2 * w2[j]) + x3 * w3[j]
        i += 4
    for rest in range(i, a):
        xi, w = x[rest], theta[offset + rest * b : offset + (rest + 1) * b]
        for j in range(b):
            h[j] += xi * w[j]


@njit(cache=True, nogil=True, error_model="numpy")
def _tanh_layer(h, bias):  # pragma: no cover (compiled)
    """h = tanh(h + bias) in place (float32, (b,)). A loop of its own, without numba's check of each
    division for zero (``error_model="numpy"``): LLVM vectorizes it, which it did not inside the
    layer loop (8 rows of the 64-64 policy: 8.1 -> 5.8 us per forward)."""
    for j in range(h.size):
        h[j] = _tanh(h[j] + bias[j])


@njit(cache=True, nogil=True)
def _forward(obs, stats, flat, sizes, actions_table, bins, work, out):  # pragma: no cover (compiled)
    """Actions of k policies: row r of ``out`` (float32, (k, action_dim)) from row r of ``obs``
    ((k, obs_dim), cast to float32), normalized by ``stats`` (float32, (2, obs_dim): mean, std; or
    shape (0, 0): none), and parameter row r of ``flat``. ``sizes``: the layer sizes (int64);
    ``actions_table``: float32 (action_dim, 2 + bins): low, high, then the bins' values;
    ``work``: float32 (2, the largest layer size). Each sum runs over the inputs in order, for each
    output, so a row's action does not depend on k."""
    layers = sizes.size - 1
    action_dim = actions_table.shape[0]
    for r in range(obs.shape[0]):
        theta, x, y = flat[r], work[0], work[1]
        for i in range(sizes[0]):
            v = np.float32(obs[r, i])
            if stats.shape[0]:
                v = min(max((v - stats[0, i]) / stats[1, i], -CLIP), CLIP)
            x[i] = v
        offset = 0
        for layer in range(layers):
            a, b = sizes[layer], sizes[layer + 1]
            h = y[:b]
            _dense(x, theta, offset, a, b, h)
            bias = theta[offset + a * b : offset + a * b + b]
            if layer < layers - 1:
                _tanh_layer(h, bias)
            else:
                for j in range(b):
                    h[j] += bias[j]
            offset += a * b + b
            x, y = y, x
        for d in range(action_dim):
            if bins:
                best = 0
                for k in range(1, bins):
                    if x[d * bins + k] > x[d * bins + best]:
                        best = k
                out[r, d] = actions_table[d, 2 + best]
            else:
                out[r, d] = min(max(x[d], actions_table[d, 0]), actions_table[d, 1])


def layer_sizes(obs_dim: int, action_dim: int, hidden, action_bins: int = 0) -> list[int]:
    """An ``MLPPolicy``'s layer sizes: the observation, the hidden layers, the output (the actions,
    or ``action_dim * action_bins`` logits).

    Raises
    ------
    ValueError
        If ``action_bins`` is 1 or negative.
    """
    if action_bins == 1 or action_bins < 0:
        raise ValueError(f"action_bins must be 0 (continuous) or >= 2, got {action_bins}")
    return [obs_dim, *hidden, action_dim * action_bins if action_bins else action_dim]


def num_params(obs_dim: int, action_dim: int, hidden, action_bins: int = 0) -> int:
    """Length of an ``MLPPolicy``'s flat parameter vector, counted without building one (a run's
    checks call it before any work, on whatever sizes a config gives). Raises as ``layer_sizes``."""
    sizes = layer_sizes(obs_dim, action_dim, hidden, action_bins)
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


class MLPPolicy:
    """A tanh MLP mapping a normalized observation to an action.

    Parameters
    ----------
    obs_dim : int
    action_low, action_high : ndarray of float32, shape (action_dim,)
        Bounds of the environment's Box action space.
    hidden : sequence of int
        Hidden layer sizes (paper: (64, 64); Humanoid scaling runs: (256, 256)).
    action_bins : int
        0 for a continuous output (clipped to the bounds), or the number of bins per action
        dimension: a layer of ``action_dim * action_bins`` logits, argmax per dimension, mapped to
        ``action_bins`` evenly spaced values in [low, high] (reference ``ac_bins="uniform:10"``).

    Attributes
    ----------
    num_params : int
        Length of the flat parameter vector: each layer's weights (in, out) then biases (out).
    """

    def __init__(self, obs_dim: int, action_low, action_high, hidden=(64, 64), action_bins: int = 0):
        self.low = np.asarray(action_low, dtype=np.float32)
        self.high = np.asarray(action_high, dtype=np.float32)
        self.action_dim = self.low.size
        self.action_bins = int(action_bins)
        sizes = layer_sizes(obs_dim, self.action_dim, hidden, self.action_bins)
        self.shapes = list(zip(sizes[:-1], sizes[1:]))
        self.num_params = num_params(obs_dim, self.action_dim, hidden, self.action_bins)
        self.sizes = np.array(sizes, dtype=np.int64)
        bins = np.linspace(self.low, self.high, self.action_bins, axis=1, dtype=np.float32)  # (action_dim, bins)
        self.actions_table = np.concatenate([self.low[:, None], self.high[:, None], bins], axis=1)
        self.work = np.empty((2, max(sizes)), dtype=np.float32)
        self._stats = (None, None, np.empty((0, 0), dtype=np.float32))  # (mean, std, stacked) last used
        self.set_params(np.zeros(self.num_params, dtype=np.float32))

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        """Normc initial parameters (reference ``normc_initializer``): Gaussian weights with each
        output unit's column scaled to norm 1.0 (hidden layers) or 0.01 (output layer); zero
        biases. Returns a float32 array of shape (num_params,)."""
        parts = []
        for k, (i, o) in enumerate(self.shapes):
            std = 0.01 if k == len(self.shapes) - 1 else 1.0
            w = rng.standard_normal((i, o)).astype(np.float32)
            w *= std / np.sqrt(np.square(w).sum(axis=0, keepdims=True))
            parts += [w.ravel(), np.zeros(o, dtype=np.float32)]
        return np.concatenate(parts)

    def set_params(self, theta: np.ndarray) -> None:
        """Load (a copy of) parameters: shape (num_params,), or (k, num_params) for k policies
        evaluated side by side by ``act``."""
        self.flat = np.array(theta, dtype=np.float32, ndmin=2)

    def act(self, obs: np.ndarray, obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None) -> np.ndarray:
        """Actions of the loaded policies.

        Parameters
        ----------
        obs : ndarray of float32 or float64, shape (obs_dim,) for one policy or (k, obs_dim) for k
            Observations, cast to float32.
        obs_mean, obs_std : ndarray of float32, shape (obs_dim,), optional
            Observation statistics: the layers see ``clip((obs - mean) / std, -5, 5)`` (reference
            MujocoPolicy); without them, ``obs`` as given.

        Returns
        -------
        ndarray of float32, shape (action_dim,) or (k, action_dim)

        Notes
        -----
        One compiled call (``_forward``) per call: each policy's action is computed by its own
        loops, so it is bit-identical whatever k is."""
        if obs_mean is None:
            stats = self._stats[2][:0]
        elif self._stats[0] is obs_mean and self._stats[1] is obs_std:
            stats = self._stats[2]
        else:
            stats = np.stack([obs_mean, obs_std]).astype(np.float32)
            self._stats = (obs_mean, obs_std, stats)
        out = np.empty((self.flat.shape[0], self.action_dim), dtype=np.float32)
        _forward(obs.reshape(self.flat.shape[0], -1), stats, self.flat, self.sizes, self.actions_table,
                 self.action_bins, self.work, out)
        return out if obs.ndim == 2 else out[0]
