"""Checkpoints verified on read (esrepro/checkpoint.py): one test per kind of damage, each asserting
the exact one-line error (the file, what is wrong, how to start over), and a damaged checkpoint
refused by the command line before any work."""

import hashlib
import json
import math
import zipfile

import numpy as np
import pytest

from esrepro import checkpoint
from esrepro.checkpoint import CheckpointDamaged, CheckpointMismatch
from esrepro.errors import InputError

from conftest import run_cli

IDENT = checkpoint.identity("InvertedPendulum-v5", 0, 5, {"sigma": 0.02, "timesteps": 100})
SHAPES = {"theta": (5,), "adam_m": (5,)}
COUNTERS = ("timesteps", "wall_time_s")
THETA = np.arange(5, dtype=np.float32) / 3
ADAM_M = np.full(5, 0.5, dtype=np.float32)
SCALARS = {"iteration": 3, "timesteps": 120, "wall_time_s": 1.5,
           "rows": [{"iteration": 0, "return_mean": math.nan}, {"iteration": 3, "return_mean": 2.0}]}


@pytest.fixture
def ckpt(tmp_path):
    """(run directory, checkpoint.json, state file) of a checkpoint of THETA and ADAM_M."""
    checkpoint.save(tmp_path, IDENT, {"theta": THETA, "adam_m": ADAM_M}, SCALARS)
    folder = tmp_path / "checkpoint"
    return tmp_path, folder / "checkpoint.json", folder / "state-000003.npz"


def load(run_dir, shapes=SHAPES):
    return checkpoint.load(run_dir, IDENT, shapes=shapes, counters=COUNTERS)


def refused(run_dir, file, what, shapes=SHAPES):
    """Assert that loading raises CheckpointDamaged with exactly this message."""
    with pytest.raises(CheckpointDamaged) as err:
        load(run_dir, shapes)
    assert str(err.value) == f"damaged checkpoint {file}: {what}; remove {run_dir / 'checkpoint'} to start over"


def edit_json(path, change):
    saved = json.loads(path.read_text())
    change(saved)
    path.write_text(json.dumps(saved))


def test_round_trip(ckpt):
    run_dir, path, state = ckpt
    arrays, scalars = load(run_dir)
    assert set(arrays) == {"theta", "adam_m"}
    assert np.array_equal(arrays["theta"], THETA) and arrays["theta"].dtype == np.float32
    assert np.array_equal(arrays["adam_m"], ADAM_M)
    assert scalars["timesteps"] == 120 and scalars["iteration"] == 3 and scalars["wall_time_s"] == 1.5
    assert math.isnan(scalars["rows"][0]["return_mean"]) and scalars["rows"][1] == SCALARS["rows"][1]
    record = json.loads(path.read_text())["checksums"]["theta"]
    assert record == {"sha256": hashlib.sha256(THETA.tobytes()).hexdigest(), "shape": [5], "dtype": "<f4"}


def test_no_checkpoint(tmp_path):
    assert load(tmp_path) is None


def test_a_new_checkpoint_replaces_the_old_state_file(ckpt):
    run_dir, _, state = ckpt
    checkpoint.save(run_dir, IDENT, {"theta": THETA + 1, "adam_m": ADAM_M}, SCALARS | {"iteration": 4})
    assert sorted(p.name for p in state.parent.iterdir()) == ["checkpoint.json", "state-000004.npz"]
    assert np.array_equal(load(run_dir)[0]["theta"], THETA + 1)


def test_damaged_is_an_input_error():
    assert issubclass(CheckpointDamaged, InputError) and issubclass(CheckpointMismatch, InputError)


# -- checkpoint.json -------------------------------------------------------------------------
def test_empty_json(ckpt):
    run_dir, path, _ = ckpt
    path.write_text("")
    refused(run_dir, path, "empty file")


def test_truncated_json(ckpt):
    run_dir, path, _ = ckpt
    text = path.read_text()[:200]
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(text)
    refused(run_dir, path, f"not valid UTF-8 JSON ({err.value})")


def test_binary_json(ckpt):
    run_dir, path, _ = ckpt
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UnicodeDecodeError) as err:
        path.read_bytes().decode("utf-8")
    refused(run_dir, path, f"not valid UTF-8 JSON ({err.value})")


