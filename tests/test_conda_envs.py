"""The conda environments of envs/ (for Snakemake's ``--sdm conda``) against pyproject.toml and the
rules. No conda is reachable here, so the environments are never built: these tests read the files,
compare every pin with pyproject.toml's and check that the rules name existing environments."""

import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PINS = {canonicalize_name(r.name): r for r in map(Requirement, PROJECT["dependencies"])}


def read_env(path):
    """(conda dependency strings, pip lines) of a conda environment file."""
    env = yaml.safe_load(path.read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [line for d in env["dependencies"] if isinstance(d, dict) for line in d["pip"]]
    return conda, pip


def test_every_dependency_is_in_some_environment():
    pinned = {canonicalize_name(Requirement(line).name) for path in ENVS for line in read_env(path)[1]
              if not line.startswith("-")}
    # The Slurm executor plugin runs in the Snakemake that submits jobs, never inside a job.
    assert set(PINS) - pinned == {"snakemake-executor-plugin-slurm"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_environment_pins_equal_pyproject(path):
    conda, pip = read_env(path)
    assert "pip" in conda
    python = [d.split("=", 1)[1] for d in conda if d.startswith("python=")]
    assert len(python) == 1 and SpecifierSet(PROJECT["requires-python"]).contains(python[0])
    # Only Python and pip come from conda: every other package is pip's, pinned as pyproject.toml.
    assert {d.split("=", 1)[0] for d in conda} == {"python", "pip"}
    requirements = [Requirement(line) for line in pip if not line.startswith("-")]
    names = [canonicalize_name(r.name) for r in requirements]
    assert len(names) == len(set(names)), f"{path.name}: a package listed twice"
    for requirement, name in zip(requirements, names):
        assert name in PINS, f"{path.name}: {requirement} is not a dependency in pyproject.toml"
        assert requirement == PINS[name], f"{path.name}: {requirement} but pyproject.toml pins {PINS[name]}"


def test_torch_comes_from_the_cpu_index():
    for path in ENVS:
        pip = read_env(path)[1]
        if any(line.startswith("torch==") for line in pip):
            assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip


def test_rules_name_existing_environments():
    named = {(REPO / "rules" / env).resolve() for rules in (REPO / "rules").glob("*.smk")
             for env in re.findall(r'^\s+conda:\s*\n\s+"([^"]+)"', rules.read_text(), flags=re.M)}
    assert named == {path.resolve() for path in ENVS}
