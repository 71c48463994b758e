"""The ES training loop of one run (paper Algorithm 2; reference code es_distributed/es.py
run_master): each iteration asks for pairs, evaluates them on the workers, tells the strategy their
returns and records a row of progress.csv; checkpoints and resume."""

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from esrepro import checkpoint, provenance
from esrepro.atomic import write_json, write_npz
from esrepro.distributed.cluster import connect
from esrepro.distributed.hosts import Hosts
from esrepro.distributed.replicas import Update, apply_update
from esrepro.envs import ATARI
from esrepro.envs.atari import reference_batch
from esrepro.es.noise import NoiseTable
from esrepro.es.obstat import ObsStats
from esrepro.es.strategy import ESState, OpenES
from esrepro.progress import write_progress
from esrepro.run_config import RunConfig

#: ES's columns of progress.csv after the shared ones (one row per iteration; row 0 is the
#: initial policy, without population statistics).
ES_COLUMNS = ("return_min", "length_mean", "episode_cap", "pairs", "update_ratio", "obs_count", "iteration_time_s",
              "dropped_episodes")


class Trainer:
    """One ES run writing ``out_dir/{progress.csv, run.json, policy.npz, checkpoint/}``.

    Everything that can fail on the run's own inputs happens in the constructor, before a cluster
    exists: the env, the policy, the noise table and the checkpoint are made or read there.

    Parameters
    ----------
    config : RunConfig
    out_dir : path
    log : callable
        Receives one progress line per iteration.

    Raises
    ------
    checkpoint.CheckpointMismatch
        If ``out_dir`` holds a checkpoint of another configuration.
    """

    def __init__(self, config: RunConfig, out_dir, log=print):
        self.config, self.out_dir, self.log = config, Path(out_dir), log
        env = config.kind.make_env(config.env_id, config.env, config.max_episode_steps)
        atari = config.kind is ATARI
        self.reference = None
        if atari:  # collected once per run, the same on every worker
            p = config.env
            self.reference = reference_batch(config.env_id, p.frame_skip, p.noop_max, p.vbn_batch_size, config.seed)
        self.policy = config.kind.make_policy(env, config.env, self.reference)
        self.noise = NoiseTable(config.noise_table_size, config.noise_seed)
        self.es = OpenES(self.policy.init_params(np.random.default_rng([config.seed])), self.noise,
                         config.stepsize, config.l2coeff)
        self.obstat = None if atari else ObsStats(env.observation_space.shape[0])
        self.iteration = self.timesteps = self.episodes = 0
        self.wall_time_s = 0.0
        self.rows: list[dict] = []
        #: The row of the current parameters, waiting for their evaluation: its population
        #: statistics (none for row 0). Evaluation episodes run in the next iteration's round.
        self.pending: dict | None = None
        self.ident = checkpoint.identity(config.env_id, config.seed, self.policy.num_params, config.params())
        n, obs = self.policy.num_params, () if self.obstat is None else ("obs_sum", "obs_sumsq")
        saved = checkpoint.load(
            self.out_dir, self.ident, shapes={"theta": (n,), "adam_m": (n,), "adam_v": (n,)}
            | {k: self.obstat.sum.shape for k in obs},
            counters=("adam_t", "timesteps", "episodes", "wall_time_s", *(("obs_count",) if obs else ())))
        if saved is not None:
            self._restore(*saved)
            self.log(f"resuming {self.out_dir} from iteration {self.iteration}")
        self.workers: Hosts | None = None  # set by ``connect``
        self.chunk_pairs: int | None = None
        #: The last update, sent to the workers but not yet applied to ``es`` and ``obstat`` (``_tell``).
        self.untold: Update | None = None

    # -- the loop ------------------------------------------------------------------------
    def step(self):
        """One round on the workers: the pairs of the next iteration and the evaluation episodes
        of the current parameters (both use them), so no worker idles through a separate
        evaluation. Then record the current parameters' row, and ask -> evaluate -> tell unless
        that row ends the run (``target_return``): then the new pairs are dropped.

        In scalar mode the master's own tell waits for the next round: the update goes to the
        workers first, and the master applies it while they apply it to their replicas and run
        the round (``_catch_up``), not while they wait. So does writing progress.csv."""
        iteration = self.iteration + 1
        cap = self._episode_cap()
        pairs, evaluation, dropped = self._population(iteration, cap)  # ask and evaluate, on the hosts
        self._record(self.pending | evaluation)
        if self._target_reached():
            self.pending = None
            return
        self.iteration = iteration
        episodes = [ep for p in pairs for ep in p]  # flat lists make arrays fast: this is the master's critical path
        update = Update(np.array([p[0][3] for p in pairs], dtype=np.int64),
                        np.array([ep[4] for ep in episodes], dtype=np.float64).reshape(-1, 2),
                        [(ep[6], ep[7], ep[5]) for ep in episodes if ep[6] is not None])
        self.workers.advance(update)
        self.untold = update
        lengths = np.array([ep[5] for ep in episodes], dtype=np.int64).reshape(-1, 2)
        self.timesteps += int(lengths.sum())
        self.episodes += lengths.size
        returns = update.returns
        self.pending = {"pairs": len(update.noise_indices), "return_mean": returns.mean(),
                        "return_std": returns.std(), "episode_cap": np.nan if cap is None else cap,
                        "return_max": returns.max(), "return_min": returns.min(), "length_mean": lengths.mean(),
                        "dropped_episodes": dropped}
        if not self.config.scalar:  # broadcast: the next round's payload is the updated parameters
            self._tell()

    def _catch_up(self):
        """What the master does while the hosts run a round (in a thread of its own, ``Hosts``),
        and before a checkpoint: apply the untold update (``_tell``) and write progress.csv with
        the rows so far (a whole file each time, so it is kept off the critical path)."""
        self._tell()
        write_progress(self.out_dir / "progress.csv", self.rows, ES_COLUMNS)

    def _tell(self):
        """Apply the untold update to the master's state (``es``, ``obstat``) and complete the
        pending row with its update ratio and observation count."""
        if self.untold is not None:
            ratio = apply_update(self.es, self.obstat, self.untold)
            self.pending |= {"update_ratio": ratio, "obs_count": self.obstat.count if self.obstat else np.nan}
            self.untold = None

    def run(self, client, chunk_pairs: int | None = None) -> dict:
        """Train on ``client``'s workers until the budget is spent or ``target_return`` is reached;
        returns the run summary also written to run.json. ``chunk_pairs``: a worker takes the
        episodes of this many pairs at a time from its host's queue (None: guided sizes,
        ``coordinator``); it does not change results."""
        started, first_iteration = time.time(), self.iteration
        self.connect(client, chunk_pairs)
        while self.pending is not None and not self._budget_spent():
            self.step()
            if self.iteration % self.config.checkpoint_every == 0:
                self._checkpoint()
        if self.pending is not None:  # the last parameters' evaluation, in a round of its own
            evaluation = self._evaluate(self.iteration)  # the master's tell completes the pending row meanwhile
            self._record(self.pending | evaluation)
        self._checkpoint()  # keeps the last row pending too: a larger budget continues from here
        self._save_policy()
        self.workers.close()
        final, iterations = self.rows[-1], max(1, self.iteration - first_iteration)
        traffic = {"mode": self.config.communication, "host_calls_per_iteration": self.workers.calls // iterations,
                   "to_workers_per_iteration": self.workers.bytes_to_workers // iterations,
                   "from_workers_per_iteration": self.workers.bytes_from_workers // iterations,
                   "full_state_total": self.workers.bytes_full_state}
        summary = {"algo": "es", "env": self.config.env_id, "seed": self.config.seed, "config": self.config.params(),
                   "deterministic": self.config.deterministic,
                   "num_params": self.policy.num_params, "iterations": self.iteration,
                   "timesteps": self.timesteps, "episodes": self.episodes, "wall_time_s": self.wall_time_s,
                   "final_eval_return_mean": final["eval_return_mean"],
                   "workers": self.workers.count(), "hosts": len(self.workers.seen), "communication_bytes": traffic,
                   "faults": {"chunks_rerun": self.workers.chunks_rerun, "hosts_lost": self.workers.hosts_lost},
                   **provenance.collect(started)}
        write_json(self.out_dir / "run.json", summary)
        return summary

    # -- evaluation on the workers -------------------------------------------------------
    def connect(self, client, chunk_pairs: int | None = None, simulate: dict | None = None) -> None:
        """Use ``client``'s workers from now on (``run`` does this; ``step`` needs it); ``simulate``:
        simulated host workers (``benchmarks/scale_simulation.py``)."""
        self.chunk_pairs = chunk_pairs
        obs_dim = 0 if self.obstat is None else self.obstat.sum.size
        self.workers = Hosts(client, self.config, self.es, self.obstat, self.iteration, self.reference, obs_dim,
                             self.log, simulate)
        if not self.rows and self.pending is None:
            self.pending = {}  # row 0: the initial policy, without population statistics
        self._since = time.perf_counter()

    def _population(self, iteration, cap):
        """All pairs of ``iteration`` and the evaluation of the parameters they perturb (version
        ``iteration - 1``): ``pairs_per_iteration`` pairs with the evaluation episodes in one
        round, then more pairs in deterministic rounds until the iteration holds
        ``min_timesteps_per_iteration`` timesteps (the reference code's "episodes AND timesteps"
        batch rule, made independent of timing), or with ``batch: first_come`` the reference code's
        own rule (``Hosts.run_first_come``). Training episodes stop after ``cap`` steps if it is not
        None.

        Returns
        -------
        (the pairs, each the ``tasks.run_episodes`` results of its two episodes, in pair order
        (first come: in the order they completed); the evaluation's columns; the episodes dropped)
        """
        n, minimum = self.config.pairs_per_iteration, self.config.min_timesteps_per_iteration
        evals = list(range(self.config.eval_episodes))
        if not self.config.deterministic:
            pairs, evaluation, dropped = self.workers.run_first_come(iteration, n, minimum, evals, cap,
                                                                     self._catch_up)
            return pairs, _evaluation(evaluation), dropped
        chunk = self.chunk_pairs and 2 * self.chunk_pairs
        results, evaluation = self.workers.run(iteration, range(n), evals, cap, chunk, meanwhile=self._catch_up)
        lengths = _timesteps(results)
        while lengths < minimum:
            extra = math.ceil((minimum - lengths) / (2 * lengths / (2 * n)))
            more, _ = self.workers.run(iteration, range(n, n + extra), [], cap, chunk)
            results |= more
            n += extra
            lengths += _timesteps(more)
        pairs = [results[j] for j in range(n)]
        return pairs, _evaluation(evaluation), 0

    def _episode_cap(self) -> int | None:
        """This iteration's adaptive episode cap (paper section 2.1): ``episode_cap_factor`` times the
        previous iteration's mean training episode length, or None (off, or the first iteration)."""
        factor, previous = self.config.episode_cap_factor, self.pending.get("length_mean", np.nan)
        return None if factor is None or np.isnan(previous) else math.ceil(factor * previous)

    def _evaluate(self, iteration):
        """The evaluation of the parameters of version ``iteration``, in a round of its own."""
        _, evaluation = self.workers.run(iteration, range(0), list(range(self.config.eval_episodes)), None,
                                         meanwhile=self._catch_up)
        return _evaluation(evaluation)

    def _budget_spent(self):
        c = self.config
        return ((c.iterations is not None and self.iteration >= c.iterations)
                or (c.timesteps is not None and self.timesteps >= c.timesteps))

    def _target_reached(self):
        target = self.config.target_return
        return target is not None and self.rows[-1]["eval_return_mean"] >= target

    # -- state and outputs ---------------------------------------------------------------
    def _checkpoint(self):
        self._catch_up()
        state = asdict(self.es.state())
        scalars = {"adam_t": state.pop("adam_t"), "iteration": self.iteration, "timesteps": self.timesteps,
                   "episodes": self.episodes, "wall_time_s": self.wall_time_s, "rows": self.rows,
                   "pending": self.pending}
        if self.obstat is not None:
            state |= {"obs_sum": self.obstat.sum, "obs_sumsq": self.obstat.sumsq}
            scalars["obs_count"] = self.obstat.count
        checkpoint.save(self.out_dir, self.ident, state, scalars)

    def _restore(self, arrays, scalars):
        c = self.config
        state = ESState(arrays["theta"], arrays["adam_m"], arrays["adam_v"], scalars["adam_t"])
        self.es = OpenES.from_state(state, self.noise, c.stepsize, c.l2coeff)
        if self.obstat is not None:
            self.obstat = ObsStats.from_sums(arrays["obs_sum"], arrays["obs_sumsq"], scalars["obs_count"])
        for key in ("iteration", "timesteps", "episodes", "wall_time_s", "rows", "pending"):
            setattr(self, key, scalars[key])
        if self.pending is not None and self.rows[-1]["iteration"] == self.iteration:
            self.rows.pop()  # a finished run's last row: made again by the next round

    def _record(self, row):
        """Append the current parameters' row (progress.csv gets it in ``_catch_up``); its time is
        the run's time since the last row."""
        now = time.perf_counter()
        seconds, self._since = now - self._since, now
        self.wall_time_s += seconds
        self.rows.append({"iteration": self.iteration, "timesteps": self.timesteps, "episodes": self.episodes,
                          "wall_time_s": self.wall_time_s, "iteration_time_s": seconds, **row})
        r = self.rows[-1]
        self.log(f"{self.config.env_id} seed {self.config.seed} | iter {r['iteration']:4d}"
                 f" | timesteps {r['timesteps']:>10,d} | pop return mean {r.get('return_mean', np.nan):9.2f}"
                 f" max {r.get('return_max', np.nan):9.2f} | eval {r['eval_return_mean']:9.2f} | {seconds:6.2f} s/iter")

    def _save_policy(self):
        p = self.config.env
        if self.config.kind is ATARI:
            kind = {"reference_batch": self.reference, "network": np.array(p.network),
                    "frame_skip": np.array(p.frame_skip)}
        else:
            kind = {"obs_mean": self.obstat.mean, "obs_std": self.obstat.std, "hidden": np.array(p.hidden),
                    "action_bins": np.array(p.action_bins)}
        write_npz(self.out_dir / "policy.npz", theta=self.es.theta, env_id=np.array(self.config.env_id), **kind)


