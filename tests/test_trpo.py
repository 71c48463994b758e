"""The TRPO baseline (esrepro/baselines/trpo.py) and its parameter schema: short real runs on
InvertedPendulum-v5 (a few seconds each), checkpoints and resume (a run killed mid-run), and
schema checks."""

import io
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sb3_contrib import TRPO
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from esrepro import checkpoint, config
from esrepro.analysis.runs import PROGRESS_COLUMNS as SHARED_COLUMNS
from esrepro.baselines.common import COUNTERS, eval_seed, final_timesteps
from esrepro.baselines.trpo import PRESETS, grid_presets, resolve_preset, train_trpo
from esrepro.checkpoint import CheckpointDamaged, CheckpointMismatch

from conftest import run_cli

PARAMS_SCHEMA = config.PARAMS_SCHEMAS["trpo"]


def validate_params(params):
    return config.validate_params(params, "trpo")


ENV = "InvertedPendulum-v5"
#: Not a multiple of n_steps * n_envs = 1024: the run must end at 4096.
PARAMS = {"timesteps": 3500, "n_steps": 512, "eval_every_timesteps": 2048, "eval_episodes": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trpo") / "seed3"
    lines = []
    result = train_trpo(ENV, 3, PARAMS, out, threads=1, log=lines.append)
    return out, result, lines


def test_progress_csv(run):
    out, result, lines = run
    progress = pd.read_csv(out / "progress.csv")
    assert tuple(progress.columns[:len(SHARED_COLUMNS)]) == tuple(SHARED_COLUMNS) == (
        "iteration", "timesteps", "episodes", "wall_time_s", "return_mean", "return_std", "return_max",
        "eval_return_mean", "eval_return_std", "eval_length_mean")
    assert progress["iteration"].tolist() == list(range(len(progress)))
    assert progress["timesteps"].tolist() == [0, 2048, 4096]
    assert progress["timesteps"].iloc[-1] == final_timesteps(resolve_preset(ENV, validate_params(PARAMS))) == 4096
    assert progress["episodes"].is_monotonic_increasing and progress["episodes"].iloc[0] == 0
    assert progress["wall_time_s"].is_monotonic_increasing
    assert math.isnan(progress["return_mean"].iloc[0])  # no training episode before training
    assert progress["return_mean"].iloc[1:].notna().all()
    assert progress["eval_return_mean"].between(0, 1000).all()  # InvertedPendulum: +1 per step, 1000 steps
    assert (progress["eval_length_mean"] >= 1).all()
    assert len(lines) == len(progress) and ENV in lines[0]


def test_outputs_and_run_json(run):
    out, result, _ = run
    assert {p.name for p in out.iterdir()} == {"progress.csv", "run.json", "policy.zip", "vecnormalize.pkl",
                                               "checkpoint"}
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["algo"] == "trpo" and saved["env"] == ENV and saved["seed"] == 3
    assert saved["config"] == resolve_preset(ENV, validate_params(PARAMS))  # defaults and preset filled in
    assert saved["config"]["preset"] == "zoo" and saved["config"]["n_envs"] == 2
    assert saved["config"]["hidden"] == [64, 64] and saved["config"]["normalize"] is True
    assert saved["timesteps"] == 4096 and saved["threads"] == 1
    assert saved["final_eval_return_mean"] == pd.read_csv(out / "progress.csv")["eval_return_mean"].iloc[-1]
    assert all(saved["versions"][p] for p in ("torch", "stable-baselines3", "sb3-contrib"))


def test_same_seed_same_run(run, tmp_path):
    """Also with a checkpoint after every policy update: writing checkpoints changes nothing."""
    out, _, _ = run
    train_trpo(ENV, 3, PARAMS | {"checkpoint_every": 1}, tmp_path, threads=1, log=lambda line: None)
    timing = ["wall_time_s", "eval_time_s"]
    first = pd.read_csv(out / "progress.csv").drop(columns=timing)
    second = pd.read_csv(tmp_path / "progress.csv").drop(columns=timing)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


TIMING = ["wall_time_s", "eval_time_s"]
SHAPES = dict.fromkeys(("model", "vecnormalize", "train_returns", "train_lengths"), (None,))


def saved_checkpoint(out):
    """(arrays, scalars, identity) of the checkpoint in ``out``, verified."""
    ident = json.loads((out / "checkpoint" / "checkpoint.json").read_text())["identity"]
    return *checkpoint.load(out, ident, SHAPES, COUNTERS), ident


def policy_state(model):
    """The policy's parameters and its optimizer's state, as flat lists of tensors."""
    opt = model.policy.optimizer.state_dict()
    return [*model.policy.state_dict().values(), *(v for st in opt["state"].values() for v in st.values())]


def assert_same_model(a, b):
    ta, tb = policy_state(a), policy_state(b)
    assert len(ta) == len(tb) and all(torch.equal(x, y) for x, y in zip(ta, tb))


def test_final_checkpoint_is_the_final_state(run):
    """The checkpoint written at the end holds SB3's save files of the final model and
    VecNormalize: loaded, they equal policy.zip and vecnormalize.pkl bit for bit."""
    out, _, _ = run
    arrays, scalars, _ = saved_checkpoint(out)
    assert scalars["timesteps"] == 4096 and scalars["iteration"] == 4  # 4 policy updates of 1024 steps
    assert [r["timesteps"] for r in scalars["rows"]] == [0, 2048, 4096]
    assert scalars["episodes"] == pd.read_csv(out / "progress.csv")["episodes"].iloc[-1]
    model = TRPO.load(io.BytesIO(arrays["model"].tobytes()), device="cpu")
    assert model.num_timesteps == 4096
    assert_same_model(model, TRPO.load(out / "policy.zip", device="cpu"))
    norm, final = pickle.loads(arrays["vecnormalize"].tobytes()), pickle.loads((out / "vecnormalize.pkl").read_bytes())
    for a, b in [(norm.obs_rms, final.obs_rms), (norm.ret_rms, final.ret_rms)]:
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.var, b.var) and a.count == b.count


