"""One simulated day: lapses, orders, baskets, tickets, sessions, expected demand.

Everything is vectorised over customers / orders / lines; the only Python loops
run over the handful of segments, channels and ticket lags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aiwf_assets.generator import behaviour as B
from aiwf_assets.generator import params as P
from aiwf_assets.generator.calendar import Calendar
from aiwf_assets.generator.rngs import Stream, rng_for
from aiwf_assets.generator.sampling import (
    GroupedWeights,
    categorical_rows,
    draw_within,
    grouped_weights,
)
from aiwf_assets.generator.world import NOT_LAPSED, World

NO_ORDER = -1


@dataclass(frozen=True)
class PendingTickets:
    """Tickets decided at order time that open on a later day."""

    customer: np.ndarray
    category: np.ndarray
    bad: np.ndarray  # latent bad experience: feeds the lapse hazard


@dataclass
class State:
    """Latent state carried from day to day (flat in the number of days)."""

    lapsed_on: np.ndarray
    freq: np.ndarray  # decayed count of recent orders
    unhappy: np.ndarray  # decayed count of bad tickets
    last_order_day: np.ndarray
    prices: np.ndarray
    pending: dict[int, list[PendingTickets]] = field(default_factory=dict)


@dataclass(frozen=True)
class Orders:
    """One order channel on one day, orders sorted by time, lines grouped by order."""

    customer: np.ndarray  # -1 for guests and anonymous store sales
    guest: np.ndarray  # guest number for web guests, else -1
    seconds: np.ndarray  # since midnight; UTC for web/app, store-local for stores
    store: np.ndarray
    payment: np.ndarray
    currency: np.ndarray
    line_offsets: np.ndarray  # (n_orders + 1): lines of order k are [o[k], o[k+1])
    product: np.ndarray
    qty: np.ndarray
    unit_price_eur: np.ndarray
    promo: np.ndarray

    @property
    def n_lines_per_order(self) -> np.ndarray:
        return np.diff(self.line_offsets)


@dataclass(frozen=True)
class Tickets:
    customer: np.ndarray
    category: np.ndarray
    seconds: np.ndarray
    contact: np.ndarray
    status: np.ndarray
    satisfaction: np.ndarray  # 0 = not answered
    id_mode: np.ndarray  # 0 email, 1 phone, 2 both


@dataclass(frozen=True)
class Sessions:
    customer: np.ndarray  # -1 anonymous
    logged_in: np.ndarray
    seconds: np.ndarray
    device: np.ndarray
    pages: np.ndarray
    product_views: np.ndarray
    added_to_cart: np.ndarray
    duration: np.ndarray


@dataclass(frozen=True)
class DayEvents:
    day: int
    orders: tuple[Orders, Orders, Orders]
    tickets: Tickets
    sessions: Sessions
    expected_units: np.ndarray
    actual_units: np.ndarray


def initial_state(world: World) -> State:
    c = world.customers
    return State(
        lapsed_on=c.dormant_since.astype(np.int64),
        freq=c.initial_freq.copy(),
        unhappy=np.zeros(c.n),
        last_order_day=np.full(c.n, NO_ORDER, dtype=np.int64),
        prices=world.products.list_price.copy(),
    )


def _seconds_by_hour(
    rng: np.random.Generator, n: int, hour_weights: tuple[float, ...]
) -> np.ndarray:
    w = np.array(hour_weights, dtype=float)
    hours = rng.choice(24, size=n, p=w / w.sum())
    return hours * 3600 + rng.integers(0, 3600, size=n)


def _store_seconds(rng: np.random.Generator, n: int, weekday: int) -> np.ndarray:
    opens, closes = P.STORE_OPEN_SUNDAY_LOCAL if weekday == 6 else P.STORE_OPEN_LOCAL
    return rng.integers(opens * 3600, closes * 3600, size=n)


def _choice_by_group(rng: np.random.Generator, group: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Draw category k with probability table[group, k] for every row."""
    return categorical_rows(rng, table[group])


