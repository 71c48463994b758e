"""Fitness shaping by centered ranks (paper section 2.1 and Wierstra et al. 2014; reference
code es_distributed/es.py, compute_centered_ranks)."""

import numpy as np


def centered_ranks(returns: np.ndarray) -> np.ndarray:
    """Replace returns by their ranks scaled to [-0.5, 0.5].

    All values are ranked jointly (for antithetic pairs pass the (n, 2) array of positive and
    negative returns): rank 0 for the smallest, ``N - 1`` for the largest, then
    ``rank / (N - 1) - 0.5``. As in the reference code, ties get distinct ranks in order of
    appearance (C order), so the result is a deterministic function of the input.

    Parameters
    ----------
    returns : ndarray of any shape, N values in all (N >= 2)

    Returns
    -------
    ndarray of float32, the same shape as ``returns``, values in [-0.5, 0.5].

    Raises
    ------
    ValueError
        If fewer than two values are given.
    """
    x = np.asarray(returns)
    if x.size < 2:
        raise ValueError(f"centered ranks need at least 2 returns, got {x.size}")
    ranks = np.empty(x.size, dtype=np.int64)
    ranks[np.argsort(x.ravel(), kind="stable")] = np.arange(x.size)
    y = ranks.reshape(x.shape).astype(np.float32)
    y /= x.size - 1
    y -= 0.5
    return y