@pytest.mark.parametrize("text, kind", [("[1, 2]", "array"), ('"x"', "string"), ("3.5", "number"), ("null", "null"),
                                        ("true", "boolean")])
def test_json_not_an_object(ckpt, text, kind):
    run_dir, path, _ = ckpt
    path.write_text(text)
    refused(run_dir, path, f"holds a JSON {kind}, not an object")


@pytest.mark.parametrize("key", ["identity", "state_file", "rows", "iteration", "checksums", "timesteps",
                                 "wall_time_s"])
def test_json_missing_key(ckpt, key):
    run_dir, path, _ = ckpt
    edit_json(path, lambda saved: saved.pop(key))
    refused(run_dir, path, f"missing key(s) '{key}'")


@pytest.mark.parametrize("key, value, what", [
    ("iteration", "3", "'iteration' is '3', not a count"),
    ("iteration", -1, "'iteration' is -1, not a count"),
    ("timesteps", math.nan, "'timesteps' is nan, not a finite number"),
    ("wall_time_s", math.inf, "'wall_time_s' is inf, not a finite number"),
    ("timesteps", True, "'timesteps' is True, not a finite number"),
    ("rows", {"0": {}}, "'rows' is not a list of objects"),
    ("rows", [1, 2], "'rows' is not a list of objects"),
    ("state_file", "../../elsewhere.npz", "'state_file' is '../../elsewhere.npz', expected 'state-000003.npz'"),
    ("identity", [1], "'identity' is not an object with 'params': [1]"),
    ("checksums", {"theta": {}}, "'checksums' records ['theta'], expected the arrays ['adam_m', 'theta']"),
    ("checksums", [], "'checksums' records [], expected the arrays ['adam_m', 'theta']"),
])
def test_json_bad_value(ckpt, key, value, what):
    run_dir, path, _ = ckpt
    edit_json(path, lambda saved: saved.__setitem__(key, value))
    refused(run_dir, path, what)


def test_json_malformed_checksum_record(ckpt):
    run_dir, path, _ = ckpt
    edit_json(path, lambda saved: saved["checksums"]["theta"].pop("sha256"))
    refused(run_dir, path, "'checksums' entry of 'theta' is not {sha256, shape, dtype}: {'dtype': '<f4', 'shape': [5]}")


def test_other_run_is_a_mismatch_not_damage(ckpt):
    run_dir, path, _ = ckpt
    other = checkpoint.identity("InvertedPendulum-v5", 0, 5, {"sigma": 0.05, "timesteps": 100})
    with pytest.raises(CheckpointMismatch, match=r"params.sigma: checkpoint 0.02 vs run 0.05"):
        checkpoint.load(run_dir, other, shapes=SHAPES, counters=COUNTERS)
    budget = checkpoint.identity("InvertedPendulum-v5", 0, 5, {"sigma": 0.02, "timesteps": 999})
    assert checkpoint.load(run_dir, budget, shapes=SHAPES, counters=COUNTERS) is not None  # a budget key


# -- the state file --------------------------------------------------------------------------
def test_state_file_missing(ckpt):
    run_dir, _, state = ckpt
    state.unlink()
    refused(run_dir, state, "missing (checkpoint.json names it)")


def test_state_file_empty(ckpt):
    run_dir, _, state = ckpt
    state.write_bytes(b"")
    refused(run_dir, state, "empty file")


