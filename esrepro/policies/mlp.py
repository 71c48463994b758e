"""Policies evaluated by ES, as flat float32 parameter vectors.

MuJoCo: the reference code's MujocoPolicy (es_distributed/policies.py): normalized observations,
a tanh MLP (paper section 4.1: two hidden layers of 64 units), a linear output, either continuous
or discretized into bins per action dimension (the paper uses 10 bins for Hopper and Swimmer).
"""

import numpy as np


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
        if self.action_bins == 1 or self.action_bins < 0:
            raise ValueError(f"action_bins must be 0 (continuous) or >= 2, got {action_bins}")
        out = self.action_dim * self.action_bins if self.action_bins else self.action_dim
        sizes = [obs_dim, *hidden, out]
        self.shapes = list(zip(sizes[:-1], sizes[1:]))
        self.num_params = sum(i * o + o for i, o in self.shapes)
        self.set_params(np.zeros(self.num_params, dtype=np.float32))
        if self.action_bins:
            self.bin_values = np.linspace(self.low, self.high, self.action_bins, axis=1, dtype=np.float32)

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
        evaluated side by side by ``act`` (one batched matrix product per layer for all k)."""
        self.flat = np.array(theta, dtype=np.float32, ndmin=2)
        k = self.flat.shape[0]
        self.layers, offset = [], 0
        for i, o in self.shapes:
            w = self.flat[:, offset : offset + i * o].reshape(k, i, o)
            b = self.flat[:, offset + i * o : offset + i * o + o].reshape(k, 1, o)
            self.layers.append((w, b))
            offset += i * o + o
        self.hidden_buffers = [np.empty((k, 1, o), dtype=np.float32) for _, o in self.shapes[:-1]]

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions of the loaded policies for normalized observations.

        Parameters
        ----------
        obs : ndarray of float32, shape (obs_dim,) for one policy or (k, obs_dim) for k

        Returns
        -------
        ndarray of float32, shape (action_dim,) or (k, action_dim)

        Notes
        -----
        Each policy's action is computed by its own matrix products (``matmul`` over a stack), so
        it is bit-identical whatever k is; hidden activations live in preallocated buffers (this
        runs once per env step)."""
        x = obs.reshape(self.flat.shape[0], 1, -1)
        for (w, b), h in zip(self.layers[:-1], self.hidden_buffers):
            np.matmul(x, w, out=h)
            np.add(h, b, out=h)
            x = np.tanh(h, out=h)
        w, b = self.layers[-1]
        x = (x @ w + b)[:, 0]
        if self.action_bins:
            idx = x.reshape(-1, self.action_dim, self.action_bins).argmax(axis=2)
            x = self.bin_values[np.arange(self.action_dim), idx]
        else:
            x = np.minimum(np.maximum(x, self.low), self.high)
        return x if obs.ndim == 2 else x[0]
