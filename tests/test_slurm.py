"""ES runs and the workflow on a real Slurm: a one-node cluster on 127.0.0.1 (`tests/slurm/slurm.sh
start`, as root). Each compares with a local run, bit for bit where the results are deterministic:

- (b) dask-jobqueue SLURMCluster: sbatch jobs are the Dask workers, each job a host, cancelled at the end;
- PBSCluster's job script through Slurm's `qsub`/`qdel` wrappers (Slurm underneath, not a PBS server);
- (c) SLURMRunner: every task of `srun -n 5` runs the command (scheduler, ES master, 3 workers);
- a scaling run through a cluster template: the template's jobs of 1 core become exactly the run's
  2 workers;
- the smoke grid (config/smoke.yaml) through profiles/slurm: every job an sbatch job.

They are all in this file, so that pytest-xdist (``--dist loadfile``) runs them one after another
in one process: each waits for the node's CPUs, and ``cancel_leftover_jobs`` cancels every job that
appeared during its test.

Without a running Slurm these tests skip; with ESREPRO_REQUIRE_SLURM=1 (CI) they fail instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from esrepro.distributed.cluster import SINGLE_THREAD_ENV

from conftest import REPO, run_cli, run_snakemake
from test_cluster import (
    RUN,
    assert_same_params,
    assert_same_run,
    progress,
    reference_run,
    workers_of,
    write_certs,
    write_yaml,
)

#: The account and partition tests/slurm/slurm.sh sets up.
ACCOUNT, PARTITION = "esrepro", "debug"
REQUIRED = os.environ.get("ESREPRO_REQUIRE_SLURM") == "1"
SMOKE = REPO / "config" / "smoke.yaml"
#: Job states of sacct that are not final.
ACTIVE = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED")


def slurm_problem() -> str | None:
    """Why no Slurm here can run jobs (a tool missing, no controller, no idle node), or None."""
    for tool in ("sinfo", "sbatch", "srun", "squeue", "scancel", "sacct", "qsub", "qdel"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH"
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`sinfo` did not answer within 20 s"
    if info.returncode != 0:
        return f"`sinfo` failed: {(info.stderr.strip().splitlines() or ['no message'])[-1]}"
    if not {"idle", "mixed"} & set(info.stdout.split()):
        return f"no idle node (`sinfo`: {' '.join(info.stdout.split())})"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm():
    problem = slurm_problem()
    if problem:
        message = f"no running Slurm: {problem}; start one with `tests/slurm/slurm.sh start` (as root)"
        if REQUIRED:
            pytest.fail(f"{message}; ESREPRO_REQUIRE_SLURM=1 requires these tests", pytrace=False)
        pytest.skip(message)


def queued() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True,
                              timeout=30).stdout.split())


@pytest.fixture(autouse=True)
def cancel_leftover_jobs():
    """Jobs a test left queued or running (a failed test) are cancelled."""
    before = queued()
    yield
    left = queued() - before
    if left:
        subprocess.run(["scancel", *sorted(left)], timeout=30)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory)


def sacct(*args) -> list[list[str]]:
    """Accounting rows (one per job, not per step) of ``sacct ARGS``, fields split."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", *args], capture_output=True, text=True, check=True, timeout=30)
    return [line.split("|") for line in out.stdout.splitlines()]


#: The job name slurmdbd gives a record it created before the job's submit details reached it (its
#: end arrived first): such a record reads State final but JobName "allocation" and Partition and
#: Timelimit empty, and is completed when the submit details arrive (seen here under load, minutes later).
PLACEHOLDER_NAME = "allocation"


def complete(job: dict) -> bool:
    """Whether an accounting record holds every field its job was submitted with: each field read
    is filled in, the name is not slurmdbd's placeholder and the state is final."""
    return (all(job.values()) and job["JobName"] != PLACEHOLDER_NAME
            and not job["State"].startswith(ACTIVE))


