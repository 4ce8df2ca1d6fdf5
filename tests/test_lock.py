"""requirements.lock: every install (README, .ci/run, the image) takes these versions, so they
must satisfy pyproject.toml's ranges, and the majors the code is written for must be pinned."""

from __future__ import annotations

import tomllib
from importlib import metadata
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


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Every distribution `roots` pull in on this interpreter (markers evaluated, extras
    followed), from the installed packages' metadata: name -> who asked for it first."""
    wanted: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(r, "pyproject.toml") for r in roots if not r.marker or r.marker.evaluate()]
    while queue:
        requirement, parent = queue.pop(0)
        name = canonicalize_name(requirement.name)
        wanted.setdefault(name, parent)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not installed: nothing to follow (the lock must still name it)
        extras = {"", *requirement.extras}
        for child in map(Requirement, requires):
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                queue.append((child, name))
    return wanted


def missing_from_lock(requirements: dict[str, str], pins: dict[str, Version]) -> list[str]:
    return sorted(f"{name} (required by {parent})" for name, parent in requirements.items()
                  if name not in pins)


def test_every_declared_dependency_is_locked() -> None:
    """A dependency added to pyproject.toml (app or dev, direct or pulled in by one) without
    re-locking would install unpinned: the lock must name it."""
    missing = missing_from_lock(closure(declared()), locked())
    assert not missing, (
        "not in requirements.lock (re-lock, docs/DEPLOY.md 'The lock file'): " + ", ".join(missing)
    )


def test_a_dependency_missing_from_the_lock_is_found() -> None:
    pins = locked()
    wanted = closure([*declared(), Requirement("aiwf-not-a-locked-package>=1")])
    assert missing_from_lock(wanted, pins) == [
        "aiwf-not-a-locked-package (required by pyproject.toml)"
    ]
    # a transitive one too: drop a package only dagster pulls in
    del pins["alembic"]
    assert missing_from_lock(closure(declared()), pins) == ["alembic (required by dagster)"]
