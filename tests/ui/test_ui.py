"""What a new user sees in the UI, checked in a real browser against the small demo."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.ui.conftest import graphql

GROUPS = ["landing", "raw", "cleaned", "marts", "features", "ml", "serving", "monitoring"]
AUTOMATIONS = [
    "landing_observation_sensor",
    "automation_condition_sensor",
    "run_failure_alert_sensor",
    "asset_alert_sensor",
    "daily_scoring_schedule",
    "weekly_retrain_schedule",
]
DAY = "2026-02-20"  # a demo day with files in every channel
RUN_TIMEOUT_S = 600  # a safety net: the queue may hold automation runs first

RUNS_SINCE = """
query ($since: Float!) {
  runsOrError(filter: {createdAfter: $since}) {
    ... on Runs { results { runId status assetSelection { path } } }
  }
}
"""


def test_the_lineage_page_shows_every_layer_as_a_group(page: Any, screenshots: Path) -> None:
    page.goto("/asset-groups")
    for group in GROUPS:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.screenshot(path=screenshots / "lineage.png")


def test_a_cleaned_asset_shows_its_contract_as_column_schema(
    page: Any, screenshots: Path
) -> None:
    page.goto("/assets/order_lines")
    expect(page.get_by_text("Columns", exact=True)).to_be_visible()
    expect(page.get_by_text("channel-prefixed order id", exact=False)).to_be_visible()
    expect(page.get_by_text("not_equal_to(0)").first).to_be_visible()  # quantity, unit_price
    page.screenshot(path=screenshots / "cleaned_columns.png")


def test_a_model_page_leads_with_its_decision_and_a_plot(page: Any, screenshots: Path) -> None:
    page.goto("/assets/churn_model")
    expect(page.get_by_text("decision", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"challenger|champion")).first).to_be_visible()
    plot = page.locator("img[src^='data:image/svg+xml']").first
    expect(plot).to_be_visible()  # inline: no "[Show Markdown]" click needed
    plot.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "model.png")


def test_the_segmentation_page_shows_its_heat_map(page: Any) -> None:
    page.goto("/assets/segmentation_model")
    # a markdown table of coloured squares, inline: no "[Show Markdown]" click needed
    expect(page.get_by_text("Segment profile (standardised means)")).to_be_visible()
    expect(page.get_by_role("columnheader", name="frequency", exact=True).first).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("^\U0001F7E5")).first).to_be_visible()


def test_the_automation_page_lists_sensors_and_schedules_as_running(
    page: Any, screenshots: Path
) -> None:
    page.goto("/automation")
    for name in AUTOMATIONS:
        # the innermost block holding its link and a checkbox is its row; the last box its toggle
        link = page.get_by_role("link", name=re.compile(rf"\b{name}\b"))
        row = page.locator("div").filter(has=link).filter(has=page.get_by_role("checkbox")).last
        expect(row.get_by_role("checkbox").last).to_be_checked()
    page.screenshot(path=screenshots / "automation.png")


def test_materialize_on_one_partition_gives_a_successful_run(
    page: Any, ui_url: str, screenshots: Path
) -> None:
    page.goto("/assets/raw_web_orders")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    # the dialog may open on the last 90 days only, and the demo's days may be older
    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_text("Show all partitions").click(timeout=10_000)
    partitions = dialog.locator("input[type=text]").first
    partitions.fill(DAY)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    clicked_at = time.time()
    dialog.get_by_role("button", name=re.compile(r"^Launch")).click()
    run_id = _wait_for_run(ui_url, "raw_web_orders", clicked_at)
    page.goto(f"/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    page.goto("/runs")
    # the innermost block holding the run's link and its status is its row in the list
    link = page.get_by_role("link", name=f"run {run_id[:8]}")
    row = page.locator("div").filter(has=link).filter(has_text="Manually launched").last
    expect(row).to_contain_text("Success")
    page.screenshot(path=screenshots / "runs.png")


def _wait_for_run(ui_url: str, asset: str, since: float) -> str:
    """The id of the run launched for `asset` after `since`, once it succeeded."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        runs = graphql(ui_url, RUNS_SINCE, {"since": since - 1})["runsOrError"]["results"]
        ours = [r for r in runs if [asset] in [a["path"] for a in r["assetSelection"] or []]]
        for run in ours:
            assert run["status"] not in ("FAILURE", "CANCELED"), f"run {run['runId']} {run}"
            if run["status"] == "SUCCESS":
                return run["runId"]
        time.sleep(3)
    raise AssertionError(f"no successful run of {asset} within {RUN_TIMEOUT_S} s")
