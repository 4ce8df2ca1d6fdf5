"""Every command the README and docs/ show, run as a user types it (a subprocess of the
venv's script from the repository root), on small data.

Expected failures must print one line naming what is wrong and exit non-zero, never a
Python traceback.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.commands import REPO, Completed, run, serving_ui

pytestmark = pytest.mark.slow

# a logged warning ("- WARNING -") or a Python warning (SupersessionWarning: ...)
WARNING = re.compile(r"\bWARNING\b|\w+Warning:")


def assert_clean_failure(done: Completed, code: int, *phrases: str) -> None:
    """Exit `code`, no traceback, one line on stderr that contains every phrase."""
    assert done.returncode == code, done.describe()
    assert "Traceback" not in done.output, done.describe()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.describe()
    for phrase in phrases:
        assert phrase in lines[0], done.describe()


def test_generate_without_faults(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run(
        "aiwf", "generate", "--days", "2", "--scale", "0.05", "--faults", "none", home=home
    )
    assert done.returncode == 0, done.describe()
    assert done.stdout.rstrip().endswith("faults: none")
    assert sorted(p.name for p in (home / "landing" / "web_orders").iterdir()) == [
        "2026-01-01.jsonl", "2026-01-02.jsonl"
    ]


def test_generate_with_an_unknown_fault_names_the_allowed_ones(tmp_path: Path) -> None:
    done = run("aiwf", "generate", "--days", "2", "--faults", "typos", home=tmp_path / "h")
    assert_clean_failure(done, 2, "aiwf generate:", "unknown fault(s): typos", "malformed_rows")
    assert not (tmp_path / "h" / "landing").exists()


def test_a_usage_error_is_one_line(tmp_path: Path) -> None:
    done = run("aiwf", "generate", "--days", "many", home=tmp_path / "h")
    assert_clean_failure(done, 2, "--days", "invalid int value", "aiwf generate --help")


def test_rollback_without_an_earlier_champion(tmp_path: Path) -> None:
    done = run("aiwf", "model", "rollback", "churn", home=tmp_path / "h")
    assert_clean_failure(done, 1, "aiwf model rollback:", "no earlier champion")


def test_rollback_restores_the_earlier_champion(tmp_path: Path) -> None:
    from aiwf_assets.io.model_store import ModelStore

    home = tmp_path / "h"
    store = ModelStore.local(str(home / "models"))
    cards = [
        store.save(
            {"weights": n}, family="churn", model_name=f"model_{n}", params={}, metrics={},
            baseline_metrics={}, data_versions={}, row_counts={},
            trained_through=f"2026-02-0{n}", code_version="1",
        )
        for n in (1, 2)
    ]
    for card in cards:
        store.record("churn", card.version, "promote", "beat the champion")

    done = run("aiwf", "model", "rollback", "churn", home=home)
    assert done.returncode == 0, done.describe()
    assert done.stdout.strip() == (
        f"churn: champion is now model_1 version {cards[0].version} "
        "(trained through 2026-02-01)"
    )
    assert store.registry("churn").champion == cards[0].version

    again = run("aiwf", "model", "rollback", "churn", home=home)
    assert_clean_failure(again, 1, "no earlier champion")
    assert store.registry("churn").champion == cards[0].version


def test_evaluate_without_generated_data(tmp_path: Path) -> None:
    done = run("aiwf", "evaluate", home=tmp_path / "h")
    assert_clean_failure(done, 1, "aiwf evaluate:", "aiwf generate")


def test_dg_check_defs_loads_the_project_quietly(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / "dagster_home").mkdir(parents=True)  # as `aiwf demo` / `aiwf ui` leave it
    shutil.copyfile(REPO / "aiwf_assets" / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    done = run("dg", "check", "defs", home=home)
    assert done.returncode == 0, done.describe()
    assert "All definitions loaded successfully." in done.output
    assert not WARNING.search(done.output), done.describe()


def test_ui_starts_quietly(tmp_path: Path) -> None:
    home = tmp_path / "h"
    with serving_ui(home) as ui:
        pass
    output = ui.output()
    assert f"open {ui.url}" in output
    assert "Serving dagster-webserver on" in output
    assert not WARNING.search(output), output[-4000:]
    assert (home / "dagster_home" / "dagster.yaml").exists()
