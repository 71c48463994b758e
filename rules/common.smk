# The experiment grid -> run files and output folders. The config is validated here, before any
# job starts, with Snakemake's own schema validation (esrepro.config wraps it to give one line per
# error).
import json
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from esrepro.baselines.trpo import grid_presets
from esrepro.config import ConfigError, env_id, run_keys, run_params, validate_config

try:
    validate_config(config)
    # TRPO: (preset, env) of every run, one per preset the grid gives the env (trpo.presets or its `preset`).
    TRPO_RUNS = [(p, env) for env in config.get("trpo", {}).get("envs", {}) for p in grid_presets(config, env)]
    # The presets of those runs, for the report captions of the tables, the figure and the claims.
    TRPO_PRESETS = ", ".join(sorted({p for p, _ in TRPO_RUNS}))
except ConfigError as e:
    sys.exit(f"esrepro: error: {e}")

# Runs go under RESULTS; this grid's tables and figures under PAPER (config/schema.yaml).
RESULTS = config["results_dir"]
PAPER = config["paper_dir"]
LOGS = f"{RESULTS}/logs"
REFERENCE = Path(workflow.basedir) / "paper" / "reference"
# The simulated parallel efficiency (benchmarks/scale_simulation.py), drawn in Figure 1 when present.
SCALE_SIMULATION = Path(workflow.basedir) / "benchmarks" / "results" / "scale_simulation.csv"

# Rules run `python -m esrepro`. With --sdm conda that is the rule's environment (envs/), which
# holds the dependencies and reads the package from this checkout; otherwise it is the interpreter
# that runs Snakemake (no reliance on an activated venv).
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}; ")
else:
    shell.prefix(f'set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; ')

ES_ENVS = list(config.get("es", {}).get("envs", {}))
ES_SEEDS = config.get("es", {}).get("seeds", [])
TRPO_ENVS = list(config.get("trpo", {}).get("envs", {}))
TRPO_SEEDS = config.get("trpo", {}).get("seeds", [])
# Envs with both ES and TRPO runs: the rows of Table 1 and Table 3.
COMPARED_ENVS = [env for env in ES_ENVS if env in TRPO_ENVS]
# ES on Atari: (game, frame_skip) of every run; Table 2 reads the frame_skip 4 runs, Figure 2 the
# frame-skip grid's game at every frame_skip.
ATARI_RUNS = [(game, grid["frame_skip"]) for game, grid in run_keys(config, "atari")] if "atari" in config else []
ATARI_SEEDS = config.get("atari", {}).get("seeds", [])
FRAMESKIP_GAMES = config.get("atari", {}).get("frameskip", {}).get("games", [])
A2C_GAMES = list(config.get("a2c", {}).get("games", {}))
A2C_SEEDS = config.get("a2c", {}).get("seeds", [])
SCALING = config.get("scaling")


wildcard_constraints:
    env=r"[A-Za-z][A-Za-z0-9_\-]*",
    game=r"[A-Za-z]+",
    seed=r"\d+",
    preset=r"[a-z][a-z0-9]*",
    frame_skip=r"\d+",
    workers=r"\d+",


def es_runs(name, envs=None):
    """One file of every ES MuJoCo run, optionally only of some envs, e.g. es_runs("progress.csv")."""
    return [f"{RESULTS}/es/{env}/seed{seed}/{name}" for env in (ES_ENVS if envs is None else envs) for seed in ES_SEEDS]


def trpo_runs(name, envs=None):
    """One file of every TRPO run (every preset), optionally only of some envs."""
    return [
        f"{RESULTS}/trpo/{preset}/{env}/seed{seed}/{name}"
        for preset, env in TRPO_RUNS
        if envs is None or env in envs
        for seed in TRPO_SEEDS
    ]


def atari_runs(name, games=None, frame_skips=None):
    """One file of every ES Atari run, optionally only of some games and frame_skips."""
    return [
        f"{RESULTS}/es/{game}/frameskip{k}/seed{seed}/{name}"
        for game, k in ATARI_RUNS
        for seed in ATARI_SEEDS
        if (games is None or game in games) and (frame_skips is None or k in frame_skips)
    ]


def a2c_runs(name):
    """One file of every A2C run."""
    return [f"{RESULTS}/a2c/{game}/seed{seed}/{name}" for game in A2C_GAMES for seed in A2C_SEEDS]


def scaling_runs(name):
    """One file of every scaling run (none without a `scaling` section)."""
    if not SCALING:
        return []
    return [
        f"{RESULTS}/scaling/{SCALING['env']}/workers{w}/seed{seed}/{name}"
        for w in SCALING["workers"]
        for seed in range(SCALING["repeats"])
    ]


def run_dirs(wildcards, input):
    """The run directories of a rule's run.json inputs (for aggregation commands)."""
    return sorted({str(Path(p).parent) for p in input.run})


def run_dir(wildcards, output):
    """The directory of a run rule's outputs (its run.json's folder)."""
    return str(Path(output.run).parent)


def params_json(section):
    """A run's validated parameters as JSON, from its wildcards (env or game; frame_skip for the
    Atari grid, preset for TRPO's); a change of them makes Snakemake rerun the job."""

    def params(wildcards):
        key = getattr(wildcards, "game", None) or wildcards.env
        grid = {"frame_skip": int(wildcards.frame_skip)} if hasattr(wildcards, "frame_skip") else {}
        grid |= {"preset": wildcards.preset} if hasattr(wildcards, "preset") else {}
        return json.dumps(run_params(config, key, grid, section=section), sort_keys=True)

    return params


def paper_files(folder, name, exts, category, caption=None, **labels):
    """This grid's files PAPER/<folder>/<name>.<ext>, one per ext, in the report under ``category``
    (``caption``: a file of report/, relative to rules/)."""
    files = []
    for ext in exts:
        path = f"{PAPER}/{folder}/{name}.{ext}"
        files.append(report(path, caption=caption, category=category, labels=labels | {"format": ext}))
    return files


def clips():
    """One clip per ES env and Atari game of the grid (rules clip_mujoco, clip_atari)."""
    games = sorted({game for game, _ in ATARI_RUNS})
    return [f"{PAPER}/clips/mujoco/{env}.gif" for env in ES_ENVS] + [f"{PAPER}/clips/atari/{g}.gif" for g in games]


def claims_tables(wildcards, input):
    """The claims command's options for the tables this grid builds (a claim without its table is
    not testable here)."""
    return " ".join(f"--{name} {input[name]}" for name in ("table1", "table3", "atari", "scaling") if input[name])
