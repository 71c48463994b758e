"""Command line: ``python -m esrepro train|trpo|a2c|summary|tables|curves|atari-table|frameskip-figure|scaling``
and ``claims|play``."""

import argparse
import os
import sys
from pathlib import Path

from esrepro.config import INT64_MAX, ConfigError, apply_schema, load_config, parse_json_object, run_params
from esrepro.envs import ATARI, MUJOCO, kind_of
from esrepro.errors import InputError, RunFailed


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _run_setup(args, algo: str):
    """(validated run parameters, output directory) of a ``train``/``trpo``/``a2c`` invocation."""
    from esrepro.config import env_id
    from esrepro.envs.atari import TABLE2_FRAME_SKIP, game_name
    kind = kind_of(args.env)
    section = {(MUJOCO, "es"): "es", (MUJOCO, "trpo"): "trpo", (ATARI, "es"): "atari", (ATARI, "a2c"): "a2c"}.get(
        (kind, algo))
    if section is None:
        raise ConfigError(f"--env '{args.env}': {algo} runs {'MuJoCo' if algo == 'trpo' else 'Atari'} envs only")
    key = game_name(args.env) if kind is ATARI else args.env
    try:
        env_id(section, key)
    except ConfigError as e:
        raise ConfigError(f"--env: {str(e).split(': ', 1)[1]}") from None
    config = None
    if args.config:
        config = load_config(args.config)
        if section not in config:
            raise ConfigError(f"config file '{args.config}' has no '{section}' section")
    overrides = parse_json_object(args.params, "--params") if args.params else {}
    overrides |= {k: getattr(args, k) for k in ("iterations", "timesteps") if getattr(args, k, None) is not None}
    grid = {"frame_skip": TABLE2_FRAME_SKIP} if section == "atari" and "frame_skip" not in overrides else {}
    if section == "trpo" and config and "preset" not in overrides:
        grid = {"preset": _config_preset(config, key, args.config)}
    params = run_params(config, key, grid, section, overrides)
    # The workflow's layout: es/<game>/frameskip<k>/, trpo/<preset>/<env>/.
    variant = f"frameskip{params['frame_skip']}" if section == "atari" else ""
    preset = params["preset"] if section == "trpo" else ""
    results = config["results_dir"] if config else apply_schema({})["results_dir"]
    out = args.out or Path(results) / algo / preset / key / variant / f"seed{args.seed}"
    return params, out


def _config_preset(config: dict, env: str, path) -> str:
    """The TRPO preset a workflow config gives ``env`` when the command line gives none: its only one
    (:func:`esrepro.baselines.trpo.grid_presets`).

    Raises
    ------
    ConfigError
        If the config runs ``env`` with several presets (``trpo.presets``).
    """
    from esrepro.baselines.trpo import grid_presets
    presets = grid_presets(config, env)
    if len(presets) > 1:
        raise ConfigError(f"config file '{path}' runs {env} with the TRPO presets {', '.join(presets)} "
                          f"(trpo.presets): choose one with --params '{{\"preset\": \"{presets[0]}\"}}'")
    return presets[0]


def _log(line: str) -> None:
    print(line, flush=True)


def _train(args) -> int:
    params, out = _run_setup(args, "es")
    from esrepro.distributed.cluster import cluster_of_size, resolve_cluster
    cluster = resolve_cluster(args.scheduler, args.cluster)  # validated before any work starts
    if args.cluster_workers is not None:
        if cluster is None:
            raise ConfigError(f"--cluster-workers {args.cluster_workers}: sizes a cluster file of kind slurm or pbs "
                              "(--cluster or $ESREPRO_CLUSTER); a local cluster takes --workers")
        try:
            cluster = cluster_of_size(cluster, args.cluster_workers)
        except ConfigError as e:
            given = (args.scheduler or args.cluster or os.environ.get("ESREPRO_SCHEDULER")
                     or os.environ.get("ESREPRO_CLUSTER"))
            raise ConfigError(f"--cluster-workers {args.cluster_workers}, cluster '{given}': {e}") from None
    from esrepro.run_config import RunConfig
    from esrepro.train import train
    summary = train(RunConfig.from_params(args.env, args.seed, params), out, args.workers,
                    chunk_pairs=args.chunk_pairs, log=_log, cluster=cluster)
    print(f"done: {summary['iterations']} iterations, {summary['timesteps']:,} timesteps, "
          f"final eval return {summary['final_eval_return_mean']:.2f}, {summary['wall_time_s']:.1f} s -> {out}")
    return 0


def _baseline(args) -> int:
    params, out = _run_setup(args, args.algo)
    if args.algo == "trpo":
        from esrepro.baselines.trpo import train_trpo as train
    else:
        from esrepro.baselines.a2c import train_a2c as train
    summary = train(args.env, args.seed, params, out, args.threads, log=_log)
    print(f"done: {summary['timesteps']:,} timesteps, final eval return {summary['final_eval_return_mean']:.2f},"
          f" {summary['wall_time_s']:.1f} s -> {out}")
    return 0


