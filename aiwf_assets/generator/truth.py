"""Latent truth for evaluation (`home/truth/`): never read by the pipeline.

The churn probability is exact: along the only path where a customer places no
order, their future hazards are determined by the state at the cutoff (frequency
decays, pending tickets are pre-decided, order intensities come from the calendar).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from aiwf_assets.generator import behaviour as B
from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import Calendar
from aiwf_assets.generator.simulate import NO_ORDER, State
from aiwf_assets.generator.world import NOT_LAPSED, World

DEMAND_SCHEMA = pa.schema(
    [
        ("sku", pa.string()),
        ("date", pa.date32()),
        ("expected_units", pa.float64()),
        ("actual_units", pa.int64()),
    ]
)
CHURN_SCHEMA = pa.schema(
    [
        ("crm_id", pa.string()),
        ("cutoff_date", pa.date32()),
        ("horizon_days", pa.int32()),
        ("churn_prob", pa.float64()),
        ("churned", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class ChurnSnapshot:
    """The latent churn state at the end of the cutoff day."""

    cutoff: int
    horizon: int
    customers: np.ndarray  # eligible: ordered on or before the cutoff
    churn_prob: np.ndarray


def _bad_tickets_ahead(state: State, n: int, first_day: int, horizon: int) -> np.ndarray:
    """(horizon, n) bad tickets already scheduled to open on each day after the cutoff."""
    ahead = np.zeros((horizon, n))
    for j in range(horizon):
        for batch in state.pending.get(first_day + j, []):
            ahead[j] += np.bincount(batch.customer[batch.bad], minlength=n)
    return ahead


def churn_snapshot(
    world: World, cal: Calendar, state: State, cutoff: int, horizon: int
) -> ChurnSnapshot:
    """P(no order in (cutoff, cutoff + horizon]) for customers who ordered by the cutoff.

    Mirrors simulate_day: each day an alive customer first lapses with the hazard of
    yesterday's state, otherwise orders with the calendar's intensity. Without
    orders, frequency only decays and unhappiness follows the pre-decided tickets, so
      P = sum_k S_k h_k + S_{H+1},  S_k = prod_{j<k} (1 - h_j) q_j,  q_j = exp(-Lambda_j).
    """
    c = world.customers
    eligible = np.flatnonzero(state.last_order_day != NO_ORDER)
    lapsed = state.lapsed_on[eligible] != NOT_LAPSED
    alive = eligible[~lapsed]
    freq = state.freq[alive].copy()
    unhappy = state.unhappy[alive].copy()
    ahead = _bad_tickets_ahead(state, c.n, cutoff + 1, horizon)[:, alive]
    survive = np.ones(len(alive))
    prob = np.zeros(len(alive))
    for j in range(horizon):
        day = cutoff + 1 + j
        hazard = B.lapse_hazard(c.base_hazard[alive], freq, c.expected_freq[alive], unhappy)
        no_order = np.exp(-B.order_intensity(world, cal, day)[alive].sum(axis=1))
        prob += survive * hazard
        survive *= (1 - hazard) * no_order
        freq *= P.FREQ_DECAY
        unhappy = P.UNHAPPY_DECAY * unhappy + ahead[j]
    churn_prob = np.ones(len(eligible))
    churn_prob[~lapsed] = prob + survive
    return ChurnSnapshot(cutoff, horizon, eligible, np.clip(churn_prob, 0.0, 1.0))


def churn_table(world: World, cal: Calendar, snap: ChurnSnapshot | None, state: State) -> pa.Table:
    if snap is None:
        return CHURN_SCHEMA.empty_table()
    churned = state.last_order_day[snap.customers] <= snap.cutoff
    n = len(snap.customers)
    return pa.table(
        {
            "crm_id": world.customers.crm_id.gather(snap.customers).to_arrow(),
            "cutoff_date": pa.array([cal.date(snap.cutoff)] * n, pa.date32()),
            "horizon_days": pa.array(np.full(n, snap.horizon, dtype=np.int32)),
            "churn_prob": pa.array(snap.churn_prob),
            "churned": pa.array(churned),
        },
        schema=CHURN_SCHEMA,
    )


def demand_table(
    world: World, cal: Calendar, day: int, expected: np.ndarray, actual: np.ndarray
) -> pa.Table:
    """One day of latent demand for the products on sale that day."""
    launched = np.flatnonzero(world.products.launch_day <= day)
    return pa.table(
        {
            "sku": world.products.sku.gather(launched).to_arrow(),
            "date": pa.array([cal.date(day)] * len(launched), pa.date32()),
            "expected_units": pa.array(expected[launched]),
            "actual_units": pa.array(actual[launched].astype(np.int64)),
        },
        schema=DEMAND_SCHEMA,
    )


def customers_table(world: World, cal: Calendar, state: State) -> pa.Table:
    c = world.customers
    lapsed = state.lapsed_on != NOT_LAPSED
    lapse_dates = np.datetime64(cal.start, "D") + np.where(lapsed, state.lapsed_on, 0).astype(
        "timedelta64[D]"
    )
    return pa.table(
        {
            "crm_id": c.crm_id.head(c.n).to_arrow(),
            "segment_id": pa.array(c.segment.astype(np.int32)),
            "segment_name": pa.array([P.SEGMENTS[s].name for s in range(len(P.SEGMENTS))]).take(
                pa.array(c.segment)
            ),
            "base_rate": pa.array(c.order_rate),
            "base_lapse_hazard": pa.array(c.base_hazard),
            "lapsed_on": pa.array(lapse_dates, pa.date32(), mask=~lapsed),
        }
    )


def preferences_table(world: World) -> pa.Table:
    """Each customer's taste, the weight of every subcategory (a row sums to 1), and
    their staples (`staple_1_sku`, ...; null without staples).

    A fresh order line of the customer picks subcategory s with probability
    proportional to weight[s] x that day's total appeal of the products of s; a
    share STAPLE_LINE_SHARE of their drawn lines re-buys one of their staples.
    """
    c = world.customers
    pref = world.preferences
    columns = {"crm_id": c.crm_id.head(c.n).to_arrow()}
    by_subcategory = np.ascontiguousarray(pref.subcategory[: c.n].T)
    for name, weights in zip(P.SUBCATEGORY_NAMES, by_subcategory, strict=True):
        columns[name] = pa.array(weights)
    skus = world.products.sku.head(world.products.n).to_arrow()
    for k, staple in enumerate(np.ascontiguousarray(pref.staples[: c.n].T), start=1):
        columns[f"staple_{k}_sku"] = pa.DictionaryArray.from_arrays(
            pa.array(staple.astype(np.int32), mask=staple < 0), skus
        )
    return pa.table(columns)


def complements_table(world: World) -> pa.Table:
    """Product pairs: a drawn line of `sku` brings `complement_sku` along with `probability`."""
    prod = world.products
    has = np.flatnonzero(prod.complement >= 0)
    return pa.table(
        {
            "sku": prod.sku.gather(has).to_arrow(),
            "complement_sku": prod.sku.gather(prod.complement[has]).to_arrow(),
            "probability": pa.array(np.full(len(has), P.COMPLEMENT_PROB)),
        }
    )


def segments_table() -> pa.Table:
    seg = P.SEGMENTS
    return pa.table(
        {
            "segment_id": pa.array([s.segment_id for s in seg], pa.int32()),
            "segment_name": [s.name for s in seg],
            "description": [s.description for s in seg],
            "share": [s.share for s in seg],
            "order_rate": [s.order_rate for s in seg],
            "basket_mean": [s.basket_mean for s in seg],
            "web_share": [s.channel_mix[P.WEB] for s in seg],
            "app_share": [s.channel_mix[P.APP] for s in seg],
            "store_share": [s.channel_mix[P.STORE] for s in seg],
            "base_lapse_hazard": [s.lapse_hazard for s in seg],
            "promo_sensitivity": [s.promo_sensitivity for s in seg],
        }
    )


def affinities_table(world: World) -> pa.Table:
    n_seg, n_cat = world.affinity.shape
    return pa.table(
        {
            "segment_id": pa.array(np.repeat(np.arange(n_seg), n_cat).astype(np.int32)),
            "category": [P.CATEGORIES[k] for _ in range(n_seg) for k in range(n_cat)],
            "weight": pa.array(world.affinity.reshape(-1)),
        }
    )


def promotions_table(cal: Calendar) -> pa.Table:
    return pa.table(
        {
            "code": [c.code for c in cal.campaigns],
            "start_date": pa.array([cal.date(c.first_day) for c in cal.campaigns], pa.date32()),
            "end_date": pa.array([cal.date(c.last_day) for c in cal.campaigns], pa.date32()),
            "discount_pct": pa.array([c.discount_pct for c in cal.campaigns], pa.int32()),
            "categories": pa.array(
                [[P.CATEGORIES[k] for k in c.categories] for c in cal.campaigns],
                pa.list_(pa.string()),
            ),
        }
    )
