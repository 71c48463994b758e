"""Observation normalization statistics (reference code es_distributed/es.py RunningStat and
policies.py; not described in the paper, which only says observations are normalized).

A training rollout is recorded with probability ``obs_norm_prob`` (reference: 0.01); the master
adds the recorded sums to these statistics after each iteration, so the policy's
normalization (``policies.mlp.MLPPolicy.act``) is fixed within an iteration.
"""

import numpy as np

#: Initial count and per-dimension sum of squares (reference: eps=1e-2).
INITIAL_COUNT = 1e-2
#: Variance floor: std >= sqrt(1e-2) = 0.1 (reference RunningStat.std).
VARIANCE_FLOOR = 1e-2


class ObsStats:
    """Running sums of observations.

    Parameters
    ----------
    dim : int
        Observation dimension.

    Attributes
    ----------
    sum, sumsq : ndarray of float64, shape (dim,)
        Sum and sum of squares of the recorded observations (sumsq starts at 0.01).
    count : float
        Number of recorded observations plus 0.01.

    Notes
    -----
    The reference code keeps float32 sums; float64 here avoids precision loss over long runs.
    """

    def __init__(self, dim: int):
        self.sum = np.zeros(dim, dtype=np.float64)
        self.sumsq = np.full(dim, INITIAL_COUNT, dtype=np.float64)
        self.count = INITIAL_COUNT

    @classmethod
    def from_sums(cls, obs_sum: np.ndarray, obs_sumsq: np.ndarray, count: float) -> "ObsStats":
        """Statistics holding (copies of) saved sums: the inverse of reading ``sum``, ``sumsq``,
        ``count``."""
        stats = cls(obs_sum.size)
        stats.sum, stats.sumsq, stats.count = obs_sum.astype(np.float64), obs_sumsq.astype(np.float64), float(count)
        return stats

    def increment(self, obs_sum: np.ndarray, obs_sumsq: np.ndarray, count: float) -> None:
        """Add the sums of ``count`` recorded observations."""
        self.sum += obs_sum
        self.sumsq += obs_sumsq
        self.count += count

    @property
    def mean(self) -> np.ndarray:
        """float32 array, shape (dim,)."""
        return (self.sum / self.count).astype(np.float32)

    @property
    def std(self) -> np.ndarray:
        """float32 array, shape (dim,): sqrt(max(E[o^2] - E[o]^2, 1e-2))."""
        mean = self.sum / self.count
        return np.sqrt(np.maximum(self.sumsq / self.count - mean ** 2, VARIANCE_FLOOR)).astype(np.float32)