def ended(select: list[str], fields: str, count: int, timeout: float = 600) -> list[dict]:
    """The ``fields`` (comma-separated, State among them) of the jobs sacct finds with ``select``,
    once there are ``count`` and each record is ``complete``: slurmctld reports a job's submit,
    start and end to slurmdbd asynchronously, and under load the end can be stored before the
    submit details. Waits up to ``timeout`` seconds; the values themselves are the caller's to
    check, so a job that really ran with another account, partition, CPUs or time limit still
    fails its test."""
    names = fields.split(",")
    query = names if "JobName" in names else [*names, "JobName"]
    deadline = time.monotonic() + timeout
    while True:
        jobs = [dict(zip(query, row)) for row in sacct(*select, "-o", ",".join(query))]
        if len(jobs) == count and all(complete(job) for job in jobs):
            return [{name: job[name] for name in names} for job in jobs]
        if time.monotonic() > deadline:
            pytest.fail(f"sacct {' '.join(select)}: {jobs}, expected {count} ended jobs with complete "
                        f"records within {timeout:.0f} s", pytrace=False)
        time.sleep(0.5)


def batch_cluster(path: Path, kind: str, **keys) -> Path:
    """A cluster file of kind slurm or pbs for this node: the test account and partition, 2 cores
    and 2 GB per job, on loopback, temporary TLS certificates in ``path``'s folder."""
    return write_yaml(path, {"kind": kind, "account": ACCOUNT, "queue": PARTITION, "cores": 2, "memory": "2GB",
                             "walltime": "00:10:00", "interface": "lo", "shared_temp_directory": str(path.parent)}
                      | keys)


def test_accounting_records_are_read_whole(tmp_path):
    """A job that ends at once: for about a second sacct lists it with its final state but
    slurmdbd's placeholder name and no partition or time limit (measured here: 8 of 8 such jobs),
    until the job's submit details reach slurmdbd. ``ended`` returns the record only once it holds
    every field the job was submitted with."""
    name = f"esrepro-probe-{uuid.uuid4().hex[:12]}"
    submit = subprocess.run(["sbatch", "--parsable", "-J", name, "-A", ACCOUNT, "-p", PARTITION, "-t", "3", "-n", "1",
                             "-o", str(tmp_path / "probe.out"), "--wrap", "true"],
                            capture_output=True, text=True, check=True, timeout=30)
    job_id = submit.stdout.strip()
    [job] = ended(["-j", job_id], "JobID,JobName,State,Account,Partition,NCPUS,Timelimit", count=1)
    assert job == {"JobID": job_id, "JobName": name, "State": "COMPLETED", "Account": ACCOUNT,
                   "Partition": PARTITION, "NCPUS": "1", "Timelimit": "00:03:00"}


def test_slurm_batch_jobs_are_hosts(tmp_path, reference):
    """(b) Two sbatch jobs of 2 workers each, each job a host: its workers listen on a loopback
    address of its own (127.0.0.<2 + job id % 200>, set through dask-jobqueue's
    ``worker-extra-args``), as two jobs on two nodes have two addresses. The run waits for the 4
    workers, gives each job a coordinator, gets the local run's bits and cancels the jobs."""
    cluster = batch_cluster(tmp_path / "slurm.yaml", "slurm", jobs=2, interface=None,
                            log_directory=str(tmp_path / "logs"))
    per_job_host = {"DASK_JOBQUEUE__SLURM__WORKER_EXTRA_ARGS": '["--host", "127.0.0.$((2+SLURM_JOB_ID%200))"]'}
    done = run_cli(*RUN, "--cluster", cluster, "--out", tmp_path / "out", cwd=tmp_path, timeout=300,
                   env=per_job_host)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "out", reference)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (run["workers"], run["hosts"]) == (4, 2), run

    logs = sorted((tmp_path / "logs").glob("dask-worker-*.err"))
    job_ids = [log.stem.rsplit("-", 1)[1] for log in logs]
    jobs = ended(["-j", ",".join(job_ids)], "JobID,State,Account,Partition,NCPUS,Timelimit", count=2)
    assert {(job["State"].split()[0], job["Account"], job["Partition"], job["NCPUS"], job["Timelimit"])
            for job in jobs} == {("CANCELLED", ACCOUNT, PARTITION, "2", "00:10:00")}, jobs
    for job_id, log in zip(job_ids, logs):  # each job: 2 worker processes, TLS, on the job's own address
        host = re.escape(f"127.0.0.{2 + int(job_id) % 200}")
        assert len(re.findall(rf"Start worker at:\s+tls://{host}:", log.read_text())) == 2, log.read_text()
    assert not list(tmp_path.glob(".dask-jobqueue.worker.*")), "temporary TLS files left behind"


