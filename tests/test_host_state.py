"""A host's files of a run (``esrepro.distributed.host_state``): killed runs' files are swept away,
live runs' are not."""

import os
import subprocess
import sys
import time
import uuid

from esrepro.distributed.host_queue import socket_path
from esrepro.distributed.host_state import STALE_S, claim, lock_file, sweep, version_file

HOST = "10.0.0.7"


def run_files(age_s: float, lock: bool = True) -> tuple[str, list]:
    """A run key and the files a run leaves on a host (two versions, its socket, its lock file),
    last touched ``age_s`` seconds ago."""
    key = uuid.uuid4().hex
    paths = [version_file(key, HOST, 3), version_file(key, HOST, 4), socket_path(key, HOST)]
    paths += [lock_file(key, HOST)] if lock else []
    for path in paths:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age_s,) * 2)
    return key, paths


def test_sweep_removes_the_files_of_killed_runs_only():
    killed, killed_files = run_files(STALE_S + 60)
    older_version, older_files = run_files(STALE_S + 60, lock=False)  # no lock file: before locks, or lost
    recent, recent_files = run_files(STALE_S / 2)  # lock free, but touched lately: its coordinator may be coming
    live, live_files = run_files(STALE_S + 60)
    fd = claim(live, HOST)
    try:
        removed = set(sweep())
        assert set(killed_files + older_files) <= removed
        assert not removed & set(recent_files + live_files) and all(p.exists() for p in recent_files + live_files)
    finally:
        os.close(fd)


def test_a_lock_lives_as_long_as_its_process():
    """A coordinator's process that dies (killed) releases its run's lock: the next sweep removes
    its files."""
    key, paths = run_files(STALE_S + 60)
    code = (f"import sys, time; from esrepro.distributed.host_state import claim; claim({key!r}, {HOST!r}); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not set(paths) & set(sweep()) and all(p.exists() for p in paths)
        holder.kill()
        holder.wait(timeout=30)
        assert set(paths) <= set(sweep())  # (and other tests' runs that are over)
    finally:
        holder.kill()
