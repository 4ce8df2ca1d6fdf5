"""The deterministic calendar: seasonality, promotion campaigns, distribution drift.

Everything here is fixed before the first day is simulated, so order intensities of
future days are known at any cutoff; that is what makes the churn truth exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from aiwf_assets.generator import params as P
from aiwf_assets.generator.rngs import Stream, rng_for


@dataclass(frozen=True)
class Campaign:
    code: str
    first_day: int
    last_day: int
    discount_pct: int
    categories: tuple[int, ...]


@dataclass(frozen=True)
class Drift:
    """From `from_day` on, customer behaviour, category popularity and prices shift."""

    from_day: int
    rate_mult: tuple[float, ...]  # per segment
    basket_mult: float
    category: int
    category_mult: float
    price_mult: float

    def describe(self) -> dict[str, object]:
        return {
            "order_rate_mult_by_segment": {
                s.name: m for s, m in zip(P.SEGMENTS, self.rate_mult, strict=True)
            },
            "basket_mult": self.basket_mult,
            "category": P.CATEGORIES[self.category],
            "category_popularity_mult": self.category_mult,
            "price_mult": self.price_mult,
        }


@dataclass(frozen=True)
class Calendar:
    start: date
    days: int
    channel_mult: np.ndarray  # (days, 3) weekly x yearly multiplier per order channel
    discount: np.ndarray  # (days, n_categories) fraction off list price during campaigns
    campaigns: tuple[Campaign, ...]
    drift: Drift | None

    def date(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def campaign_on(self, day: int) -> Campaign | None:
        return next((c for c in self.campaigns if c.first_day <= day <= c.last_day), None)

    def drift_active(self, day: int) -> bool:
        return self.drift is not None and day >= self.drift.from_day


def seasonal_multiplier(day: date) -> float:
    """Smooth yearly sine plus a December (Christmas) peak."""
    doy = day.timetuple().tm_yday
    sine = P.YEARLY_AMPLITUDE * math.cos(2 * math.pi * (doy - P.YEARLY_PEAK_DOY) / 365.25)
    peak = P.DECEMBER_PEAK * math.exp(
        -0.5 * ((doy - P.DECEMBER_PEAK_DOY) / P.DECEMBER_PEAK_WIDTH) ** 2
    )
    return 1.0 + sine + peak


def _channel_multipliers(start: date, days: int) -> np.ndarray:
    weekly = np.array(P.WEEKLY).T  # (7, 3)
    dates = [start + timedelta(days=d) for d in range(days)]
    weekdays = np.array([d.weekday() for d in dates], dtype=np.int64)
    yearly = np.array([seasonal_multiplier(d) for d in dates])
    return weekly[weekdays] * yearly[:, None]


def _campaigns(rng: np.random.Generator, start: date, days: int) -> tuple[Campaign, ...]:
    # Campaigns never overlap: one promotion code per day keeps web orders unambiguous.
    campaigns: list[Campaign] = []
    day = 0
    while day < days:
        if rng.random() >= P.PROMO_START_PROB:
            day += 1
            continue
        length = int(rng.integers(P.PROMO_LENGTH_RANGE[0], P.PROMO_LENGTH_RANGE[1] + 1))
        pct = int(rng.choice(P.PROMO_DISCOUNTS_PCT))
        n_cat = int(rng.integers(1, P.PROMO_MAX_CATEGORIES + 1))
        cats = np.sort(rng.choice(len(P.CATEGORIES), size=n_cat, replace=False))
        first = start + timedelta(days=day)
        code = f"{P.SEASON_WORDS[first.month - 1]}{pct}"
        last = min(day + length - 1, days - 1)
        campaigns.append(Campaign(code, day, last, pct, tuple(int(c) for c in cats)))
        day = last + 2  # at least one regular day between campaigns
    return tuple(campaigns)


def _discounts(campaigns: tuple[Campaign, ...], days: int) -> np.ndarray:
    discount = np.zeros((days, len(P.CATEGORIES)))
    for c in campaigns:
        discount[c.first_day : c.last_day + 1, list(c.categories)] = c.discount_pct / 100
    return discount


def _drift(seed: int, from_day: int) -> Drift:
    rng = rng_for(seed, Stream.CALENDAR, 1)
    return Drift(
        from_day=from_day,
        rate_mult=P.DRIFT_RATE_MULT,
        basket_mult=P.DRIFT_BASKET_MULT,
        category=int(rng.integers(len(P.CATEGORIES))),
        category_mult=P.DRIFT_CATEGORY_MULT,
        price_mult=P.DRIFT_PRICE_MULT,
    )


def campaigns_for(seed: int, start: date, days: int) -> tuple[Campaign, ...]:
    """The campaigns of `days` days from `start`. A longer period starts with the same
    campaigns (the draws go day by day), so the plan can reach past the generated days."""
    return _campaigns(rng_for(seed, Stream.CALENDAR, 0), start, days)


def build_calendar(seed: int, start: date, days: int, drift_day: int | None) -> Calendar:
    campaigns = campaigns_for(seed, start, days)
    return Calendar(
        start=start,
        days=days,
        channel_mult=_channel_multipliers(start, days),
        discount=_discounts(campaigns, days),
        campaigns=campaigns,
        drift=None if drift_day is None else _drift(seed, drift_day),
    )
