"""Scalar-only communication (paper Algorithm 2) and fault tolerance, on real MuJoCo runs:
results are bit-identical to the broadcast mode, to runs with other worker counts, and to runs
during which a Dask worker process was killed."""

import json
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from esrepro.distributed import replicas
from esrepro.distributed.cluster import connect
from esrepro.errors import RunFailed
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

from test_train import DETERMINISM, outputs, train
from test_train import params as run_params


def test_scalar_mode_is_bit_identical_to_broadcast(clients, tmp_path):
    results = {}
    for mode, workers in (("broadcast", 1), ("scalar", 1), ("scalar", 2)):
        out = tmp_path / f"{mode}{workers}"
        train(clients[workers], out, communication=mode, **DETERMINISM)
        results[mode, workers] = outputs(out)
    theta0, progress0 = results["broadcast", 1]
    assert progress0["obs_count"].iloc[-1] > 1  # replicas had observation statistics to apply
    sent = {key: json.loads((tmp_path / f"{key[0]}{key[1]}" / "run.json").read_text())["communication_bytes"]
            for key in results}
    assert sent["scalar", 1]["to_workers_per_iteration"] < sent["broadcast", 1]["to_workers_per_iteration"]
    for key, (theta, progress) in results.items():
        assert np.array_equal(theta, theta0), key
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


def test_scalar_mode_sends_the_state_once_per_worker(clients, tmp_path):
    lines = []
    params = dict(DETERMINISM, communication="scalar")
    config = RunConfig.from_params("InvertedPendulum-v5", 3, run_params(**params))
    Trainer(config, tmp_path, log=lines.append).run(clients[2])
    sent = [line for line in lines if line.startswith("sent the full state")]
    assert sent == ["sent the full state (version 0) to 2 workers"]  # once per worker, at the start


def _shift_replicas():
    """Change every replica's parameters on this worker in place, as a diverged replica would be."""
    for replica in replicas._REPLICAS.values():
        replica.es.theta += np.float32(1e-3)


def test_a_replica_that_differs_from_the_master_is_caught_by_its_checksum(clients, tmp_path, monkeypatch):
    """The update leaves before the master applies it; every result carries its replica's checksum,
    which the master compares once it has. Replicas changed on every worker after the first
    iteration answer with other checksums: their results are dropped, the workers get the full
    state again, the round runs again, and the run is the same as an undisturbed one."""
    params = dict(DETERMINISM, communication="scalar")
    train(clients[2], tmp_path / "undisturbed", **params)
    step, lines = Trainer.step, []

    def step_then_shift(self):
        step(self)
        if self.iteration == 1:
            self.workers.client.run(_shift_replicas)

    monkeypatch.setattr(Trainer, "step", step_then_shift)
    config = RunConfig.from_params("InvertedPendulum-v5", 3, run_params(**params))
    Trainer(config, tmp_path / "shifted", log=lines.append).run(clients[2])
    sent = [line for line in lines if line.startswith("sent the full state")]
    assert sent == ["sent the full state (version 0) to 2 workers", "sent the full state (version 1) to 2 workers"]
    (theta, progress), (theta0, progress0) = outputs(tmp_path / "shifted"), outputs(tmp_path / "undisturbed")
    assert np.array_equal(theta, theta0)
    pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


# Swimmer never ends an episode early, so every chunk of pairs steps 2 x 500 env steps per pair:
# tasks run long enough to be killed in their middle.
FAULT = dict(DETERMINISM, env="Swimmer-v5", iterations=4, max_episode_steps=500, pairs_per_iteration=8,
             min_timesteps_per_iteration=0)


def _pid_and_running_pairs(dask_worker):
    """(pid, keys of the chunks of pairs this worker is executing now)."""
    return os.getpid(), [ts.key for ts in dask_worker.state.executing if ts.key.startswith("evaluate_pairs")]


def _kill_workers_mid_task(client, out, killed, done):
    """SIGKILL a worker process while it executes a chunk of pairs, each time a new iteration's
    row is written after the first (so up to 3 kills in a 4-iteration run); the nanny restarts it.
    A chunk is killed when it has just started (not executing at the previous poll, 5 ms
    earlier), so that the kill lands in its middle even if this thread is slow to send it."""
    deadline, seen, rows_killed = time.monotonic() + 300, {}, 2
    while time.monotonic() < deadline and not done.is_set():
        progress = out / "progress.csv"
        rows = len(progress.read_text().splitlines()) - 1 if progress.is_file() else 0
        if rows > rows_killed:
            running = client.run(_pid_and_running_pairs)
            for address, (pid, keys) in running.items():
                new = [k for k in keys if k not in seen.get(address, ())]
                if new and seen:
                    os.kill(pid, signal.SIGKILL)
                    killed.append((address, new[0]))
                    rows_killed, seen = rows, {}
                    break
            else:
                seen = {address: set(keys) for address, (_, keys) in running.items()}
        time.sleep(0.005)


def _story(dask_scheduler, key):
    return [(start, finish) for _, start, finish, *_ in dask_scheduler.story(key)]


def _run_with_killed_workers(out, mode):
    """Train with workers killed in the middle of tasks; asserts that a task was lost with its
    worker and computed again (its scheduler story: processing, back to waiting or released, then
    processing again and memory)."""
    with connect(2) as client:
        killed, done = [], threading.Event()
        killer = threading.Thread(target=_kill_workers_mid_task, args=(client, out, killed, done))
        killer.start()
        try:
            train(client, out, communication=mode, **FAULT)
        finally:
            done.set()
            killer.join()
        assert killed, "no worker was killed"
        assert not {a for a, _ in killed} & set(client.scheduler_info(n_workers=-1)["workers"])  # replaced
        stories = [client.run_on_scheduler(_story, key=key) for _, key in killed]
    for story in stories:
        lost = [i for i, (start, finish) in enumerate(story) if start == "processing" and finish != "memory"]
        if lost:
            assert ("processing", "memory") in story[lost[0]:], f"the lost task was not computed again: {story}"
            return
    raise AssertionError(f"no task was lost in flight: {stories}")


def test_killed_worker_does_not_change_the_result(clients, tmp_path):
    train(clients[2], tmp_path / "undisturbed", **FAULT)
    theta0, progress0 = outputs(tmp_path / "undisturbed")
    for mode in ("broadcast", "scalar"):
        _run_with_killed_workers(tmp_path / mode, mode)
        theta, progress = outputs(tmp_path / mode)
        assert np.array_equal(theta, theta0), mode
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


def test_workers_that_stay_stale_end_the_run_with_one_clear_error(clients, tmp_path, monkeypatch):
    """As if sending the full state failed every time: the master's checksum (patched here, in the
    master only) never matches the workers' replicas. The run gives up after a bounded number of
    rounds, instead of looping forever."""
    monkeypatch.setattr(replicas, "checksum", lambda theta: 0)
    with pytest.raises(RunFailed, match=f"after {replicas.MAX_STALE_ROUNDS} attempts"):
        train(clients[2], tmp_path, communication="scalar", **dict(DETERMINISM, iterations=1))
