"""The ES training loop of one run: iterations over a Dask client, progress, checkpoints, resume
(paper Algorithm 2; reference code es_distributed/es.py run_master)."""

import math
import time
from pathlib import Path

import numpy as np

from esrepro import checkpoint, provenance
from esrepro.atomic import write_json, write_npz
from esrepro.distributed.cluster import connect
from esrepro.distributed.tasks import NoiseTablePlugin, RunSpec, build_policy, evaluate_pairs, evaluate_policy
from esrepro.envs import make_env
from esrepro.es.noise import NoiseTable
from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import OpenES
from esrepro.progress import write_progress


#: ES's columns of progress.csv after the shared ones (one row per iteration; row 0 is the
#: initial policy, without population statistics).
ES_COLUMNS = ("return_min", "length_mean", "pairs", "update_ratio", "obs_count", "iteration_time_s")


def run_spec(env_id: str, seed: int, params: dict) -> RunSpec:
    """The worker-side settings of a run from its validated parameters."""
    return RunSpec(env_id=env_id, run_seed=seed, sigma=params["sigma"],
                   noise_table_size=params["noise_table_size"], noise_seed=params["noise_seed"],
                   hidden=tuple(params["hidden"]), action_bins=params["action_bins"],
                   max_episode_steps=params["max_episode_steps"], obs_norm_prob=params["obs_norm_prob"],
                   action_noise_std=params["action_noise_std"])


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
        Antithetic pairs per task; None: about four tasks per worker. Does not change results.
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
        env = make_env(env_id, params["max_episode_steps"])
        self.policy = build_policy(self.spec, env)
        self.noise = NoiseTable(params["noise_table_size"], params["noise_seed"])
        self.es = OpenES(self.policy.init_params(np.random.default_rng([seed])), self.noise,
                         params["stepsize"], params["l2coeff"])
        self.obstat = ObsStats(env.observation_space.shape[0])
        self.iteration = self.timesteps = self.episodes = 0
        self.wall_time_s = 0.0
        self.rows: list[dict] = []
        self._payload_future = None
        self.ident = checkpoint.identity(env_id, seed, self.policy.num_params, params)
        saved = checkpoint.load(self.out_dir, self.ident)
        if saved is not None:
            self._restore(*saved)
            self.log(f"resuming {self.out_dir} from iteration {self.iteration}")
        client.register_plugin(NoiseTablePlugin(self.noise.size, self.noise.seed),
                               name=self.spec.noise_plugin_name)

    # -- state ---------------------------------------------------------------------------
    def _restore(self, arrays, scalars):
        self.es.theta = arrays["theta"]
        self.es.optimizer.m, self.es.optimizer.v = arrays["adam_m"], arrays["adam_v"]
        self.es.optimizer.t = scalars["adam_t"]
        self.obstat.sum, self.obstat.sumsq = arrays["obs_sum"], arrays["obs_sumsq"]
        self.obstat.count = scalars["obs_count"]
        for key in ("iteration", "timesteps", "episodes", "wall_time_s", "rows"):
            setattr(self, key, scalars[key])

    def _checkpoint(self):
        checkpoint.save(
            self.out_dir, self.ident,
            {"theta": self.es.theta, "adam_m": self.es.optimizer.m, "adam_v": self.es.optimizer.v,
             "obs_sum": self.obstat.sum, "obs_sumsq": self.obstat.sumsq},
            {"adam_t": self.es.optimizer.t, "obs_count": self.obstat.count, "iteration": self.iteration,
             "timesteps": self.timesteps, "episodes": self.episodes, "wall_time_s": self.wall_time_s,
             "rows": self.rows})

    def _payload(self):
        """Parameters and observation statistics, sent to every worker once per version (one
        future, shared by the evaluation after an update and the next iteration's pairs)."""
        if self._payload_future is None:
            [self._payload_future] = self.client.scatter(
                [(self.es.theta, self.obstat.mean, self.obstat.std)], broadcast=True, hash=False)
        return self._payload_future

    # -- one iteration -------------------------------------------------------------------
    def _chunks(self, start, stop):
        size = self.chunk_pairs or max(1, math.ceil((stop - start) / (4 * self._n_workers())))
        return [(a, min(a + size, stop)) for a in range(start, stop, size)]

    def _n_workers(self):
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def _evaluate_pairs(self, payload, iteration, start, stop):
        futures = [self.client.submit(evaluate_pairs, self.spec, payload, iteration, a, b, pure=False)
                   for a, b in self._chunks(start, stop)]
        return self.client.gather(futures)

    def _population(self, payload, iteration):
        """All pairs of ``iteration``: ``pairs_per_iteration``, then more in deterministic rounds
        until the iteration holds ``min_timesteps_per_iteration`` timesteps (the reference code's
        "episodes AND timesteps" batch rule, made independent of timing)."""
        n = self.params["pairs_per_iteration"]
        parts = self._evaluate_pairs(payload, iteration, 0, n)
        lengths = np.concatenate([p["lengths"] for p in parts])
        while lengths.sum() < self.params["min_timesteps_per_iteration"]:
            missing = self.params["min_timesteps_per_iteration"] - lengths.sum()
            extra = math.ceil(missing / (2 * lengths.mean()))
            parts += self._evaluate_pairs(payload, iteration, n, n + extra)
            n += extra
            lengths = np.concatenate([p["lengths"] for p in parts])
        return parts

    def _evaluate(self, iteration):
        episodes = list(range(self.params["eval_episodes"]))
        if not episodes:
            return {"eval_return_mean": np.nan, "eval_return_std": np.nan, "eval_length_mean": np.nan}
        payload = self._payload()
        futures = [self.client.submit(evaluate_policy, self.spec, payload, iteration, [e], pure=False)
                   for e in episodes]
        res = np.concatenate(self.client.gather(futures))
        return {"eval_return_mean": res[:, 0].mean(), "eval_return_std": res[:, 0].std(),
                "eval_length_mean": res[:, 1].mean()}

    def step(self):
        """One iteration: evaluate the population, update, evaluate the new parameters."""
        t0 = time.perf_counter()
        self.iteration += 1
        parts = self._population(self._payload(), self.iteration)
        noise_indices = np.concatenate([p["noise_indices"] for p in parts])
        returns = np.concatenate([p["returns"] for p in parts])
        lengths = np.concatenate([p["lengths"] for p in parts])
        update_ratio = self.es.tell(noise_indices, returns)
        for part in parts:  # pair order: chunks are ordered and each lists its pairs in order
            for _, s, ss, c in part["obs"]:
                self.obstat.increment(s, ss, c)
        self._payload_future = None
        self.timesteps += int(lengths.sum())
        self.episodes += lengths.size
        row = {"pairs": len(noise_indices), "return_mean": returns.mean(), "return_std": returns.std(),
               "return_max": returns.max(), "return_min": returns.min(), "length_mean": lengths.mean(),
               "update_ratio": update_ratio, "obs_count": self.obstat.count}
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
        iterations, timesteps = self.params["iterations"], self.params["timesteps"]
        return ((iterations is not None and self.iteration >= iterations)
                or (timesteps is not None and self.timesteps >= timesteps))

    def run(self) -> dict:
        """Train until the budget is spent; returns the run summary also written to run.json."""
        started = time.time()
        if not self.rows:  # row 0: the initial policy, before any update
            t0 = time.perf_counter()
            self._record(self._evaluate(0), time.perf_counter() - t0)
        while not self._done():
            self.step()
            if self.iteration % self.params["checkpoint_every"] == 0:
                self._checkpoint()
        self._checkpoint()
        write_npz(self.out_dir / "policy.npz", theta=self.es.theta, obs_mean=self.obstat.mean,
                  obs_std=self.obstat.std, hidden=np.array(self.spec.hidden),
                  action_bins=np.array(self.spec.action_bins), env_id=np.array(self.env_id))
        final = self.rows[-1]
        summary = {"algo": "es", "env": self.env_id, "seed": self.seed, "config": self.params,
                   "num_params": self.policy.num_params, "iterations": self.iteration,
                   "timesteps": self.timesteps, "episodes": self.episodes, "wall_time_s": self.wall_time_s,
                   "final_eval_return_mean": final["eval_return_mean"],
                   "workers": self._n_workers(), **provenance.collect(started)}
        write_json(self.out_dir / "run.json", summary)
        return summary


def train(env_id, seed, params, out_dir, workers=1, scheduler=None, chunk_pairs=None, log=print) -> dict:
    """Run ES on ``env_id`` with ``seed`` on a new local cluster of ``workers`` processes (or on
    ``scheduler``) and return the run summary. Resumes from ``out_dir``'s checkpoint if any."""
    with connect(workers, scheduler) as client:
        log(f"dask dashboard: {client.dashboard_link}")
        return Trainer(env_id, seed, params, out_dir, client, chunk_pairs, log).run()
