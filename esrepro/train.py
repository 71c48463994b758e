"""The ES training loop of one run: iterations over a Dask client, progress, checkpoints, resume
(paper Algorithm 2; reference code es_distributed/es.py run_master)."""

import math
import time
import uuid
from pathlib import Path

import numpy as np

from esrepro import checkpoint, provenance
from esrepro.atomic import write_json, write_npz
from esrepro.distributed.cluster import connect
from esrepro.distributed.tasks import (NoiseTablePlugin, RunSpec, Sync, Update, apply_update, build_policy, checksum,
                                       drop_replica, evaluate_pairs, evaluate_policy, load_replica, make_run_env,
                                       value)
from esrepro.es.noise import NoiseTable
from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import OpenES
from esrepro.progress import write_progress


#: ES's columns of progress.csv after the shared ones (one row per iteration; row 0 is the
#: initial policy, without population statistics).
ES_COLUMNS = ("return_min", "length_mean", "pairs", "update_ratio", "obs_count", "iteration_time_s")


def run_spec(env_id: str, seed: int, params: dict) -> RunSpec:
    """The worker-side settings of a run from its validated parameters (Atari runs are those
    with a ``frame_skip``)."""
    common = dict(env_id=env_id, run_seed=seed, sigma=params["sigma"], noise_table_size=params["noise_table_size"],
                  noise_seed=params["noise_seed"], max_episode_steps=params["max_episode_steps"])
    if "frame_skip" in params:
        return RunSpec(**common, frame_skip=params["frame_skip"], noop_max=params["noop_max"],
                       network=params["network"])
    return RunSpec(**common, obs_norm_prob=params["obs_norm_prob"], action_noise_std=params["action_noise_std"],
                   hidden=tuple(params["hidden"]), action_bins=params["action_bins"])


