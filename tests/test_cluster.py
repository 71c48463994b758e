"""Cluster modes of an ES run (esrepro/distributed/cluster.py), with real processes on 127.0.0.1:
a local cluster with more worker processes than cores, an external scheduler (plain and TLS), the
job scripts of SLURMCluster and PBSCluster, and bad cluster files. Every ES run must reproduce a
local run bit for bit. The modes that need a batch system (SLURMCluster, PBSCluster, SLURMRunner
under srun, the workflow through profiles/slurm) run against a real Slurm in tests/test_slurm.py."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import yaml
from distributed import Client, Security

from esrepro.config import ConfigError
from esrepro.distributed.cluster import (
    SINGLE_THREAD_ENV,
    WORKER_DASK_CONFIG,
    connect,
    dask_env,
    jobqueue_cluster,
    load_cluster,
    security,
)

from conftest import REPO, run_cli

DASK = Path(sys.executable).parent / "dask"
#: The ES run of every cluster test: 2 iterations of 8 pairs on InvertedPendulum.
RUN = ("train", "--env", "InvertedPendulum-v5", "--seed", 0, "--iterations", 2, "--params",
       json.dumps({"pairs_per_iteration": 8, "eval_episodes": 1, "noise_table_size": 100_000}))


def progress(out: Path) -> list[dict]:
    """progress.csv without its timing columns."""
    with open(out / "progress.csv") as f:
        return [{k: v for k, v in row.items() if not k.endswith("time_s")} for row in csv.DictReader(f)]


def assert_same_run(out: Path, reference: Path) -> None:
    """The run of RUN in ``out`` is the one in ``reference`` bit for bit: every row of progress.csv
    but its time columns, and the final parameters."""
    rows = progress(out)
    assert [row["iteration"] for row in rows] == ["0", "1", "2"]
    assert rows == progress(reference)
    assert_same_params(out, reference)


def assert_same_params(out: Path, reference: Path) -> None:
    """Every array of ``out``'s policy.npz (final parameters ``theta``, observation statistics...)
    is ``reference``'s, bit for bit."""
    with np.load(out / "policy.npz") as got, np.load(reference / "policy.npz") as want:
        assert got.files == want.files
        for name in want.files:
            assert (got[name].dtype, got[name].tobytes()) == (want[name].dtype, want[name].tobytes()), name


def workers_of(out: Path) -> int:
    """The number of Dask workers the run in ``out`` used (run.json)."""
    return json.loads((out / "run.json").read_text())["workers"]


def reference_run(tmp_path_factory) -> Path:
    """The output folder of RUN on a local cluster of 2 workers, made once per test session (the
    folder is the session's, so tests/test_slurm.py compares with the same run)."""
    out = tmp_path_factory.getbasetemp() / "local-reference"
    if not (out / "policy.npz").is_file():
        done = run_cli(*RUN, "--workers", 2, "--out", out, timeout=180)
        assert done.returncode == 0, done.stderr
    return out


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def write_certs(directory: Path) -> dict:
    """A self-signed certificate that is its own CA (dask's ``Security.temporary``, made with
    ``cryptography``), as PEM files in ``directory``: {"ca_file", "cert", "key"} -> path."""
    sec = Security.temporary()
    pems = {"ca_file": sec.tls_ca_file, "cert": sec.tls_scheduler_cert, "key": sec.tls_scheduler_key}
    for name, pem in pems.items():
        (directory / f"{name}.pem").write_text(pem)
    return {name: str(directory / f"{name}.pem") for name in pems}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return write_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def spawn(tmp_path):
    """Start processes (output to tmp_path/<name>.log); all are terminated at the end."""
    procs = []

    def start(name, *args, env=None):
        log = open(tmp_path / f"{name}.log", "w")
        procs.append(subprocess.Popen(list(map(str, args)), stdout=log, stderr=subprocess.STDOUT,
                                      env=os.environ | SINGLE_THREAD_ENV | (env or {}), start_new_session=True))
        log.close()
        return procs[-1]

    yield start
    for p in procs:  # each leads its own process group (a dask worker's nanny has a child)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def start_dask(spawn, scheduler_file: Path, workers: int, certs=None, hosts=("127.0.0.1",)) -> list:
    """A `dask scheduler` on 127.0.0.1 and `workers` single-threaded worker processes on each of
    ``hosts`` (loopback addresses: to the run, each is a host of its own), with TLS from the
    `certs` files, returning once all workers have joined; the `dask worker` process of each host."""
    tls = () if certs is None else ("--protocol", "tls", "--tls-ca-file", certs["ca_file"],
                                    "--tls-cert", certs["cert"], "--tls-key", certs["key"])
    spawn("scheduler", DASK, "scheduler", "--host", "127.0.0.1", "--port", 0, "--no-dashboard",
          "--scheduler-file", scheduler_file, *tls)
    procs = [spawn(f"worker-{host}", DASK, "worker", "--nworkers", workers, "--nthreads", 1, "--host", host,
                   "--no-dashboard", "--scheduler-file", scheduler_file, *tls) for host in hosts]
    with Client(scheduler_file=str(scheduler_file), timeout=30, security=security(certs)) as client:
        client.wait_for_workers(workers * len(hosts), timeout=60)
    return procs


