"""The demo builds through the code location, and the UI's first click sets off nothing.

On the small demo (tests/conftest.py), in a fresh process as a user's session would be
(tests/demo_ui_action.py): every demo run is a run of one of the code location's jobs,
with the code location's origin; "Materialize" of one unchanged day of a raw asset, as
the UI launches it, records that day's same data version, so neither the landing sensor
nor the automation requests anything afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands import run
from tests.conftest import copy_home

pytestmark = pytest.mark.slow

DEMO_JOBS = {"reference_job", "daily_ingest_job", "refresh_job"}


def test_one_unchanged_day_materialised_from_the_ui_requests_nothing(
    small_demo_home: Path, tmp_path: Path
) -> None:
    home = copy_home(small_demo_home, tmp_path)
    done = run(
        "python", "-m", "tests.demo_ui_action", "raw_pos_transactions", "2026-01-10",
        home=home, timeout=1200,
    )
    assert done.returncode == 0, done.describe()
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # the demo's runs: jobs of the code location `aiwf`, as the UI's timeline groups them
    assert {r["job"] for r in seen["demo_runs"]} == DEMO_JOBS
    assert {r["location"] for r in seen["demo_runs"]} == {"aiwf"}
    assert seen["one_day_run"] == {
        "success": True, "job": "__ASSET_JOB", "location": "aiwf",
        "materialized": ["raw_pos_transactions:2026-01-10"],
    }
    assert seen["first_tick"] == {}  # the demo leaves nothing for the automation to do
    assert seen["observed"] == []  # the landing zone did not change
    assert seen["second_tick"] == {}  # the day's data version is the one the demo recorded
