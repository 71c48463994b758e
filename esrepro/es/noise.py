"""Shared noise table (paper section 2.1, Algorithm 2; reference code es_distributed/es.py,
class SharedNoiseTable).

Every worker builds the same block of Gaussian noise from a fixed seed, so a perturbation
travels as one integer: the start index of a contiguous slice.
"""

import numpy as np

#: Size of the reference code's table: 250,000,000 float32 values (1 GB), seed 123.
PAPER_SIZE = 250_000_000
PAPER_SEED = 123


class NoiseTable:
    """A seeded block of standard-normal float32 noise.

    Parameters
    ----------
    size : int
        Number of float32 values (memory: 4 * size bytes). The paper's table is
        ``PAPER_SIZE``; the default config uses 25,000,000 (100 MB) to fit a laptop worker.
    seed : int
        Seed of the generator that fills the table.

    Notes
    -----
    Deviation from the reference code: values come from ``numpy.random.default_rng(seed)
    .standard_normal(size, dtype=float32)`` rather than ``RandomState(seed).randn(size)``
    cast to float32: the same distribution, generated without a float64 temporary
    (which would need 8 GB at the paper's size).

    Raises
    ------
    ValueError
        If ``size`` is not positive.
    """

    def __init__(self, size: int, seed: int):
        if size <= 0:
            raise ValueError(f"noise table size must be positive, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.noise = np.random.default_rng(self.seed).standard_normal(self.size, dtype=np.float32)
        self.noise.flags.writeable = False

    def get(self, index: int, dim: int) -> np.ndarray:
        """The perturbation starting at ``index``: a read-only float32 view of shape (dim,)."""
        if not 0 <= index <= self.size - dim:
            raise IndexError(f"noise slice [{index}, {index + dim}) outside table of size {self.size}")
        return self.noise[index : index + dim]

    def sample_index(self, rng: np.random.Generator, dim: int) -> int:
        """A uniformly random start index whose slice of length ``dim`` fits in the table.

        Raises
        ------
        ValueError
            If the table is smaller than ``dim``.
        """
        if dim > self.size:
            raise ValueError(f"noise table of size {self.size} is smaller than the {dim} parameters")
        return int(rng.integers(0, self.size - dim + 1))
