import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: A run small enough for tests: short episodes, a 1M-value noise table, few pairs.
TINY = {"pairs_per_iteration": 6, "eval_episodes": 2, "noise_table_size": 1_000_000,
        "max_episode_steps": 60, "checkpoint_every": 1}


def pytest_collection_modifyitems(items):
    """The real-Slurm tests first (the longest file, about 6 minutes of the suite): under pytest-xdist
    (``-n``, ``--dist loadfile``) one process starts on it while the other takes the rest."""
    items.sort(key=lambda item: item.path.name != "test_slurm.py")


def run_cli(*args, cwd=None, timeout=300, env=None):
    """Run ``python -m esrepro ARGS`` with ``env`` added to the environment; returns the
    CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "esrepro", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {}))


def run_snakemake(*args, cwd, timeout=600):
    """Run Snakemake on the repository's Snakefile in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def noise_dir(tmp_path_factory):
    """The tests' shared noise tables live in a temporary directory, not the host's /dev/shm cache;
    set before any worker process starts, so workers and CLI subprocesses inherit it."""
    os.environ["ESREPRO_NOISE_DIR"] = str(tmp_path_factory.mktemp("noise"))


@pytest.fixture(scope="session")
def clients():
    """Local Dask clusters with 1 and 2 workers, shared by the tests of a session."""
    from esrepro.distributed.cluster import connect
    with connect(1) as one, connect(2) as two:
        yield {1: one, 2: two}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke grid (config/smoke.yaml) run once locally, shared by the workflow and Slurm tests;
    its working directory. Under pytest-xdist the worker processes share it too: the first to need
    it runs it under a lock on the session's temporary folder, the others wait and reuse it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, above each worker's own
    cwd, done = base / "smoke", base / "smoke.done"
    with open(base / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(cwd, ignore_errors=True)  # a failed earlier attempt
            cwd.mkdir()
            res = run_snakemake("--cores", "2", "--configfile", REPO / "config" / "smoke.yaml", cwd=cwd, timeout=1200)
            assert res.returncode == 0, res.stderr[-3000:]
            done.touch()
    return cwd