def test_rerun_of_a_finished_run_changes_nothing(run, tmp_path):
    out, _, _ = run
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    lines = []
    train_trpo(ENV, 3, PARAMS, tmp_path, threads=1, log=lines.append)
    assert lines == [f"resuming {tmp_path} from timesteps 4,096"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "progress.csv"), pd.read_csv(tmp_path / "progress.csv"),
                                  check_exact=True)
    assert_same_model(TRPO.load(out / "policy.zip", device="cpu"), TRPO.load(tmp_path / "policy.zip", device="cpu"))


@pytest.mark.parametrize("change, threads, names", [
    ({"gamma": 0.9}, 1, ["params.gamma: checkpoint 0.99 vs run 0.9"]),
    ({}, 2, ["params.threads: checkpoint 1 vs run 2"]),
    ({"hidden": [32]}, 1, ["num_params", "params.hidden"]),
])
def test_checkpoint_of_other_parameters_is_refused(run, tmp_path, change, threads, names):
    out, _, _ = run
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    before = (tmp_path / "progress.csv").read_bytes()
    with pytest.raises(CheckpointMismatch) as err:
        train_trpo(ENV, 3, PARAMS | change, tmp_path, threads=threads, log=lambda line: None)
    assert all(name in str(err.value) for name in names), str(err.value)
    assert (tmp_path / "progress.csv").read_bytes() == before


def test_more_timesteps_or_other_checkpoint_every_resume(run, tmp_path):
    """The budget and checkpoint_every may change: the run continues from its checkpoint."""
    out, _, _ = run
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    lines = []
    train_trpo(ENV, 3, PARAMS | {"timesteps": 5000, "checkpoint_every": 512}, tmp_path, threads=1, log=lines.append)
    assert lines[0] == f"resuming {tmp_path} from timesteps 4,096" and len(lines) == 2
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert progress["timesteps"].tolist() == [0, 2048, 4096, 5120]
    pd.testing.assert_frame_equal(progress.iloc[:3], pd.read_csv(out / "progress.csv"), check_exact=True)


