"""ES training on real Pong: the determinism contract holds for the CNN policy too (worker count,
chunking and communication mode do not change a run), and the run writes its Atari outputs."""

import json

import numpy as np
import pandas as pd

from esrepro.config import run_params
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

from test_train import outputs

# Episodes long enough for points to be scored (300 agent steps = 600 frames: the returns of a
# population differ, so the ranks and the update depend on what each worker evaluated), a tiny VBN
# batch, a table just above the CNN's 1.7M parameters.
PONG = {"iterations": 2, "pairs_per_iteration": 3, "eval_episodes": 2, "max_episode_steps": 300,
        "vbn_batch_size": 4, "noise_table_size": 2_000_000, "frame_skip": 2}


def train(client, out, chunk_pairs=None, **overrides):
    params = run_params(None, "Pong", section="atari", overrides=PONG | overrides)
    return Trainer(RunConfig.from_params("ALE/Pong-v5", 5, params), out, log=lambda _: None).run(client, chunk_pairs)


def test_pong_run_is_the_same_with_any_workers_chunking_and_communication(clients, tmp_path):
    runs = {"1 worker": (clients[1], None, "broadcast"), "2 workers, 1 pair per task": (clients[2], 1, "broadcast"),
            "2 workers, scalar": (clients[2], None, "scalar")}
    results = {}
    for name, (client, chunk, mode) in runs.items():
        out = tmp_path / name.replace(" ", "_").replace(",", "")
        summary = train(client, out, chunk, communication=mode)
        results[name] = outputs(out)
    theta0, progress0 = results["1 worker"]
    assert summary["num_params"] == theta0.size > 1_600_000  # the large CNN
    assert (progress0["pairs"].iloc[1:] == 3).all() and (progress0["length_mean"].iloc[1:] == 300).all()
    # distinct returns: the ranks, hence the update, depend on what each worker evaluated
    assert (progress0["return_max"].iloc[1:] > progress0["return_min"].iloc[1:]).any()
    for name, (theta, progress) in results.items():
        assert np.array_equal(theta, theta0), name
        pd.testing.assert_frame_equal(progress, progress0, check_exact=True)
    with np.load(tmp_path / "1_worker" / "policy.npz", allow_pickle=False) as policy:
        assert policy["reference_batch"].shape == (4, 4, 84, 84) and int(policy["frame_skip"]) == 2
    saved = json.loads((tmp_path / "1_worker" / "run.json").read_text())
    assert saved["env"] == "ALE/Pong-v5" and saved["config"]["frame_skip"] == 2
    assert "hidden" not in saved["config"]  # MuJoCo-only parameters are not part of an Atari run
