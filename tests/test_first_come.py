"""The reference code's first-come batch (``batch: first_come``) on real MuJoCo runs: not
deterministic by design, so these tests check what does hold: the batch rule, that the update is
made of exactly the counted pairs, learning, and that a lost worker costs only its work in flight."""

import json
import os
import signal
import threading
import time

import numpy as np
import pandas as pd

from esrepro.distributed.cluster import connect
from esrepro.distributed.hosts import Hosts
from esrepro.es.noise import NoiseTable
from esrepro.es.strategy import ask

from conftest import TINY
from test_train import params, train

FIRST_COME = dict(TINY, iterations=4, batch="first_come", pairs_per_iteration=10, min_timesteps_per_iteration=400)


def test_batch_holds_the_counted_pairs_and_timesteps_and_nothing_else(clients, tmp_path, monkeypatch):
    updates = []
    advance = Hosts.advance
    monkeypatch.setattr(Hosts, "advance", lambda self, update: (updates.append(update), advance(self, update)))
    train(clients[2], tmp_path, seed=4, **FIRST_COME)
    progress = pd.read_csv(tmp_path / "progress.csv")
    rows = progress.iloc[1:]
    assert (rows["pairs"] >= FIRST_COME["pairs_per_iteration"]).all()
    assert (progress["timesteps"].diff().iloc[1:] >= FIRST_COME["min_timesteps_per_iteration"]).all()
    assert rows["dropped_episodes"].sum() > 0  # pairs beyond the batch were evaluated and not used
    assert json.loads((tmp_path / "run.json").read_text())["deterministic"] is False

    # Each update is made of the counted pairs only: one noise index per counted pair, each that of
    # a distinct pair of its iteration (drawn from (seed, iteration, pair index)).
    run = params(**FIRST_COME)
    noise = NoiseTable(run["noise_table_size"], run["noise_seed"])
    dim = np.load(tmp_path / "policy.npz")["theta"].size
    for iteration, (update, pairs) in enumerate(zip(updates, rows["pairs"].astype(int)), start=1):
        assert len(update.noise_indices) == len(update.returns) == pairs
        drawn = {ask(4, iteration, j, noise, dim, run["obs_norm_prob"]).noise_index: j for j in range(10 * pairs)}
        assert len({drawn[int(i)] for i in update.noise_indices}) == pairs


def test_first_come_learns_inverted_pendulum(clients, tmp_path):
    train(clients[2], tmp_path, seed=0, timesteps=600_000, target_return=1000, pairs_per_iteration=30,
          eval_episodes=3, noise_table_size=5_000_000, batch="first_come")
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert progress["eval_return_mean"].iloc[0] < 200
    assert progress["eval_return_mean"].max() == 1000


def _kill_a_worker_mid_iteration(client, out, killed, done):
    """SIGKILL one worker process once the run has written two rows (the nanny restarts it)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not done.is_set():
        progress = out / "progress.csv"
        if progress.is_file() and len(progress.read_text().splitlines()) > 3:
            pids = client.run(os.getpid)
            address = sorted(pids)[0]
            os.kill(pids[address], signal.SIGKILL)
            killed.append(address)
            return
        time.sleep(0.01)


def test_a_lost_worker_costs_only_its_work_in_flight(tmp_path):
    """The run goes on without waiting for the lost worker's pairs: the batch fills from the
    others' results, and every iteration still holds the whole batch."""
    params = dict(FIRST_COME, env="Swimmer-v5", iterations=5, max_episode_steps=300, min_timesteps_per_iteration=0)
    with connect(2) as client:
        killed, done = [], threading.Event()
        killer = threading.Thread(target=_kill_a_worker_mid_iteration, args=(client, tmp_path, killed, done))
        killer.start()
        try:
            train(client, tmp_path, **params)
        finally:
            done.set()
            killer.join()
    assert killed, "no worker was killed"
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert list(progress["iteration"]) == list(range(6))
    assert (progress["pairs"].iloc[1:] >= params["pairs_per_iteration"]).all()