def test_pbs_jobs_through_slurm_qsub(tmp_path, reference):
    """PBSCluster's job script submitted by Slurm's `qsub` wrapper and cancelled by its `qdel`. This
    tests PBSCluster's submit and cancel path and that a qsub accepts its #PBS header (-N, -A, -q,
    select=1:ncpus=2:mem=..., walltime); it does not test a PBS server (its queues, job ids, -o/-e
    directories, which the wrapper ignores: job output lands in the working directory)."""
    cluster = batch_cluster(tmp_path / "pbs.yaml", "pbs")
    done = run_cli(*RUN, "--cluster", cluster, "--out", tmp_path / "out", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "out", reference)
    assert workers_of(tmp_path / "out") == 2

    [log] = tmp_path.glob("*.e[0-9]*")
    [job] = ended(["-j", log.suffix[2:]], "JobID,JobName,State,Account,Partition,NCPUS,Timelimit", count=1)
    assert job | {"State": job["State"].split()[0]} == {
        "JobID": log.suffix[2:], "JobName": "dask-worker", "State": "CANCELLED", "Account": ACCOUNT,
        "Partition": PARTITION, "NCPUS": "2", "Timelimit": "00:10:00"}
    assert len(re.findall(r"Start worker at:\s+tls://127\.0\.0\.1:", log.read_text())) == 2, log.read_text()


def test_slurm_runner_under_srun(tmp_path, reference):
    """(c) `srun -n 5` on the node's (declared) CPUs: rank 0 the scheduler, rank 1 the ES master,
    3 worker ranks, with TLS from the cluster file."""
    cluster = write_yaml(tmp_path / "runner.yaml", {"kind": "slurm-runner", "interface": "lo",
                                                    "tls": write_certs(tmp_path),
                                                    "scheduler_file": str(tmp_path / "scheduler-{job_id}.json")})
    name = f"esrepro-runner-{uuid.uuid4().hex[:12]}"  # unique among the jobs sacct lists
    done = subprocess.run(["srun", "-n", "5", "-J", name, "-A", ACCOUNT, "-p", PARTITION, "-t", "10",
                           sys.executable, "-m", "esrepro", *map(str, RUN), "--cluster", str(cluster),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, env=os.environ | SINGLE_THREAD_ENV | {"PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: 2 iterations") == 1, done.stdout  # only the client rank trains
    assert re.search(r"Scheduler at:\s+tls://127\.0\.0\.1:", done.stderr), done.stderr[-3000:]
    assert_same_run(tmp_path / "out", reference)
    assert workers_of(tmp_path / "out") == 3
    [job] = ended(["--name", name, "-S", "now-1hours"], "JobName,State,NCPUS", count=1)
    assert job == {"JobName": name, "State": "COMPLETED", "NCPUS": "5"}


def test_two_worker_scaling_run_on_one_core_batch_jobs(tmp_path):
    template = batch_cluster(tmp_path / "template.yaml", "slurm", cores=1, jobs=5, log_directory=str(tmp_path / "logs"))
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "results_dir": "results", "paper_dir": "results/paper",
        "scaling": {"env": "InvertedPendulum-v5", "workers": [2], "repeats": 1, "cluster": str(template),
                    "params": {"iterations": 2, "target_return": 1000, "pairs_per_iteration": 8, "eval_episodes": 1,
                               "noise_table_size": 100_000}}}))
    run = "results/scaling/InvertedPendulum-v5/workers2/seed0"
    res = run_snakemake("--cores", "1", f"{run}/run.json", "--configfile", grid, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp_path / run / "run.json").read_text())["workers"] == 2

    logs = sorted((tmp_path / "logs").glob("dask-worker-*.err"))  # one per batch job
    jobs = ended(["-j", ",".join(log.stem.rsplit("-", 1)[1] for log in logs)], "JobID,State,NCPUS", count=2)
    assert {(job["State"].split()[0], job["NCPUS"]) for job in jobs} == {("CANCELLED", "1")}, jobs


