"""Scalar-only communication (paper Algorithm 2) and fault tolerance, on real MuJoCo runs:
results are bit-identical to the broadcast mode, to runs with other worker counts, and to runs
during which a worker process, or the process holding its host's coordinator, was killed."""

import json
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from esrepro.distributed import host_queue, hosts, replicas
from esrepro.distributed.cluster import connect, worker_addresses
from esrepro.distributed.coordinator import Coordinator
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


def test_scalar_mode_sends_the_state_once_per_host(clients, tmp_path):
    lines = []
    params = dict(DETERMINISM, communication="scalar")
    config = RunConfig.from_params("InvertedPendulum-v5", 3, run_params(**params))
    Trainer(config, tmp_path, log=lines.append).run(clients[2])
    sent = [line for line in lines if line.startswith("sent the full state")]
    assert sent == ["sent the full state (version 0) to host 127.0.0.1"]  # once per host, at the start


def _shift_replicas(dask_worker):
    """Make this worker's coordinators apply their next update with a wrong Adam step, as a
    replica that diverged would."""
    for actor in dask_worker.state.actors.values():
        if isinstance(actor, Coordinator):
            actor.adam_t += 1


def test_a_replica_that_differs_from_the_master_is_caught_by_its_checksum(clients, tmp_path, monkeypatch):
    """The update leaves before the master applies it; every report carries its replica's
    checksum, which the master compares once it has. A host whose replica computes another
    update answers with another checksum: its results are dropped, it gets the full state again,
    its episodes run again, and the run is the same as an undisturbed one."""
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
    assert sent == ["sent the full state (version 0) to host 127.0.0.1",
                    "sent the full state (version 1) to host 127.0.0.1"]
    (theta, progress), (theta0, progress0) = outputs(tmp_path / "shifted"), outputs(tmp_path / "undisturbed")
    assert np.array_equal(theta, theta0)
    pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


# Swimmer never ends an episode early, so every chunk of pairs steps 2 x 500 env steps per pair:
# tasks run long enough to be killed in their middle.
FAULT = dict(DETERMINISM, env="Swimmer-v5", iterations=4, max_episode_steps=500, pairs_per_iteration=8,
             min_timesteps_per_iteration=0)


def _state(dask_worker):
    """(pid, whether it holds the coordinator of a run going on (one of an earlier run may linger),
    the kind of chunk it runs now per run)."""
    serving = any(isinstance(actor, Coordinator) and actor._server is not None and actor._server.is_serving()
                  for actor in dask_worker.state.actors.values())
    return os.getpid(), serving, dict(host_queue.running)


def _kill_mid_chunk(client, out, coordinator: bool, killed, done):
    """SIGKILL the worker process that holds its host's coordinator (``coordinator``) or one that
    does not, while it runs a chunk of episodes, once per new row after the first (so up to 3
    kills in a 4-iteration run); the nanny restarts it."""
    deadline, rows_killed = time.monotonic() + 300, 1
    while time.monotonic() < deadline and not done.is_set():
        progress = out / "progress.csv"
        rows = len(progress.read_text().splitlines()) - 1 if progress.is_file() else 0
        if rows > rows_killed:
            try:
                states = client.run(_state)
            except OSError:  # a worker left meanwhile (CommClosedError): look again
                continue
            for address, (pid, holds, running) in states.items():
                if holds == coordinator and "episodes" in running.values():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(address)
                    rows_killed = rows
                    break
        time.sleep(0.002)


def _run_with_killed_workers(out, mode, coordinator):
    with connect(2) as client:
        killed, done = [], threading.Event()
        killer = threading.Thread(target=_kill_mid_chunk, args=(client, out, coordinator, killed, done))
        killer.start()
        try:
            train(client, out, communication=mode, **FAULT)
        finally:
            done.set()
            killer.join()
        assert killed, "no worker was killed"
        assert not set(killed) & set(worker_addresses(client))  # replaced
    return json.loads((out / "run.json").read_text())["faults"]


@pytest.mark.parametrize("coordinator, fault", [(False, "chunks_rerun"), (True, "hosts_lost")])
def test_killed_process_does_not_change_the_result(clients, tmp_path, coordinator, fault):
    """A worker process killed in the middle of a chunk: its host hands the chunk to another. The
    process holding the host's coordinator killed mid-round: the host is lost, its episodes run
    elsewhere, and a new coordinator takes the host over (with the full state in scalar mode)."""
    train(clients[2], tmp_path / "undisturbed", **FAULT)
    theta0, progress0 = outputs(tmp_path / "undisturbed")
    for mode in ("broadcast", "scalar"):
        faults = _run_with_killed_workers(tmp_path / mode, mode, coordinator)
        assert faults[fault] >= 1, faults
        theta, progress = outputs(tmp_path / mode)
        assert np.array_equal(theta, theta0), mode
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


@pytest.mark.parametrize("mode", ["broadcast", "scalar"])
def test_a_host_taken_for_lost_while_its_workers_live(clients, tmp_path, monkeypatch, mode):
    """The master reads, once, a list of workers without the host (as distributed's cached
    identity gave it): it forgets the host's coordinator while the host's processes wait on it. The
    host gets a new coordinator, its processes leave the old one for it, and the run is the same as
    an undisturbed one (it would wait forever if the processes stayed with the old one)."""
    options = dict(DETERMINISM, communication=mode, checkpoint_every=10)  # no checkpoint: no tell between rounds
    train(clients[2], tmp_path / "undisturbed", **options)
    reads, versions = [], []
    advance = hosts.Hosts.advance
    monkeypatch.setattr(hosts.Hosts, "advance", lambda self, update: (versions.append(None), advance(self, update)))

    def once_without_workers(client):  # at iteration 2's first round: the master's own update still to do
        reads.append(len(versions))
        return [] if reads.count(1) == 1 and reads[-1] == 1 else worker_addresses(client)

    monkeypatch.setattr(hosts, "worker_addresses", once_without_workers)
    lines, ended = [], []
    config = RunConfig.from_params("InvertedPendulum-v5", 3, run_params(**options))

    def run():
        try:
            ended.append(Trainer(config, tmp_path / "out", log=lines.append).run(clients[2]))
        except Exception as e:  # reported below, in the test's thread
            ended.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=(wait_s := 240))
    assert ended, f"the run did not end within {wait_s} s: " + "; ".join(lines[-5:])
    assert not isinstance(ended[0], Exception), ended[0]
    assert "lost host 127.0.0.1 (no worker of it is left); its episodes run elsewhere" in lines
    # scalar mode: the full state once at the start and once to the new coordinator, built after the
    # master's own update of the round (one built before it would be stale, and sent again)
    sent = [line for line in lines if line.startswith("sent the full state")]
    assert len(sent) == (2 if mode == "scalar" else 0), sent
    (theta, progress), (theta0, progress0) = outputs(tmp_path / "out"), outputs(tmp_path / "undisturbed")
    assert np.array_equal(theta, theta0)
    pd.testing.assert_frame_equal(progress, progress0, check_exact=True)


def test_workers_that_stay_stale_end_the_run_with_one_clear_error(clients, tmp_path, monkeypatch):
    """As if sending the full state failed every time: the master's checksum (patched here, in the
    master only) never matches the workers' replicas. The run gives up after a bounded number of
    rounds, instead of looping forever."""
    monkeypatch.setattr(replicas, "checksum", lambda theta: 0)
    with pytest.raises(RunFailed, match=f"after {replicas.MAX_STALE_ROUNDS} attempts"):
        train(clients[2], tmp_path, communication="scalar", **dict(DETERMINISM, iterations=1))
