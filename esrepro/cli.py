"""Command line: ``python -m esrepro train|summary|curves``."""

import argparse
import json
import os
import sys
from pathlib import Path

from esrepro.checkpoint import CheckpointMismatch
from esrepro.config import ConfigError, apply_schema, load_config, run_params


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _train(args) -> int:
    config = load_config(args.config) if args.config else apply_schema({"es": {"envs": {args.env: None}}})
    overrides = json.loads(args.params) if args.params else {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"--params must be a JSON object, got {args.params!r}")
    overrides |= {k: getattr(args, k) for k in ("iterations", "timesteps") if getattr(args, k) is not None}
    from esrepro.envs import check_env_id
    try:
        check_env_id(args.env)
    except ValueError as e:
        raise ConfigError(f"--env: {e}") from None
    params = run_params(config, args.env, overrides)
    out = args.out or Path(config.get("results_dir", "results")) / "es" / args.env / f"seed{args.seed}"
    scheduler = args.scheduler or os.environ.get("ESREPRO_SCHEDULER")
    from esrepro.train import train
    summary = train(args.env, args.seed, params, out, args.workers, scheduler, args.chunk_pairs,
                    log=lambda line: print(line, flush=True))
    print(f"done: {summary['iterations']} iterations, {summary['timesteps']:,} timesteps, "
          f"final eval return {summary['final_eval_return_mean']:.2f}, {summary['wall_time_s']:.1f} s -> {out}")
    return 0


def _summary(args) -> int:
    from esrepro.analysis.summary import write_summary
    write_summary(args.runs, args.reference, args.csv, args.md)
    return 0


def _curves(args) -> int:
    from esrepro.analysis.figures import plot_learning_curves
    for out in args.out:
        plot_learning_curves(args.runs, out)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="esrepro", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="one ES run on a Dask cluster, one progress line per iteration")
    t.add_argument("--env", required=True, help="gymnasium env id, e.g. InvertedPendulum-v5")
    t.add_argument("--seed", type=int, required=True, help="run seed (integer)")
    t.add_argument("--config", help="workflow config YAML (es.params and es.envs.<env> apply); default: schema defaults")
    t.add_argument("--params", help='JSON object of run-parameter overrides, e.g. \'{"sigma": 0.05}\'')
    t.add_argument("--iterations", type=int, help="budget in iterations (overrides the config)")
    t.add_argument("--timesteps", type=int, help="budget in timesteps (overrides the config)")
    t.add_argument("--workers", type=_positive, default=_cores(),
                   help="local Dask worker processes (default: the cores available, %(default)s here)")
    t.add_argument("--scheduler", help="existing Dask scheduler address or scheduler file "
                                       "(default: $ESREPRO_SCHEDULER, else a local cluster)")
    t.add_argument("--chunk-pairs", type=_positive, help="antithetic pairs per Dask task (default: ~4 tasks per worker)")
    t.add_argument("--out", type=Path, help="output directory (default: <results_dir>/es/<env>/seed<seed>)")
    t.set_defaults(func=_train)

    s = sub.add_parser("summary", help="ES MuJoCo summary table (CSV and Markdown)")
    s.add_argument("--runs", nargs="+", required=True, type=Path, help="run directories")
    s.add_argument("--reference", required=True, type=Path, help="paper/reference/table3_mujoco_detail.csv")
    s.add_argument("--csv", required=True, type=Path)
    s.add_argument("--md", required=True, type=Path)
    s.set_defaults(func=_summary)

    c = sub.add_parser("curves", help="learning-curve figure (eval return vs timesteps)")
    c.add_argument("--runs", nargs="+", required=True, type=Path, help="run directories")
    c.add_argument("--out", nargs="+", required=True, type=Path, help="figure files (.png, .pdf)")
    c.set_defaults(func=_curves)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CheckpointMismatch, FileNotFoundError) as e:
        print(f"esrepro: error: {e}", file=sys.stderr)
        return 2
