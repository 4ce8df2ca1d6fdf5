"""Shared fixtures: an isolated AIWF_HOME and DAGSTER_HOME per test, the Postgres gate and
throw-away Postgres databases."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiwf_assets.settings import Settings, get_settings, reset_settings_cache

POSTGRES_DSN = os.environ.get("AIWF_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def aiwf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for a fresh local AIWF_HOME under tmp_path (with its own DAGSTER_HOME)."""
    monkeypatch.setenv("AIWF_ENV", "local")
    monkeypatch.setenv("AIWF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.delenv("AIWF_PII_KEY", raising=False)
    reset_settings_cache()
    yield get_settings()
    reset_settings_cache()


def postgres_or_skip(dsn: str = POSTGRES_DSN) -> str:
    """The DSN if Postgres answers; in CI (CI=true) an unreachable server fails the test."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3) as con:
            con.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        reason = f"Postgres at {dsn} unreachable: {exc}".strip()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: Postgres is required)")
        pytest.skip(reason)
    return dsn


@contextlib.contextmanager
def dagster_database(dsn: str) -> Iterator[dict[str, str]]:
    """A fresh database on the server of `dsn`, dropped afterwards, as conninfo parameters
    (for Dagster's instance: dagster-postgres has no schema option)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    admin = make_conninfo(dsn, dbname="postgres")
    name = f"aiwf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {**conninfo_to_dict(admin), "dbname": name}
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def small_demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home after `aiwf demo --days 60 --scale 0.2` (every layer, champions, the UI's
    instance), run once per session as a user types it. Treat it as read-only; a test that
    changes it works on `copy_home(small_demo_home, tmp_path)`."""
    from tests.commands import run

    home = tmp_path_factory.mktemp("small_demo") / "home"
    done = run("aiwf", "demo", "--days", "60", "--scale", "0.2", home=home, timeout=1800)
    assert done.returncode == 0, done.describe()
    (home / "demo-output.txt").write_text(done.output)
    return home


def copy_home(home: Path, parent: Path) -> Path:
    """A private copy of a home (files, DuckDB warehouse, SQLite Dagster instance)."""
    import shutil

    target = parent / "home"
    shutil.copytree(home, target, symlinks=True)
    return target
