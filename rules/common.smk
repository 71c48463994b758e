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
# The interpreter that runs Snakemake runs the package too (no reliance on an activated venv).
ESREPRO = f"{sys.executable} -m esrepro"
REFERENCE = Path(workflow.basedir) / "paper" / "reference"


wildcard_constraints:
    env=r"[A-Za-z][A-Za-z0-9_\-]*",
    seed=r"\d+",


def es_run_dir(env, seed):
    return f"{RESULTS}/es/{env}/seed{seed}"


def es_runs(name):
    """One file of every ES run of the grid, e.g. es_runs("progress.csv")."""
    return [f"{es_run_dir(env, seed)}/{name}" for env in ES_ENVS for seed in ES_SEEDS]


def es_params_json(wildcards):
    """The run's validated parameters; a change of them makes Snakemake rerun the job."""
    return json.dumps(run_params(config, wildcards.env), sort_keys=True)


def all_targets():
    return [
        "paper/tables/es_mujoco_summary.csv",
        "paper/tables/es_mujoco_summary.md",
        "paper/figures/es_mujoco_curves.png",
    ]
