"""`generate()`: simulate day by day and deliver each day's files as it is done.

Memory stays flat in the number of days: only the customer state, the next week of
pending tickets and the current day's events are held.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath

import numpy as np
import polars as pl
import pyarrow as pa

from aiwf_assets.generator import params as P
from aiwf_assets.generator import truth as T
from aiwf_assets.generator.calendar import Calendar, build_calendar
from aiwf_assets.generator.faults import (
    FAULTS,
    FaultPlan,
    FaultRecord,
    GenerationArgumentError,
    plan_faults,
    resolve_faults,
)
from aiwf_assets.generator.inject import inject_frame, inject_text
from aiwf_assets.generator.output import (
    FileSink,
    ParquetStream,
    csv_bytes,
    frame_bytes,
    parquet_bytes,
)
from aiwf_assets.generator.plan import plan_frame, promotion_plan
from aiwf_assets.generator.render import (
    IdCounters,
    Rendered,
    render_app_orders,
    render_pos,
    render_sessions,
    render_tickets,
    render_web_orders,
)
from aiwf_assets.generator.rngs import Stream, rng_for
from aiwf_assets.generator.simulate import DayEvents, initial_state, simulate_day
from aiwf_assets.generator.summary import GenerationSummary
from aiwf_assets.generator.world import World, build_world

MANIFEST = "generation.json"


@dataclass(frozen=True)
class Args:
    seed: int
    start: date
    days: int
    scale: float
    faults: frozenset[str]
    drift_from: date | None
    churn_horizon_days: int

    def to_json(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "start": self.start.isoformat(),
            "days": self.days,
            "scale": self.scale,
            "faults": sorted(self.faults),
            "drift_from": self.drift_from.isoformat() if self.drift_from else None,
            "churn_horizon_days": self.churn_horizon_days,
        }


def _validate(
    seed: int, start: date, days: int, scale: float, faults: Collection[str],
    drift_from: date | None, churn_horizon_days: int,
) -> Args:  # fmt: skip
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GenerationArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(start, datetime) or not isinstance(start, date):
        raise TypeError(f"start must be a datetime.date, got {start!r}")
    if days < 1:
        raise GenerationArgumentError(f"days must be >= 1, got {days}")
    if not scale > 0:
        raise GenerationArgumentError(f"scale must be > 0, got {scale}")
    if churn_horizon_days < 1:
        raise GenerationArgumentError(f"churn_horizon_days must be >= 1, got {churn_horizon_days}")
    requested = resolve_faults(faults)
    if drift_from is not None:
        if "distribution_drift" not in requested:
            raise GenerationArgumentError(
                "drift_from only applies with the 'distribution_drift' fault"
            )
        if not 0 <= (drift_from - start).days < days:
            raise GenerationArgumentError(
                f"drift_from {drift_from} is outside the generated period"
            )
    return Args(seed, start, days, float(scale), requested, drift_from, churn_horizon_days)


def _drift_day(args: Args) -> int | None:
    if "distribution_drift" not in args.faults:
        return None
    if args.drift_from is not None:
        return (args.drift_from - args.start).days
    return 2 * args.days // 3


def _render(
    channel: str, events: DayEvents, world: World, cal: Calendar, ids: IdCounters,
    rng: np.random.Generator, schema_drifted: bool,
) -> Rendered:  # fmt: skip
    day = events.day
    if channel == P.WEB_ORDERS:
        r = render_web_orders(events.orders[P.WEB], world, cal, day, ids.web, rng)
        ids.web += r.frame.height
    elif channel == P.APP_ORDERS:
        o = events.orders[P.APP]
        r = render_app_orders(o, world, cal, day, ids.app, rng, schema_drifted)
        ids.app += len(o.customer)
    elif channel == P.POS_TRANSACTIONS:
        o = events.orders[P.STORE]
        r = render_pos(o, world, cal, day, ids.txn, rng)
        ids.txn += len(o.customer)
    elif channel == P.CRM_TICKETS:
        r = render_tickets(events.tickets, world, cal, day, ids.ticket, rng)
        ids.ticket += r.frame.height
    else:
        r = render_sessions(events.sessions, world, cal, day, ids.session)
        ids.session += r.frame.height
    return r


def _empty_content(channel: str, frame: pl.DataFrame) -> tuple[bytes, str]:
    ext = P.EXTENSIONS[channel]
    if ext == "jsonl":
        return b"", "zero_bytes"
    if ext == "csv":
        return csv_bytes(frame.head(0)), "header_only"
    return frame_bytes(channel, frame.head(0)), "zero_rows"


def _deliver(
    sink: FileSink, r: Rendered, plan: FaultPlan, seed: int, day: int, day_str: str,
    schema_drifted: bool,
) -> list[FaultRecord]:  # fmt: skip
    """Write one channel-day (with its faults) and return what was injected."""
    channel = r.channel
    key = (channel, day)
    name = f"{channel}/{day_str}.{P.EXTENSIONS[channel]}"
    rel = f"incoming/late/{name}" if key in plan.late else f"landing/{name}"
    all_lines = int(r.lines_per_record.sum())
    records: list[FaultRecord] = []

    def file_record(fault: str, kind: str, lines: int, **detail: object) -> FaultRecord:
        return FaultRecord(fault, kind, channel, day_str, rel, "file", (), lines, dict(detail))

    if key in plan.empty:
        content, kind = _empty_content(channel, r.frame)
        records.append(file_record("empty_file", kind, all_lines))
    else:
        faults = plan.row_faults.get(key, ())
        rng = rng_for(seed, Stream.FAULTS, day, P.LANDING_CHANNELS.index(channel))
        if not faults:
            content = frame_bytes(channel, r.frame)
        elif channel == P.WEB_SESSIONS:
            frame, injected = inject_frame(r, faults, rng, date=day_str, path=rel)
            content = frame_bytes(channel, frame)
            records.extend(injected)
        else:
            content, injected = inject_text(
                r, frame_bytes(channel, r.frame), faults, rng, date=day_str, path=rel
            )
            records.extend(injected)
    if schema_drifted:
        records.append(
            file_record(
                "schema_drift", "renamed_and_added_columns", all_lines,
                renamed=dict(P.SCHEMA_DRIFT_RENAMES), added=[P.SCHEMA_DRIFT_EXTRA],
            )
        )  # fmt: skip
    if key in plan.late:
        records.append(
            file_record("late_file", "held_back", all_lines, landing_path=f"landing/{name}")
        )
    sink.write(rel, content)
    if key in plan.redelivered:
        sink.write(rel, content)  # the source system sends the same file again
        records.append(file_record("redelivered_identical", "same_bytes_twice", all_lines))
    return records


def _previous_files(home: Path) -> list[str]:
    """Files the last run into this home wrote (from its manifest), to clean up stale ones."""
    try:
        files = json.loads((home / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [f for f in files if isinstance(f, str)]


def _remove_stale(home: Path, previous: list[str], current: list[str]) -> None:
    keep = set(current)
    for rel in previous:
        p = PurePosixPath(rel)
        # only ever delete what a manifest says we wrote, and only below home
        if rel not in keep and not p.is_absolute() and ".." not in p.parts:
            (home / rel).unlink(missing_ok=True)


def _write_json(sink: FileSink, rel: str, payload: object) -> None:
    sink.write(rel, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode())


def generate(
    home: Path,
    *,
    seed: int = 7,
    start: date = date(2026, 1, 1),
    days: int = 60,
    scale: float = 1.0,
    faults: Collection[str] = (),
    drift_from: date | None = None,
    churn_horizon_days: int = 30,
) -> GenerationSummary:
    """Generate the synthetic retailer's landing files and latent truth under `home`.

    Deterministic: the same arguments give byte-identical files. See
    docs/DATA_CONTRACTS.md for the landing formats and `truth/faults.json` for the
    injected faults.
    """
    args = _validate(seed, start, days, scale, faults, drift_from, churn_horizon_days)
    home = Path(home)
    previous = _previous_files(home)
    plan = plan_faults(seed, days, args.faults, _drift_day(args))
    cal = build_calendar(seed, start, days, plan.drift_day)
    world = build_world(seed, args.scale, start, days)
    sink = FileSink(home)
    sink.write("landing/reference/customers.csv", csv_bytes(world.customers.reference))
    sink.write("landing/reference/products.csv", csv_bytes(world.products.reference))
    sink.write("landing/reference/stores.csv", csv_bytes(world.stores.reference))
    sink.write(
        "landing/reference/promotion_plan.csv",
        csv_bytes(plan_frame(promotion_plan(seed, start, days))),
    )

    summary = GenerationSummary(
        home=home, seed=seed, start=start, days=days, scale=args.scale,
        n_customers=world.customers.n, n_products=world.products.n, n_stores=world.stores.n,
        order_lines=dict.fromkeys(P.ORDER_CHANNELS, 0), n_orders=dict.fromkeys(P.ORDER_CHANNELS, 0),
    )  # fmt: skip
    state = initial_state(world)
    ids = IdCounters()
    cutoff = days - 1 - churn_horizon_days
    snapshot = None
    records: list[FaultRecord] = []
    demand = ParquetStream(sink, "truth/demand.parquet", T.DEMAND_SCHEMA)
    for day in range(days):
        events = simulate_day(seed, world, cal, state, day)
        if day == cutoff:
            snapshot = T.churn_snapshot(world, cal, state, cutoff, churn_horizon_days)
        day_str = cal.date(day).isoformat()
        drifted = plan.schema_drift_day is not None and day >= plan.schema_drift_day
        for k, channel in enumerate(P.LANDING_CHANNELS):
            rng = rng_for(seed, Stream.IDENTIFIERS, day, k)
            schema_drifted = drifted and channel == P.APP_ORDERS
            r = _render(channel, events, world, cal, ids, rng, schema_drifted)
            records.extend(_deliver(sink, r, plan, seed, day, day_str, schema_drifted))
        demand.write(T.demand_table(world, cal, day, events.expected_units, events.actual_units))
        for k, name in enumerate(P.ORDER_CHANNELS):
            summary.order_lines[name] += len(events.orders[k].product)
            summary.n_orders[name] += len(events.orders[k].customer)
        summary.n_tickets += len(events.tickets.customer)
        summary.n_sessions += len(events.sessions.customer)
    demand.close()

    if cal.drift is not None:
        records.append(
            FaultRecord(
                "distribution_drift", "behaviour_category_price_shift", None,
                cal.date(cal.drift.from_day).isoformat(), None, "period", (), 0,
                cal.drift.describe(),
            )
        )  # fmt: skip
    sink.write("truth/customers.parquet", parquet_bytes(T.customers_table(world, cal, state)))
    sink.write("truth/churn.parquet", parquet_bytes(T.churn_table(world, cal, snapshot, state)))
    sink.write("truth/segments.parquet", parquet_bytes(T.segments_table()))
    sink.write("truth/affinities.parquet", parquet_bytes(T.affinities_table(world)))
    preferences = T.preferences_table(world)
    floats = [f.name for f in preferences.schema if pa.types.is_floating(f.type)]
    sink.write(
        "truth/preferences.parquet",
        parquet_bytes(
            preferences,
            use_dictionary=[c for c in preferences.column_names if c not in floats],
            compression="none",
            compression_level=None,
        ),
    )
    sink.write("truth/complements.parquet", parquet_bytes(T.complements_table(world)))
    sink.write("truth/promotions.parquet", parquet_bytes(T.promotions_table(cal)))
    _write_json(
        sink,
        "truth/faults.json",
        {"faults": sorted(args.faults), "records": [r.to_json() for r in records]},
    )
    manifest = {
        **args.to_json(),
        "n_customers": world.customers.n,
        "n_products": world.products.n,
        "n_stores": world.stores.n,
        "files": [*sink.written, MANIFEST],
    }
    _write_json(sink, MANIFEST, manifest)
    _remove_stale(home, previous, sink.written)

    summary.files = [home / rel for rel in sink.written]
    summary.churn_cutoff = cal.date(cutoff) if cutoff >= 0 else None
    for fault in FAULTS:
        described = [r.describe() for r in records if r.fault == fault]
        if described:
            summary.faults_applied[fault] = described
    return summary
