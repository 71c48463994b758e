"""A cluster file sized to a worker count (`cluster_of_size`, `train --cluster-workers`): the scaling
experiment gives each worker count batch jobs of exactly that many workers from one template."""

import pytest
import yaml
from dask.utils import parse_bytes
from hypothesis import given
from hypothesis import strategies as st

from esrepro.config import ConfigError
from esrepro.distributed.cluster import cluster_of_size, load_cluster

from conftest import REPO, run_cli

RUN = ("train", "--env", "InvertedPendulum-v5", "--seed", 0, "--iterations", 1)


def template(kind="slurm", cores=36, memory="72GB") -> dict:
    return {"kind": kind, "tls": None, "cores": cores, "memory": memory, "jobs": 3, "walltime": "01:00:00"}


@given(cores=st.integers(1, 64), workers=st.integers(1, 5000), kind=st.sampled_from(["slurm", "pbs"]))
def test_exactly_the_workers_asked_or_one_line_naming_cores(cores, workers, kind):
    spec = template(kind, cores, f"{cores * 2}GB")
    before = dict(spec)
    try:
        sized = cluster_of_size(spec, workers)
    except ConfigError as e:
        assert workers > cores and workers % cores, e
        assert str(e).startswith(f"config key 'cores' = {cores}: {workers} workers ") and "\n" not in str(e)
        return
    assert spec == before  # the template is not changed
    assert sized["jobs"] * sized["cores"] == workers
    assert parse_bytes(sized["memory"]) == 2 * 10**9 * sized["cores"]  # 2 GB per worker, as the template
    if workers > cores:
        assert sized == spec | {"jobs": workers // cores}
    else:
        assert sized["jobs"] == 1
    assert {k: v for k, v in sized.items() if k not in ("jobs", "cores", "memory")} == \
           {k: v for k, v in spec.items() if k not in ("jobs", "cores", "memory")}


def test_paper_scaling_grid_on_the_slurm_template():
    """config/paper.yaml's worker counts on config/cluster/slurm.yaml (36 workers per job)."""
    workers = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["scaling"]["workers"]
    spec = load_cluster(REPO / "config" / "cluster" / "slurm.yaml")
    sized = {n: cluster_of_size(spec, n) for n in workers}
    assert {n: (s["jobs"], s["cores"]) for n, s in sized.items()} == {
        18: (1, 18), 36: (1, 36), 72: (2, 36), 144: (4, 36), 288: (8, 36), 576: (16, 36), 1440: (40, 36)}
    assert sized[18]["memory"] == "36000000000B" and sized[1440]["memory"] == "72GB"


@pytest.mark.parametrize("kind, why", [("scheduler", "it has the workers that joined it"),
                                       ("slurm-runner", "`srun -n 146` gives it 144 workers")])
def test_kinds_sized_elsewhere_are_refused(kind, why):
    with pytest.raises(ConfigError, match=f"config key 'kind' = '{kind}': .*144 workers .*{why}"):
        cluster_of_size({"kind": kind, "tls": None}, 144)


@pytest.mark.parametrize("options, message", [
    (("--cluster-workers", 4), "--cluster-workers 4: sizes a cluster file of kind slurm or pbs"),
    (("--cluster", REPO / "config" / "cluster" / "slurm.yaml", "--cluster-workers", 50),
     f"--cluster-workers 50, cluster '{REPO / 'config' / 'cluster' / 'slurm.yaml'}': config key 'cores' = 36: "
     "50 workers are not a whole number of jobs of 36 workers"),
    (("--scheduler", "tcp://127.0.0.1:9", "--cluster-workers", 4),
     "--cluster-workers 4, cluster 'tcp://127.0.0.1:9': config key 'kind' = 'scheduler'"),
    (("--cluster-workers", 0), "argument --cluster-workers: must be an integer >= 1, got 0"),
])
def test_cli_refuses_sizes_it_cannot_meet_in_one_line(tmp_path, options, message):
    done = run_cli(*RUN, *options, "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith(f"esrepro: error: {message}"), done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
