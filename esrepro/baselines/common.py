"""What the Stable-Baselines3 baselines (TRPO, A2C) share: one run's driver, which trains an SB3
model, evaluates its deterministic policy every ``eval_every_timesteps``, checkpoints it every
``checkpoint_every`` timesteps and writes ``progress.csv`` (the suite's shared columns,
esrepro/progress.py) and ``run.json`` (esrepro/provenance.py) in the same format for every
algorithm (docs/design.md, Data flow).

The evaluation protocol is ours (the paper does not describe its baselines' evaluation): the
deterministic action (the mean, or the most probable discrete action), unnormalized rewards,
episode ``e`` of evaluation point ``k`` of run ``seed`` reset with the seed :func:`eval_seed`.

Checkpoints (docs/baselines.md): SB3's own save files (``model.save``: policy, optimizer and
counters; ``VecNormalize.save``: normalization statistics) as byte arrays, with the progress rows
and counters, through esrepro/checkpoint.py (atomic files, SHA-256 verified on read, refused when
damaged or made with other parameters).
"""

import io
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esrepro import checkpoint
from esrepro.atomic import atomic_output, write_json
from esrepro.progress import write_progress
from esrepro.provenance import collect

#: A baseline's columns of progress.csv after the shared ones (one row per evaluation point).
BASELINE_COLUMNS = ("return_min", "length_mean", "updates", "eval_time_s")


def eval_seed(seed: int, eval_index: int, episode: int) -> int:
    """Reset seed of evaluation episode ``episode`` at evaluation point ``eval_index`` of run ``seed``."""
    return int(np.random.SeedSequence([seed, eval_index, episode]).generate_state(1)[0])