def test_more_workers_than_cores(tmp_path, reference):
    """8 single-threaded worker processes on a machine of (typically) 2 cores."""
    done = run_cli(*RUN, "--workers", 8, "--out", tmp_path / "out", timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_run(tmp_path / "out", reference)
    assert workers_of(tmp_path / "out") == 8


def _worker_settings():
    return {k: dask.config.get(k) for k in WORKER_DASK_CONFIG}, {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}


def test_local_workers_settings():
    """The local workers pin their BLAS pools and run with WORKER_DASK_CONFIG (not distributed's
    defaults), and the caller's Dask configuration is its own again afterwards."""
    before = {k: dask.config.get(k) for k in WORKER_DASK_CONFIG}
    with connect(2) as client:
        settings = client.run(_worker_settings)
    assert len(settings) == 2
    for config, env in settings.values():
        assert config == WORKER_DASK_CONFIG
        assert all(before[k] != v for k, v in config.items())
        assert env == SINGLE_THREAD_ENV
    assert {k: dask.config.get(k) for k in WORKER_DASK_CONFIG} == before


def test_worker_config_as_environment():
    """The variables exported in job scripts set WORKER_DASK_CONFIG in a new Python process."""
    code = ("import dask, distributed, json, sys; "
            "print(json.dumps({k: dask.config.get(k) for k in json.loads(sys.argv[1])}))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(list(WORKER_DASK_CONFIG))], capture_output=True,
                          text=True, env=os.environ | dask_env(WORKER_DASK_CONFIG), timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == WORKER_DASK_CONFIG


def test_external_scheduler(spawn, tmp_path, reference):
    start_dask(spawn, tmp_path / "scheduler.json", workers=3)
    done = run_cli(*RUN, "--scheduler", tmp_path / "scheduler.json", "--out", tmp_path / "out", timeout=120)
    assert done.returncode == 0, done.stderr
    assert_same_run(tmp_path / "out", reference)
    assert workers_of(tmp_path / "out") == 3


def test_hosts_are_found_from_worker_addresses(spawn, tmp_path, reference):
    """Two hosts (workers on 127.0.0.2 and 127.0.0.3), a coordinator each: the same run, bit for
    bit, as on one host of 2 workers."""
    start_dask(spawn, tmp_path / "scheduler.json", workers=2, hosts=("127.0.0.2", "127.0.0.3"))
    done = run_cli(*RUN, "--scheduler", tmp_path / "scheduler.json", "--out", tmp_path / "out", timeout=120)
    assert done.returncode == 0, done.stderr
    assert_same_run(tmp_path / "out", reference)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (run["workers"], run["hosts"]) == (4, 2)


def test_a_lost_host_leaves_its_episodes_to_the_others(spawn, tmp_path):
    """One of two hosts goes away mid-run (its `dask worker` killed with its processes): its
    episodes run on the other host and the run is the same, bit for bit, as an undisturbed one."""
    run = ("train", "--env", "Swimmer-v5", "--seed", 0, "--iterations", 4, "--params",
           json.dumps({"pairs_per_iteration": 8, "eval_episodes": 1, "noise_table_size": 100_000,
                       "max_episode_steps": 500}))
    undisturbed = run_cli(*run, "--workers", 2, "--out", tmp_path / "undisturbed", timeout=180)
    assert undisturbed.returncode == 0, undisturbed.stderr
    _, doomed = start_dask(spawn, tmp_path / "scheduler.json", workers=1, hosts=("127.0.0.2", "127.0.0.3"))
    proc = subprocess.Popen([sys.executable, "-m", "esrepro", *map(str, run), "--scheduler",
                             tmp_path / "scheduler.json", "--out", tmp_path / "out"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress_file, deadline = tmp_path / "out" / "progress.csv", time.monotonic() + 120
    while time.monotonic() < deadline and not (progress_file.is_file() and
                                               len(progress_file.read_text().splitlines()) > 2):
        time.sleep(0.01)
    os.killpg(doomed.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    assert "lost host 127.0.0.3" in out
    assert progress(tmp_path / "out") == progress(tmp_path / "undisturbed")
    assert_same_params(tmp_path / "out", tmp_path / "undisturbed")


def test_tls_scheduler(spawn, tmp_path, certs, reference):
    scheduler_file = tmp_path / "scheduler.json"
    start_dask(spawn, scheduler_file, workers=1, certs=certs)
    cluster = write_yaml(tmp_path / "cluster.yaml", {"kind": "scheduler", "scheduler": str(scheduler_file),
                                                     "tls": certs})
    done = run_cli(*RUN, "--cluster", cluster, "--out", tmp_path / "out", timeout=120)
    assert done.returncode == 0, done.stderr
    assert_same_run(tmp_path / "out", reference)

    address = json.loads(scheduler_file.read_text())["address"]
    assert address.startswith("tls://127.0.0.1:")
    # Dask's own TLS settings, from the environment, are the other documented way in.
    env = {f"DASK_DISTRIBUTED__COMM__TLS__{key}": certs[part] for key, part in
           (("CA_FILE", "ca_file"), ("CLIENT__CERT", "cert"), ("CLIENT__KEY", "key"))}
    probe = "from distributed import Client; c = Client(%r, timeout=20); print(len(c.scheduler_info()['workers']))"
    by_env = subprocess.run([sys.executable, "-c", probe % address], capture_output=True, text=True,
                            env=os.environ | env, timeout=60)
    assert by_env.stdout.strip() == "1", by_env.stderr
    # Without the certificates: other certificates, or no TLS at all, are refused.
    for intruder in ({"security": Security.temporary()}, {}):
        target = address if intruder else address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            Client(target, timeout=2, **intruder)
    # The scheduler logs each refused handshake on its own time, after the client has given up.
    refusals = ("[SSL: TLSV1_ALERT_UNKNOWN_CA]", "[SSL: WRONG_VERSION_NUMBER]")
    deadline = time.monotonic() + 30
    while not all(r in (log := (tmp_path / "scheduler.log").read_text()) for r in refusals):
        assert time.monotonic() < deadline, log
        time.sleep(0.5)


def test_slurm_runner_needs_single_thread_env(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    spec = load_cluster(REPO / "config" / "cluster" / "slurm-runner.yaml")
    with pytest.raises(ConfigError, match="export OMP_NUM_THREADS=1"), connect(1, cluster=spec):
        pass


@pytest.mark.parametrize("kind, header", [
    ("slurm", ["#SBATCH -A my_account", "#SBATCH -p compute", "#SBATCH -t 04:00:00", "#SBATCH --cpus-per-task=36",
               "#SBATCH --mem=68G"]),
    ("pbs", ["#PBS -A my_account", "#PBS -q workq", "#PBS -l walltime=04:00:00",
             "#PBS -l select=1:ncpus=24:mem=45GB"]),
])
def test_job_script(kind, header, tmp_path):
    spec = load_cluster(REPO / "config" / "cluster" / f"{kind}.yaml") | {"interface": "lo",
                                                                         "shared_temp_directory": str(tmp_path)}
    with jobqueue_cluster(spec) as cluster:
        script = cluster.job_script()
    lines = script.splitlines()
    assert set(header) <= set(lines), script
    assert {f"export {k}=1" for k in SINGLE_THREAD_ENV} <= set(lines)
    assert {"export DASK_DISTRIBUTED__WORKER__PROFILE__INTERVAL=100ms",
            "export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=200ms"} <= set(lines)
    worker = lines[-1].split()
    assert worker[:3] == [sys.executable, "-m", "distributed.cli.dask_worker"]
    assert worker[3].startswith("tls://127.0.0.1:")
    flag = {name: worker[worker.index(name) + 1] for name in ("--nthreads", "--nworkers", "--tls-ca-file")}
    assert flag["--nthreads"] == "1" and flag["--nworkers"] == str(spec["cores"])
    assert Path(flag["--tls-ca-file"]).parent == tmp_path  # the workers' copy of the temporary CA


@pytest.mark.parametrize("data, message", [
    ({"kind": "lsf"}, "config key 'kind' = 'lsf'"),
    ({"cores": 2}, "config key 'kind' is required"),
    ({"kind": "slurm", "cores": 2, "memory": "1GB", "cpus": 4}, "config key 'cpus' is unknown"),
    ({"kind": "slurm", "cores": 0, "memory": "1GB"}, "config key 'cores' = 0"),
    ({"kind": "slurm", "cores": 2}, "config key 'memory' is required for kind 'slurm'"),
    ({"kind": "pbs", "cores": 2, "memory": "lots"}, "config key 'memory' = 'lots'"),
    ({"kind": "slurm", "cores": 2, "memory": "1GB", "walltime": "4 hours"}, "config key 'walltime' = '4 hours'"),
    ({"kind": "scheduler", "scheduler": "tcp://127.0.0.1:8786", "cores": 2},
     "config key 'cores' = 2 does not apply to kind 'scheduler'"),
    ({"kind": "scheduler", "scheduler": "x.json", "tls": {"ca_file": "/no/ca.pem", "cert": "c", "key": "k"}},
     "config key 'tls.ca_file' = '/no/ca.pem': no such file"),
    ({"kind": "slurm-runner", "tls": {"ca_file": "ca.pem"}}, "config key 'tls': 'cert' is a required property"),
])
def test_bad_cluster_file(tmp_path, data, message):
    path = write_yaml(tmp_path / "cluster.yaml", data)
    with pytest.raises(ConfigError) as err:
        load_cluster(path)
    assert str(err.value).startswith(f"cluster file '{path}': {message}"), err.value
    assert "\n" not in str(err.value)


def test_bad_cluster_on_the_command_line(tmp_path):
    path = write_yaml(tmp_path / "cluster.yaml", {"kind": "slurm", "cores": 0, "memory": "1GB"})
    done = run_cli(*RUN, "--cluster", path, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"esrepro: error: cluster file '{path}': config key 'cores' = 0: "
                                   "0 is less than the minimum of 1")
    both = run_cli(*RUN, "--cluster", path, "--scheduler", "tcp://127.0.0.1:1", "--out", tmp_path / "out")
    assert both.returncode == 2 and "both a scheduler" in both.stderr
    assert not (tmp_path / "out").exists()