def _aggregate(write, *args) -> int:
    """Run one aggregation writer; the runs it leaves out (its UserWarnings) print as one line each,
    ``esrepro: warning: ...``."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        write(*args)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"esrepro: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return 0


def _summary(args) -> int:
    from esrepro.analysis.mujoco_tasks import write_summary
    return _aggregate(write_summary, args.runs, args.reference, args.out)


def _tables(args) -> int:
    from esrepro.analysis.mujoco_tasks import write_mujoco_tables
    return _aggregate(write_mujoco_tables, args.runs, args.paper_table1, args.paper_table3, args.table1,
                      args.table3, args.budget_timesteps)


def _curves(args) -> int:
    from esrepro.analysis.mujoco_tasks import plot_learning_curves
    return _aggregate(plot_learning_curves, args.runs, args.out)


def _atari_table(args) -> int:
    from esrepro.analysis.atari_games import write_atari_table
    return _aggregate(write_atari_table, args.runs, args.reference_es_a3c, args.reference_a2c, args.out)


def _frameskip_figure(args) -> int:
    from esrepro.analysis.atari_games import plot_frameskip
    return _aggregate(plot_frameskip, args.runs, args.game, args.out)


def _scaling(args) -> int:
    from esrepro.analysis.scaling import write_scaling
    return _aggregate(write_scaling, args.runs, args.reference, args.table, args.figure, args.simulation,
                      args.simulation_batch)


def _claims(args) -> int:
    from esrepro.analysis.claims import write_claims
    return _aggregate(write_claims, args.runs, args.out, args.table1, args.table3, args.atari, args.scaling)


def _play(args) -> int:
    from esrepro.play import play
    out = play(args.run_dir, args.out, args.frames, args.seed, args.size, args.fps)
    print(f"{args.frames} frames -> {out}")
    return 0


def _integer(low: int):
    """An argparse type: an integer in [low, 2^63 - 1]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= INT64_MAX:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value
    return parse