@pytest.mark.parametrize("content", [b"not a zip at all", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'"])
def test_state_file_not_a_zip(ckpt, content):
    run_dir, _, state = ckpt
    state.write_bytes(content)
    refused(run_dir, state, "not a complete zip archive (an .npz is one): truncated or another kind of file")


def test_state_file_truncated(ckpt):
    run_dir, _, state = ckpt
    state.write_bytes(state.read_bytes()[:-40])
    refused(run_dir, state, "not a complete zip archive (an .npz is one): truncated or another kind of file")


def test_state_file_bit_flipped(ckpt):
    run_dir, _, state = ckpt
    data = bytearray(state.read_bytes())
    at = bytes(data).index(THETA.tobytes())  # np.savez stores arrays uncompressed
    data[at + 3] ^= 0x10
    state.write_bytes(bytes(data))
    refused(run_dir, state, "not a readable .npz (BadZipFile: Bad CRC-32 for file 'theta.npy')")


def test_state_file_checksum_mismatch(ckpt):
    """A well-formed .npz with other values (e.g. another checkpoint's): the SHA-256 catches it."""
    run_dir, path, state = ckpt
    other = THETA.copy()
    other[2] = np.nextafter(other[2], np.float32(1))
    np.savez(state, theta=other, adam_m=ADAM_M)
    recorded = json.loads(path.read_text())["checksums"]["theta"]["sha256"]
    found = hashlib.sha256(other.tobytes()).hexdigest()
    refused(run_dir, state, f"array 'theta' fails its SHA-256 checksum (checkpoint.json records "
                            f"{recorded[:12]}..., the file holds {found[:12]}...)")


def test_state_file_missing_array(ckpt):
    run_dir, _, state = ckpt
    np.savez(state, theta=THETA)
    refused(run_dir, state, "array(s) 'adam_m' missing (it holds ['theta'])")


def test_state_file_wrong_dtype(ckpt):
    run_dir, _, state = ckpt
    np.savez(state, theta=THETA.astype(np.float64), adam_m=ADAM_M)
    refused(run_dir, state, "array 'theta' is <f8 (5,), checkpoint.json records <f4 (5,)")


def test_state_file_wrong_shape(ckpt):
    run_dir, _, state = ckpt
    np.savez(state, theta=THETA[:4], adam_m=ADAM_M)
    refused(run_dir, state, "array 'theta' is <f4 (4,), checkpoint.json records <f4 (5,)")


def test_shape_this_run_does_not_take(ckpt):
    run_dir, _, state = ckpt
    refused(run_dir, state, "array 'theta' has shape (5,), this run needs (6,)", shapes=SHAPES | {"theta": (6,)})
    assert load(run_dir, shapes=SHAPES | {"theta": (None,)}) is not None  # None: any length


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values(tmp_path, bad):
    """Written with valid checksums (e.g. by a run that diverged): refused all the same."""
    theta = THETA.copy()
    theta[[1, 3]] = bad
    checkpoint.save(tmp_path, IDENT, {"theta": theta, "adam_m": ADAM_M}, SCALARS)
    refused(tmp_path, tmp_path / "checkpoint" / "state-000003.npz", "array 'theta' holds 2 non-finite value(s)")


def test_all_nan_theta_is_refused(tmp_path):
    checkpoint.save(tmp_path, IDENT, {"theta": np.full(5, np.nan, np.float32), "adam_m": ADAM_M}, SCALARS)
    refused(tmp_path, tmp_path / "checkpoint" / "state-000003.npz", "array 'theta' holds 5 non-finite value(s)")


def test_state_file_is_a_zip_of_other_things(ckpt):
    run_dir, _, state = ckpt
    with zipfile.ZipFile(state, "w") as z:
        z.writestr("theta.npy", b"this is no npy")
        z.writestr("adam_m.npy", b"nor this")
    refused(run_dir, state, "'theta' is not a .npy array")


# -- through the command line ----------------------------------------------------------------
def test_cli_refuses_damaged_checkpoint_before_any_work(tmp_path):
    """A real short ES run, its state file truncated, rerun with a larger budget: exit 2, one line
    naming the file, no traceback, and progress.csv and policy.npz untouched."""
    params = {"pairs_per_iteration": 4, "eval_episodes": 1, "checkpoint_every": 1, "noise_table_size": 100000}
    args = ["train", "--env", "InvertedPendulum-v5", "--seed", 0, "--workers", 1, "--params", json.dumps(params),
            "--out", tmp_path]
    first = run_cli(*args, "--iterations", 2)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "checkpoint" / "state-000002.npz"
    state.write_bytes(state.read_bytes()[:100])
    before = {name: ((tmp_path / name).read_bytes(), (tmp_path / name).stat().st_mtime_ns)
              for name in ("progress.csv", "policy.npz", "run.json")}

    rerun = run_cli(*args, "--iterations", 3)
    assert rerun.returncode == 2
    assert rerun.stderr == (f"esrepro: error: damaged checkpoint {state}: not a complete zip archive (an .npz is "
                            f"one): truncated or another kind of file; remove {tmp_path / 'checkpoint'} to start "
                            "over\n")
    assert "resuming" not in rerun.stdout and "iter" not in rerun.stdout
    assert before == {name: ((tmp_path / name).read_bytes(), (tmp_path / name).stat().st_mtime_ns)
                      for name in before}
