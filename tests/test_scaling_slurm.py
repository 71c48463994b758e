"""A scaling run through a cluster template on a real one-node Slurm (tests/slurm/slurm.sh): the
template's jobs of 1 core become exactly the run's 2 workers. Skips without Slurm, fails without it
under ESREPRO_REQUIRE_SLURM=1 (tests/test_slurm.py)."""

import json

import yaml
from test_slurm import batch_cluster, cancel_leftover_jobs, ended, slurm  # noqa: F401 (fixtures)

from conftest import run_snakemake


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
