# The experiment grid -> targets. The config is validated here, before any job starts, with
# Snakemake's own schema validation (esrepro.config wraps it to give one line per error).
import json
import sys
from pathlib import Path

from esrepro.config import ConfigError, run_params, validate_config

try:
    validate_config(config)
except ConfigError as e:
    sys.exit(f"esrepro: error: {e}")

RESULTS = config["results_dir"]
ES_ENVS = list(config["es"]["envs"])
ES_SEEDS = config["es"]["seeds"]
TRPO_ENVS = list(config.get("trpo", {}).get("envs", {}))
TRPO_SEEDS = config.get("trpo", {}).get("seeds", [])
# Envs with both ES and TRPO runs: the rows of Table 1 and Table 3.
COMPARED_ENVS = [env for env in ES_ENVS if env in TRPO_ENVS]
# The interpreter that runs Snakemake runs the package too (no reliance on an activated venv).
ESREPRO = f"{sys.executable} -m esrepro"
REFERENCE = Path(workflow.basedir) / "paper" / "reference"


wildcard_constraints:
    env=r"[A-Za-z][A-Za-z0-9_\-]*",
    seed=r"\d+",


def run_dir(algo, env, seed):
    return f"{RESULTS}/{algo}/{env}/seed{seed}"


def es_runs(name):
    """One file of every ES run of the grid, e.g. es_runs("progress.csv")."""
    return [f"{run_dir('es', env, seed)}/{name}" for env in ES_ENVS for seed in ES_SEEDS]


def compared_runs(name):
    """One file of every ES and TRPO run of the envs both algorithms run."""
    return [f"{run_dir(algo, env, seed)}/{name}" for algo, seeds in (("es", ES_SEEDS), ("trpo", TRPO_SEEDS))
            for env in COMPARED_ENVS for seed in seeds]


def run_dirs(wildcards, input):
    """The run directories of a rule's run.json inputs (for aggregation commands)."""
    return sorted({str(Path(p).parent) for p in input.run})


def params_json(algo):
    """The run's validated parameters as JSON; a change of them makes Snakemake rerun the job."""
    return lambda wildcards: json.dumps(run_params(config, wildcards.env, algo=algo), sort_keys=True)


def all_targets():
    targets = [
        "paper/tables/es_mujoco_summary.csv",
        "paper/tables/es_mujoco_summary.md",
        "paper/figures/es_mujoco_curves.png",
    ]
    if COMPARED_ENVS:
        targets += expand("paper/tables/{table}.{ext}", table=["table1", "table3"], ext=["csv", "md", "tex"])
        targets += expand("paper/figures/es_vs_trpo.{ext}", ext=["png", "pdf"])
    return targets