def final_timesteps(params: dict) -> int:
    """Timesteps a run of ``params`` ends at: ``timesteps`` rounded up to a multiple of
    ``n_steps * n_envs`` (SB3's on-policy algorithms always complete a rollout)."""
    rollout = params["n_steps"] * params["n_envs"]
    return -(-params["timesteps"] // rollout) * rollout


def _stats(values) -> dict:
    """mean, std, max, min of ``values``; NaN for an empty list."""
    if not values:
        return dict.fromkeys(("mean", "std", "max", "min"), math.nan)
    a = np.asarray(values, dtype=float)
    return {"mean": a.mean(), "std": a.std(), "max": a.max(), "min": a.min()}


def _finite_or_none(x):
    """``float(x)``, or None for NaN (valid JSON)."""
    return None if x is None or math.isnan(x) else float(x)


def _no_extra_columns(timesteps: int) -> dict:
    return {}


@dataclass
class Setup:
    """What an algorithm module builds for one run, handed to :func:`train_baseline`.

    Attributes
    ----------
    model : stable_baselines3.common.base_class.BaseAlgorithm
        The untrained model; ``model.get_env()`` is its training VecEnv (closed after training).
        A resumed run replaces it with the checkpoint's (SB3's ``load`` on the same VecEnv).
    eval_env : gymnasium.Env
        The single evaluation env (closed after training).
    vecnormalize : stable_baselines3.common.vec_env.VecNormalize or None
        The training VecEnv's normalization, if any: its observation statistics, frozen at that
        moment, normalize the evaluation observations; it is checkpointed and written to
        ``vecnormalize.pkl`` after training. A resumed run replaces it with the checkpoint's.
    extra_columns : callable
        ``extra_columns(timesteps) -> dict`` of further progress columns (after
        :data:`BASELINE_COLUMNS`), also written to run.json for the final timesteps.
    """

    model: object
    eval_env: object
    vecnormalize: object | None = None
    extra_columns: Callable[[int], dict] = field(default=_no_extra_columns)


def evaluate(setup: Setup, seed: int, eval_index: int, episodes: int) -> dict:
    """``episodes`` deterministic episodes of the current policy on ``setup.eval_env``.

    Returns
    -------
    dict
        ``eval_return_mean``, ``eval_return_std`` (undiscounted, unnormalized returns) and
        ``eval_length_mean`` (env steps); NaN for ``episodes == 0``.
    """
    returns, lengths = [], []
    for episode in range(episodes):
        obs, _ = setup.eval_env.reset(seed=eval_seed(seed, eval_index, episode))
        total, length, done = 0.0, 0, False
        while not done:
            if setup.vecnormalize is not None:
                obs = setup.vecnormalize.normalize_obs(obs)
            action, _ = setup.model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = setup.eval_env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    r = _stats(returns)
    return {"eval_return_mean": r["mean"], "eval_return_std": r["std"],
            "eval_length_mean": _stats(lengths)["mean"]}


#: Numeric scalars of a baseline checkpoint (besides ``iteration``, the policy updates, and ``rows``).
COUNTERS = ("timesteps", "episodes", "wall_time_s")


def _checkpoint_shapes(setup: Setup) -> dict:
    """The arrays of a baseline checkpoint: SB3's save files as bytes (uint8, any length) and the
    training episodes finished since the last progress row (returns float64, lengths int64)."""
    names = ("model", "train_returns", "train_lengths", *(("vecnormalize",) if setup.vecnormalize is not None else ()))
    return dict.fromkeys(names, (None,))


def _sb3_files(setup: Setup) -> dict:
    """SB3's own save files of ``setup`` as uint8 arrays: ``model.save``'s zip (policy and optimizer
    state dicts, counters, hyperparameters) as ``model``, ``VecNormalize.save``'s pickle (running
    observation and return statistics) as ``vecnormalize``."""
    buffer = io.BytesIO()
    setup.model.save(buffer)
    files = {"model": np.frombuffer(buffer.getvalue(), dtype=np.uint8)}
    if setup.vecnormalize is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vecnormalize.pkl"
            setup.vecnormalize.save(path)
            files["vecnormalize"] = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    return files


def _load_sb3_files(setup: Setup, arrays: dict, out_dir: Path, iteration: int) -> None:
    """Replace ``setup.model`` (and ``setup.vecnormalize``) by SB3's ``load`` of the checkpoint's
    files, on the same training envs (``load`` reseeds the model with its seed and makes the envs
    reset before training).

    Raises
    ------
    esrepro.checkpoint.CheckpointDamaged
        If the loaded policy, optimizer or normalization statistics hold non-finite values.
    """
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    env = setup.model.get_env()
    if setup.vecnormalize is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vecnormalize.pkl"
            path.write_bytes(arrays["vecnormalize"].tobytes())
            env = setup.vecnormalize = VecNormalize.load(str(path), setup.vecnormalize.venv)
        stats = (setup.vecnormalize.obs_rms.mean, setup.vecnormalize.obs_rms.var, setup.vecnormalize.ret_rms.var)
        if not all(np.isfinite(a).all() for a in stats):
            raise checkpoint.damaged(out_dir, checkpoint.state_path(out_dir, iteration),
                                     "array 'vecnormalize' holds non-finite normalization statistics")
    setup.model = type(setup.model).load(io.BytesIO(arrays["model"].tobytes()), env=env, device="cpu")
    tensors = [*setup.model.policy.state_dict().values(),
               *(v for state in setup.model.policy.optimizer.state.values() for v in state.values()
                 if torch.is_tensor(v))]
    if not all(torch.isfinite(t).all() for t in tensors):
        raise checkpoint.damaged(out_dir, checkpoint.state_path(out_dir, iteration),
                                 "array 'model' holds non-finite policy or optimizer values")


def _progress_callback(setup: Setup, env_id: str, seed: int, params: dict, out_dir: Path, ident: dict, log):
    """The SB3 callback that counts training episodes, writes one progress row per evaluation
    point and a checkpoint every ``checkpoint_every`` timesteps and at the end (see
    :func:`train_baseline`'s notes); ``.rows`` and ``.episodes`` hold the results."""
    from stable_baselines3.common.callbacks import BaseCallback

    rollout = params["n_steps"] * params["n_envs"]  # each finished rollout is one policy update
    columns = (*BASELINE_COLUMNS, *setup.extra_columns(0))

    def after(steps: int, every: int) -> int:
        return (steps // every + 1) * every

    class Progress(BaseCallback):
        def __init__(self):
            super().__init__()
            self.rows = []
            self.episodes = 0
            self.returns, self.lengths = [], []
            self.next_eval, self.next_checkpoint = 0, params["checkpoint_every"]
            self.elapsed = 0.0  # wall_time_s before this process (a resumed run)

        def resume(self, arrays: dict, scalars: dict) -> None:
            """Continue from a checkpoint's rows, counters and pending training episodes."""
            self.rows, self.episodes, self.elapsed = scalars["rows"], scalars["episodes"], scalars["wall_time_s"]
            self.returns, self.lengths = arrays["train_returns"].tolist(), arrays["train_lengths"].tolist()
            self.next_eval = after(self.rows[-1]["timesteps"], params["eval_every_timesteps"]) if self.rows else 0
            self.next_checkpoint = after(scalars["timesteps"], params["checkpoint_every"])

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter() - self.elapsed  # wall_time_s: training and evaluation only

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:  # Monitor: a finished episode, unnormalized return
                    self.episodes += 1
                    self.returns.append(info["episode"]["r"])
                    self.lengths.append(info["episode"]["l"])
            return True

        def _on_rollout_start(self) -> None:  # after the previous rollout's policy update
            if self.model.num_timesteps >= self.next_eval:
                self.record()
            if self.model.num_timesteps >= self.next_checkpoint:
                self.save()

        def _on_training_end(self) -> None:
            if self.rows[-1]["timesteps"] != self.model.num_timesteps:
                self.record()
            self.save()

        def save(self) -> None:
            steps = self.model.num_timesteps
            arrays = _sb3_files(setup) | {"train_returns": np.asarray(self.returns, dtype=np.float64),
                                          "train_lengths": np.asarray(self.lengths, dtype=np.int64)}
            checkpoint.save(out_dir, ident, arrays, {
                "iteration": steps // rollout, "timesteps": steps, "episodes": self.episodes,
                "wall_time_s": time.perf_counter() - self.t0, "rows": self.rows})
            self.next_checkpoint = after(steps, params["checkpoint_every"])

        def record(self) -> None:
            steps = self.model.num_timesteps
            t_eval = time.perf_counter()
            ev = evaluate(setup, seed, len(self.rows), params["eval_episodes"])
            eval_time = time.perf_counter() - t_eval
            tr, ln = _stats(self.returns), _stats(self.lengths)
            row = {"iteration": len(self.rows), "timesteps": steps, "episodes": self.episodes,
                   "wall_time_s": time.perf_counter() - self.t0, "return_mean": tr["mean"],
                   "return_std": tr["std"], "return_max": tr["max"], **ev, "return_min": tr["min"],
                   "length_mean": ln["mean"], "updates": steps // rollout, "eval_time_s": eval_time,
                   **setup.extra_columns(steps)}
            self.rows.append(row)
            self.returns, self.lengths = [], []
            self.next_eval = after(steps, params["eval_every_timesteps"])
            write_progress(out_dir / "progress.csv", self.rows, columns)
            log(f"{env_id} seed {seed} | timesteps {steps:>10,d} | train return mean {tr['mean']:9.2f}"
                f" | eval {ev['eval_return_mean']:9.2f} | {row['wall_time_s']:8.1f} s")

    return Progress()


def train_baseline(algo: str, env_id: str, seed: int, params: dict, out_dir, threads: int, log,
                   build: Callable[[str, int, dict], Setup]) -> dict:
    """Validate ``params`` against ``algo``'s schema, build the run with ``build(env_id, seed,
    params)`` under ``threads`` torch threads, resume it from ``out_dir``'s checkpoint if there is
    one, train it, and write ``out_dir/{progress.csv, policy.zip, run.json, checkpoint/}`` (and
    ``vecnormalize.pkl`` with ``Setup.vecnormalize``).

    Parameters
    ----------
    algo : str
        A key of :data:`esrepro.config.PARAMS_SCHEMAS` ("trpo", "a2c"); run.json's ``algo``.
    env_id : str
        A registered gymnasium id.
    seed : int
        The run seed (``build`` seeds the model and training envs with it; evaluation episodes
        use :func:`eval_seed`).
    params : dict
        Validated run parameters (``esrepro.config.validate_params``, called by the caller). Must hold
        ``timesteps``, ``n_steps``, ``n_envs``, ``eval_every_timesteps``, ``eval_episodes``,
        ``checkpoint_every``.
    out_dir : path-like
        Created if missing. A checkpoint in it (``out_dir/checkpoint/``) is resumed; other
        outputs are overwritten.
    threads : int
        torch intra-op threads for this run (restored afterwards); part of the checkpoint's identity.
    log : callable
        Receives one progress line per evaluation point (and one when the run resumes).
    build : callable
        Builds the model and envs from the validated params (called with torch's threads set).

    Returns
    -------
    dict
        What run.json holds: algo, env, seed, the validated config, final timesteps, episodes,
        times, final evaluation return, threads and provenance (versions, commit, host).

    Raises
    ------
    ValueError
        For an unknown ``env_id``.
    esrepro.checkpoint.CheckpointDamaged, esrepro.checkpoint.CheckpointMismatch
        If ``out_dir`` holds a damaged checkpoint, or one made with another env, seed, parameter
        (``timesteps`` excepted) or ``threads``; raised before training, nothing written.

    Notes
    -----
    Training stops at the first multiple of ``n_steps * n_envs`` at or above ``timesteps``
    (:func:`final_timesteps`): SB3 only stops between rollouts. Evaluation points are the initial
    policy (row 0, timesteps 0), the first policy update boundary at or after each multiple of
    ``eval_every_timesteps``, and the end of training; each is evaluated after the policy update,
    so a row's policy was trained on exactly ``timesteps`` steps. ``return_*`` are the
    unnormalized returns (SB3's Monitor) of the training episodes finished since the previous row,
    NaN if none. ``wall_time_s`` counts training and evaluation from the start of ``learn``
    (validation, imports and env/model construction are ``setup_time_s`` in run.json), summed
    over the processes of a resumed run.

    Checkpoints are written at the first policy update boundary at or after each multiple of
    ``checkpoint_every`` and at the end of training. A resumed run continues from the
    checkpoint's timesteps and progress rows (no row repeated); its training envs start new
    episodes, so it is not bit-identical to an uninterrupted run (docs/baselines.md).

    A run is a function of (env, seed, params, threads): two runs with the same arguments on the
    same machine and library versions give identical progress (wall times aside). A different
    ``threads`` changes torch's float reduction order, so results differ in the last bits from the
    first update on and the runs diverge; keep ``threads`` fixed (1) for reproducible results.
    """
    import torch
    from stable_baselines3.common.logger import Logger

    from esrepro.envs.mujoco import check_env_id

    started = time.time()
    t_setup = time.perf_counter()
    check_env_id(env_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        setup = build(env_id, seed, params)
        try:
            num_params = sum(p.numel() for p in setup.model.policy.parameters())
            ident = checkpoint.identity(env_id, seed, num_params, params | {"threads": threads})
            progress = _progress_callback(setup, env_id, seed, params, out_dir, ident, log)
            saved = checkpoint.load(out_dir, ident, _checkpoint_shapes(setup), COUNTERS)
            if saved is not None:
                _load_sb3_files(setup, saved[0], out_dir, saved[1]["iteration"])
                progress.resume(*saved)
                log(f"resuming {out_dir} from timesteps {setup.model.num_timesteps:,}")
            setup_time = time.perf_counter() - t_setup
            # SB3's own logger would make a directory under /tmp on every learn(); progress is ours
            setup.model.set_logger(Logger(folder=None, output_formats=[]))
            setup.model.learn(total_timesteps=max(0, params["timesteps"] - setup.model.num_timesteps),
                              callback=progress, log_interval=None, reset_num_timesteps=False)
            with atomic_output(out_dir / "policy.zip") as tmp:
                setup.model.save(tmp)
            if setup.vecnormalize is not None:
                with atomic_output(out_dir / "vecnormalize.pkl") as tmp:
                    setup.vecnormalize.save(str(tmp))
            else:  # no stale one from another run
                (out_dir / "vecnormalize.pkl").unlink(missing_ok=True)
        finally:
            setup.model.get_env().close()
            setup.eval_env.close()
    finally:
        torch.set_num_threads(previous_threads)

    steps = int(setup.model.num_timesteps)
    last = progress.rows[-1]
    result = {"algo": algo, "env": env_id, "seed": seed, "config": params, "timesteps": steps,
              **setup.extra_columns(steps), "episodes": progress.episodes,
              "wall_time_s": last["wall_time_s"], "setup_time_s": setup_time,
              "final_eval_return_mean": _finite_or_none(last["eval_return_mean"]), "threads": threads,
              **collect(started)}
    write_json(out_dir / "run.json", result)
    return result
