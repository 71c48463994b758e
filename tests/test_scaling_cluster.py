"""The scaling grid on a cluster template (the scaling section's `cluster` key, rules/scaling.smk): what
Snakemake plans for each worker count, and one-line refusals of templates that cannot give a count."""

import os
import re

import pytest
import yaml

from conftest import REPO, run_snakemake

SLURM_TEMPLATE = REPO / "config" / "cluster" / "slurm.yaml"


def scaling_jobs(plan: str) -> dict[str, dict]:
    """The scaling_run jobs of a `snakemake -n -p` plan by output folder: threads, resources, command."""
    jobs = {}
    for block in plan.split("\nrule ")[1:]:
        if not block.startswith("scaling_run:"):
            continue
        folder = re.search(r"output: (\S+)/progress\.csv", block)[1]
        threads = re.search(r"threads: (\d+)", block)  # not shown when 1
        jobs[folder] = {"threads": int(threads[1]) if threads else 1,
                        "resources": re.search(r"resources: (.*)", block)[1],
                        "command": re.search(r"Shell command: (.*)", block)[1]}
    return jobs


def grid_with(tmp_path, base: dict, **scaling) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(base | {"scaling": base["scaling"] | scaling}))
    return path


def scaling_targets(grid: dict) -> list[str]:
    """The run.json of every scaling run of ``grid`` (plan only these)."""
    scaling = grid["scaling"]
    return [f"{grid['results_dir']}/scaling/{scaling['env']}/workers{n}/seed{seed}/run.json"
            for n in scaling["workers"] for seed in range(scaling["repeats"])]


def test_paper_grid_each_worker_count_on_slurm_batch_jobs_of_that_size(tmp_path):
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    grid = grid_with(tmp_path, paper, cluster="config/cluster/slurm.yaml")
    res = run_snakemake("-n", "-p", "--cores", "64", *scaling_targets(paper), "--configfile", grid, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = scaling_jobs(res.stdout)
    scaling = paper["scaling"]
    assert len(jobs) == len(scaling["workers"]) * scaling["repeats"] == 49
    for n in scaling["workers"]:
        for seed in range(scaling["repeats"]):
            job = jobs[f"{paper['results_dir']}/scaling/Humanoid-v5/workers{n}/seed{seed}"]
            assert job["threads"] == 1  # the ES master; the workers are the batch jobs
            assert f" --cluster {SLURM_TEMPLATE} --cluster-workers {n} --out " in job["command"], job
            assert "--workers" not in job["command"].replace("--cluster-workers", "") and "srun" not in job["command"]


def test_slurm_runner_template_one_job_of_n_plus_2_tasks(tmp_path):
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    smoke["scaling"] |= {"workers": [3], "cluster": str(REPO / "config" / "cluster" / "slurm-runner.yaml")}
    grid = grid_with(tmp_path, smoke)
    res = run_snakemake("-n", "-p", "--cores", "64", *scaling_targets(smoke), "--configfile", grid, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    [job] = scaling_jobs(res.stdout).values()
    assert job["threads"] == 1 and "mpi=srun, tasks=5" in job["resources"], job
    assert job["command"].startswith("export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "
                                     "VECLIB_MAXIMUM_THREADS=1 OPENCV_FOR_THREADS_NUM=1; srun -n 5 python -m "
                                     "esrepro train "), job
    assert "--cluster-workers" not in job["command"]


def test_local_cluster_without_template(tmp_path):
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    res = run_snakemake("-n", "-p", "--cores", "64", *scaling_targets(smoke), "--configfile",
                        REPO / "config" / "smoke.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = scaling_jobs(res.stdout)
    # Each run takes every core of the machine (at least its workers), so no other job shares it.
    cores = os.cpu_count()
    assert {(job["threads"], re.search(r"--workers (\d+)", job["command"])[1]) for job in jobs.values()} == \
           {(max(1, cores), "1"), (max(2, cores), "2")}
    assert not any("--cluster" in job["command"] for job in jobs.values())


@pytest.mark.parametrize("cluster, workers, message", [
    ("config/cluster/missing.yaml", [18], "config key 'scaling.cluster' = 'config/cluster/missing.yaml': cluster "
                                          f"file '{REPO / 'config' / 'cluster' / 'missing.yaml'}' does not exist"),
    ("config/cluster/slurm.yaml", [36, 50], "config key 'scaling.workers' = 50 with cluster file "
                                            "'config/cluster/slurm.yaml': config key 'cores' = 36: 50 workers are not "
                                            "a whole number of jobs of 36 workers"),
    ("scheduler.yaml", [2], "config key 'scaling.cluster' = 'SCHEDULER': kind 'scheduler' has the workers that "
                            "joined it and cannot be sized per run"),
])
def test_templates_that_cannot_give_a_count_are_refused_in_one_line(tmp_path, cluster, workers, message):
    if cluster == "scheduler.yaml":
        cluster = str(tmp_path / cluster)
        (tmp_path / "scheduler.yaml").write_text("kind: scheduler\nscheduler: tcp://127.0.0.1:8786\n")
        message = message.replace("SCHEDULER", cluster)
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    grid = grid_with(tmp_path, smoke, workers=workers, cluster=cluster)
    res = run_snakemake("-n", *scaling_targets(smoke), "--configfile", grid, cwd=tmp_path)
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert res.returncode != 0 and len(errors) == 1, res.stderr[-3000:]
    assert errors[0].startswith(f"esrepro: error: {message}"), errors
