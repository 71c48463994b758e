"""The A3C feed-forward CNN with virtual batch normalization (VBN), as a flat float32 parameter
vector, in numpy (and one numba kernel).

Paper sections 2.2 and 4.2: ES on Atari uses the preprocessing and feed-forward CNN of A3C (Mnih et
al. 2016) with virtual batch normalization (Salimans et al. 2016, "Improved techniques for training
GANs"): batch normalization whose statistics come from a reference batch of observations chosen
once at the start of training, so that a policy's action on one observation does not depend on the
other observations of its episode. Where the paper is silent this module follows the TensorFlow
reconstruction uber-research/deep-neuroevolution, ``es_distributed/policies.py`` ``ESAtariPolicy``:

- VBN after every hidden layer (each convolution and the fully connected layer), before the ReLU;
  none on the output logits.
- Each VBN layer has a learned per-channel scale (gamma) and offset (beta); they are part of the
  flat parameter vector, perturbed and updated by ES like the weights (reconstruction: tf.contrib
  ``batch_norm(scale=True)``, which also centers).
- Statistics: per channel, the mean and (biased) variance over the reference batch and all spatial
  positions, with eps = 1e-3 added to the variance (the reconstruction's ``epsilon``), computed
  with the currently loaded parameters, so every perturbed parameter vector gets its own
  statistics. No running averages. Unlike Salimans et al. 2016, the example being normalized is
  not added to the reference batch (as in the reconstruction and the ES paper's description).
- Hidden layers have no bias (our choice): VBN subtracts the mean, which cancels a bias exactly;
  the reconstruction keeps conv biases that have no effect, and beta plays their role.
- Action: argmax of the logits (deterministic).

Networks (``network``): "large" is the Nature DQN network (Mnih et al. 2015): conv 32 8x8 stride
4, conv 64 4x4 stride 2, conv 64 3x3 stride 1, dense 512; "small" is A3C's small network (that of
Mnih et al. 2013): conv 16 8x8 stride 4, conv 32 4x4 stride 2, dense 256. ReLU, no padding. The
input, uint8 (4, 84, 84) (4 stacked 84x84 grayscale frames, esrepro.envs.atari), is scaled to [0, 1].

Flat parameter layout, layer by layer: the weights, then gamma (out,) and beta (out,) for a hidden
layer, or the bias (n_actions,) for the output layer. Convolution weights are (kh, kw, in, out)
row-major (TensorFlow's HWIO) with the input channels of the first convolution being the 4 stacked
frames; dense weights are (in, out) with the inputs of the first dense layer in (h, w, c) order of
the last convolution's output map (TensorFlow's flatten of NHWC, as in the reconstruction).

Implementation: activations are NHWC; a convolution is a patch copy (im2col through a strided view)
and one matrix product per parameter vector (``numpy.matmul`` over a stack), and a dense layer is
a convolution whose kernel covers its whole input map (its patch matrix is the input itself). The
first convolution (kernel 8 = 2 x stride 4) runs as the equivalent 2x2 convolution with stride 1
over the map of 4x4 blocks of the observation (space-to-depth: 21x21 blocks of 4x4x4 pixels), which
makes its patch copy contiguous; its weights are rearranged to match, with the 1/255 input scaling
folded in.
The folded VBN and the ReLU after each hidden layer are one compiled pass (numba, ``_vbn_relu``,
the same float32 operations as numpy's): 6 us per large forward, where numpy's three elementwise
calls per layer took 28 us (of ~400 us).
"""

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import as_strided