def _timesteps(pairs: dict) -> int:
    """Timesteps of the pairs' episodes (``run_episodes`` results, by pair index)."""
    return sum(ep[5] for episodes in pairs.values() for ep in episodes)


def _evaluation(results: list) -> dict:
    """The evaluation columns of a row from the ``run_episodes`` results of its episodes."""
    if not results:
        return {"eval_return_mean": np.nan, "eval_return_std": np.nan, "eval_length_mean": np.nan}
    res = np.array([(ret, length) for _, _, ret, length in sorted(results, key=lambda r: r[1])], dtype=np.float64)
    return {"eval_return_mean": res[:, 0].mean(), "eval_return_std": res[:, 0].std(),
            "eval_length_mean": res[:, 1].mean()}


def train(config: RunConfig, out_dir, workers=1, scheduler=None, chunk_pairs=None, log=print, cluster=None) -> dict:
    """Run ES for ``config`` on a new local cluster of ``workers`` processes (or on ``scheduler``,
    or the validated cluster file ``cluster``: see ``esrepro.distributed.cluster.connect``) and
    return the run summary. Resumes from ``out_dir``'s checkpoint if any; the run's inputs and its
    checkpoint are checked before the cluster starts."""
    trainer = Trainer(config, out_dir, log)
    with connect(workers, scheduler, cluster) as client:
        log(f"dask dashboard: {client.dashboard_link}")
        return trainer.run(client, chunk_pairs)