def site_profile(directory: Path) -> Path:
    """profiles/slurm with what a site sets, here for this one small node: the account and the
    partition (the profile's placeholders), threads as the local run's (ES runs 2 workers; A2C's
    torch threads change its results, so 1 as profiles/default) and at most 2 GB per job."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"] |= {"slurm_account": ACCOUNT, "slurm_partition": PARTITION}
    profile["set-threads"] |= {"es_train": 2, "es_atari": 2, "a2c_train": 1}
    for resources in profile["set-resources"].values():
        resources["mem_mb"] = min(resources["mem_mb"], 2000)
    directory.mkdir()
    write_yaml(directory / "config.yaml", profile)
    return directory


def jobs_by_rule(run_log: str) -> dict[str, int]:
    """Jobs per rule in Snakemake's "Job stats" table, without the local rule `all`."""
    stats = run_log.split("Job stats:")[1].split("\n\n")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M)
            if rule not in ("all", "total")}


#: Columns of the smoke grid's tables that hold wall times (and what follows from them).
TIME_COLUMNS = re.compile(r"wall_time|minutes|speedup|efficiency")


def test_smoke_grid_through_profile(tmp_path, smoke_run):
    profile = site_profile(tmp_path / "profile")
    cwd = tmp_path / "run"
    cwd.mkdir()
    res = subprocess.run(["timeout", "-k", "10", "900", sys.executable, "-m", "snakemake", "--snakefile",
                          REPO / "Snakefile", "--workflow-profile", profile, "--configfile", SMOKE,
                          "--slurm-init-seconds-before-status-checks", "1"], capture_output=True, text=True, cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]

    # Every job but `all` was an sbatch job with its rule's threads as CPUs and its runtime as time limit.
    log = res.stdout + res.stderr
    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]
    planned = jobs_by_rule(log)
    jobs = ended(["--name", run_id, "-S", "now-1hours"], "Comment,State,Account,Partition,NCPUS,Timelimit",
                 count=sum(planned.values()))
    rules = [re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", job["Comment"])[1] for job in jobs]
    assert {rule: rules.count(rule) for rule in planned} == planned
    assert {(job["State"], job["Account"], job["Partition"]) for job in jobs} == {("COMPLETED", ACCOUNT, PARTITION)}
    cpus = {(rule, job["NCPUS"], job["Timelimit"]) for rule, job in zip(rules, jobs)}
    assert {("es_train", "2", "12:00:00"), ("es_atari", "2", "1-00:00:00"), ("trpo_train", "1", "1-00:00:00"),
            ("scaling_run", "1", "1-00:00:00"), ("scaling_run", "2", "1-00:00:00"),
            ("mujoco_tables", "1", "00:10:00")} <= cpus, cpus

    # The same results as the local run: every run's progress.csv but its time columns, every ES
    # run's final parameters bit for bit, and every table but its wall times.
    config = yaml.safe_load(SMOKE.read_text())
    here, there = cwd / config["results_dir"], smoke_run / config["results_dir"]
    runs = sorted(p.parent.relative_to(there) for p in there.rglob("progress.csv"))
    assert sorted(p.parent.relative_to(here) for p in here.rglob("progress.csv")) == runs
    for run in runs:
        assert progress(here / run) == progress(there / run), run
        if (there / run / "policy.npz").is_file():
            assert_same_params(here / run, there / run)
    tables = sorted(p.name for p in (smoke_run / config["paper_dir"] / "tables").glob("*.csv"))
    assert sorted(p.name for p in (cwd / config["paper_dir"] / "tables").glob("*.csv")) == tables
    assert {"atari.csv", "es_mujoco_summary.csv", "scaling.csv", "table1.csv", "table3.csv"} <= set(tables), tables
    for name in tables:
        ours, local = (pd.read_csv(d / config["paper_dir"] / "tables" / name) for d in (cwd, smoke_run))
        kept = [c for c in local.columns if not TIME_COLUMNS.search(c)]
        pd.testing.assert_frame_equal(ours[kept], local[kept], check_exact=True)
    figures = sorted(p.name for p in (smoke_run / config["paper_dir"] / "figures").iterdir())
    assert sorted(p.name for p in (cwd / config["paper_dir"] / "figures").iterdir()) == figures
    assert json.loads(next(here.glob("es/*/seed0/run.json")).read_text())["workers"] == 2
