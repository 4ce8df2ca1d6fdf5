"""The audit of write-audit-publish: blocking checks on staged rows, as readable findings.

Pure: frames and numbers in, findings out. The cleaning assets stage a day's tables,
read them back, run these, and publish only when no blocking finding is left.

Guards (thresholds in `GuardThresholds`, documented in DATA_CONTRACTS.md):
- volume: a daily source whose records fall below `min_volume_ratio` of its trailing
  median (its published days in the last `window_days`), or to zero; with no published
  history yet the floor of one record still holds (an empty, header-only or missing
  file is never published as the day);
- reference shrink: a reference table that would lose more than `max_reference_shrink`
  of its published rows, or become empty.
A deliberate override for a real drop is the run tag `OVERRIDE_TAG` naming the sources
(`web_orders,customers`) or `*`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from aiwf_assets.cleaning.contracts import CheckFailure

OVERRIDE_TAG = "aiwf/accept_drop"
_SHOWN = 3  # failing rows named per finding; the rest are counted


@dataclass(frozen=True)
class GuardThresholds:
    min_volume_ratio: float = 0.2
    window_days: int = 28
    max_reference_shrink: float = 0.2


def overridden_sources(tags: Mapping[str, str]) -> frozenset[str]:
    """Sources whose guards a run deliberately overrides (`*` for all)."""
    value = tags.get(OVERRIDE_TAG, "")
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def is_overridden(source: str, overrides: frozenset[str]) -> bool:
    return "*" in overrides or source in overrides


# --------------------------------------------------------------------------- contract


def where(frame: pl.DataFrame, row: int) -> str:
    """Where a row of a cleaned table came from: source file, row and channel."""
    values = frame.row(row, named=True)
    parts = []
    if values.get("source_file") is not None:
        parts.append(f"file {values['source_file']}")
    if values.get("source_row") is not None:
        parts.append(f"row {values['source_row']}")
    elif values.get("order_id") is not None:
        parts.append(f"order {values['order_id']}")
    if values.get("channel") is not None:
        parts.append(f"channel {values['channel']}")
    return ", ".join(parts) or f"position {row}"


def contract_finding(table: str, frame: pl.DataFrame, failure: CheckFailure) -> str:
    """One contract failure with the file, row and column of its first failing rows."""
    column = f"column {failure.column}" if failure.column else "a check across columns"
    rows = [r for r in failure.rows if 0 <= r < frame.height][:_SHOWN]
    # examples of column checks are the failing values, in the order of `rows`
    values = failure.examples if failure.column and len(failure.examples) >= len(rows) else ()
    located = [
        where(frame, r) + (f" (value {values[i]!r})" if values else "")
        for i, r in enumerate(rows)
    ]
    if not located:  # a column-wide failure (e.g. its type): no row to name
        return f"{table}: {failure.check} failed on {column}: {', '.join(failure.examples)}"
    more = failure.count - len(located)
    tail = f"; and {more} more" if more > 0 else ""
    first = "; ".join(located)
    return f"{table}: {failure.check} failed on {column} in {failure.count} row(s): {first}{tail}"


# --------------------------------------------------------------------------- guards


def volume_finding(
    source: str, records: int, history: Sequence[int], thresholds: GuardThresholds
) -> str | None:
    """Why a daily source's volume holds the day back, or None when it may be published.

    `records`: records read from the day's file; `history`: the same on the source's
    published days in the window. Without history the floor of one record still holds.
    """
    if records < 1:
        return (
            f"{source}: no record for the day (an empty, header-only or missing file);"
            " a published day is never replaced by nothing"
        )
    if not history:
        return None
    median = statistics.median(history)
    if records < thresholds.min_volume_ratio * median:
        return (
            f"{source}: {records} record(s), below {thresholds.min_volume_ratio:g} x the"
            f" trailing median of {median:g} over {len(history)} published day(s)"
            " (a truncated or partial delivery?)"
        )
    return None


def reference_finding(
    table: str, staged_rows: int, published_rows: int | None, thresholds: GuardThresholds
) -> str | None:
    """Why a reference snapshot may not replace the published table, or None."""
    if staged_rows == 0:
        was = f"the published {published_rows} row(s)" if published_rows else "nothing"
        return f"{table}: the new snapshot has no usable row; it would replace {was}"
    if not published_rows:
        return None
    shrink = 1 - staged_rows / published_rows
    if shrink > thresholds.max_reference_shrink:
        return (
            f"{table}: the new snapshot has {staged_rows} row(s), {shrink:.0%} fewer than the"
            f" published {published_rows} (more than {thresholds.max_reference_shrink:.0%})"
        )
    return None
