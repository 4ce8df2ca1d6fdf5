"""The promotion plan: the campaign calendar the business publishes ahead of time.

It lists the same campaigns the simulation runs (`calendar.Campaign`), each
published `PLAN_LEAD_DAYS` before it starts, and reaches past the generated
period (the plan of the coming weeks is known on the last day). Like a real
plan it is not exactly what happens: a few campaigns run without having been
announced, some are planned a day earlier or later than they run, some with
another discount, and a few planned campaigns are called off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import Campaign, campaigns_for
from aiwf_assets.generator.rngs import Stream, rng_for

PLAN_COLUMNS = (
    "campaign_code", "published_on", "start_date", "end_date", "discount_pct", "categories",
)  # fmt: skip


@dataclass(frozen=True)
class PlannedCampaign:
    code: str
    published_on: date
    start: date
    end: date
    discount_pct: int
    categories: tuple[int, ...]
    runs: bool  # False: called off (planned, never run)


def _other_discount(rng: np.random.Generator, pct: int) -> int:
    options = P.PROMO_DISCOUNTS_PCT
    k = options.index(pct) + int(rng.choice((-1, 1)))
    return options[min(max(k, 0), len(options) - 1)]


def _planned(rng: np.random.Generator, start: date, c: Campaign) -> PlannedCampaign | None:
    unannounced = rng.random() < P.PLAN_UNANNOUNCED_PROB
    shift = int(rng.choice((-1, 1))) if rng.random() < P.PLAN_SHIFT_PROB else 0
    changed = rng.random() < P.PLAN_DISCOUNT_CHANGE_PROB
    other = _other_discount(rng, c.discount_pct)
    lead = int(rng.integers(P.PLAN_LEAD_DAYS[0], P.PLAN_LEAD_DAYS[1] + 1))
    if unannounced:
        return None
    first = start + timedelta(days=c.first_day)
    return PlannedCampaign(
        code=c.code,
        published_on=first - timedelta(days=lead),
        start=first + timedelta(days=shift),
        end=start + timedelta(days=c.last_day + shift),
        discount_pct=other if changed else c.discount_pct,
        categories=c.categories,
        runs=True,
    )


def _called_off(
    rng: np.random.Generator, start: date, after: Campaign, before: Campaign | None, days: int
) -> PlannedCampaign | None:
    """A campaign planned in the gap after `after` that never runs (gaps of a week or more)."""
    gap_end = before.first_day - 2 if before is not None else days - 1
    length = int(rng.integers(P.PROMO_LENGTH_RANGE[0], P.PROMO_LENGTH_RANGE[1] + 1))
    first = after.last_day + 3
    if gap_end - first < 7 or rng.random() >= P.PLAN_CANCELLED_PROB:
        return None
    first += int(rng.integers(0, gap_end - first - length + 2))
    pct = int(rng.choice(P.PROMO_DISCOUNTS_PCT))
    n_cat = int(rng.integers(1, P.PROMO_MAX_CATEGORIES + 1))
    cats = np.sort(rng.choice(len(P.CATEGORIES), size=n_cat, replace=False))
    day = start + timedelta(days=first)
    lead = int(rng.integers(P.PLAN_LEAD_DAYS[0], P.PLAN_LEAD_DAYS[1] + 1))
    return PlannedCampaign(
        code=f"{P.SEASON_WORDS[day.month - 1]}{pct}",
        published_on=day - timedelta(days=lead),
        start=day,
        end=day + timedelta(days=length - 1),
        discount_pct=pct,
        categories=tuple(int(c) for c in cats),
        runs=False,
    )


def promotion_plan(seed: int, start: date, days: int) -> list[PlannedCampaign]:
    """Every campaign published by the last generated day, in start order."""
    last_day = start + timedelta(days=days - 1)
    campaigns = campaigns_for(seed, start, days + P.PLAN_LEAD_DAYS[1])
    plan: list[PlannedCampaign] = []
    for k, c in enumerate(campaigns):
        rng = rng_for(seed, Stream.PLAN, k)
        planned = _planned(rng, start, c)
        following = campaigns[k + 1] if k + 1 < len(campaigns) else None
        cancelled = _called_off(rng, start, c, following, days + P.PLAN_LEAD_DAYS[1])
        plan += [p for p in (planned, cancelled) if p is not None]
    return sorted(
        (p for p in plan if p.published_on <= last_day), key=lambda p: (p.start, p.code)
    )


def plan_frame(plan: list[PlannedCampaign]) -> pl.DataFrame:
    """The landing file's rows: categories `;`-joined."""
    return pl.DataFrame(
        {
            "campaign_code": [p.code for p in plan],
            "published_on": [p.published_on for p in plan],
            "start_date": [p.start for p in plan],
            "end_date": [p.end for p in plan],
            "discount_pct": [p.discount_pct for p in plan],
            "categories": [";".join(P.CATEGORIES[k] for k in p.categories) for p in plan],
        },
        schema={
            "campaign_code": pl.String, "published_on": pl.Date, "start_date": pl.Date,
            "end_date": pl.Date, "discount_pct": pl.Int64, "categories": pl.String,
        },
    )  # fmt: skip
