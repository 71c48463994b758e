"""Loading and validating the experiment config with Snakemake's own schema validation
(config/schema.yaml, config/es_params.schema.yaml), shared by the Snakefile and the CLI so both
reject the same bad input with the same one-line message before any work starts."""

import copy
import logging
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from esrepro.envs import check_env_id

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SCHEMA = CONFIG_DIR / "schema.yaml"
#: The run-parameter schema of each algorithm section of the config.
PARAMS_SCHEMAS = {"es": CONFIG_DIR / "es_params.schema.yaml", "trpo": CONFIG_DIR / "trpo_params.schema.yaml"}


class ConfigError(ValueError):
    """Invalid configuration; the message names the key and the value."""


def _validate(data: dict, schema: Path, where=lambda key: "") -> dict:
    """Snakemake's ``validate`` (defaults filled in), its error turned into one line.
    ``where(top_level_key)`` gives the prefix that locates a key in the user's input."""
    logging.getLogger("snakemake").setLevel(logging.WARNING)
    try:
        validate(data, str(schema))
    except WorkflowError as e:
        err = e.__context__  # snakemake raises from inside `except ValidationError`
        if not isinstance(err, jsonschema.ValidationError):
            raise
        path = list(map(str, err.absolute_path))
        if err.validator == "additionalProperties":
            known = err.schema.get("properties", {})
            unknown = sorted(k for k in err.instance if k not in known)[0]
            key = ".".join([where(path[0] if path else unknown), *path, unknown]).strip(".")
            raise ConfigError(f"config key '{key}' is unknown; known keys: {', '.join(known)}") from None
        key = ".".join([where(path[0] if path else ""), *path]).strip(".")
        value = "" if err.validator == "required" else f" = {err.instance!r}"
        raise ConfigError(f"config key '{key}'{value}: {err.message}") from None
    return data


def validate_params(params: dict, algo: str) -> dict:
    """A copy of one run's ``params`` checked against ``algo``'s parameter schema, defaults filled in.

    Raises
    ------
    ConfigError
        Naming the key and the value.
    """
    return _validate(copy.deepcopy(dict(params)), PARAMS_SCHEMAS[algo])


def apply_schema(config: dict) -> dict:
    """Validate a workflow config against config/schema.yaml alone, filling in its defaults."""
    return _validate(config, SCHEMA)


def validate_config(config: dict) -> dict:
    """Validate a workflow config in place (schema defaults filled in), every env id and the
    run parameters of every (algorithm, env) of the grid.

    Raises
    ------
    ConfigError
        With the offending key and value.
    """
    apply_schema(config)
    for algo in PARAMS_SCHEMAS:
        for env_id in config.get(algo, {}).get("envs", {}):
            try:
                check_env_id(env_id)
            except ValueError as e:
                raise ConfigError(f"config key '{algo}.envs': {e}") from None
            run_params(config, env_id, algo=algo)
    return config


def load_config(path) -> dict:
    """Read and validate a workflow config YAML file.

    Raises
    ------
    ConfigError
        If the file is missing, not a YAML mapping, or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a YAML mapping, got {type(data).__name__}")
    return validate_config(data)


def run_params(config: dict, env_id: str, overrides: dict | None = None, algo: str = "es") -> dict:
    """The validated parameters of one run of ``algo``: <algo>.params, then
    <algo>.envs[env_id], then ``overrides``, checked against the algorithm's parameter schema
    (defaults filled in).

    Raises
    ------
    ConfigError
        Naming the key (as <algo>.envs.<env>.<key> for an env override) and the value.
    """
    section = config[algo]
    env_overrides = section["envs"].get(env_id) or {}
    overrides = overrides or {}
    params = copy.deepcopy(section["params"]) | env_overrides | overrides

    def where(key):
        if key in overrides:
            return "command line"
        return f"{algo}.envs.{env_id}" if key in env_overrides else f"{algo}.params"

    _validate(params, PARAMS_SCHEMAS[algo], where)
    if algo == "es" and params["iterations"] is None and params["timesteps"] is None:
        raise ConfigError(f"config keys '{where('iterations')}.iterations' and 'timesteps' are both null: "
                          "give at least one budget")
    return params
