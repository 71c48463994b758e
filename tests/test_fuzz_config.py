"""Property-based fuzzing of the workflow config (hypothesis): any mutation of the smoke grid gives
either a valid run plan or one error line naming the key, never a traceback or a file.

The check is ``esrepro.config.validate_config``, the function the Snakefile runs before any job
(test_bad_input.py runs hand-written cases through Snakemake itself)."""

import copy
import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esrepro.config import SECTIONS, ConfigError, env_id, run_keys, run_params, validate_config
from esrepro.run_config import RunConfig

from conftest import REPO

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())

#: What a mutation puts in place of a value: wrong types, non-finite and absurd numbers, lists for
#: mappings and mappings for lists.
VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 10**30, -(10**30), 1.0e30, 2.0, 0.5, 1e-300, True,
                     None, "", "x", [], [1], [0, 0], {}, {"a": 1}]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
)


def _paths(node, prefix=()):
    """The path of every value in nested mappings and lists (the root excluded)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@st.composite
def mutations(draw):
    """(mutated copy of the smoke config, the paths mutated)."""
    config, changed = copy.deepcopy(SMOKE), []
    for _ in range(draw(st.integers(1, 2))):
        paths = list(_paths(config))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        *parents, last = path
        node = config
        for key in parents:
            node = node[key]
        op = draw(st.sampled_from(["replace", "replace", "delete", "add unknown key"]))
        if op == "delete" and isinstance(node, dict):
            del node[last]
        elif op == "add unknown key" and isinstance(node, dict):
            node["zz_unknown"] = copy.deepcopy(draw(VALUES))  # copies: validation fills defaults in
            path = (*parents, "zz_unknown")  # the key added beside `last`, which is unchanged
        else:
            node[last] = copy.deepcopy(draw(VALUES))
        changed.append(path)
    return config, changed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_any_mutation_gives_a_run_plan_or_one_line_naming_the_key(tmp_path_factory, mutation):
    config, changed = mutation
    cwd = tmp_path_factory.mktemp("fuzz")
    try:
        validate_config(config)
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and message.startswith("config key")
        assert any(str(path[0]) in message for path in changed), (message, changed)
    else:  # a valid plan: every run of the grid has parameters and, for ES, a typed run config
        for section, (algo, _) in SECTIONS.items():
            for env, grid in run_keys(config, section) if section in config else []:
                params = run_params(config, env, grid, section)
                if algo == "es":
                    RunConfig.from_params(env_id(section, env), 0, params)
    assert not any(cwd.iterdir())  # nothing written
