"""requirements.lock: every install (README, .ci/run, the image) takes these versions, so they
must satisfy pyproject.toml's ranges, and the majors the code is written for must be pinned."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
# the libraries whose next major is known or expected to break the code or the model files
BOUNDED = ["dagster", "polars", "duckdb", "pyarrow", "scikit-learn", "numpy", "skops", "pandas"]


def locked() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]["dev"]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_locked_version_satisfies_pyproject() -> None:
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name in pins:
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"requirements.lock pins {name}=={pins[name]}, outside pyproject's "
                f"{requirement}: re-lock (docs/DEPLOY.md, 'The lock file')"
            )


def test_the_majors_are_bounded_and_locked() -> None:
    pins = locked()
    by_name = {canonicalize_name(r.name): r for r in declared()}
    for name in BOUNDED:
        specifier = by_name[name].specifier
        assert any(s.operator in ("<", "<=", "==") for s in specifier), f"{name}: no upper bound"
        assert name in pins, f"{name} is not in requirements.lock"
    assert pins["dagster"] == Version("1.13.27")
