"""The replica update shared by a host's worker processes (esrepro.distributed.host_update): the
same bits as one process's whole update, whoever computes which slice, when a slice's process died,
and when waiting gives up."""

import os
import subprocess
from pathlib import Path

import numpy as np

from esrepro.distributed import host_update
from esrepro.distributed.host_update import SLICE, _Table, shared_step
from esrepro.es.noise import NoiseTable
from esrepro.es.strategy import ESState, OpenES

SIZE, SEED, DIM = 1_000_000, 7, 3 * SLICE + 100  # four slices, the last one short


def _inputs():
    """A state after 3 updates (nonzero Adam moments) and one iteration's pairs."""
    rng = np.random.default_rng(0)
    state = ESState(rng.standard_normal(DIM, dtype=np.float32), rng.random(DIM, dtype=np.float32) - 0.5,
                    rng.random(DIM, dtype=np.float32), 3)
    return state, rng.integers(0, SIZE - DIM, 40), rng.normal(size=(40, 2))


def _stepped(state, indices, returns, path=None) -> ESState:
    """The state after the update: alone (``OpenES.step``) or shared through ``path``."""
    es = OpenES.from_state(state, NoiseTable(SIZE, SEED), 0.01, 0.005)
    if path is None:
        es.step(indices, returns)
    else:
        shared_step(es, indices, returns, Path(path))
    return es.state()


def assert_same_state(a: ESState, b: ESState):
    assert a.adam_t == b.adam_t
    for x, y in ((a.theta, b.theta), (a.adam_m, b.adam_m), (a.adam_v, b.adam_v)):
        assert x.dtype == y.dtype == np.float32 and np.array_equal(x, y)


def test_two_worker_processes_share_the_update_bit_for_bit(clients, tmp_path):
    state, indices, returns = _inputs()
    alone = _stepped(state, indices, returns)
    assert not np.array_equal(alone.theta, state.theta)
    path = tmp_path / "update.bin"
    shared = clients[2].run(_stepped, state, indices, returns, str(path))  # both workers at once
    assert len(shared) == 2
    for result in shared.values():
        assert_same_state(result, alone)
    assert (np.memmap(path, dtype=np.int64, mode="r", shape=(4,)) == -1).all()  # every slice done


def test_a_slice_whose_process_died_is_computed_again(tmp_path):
    state, indices, returns = _inputs()
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "update.bin"
    table = _Table(path, 4, DIM)
    table.states[1] = dead.pid  # claimed, never finished
    table.close()
    assert_same_state(_stepped(state, indices, returns, path), _stepped(state, indices, returns))


def test_a_slice_that_never_finishes_ends_the_wait(tmp_path, monkeypatch):
    """A live process (here the test's parent) holds a slice: after WAIT_S the update is computed
    alone, with the same result."""
    monkeypatch.setattr(host_update, "WAIT_S", 0.2)
    state, indices, returns = _inputs()
    path = tmp_path / "update.bin"
    table = _Table(path, 4, DIM)
    table.states[2] = os.getppid()
    table.close()
    assert_same_state(_stepped(state, indices, returns, path), _stepped(state, indices, returns))
