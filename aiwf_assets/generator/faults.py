"""Fault names, the deterministic fault plan, and the record of what was injected.

Every injection is recorded (channel, date, file, 1-based source rows, kind, how many
order lines it touches) in `truth/faults.json`, so tests can check the pipeline's
quarantine and dedup counts against it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from aiwf_assets.generator import params as P
from aiwf_assets.generator.rngs import Stream, rng_for

FAULTS: tuple[str, ...] = (
    "malformed_rows",
    "wrong_types",
    "missing_required",
    "negative_quantity",
    "future_dates",
    "duplicate_rows",
    "duplicate_delivery",
    "schema_drift",
    "empty_file",
    "late_file",
    "redelivered_identical",
    "distribution_drift",
)
ALL_FAULTS = "all"
NO_FAULTS = "none"


class GenerationArgumentError(ValueError):
    """An argument of `generate()` is invalid; the message says which and what is allowed."""

ORDER_FILES = (P.WEB_ORDERS, P.APP_ORDERS, P.POS_TRANSACTIONS)
TEXT_FILES = (*ORDER_FILES, P.CRM_TICKETS)
# row-level faults and the landing channels they hit, in application order
ROW_FAULT_CHANNELS: dict[str, tuple[str, ...]] = {
    "duplicate_delivery": ORDER_FILES,
    "duplicate_rows": P.LANDING_CHANNELS,
    "malformed_rows": TEXT_FILES,
    "wrong_types": TEXT_FILES,
    "missing_required": P.LANDING_CHANNELS,
    "negative_quantity": ORDER_FILES,
    "future_dates": P.LANDING_CHANNELS,
}
EMPTY_FILE_CHANNELS = (P.WEB_ORDERS, P.POS_TRANSACTIONS)  # one JSONL, one CSV
SCHEMA_DRIFT_CHANNEL = P.APP_ORDERS


def resolve_faults(faults: Collection[str]) -> frozenset[str]:
    """Validate fault names; "all" expands to every fault, "none" alone means no fault."""
    names = (faults,) if isinstance(faults, str) else tuple(faults)
    unknown = sorted(set(names) - set(FAULTS) - {ALL_FAULTS, NO_FAULTS})
    if unknown:
        raise GenerationArgumentError(
            f"unknown fault(s): {', '.join(unknown)}; allowed: {', '.join(FAULTS)} "
            f"(or '{ALL_FAULTS}', or '{NO_FAULTS}')"
        )
    if NO_FAULTS in names and len(set(names)) > 1:
        raise GenerationArgumentError(
            f"'{NO_FAULTS}' cannot be combined with other faults, got {', '.join(names)}"
        )
    if ALL_FAULTS in names:
        return frozenset(FAULTS)
    return frozenset(names) - {NO_FAULTS}


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault.

    scope "rows": `rows` are 1-based record numbers in the written file (JSONL line,
    CSV data row, Parquet row). For duplicates they are the extra copies (what dedup
    must drop); `detail["original_rows"]` names the originals. scope "file": the whole
    file (rows empty). scope "period": a latent change from `date` on (no file).
    `lines_affected` counts order lines for order channels (a malformed record counts
    as one, like the row accounting), records otherwise.
    """

    fault: str
    kind: str
    channel: str | None
    date: str
    path: str | None
    scope: str
    rows: tuple[int, ...]
    lines_affected: int
    detail: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "fault": self.fault,
            "kind": self.kind,
            "channel": self.channel,
            "date": self.date,
            "path": self.path,
            "scope": self.scope,
            "rows": list(self.rows),
            "lines_affected": self.lines_affected,
            "detail": self.detail,
        }

    def describe(self) -> str:
        where = f"{self.channel}/{self.date}" if self.channel else f"from {self.date}"
        rows = f", rows {_short(self.rows)}" if self.rows else ""
        return f"{where}: {self.kind} ({self.lines_affected} lines{rows})"


def _short(rows: tuple[int, ...], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", … +{len(rows) - limit}" if len(rows) > limit else "")


@dataclass(frozen=True)
class FaultPlan:
    """Which channel-days get which fault; decided before the first day is simulated."""

    row_faults: dict[tuple[str, int], tuple[str, ...]]
    empty: frozenset[tuple[str, int]]
    late: frozenset[tuple[str, int]]
    redelivered: frozenset[tuple[str, int]]
    schema_drift_day: int | None
    drift_day: int | None


def plan_faults(seed: int, days: int, faults: frozenset[str], drift_day: int | None) -> FaultPlan:
    # Day 0 stays clean when there is more than one day, so every channel has a good
    # first delivery to bootstrap from.
    candidates = list(range(1, days)) or [0]
    taken: set[tuple[str, int]] = set()

    def pick_file(fault: str, channels: tuple[str, ...]) -> frozenset[tuple[str, int]]:
        if fault not in faults:
            return frozenset()
        rng = rng_for(seed, Stream.FAULT_PLAN, FAULTS.index(fault))
        picked: set[tuple[str, int]] = set()
        for channel in channels:
            options = [(channel, d) for d in candidates if (channel, d) not in taken]
            if options:
                choice = options[int(rng.integers(len(options)))]
                taken.add(choice)
                picked.add(choice)
        return frozenset(picked)

    empty = pick_file("empty_file", EMPTY_FILE_CHANNELS)
    late_channel = P.LANDING_CHANNELS[seed % len(P.LANDING_CHANNELS)]
    late = pick_file("late_file", (late_channel,))
    redelivered_channel = P.LANDING_CHANNELS[(seed + 2) % len(P.LANDING_CHANNELS)]
    redelivered = pick_file("redelivered_identical", (redelivered_channel,))

    row_faults: dict[tuple[str, int], tuple[str, ...]] = {}
    for fault, channels in ROW_FAULT_CHANNELS.items():
        if fault not in faults:
            continue
        rng = rng_for(seed, Stream.FAULT_PLAN, FAULTS.index(fault))
        day = candidates[int(rng.integers(len(candidates)))]
        for channel in channels:
            if (channel, day) not in empty:  # an empty file has no rows to break
                row_faults[(channel, day)] = (*row_faults.get((channel, day), ()), fault)

    schema_drift_day = None
    if "schema_drift" in faults:
        rng = rng_for(seed, Stream.FAULT_PLAN, FAULTS.index("schema_drift"))
        lo = days // 3
        schema_drift_day = min(int(rng.integers(lo, max(lo + 1, 2 * days // 3))), days - 1)
    return FaultPlan(
        row_faults=row_faults,
        empty=empty,
        late=late,
        redelivered=redelivered,
        schema_drift_day=schema_drift_day,
        drift_day=drift_day if "distribution_drift" in faults else None,
    )
