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

from esrepro.envs.mujoco import check_env_id
from esrepro.errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SCHEMA = CONFIG_DIR / "schema.yaml"
#: The run-parameter schema of each algorithm.
PARAMS_SCHEMAS = {algo: CONFIG_DIR / f"{algo}_params.schema.yaml" for algo in ("es", "trpo", "a2c")}
#: The config sections with runs: the algorithm whose parameter schema they use, and the key that
#: holds their per-env overrides (``None``: one env, no overrides).
SECTIONS = {"es": ("es", "envs"), "trpo": ("trpo", "envs"), "atari": ("es", "games"),
            "a2c": ("a2c", "games"), "scaling": ("es", None)}
#: ES parameters that apply to one kind of env only; setting one for the other kind is an error.
ATARI_ONLY = ("frame_skip", "noop_max", "network", "vbn_batch_size")
MUJOCO_ONLY = ("hidden", "action_bins", "obs_norm_prob", "action_noise_std")

class ConfigError(InputError):
    """Invalid configuration; the message names the key and the value."""


def validate_schema(data: dict, schema: Path, where=lambda key: "") -> dict:
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
    return validate_schema(copy.deepcopy(dict(params)), PARAMS_SCHEMAS[algo])


def apply_schema(config: dict) -> dict:
    """Validate a workflow config against config/schema.yaml alone, filling in its defaults."""
    return validate_schema(config, SCHEMA)


def validate_config(config: dict) -> dict:
    """Validate a workflow config in place (schema defaults filled in), every env id and game, and
    the run parameters of every run of the grid.

    Raises
    ------
    ConfigError
        With the offending key and value.
    """
    apply_schema(config)
    for name in SECTIONS:
        if name in config:
            for env, overrides in run_keys(config, name):
                run_params(config, env, overrides, name)
    return config


def env_id(section: str, key: str) -> str:
    """The gymnasium env id of a run key of ``section``: the key itself, or ``ALE/<game>-v5`` for a
    game of the Atari sections.

    Raises
    ------
    ConfigError
        If gymnasium does not know the env or game (close matches named).
    """
    from esrepro.envs.atari import atari_env_id, is_atari
    try:
        if SECTIONS[section][1] == "games":
            return atari_env_id(key)
        check_env_id(key)
    except ValueError as e:
        raise ConfigError(f"config key '{section}.{SECTIONS[section][1] or 'env'}': {e}") from None
    if is_atari(key):
        raise ConfigError(f"config key '{section}.envs.{key}': Atari games go in the 'atari' section, by game name")
    return key


def run_keys(config: dict, section: str) -> list[tuple[str, dict]]:
    """Every run of ``section`` as (env key, grid overrides): an env id or game name, and the
    parameters the grid sets (Atari: ``frame_skip``). Seeds are not included.

    Raises
    ------
    ConfigError
        If ``atari.frameskip`` names a game not in ``atari.games``, or a section that cannot have it.
    """
    grid = config[section]
    if section == "scaling":
        return [(grid["env"], {})]
    if SECTIONS[section][1] == "envs":
        return [(env, {}) for env in grid["envs"]]
    runs = [(game, {"frame_skip": 4}) if section == "atari" else (game, {}) for game in grid["games"]]
    frameskip = grid.get("frameskip")
    if frameskip is not None:
        if section != "atari":
            raise ConfigError(f"config key '{section}.frameskip' is only for the 'atari' section (ES)")
        unknown = [g for g in frameskip["games"] if g not in grid["games"]]
        if unknown:
            raise ConfigError(f"config key 'atari.frameskip.games' = {unknown!r}: not in atari.games")
        runs += [(g, {"frame_skip": k}) for g in frameskip["games"] for k in frameskip["frame_skips"] if k != 4]
    return runs


def load_config(path) -> dict:
    """Read and validate a workflow config YAML file.

    Raises
    ------
    ConfigError
        If the file is missing, not a YAML mapping, or invalid.
    """
    return validate_config(read_mapping(path, "config file"))


def read_mapping(path, what: str) -> dict:
    """The YAML mapping in ``path`` (``what``, e.g. "config file", names it in errors).

    Raises
    ------
    ConfigError
        If the file is missing or does not hold a YAML mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{what} '{path}' must hold a YAML mapping, got {type(data).__name__}")
    return data


def run_params(config: dict, env: str, overrides: dict | None = None, section: str = "es") -> dict:
    """The validated parameters of one run of ``section``: <section>.params, then the env's (or
    game's) overrides in <section>.envs / <section>.games, then ``overrides``, checked against the
    algorithm's parameter schema (defaults filled in).

    Raises
    ------
    ConfigError
        Naming the key (as <section>.envs.<env>.<key> for an env override) and the value; also for
        an Atari-only parameter set for a MuJoCo env or the reverse, and for ``frame_skip`` set
        anywhere but the grid (``atari.frameskip.frame_skips``).
    """
    algo, overrides_key = SECTIONS[section]
    atari = env_id(section, env).startswith("ALE/")
    grid = config[section]
    env_overrides = (grid[overrides_key].get(env) or {}) if overrides_key else {}
    overrides = overrides or {}
    params = copy.deepcopy(grid["params"]) | env_overrides | overrides

    def where(key):
        if key in overrides:
            return "command line"
        return f"{section}.{overrides_key}.{env}" if key in env_overrides else f"{section}.params"

    if algo == "es":
        wrong = [k for k in (MUJOCO_ONLY if atari else ATARI_ONLY) if k in params]
        if wrong:
            kind = "MuJoCo" if atari else "Atari"
            raise ConfigError(f"config key '{where(wrong[0])}.{wrong[0]}' applies to {kind} envs only")
        if section == "atari" and "frame_skip" in grid["params"] | env_overrides:
            raise ConfigError(f"config key '{where('frame_skip')}.frame_skip' is set by the grid: "
                              "Table 2 runs use 4, Figure 2's runs atari.frameskip.frame_skips")
    validate_schema(params, PARAMS_SCHEMAS[algo], where)
    if algo == "es":  # the other kind's parameters (defaults just filled in) mean nothing here
        for key in MUJOCO_ONLY if atari else ATARI_ONLY:
            del params[key]
    if algo == "es" and params["iterations"] is None and params["timesteps"] is None:
        raise ConfigError(f"config keys '{where('iterations')}.iterations' and 'timesteps' are both null: "
                          "give at least one budget")
    return params