#: The observation of one agent step: 4 stacked 84x84 grayscale frames, uint8, channel-first.
OBS_SHAPE = (4, 84, 84)
#: Hidden layers of each network: (out channels, kernel, stride) of each convolution, then the
#: units of the dense layer.
NETWORKS = {
    "large": (((32, 8, 4), (64, 4, 2), (64, 3, 1)), 512),
    "small": (((16, 8, 4), (32, 4, 2)), 256),
}
#: Added to the variance before normalizing (reconstruction's tf.contrib batch_norm epsilon).
VBN_EPS = 1e-3
#: Reference-batch observations per matrix product when computing the VBN statistics: bounds the
#: patch buffer (large network, first convolution: 16 x 400 x 256 float32 = 6.5 MB).
REF_CHUNK = 16


@dataclass(frozen=True)
class Layer:
    """One layer, as a convolution without padding over a square NHWC map (a dense layer's kernel
    covers its whole input map, so its output map is 1x1)."""

    size_in: int
    channels_in: int
    kernel: int
    stride: int
    channels_out: int
    dense: bool
    hidden: bool  # followed by VBN and ReLU; the output layer has a bias instead

    @property
    def size_out(self) -> int:
        return (self.size_in - self.kernel) // self.stride + 1

    @property
    def fan_in(self) -> int:
        return self.kernel * self.kernel * self.channels_in

    @property
    def num_params(self) -> int:
        return self.fan_in * self.channels_out + (2 if self.hidden else 1) * self.channels_out


def build_layers(network: str, n_actions: int) -> list[Layer]:
    """The layers of ``network`` ("large" or "small") with ``n_actions`` output logits.

    Raises
    ------
    ValueError
        If ``network`` is unknown or ``n_actions`` < 1.
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
    if int(n_actions) < 1:
        raise ValueError(f"n_actions must be >= 1, got {n_actions}")
    convs, units = NETWORKS[network]
    layers, size, channels = [], OBS_SHAPE[1], OBS_SHAPE[0]
    for out, kernel, stride in convs:
        layers.append(Layer(size, channels, kernel, stride, out, dense=False, hidden=True))
        size, channels = layers[-1].size_out, out
    layers.append(Layer(size, channels, size, 1, units, dense=True, hidden=True))
    layers.append(Layer(1, units, 1, 1, int(n_actions), dense=True, hidden=False))
    return layers


def num_params(network: str, n_actions: int) -> int:
    """Length of the flat parameter vector of ``network`` with ``n_actions`` outputs (``build_layers``)."""
    return sum(layer.num_params for layer in build_layers(network, n_actions))


def block_layer(layer: Layer) -> Layer:
    """The first convolution as computed: a (kernel / stride)-square convolution with stride 1 over
    the map of stride x stride blocks of the observation (space-to-depth). Needs kernel = 2 x stride
    and a map size divisible by the stride (true of both networks: 8, 4, 84)."""
    s = layer.stride
    assert layer.kernel == 2 * s and layer.size_in % s == 0
    return Layer(layer.size_in // s, layer.channels_in * s * s, 2, 1, layer.channels_out, dense=False, hidden=True)


def _blocks(obs: np.ndarray, out: np.ndarray, stride: int) -> None:
    """Space-to-depth of uint8 observations (s, n, C, H, W) into float32 ``out``
    (s, n, H/stride, W/stride, C * stride * stride), block channels in (c, dh, dw) order.

    The ``stride`` pixels of a block row are contiguous in both layouts, so they move as one
    opaque item (``stride`` times fewer elements for the transposing copy), then are converted in one
    contiguous pass."""
    s, n, c, h, w = obs.shape
    run = np.dtype((np.void, stride))
    rows = np.ascontiguousarray(obs).view(run).reshape(s, n, c, h // stride, stride, w // stride)
    staged = np.empty((s, n, h // stride, w // stride, c, stride), run)
    np.copyto(staged, rows.transpose(0, 1, 3, 5, 2, 4))
    np.copyto(out, staged.view(np.uint8).reshape(out.shape))


def _im2col(layer: Layer, x: np.ndarray, buffer: np.ndarray | None):
    """How to get ``layer``'s patch matrix (s, n*oh*ow, fan_in) of the contiguous NHWC map ``x``
    (s, n, H, W, C): returns (source view, destination view, matrix); copy the source into the
    destination before each use of the matrix. A dense layer's matrix is ``x`` itself (no copy;
    source and destination are None). Patch order (kh, kw, c), as the weights."""
    if layer.dense:
        return None, None, x.reshape(x.shape[0], -1, layer.fan_in)
    k, st, o = layer.kernel, layer.stride, layer.size_out
    ss, sn, sh, sw, sc = x.strides
    source = as_strided(x, (*x.shape[:2], o, o, k, k * layer.channels_in),
                        (ss, sn, st * sh, st * sw, sh, sc), writeable=False)
    return source, buffer.reshape(source.shape), buffer


@njit(cache=True, nogil=True)
def _vbn_relu(z, scale, shift):  # pragma: no cover (compiled)
    """In place: z = relu(z * scale + shift), the folded VBN (per channel: scale = gamma /
    sqrt(var + eps), shift = beta - mean * scale) and the ReLU, in one pass. ``z``: float32 (k,
    positions, channels); ``scale``, ``shift``: float32 (k, channels). The float32 operations of
    numpy's ``multiply``, ``add`` and ``maximum(., 0)`` in that order (no fused multiply-add; -0.0 and
    NaN kept as ``maximum`` keeps them), so the bits are numpy's."""
    for r in range(z.shape[0]):
        a, b = scale[r], shift[r]
        for p in range(z.shape[1]):
            row = z[r, p]
            for c in range(row.size):
                v = row[c] * a[c] + b[c]
                row[c] = v if v >= 0 or v != v else np.float32(0.0)