@dataclass(frozen=True)
class _DayModel:
    """Quantities of the day that all channels share."""

    day: int
    weekday: int
    probs: np.ndarray  # (n_customers, 3) order probability
    active: np.ndarray
    drawn: np.ndarray  # mean lines drawn per order, per customer
    product_weight: np.ndarray  # today's appeal of each product (behaviour.product_weights)
    by_subcategory: GroupedWeights  # the same weights grouped by subcategory
    qty_extra: np.ndarray
    unit_price: np.ndarray  # EUR shelf price after promotion discount
    discount: np.ndarray  # per product


def _subcategories(
    rng: np.random.Generator,
    taste: np.ndarray,
    totals: np.ndarray,
    buyer: np.ndarray,
    n_lines: np.ndarray,
) -> np.ndarray:
    """One subcategory per line, with probability taste[buyer, s] x totals[s] (normalised).

    The cumulative weights are built once per order and laid end to end, order k's
    shifted into [k, k + 1], so a single sorted search draws every line.
    """
    cum = np.take(taste, buyer, axis=0).astype(np.float64)
    cum *= totals
    np.cumsum(cum, axis=1, out=cum)
    cum /= cum[:, -1:]
    order = np.repeat(np.arange(len(buyer)), n_lines)
    cum += np.arange(len(buyer))[:, None]
    found = np.searchsorted(cum.ravel(), order + rng.random(len(order)), side="right")
    return np.minimum(found - order * cum.shape[1], cum.shape[1] - 1)


