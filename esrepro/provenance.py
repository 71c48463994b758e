"""Where and with what a run was made, for run.json (docs/design.md, Data flow)."""

import datetime
import os
import platform
import socket
import subprocess
import time
from importlib import metadata

PACKAGES = ("esrepro", "numpy", "gymnasium", "mujoco", "dask", "distributed", "pandas", "snakemake",
            "torch", "stable-baselines3", "sb3-contrib")


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the working directory's git checkout, None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def collect(started: float) -> dict:
    """Versions, git commit, host, cores, Python and start/end times (ISO 8601, UTC)."""
    def iso(t):
        return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")

    return {"versions": {p: _version(p) for p in PACKAGES}, "python": platform.python_version(),
            "git_commit": git_commit(), "host": socket.gethostname(), "host_cpus": os.cpu_count(),
            "started_at": iso(started), "finished_at": iso(time.time())}
