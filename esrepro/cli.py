"""Command line: ``python -m esrepro train|trpo|summary|tables|curves``."""

import argparse
import json
import os
import sys
from pathlib import Path

from esrepro.checkpoint import CheckpointMismatch
from esrepro.config import ConfigError, apply_schema, load_config, run_params


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _run_setup(args, algo: str):
    """(validated run parameters, output directory) of a ``train``/``trpo`` invocation."""
    from esrepro.envs import check_env_id
    try:
        check_env_id(args.env)
    except ValueError as e:
        raise ConfigError(f"--env: {e}") from None
    if args.config:
        config = load_config(args.config)
    else:  # the schema defaults alone ("es" is a required section)
        config = apply_schema({name: {"envs": {args.env: None}} for name in ("es", algo)})
    if algo not in config:
        raise ConfigError(f"config file '{args.config}' has no '{algo}' section")
    overrides = json.loads(args.params) if args.params else {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"--params must be a JSON object, got {args.params!r}")
    overrides |= {k: getattr(args, k) for k in ("iterations", "timesteps") if getattr(args, k, None) is not None}
    params = run_params(config, args.env, overrides, algo=algo)
    out = args.out or Path(config["results_dir"]) / algo / args.env / f"seed{args.seed}"
    return params, out


def _log(line: str) -> None:
    print(line, flush=True)


def _train(args) -> int:
    params, out = _run_setup(args, "es")
    scheduler = args.scheduler or os.environ.get("ESREPRO_SCHEDULER")
    from esrepro.train import train
    summary = train(args.env, args.seed, params, out, args.workers, scheduler, args.chunk_pairs, log=_log)
    print(f"done: {summary['iterations']} iterations, {summary['timesteps']:,} timesteps, "
          f"final eval return {summary['final_eval_return_mean']:.2f}, {summary['wall_time_s']:.1f} s -> {out}")
    return 0


def _trpo(args) -> int:
    params, out = _run_setup(args, "trpo")
    from esrepro.baselines.trpo import train_trpo
    summary = train_trpo(args.env, args.seed, params, out, args.threads, log=_log)
    print(f"done: {summary['timesteps']:,} timesteps, final eval return {summary['final_eval_return_mean']:.2f},"
          f" {summary['wall_time_s']:.1f} s -> {out}")
    return 0


def _tables(args) -> int:
    from esrepro.analysis.tables import write_mujoco_tables
    write_mujoco_tables(args.runs, args.paper_table1, args.paper_table3, args.table1, args.table3,
                        args.budget_timesteps)
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

    def run_arguments(p, algo):
        p.add_argument("--env", required=True, help="gymnasium env id, e.g. InvertedPendulum-v5")
        p.add_argument("--seed", type=int, required=True, help="run seed (integer)")
        p.add_argument("--config", help=f"workflow config YAML ({algo}.params and {algo}.envs.<env> apply); "
                                        "default: schema defaults")
        p.add_argument("--params", help='JSON object of run-parameter overrides, e.g. \'{"sigma": 0.05}\'')
        p.add_argument("--timesteps", type=int, help="budget in timesteps (overrides the config)")
        p.add_argument("--out", type=Path, help=f"output directory (default: <results_dir>/{algo}/<env>/seed<seed>)")

    t = sub.add_parser("train", help="one ES run on a Dask cluster, one progress line per iteration")
    run_arguments(t, "es")
    t.add_argument("--iterations", type=int, help="budget in iterations (overrides the config)")
    t.add_argument("--workers", type=_positive, default=_cores(),
                   help="local Dask worker processes (default: the cores available, %(default)s here)")
    t.add_argument("--scheduler", help="existing Dask scheduler address or scheduler file "
                                       "(default: $ESREPRO_SCHEDULER, else a local cluster)")
    t.add_argument("--chunk-pairs", type=_positive, help="antithetic pairs per Dask task (default: ~4 tasks per worker)")
    t.set_defaults(func=_train)

    b = sub.add_parser("trpo", help="one TRPO baseline run (sb3-contrib), one progress line per evaluation")
    run_arguments(b, "trpo")
    b.add_argument("--threads", type=_positive, default=1, help="torch threads (default: %(default)s)")
    b.set_defaults(func=_trpo)

    s = sub.add_parser("summary", help="ES MuJoCo summary table (CSV and Markdown)")
    s.add_argument("--runs", nargs="+", required=True, type=Path, help="run directories")
    s.add_argument("--reference", required=True, type=Path, help="paper/reference/table3_mujoco_detail.csv")
    s.add_argument("--csv", required=True, type=Path)
    s.add_argument("--md", required=True, type=Path)
    s.set_defaults(func=_summary)

    m = sub.add_parser("tables", help="the paper's Table 1 and Table 3 (ES vs TRPO) from runs of both")
    m.add_argument("--runs", nargs="+", required=True, type=Path, help="ES and TRPO run directories")
    m.add_argument("--paper-table1", required=True, type=Path, help="paper/reference/table1_mujoco_ratios.csv")
    m.add_argument("--paper-table3", required=True, type=Path, help="paper/reference/table3_mujoco_detail.csv")
    m.add_argument("--table1", required=True, type=Path, help="output prefix (writes .csv, .md, .tex)")
    m.add_argument("--table3", required=True, type=Path, help="output prefix (writes .csv, .md, .tex)")
    m.add_argument("--budget-timesteps", type=int, help="TRPO's final level is taken here (paper: 5000000); "
                                                        "default: the end of its runs")
    m.set_defaults(func=_tables)

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