def test_non_finite_policy_in_checkpoint_is_refused(run, tmp_path):
    """A checkpoint with valid checksums whose policy holds NaN (a run that diverged) is not resumed."""
    out, _, _ = run
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    arrays, scalars, ident = saved_checkpoint(tmp_path)
    model = TRPO.load(io.BytesIO(arrays["model"].tobytes()), device="cpu")
    with torch.no_grad():
        next(model.policy.parameters())[0] = float("nan")
    buffer = io.BytesIO()
    model.save(buffer)
    checkpoint.save(tmp_path, ident, arrays | {"model": np.frombuffer(buffer.getvalue(), np.uint8)}, scalars)
    with pytest.raises(CheckpointDamaged) as err:
        train_trpo(ENV, 3, PARAMS, tmp_path, threads=1, log=lambda line: None)
    assert str(err.value) == (f"damaged checkpoint {tmp_path / 'checkpoint' / 'state-000004.npz'}: array 'model' "
                              f"holds non-finite policy or optimizer values; remove {tmp_path / 'checkpoint'} to "
                              "start over")


def test_damaged_checkpoint_is_refused_by_the_cli(run, tmp_path):
    out, _, _ = run
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    state = tmp_path / "checkpoint" / "state-000004.npz"
    state.write_bytes(state.read_bytes()[:1000])
    res = run_cli("trpo", "--env", ENV, "--seed", 3, "--params", json.dumps(PARAMS), "--out", tmp_path)
    assert res.returncode == 2
    assert res.stderr == (f"esrepro: error: damaged checkpoint {state}: not a complete zip archive (an .npz is one): "
                          f"truncated or another kind of file; remove {tmp_path / 'checkpoint'} to start over\n")


