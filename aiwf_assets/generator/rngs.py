"""Seeded random streams: the only source of randomness in the generator."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Keys of independent random streams.

    Every draw comes from `np.random.default_rng([seed, stream, day, ...])`, so a
    change in one part of the model never shifts the randomness of another part, and
    a day's data does not depend on how many draws earlier days made.
    """

    WORLD = 1
    CALENDAR = 2
    FAULT_PLAN = 3
    LAPSE = 10
    ORDERS = 11
    BASKETS = 12
    PRODUCTS = 13
    QUANTITIES = 14
    TIMES = 15
    PRICES = 16
    ANONYMOUS = 17
    STORES = 18
    TICKETS = 19
    SESSIONS = 20
    IDENTIFIERS = 21
    FAULTS = 22
    COMPLEMENTS = 23
    PLAN = 24


def rng_for(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """A generator determined only by the seed, the stream and the keys (day, channel…)."""
    return np.random.default_rng([seed, int(stream), *keys])
