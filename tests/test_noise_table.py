"""Tests of the per-host shared noise table (esrepro.es.noise): one file per (size, seed), built
once under a lock, mapped read-only by every process, rebuilt when corrupt.

Every test points ESREPRO_NOISE_DIR at its own temporary directory, so the real cache in
/dev/shm is never touched; child processes inherit the variable.
"""

import multiprocessing
import os
import pickle

import numpy as np
import pytest

from esrepro.es import noise as noise_module
from esrepro.es.noise import DIR_ENV, NoiseTable


@pytest.fixture(autouse=True)
def noise_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    return tmp_path


def expected(size, seed):
    return np.random.default_rng(seed).standard_normal(size, dtype=np.float32)


def _open_in_child(size, seed, barrier, results):
    """Runs in a spawned process: wait for the others, open the table, report what was seen."""
    barrier.wait()
    table = NoiseTable(size, seed)
    results.put((os.getpid(), table.built, os.stat(table.path).st_ino, float(table.noise.astype(np.float64).sum())))


def open_in_processes(n, size, seed):
    """Open the table in ``n`` spawned processes at the same moment; one result tuple per process."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_in_child, args=(size, seed, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


def test_content_equals_generator_across_build_blocks(monkeypatch, noise_dir):
    # Small blocks so that the build stitches 5 blocks (the last one partial) from one generator.
    monkeypatch.setattr(noise_module, "BUILD_BLOCK", 1_000)
    table = NoiseTable(4_321, 11)
    assert table.built
    assert table.path.parent == noise_dir
    assert table.noise.dtype == np.float32 and table.noise.shape == (4_321,)
    np.testing.assert_array_equal(table.noise, expected(4_321, 11))
    np.testing.assert_array_equal(np.load(table.path), expected(4_321, 11))


def test_table_is_read_only():
    table = NoiseTable(2_000, 5)
    with pytest.raises(ValueError):
        table.noise[0] = 1.0
    with pytest.raises(ValueError):
        table.get(10, 5)[0] = 1.0
    with pytest.raises(ValueError):  # the mapping itself is read-only: the flag cannot be turned on
        table.noise.flags.writeable = True
    np.testing.assert_array_equal(table.noise, expected(2_000, 5))


def test_second_process_maps_without_rebuilding(noise_dir):
    [(pid, built, inode, total)] = open_in_processes(1, 50_000, 3)
    assert pid != os.getpid() and built
    path = noise_dir / f"esrepro-noise-v1-{50_000}-{3}.npy"
    before = os.stat(path)
    table = NoiseTable(50_000, 3)
    after = os.stat(path)
    assert not table.built
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns) and after.st_ino == inode
    np.testing.assert_array_equal(table.noise, expected(50_000, 3))
    assert float(table.noise.astype(np.float64).sum()) == total


def test_concurrent_creation_builds_one_correct_file(noise_dir):
    results = open_in_processes(4, 3_000_000, 9)
    assert sum(built for _, built, _, _ in results) == 1
    assert len({inode for _, _, inode, _ in results}) == 1
    assert len({total for _, _, _, total in results}) == 1
    assert sorted(p.name for p in noise_dir.iterdir()) == ["esrepro-noise-v1-3000000-9.npy",
                                                            "esrepro-noise-v1-3000000-9.npy.lock"]
    np.testing.assert_array_equal(np.load(noise_dir / "esrepro-noise-v1-3000000-9.npy"), expected(3_000_000, 9))


def _truncate_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def _empty(path):
    os.truncate(path, 0)


def _garbage_header(path):
    with open(path, "r+b") as f:
        f.write(b"not an npy file")


def _zeros_same_shape(path):
    np.save(path, np.zeros(10_000, dtype=np.float32))


def _float64_same_size(path):
    np.save(path, expected(10_000, 4).astype(np.float64))


@pytest.mark.parametrize("corrupt", [_truncate_half, _empty, _garbage_header, _zeros_same_shape, _float64_same_size])
def test_corrupt_file_is_rebuilt(corrupt):
    first = NoiseTable(10_000, 4)
    corrupt(first.path)
    again = NoiseTable(10_000, 4)
    assert again.built
    np.testing.assert_array_equal(again.noise, expected(10_000, 4))
    np.testing.assert_array_equal(np.load(again.path), expected(10_000, 4))


def test_crash_mid_build_leaves_no_table_and_stale_temp_files_are_removed(monkeypatch, noise_dir):
    monkeypatch.setattr(noise_module, "BUILD_BLOCK", 1_000)
    real_rng = np.random.default_rng

    class FailingSecondBlock:
        def __init__(self, seed):
            self.rng, self.calls = real_rng(seed), 0

        def standard_normal(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("simulated crash")
            return self.rng.standard_normal(*args, **kwargs)

    with monkeypatch.context() as patched, pytest.raises(RuntimeError, match="simulated crash"):
        patched.setattr(noise_module.np.random, "default_rng", FailingSecondBlock)
        NoiseTable(5_000, 2)
    assert not list(noise_dir.glob("*.tmp")) and not list(noise_dir.glob("*.npy"))

    # A temporary file left by a builder that was killed outright is removed by the next build.
    stale = noise_dir / "esrepro-noise-v1-5000-2.npy.killed.tmp"
    stale.write_bytes(b"\0" * 100)
    table = NoiseTable(5_000, 2)
    assert table.built and not stale.exists()
    np.testing.assert_array_equal(table.noise, expected(5_000, 2))


def test_pickles_as_size_and_seed_not_data():
    table = NoiseTable(1_000_000, 6)
    blob = pickle.dumps(table)
    assert len(blob) < 1_000
    copy = pickle.loads(blob)
    assert (copy.size, copy.seed, copy.path, copy.built) == (1_000_000, 6, table.path, False)
    np.testing.assert_array_equal(copy.get(999_990, 10), table.get(999_990, 10))


def test_bad_directory_names_the_variable(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv(DIR_ENV, str(not_a_dir))
    with pytest.raises(ValueError, match=f"{DIR_ENV}=.*file"):
        NoiseTable(100, 0)


def test_bad_size_still_raises():
    with pytest.raises(ValueError, match="size must be positive, got 0"):
        NoiseTable(0, 1)