class CNNPolicy:
    """The A3C CNN with virtual batch normalization, argmax over the logits (module docstring).

    Parameters
    ----------
    n_actions : int
        Number of discrete actions (the env's minimal action set).
    network : str
        "large" (Nature DQN: 1,687,878 parameters for 6 actions; the paper found the larger A3C
        network better on average, and it is the config default) or "small" (A3C small).
    reference_batch : ndarray of uint8, shape (n, 4, 84, 84), n >= 2
        The VBN reference batch (``esrepro.envs.atari.reference_batch``); kept (as float32 blocks,
        n x 113 KB).

    Attributes
    ----------
    layers : list of Layer
        The architecture, as documented in the module docstring.
    num_params : int
        Length of the flat parameter vector (layout in the module docstring).
    k : int
        Number of parameter vectors loaded by the last ``set_params``.

    Raises
    ------
    ValueError
        If ``network`` or ``n_actions`` is invalid, or ``reference_batch`` has the wrong shape,
        dtype, or fewer than 2 observations.

    Notes
    -----
    ``set_params`` passes the reference batch through the network once per loaded parameter
    vector: 2.4 GFLOP for the large network and 128 observations, ~55 ms of one core here, the
    time of ~100 single-observation ``act`` calls (benchmarks/cnn_forward.py). Memory: the
    reference batch as float32 blocks (14.5 MB for 128 observations), ~25 MB of buffers for the
    reference pass, and a float32 copy of the k loaded parameter vectors (6.8 MB each, large).
    """

    def __init__(self, n_actions: int, network: str, reference_batch: np.ndarray):
        self.layers = build_layers(network, n_actions)
        self.network, self.n_actions = network, int(n_actions)
        self.num_params = num_params(network, n_actions)
        ref = np.asarray(reference_batch)
        if ref.dtype != np.uint8 or ref.ndim != 4 or ref.shape[1:] != OBS_SHAPE or ref.shape[0] < 2:
            raise ValueError(f"reference_batch must be uint8 of shape (n >= 2, {', '.join(map(str, OBS_SHAPE))}), "
                             f"got {ref.dtype} {ref.shape}")
        # What is computed: the first convolution over blocks, then the other layers as they are.
        self._compute = [block_layer(self.layers[0]), *self.layers[1:]]
        first, n = self._compute[0], ref.shape[0]
        self._ref_blocks = np.empty((1, n, first.size_in, first.size_in, first.channels_in), np.float32)
        _blocks(ref[None], self._ref_blocks, self.layers[0].stride)
        chunk = min(REF_CHUNK, n)
        hidden = self._compute[:-1]
        self._ref_out = [np.empty((1, n * h.size_out ** 2, h.channels_out), np.float32) for h in hidden]
        self._ref_cols = [np.empty((1, chunk * h.size_out ** 2, h.fan_in), np.float32) for h in hidden]
        self.k = 0
        self.set_params(np.zeros(self.num_params, dtype=np.float32))

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        """Initial parameters: Glorot-uniform weights (the reconstruction's tf.contrib.layers
        default): U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), fan_in = kh*kw*in and
        fan_out = kh*kw*out for a convolution, in and out for a dense layer; gamma 1, beta 0,
        output bias 0. Returns float32 of shape (num_params,)."""
        parts = []
        for layer in self.layers:
            receptive = 1 if layer.dense else layer.kernel ** 2
            limit = np.sqrt(6.0 / (layer.fan_in + receptive * layer.channels_out))
            parts.append(rng.uniform(-limit, limit, layer.fan_in * layer.channels_out))
            if layer.hidden:
                parts.append(np.ones(layer.channels_out))
            parts.append(np.zeros(layer.channels_out))
        return np.concatenate(parts).astype(np.float32)

    def set_params(self, theta: np.ndarray) -> None:
        """Load (a copy of) parameters: shape (num_params,), or (k, num_params) for k policies
        evaluated side by side by ``act``. Computes each vector's VBN statistics on the reference
        batch (one reference pass per vector, each on its own, so a vector's statistics do not
        depend on the others).

        Raises
        ------
        ValueError
            If ``theta`` does not have num_params columns.
        """
        flat = np.array(theta, dtype=np.float32, ndmin=2)
        if flat.ndim != 2 or flat.shape[1] != self.num_params:
            raise ValueError(f"theta must have shape ({self.num_params},) or (k, {self.num_params}), "
                             f"got {np.shape(theta)}")
        self.flat = flat
        k = flat.shape[0]
        # Per layer: weights (k, fan_in, out), and gamma and beta (k, 2, out) or the bias (k, 1, out).
        self._weights, self._extra, offset = [], [], 0
        for layer in self.layers:
            size = layer.fan_in * layer.channels_out
            self._weights.append(flat[:, offset:offset + size].reshape(k, layer.fan_in, layer.channels_out))
            self._extra.append(flat[:, offset + size:offset + layer.num_params].reshape(k, -1, layer.channels_out))
            offset += layer.num_params
        # First convolution: (kh, kw, c, out) = (bh, dh, bw, dw, c, out) -> (bh, bw, c, dh, dw, out).
        first, s = self.layers[0], self.layers[0].stride
        w = self._weights[0].reshape(k, 2, s, 2, s, first.channels_in, first.channels_out)
        self._weights[0] = (w.transpose(0, 1, 3, 5, 2, 4, 6) * np.float32(1 / 255)).reshape(k, first.fan_in, -1)
        hidden = self._compute[:-1]
        self._scale = [np.empty((k, h.channels_out), np.float32) for h in hidden]
        self._shift = [np.empty((k, h.channels_out), np.float32) for h in hidden]
        for i in range(k):
            self._vbn_statistics(i)
        if k != self.k:
            self._allocate(k)

    def _vbn_statistics(self, i: int) -> None:
        """Pass the reference batch through the network with parameter vector ``i`` and store
        each hidden layer's folded VBN scale and shift for it (per channel)."""
        x, n = self._ref_blocks, self._ref_blocks.shape[1]
        for j, (layer, out, cols) in enumerate(zip(self._compute[:-1], self._ref_out, self._ref_cols)):
            rows = layer.size_out ** 2
            for start in range(0, n, REF_CHUNK):
                stop = min(start + REF_CHUNK, n)
                source, dest, matrix = _im2col(layer, x[:, start:stop], cols[:, :(stop - start) * rows])
                if source is not None:
                    np.copyto(dest, source)
                np.matmul(matrix, self._weights[j][i:i + 1], out=out[:, start * rows:stop * rows])
            mean = out.mean(axis=1, dtype=np.float64)[0]
            centered = out[0] - mean.astype(np.float32)
            var = np.square(centered, out=centered).mean(axis=0, dtype=np.float64)
            gamma, beta = self._extra[j][i]
            scale = gamma / np.sqrt(var + VBN_EPS)
            self._scale[j][i] = scale
            self._shift[j][i] = beta - mean * scale
            _vbn_relu(out, self._scale[j][i : i + 1], self._shift[j][i : i + 1])
            x = out.reshape(1, n, layer.size_out, layer.size_out, layer.channels_out)

    def _allocate(self, k: int) -> None:
        """Buffers and im2col views of ``act`` for k parameter vectors, one observation each."""
        self.k = k
        first = self._compute[0]
        self._blocks = np.empty((k, 1, first.size_in, first.size_in, first.channels_in), np.float32)
        self._plan, x = [], self._blocks
        for layer in self._compute:
            cols = None if layer.dense else np.empty((k, layer.size_out ** 2, layer.fan_in), np.float32)
            out = np.empty((k, layer.size_out ** 2, layer.channels_out), np.float32)
            self._plan.append((*_im2col(layer, x, cols), out))
            x = out.reshape(k, 1, layer.size_out, layer.size_out, layer.channels_out)

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Output logits of the loaded policies.

        Parameters
        ----------
        obs : ndarray of uint8, shape (4, 84, 84) for one loaded parameter vector, or
            (k, 4, 84, 84) for k (pixel values, as the env gives them)

        Returns
        -------
        ndarray of float32, shape (n_actions,) or (k, n_actions); row i uses parameter vector i.
        A view of an internal buffer, overwritten by the next call.

        Raises
        ------
        ValueError
            If the shape of ``obs`` does not match the loaded parameters, or its dtype is not uint8.

        Notes
        -----
        Row i's logits are bit-identical whatever k is and whatever the other rows hold: each
        vector has its own matrix products (``matmul`` over a stack), VBN statistics and
        elementwise operations; nothing reduces across rows.
        """
        obs = np.asarray(obs)
        if obs.shape not in ((self.k, *OBS_SHAPE), OBS_SHAPE if self.k == 1 else None):
            single = f" or {OBS_SHAPE}" if self.k == 1 else ""
            raise ValueError(f"obs must have shape ({self.k}, {', '.join(map(str, OBS_SHAPE))}){single} for the "
                             f"{self.k} loaded parameter vector(s), got {obs.shape}")
        if obs.dtype != np.uint8:
            raise ValueError(f"obs must be uint8 pixels, got {obs.dtype}")
        _blocks(obs.reshape(self.k, 1, *OBS_SHAPE), self._blocks, self.layers[0].stride)
        for j, (source, dest, matrix, out) in enumerate(self._plan):
            if source is not None:
                np.copyto(dest, source)
            np.matmul(matrix, self._weights[j], out=out)
            if j < len(self._scale):
                _vbn_relu(out, self._scale[j], self._shift[j])
        out += self._extra[-1]
        return out[:, 0] if obs.ndim == 4 else out[0, 0]

    def act(self, obs: np.ndarray):
        """Greedy actions: argmax of ``logits(obs)``.

        Returns
        -------
        int for obs of shape (4, 84, 84); ndarray of int64, shape (k,), for (k, 4, 84, 84).
        """
        actions = self.logits(obs).argmax(axis=-1)
        return int(actions) if actions.ndim == 0 else actions.astype(np.int64)
