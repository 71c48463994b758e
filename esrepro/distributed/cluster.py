"""One function turns the run's cluster setting into a ``distributed.Client``; the ES code never
knows which kind of cluster it talks to.

The setting is one of: nothing (a ``LocalCluster`` on 127.0.0.1), an existing scheduler
(``--scheduler``/``$ESREPRO_SCHEDULER``), or a cluster file (``--cluster``/``$ESREPRO_CLUSTER``,
schema ``config/cluster.schema.yaml``) of kind ``scheduler``, ``slurm``/``pbs`` (dask-jobqueue
batch jobs as workers) or ``slurm-runner`` (dask-jobqueue's ``SLURMRunner`` inside one
``srun -n N`` job). Workers are single-threaded processes with BLAS pools of one thread.
"""

import contextlib
import copy
import os
import sys
import warnings
from pathlib import Path

import dask
from dask.utils import parse_bytes
from distributed import Client, LocalCluster, Security

from esrepro.config import CONFIG_DIR, ConfigError, read_mapping, validate_schema

#: BLAS, OpenMP and OpenCV pools pinned to one thread in every worker process: one worker = one
#: core. OpenCV (the Atari preprocessing's resize) keeps a pthreads pool of one thread per core that
#: OMP_NUM_THREADS does not reach: its resize of a 210x160 frame took 77 us of CPU for 52 us of wall
#: time, against 53 us of both on one thread.
SINGLE_THREAD_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "VECLIB_MAXIMUM_THREADS", "OPENCV_FOR_THREADS_NUM")}

#: Dask settings of the workers esrepro starts. Distributed's defaults wake a worker's profiler every
#: 10 ms and its event loop's tick every 20 ms, and each wake-up takes the GIL from the task thread
#: stepping the simulator (benchmarks/worker_env_step.py: on the CPU 0.91-0.94 of its wall time with
#: the defaults, 0.98 with these). The dashboard's Profile page still fills, at a coarser grain, and
#: an unresponsive event loop is still reported (``distributed.admin.tick.limit``, 3 s).
WORKER_DASK_CONFIG = {"distributed.worker.profile.interval": "100ms", "distributed.admin.tick.interval": "200ms"}


def dask_env(config: dict) -> dict:
    """``config`` as the environment variables Dask reads at start-up (``DASK_DISTRIBUTED__ADMIN__...``)."""
    return {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): value for key, value in config.items()}


CLUSTER_SCHEMA = CONFIG_DIR / "cluster.schema.yaml"
_BATCH_KEYS = {"cores", "memory", "jobs", "walltime", "account", "queue", "job_extra_directives",
               "job_script_prologue", "log_directory", "shared_temp_directory", "local_directory", "interface"}
#: The keys of a cluster file each kind reads besides ``kind`` and ``tls``, and those it requires.
KIND_KEYS = {"scheduler": {"scheduler"}, "slurm": _BATCH_KEYS, "pbs": _BATCH_KEYS,
             "slurm-runner": {"scheduler_file", "interface", "local_directory"}}
KIND_REQUIRED = {"scheduler": ("scheduler",), "slurm": ("cores", "memory"), "pbs": ("cores", "memory"),
                 "slurm-runner": ()}


def load_cluster(path) -> dict:
    """Read and validate a cluster file against ``config/cluster.schema.yaml`` (defaults filled in).

    Returns
    -------
    dict
        ``kind``, ``tls`` (a dict of paths or None) and the keys of that kind (``KIND_KEYS``).

    Raises
    ------
    ConfigError
        One line naming the file, the key and the value: a missing file, an unknown key, a key of
        another kind, a missing required key, a bad value, an unparsable ``memory``, a ``tls``
        file that does not exist.
    """
    path = Path(path)
    data = read_mapping(path, "cluster file")
    if "kind" not in data:
        raise ConfigError(f"cluster file '{path}': config key 'kind' is required (one of {', '.join(KIND_KEYS)})")
    try:
        return _check_kind(validate_schema(copy.deepcopy(data), CLUSTER_SCHEMA), given=set(data))
    except ConfigError as e:
        raise ConfigError(f"cluster file '{path}': {e}") from None


def _check_kind(spec: dict, given: set) -> dict:
    kind = spec["kind"]
    foreign = sorted(given - KIND_KEYS[kind] - {"kind", "tls"})
    if foreign:
        key = foreign[0]
        raise ConfigError(f"config key '{key}' = {spec[key]!r} does not apply to kind '{kind}' "
                          f"(its keys: {', '.join(sorted(KIND_KEYS[kind]))}, tls)")
    for key in KIND_REQUIRED[kind]:
        if key not in given:
            raise ConfigError(f"config key '{key}' is required for kind '{kind}'")
    if "memory" in given:
        try:
            parse_bytes(spec["memory"])
        except ValueError:
            raise ConfigError(f"config key 'memory' = {spec['memory']!r}: not a size such as '72GB'") from None
    for part, file in (spec.get("tls") or {}).items():
        if not Path(file).is_file():
            raise ConfigError(f"config key 'tls.{part}' = {file!r}: no such file")
    return {"kind": kind, "tls": spec.get("tls")} | {key: spec[key] for key in KIND_KEYS[kind]}


