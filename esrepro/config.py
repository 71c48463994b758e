"""Loading and validating the experiment config with Snakemake's own schema validation
(config/schema.yaml, config/es_params.schema.yaml), shared by the Snakefile and the CLI so both
reject the same bad input with the same one-line message before any work starts."""

import copy
import json
import logging
import math
from pathlib import Path

import jsonschema
import yaml
from jsonschema import Draft202012Validator, validators
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from esrepro.envs import ATARI, MUJOCO, kind_of
from esrepro.envs.atari import MAX_ACTIONS, TABLE2_FRAME_SKIP
from esrepro.envs.mujoco import check_env_id
from esrepro.errors import InputError
from esrepro.policies import cnn

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SCHEMA = CONFIG_DIR / "schema.yaml"
#: The run-parameter schema of each algorithm.
PARAMS_SCHEMAS = {algo: CONFIG_DIR / f"{algo}_params.schema.yaml" for algo in ("es", "trpo", "a2c")}
#: The config sections with runs: the algorithm whose parameter schema they use, and the key that
#: holds their per-env overrides (``None``: one env, no overrides).
SECTIONS = {"es": ("es", "envs"), "trpo": ("trpo", "envs"), "atari": ("es", "games"),
            "a2c": ("a2c", "games"), "scaling": ("es", None)}
#: JSON Schema's "integer" admits whole-number floats (1.0e+30); ours admits Python ints only.
_STRICT = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)))
#: Integers beyond int64 overflow numpy (seeds, sizes, budgets).
INT64_MAX = 2**63 - 1


class ConfigError(InputError):
    """Invalid configuration; the message names the key and the value."""


def validate_schema(data: dict, schema: Path, where=lambda key: "") -> dict:
    """Snakemake's ``validate`` (defaults filled in), then the checks JSON Schema cannot express:
    every number finite, integers only as integers and within int64. Any error becomes one line.
    ``where(top_level_key)`` gives the prefix that locates a key in the user's input.

    Raises
    ------
    ConfigError
        Naming the key path and the value.
    """
    def key_of(path):
        return ".".join([where(str(path[0]) if path else ""), *map(str, path)]).strip(".")

    for path, value in _leaves(data):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key_of(path)}' = {value!r}: numbers must be finite")
        if isinstance(value, int) and abs(value) > INT64_MAX:
            raise ConfigError(f"config key '{key_of(path)}' = {value!r}: integers must fit in 64 bits")
    logging.getLogger("snakemake").setLevel(logging.WARNING)
    try:
        validate(data, str(schema))
        schema_dict = yaml.safe_load(Path(schema).read_text())
        err = jsonschema.exceptions.best_match(_STRICT(schema_dict).iter_errors(data))
        if err is not None:
            raise err
    except (WorkflowError, jsonschema.ValidationError) as e:
        err = e if isinstance(e, jsonschema.ValidationError) else e.__context__  # snakemake raises from inside
        if not isinstance(err, jsonschema.ValidationError):
            raise
        path = list(map(str, err.absolute_path))
        if err.validator == "additionalProperties":
            known = err.schema.get("properties", {})
            unknown = sorted(str(k) for k in err.instance if k not in known)[0]
            key = ".".join([where(path[0] if path else unknown), *path, unknown]).strip(".")
            raise ConfigError(f"config key '{key}' is unknown; known keys: {', '.join(known)}") from None
        value = "" if err.validator == "required" else f" = {err.instance!r}"
        raise ConfigError(f"config key '{key_of(path)}'{value}: {err.message}") from None
    return data


