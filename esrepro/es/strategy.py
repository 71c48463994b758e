"""OpenAI-ES with antithetic pairs on a shared noise table (paper Algorithms 1 and 2; reference
code es_distributed/es.py, run_master and run_worker). In the style of evosax's ``open_es.py``:
``ask`` says what a pair evaluates, ``tell`` turns the pairs' returns into new parameters.

Determinism: a pair's noise index, environment seed, observation-recording draws and action-noise
streams are a function of (run seed, iteration, pair index) alone, so any worker can evaluate any
pair and the result does not depend on the number of workers or the chunking.
"""

from dataclasses import dataclass

import numpy as np
from numba import njit

from esrepro.es.adam import Adam
from esrepro.es.noise import NoiseTable
from esrepro.es.ranks import centered_ranks

#: Stream tags that keep training pairs and evaluation episodes on separate seeds.
TRAIN, EVAL = 0, 1


@njit(cache=True, nogil=True)
def _weighted_sum(noise, noise_indices, weights, dim):  # pragma: no cover (compiled)
    """sum_i weights[i] * noise[noise_indices[i] : noise_indices[i] + dim] in float32, pair by pair in
    pair order: each pair's term is rounded to float32 and then added, as numpy's ``multiply`` into
    a buffer and ``+=`` would (the same bits), without numpy's two calls per pair."""
    g = np.zeros(dim, dtype=np.float32)
    for i in range(noise_indices.size):
        eps, w = noise[noise_indices[i] : noise_indices[i] + dim], weights[i]
        for j in range(dim):
            term = eps[j] * w
            g[j] += term
    return g


@dataclass
class Pair:
    """What one antithetic pair evaluates: ``theta + sigma * eps`` and ``theta - sigma * eps``.

    Attributes
    ----------
    noise_index : int
        Start of ``eps`` in the noise table.
    env_seed : int
        Seed of ``env.reset`` for both members (common random numbers for the pair).
    record_obs : tuple of bool
        Whether the positive / negative rollout records observation statistics.
    action_rngs : tuple of numpy.random.Generator
        Action-noise streams of the positive / negative rollout.
    """

    noise_index: int
    env_seed: int
    record_obs: tuple[bool, bool]
    action_rngs: tuple[np.random.Generator, np.random.Generator]


def ask(run_seed: int, iteration: int, pair_index: int, noise: NoiseTable, dim: int,
        obs_norm_prob: float) -> Pair:
    """The pair ``pair_index`` of ``iteration``, drawn from a generator seeded by
    (run_seed, iteration, pair_index).

    Parameters
    ----------
    obs_norm_prob : float
        Probability that a rollout records observation statistics (reference: 0.01).
    """
    seq = np.random.SeedSequence([run_seed, iteration, pair_index, TRAIN])
    rng = np.random.default_rng(seq)
    noise_index = noise.sample_index(rng, dim)
    env_seed = int(rng.integers(2**31))
    record = rng.random(2) < obs_norm_prob
    pos, neg = (np.random.default_rng(s) for s in seq.spawn(2))
    return Pair(noise_index, env_seed, (bool(record[0]), bool(record[1])), (pos, neg))


def eval_env_seed(run_seed: int, iteration: int, episode: int) -> int:
    """Environment seed of evaluation ``episode`` after ``iteration``."""
    rng = np.random.default_rng([run_seed, iteration, episode, EVAL])
    return int(rng.integers(2**31))


@dataclass
class ESState:
    """Everything ``OpenES.tell`` changes: the parameters and Adam's state (checkpointed, and sent
    to worker replicas in the scalar communication mode).

    Attributes
    ----------
    theta, adam_m, adam_v : ndarray of float32, shape (dim,)
    adam_t : int
        Adam updates done.
    """

    theta: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray
    adam_t: int


