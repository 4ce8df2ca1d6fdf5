"""The demo's partitions are the days it landed, and its progress lines (pure parts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiwf_assets.progress import is_milestone, progress_line
from aiwf_assets.settings import (
    SettingsError,
    _read_env,
    get_settings,
    home_settings,
    reset_settings_cache,
    write_home_settings,
)

REPO = Path(__file__).resolve().parent.parent


def test_home_settings_apply_unless_the_environment_sets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    write_home_settings(
        home, {"AIWF_PARTITION_START": "2026-01-01", "AIWF_PARTITION_END": "2026-03-01"},
        why="test",
    )
    (home / "aiwf.env").write_text(
        (home / "aiwf.env").read_text() + "# AIWF_ENV=prod\nPATH=/nowhere\n"
    )
    assert home_settings(home) == {
        "AIWF_PARTITION_START": "2026-01-01", "AIWF_PARTITION_END": "2026-03-01"
    }
    monkeypatch.setenv("AIWF_HOME", str(home))
    monkeypatch.delenv("AIWF_PARTITION_START", raising=False)
    monkeypatch.delenv("AIWF_PARTITION_END", raising=False)
    reset_settings_cache()
    try:
        assert (get_settings().partition_start, get_settings().partition_end) == (
            "2026-01-01", "2026-03-01"
        )
        assert get_settings().env == "local"  # a commented line is no setting
        monkeypatch.setenv("AIWF_PARTITION_END", "2026-02-01")
        reset_settings_cache()
        assert get_settings().partition_end == "2026-02-01"
    finally:
        reset_settings_cache()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [("2026-03-01", "2026-02-01", "before AIWF_PARTITION_START"), ("2026-01-01", "soon", "YYYY")],
)
def test_a_wrong_window_is_named(start: str, end: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _read_env({"AIWF_PARTITION_START": start, "AIWF_PARTITION_END": end})


def test_partitions_end_on_the_last_landed_day(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_home_settings(
        home, {"AIWF_PARTITION_START": "2026-01-01", "AIWF_PARTITION_END": "2026-03-01"},
        why="test",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWF_")}
    code = (
        "from aiwf_assets.definitions import defs; "
        "p = defs.resolve_assets_def('raw_web_orders').partitions_def; "
        "keys = p.get_partition_keys(); print(keys[0], keys[-1], len(keys))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
        env={**env, "AIWF_HOME": str(home), "PYTHONPATH": str(REPO)},
    )
    assert done.stdout.split() == ["2026-01-01", "2026-03-01", "60"]


def test_progress_milestones_and_lines() -> None:
    milestones = [6, 12, 18, 24, 30, 36, 42, 48, 54, 60]
    assert [d for d in range(1, 61) if is_milestone(d, 60)] == milestones
    assert [d for d in range(1, 4) if is_milestone(d, 3)] == [1, 2, 3]
    assert progress_line("STEP_SUCCESS", "raw_web_orders", "") == "  done    raw_web_orders"
    assert progress_line("STEP_FAILURE", "churn_model", "") == "  FAILED  churn_model"
    assert progress_line(None, "orders", "progress: cleaned tables 6/60 days, 1,200 rows") == (
        "          cleaned tables 6/60 days, 1,200 rows"
    )
    assert progress_line(None, "orders", "Writing ...") is None
    assert progress_line("STEP_START", "orders", "") is None


def test_the_demo_reads_days_from_file_names_as_the_landing_sensor_does() -> None:
    # before, whatever came before the first dot was a day: an upload in progress moved the
    # window to its day, and '20260106' (an ISO basic date) became AIWF_PARTITION_END
    from aiwf_assets.demo import days_of_landed_files
    from aiwf_assets.ingest.spec import declared_sources

    paths = [
        "web_orders/2026-01-05.jsonl", "crm_tickets/2026-01-06.csv", "reference/customers.csv",
        "crm_tickets/2026-01-07.csv.partial", "crm_tickets/2026-01-08.CSV",
        "crm_tickets/20260109.csv", "crm_tickets/2026-01-10 (1).csv",
        "pos_transactions/2019-06-01.csv.gz", "pos_transactions/2026-01-11/2026-01-11.csv",
        "web_orders/2026-01-12.csv",  # not this source's extension
    ]  # fmt: skip
    assert days_of_landed_files(paths, declared_sources(None)) == ["2026-01-05", "2026-01-06"]