def _products(
    seed: int, world: World, m: _DayModel, channel: int, buyer: np.ndarray, n_lines: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(product per line, lines per order) for orders of `buyer` (Preferences rows).

    Each drawn line re-buys one of the buyer's staples with their staple share, else
    picks a subcategory by taste x today's weights and a product of it by weight.
    A drawn line then brings its product's complement along with COMPLEMENT_PROB,
    as the next line of the same order.
    """
    pref = world.preferences
    rng_p = rng_for(seed, Stream.PRODUCTS, m.day, channel)
    rng_c = rng_for(seed, Stream.COMPLEMENTS, m.day, channel)
    line_buyer = np.repeat(buyer, n_lines)
    n = len(line_buyer)
    subcategory = _subcategories(rng_p, pref.subcategory, m.by_subcategory.total, buyer, n_lines)
    fresh = draw_within(m.by_subcategory, subcategory, rng_p.random(n))
    staple = rng_c.random(n) < pref.staple_share[line_buyer]
    pick = pref.staples[line_buyer, rng_c.integers(0, P.STAPLES_PER_CUSTOMER, size=n)]
    drawn = np.where(staple, pick, fresh)
    complement = world.products.complement[drawn]
    add = (rng_c.random(n) < P.COMPLEMENT_PROB) & (complement >= 0)
    product = np.repeat(drawn, 1 + add)
    product[np.cumsum(1 + add)[add] - 1] = complement[add]
    order_of_line = np.repeat(np.arange(len(n_lines)), n_lines)
    return product, n_lines + np.bincount(order_of_line[add], minlength=len(n_lines))


def _channel_orders(
    seed: int, world: World, m: _DayModel, ordered: np.ndarray, channel: int
) -> Orders:
    c = world.customers
    rng_b = rng_for(seed, Stream.BASKETS, m.day, channel)
    rng_a = rng_for(seed, Stream.ANONYMOUS, m.day, channel)
    rng_t = rng_for(seed, Stream.TIMES, m.day, channel)
    known = np.flatnonzero(ordered[:, channel])
    n_known = len(known)
    # guests (web) and anonymous cash sales (stores) follow the CRM customers' demand
    ratio = {P.WEB: P.GUEST_RATIO, P.APP: 0.0, P.STORE: P.ANON_POS_RATIO}[channel]
    anon_basket = P.GUEST_BASKET if channel == P.WEB else P.ANON_POS_BASKET
    n_anon = int(rng_a.poisson(ratio * m.probs[m.active, channel].sum()))
    customer = np.concatenate([known, np.full(n_anon, -1)])
    guest = np.full(n_known + n_anon, -1)
    currency = np.zeros(n_known + n_anon, dtype=np.int64)
    store = np.full(n_known + n_anon, -1)
    payment = np.zeros(n_known + n_anon, dtype=np.int64)
    if channel == P.WEB:
        guest[n_known:] = rng_a.integers(0, world.guests.n, size=n_anon)
        currency[n_known:] = world.guests.currency[guest[n_known:]]
    if channel != P.STORE:
        currency[:n_known] = c.currency[known]
        seconds = _seconds_by_hour(
            rng_t, n_known + n_anon, P.HOURS_WEB if channel == P.WEB else P.HOURS_APP
        )
    else:
        seconds = _store_seconds(rng_t, n_known + n_anon, m.weekday)
        weight = world.stores.weight / world.stores.weight.sum()
        away = rng_a.choice(world.stores.n, size=n_known + n_anon, p=weight)
        at_home = np.concatenate(
            [rng_a.random(n_known) < P.HOME_STORE_SHARE, np.zeros(n_anon, dtype=bool)]
        )
        home = np.concatenate([c.home_store[known], np.full(n_anon, -1)])
        store = np.where(at_home, home, away)
        pay_table = np.array([P.POS_PAYMENT_KNOWN, P.POS_PAYMENT_ANONYMOUS])
        payment = _choice_by_group(rng_a, (customer < 0).astype(np.int64), pay_table)
    n_drawn = 1 + np.concatenate(
        [
            rng_b.poisson(m.drawn[known] - 1),
            rng_b.poisson(B.drawn_lines_mean(anon_basket) - 1, size=n_anon),
        ]
    )
    order = np.argsort(seconds, kind="stable")
    buyer = world.preferences.buyer(customer, guest)[order]
    product, n_lines = _products(seed, world, m, channel, buyer, n_drawn[order])
    return Orders(
        customer=customer[order],
        guest=guest[order],
        seconds=seconds[order],
        store=store[order],
        payment=payment[order],
        currency=currency[order],
        line_offsets=np.concatenate([[0], np.cumsum(n_lines)]),
        product=product,
        qty=1 + rng_for(seed, Stream.QUANTITIES, m.day, channel).poisson(m.qty_extra[product]),
        unit_price_eur=m.unit_price[product],
        promo=m.discount[product] > 0,
    )


def _expected_units(world: World, m: _DayModel) -> np.ndarray:
    """The mean of today's unit demand per product, given who is active today.

    Fresh lines by taste x weight, staple lines by the customers' staples, then each
    drawn line's complement with COMPLEMENT_PROB, times the mean quantity per line.
    """
    c, pref, prod = world.customers, world.preferences, world.products
    drawn = (m.probs * m.active[:, None]).sum(axis=1) * m.drawn
    web_orders = m.probs[m.active, P.WEB].sum()
    store_orders = m.probs[m.active, P.STORE].sum()
    guest_lines = P.GUEST_RATIO * web_orders * B.drawn_lines_mean(P.GUEST_BASKET)
    cash_lines = P.ANON_POS_RATIO * store_orders * B.drawn_lines_mean(P.ANON_POS_BASKET)
    staple_lines = drawn * pref.staple_share[: c.n]
    # guest orders pick one of the guest identities uniformly
    per_guest = np.full(pref.n_guests, guest_lines / pref.n_guests)
    fresh = np.concatenate([drawn - staple_lines, per_guest, [cash_lines]])
    totals = m.by_subcategory.total
    by_subcategory = B.subcategory_lines(pref.subcategory, fresh, totals)
    share = np.divide(
        m.product_weight,
        totals[prod.subcategory],
        out=np.zeros(prod.n),
        where=totals[prod.subcategory] > 0,
    )
    staple = pref.staples[: c.n].ravel()
    per_staple = np.repeat(staple_lines / P.STAPLES_PER_CUSTOMER, P.STAPLES_PER_CUSTOMER)
    staples = np.bincount(staple[staple >= 0], weights=per_staple[staple >= 0], minlength=prod.n)
    lines = by_subcategory[prod.subcategory] * share + staples
    has_complement = prod.complement >= 0
    lines += np.bincount(
        prod.complement[has_complement],
        weights=P.COMPLEMENT_PROB * lines[has_complement],
        minlength=prod.n,
    )
    return lines * (1 + m.qty_extra)


def _schedule_tickets(
    seed: int, world: World, state: State, day: int, orders: tuple[Orders, ...]
) -> None:
    """Decide at order time which orders cause a ticket, when, and how bad it is.

    Pre-deciding keeps the future of a customer who stops ordering fully determined
    by the state at any cutoff (needed for the exact churn probability).
    """
    rng = rng_for(seed, Stream.TICKETS, day, 0)
    for channel, o in enumerate(orders):
        known = o.customer[o.customer >= 0]
        raised = known[rng.random(len(known)) < P.TICKET_PROB_PER_ORDER[channel]]
        category = rng.choice(
            len(P.TICKET_CATEGORIES), size=len(raised), p=P.TICKET_CATEGORY_BY_CHANNEL[channel]
        )
        bad = rng.random(len(raised)) < np.array(P.BAD_EXPERIENCE_PROB)[category]
        lag = rng.integers(0, P.TICKET_MAX_LAG_DAYS, size=len(raised))
        for k in range(P.TICKET_MAX_LAG_DAYS):
            rows = lag == k
            if rows.any():
                batch = PendingTickets(raised[rows], category[rows], bad[rows])
                state.pending.setdefault(day + k, []).append(batch)


def _open_tickets(
    seed: int, world: World, state: State, day: int, active: np.ndarray
) -> tuple[Tickets, np.ndarray]:
    """Today's tickets (scheduled ones plus account questions) and who had a bad one."""
    c = world.customers
    rng = rng_for(seed, Stream.TICKETS, day, 1)
    scheduled = state.pending.pop(day, [])
    baseline = np.flatnonzero(active & (rng.random(c.n) < P.BASELINE_TICKET_RATE))
    customer = np.concatenate([*(b.customer for b in scheduled), baseline])
    category = np.concatenate([*(b.category for b in scheduled), np.full(len(baseline), P.ACCOUNT)])
    # account questions are routine and do not drive churn
    bad = np.concatenate([*(b.bad for b in scheduled), np.zeros(len(baseline), dtype=bool)])
    n = len(customer)
    status = rng.choice(len(P.TICKET_STATUSES), size=n, p=P.TICKET_STATUS_SHARE)
    answered = (status >= 2) & (rng.random(n) >= P.SATISFACTION_MISSING)
    good_score = rng.choice((3, 4, 5), size=n, p=(0.2, 0.4, 0.4))
    bad_score = rng.integers(1, 3, size=n)
    satisfaction = np.where(answered, np.where(bad, bad_score, good_score), 0)
    contact_table = np.array([s.contact_mix for s in P.SEGMENTS])
    contact = _choice_by_group(rng, c.segment[customer], contact_table)
    id_mode = rng.choice(3, size=n, p=P.TICKET_CONTACT_IDS)
    id_mode = np.where(c.has_phone[customer], id_mode, 0)
    seconds = _seconds_by_hour(rng, n, P.HOURS_TICKETS)
    order = np.argsort(seconds, kind="stable")
    tickets = Tickets(
        customer=customer[order],
        category=category[order],
        seconds=seconds[order],
        contact=contact[order],
        status=status[order],
        satisfaction=satisfaction[order],
        id_mode=id_mode[order],
    )
    bad_count = np.bincount(customer[bad], minlength=c.n).astype(float)
    return tickets, bad_count


def _sessions(
    seed: int, world: World, cal: Calendar, day: int, signed: np.ndarray, alive: np.ndarray,
    web: Orders,
) -> Sessions:  # fmt: skip
    c = world.customers
    rng = rng_for(seed, Stream.SESSIONS, day)
    web_mult = cal.channel_mult[day, P.WEB]
    rate = np.array([s.session_rate for s in P.SEGMENTS])[c.segment] * web_mult
    rate = np.where(alive, rate, rate * P.LAPSED_SESSION_FACTOR) * signed
    browsing = np.flatnonzero(rng.random(c.n) < rate)
    n_anon = int(rng.poisson(P.ANON_SESSIONS_PER_CUSTOMER * c.n * web_mult))
    n_buy = len(web.customer)
    customer = np.concatenate([browsing, np.full(n_anon, -1), web.customer])
    logged_in = np.concatenate(
        [
            rng.random(len(browsing)) < P.BROWSE_LOGGED_IN_SHARE,
            np.zeros(n_anon, dtype=bool),
            web.customer >= 0,  # buyers log in; guests check out without an account
        ]
    )
    n = len(customer)
    is_buy = np.arange(n) >= n - n_buy
    pages = np.where(is_buy, 3 + rng.poisson(8, size=n), 1 + rng.poisson(4, size=n))
    product_views = rng.binomial(pages, 0.6)
    cart_browse = rng.binomial(product_views, 0.05)
    buy_items = np.concatenate([np.zeros(n - n_buy, dtype=np.int64), web.n_lines_per_order])
    added = np.where(is_buy, buy_items + rng.poisson(0.3, size=n), cart_browse)
    duration = np.round(pages * P.SECONDS_PER_PAGE * rng.gamma(2.0, 0.5, size=n)).astype(np.int64)
    browse_start = _seconds_by_hour(rng, n, P.HOURS_WEB)
    buy_start = np.concatenate([np.zeros(n - n_buy, dtype=np.int64), web.seconds])
    seconds = np.where(is_buy, np.maximum(buy_start - duration, 0), browse_start)
    device_table = np.array([s.device_mix for s in P.SEGMENTS])
    device = _choice_by_group(
        rng, np.where(customer >= 0, c.segment[customer], P.ANONYMOUS_SEGMENT), device_table
    )
    order = np.argsort(seconds, kind="stable")
    return Sessions(
        customer=customer[order],
        logged_in=logged_in[order],
        seconds=seconds[order],
        device=device[order],
        pages=pages[order],
        product_views=product_views[order],
        added_to_cart=added[order],
        duration=duration[order] + 5,
    )


def simulate_day(seed: int, world: World, cal: Calendar, state: State, day: int) -> DayEvents:
    """Advance the state by one day and return the day's events."""
    c = world.customers
    state.prices = B.step_prices(seed, cal, world, day, state.prices)
    signed = c.signup_day <= day
    alive_before = signed & (state.lapsed_on == NOT_LAPSED)
    hazard = B.lapse_hazard(c.base_hazard, state.freq, c.expected_freq, state.unhappy)
    lapses = alive_before & (rng_for(seed, Stream.LAPSE, day).random(c.n) < hazard)
    state.lapsed_on[lapses] = day
    active = alive_before & ~lapses

    probs = B.order_probability(B.order_intensity(world, cal, day))
    ordered = active[:, None] & (rng_for(seed, Stream.ORDERS, day).random(probs.shape) < probs)
    weight = B.product_weights(world, cal, day, state.prices)
    discount = cal.discount[day][world.products.category]
    m = _DayModel(
        day=day,
        weekday=cal.date(day).weekday(),
        probs=probs,
        active=active,
        drawn=B.drawn_lines_mean(B.basket_means(world, cal, day)),
        product_weight=weight,
        by_subcategory=grouped_weights(
            world.products.subcategory, weight, len(P.SUBCATEGORY_NAMES)
        ),
        qty_extra=B.quantity_extra(cal, world, day),
        unit_price=np.round(state.prices * (1 - discount), 2),
        discount=discount,
    )
    orders = (
        _channel_orders(seed, world, m, ordered, P.WEB),
        _channel_orders(seed, world, m, ordered, P.APP),
        _channel_orders(seed, world, m, ordered, P.STORE),
    )
    _schedule_tickets(seed, world, state, day, orders)
    tickets, bad_today = _open_tickets(seed, world, state, day, active)
    sessions = _sessions(seed, world, cal, day, signed, active, orders[P.WEB])

    n_orders = ordered.sum(axis=1)
    state.freq = np.where(signed, P.FREQ_DECAY * state.freq + n_orders, state.freq)
    state.unhappy = P.UNHAPPY_DECAY * state.unhappy + bad_today
    state.last_order_day[n_orders > 0] = day
    units = np.zeros(world.products.n)
    for o in orders:
        units += np.bincount(o.product, weights=o.qty, minlength=world.products.n)
    return DayEvents(
        day=day,
        orders=orders,
        tickets=tickets,
        sessions=sessions,
        expected_units=_expected_units(world, m),
        actual_units=units,
    )