class Trainer:
    """One ES run writing ``out_dir/{progress.csv, run.json, policy.npz, checkpoint/}``.

    Parameters
    ----------
    env_id : str
    seed : int
    params : dict
        Validated run parameters (``esrepro.config.run_params``).
    out_dir : path
    client : distributed.Client
    chunk_pairs : int, optional
        Antithetic pairs per task; None: decreasing chunk sizes (``_chunks``). Does not change
        results.
    log : callable
        Receives one progress line per iteration.

    Raises
    ------
    checkpoint.CheckpointMismatch
        If ``out_dir`` holds a checkpoint of another configuration.
    """

    def __init__(self, env_id, seed, params, out_dir, client, chunk_pairs=None, log=print):
        self.env_id, self.seed, self.params = env_id, seed, params
        self.out_dir, self.client, self.chunk_pairs, self.log = Path(out_dir), client, chunk_pairs, log
        self.spec = run_spec(env_id, seed, params)
        env = make_run_env(self.spec)
        self.reference = None
        if self.spec.atari:  # collected once per run, the same on every worker
            from esrepro.envs.atari import reference_batch
            self.reference = reference_batch(env_id, self.spec.frame_skip, self.spec.noop_max,
                                             params["vbn_batch_size"], seed)
        self.policy = build_policy(self.spec, env, self.reference)
        self.noise = NoiseTable(params["noise_table_size"], params["noise_seed"])
        self.es = OpenES(self.policy.init_params(np.random.default_rng([seed])), self.noise,
                         params["stepsize"], params["l2coeff"])
        self.obstat = None if self.spec.atari else ObsStats(env.observation_space.shape[0])
        self.iteration = self.timesteps = self.episodes = 0
        self.wall_time_s = 0.0
        self.rows: list[dict] = []
        self.scalar = params["communication"] == "scalar"
        self.run_key = uuid.uuid4().hex  # names this run's replicas on the workers (scalar mode)
        self._last_update: Update | None = None
        self._payload_future = None
        self.ident = checkpoint.identity(env_id, seed, self.policy.num_params, params)
        n, obs = self.policy.num_params, () if self.obstat is None else ("obs_sum", "obs_sumsq")
        saved = checkpoint.load(
            self.out_dir, self.ident, shapes={"theta": (n,), "adam_m": (n,), "adam_v": (n,)}
            | {k: self.obstat.sum.shape for k in obs},
            counters=("adam_t", "timesteps", "episodes", "wall_time_s", *(("obs_count",) if obs else ())))
        if saved is not None:
            self._restore(*saved)
            self.log(f"resuming {self.out_dir} from iteration {self.iteration}")
        client.register_plugin(NoiseTablePlugin(self.noise.size, self.noise.seed),
                               name=self.spec.noise_plugin_name)
        self._reference = None if self.reference is None else client.scatter(self.reference, broadcast=True,
                                                                              hash=False)

    # -- state ---------------------------------------------------------------------------
    def _state(self) -> tuple[dict, dict]:
        """The run's full state: (arrays, scalars) without the progress rows and counters."""
        arrays = {"theta": self.es.theta, "adam_m": self.es.optimizer.m, "adam_v": self.es.optimizer.v}
        scalars = {"adam_t": self.es.optimizer.t}
        if self.obstat is not None:
            arrays |= {"obs_sum": self.obstat.sum, "obs_sumsq": self.obstat.sumsq}
            scalars |= {"obs_count": self.obstat.count}
        return arrays, scalars

    def _restore(self, arrays, scalars):
        self.es.theta = arrays["theta"]
        self.es.optimizer.m, self.es.optimizer.v = arrays["adam_m"], arrays["adam_v"]
        self.es.optimizer.t = scalars["adam_t"]
        if self.obstat is not None:
            self.obstat.sum, self.obstat.sumsq = arrays["obs_sum"], arrays["obs_sumsq"]
            self.obstat.count = scalars["obs_count"]
        for key in ("iteration", "timesteps", "episodes", "wall_time_s", "rows"):
            setattr(self, key, scalars[key])

    def _checkpoint(self):
        arrays, scalars = self._state()
        checkpoint.save(self.out_dir, self.ident, arrays,
                        scalars | {"iteration": self.iteration, "timesteps": self.timesteps,
                                   "episodes": self.episodes, "wall_time_s": self.wall_time_s, "rows": self.rows})

    # -- communication -------------------------------------------------------------------
    def _payload(self):
        """What the workers need to know the current parameters, once per version (one future,
        shared by the evaluation after an update and the next iteration's pairs): the parameters
        and observation statistics (broadcast mode), or a ``Sync`` of a few KB (scalar mode).

        It is the result of a task that returns it, not scattered data: a worker fetches it once
        from a peer, and if every holder dies Dask recomputes it. (A broadcast ``scatter`` hangs
        when a worker dies during its replication.)"""
        if self._payload_future is None:
            if self.scalar:
                payload = Sync(self.run_key, self.es.optimizer.t, self._last_update, checksum(self.es.theta))
            else:
                obstat = self.obstat
                payload = (self.es.theta, obstat and obstat.mean, obstat and obstat.std)
            self._payload_future = self.client.submit(value, payload, pure=False)
        return self._payload_future

    def _send_state(self, workers):
        """Scalar mode: install the full state on ``workers`` (each joined or restarted). A worker
        that dies meanwhile is skipped: its tasks run elsewhere, and any stale answer comes back."""
        arrays, scalars = self._state()
        state = arrays | scalars | {"version": self.es.optimizer.t, "stepsize": self.params["stepsize"],
                                    "l2coeff": self.params["l2coeff"]}
        for worker in sorted(workers):
            try:
                [data] = self.client.scatter([state], workers=[worker], hash=False)
                self.client.submit(load_replica, self.spec, self.run_key, data, workers=[worker],
                                   allow_other_workers=True, pure=False).result(timeout=60)
            except Exception as e:  # the worker left (lost data, no valid workers, timeout)
                self.log(f"could not send the full state to {worker} ({type(e).__name__}); it left the cluster?")
                continue
            self.log(f"sent the full state (version {self.es.optimizer.t}) to {worker}")

    def _gather(self, calls: list[tuple]) -> list:
        """Results of ``calls`` [(task, *args)], in order; every task gets the run spec, the VBN
        reference batch and the current parameters before its own args. In scalar mode a worker
        without the current replica answers stale: it gets the full state and its calls run again."""
        results, todo = [None] * len(calls), list(range(len(calls)))
        while todo:
            futures = [self.client.submit(calls[i][0], self.spec, self._reference, self._payload(), *calls[i][1:],
                                          pure=False) for i in todo]
            stale = set()
            for i, result in zip(todo, self.client.gather(futures)):
                if isinstance(result, dict) and "stale" in result:
                    stale.add(result["stale"])
                else:
                    results[i] = result
            todo = [i for i in todo if results[i] is None]
            if stale:
                self._send_state(stale)
        return results

    # -- one iteration -------------------------------------------------------------------
    def _chunks(self, start, stop):
        """Pairs ``start..stop`` as (a, b) task ranges: ``chunk_pairs`` each, or by default
        decreasing sizes (guided scheduling): each chunk holds 1/(2 workers) of the pairs left,
        but at least 1/(8 workers) of all, so the last tasks of an iteration are small and the
        workers finish together, with about 2-8 tasks per worker."""
        if self.chunk_pairs:
            return [(a, min(a + self.chunk_pairs, stop)) for a in range(start, stop, self.chunk_pairs)]
        workers = self._n_workers()
        smallest = math.ceil((stop - start) / (8 * workers))
        chunks, a = [], start
        while a < stop:
            b = min(stop, a + max(smallest, math.ceil((stop - a) / (2 * workers))))
            chunks.append((a, b))
            a = b
        return chunks

    def _n_workers(self):
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def _evaluate_pairs(self, iteration, start, stop):
        return self._gather([(evaluate_pairs, iteration, a, b) for a, b in self._chunks(start, stop)])

    def _population(self, iteration):
        """All pairs of ``iteration``: ``pairs_per_iteration``, then more in deterministic rounds
        until the iteration holds ``min_timesteps_per_iteration`` timesteps (the reference code's
        "episodes AND timesteps" batch rule, made independent of timing)."""
        n = self.params["pairs_per_iteration"]
        parts = self._evaluate_pairs(iteration, 0, n)
        lengths = np.concatenate([p["lengths"] for p in parts])
        while lengths.sum() < self.params["min_timesteps_per_iteration"]:
            missing = self.params["min_timesteps_per_iteration"] - lengths.sum()
            extra = math.ceil(missing / (2 * lengths.mean()))
            parts += self._evaluate_pairs(iteration, n, n + extra)
            n += extra
            lengths = np.concatenate([p["lengths"] for p in parts])
        return parts

    def _evaluate(self, iteration):
        episodes = range(self.params["eval_episodes"])
        if not episodes:
            return {"eval_return_mean": np.nan, "eval_return_std": np.nan, "eval_length_mean": np.nan}
        res = np.concatenate(self._gather([(evaluate_policy, iteration, [e]) for e in episodes]))
        return {"eval_return_mean": res[:, 0].mean(), "eval_return_std": res[:, 0].std(),
                "eval_length_mean": res[:, 1].mean()}

    def step(self):
        """One iteration: evaluate the population, update, evaluate the new parameters."""
        t0 = time.perf_counter()
        self.iteration += 1
        parts = self._population(self.iteration)
        lengths = np.concatenate([p["lengths"] for p in parts])
        # pair order: chunks are ordered and each lists its pairs in order
        update = Update(np.concatenate([p["noise_indices"] for p in parts]),
                        np.concatenate([p["returns"] for p in parts]),
                        [(s, ss, c) for p in parts for _, s, ss, c in p["obs"]])
        update_ratio = apply_update(self.es, self.obstat, update)
        self._last_update, self._payload_future = update, None
        self.timesteps += int(lengths.sum())
        self.episodes += lengths.size
        returns = update.returns
        row = {"pairs": len(update.noise_indices), "return_mean": returns.mean(), "return_std": returns.std(),
               "return_max": returns.max(), "return_min": returns.min(), "length_mean": lengths.mean(),
               "update_ratio": update_ratio, "obs_count": self.obstat.count if self.obstat else np.nan}
        self._record(row | self._evaluate(self.iteration), time.perf_counter() - t0)

    def _record(self, row, seconds):
        self.wall_time_s += seconds
        self.rows.append({"iteration": self.iteration, "timesteps": self.timesteps, "episodes": self.episodes,
                          "wall_time_s": self.wall_time_s, "iteration_time_s": seconds, **row})
        write_progress(self.out_dir / "progress.csv", self.rows, ES_COLUMNS)
        r = self.rows[-1]
        self.log(f"{self.env_id} seed {self.seed} | iter {r['iteration']:4d} | timesteps {r['timesteps']:>10,d}"
                 f" | pop return mean {r.get('return_mean', np.nan):9.2f} max {r.get('return_max', np.nan):9.2f}"
                 f" | eval {r['eval_return_mean']:9.2f} | {seconds:6.2f} s/iter")

    def _done(self):
        iterations, timesteps, target = (self.params[k] for k in ("iterations", "timesteps", "target_return"))
        return ((iterations is not None and self.iteration >= iterations)
                or (timesteps is not None and self.timesteps >= timesteps)
                or (target is not None and self.rows[-1]["eval_return_mean"] >= target))

    def _save_policy(self):
        if self.spec.atari:
            write_npz(self.out_dir / "policy.npz", theta=self.es.theta, reference_batch=self.reference,
                      network=np.array(self.spec.network), frame_skip=np.array(self.spec.frame_skip),
                      env_id=np.array(self.env_id))
        else:
            write_npz(self.out_dir / "policy.npz", theta=self.es.theta, obs_mean=self.obstat.mean,
                      obs_std=self.obstat.std, hidden=np.array(self.spec.hidden),
                      action_bins=np.array(self.spec.action_bins), env_id=np.array(self.env_id))

    def run(self) -> dict:
        """Train until the budget is spent or ``target_return`` is reached; returns the run
        summary also written to run.json."""
        started = time.time()
        if not self.rows:  # row 0: the initial policy, before any update
            t0 = time.perf_counter()
            self._record(self._evaluate(0), time.perf_counter() - t0)
        while not self._done():
            self.step()
            if self.iteration % self.params["checkpoint_every"] == 0:
                self._checkpoint()
        self._checkpoint()
        self._save_policy()
        if self.scalar:
            self.client.run(drop_replica, self.run_key)
        final = self.rows[-1]
        summary = {"algo": "es", "env": self.env_id, "seed": self.seed, "config": self.params,
                   "num_params": self.policy.num_params, "iterations": self.iteration,
                   "timesteps": self.timesteps, "episodes": self.episodes, "wall_time_s": self.wall_time_s,
                   "final_eval_return_mean": final["eval_return_mean"],
                   "workers": self._n_workers(), **provenance.collect(started)}
        write_json(self.out_dir / "run.json", summary)
        return summary


def train(env_id, seed, params, out_dir, workers=1, scheduler=None, chunk_pairs=None, log=print,
          cluster=None) -> dict:
    """Run ES on ``env_id`` with ``seed`` on a new local cluster of ``workers`` processes (or on
    ``scheduler``, or the validated cluster file ``cluster``: see ``esrepro.distributed.cluster.connect``)
    and return the run summary. Resumes from ``out_dir``'s checkpoint if any."""
    with connect(workers, scheduler, cluster) as client:
        log(f"dask dashboard: {client.dashboard_link}")
        return Trainer(env_id, seed, params, out_dir, client, chunk_pairs, log).run()
