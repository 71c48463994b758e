# Where the scaling runs' workers are (rules/scaling.smk): the scaling section's `cluster` key,
# checked before any job starts, and the threads, resources and options of each run.
import os

from esrepro.distributed.cluster import SINGLE_THREAD_ENV, cluster_of_size, load_cluster


def scaling_cluster():
    """(path, kind) of the scaling section's cluster file (a path relative to the repository), checked
    to size every worker count of the grid before any job starts; None without one."""
    name = (SCALING or {}).get("cluster")
    if name is None:
        return None
    path = Path(workflow.basedir) / name
    try:
        spec = load_cluster(path)
    except ConfigError as e:
        sys.exit(f"esrepro: error: config key 'scaling.cluster' = {name!r}: {e}")
    if spec["kind"] == "scheduler":
        sys.exit(
            f"esrepro: error: config key 'scaling.cluster' = {name!r}: kind 'scheduler' has the workers "
            "that joined it and cannot be sized per run; use kind slurm, pbs or slurm-runner"
        )
    for workers in SCALING["workers"] if spec["kind"] in ("slurm", "pbs") else []:
        try:
            cluster_of_size(spec, workers)
        except ConfigError as e:
            sys.exit(f"esrepro: error: config key 'scaling.workers' = {workers} with cluster file '{name}': {e}")
    return path, spec["kind"]


SCALING_CLUSTER = scaling_cluster()
# Kind slurm-runner: the job's tasks (Snakemake's slurm executor submits --ntasks=tasks and, for a
# job with an `mpi` resource, runs the shell command as it is instead of under `srun -n 1`).
SCALING_RESOURCES = (
    {"mpi": "srun", "tasks": lambda wildcards: int(wildcards.workers) + 2}
    if SCALING_CLUSTER and SCALING_CLUSTER[1] == "slurm-runner"
    else {}
)


def scaling_threads(wildcards):
    """Cores of a scaling job. With a cluster template: one (the ES master). Else its local cluster's
    workers; when Snakemake runs the job on this machine, every core (Snakemake caps threads at
    --cores), so that no other job shares the machine while it is timed."""
    if SCALING_CLUSTER is not None:
        return 1
    workers = int(wildcards.workers)
    return max(workers, os.cpu_count()) if workflow.local_exec else workers


def scaling_command(wildcards, resources):
    """What precedes a scaling run's `python -m esrepro train`: nothing, or for kind slurm-runner
    the BLAS pins and `srun -n N+2`."""
    if not SCALING_RESOURCES:
        return ""
    pins = " ".join(f"{k}={v}" for k, v in SINGLE_THREAD_ENV.items())
    return f"export {pins}; {resources.mpi} -n {resources.tasks} "


def scaling_workers(wildcards):
    """The train options that give a scaling run its worker count."""
    if SCALING_CLUSTER is None:
        return f"--workers {wildcards.workers}"
    path, kind = SCALING_CLUSTER
    sized = "" if kind == "slurm-runner" else f" --cluster-workers {wildcards.workers}"
    return f"--cluster {shlex.quote(str(path))}{sized}"
