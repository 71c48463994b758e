"""Scalar-only communication (paper Algorithm 2) and fault tolerance, on real MuJoCo runs:
results are bit-identical to the broadcast mode, to runs with other worker counts, and to runs
during which a Dask worker process was killed."""

import os
import signal
import threading
import time

import numpy as np
import pandas as pd

from test_train import DETERMINISM, outputs, train
from esrepro.distributed.cluster import connect


def test_scalar_mode_is_bit_identical_to_broadcast(clients, tmp_path):
    results = {}
    for mode, workers in (("broadcast", 1), ("scalar", 1), ("scalar", 2)):
        out = tmp_path / f"{mode}{workers}"
        train(clients[workers], out, communication=mode, **DETERMINISM)
        results[mode, workers] = outputs(out)
    theta0, progress0 = results["broadcast", 1]
    assert progress0["obs_count"].iloc[-1] > 1  # replicas had observation statistics to apply
    for key, (theta, progress) in results.items():
        assert np.array_equal(theta, theta0), key
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


def test_scalar_mode_sends_the_state_once_per_worker(clients, tmp_path):
    lines = []
    params = dict(DETERMINISM, communication="scalar")
    from test_train import params as run_params
    from esrepro.run_config import RunConfig
    from esrepro.train import Trainer
    config = RunConfig.from_params("InvertedPendulum-v5", 3, run_params(**params))
    Trainer(config, tmp_path, log=lines.append).run(clients[2])
    sent = [line for line in lines if line.startswith("sent the full state")]
    assert len(sent) == 2 and all("(version 0)" in line for line in sent)  # once per worker, at the start


# Long enough episodes that tasks are running when a worker is killed.
FAULT = dict(DETERMINISM, iterations=4, max_episode_steps=400, pairs_per_iteration=8, min_timesteps_per_iteration=0)


def _kill_one_worker_when_running(client, out, killed):
    """SIGKILL one worker process once the first iteration's row is written (the run is then
    in its second iteration); its nanny restarts it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = out / "progress.csv"
        if progress.is_file() and len(progress.read_text().splitlines()) >= 3:
            pids = client.run(os.getpid)
            time.sleep(0.05)
            os.kill(sorted(pids.values())[0], signal.SIGKILL)
            killed.append(pids)
            return
        time.sleep(0.01)


def _run_with_a_killed_worker(out, mode):
    with connect(2) as client:
        killed = []
        killer = threading.Thread(target=_kill_one_worker_when_running, args=(client, out, killed))
        killer.start()
        train(client, out, communication=mode, **FAULT)
        killer.join()
        after = client.run(os.getpid)
    assert killed, "no worker was killed"
    assert set(after.values()) != set(killed[0].values())  # a worker process was replaced


def test_killed_worker_does_not_change_the_result(clients, tmp_path):
    train(clients[2], tmp_path / "undisturbed", **FAULT)
    theta0, progress0 = outputs(tmp_path / "undisturbed")
    for mode in ("broadcast", "scalar"):
        _run_with_a_killed_worker(tmp_path / mode, mode)
        theta, progress = outputs(tmp_path / mode)
        assert np.array_equal(theta, theta0), mode
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)
