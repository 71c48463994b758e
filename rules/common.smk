# The experiment grid -> targets. The config is validated here, before any job starts, with
# Snakemake's own schema validation (esrepro.config wraps it to give one line per error).
import json
import sys
from pathlib import Path

from esrepro.config import ConfigError, env_id, run_keys, run_params, validate_config

try:
    validate_config(config)
except ConfigError as e:
    sys.exit(f"esrepro: error: {e}")

RESULTS = config["results_dir"]
ES_ENVS = list(config.get("es", {}).get("envs", {}))
ES_SEEDS = config.get("es", {}).get("seeds", [])
TRPO_ENVS = list(config.get("trpo", {}).get("envs", {}))
TRPO_SEEDS = config.get("trpo", {}).get("seeds", [])
# Envs with both ES and TRPO runs: the rows of Table 1 and Table 3.
COMPARED_ENVS = [env for env in ES_ENVS if env in TRPO_ENVS]
# The interpreter that runs Snakemake runs the package too (no reliance on an activated venv).
ESREPRO = f"{sys.executable} -m esrepro"
REFERENCE = Path(workflow.basedir) / "paper" / "reference"


# ES on Atari: (game, frame_skip) of every run; Table 2 reads the frame_skip 4 runs, Figure 2 the
# frame-skip grid's game at every frame_skip.
ATARI_RUNS = [(game, grid["frame_skip"]) for game, grid in run_keys(config, "atari")] if "atari" in config else []
ATARI_SEEDS = config.get("atari", {}).get("seeds", [])
FRAMESKIP = config.get("atari", {}).get("frameskip")
A2C_GAMES = list(config.get("a2c", {}).get("games", {}))
A2C_SEEDS = config.get("a2c", {}).get("seeds", [])
SCALING = config.get("scaling")


wildcard_constraints:
    env=r"[A-Za-z][A-Za-z0-9_\-]*",
    game=r"[A-Za-z]+",
    seed=r"\d+",
    frame_skip=r"\d+",
    workers=r"\d+",


def run_dir(algo, env, seed):
    return f"{RESULTS}/{algo}/{env}/seed{seed}"


def es_runs(name):
    """One file of every ES run of the grid, e.g. es_runs("progress.csv")."""
    return [f"{run_dir('es', env, seed)}/{name}" for env in ES_ENVS for seed in ES_SEEDS]


def compared_runs(name):
    """One file of every ES and TRPO run of the envs both algorithms run."""
    return [f"{run_dir(algo, env, seed)}/{name}" for algo, seeds in (("es", ES_SEEDS), ("trpo", TRPO_SEEDS))
            for env in COMPARED_ENVS for seed in seeds]


def atari_runs(name, games=None, frame_skips=None):
    """One file of every ES Atari run, optionally only of some games and frame_skips."""
    return [f"{RESULTS}/es/{game}/frameskip{k}/seed{seed}/{name}" for game, k in ATARI_RUNS for seed in ATARI_SEEDS
            if (games is None or game in games) and (frame_skips is None or k in frame_skips)]


def a2c_runs(name):
    return [f"{run_dir('a2c', game, seed)}/{name}" for game in A2C_GAMES for seed in A2C_SEEDS]


def scaling_runs(name):
    return [f"{RESULTS}/scaling/{SCALING['env']}/workers{w}/seed{seed}/{name}"
            for w in SCALING["workers"] for seed in range(SCALING["repeats"])]


def run_dirs(wildcards, input):
    """The run directories of a rule's run.json inputs (for aggregation commands)."""
    return sorted({str(Path(p).parent) for p in input.run})


def params_json(section):
    """A run's validated parameters as JSON, from its wildcards (env or game; frame_skip for the
    Atari grid); a change of them makes Snakemake rerun the job."""
    def params(wildcards):
        key = getattr(wildcards, "game", None) or wildcards.env
        grid = {"frame_skip": int(wildcards.frame_skip)} if hasattr(wildcards, "frame_skip") else {}
        return json.dumps(run_params(config, key, grid, section=section), sort_keys=True)
    return params


def all_targets():
    targets = []
    if ES_ENVS:
        targets += ["paper/tables/es_mujoco_summary.csv", "paper/tables/es_mujoco_summary.md",
                    "paper/figures/es_mujoco_curves.png"]
    if COMPARED_ENVS:
        targets += expand("paper/tables/{table}.{ext}", table=["table1", "table3"], ext=["csv", "md", "tex"])
        targets += expand("paper/figures/es_vs_trpo.{ext}", ext=["png", "pdf"])
    if ATARI_RUNS:
        targets += expand("paper/tables/atari.{ext}", ext=["csv", "md", "tex"])
    if FRAMESKIP:
        targets += expand("paper/figures/fig2_frameskip.{ext}", ext=["png", "pdf"])
    if SCALING:
        targets += expand("paper/tables/scaling.{ext}", ext=["csv", "md"])
        targets += expand("paper/figures/fig1_scaling.{ext}", ext=["png", "pdf"])
    return targets