def test_killed_run_continues_from_its_checkpoint(tmp_path):
    """SIGKILL after a progress row newer than the last checkpoint; the rerun continues from the
    checkpoint (not from 0), drops that row and writes it once, and finishes. Resuming is
    deterministic (two reruns of the same checkpoint agree bit for bit), but not bit-identical
    to an uninterrupted run (docs/baselines.md): only what precedes the checkpoint is compared."""
    params = PARAMS | {"timesteps": 4096, "eval_every_timesteps": 1024, "checkpoint_every": 2048, "eval_episodes": 1}
    args = ["trpo", "--env", ENV, "--seed", 3, "--params", json.dumps(params), "--out"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "esrepro", *map(str, args), killed], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    progress = killed / "progress.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if progress.is_file() and "\n3,3072," in progress.read_text():  # the row at 3072 timesteps
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = pd.read_csv(progress)
    assert written["timesteps"].tolist() == [0, 1024, 2048, 3072], "the run was not killed between 3072 and 4096"
    assert json.loads((killed / "checkpoint" / "checkpoint.json").read_text())["timesteps"] == 2048
    assert not (killed / "run.json").exists()
    shutil.copytree(killed, tmp_path / "again")

    for out in (killed, tmp_path / "again"):
        res = run_cli(*args, out)
        assert res.returncode == 0, res.stderr
        assert f"resuming {out} from timesteps 2,048" in res.stdout
    resumed = pd.read_csv(killed / "progress.csv")
    assert resumed["timesteps"].tolist() == [0, 1024, 2048, 3072, 4096]
    assert resumed["iteration"].tolist() == [0, 1, 2, 3, 4]
    assert resumed["episodes"].is_monotonic_increasing and resumed["wall_time_s"].is_monotonic_increasing
    pd.testing.assert_frame_equal(resumed.iloc[:3], written.iloc[:3], check_exact=True)  # restored, wall times too
    assert json.loads((killed / "run.json").read_text())["timesteps"] == 4096
    again = pd.read_csv(tmp_path / "again" / "progress.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING), again.drop(columns=TIMING), check_exact=True)
    assert_same_model(TRPO.load(killed / "policy.zip", device="cpu"),
                      TRPO.load(tmp_path / "again" / "policy.zip", device="cpu"))


def test_eval_seeds_distinct():
    seeds = {eval_seed(s, k, e) for s in range(3) for k in range(3) for e in range(3)}
    assert len(seeds) == 27


def test_schema_fills_defaults():
    data = {"timesteps": 1000}
    validate(data, str(PARAMS_SCHEMA))
    schema = yaml.safe_load(PARAMS_SCHEMA.read_text())
    assert set(data) == set(schema["properties"])
    assert data["timesteps"] == 1000 and data["preset"] == "zoo" and data["n_steps"] is None
    assert data["hidden"] == [64, 64]
    assert validate_params({})["timesteps"] == 5_000_000  # the paper's budget
    for key, sub in schema["properties"].items():
        assert "default" in sub and sub.get("description"), key


#: The settings every TRPO run had before presets existed: the zoo preset must give them unchanged.
ZOO_BEFORE = {"n_envs": 2, "n_steps": 1024, "batch_size": 128, "gamma": 0.99, "gae_lambda": 0.95, "cg_max_steps": 25,
              "cg_damping": 0.1, "n_critic_updates": 20, "learning_rate": 1e-3, "target_kl": 0.01, "normalize": True,
              "hidden": [64, 64]}
#: sb3-contrib's and VecNormalize's own defaults, which the zoo does not set.
SB3_DEFAULTS = {"line_search_shrinking_factor": 0.8, "normalize_reward": True, "clip_obs": 10.0}


def test_presets_cover_exactly_the_keys_left_null():
    """Every key whose default is null is filled by both presets (per-env values with a default), and
    nothing else: a resolved run has no null left and still validates."""
    schema = yaml.safe_load(PARAMS_SCHEMA.read_text())["properties"]
    nullable = {key for key, sub in schema.items() if sub["default"] is None}
    assert nullable == set(PRESETS["zoo"]) == set(PRESETS["paper2017"])
    assert set(PRESETS) == set(schema["preset"]["enum"])
    for preset in PRESETS.values():
        assert all("default" in value for value in preset.values() if isinstance(value, dict))
    for env in ("InvertedPendulum-v5", "Swimmer-v5", "Humanoid-v5"):
        for preset in PRESETS:
            resolved = resolve_preset(env, validate_params({"preset": preset}))
            assert None not in resolved.values() and validate_params(resolved) == resolved


@pytest.mark.parametrize("env", ["InvertedPendulum-v5", "Hopper-v5"])
def test_zoo_preset_is_the_settings_of_before(env):
    assert resolve_preset(env, validate_params({})) == validate_params({}) | ZOO_BEFORE | SB3_DEFAULTS


@pytest.mark.parametrize("env, change", [("HalfCheetah-v5", {"target_kl": 0.04}), ("Swimmer-v5", {"gamma": 0.9999})])
def test_zoo_preset_has_the_zoo_env_entries(env, change):
    assert resolve_preset(env, validate_params({})) == validate_params({}) | ZOO_BEFORE | SB3_DEFAULTS | change


@pytest.mark.parametrize("env, steps", [("InvertedPendulum-v5", 25000), ("InvertedDoublePendulum-v5", 15000),
                                        ("HalfCheetah-v5", 25000), ("Hopper-v5", 25000), ("Swimmer-v5", 25000),
                                        ("Walker2d-v5", 25000)])
def test_paper2017_preset(env, steps):
    """The reconstruction of the paper's TRPO (docs/paper.md): per-env batch, the rest shared."""
    resolved = resolve_preset(env, validate_params({"preset": "paper2017"}))
    assert resolved["n_steps"] * resolved["n_envs"] == steps
    assert {k: resolved[k] for k in ("target_kl", "cg_max_steps", "cg_damping", "gamma", "gae_lambda",
                                     "line_search_shrinking_factor", "normalize", "normalize_reward", "clip_obs")} == {
        "target_kl": 0.01, "cg_max_steps": 10, "cg_damping": 0.1, "gamma": 0.995, "gae_lambda": 0.97,
        "line_search_shrinking_factor": 0.5, "normalize": True, "normalize_reward": False, "clip_obs": 5.0}


def test_explicit_keys_override_the_preset():
    params = validate_params({"preset": "paper2017", "n_steps": 128, "gamma": 0.9})
    resolved = resolve_preset("Swimmer-v5", params)
    assert resolved["n_steps"] == 128 and resolved["gamma"] == 0.9 and resolved["gae_lambda"] == 0.97


def test_paper2017_run_uses_its_settings(tmp_path):
    """A real two-update run: run.json records the preset and its values; the model and the
    normalization are built with them (rewards not normalized, observations clipped at 5)."""
    params = {"preset": "paper2017", "timesteps": 512, "n_steps": 256, "eval_every_timesteps": 256, "eval_episodes": 1}
    result = train_trpo(ENV, 0, params, tmp_path, threads=1, log=lambda line: None)
    assert result["config"]["preset"] == "paper2017" and result["timesteps"] == 512
    assert result["config"]["n_envs"] == 1 and result["config"]["n_steps"] == 256  # explicit key kept
    model = TRPO.load(tmp_path / "policy.zip", device="cpu")
    assert (model.gamma, model.gae_lambda, model.target_kl, model.cg_max_steps, model.n_critic_updates,
            model.line_search_shrinking_factor, model.batch_size) == (0.995, 0.97, 0.01, 10, 5, 0.5, 64)
    norm = pickle.loads((tmp_path / "vecnormalize.pkl").read_bytes())
    assert norm.norm_obs and not norm.norm_reward and norm.clip_obs == 5.0


def test_the_grid_names_the_presets_of_the_run_schema():
    grid_schema = yaml.safe_load(config.SCHEMA.read_text())["$defs"]["trpo"]["properties"]["presets"]
    assert grid_schema["items"]["enum"] == yaml.safe_load(PARAMS_SCHEMA.read_text())["properties"]["preset"]["enum"]


@pytest.mark.parametrize("section, presets", [
    ({"envs": {"Swimmer-v5": None}}, {"Swimmer-v5": ["zoo"]}),  # the schema's default
    ({"params": {"preset": "paper2017"}, "envs": {"Swimmer-v5": None, "Hopper-v5": {"preset": "zoo"}}},
     {"Swimmer-v5": ["paper2017"], "Hopper-v5": ["zoo"]}),
    ({"presets": ["paper2017", "zoo"], "envs": {"Swimmer-v5": None}}, {"Swimmer-v5": ["paper2017", "zoo"]})])
def test_grid_presets(section, presets):
    workflow = config.validate_config({"trpo": section})
    assert {env: grid_presets(workflow, env) for env in section["envs"]} == presets


def test_cli_writes_a_run_of_the_config_preset_to_its_folder(tmp_path):
    """`trpo --config` with one preset in trpo.presets: the run uses it and goes to the workflow's
    folder, <results_dir>/trpo/<preset>/<env>/seed<s>."""
    grid = {"results_dir": "out", "trpo": {"presets": ["paper2017"], "envs": {ENV: {"n_steps": 128}},
                                           "params": {"timesteps": 128, "eval_episodes": 1}}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    res = run_cli("trpo", "--env", ENV, "--seed", 0, "--config", "grid.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    saved = json.loads((tmp_path / "out" / "trpo" / "paper2017" / ENV / "seed0" / "run.json").read_text())
    assert saved["config"]["preset"] == "paper2017" and saved["config"]["n_steps"] == 128


@pytest.mark.parametrize("bad", [{"n_epochs": 10}, {"timesteps": -5}, {"timesteps": 0}, {"hidden": []}])
def test_schema_rejects(bad):
    with pytest.raises(WorkflowError):
        validate(dict(bad), str(PARAMS_SCHEMA))
    with pytest.raises(ValueError, match=next(iter(bad))):
        validate_params(bad)
