"""The promotion plan: generated ahead of time with plan-vs-actual noise, landed as a
reference source, cleaned against its contract with quarantine reasons."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from aiwf_assets.cleaning import clean_reference_promotion_plan
from aiwf_assets.cleaning.contracts import validate_table
from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import build_calendar
from aiwf_assets.generator.output import csv_bytes
from aiwf_assets.generator.plan import plan_frame, promotion_plan
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import load_sources

START = date(2026, 1, 1)
DAYS = 120
SOURCE = "reference/promotion_plan.csv"


def clean_file(text: bytes):
    spec = load_sources()["promotion_plan"]
    return clean_reference_promotion_plan(parse_landing(text, spec, SOURCE).frame)


@pytest.fixture(scope="module")
def plan() -> list:
    return promotion_plan(7, START, DAYS)


def test_the_plan_is_declared_as_a_reference_source() -> None:
    spec = load_sources()["promotion_plan"]
    assert spec.contract.name == "promotion_plan" and not spec.contract.daily
    assert spec.landing == SOURCE


def test_the_plan_lists_the_truths_campaigns_with_realistic_differences() -> None:
    days = 365  # a year: enough campaigns for every kind of difference
    plan = promotion_plan(7, START, days)
    truth = build_calendar(7, START, days, None).campaigns
    last_day = START + timedelta(days=days - 1)
    ran = [p for p in plan if p.runs]
    matched, shifted, rediscounted = 0, 0, 0
    for c in truth:
        first = START + timedelta(days=c.first_day)
        same = [p for p in ran if p.code == c.code and abs((p.start - first).days) <= 1
                and p.categories == c.categories]  # fmt: skip
        if not same:
            continue
        matched += 1
        shifted += same[0].start != first
        rediscounted += same[0].discount_pct != c.discount_pct
    # most campaigns are announced as they run; some are shifted or re-discounted
    assert matched >= 0.8 * len(truth)
    assert shifted >= 1 and rediscounted >= 1
    assert shifted + rediscounted < matched
    assert any(not p.runs for p in plan), "a planned campaign was called off"
    # published ahead: at least the lead, never after the delivery day
    assert all((p.start - p.published_on).days >= P.PLAN_LEAD_DAYS[0] - 1 for p in plan)
    assert all(p.published_on <= last_day for p in plan)


def test_the_plan_reaches_past_the_generated_days(plan: list) -> None:
    last_day = START + timedelta(days=DAYS - 1)
    assert max(p.end for p in plan) > last_day  # the coming weeks are planned
    assert all(p.published_on <= last_day for p in plan)


def test_generated_plan_cleans_without_quarantine(plan: list) -> None:
    result = clean_file(csv_bytes(plan_frame(plan)))
    table = result.tables["promotion_plan"]
    assert result.quarantine.is_empty()
    assert table.height == len(plan)
    assert validate_table("promotion_plan", table) == []
    assert table["categories"].str.contains(r"^[a-z]+(;[a-z]+)*$").all()


def test_bad_plan_rows_are_quarantined_with_the_reason() -> None:
    header = b"campaign_code,published_on,start_date,end_date,discount_pct,categories\n"
    rows = [
        b"spring20,2026-02-01,2026-03-01,2026-03-03,20,Home; TOYS;home",  # fine, spelt loosely
        b"BACKWARDS,2026-02-01,2026-03-10,2026-03-08,20,home",
        b"TOOMUCH,2026-02-01,2026-03-10,2026-03-11,120,home",
        b"LATE,2026-03-12,2026-03-10,2026-03-11,10,home",
        b"NOWHERE,2026-02-01,2026-03-10,2026-03-11,10, ; ",
        b"YEARLONG,2026-02-01,2026-03-10,2027-03-11,10,home",
        b"NODATE,2026-02-01,,2026-03-11,10,home",
        b"WORDS,2026-02-01,2026-03-10,2026-03-11,ten,home",
    ]
    result = clean_file(header + b"\n".join(rows) + b"\n")
    table = result.tables["promotion_plan"]
    assert table.rows() == [
        ("SPRING20", date(2026, 2, 1), date(2026, 3, 1), date(2026, 3, 3), 20.0, "home;toys")
    ]
    reasons = dict(zip(result.quarantine["source_row"], result.quarantine["reasons"], strict=True))
    assert reasons == {
        2: "end_date: must not be before start_date (2026-03-08)",
        3: "discount_pct: must be > 0 and < 100 (120.0)",
        4: "published_on: must not be after start_date (2026-03-12)",
        5: "categories: must name at least one category (;)",
        6: "end_date: must be at most 62 days after start_date (2027-03-11)",
        7: "start_date: missing",
        8: "discount_pct: not a number ('ten')",
    }
    assert set(result.quarantine["source_file"]) == {SOURCE}
    accounting = result.accounting.row(0, named=True)
    assert (accounting["rows_in"], accounting["rows_cleaned"]) == (8, 1)


def test_the_contract_refuses_a_plan_that_ends_before_it_starts() -> None:
    bad = pl.DataFrame(
        {
            "campaign_code": ["A", "A"],
            "published_on": [date(2026, 1, 1), date(2026, 1, 1)],
            "start_date": [date(2026, 2, 1), date(2026, 2, 1)],
            "end_date": [date(2026, 1, 30), date(2026, 2, 2)],
            "discount_pct": [10.0, 0.0],
            "categories": ["home", "home;"],
        }
    )
    checks = {f.check for f in validate_table("promotion_plan", bad)}
    assert {"end_not_before_start", "greater_than(0)"} <= checks
    assert any("str_matches" in c for c in checks)
    assert any("unique" in c or "duplicate" in c for c in checks)
