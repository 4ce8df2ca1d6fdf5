"""Model equations shared by the simulation and the truth.

The simulation samples from these quantities and the truth (churn probability,
expected demand) evaluates them, so both always agree by construction.
"""

from __future__ import annotations

import numpy as np

from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import Calendar
from aiwf_assets.generator.rngs import Stream, rng_for
from aiwf_assets.generator.world import World


def segment_rate_factor(cal: Calendar, day: int) -> np.ndarray:
    """Per-segment multiplier of the order rate: promotion lift and drift."""
    factor = np.ones(len(P.SEGMENTS))
    if cal.campaign_on(day) is not None:
        factor *= 1 + P.PROMO_BASE_LIFT + np.array([s.promo_sensitivity for s in P.SEGMENTS])
    if cal.drift is not None and cal.drift_active(day):
        factor *= np.array(cal.drift.rate_mult)
    return factor


def order_intensity(world: World, cal: Calendar, day: int) -> np.ndarray:
    """(n_customers, 3) expected orders per channel on `day` for an active customer.

    Depends on the calendar only, never on sampled history: the churn truth needs
    the intensities of future days at the cutoff.
    """
    c = world.customers
    per_customer = c.order_rate * segment_rate_factor(cal, day)[c.segment]
    return per_customer[:, None] * c.channel_mix * cal.channel_mult[day][None, :]


def order_probability(intensity: np.ndarray) -> np.ndarray:
    """P(at least one order) for Poisson intensities; at most one order is kept per day."""
    return -np.expm1(-intensity)


def basket_means(world: World, cal: Calendar, day: int) -> np.ndarray:
    base = world.customers.basket_mean
    if cal.drift is not None and cal.drift_active(day):
        return 1 + (base - 1) * cal.drift.basket_mult
    return base


def lapse_hazard(
    base: np.ndarray, freq: np.ndarray, expected_freq: np.ndarray, unhappy: np.ndarray
) -> np.ndarray:
    """Daily probability that an active customer lapses for good.

    Bad service experiences (`unhappy`, decayed count of bad tickets) and a recent
    order frequency below the customer's own habit both raise the segment base rate.
    """
    low_freq = np.clip(1 - freq / expected_freq, 0.0, 1.0)
    hazard = base * (1 + P.UNHAPPY_WEIGHT * unhappy) * (1 + P.LOW_FREQ_WEIGHT * low_freq)
    return np.minimum(hazard, P.MAX_HAZARD)


def product_weights(world: World, cal: Calendar, day: int, prices: np.ndarray) -> np.ndarray:
    """(n_products,) appeal of each product today: popularity x price response x launch x drift.

    A customer's fresh line picks subcategory s with probability proportional to
    taste[s] x (total weight of s), then a product of s in proportion to its weight.
    """
    prod = world.products
    discount = cal.discount[day][prod.category]
    paid = prices * (1 - discount)
    weight = (
        prod.popularity * (paid / prod.list_price) ** -P.PRICE_ELASTICITY * (prod.launch_day <= day)
    )
    if cal.drift is not None and cal.drift_active(day):
        weight = weight * np.where(prod.category == cal.drift.category, cal.drift.category_mult, 1)
    return weight


def subcategory_lines(taste: np.ndarray, lines: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """(n_subcategories,) expected fresh lines per subcategory.

    Row i of `taste` draws `lines[i]` lines, each from subcategory s with probability
    taste[i, s] x totals[s] / (taste[i] @ totals): two matrix-vector products summed
    in double precision (taste may be single), no (n, n_subcategories) temporary.
    """
    norm = np.einsum("ij,j->i", taste, totals, dtype=np.float64)
    per_taste = np.divide(lines, norm, out=np.zeros_like(norm), where=norm > 0)
    return totals * np.einsum("i,ij->j", per_taste, taste, dtype=np.float64)


def drawn_lines_mean(basket: np.ndarray | float) -> np.ndarray:
    """Mean lines drawn per order (1 + Poisson), so that with complement add-ons an
    order averages `basket` lines."""
    return 1 + np.maximum(np.asarray(basket) / (1 + P.COMPLEMENT_PROB) - 1, 0.0)


def quantity_extra(cal: Calendar, world: World, day: int) -> np.ndarray:
    """Mean of the Poisson part of a line's quantity (quantity = 1 + extra)."""
    on_promo = cal.discount[day][world.products.category] > 0
    return P.QTY_EXTRA + P.QTY_EXTRA_PROMO * on_promo


def step_prices(seed: int, cal: Calendar, world: World, day: int, prices: np.ndarray) -> np.ndarray:
    """Today's shelf prices: random steps up or down, the drift's price shift, .99 endings."""
    if day == 0:
        return world.products.list_price.copy()
    rng = rng_for(seed, Stream.PRICES, day)
    n = len(prices)
    change = rng.random(n) < P.PRICE_CHANGE_RATE
    step = rng.uniform(*P.PRICE_STEP_RANGE, size=n) * rng.choice((-1.0, 1.0), size=n)
    factor = np.where(change, 1 + step, 1.0)
    if cal.drift is not None and day == cal.drift.from_day:
        factor = factor * cal.drift.price_mult
    stepped = np.maximum(np.floor(prices * factor) + 0.99, 0.99)
    return np.where(factor != 1.0, stepped, prices)