def _leaves(data, path=()):
    """(path, value) of every scalar in nested dicts and lists."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else None
    if items is None:
        yield path, data
        return
    for key, value in items:
        yield from _leaves(value, (*path, key))


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
            for env, grid in run_keys(config, name):
                params = run_params(config, env, grid, name)
                if name == "scaling" and params["target_return"] is None:
                    raise ConfigError("config key 'scaling.params.target_return' is null: the scaling experiment "
                                      "times runs to a target score (paper Figure 1: 6000 on Humanoid)")
    return config


def env_id(section: str, key: str) -> str:
    """The gymnasium env id of a run key of ``section``: the key itself, or ``ALE/<game>-v5`` for a
    game of the Atari sections.

    Raises
    ------
    ConfigError
        If gymnasium does not know the env or game (close matches named), or an Atari env is
        named in a MuJoCo section.
    """
    from esrepro.envs.atari import atari_env_id
    try:
        if SECTIONS[section][1] == "games":
            return atari_env_id(key)
        check_env_id(key)
    except ValueError as e:
        raise ConfigError(f"config key '{section}.{SECTIONS[section][1] or 'env'}': {e}") from None
    if kind_of(key) is ATARI:
        raise ConfigError(f"config key '{section}.envs.{key}': Atari games go in the 'atari' section, by game name")
    return key


def run_keys(config: dict, section: str) -> list[tuple[str, dict]]:
    """Every run of ``section`` as (env key, what the grid sets): an env id or game name, and the
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
    table2 = {"frame_skip": TABLE2_FRAME_SKIP} if section == "atari" else {}
    runs = [(game, table2) for game in grid["games"]]
    frameskip = grid.get("frameskip")
    if frameskip is not None:
        if section != "atari":
            raise ConfigError(f"config key '{section}.frameskip' is only for the 'atari' section (ES)")
        unknown = [g for g in frameskip["games"] if g not in grid["games"]]
        if unknown:
            raise ConfigError(f"config key 'atari.frameskip.games' = {unknown!r}: not in atari.games")
        runs += [(g, {"frame_skip": k}) for g in frameskip["games"] for k in frameskip["frame_skips"]
                 if k != TABLE2_FRAME_SKIP]
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
        If the file is missing or unreadable, is not valid YAML (its line and column named), or
        does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what} '{path}' cannot be read: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{what} '{path}' is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} '{path}' must hold a YAML mapping, got {type(data).__name__}")
    return data


def parse_json_object(text: str, what: str) -> dict:
    """The JSON object in ``text`` (``what``, e.g. "--params", names it in errors).

    Raises
    ------
    ConfigError
        If ``text`` is not valid JSON (line and column named) or not an object.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, got {text!r}")
    return data


def run_params(config: dict | None, env: str, grid: dict | None = None, section: str = "es",
               overrides: dict | None = None) -> dict:
    """The validated parameters of one run of ``section``: the schema defaults, <section>.params,
    the env's (or game's) entry in <section>.envs / <section>.games, what the grid sets for this
    run (``grid``, from ``run_keys``), then ``overrides`` (the command line). ``config`` None: the
    schema defaults alone.

    Raises
    ------
    ConfigError
        Naming the key as written (``<section>.params.<key>``, ``<section>.<envs|games>.<env>.<key>``
        or ``--params.<key>``) and the value; also for a parameter of the other kind of env,
        ``frame_skip`` set anywhere but the grid (``atari.frameskip.frame_skips``), and a run
        without any budget.
    """
    algo, overrides_key = SECTIONS[section]
    kind = kind_of(env_id(section, env))
    section_config = (config or {}).get(section) or {}
    env_overrides = ((section_config.get(overrides_key) or {}).get(env) or {}) if overrides_key else {}
    grid, overrides = grid or {}, overrides or {}
    in_file = copy.deepcopy(section_config.get("params") or {}) | copy.deepcopy(env_overrides)
    params = in_file | grid | overrides

    def where(key):
        if key in overrides:
            return "--params"
        if key in env_overrides:
            return f"{section}.{overrides_key}.{env}"
        return f"{section}.params" if key in in_file else f"{section}.frameskip"

    if algo == "es":
        other = MUJOCO if kind is ATARI else ATARI
        wrong = [k for k in other.param_names if k in params]
        if wrong:
            raise ConfigError(f"config key '{where(wrong[0])}.{wrong[0]}' applies to {other.name} envs only")
        if section == "atari" and "frame_skip" in in_file:
            raise ConfigError(f"config key '{where('frame_skip')}.frame_skip' is set by the grid: Table 2 runs use "
                              f"{TABLE2_FRAME_SKIP}, Figure 2's runs atari.frameskip.frame_skips")
    validate_schema(params, PARAMS_SCHEMAS[algo], where)
    if algo == "es":  # the other kind's parameters (defaults just filled in) mean nothing here
        for key in other.param_names:
            del params[key]
        if params["iterations"] is None and params["timesteps"] is None:
            raise ConfigError(f"config keys '{where('iterations')}.iterations' and 'timesteps' are both null: "
                              "give at least one budget")
        given = "noise_table_size" in in_file or "noise_table_size" in overrides
        _check_noise_table(env_id(section, env), params, where("noise_table_size") if given else f"{section}.params")
    return params


def _check_noise_table(env: str, params: dict, where: str) -> None:
    """Refuse a noise table no larger than the policy's parameter vector (a perturbation is a
    slice of it), before any run starts. An Atari table larger than the network with ALE's full
    action set fits every game, so no game's env is made then (the paper grid has 51)."""
    size, kind = params["noise_table_size"], kind_of(env)
    if kind is ATARI and size > cnn.num_params(params["network"], MAX_ACTIONS):
        return
    n = kind.num_params(env, params)
    if size <= n:
        raise ConfigError(f"config key '{where}.noise_table_size' = {size}: must exceed the "
                          f"policy's {n:,} parameters (a perturbation is a slice of it)")