_positive = _integer(1)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line ``esrepro: error: ...`` (exit 2) like every other."""

    def error(self, message):
        self.exit(2, f"esrepro: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="esrepro", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def run_arguments(p, algo):
        p.add_argument("--env", required=True, help="gymnasium env id, e.g. InvertedPendulum-v5 or ALE/Pong-v5")
        p.add_argument("--seed", type=_integer(0), required=True, help="run seed (integer >= 0)")
        p.add_argument("--config", help=f"workflow config YAML ({algo}.params and {algo}.envs.<env> apply); "
                                        "default: schema defaults")
        p.add_argument("--params", help='JSON object of run-parameter overrides, e.g. \'{"sigma": 0.05}\'')
        p.add_argument("--timesteps", type=_positive, help="budget in timesteps (overrides the config)")
        layout = "trpo/<preset>/<env>" if algo == "trpo" else f"{algo}/<env>"
        p.add_argument("--out", type=Path, help=f"output directory (default: <results_dir>/{layout}/seed<seed>)")

    t = sub.add_parser("train", help="one ES run on a Dask cluster, one progress line per iteration")
    run_arguments(t, "es")
    t.add_argument("--iterations", type=_positive, help="budget in iterations (overrides the config)")
    t.add_argument("--workers", type=_positive, default=_cores(),
                   help="local Dask worker processes (default: the cores available, %(default)s here)")
    t.add_argument("--scheduler", help="existing Dask scheduler address or scheduler file "
                                       "(default: $ESREPRO_SCHEDULER, else a local cluster)")
    t.add_argument("--cluster", type=Path, help="cluster file: an existing scheduler, Slurm/PBS batch jobs or one "
                                                "srun job (config/cluster/*.yaml, schema config/cluster.schema.yaml;"
                                                " default: $ESREPRO_CLUSTER, else a local cluster)")
    t.add_argument("--cluster-workers", type=_positive,
                   help="size the cluster file's batch jobs (kind slurm or pbs) to exactly this many workers: "
                        "N / cores jobs, or one job of N cores below cores (the scaling experiment; default: "
                        "the file's jobs x cores)")
    t.add_argument("--chunk-pairs", type=_positive,
                   help="antithetic pairs per Dask task (default: decreasing sizes, 3-6 tasks per worker)")
    t.set_defaults(func=_train)

    b = sub.add_parser("trpo", help="one TRPO baseline run (sb3-contrib), one progress line per evaluation")
    run_arguments(b, "trpo")
    b.add_argument("--threads", type=_positive, default=1, help="torch threads (default: %(default)s)")
    b.set_defaults(func=_baseline, algo="trpo")

    a2c = sub.add_parser("a2c", help="one A2C baseline run on Atari (SB3), one progress line per evaluation")
    run_arguments(a2c, "a2c")
    a2c.add_argument("--threads", type=_positive, default=1, help="torch threads (default: %(default)s)")
    a2c.set_defaults(func=_baseline, algo="a2c")

    tables = "table files: .csv, .md, .tex (format by suffix)"
    figures = "figure files: .png, .pdf, ... (format by suffix)"
    s = sub.add_parser("summary", help="ES MuJoCo summary table")
    s.add_argument("--runs", nargs="+", required=True, type=Path, help="run directories")
    s.add_argument("--reference", required=True, type=Path, help="paper/reference/table3_mujoco_detail.csv")
    s.add_argument("--out", nargs="+", required=True, type=Path, help=tables)
    s.set_defaults(func=_summary)

    m = sub.add_parser("tables", help="the paper's Table 1 and Table 3 (ES vs TRPO) from runs of both")
    m.add_argument("--runs", nargs="+", required=True, type=Path, help="ES and TRPO run directories")
    m.add_argument("--paper-table1", required=True, type=Path, help="paper/reference/table1_mujoco_ratios.csv")
    m.add_argument("--paper-table3", required=True, type=Path, help="paper/reference/table3_mujoco_detail.csv")
    m.add_argument("--table1", nargs="+", required=True, type=Path, help=tables)
    m.add_argument("--table3", nargs="+", required=True, type=Path, help=tables)
    m.add_argument("--budget-timesteps", type=int, help="TRPO's final level is taken here (paper: 5000000); "
                                                        "default: the end of its runs")
    m.set_defaults(func=_tables)

    c = sub.add_parser("curves", help="learning-curve figure (eval return vs timesteps)")
    c.add_argument("--runs", nargs="+", required=True, type=Path, help="run directories")
    c.add_argument("--out", nargs="+", required=True, type=Path, help=figures)
    c.set_defaults(func=_curves)

    a = sub.add_parser("atari-table", help="the paper's Table 2 (Atari) from ES (frame-skip 4) and A2C runs")
    a.add_argument("--runs", nargs="+", required=True, type=Path, help="ES and A2C Atari run directories")
    a.add_argument("--reference-es-a3c", required=True, type=Path, help="paper/reference/atari_es_vs_a3c.csv")
    a.add_argument("--reference-a2c", required=True, type=Path, help="paper/reference/atari_hyperneat_a2c.csv")
    a.add_argument("--out", nargs="+", required=True, type=Path, help=tables)
    a.set_defaults(func=_atari_table)

    f = sub.add_parser("frameskip-figure", help="the paper's Figure 2: ES score vs weight updates per frame-skip")
    f.add_argument("--runs", nargs="+", required=True, type=Path, help="ES Atari run directories")
    f.add_argument("--game", required=True, help="ALE game name, e.g. Pong")
    f.add_argument("--out", nargs="+", required=True, type=Path, help=figures)
    f.set_defaults(func=_frameskip_figure)

    g = sub.add_parser("scaling", help="the paper's Figure 1: minutes to a target score vs CPU cores")
    g.add_argument("--runs", nargs="+", required=True, type=Path, help="ES scaling run directories")
    g.add_argument("--reference", required=True, type=Path, help="paper/reference/scaling_humanoid.csv")
    g.add_argument("--table", nargs="+", required=True, type=Path, help=tables)
    g.add_argument("--figure", nargs="+", required=True, type=Path, help=figures)
    g.add_argument("--simulation", type=Path, help="benchmarks/results/scale_simulation.csv: its parallel efficiency "
                                                   "per worker count, drawn and tabulated as simulated")
    g.add_argument("--simulation-batch", help="only this batch rule of --simulation: all or first_come (default: both)")
    g.set_defaults(func=_scaling)

    k = sub.add_parser("claims", help="the claims report: each claim of the paper, our number, budget and verdict")
    k.add_argument("--runs", nargs="+", required=True, type=Path, help="every run directory of the grid")
    k.add_argument("--table1", type=Path, help="table1.csv of `tables` (with --table3; without: claim 1 not testable)")
    k.add_argument("--table3", type=Path, help="table3.csv of `tables`")
    k.add_argument("--atari", type=Path, help="atari.csv of `atari-table` (without: claim 2 not testable)")
    k.add_argument("--scaling", type=Path, help="scaling.csv of `scaling` (without: claim 4 not testable)")
    k.add_argument("--out", nargs="+", required=True, type=Path, help=tables)
    k.set_defaults(func=_claims)

    from esrepro.play import DEFAULT_FPS, DEFAULT_FRAMES, DEFAULT_SIZE
    w = sub.add_parser("play", help="render an ES run's final policy to a GIF or MP4 clip")
    w.add_argument("run_dir", type=Path, help="an ES run directory (run.json, policy.npz)")
    w.add_argument("--out", type=Path, help="clip file, .gif or .mp4 (default: RUN_DIR/play.gif)")
    w.add_argument("--frames", type=_positive, default=DEFAULT_FRAMES, help="frames (default: %(default)s)")
    w.add_argument("--seed", type=_integer(0), default=0, help="seed of the first episode (default: %(default)s)")
    w.add_argument("--size", type=_positive, default=DEFAULT_SIZE,
                   help="MuJoCo frame side in pixels (default: %(default)s; Atari: the 210x160 screen)")
    w.add_argument("--fps", type=_positive, default=DEFAULT_FPS, help="frames per second (default: %(default)s)")
    w.set_defaults(func=_play)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, FileNotFoundError) as e:
        print(f"esrepro: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"esrepro: error: {e}", file=sys.stderr)
        return 1
