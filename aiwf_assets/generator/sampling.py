"""Vectorised categorical draws: one draw per row, or one item within a given group per row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def categorical_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of an (n, k) matrix of (unnormalised) category weights."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), probs.shape[1] - 1)


@dataclass(frozen=True)
class GroupedWeights:
    """Items sorted by group with cumulative weights, to draw items within groups."""

    order: np.ndarray  # item numbers sorted by group
    cum: np.ndarray  # cumulative weight along `order`
    start: np.ndarray  # (n_groups,) cumulative weight before the group's first item
    total: np.ndarray  # (n_groups,) weight of the group
    last: np.ndarray  # (n_groups,) position in `order` of the group's last weighted item


def grouped_weights(group: np.ndarray, weight: np.ndarray, n_groups: int) -> GroupedWeights:
    order = np.argsort(group, kind="stable")
    cum = np.cumsum(weight[order])
    ends = np.cumsum(np.bincount(group, minlength=n_groups))
    padded = np.concatenate([[0.0], cum])
    starts = np.concatenate([[0], ends[:-1]])
    weighted = np.flatnonzero(weight[order] > 0)
    last = np.full(n_groups, -1)
    np.maximum.at(last, group[order][weighted], weighted)
    return GroupedWeights(order, cum, padded[starts], padded[ends] - padded[starts], last)


def draw_within(gw: GroupedWeights, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Item per row, drawn in proportion to weight within `groups` (each with total > 0).

    `u` are uniforms in [0, 1); the clip to the group's last weighted item keeps
    rounding from ever landing on a neighbouring group or a zero-weight item.
    """
    pos = np.searchsorted(gw.cum, gw.start[groups] + u * gw.total[groups], side="right")
    return gw.order[np.minimum(pos, gw.last[groups])]