class OpenES:
    """Parameter state and update rule of OpenAI-ES.

    Parameters
    ----------
    theta : ndarray of float32, shape (dim,)
        Initial parameters (copied).
    noise : NoiseTable
    stepsize : float
        Adam step size (paper: 0.01).
    l2coeff : float
        L2 weight decay added to the descent gradient before Adam (reference: 0.005).

    Attributes
    ----------
    theta : ndarray of float32, shape (dim,)
    optimizer : Adam
    """

    def __init__(self, theta: np.ndarray, noise: NoiseTable, stepsize: float = 0.01,
                 l2coeff: float = 0.005):
        self.theta = np.array(theta, dtype=np.float32)
        self.noise = noise
        self.l2coeff = l2coeff
        self.optimizer = Adam(self.theta.size, stepsize)

    def state(self) -> ESState:
        """A copy of the state."""
        opt = self.optimizer
        return ESState(self.theta.copy(), opt.m.copy(), opt.v.copy(), opt.t)

    @classmethod
    def from_state(cls, state: ESState, noise: NoiseTable, stepsize: float, l2coeff: float) -> "OpenES":
        """An ``OpenES`` holding (a copy of) ``state``; the inverse of ``state()``."""
        es = cls(state.theta, noise, stepsize, l2coeff)
        es.optimizer.m, es.optimizer.v = state.adam_m.copy(), state.adam_v.copy()
        es.optimizer.t = state.adam_t
        return es

    def gradient(self, noise_indices: np.ndarray, returns: np.ndarray) -> np.ndarray:
        """The reference code's gradient estimate of the expected return.

        ``g = sum_i (R+_i - R-_i) eps_i / (2n)`` with R the centered ranks of all 2n returns
        jointly. It is not divided by sigma (the reference folds sigma into the step size;
        Adam is scale invariant). The reference ``batched_weighted_sum`` computes it as BLAS
        products; here it is summed pair by pair in pair order with elementwise float32 operations
        (compiled: ``_weighted_sum``), whose rounding does not depend on the BLAS build, its thread
        count or the CPU. So the result is bit-identical on every machine, which the scalar
        communication mode relies on (each worker replica repeats this update).

        Parameters
        ----------
        noise_indices : ndarray of int, shape (n,)
        returns : ndarray of float, shape (n, 2); column 0 for +eps, column 1 for -eps

        Returns
        -------
        ndarray of float32, shape (dim,)
        """
        shaped = centered_ranks(returns)
        weights = (shaped[:, 0] - shaped[:, 1]).astype(np.float32)
        dim = self.theta.size
        indices = np.asarray(noise_indices, dtype=np.int64)
        if indices.size:  # the table's own check on the extremes: IndexError for a slice outside it
            self.noise.get(int(indices.min()), dim)
            self.noise.get(int(indices.max()), dim)
        g = _weighted_sum(np.asarray(self.noise.noise), indices, weights, dim)
        return g / returns.size

    def tell(self, noise_indices: np.ndarray, returns: np.ndarray) -> float:
        """Update ``theta`` from one iteration's pairs (``step``).

        Returns
        -------
        float
            The update ratio ``|step| / |theta|`` (a training diagnostic of the reference code).
        """
        theta = self.theta
        return float(np.linalg.norm(self.step(noise_indices, returns)) / np.linalg.norm(theta))

    def step(self, noise_indices: np.ndarray, returns: np.ndarray) -> np.ndarray:
        """Update ``theta`` from one iteration's pairs: Adam steps on ``-g + l2coeff * theta``
        (reference run_master). Returns the step, float32 of shape (dim,).

        Every operation is elementwise over the parameters, so an ``OpenES`` holding a slice
        ``lo:hi`` of the parameters and Adam's moments, told the noise indices plus ``lo``, computes
        the same bits as elements ``lo:hi`` of the whole update (``distributed.host_state``)."""
        g = self.gradient(noise_indices, returns)
        step = self.optimizer.step(-g + self.l2coeff * self.theta)
        self.theta = self.theta + step
        return step
