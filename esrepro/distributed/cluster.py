"""One function turns the run's cluster setting into a ``distributed.Client``; the ES code never
knows which kind of cluster it talks to."""

import contextlib
import os
from pathlib import Path

from distributed import Client, LocalCluster

#: BLAS and OpenMP pools pinned to one thread in every worker process: one worker = one core.
SINGLE_THREAD_ENV = {v: "1" for v in
                     ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


@contextlib.contextmanager
def connect(workers: int, scheduler: str | None = None):
    """Yield a Client, closing what was started here on exit.

    Parameters
    ----------
    workers : int
        For a local cluster: the number of single-threaded worker processes (one per core the
        job was given). Ignored when ``scheduler`` is set.
    scheduler : str, optional
        An existing Dask scheduler: an address (``tcp://host:8786``) or the path of a scheduler
        file (``dask scheduler --scheduler-file``). None starts a ``LocalCluster`` listening on
        127.0.0.1 only, with its dashboard on 127.0.0.1 (a free port; the link is printed).

    Raises
    ------
    ValueError
        If ``workers`` < 1 for a local cluster.
    """
    if scheduler:
        kind = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
        with Client(**kind) as client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    os.environ.update(SINGLE_THREAD_ENV)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env=SINGLE_THREAD_ENV) as cluster, \
            Client(cluster) as client:
        yield client
