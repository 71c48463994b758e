"""What brings a host's replica of a run to the next version of the parameters: the run's
``communication`` setting (paper Algorithm 2; docs/design.md, "Distribution").

- ``broadcast``: the parameters and observation statistics reach every host once per version, as
  in the reference code;
- ``scalar``: every host keeps a replica of the run's state (parameters, Adam, observation
  statistics) and brings it up to date itself from the last ``Update``: its noise indices,
  returns and observation sums, a few KB. Every report carries the checksum of the replica's
  parameters; the master, which applies the same update to its own state while the hosts run the
  round, compares. A host without a current replica, or whose checksum differs, gets the
  ``FullState`` and its episodes run again.

A version is the number of weight updates the parameters have had (= the iteration that produced
them).
"""

import zlib
from dataclasses import dataclass

import numpy as np

from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import ESState, OpenES

#: Rounds of stale answers in a row (each followed by sending the full state) before a run gives up.
MAX_STALE_ROUNDS = 5


@dataclass
class Update:
    """One iteration's update, as scalars: what turns version v - 1 into version v.

    Attributes
    ----------
    noise_indices : ndarray of int64, shape (n,)
    returns : ndarray of float64, shape (n, 2)
        Raw returns; the centered ranks are computed from them by ``OpenES.tell``.
    obs : list of (obs_sum, obs_sumsq, count)
        Observation sums of the recorded rollouts, in pair order.
    """

    noise_indices: np.ndarray
    returns: np.ndarray
    obs: list


def apply_update(es: OpenES, obstat: ObsStats | None, update: Update) -> float:
    """Apply ``update`` to ``es`` and ``obstat`` (the master's state): the same operations in the
    same order as every host's replica (``coordinator``, ``host_state``), so all hold bit-identical
    state. Returns the update ratio."""
    ratio = es.tell(update.noise_indices, update.returns)
    for s, ss, c in update.obs:
        obstat.increment(s, ss, c)
    return ratio


def checksum(theta: np.ndarray) -> int:
    """CRC32 of the parameter bytes: a replica must match the master's exactly."""
    return zlib.crc32(np.ascontiguousarray(theta).view(np.uint8))


@dataclass
class FullState:
    """The master's whole state at ``version``, sent to a host without a current replica."""

    version: int
    es: ESState
    obstat: tuple | None  # (obs_sum, obs_sumsq, count), None for Atari
    stepsize: float
    l2coeff: float