def resolve_cluster(scheduler: str | None = None, cluster_file=None, environ=os.environ) -> dict | None:
    """The validated cluster setting of a run: ``scheduler`` or ``cluster_file`` (the command
    line), else ``$ESREPRO_SCHEDULER`` or ``$ESREPRO_CLUSTER``; None for a local cluster.

    Raises
    ------
    ConfigError
        If both a scheduler and a cluster file are given, or the cluster file is invalid.
    """
    if not (scheduler or cluster_file):
        scheduler, cluster_file = environ.get("ESREPRO_SCHEDULER"), environ.get("ESREPRO_CLUSTER")
    if scheduler and cluster_file:
        raise ConfigError(f"both a scheduler ({scheduler!r}) and a cluster file ({str(cluster_file)!r}) "
                          "are given: use --scheduler/$ESREPRO_SCHEDULER or --cluster/$ESREPRO_CLUSTER")
    if scheduler:
        return {"kind": "scheduler", "scheduler": scheduler, "tls": None}
    return load_cluster(cluster_file) if cluster_file else None


def cluster_of_size(spec: dict, workers: int) -> dict:
    """A cluster file of kind slurm or pbs sized to exactly ``workers`` worker processes: the
    scaling experiment (paper §4.3, Figure 1) times each worker count on a cluster of that size
    made from one template.

    Parameters
    ----------
    spec : dict
        A validated cluster file (:func:`load_cluster`); not modified.
    workers : int
        Worker processes wanted (>= 1).

    Returns
    -------
    dict
        A copy of ``spec``: ``jobs`` = ``workers / cores`` jobs of ``cores`` workers; for
        ``workers`` <= ``cores`` one job of ``workers`` cores with the same memory per worker.

    Raises
    ------
    ConfigError
        One line naming the value: a kind other than slurm or pbs (``scheduler`` has the workers
        that joined it; ``slurm-runner`` gets its size from ``srun -n``), ``workers`` < 1, or
        ``workers`` above ``cores`` and not a multiple of it.
    """
    kind, cores = spec["kind"], spec.get("cores")
    if kind not in ("slurm", "pbs"):
        sized_by = {"scheduler": "it has the workers that joined it",
                    "slurm-runner": f"`srun -n {workers + 2}` gives it {workers} workers"}[kind]
        raise ConfigError(f"config key 'kind' = '{kind}': a cluster of this kind cannot be sized to {workers} workers "
                          f"from its file ({sized_by}); use kind slurm or pbs")
    if workers < 1:
        raise ConfigError(f"workers = {workers}: at least 1 worker is needed")
    if workers <= cores:
        return spec | {"jobs": 1, "cores": workers, "memory": f"{parse_bytes(spec['memory']) * workers // cores}B"}
    if workers % cores:
        raise ConfigError(f"config key 'cores' = {cores}: {workers} workers are not a whole number of jobs of "
                          f"{cores} workers (give worker counts that are multiples of 'cores', or a 'cores' that "
                          f"divides them)")
    return spec | {"jobs": workers // cores}


def security(tls: dict | None) -> Security | None:
    """TLS settings of a run: the cluster file's ``tls`` paths (one CA, and one certificate and
    key for the client, scheduler and worker roles), else Dask's own configuration
    (``distributed.comm.tls.*``, e.g. ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``) when it names a
    CA file, else None."""
    if tls is None:
        configured = Security()
        return configured if configured.tls_ca_file else None
    return Security(require_encryption=True, tls_ca_file=tls["ca_file"],
                    **{f"tls_{role}_{part}": tls[part] for role in ("client", "scheduler", "worker")
                       for part in ("cert", "key")})


def jobqueue_cluster(spec: dict):
    """A dask-jobqueue ``SLURMCluster`` or ``PBSCluster`` for a validated cluster file of kind
    slurm or pbs, with no job submitted yet (``scale(jobs=...)`` submits).

    Each batch job runs ``cores`` single-threaded worker processes of this interpreter
    (``sys.executable``, so it must be at the same path on the compute nodes) with
    ``SINGLE_THREAD_ENV`` and ``WORKER_DASK_CONFIG`` exported. The scheduler runs
    in this process, with TLS (``security``, or dask-jobqueue's temporary self-signed certificates)
    and its dashboard on 127.0.0.1.
    """
    from dask_jobqueue import PBSCluster, SLURMCluster
    cls = {"slurm": SLURMCluster, "pbs": PBSCluster}[spec["kind"]]
    worker_env = SINGLE_THREAD_ENV | dask_env(WORKER_DASK_CONFIG)
    prologue = spec["job_script_prologue"] + [f"export {k}={v}" for k, v in worker_env.items()]
    return cls(cores=spec["cores"], processes=spec["cores"], memory=spec["memory"], walltime=spec["walltime"],
               account=spec["account"], queue=spec["queue"], job_extra_directives=spec["job_extra_directives"],
               job_script_prologue=prologue, log_directory=spec["log_directory"],
               local_directory=spec["local_directory"], interface=spec["interface"], python=sys.executable,
               security=security(spec["tls"]) or True,
               shared_temp_directory=spec["shared_temp_directory"] or os.getcwd(),
               scheduler_options={"dashboard_address": "127.0.0.1:0"})


def worker_addresses(client) -> list[str]:
    """The addresses of the cluster's workers, asked of the scheduler now.

    Not ``Client.scheduler_info()``: that returns the client's cached identity, which the client's
    own periodic refresh (every 2 s) can replace with one that lists no worker between the fetch and
    the read (distributed 2026.8: 2 calls in 28,000 saw none on an idle machine; under load a run
    took every host for lost and stalled)."""
    return list(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


@contextlib.contextmanager
def connect(workers: int, scheduler: str | None = None, cluster: dict | None = None):
    """Yield a Client, closing what was started here on exit. With neither ``scheduler`` nor
    ``cluster``, a ``LocalCluster`` listens on 127.0.0.1 only, with its dashboard on 127.0.0.1
    (a free port; the link is printed).

    Parameters
    ----------
    workers : int
        For a local cluster: the number of single-threaded worker processes (one per core the
        job was given). Ignored when ``scheduler`` or ``cluster`` is set.
    scheduler : str, optional
        An existing Dask scheduler: an address (``tcp://host:8786``, ``tls://...``) or the path of
        a scheduler file (``dask scheduler --scheduler-file``); TLS from Dask's configuration.
    cluster : dict, optional
        A validated cluster file (``load_cluster``/``resolve_cluster``). Kind slurm/pbs submits
        ``jobs`` batch jobs and waits for all their workers; slurm-runner waits for the job's
        worker ranks, and only its client rank (1) returns from here: the scheduler and worker
        ranks serve until the client closes, then exit the process.

    Raises
    ------
    ValueError
        If ``workers`` < 1 for a local cluster, or both ``scheduler`` and ``cluster`` are given.
    ConfigError
        For slurm-runner, if the job's environment does not pin the BLAS pools (its ranks are the
        worker processes, started before this function runs).
    """
    if scheduler and cluster:
        raise ValueError("give scheduler or cluster, not both")
    if scheduler:
        cluster = {"kind": "scheduler", "scheduler": scheduler, "tls": None}
    if cluster is None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        os.environ.update(SINGLE_THREAD_ENV)
        with (dask.config.set(WORKER_DASK_CONFIG),  # the nanny passes the caller's config to its worker
              LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", env=SINGLE_THREAD_ENV) as local,
              Client(local, direct_to_workers=True) as client):
            yield client
    elif cluster["kind"] == "scheduler":
        target = cluster["scheduler"]
        where = {"scheduler_file": target} if Path(target).is_file() else {"address": target}
        with Client(**where, security=security(cluster["tls"]), direct_to_workers=True) as client:
            yield client
    elif cluster["kind"] == "slurm-runner":
        with _slurm_runner(cluster) as client:
            yield client
    else:
        with jobqueue_cluster(cluster) as batch, Client(batch, direct_to_workers=True) as client:
            batch.scale(jobs=cluster["jobs"])
            client.wait_for_workers(cluster["jobs"] * cluster["cores"])
            yield client


def _tls_slurm_runner(sec: Security | None):
    """dask-jobqueue's ``SLURMRunner`` with a ``security`` attribute (``Client(runner)`` reads it)
    whose client rank also shuts the scheduler down over TLS: dask-jobqueue 0.9.0 opens that rpc
    without the security settings, so closing a TLS runner fails with "TLS expects a
    `ssl_context` argument". ``before_client_start`` is the runner's documented hook."""
    from dask_jobqueue.slurm import SLURMRunner
    from distributed.core import rpc

    class Runner(SLURMRunner):
        security = sec

        async def before_client_start(self):
            if sec is not None:
                self.scheduler_comm = rpc(self.scheduler_address, connection_args=sec.get_connection_args("client"))

    return Runner


@contextlib.contextmanager
def _slurm_runner(spec: dict):
    unpinned = [k for k, v in SINGLE_THREAD_ENV.items() if os.environ.get(k) != v]
    if unpinned:
        raise ConfigError(f"cluster kind 'slurm-runner': every rank is a worker process; run "
                          f"'export {' '.join(f'{k}=1' for k in unpinned)}' before srun")
    sec = security(spec["tls"])
    if sec is None:
        warnings.warn("cluster kind 'slurm-runner' without TLS: scheduler and workers talk unencrypted "
                      "(set the cluster file's tls keys or Dask's distributed.comm.tls config)", stacklevel=2)
    common = {"interface": spec["interface"], "security": sec}
    scratch = spec["local_directory"] and os.path.expandvars(spec["local_directory"])
    runner = _tls_slurm_runner(sec)(
        scheduler_file=os.path.expandvars(spec["scheduler_file"]),
        scheduler_options=common | {"protocol": "tls" if sec else "tcp", "dashboard_address": "127.0.0.1:0"},
        worker_options=common | {"nthreads": 1, "local_directory": scratch})
    with runner, Client(runner, direct_to_workers=True) as client:
        client.wait_for_workers(runner.n_workers)
        yield client
