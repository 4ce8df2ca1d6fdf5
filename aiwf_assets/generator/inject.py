"""Row-level fault injection into one rendered channel-day.

Only the few faulty records are touched in Python (parsed and re-encoded one by
one); the clean records keep the bytes the vectorised writer produced.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from aiwf_assets.generator import params as P
from aiwf_assets.generator.faults import FaultRecord
from aiwf_assets.generator.render import Rendered

Transform = Callable[[object], object]


@dataclass(frozen=True)
class Edit:
    """A fault kind that rewrites one field of a record (role None: break the record)."""

    kind: str
    role: str | None
    transform: Transform | None = None
    order_level: bool = False  # web: the field belongs to the order, so all its lines break

    def new_value(self, old: object) -> object:
        assert self.transform is not None, f"{self.kind} breaks the record, not a field"
        return self.transform(old)


def _const(value: object) -> Transform:
    return lambda _old: value


def _negate(old: object) -> object:
    return -abs(int(str(old)))


def _future(old: object) -> object:
    """The same timestamp FUTURE_YEARS later, in the field's own format."""
    if isinstance(old, int):
        return old + round(P.FUTURE_YEARS * 365.25 * 86400)
    return re.sub(
        r"(?<!\d)(\d{4})(?!\d)", lambda m: str(int(m[1]) + P.FUTURE_YEARS), str(old), count=1
    )


# field names per channel for the roles the edits refer to
FIELDS: dict[str, dict[str, tuple[str | int, ...]]] = {
    P.WEB_ORDERS: {
        "id": ("order_id",),
        "timestamp": ("created_at",),
        "sku": ("items", 0, "sku"),
        "qty": ("items", 0, "qty"),
        "price": ("items", 0, "unit_price"),
    },
    P.APP_ORDERS: {
        "id": ("orderRef",),
        "timestamp": ("ts",),
        "sku": ("productCode",),
        "qty": ("quantity",),
        "price": ("price",),
    },
    P.POS_TRANSACTIONS: {
        "id": ("txn_id",),
        "timestamp": ("local_time",),
        "sku": ("sku",),
        "qty": ("qty",),
        "price": ("unit_price",),
    },
    P.CRM_TICKETS: {
        "id": ("ticket_id",),
        "timestamp": ("opened_at",),
        "satisfaction": ("satisfaction",),
    },
    P.WEB_SESSIONS: {"id": ("session_id",), "timestamp": ("started_at",)},
}
BAD_TIMESTAMP: dict[str, str] = {
    P.WEB_ORDERS: "2026-02-30T25:61:00Z",
    P.APP_ORDERS: "1767625402.x",
    P.POS_TRANSACTIONS: "31/02/2026 25:61:00",
    P.CRM_TICKETS: "2026-02-30 25:61:00",
}
ORDER_LEVEL_ROLES = {"id", "timestamp"}


def edits_for(fault: str, channel: str) -> tuple[Edit, ...]:
    roles = FIELDS[channel]
    is_json = P.EXTENSIONS[channel] == "jsonl"

    def edit(kind: str, role: str | None, transform: Transform | None) -> Edit:
        order_level = channel == P.WEB_ORDERS and role in ORDER_LEVEL_ROLES
        return Edit(kind, role, transform, order_level)

    if fault == "malformed_rows":
        if is_json:
            return (edit("truncated_json", None, None),)
        return (edit("missing_column", None, None), edit("extra_column", None, None))
    if fault == "wrong_types":
        candidates = [
            edit("quantity_as_text", "qty", _const("two")),
            edit("price_as_text", "price", _const("abc")),
            edit("satisfaction_as_text", "satisfaction", _const("good")),
            edit("unparseable_timestamp", "timestamp", _const(BAD_TIMESTAMP.get(channel))),
        ]
    elif fault == "missing_required":
        candidates = [
            edit("missing_id", "id", _const(None)),
            edit("missing_sku", "sku", _const(None)),
            edit("missing_timestamp", "timestamp", _const(None)),
        ]
    elif fault == "negative_quantity":
        candidates = [edit("negative_quantity", "qty", _negate)]
    elif fault == "future_dates":
        candidates = [edit("future_timestamp", "timestamp", _future)]
    else:
        raise ValueError(f"{fault} is not a record edit")
    return tuple(e for e in candidates if e.role in roles)


@dataclass(frozen=True)
class Layout:
    """Which records each fault hits, as positions in the rendered file (0-based)."""

    edits: dict[str, list[tuple[int, Edit]]]
    copies: np.ndarray  # duplicate_rows: copy inserted right after the original
    resent: np.ndarray  # duplicate_delivery: whole orders appended at the end


def plan_layout(r: Rendered, faults: tuple[str, ...], rng: np.random.Generator) -> Layout:
    """Disjoint records per fault (~FAULT_ROW_SHARE each, at least one)."""
    n = len(r.order_key)
    perm = rng.permutation(n)
    free = np.ones(n, dtype=bool)

    def take(k: int) -> np.ndarray:
        picked = perm[free[perm]][:k]
        free[picked] = False
        return np.sort(picked)

    def share(total: int) -> int:
        return max(1, round(P.FAULT_ROW_SHARE * total))

    resent = np.zeros(0, dtype=np.int64)
    copies = np.zeros(0, dtype=np.int64)
    edits: dict[str, list[tuple[int, Edit]]] = {}
    for fault in faults:
        if fault == "duplicate_delivery":
            keys = r.order_key[perm]
            _, first = np.unique(keys, return_index=True)
            chosen = keys[np.sort(first)][: share(len(first))]
            resent = np.flatnonzero(np.isin(r.order_key, chosen))
            free[resent] = False
        elif fault == "duplicate_rows":
            copies = take(share(n))
        else:
            kinds = edits_for(fault, r.channel)
            rows = take(max(len(kinds), share(n)))  # every kind shows up at least once
            edits[fault] = [(int(p), kinds[i % len(kinds)]) for i, p in enumerate(rows)]
    return Layout(edits, copies, resent)


@dataclass(frozen=True)
class Assembly:
    """Final record order: index into the edited records, and where things ended up."""

    index: np.ndarray
    final_of_original: np.ndarray  # 0-based final position of each original record
    copy_positions: np.ndarray
    resent_positions: np.ndarray


def assemble(n: int, layout: Layout) -> Assembly:
    base = np.arange(n)
    index = np.insert(base, layout.copies + 1, layout.copies)
    is_copy = np.insert(np.zeros(n, dtype=bool), layout.copies + 1, True)
    resent_positions = len(index) + np.arange(len(layout.resent))
    return Assembly(
        index=np.concatenate([index, layout.resent]).astype(np.int64),
        final_of_original=np.flatnonzero(~is_copy),
        copy_positions=np.flatnonzero(is_copy),
        resent_positions=resent_positions,
    )


def fault_records(
    r: Rendered, layout: Layout, a: Assembly, *, date: str, path: str
) -> list[FaultRecord]:
    lines = r.lines_per_record

    def rec(fault: str, kind: str, rows: np.ndarray, n_lines: int, **detail: object) -> FaultRecord:
        return FaultRecord(
            fault, kind, r.channel, date, path, "rows",
            tuple(int(x) + 1 for x in rows), n_lines, dict(detail),
        )  # fmt: skip

    out: list[FaultRecord] = []
    if len(layout.resent):
        out.append(
            rec("duplicate_delivery", "order_resent", a.resent_positions,
                int(lines[layout.resent].sum()),
                original_rows=[int(x) + 1 for x in a.final_of_original[layout.resent]])
        )  # fmt: skip
    if len(layout.copies):
        out.append(
            rec("duplicate_rows", "exact_copy", a.copy_positions, int(lines[layout.copies].sum()),
                original_rows=[int(x) + 1 for x in a.final_of_original[layout.copies]])
        )  # fmt: skip
    for fault, hits in layout.edits.items():
        kinds = dict.fromkeys(e.kind for _, e in hits)
        for kind in kinds:
            pos = np.array([p for p, e in hits if e.kind == kind], dtype=np.int64)
            order_level = next(e.order_level for _, e in hits if e.kind == kind)
            n_lines = int(lines[pos].sum()) if order_level else len(pos)
            out.append(rec(fault, kind, a.final_of_original[pos], n_lines))
    return out


# --- text formats ------------------------------------------------------------------


def _set_path(obj: object, path: tuple[str | int, ...], edit: Edit) -> None:
    *parents, leaf = path
    for key in parents:
        obj = obj[key]  # type: ignore[index]
    if isinstance(leaf, str) and leaf not in obj:  # type: ignore[operator]
        leaf = P.SCHEMA_DRIFT_RENAMES.get(leaf, leaf)  # the field after a schema drift
    obj[leaf] = edit.new_value(obj[leaf])  # type: ignore[index]


def _edit_json(line: bytes, edit: Edit, channel: str) -> bytes:
    if edit.role is None:
        return line[: len(line) // 2]  # cut mid-record: an unclosed object
    obj = json.loads(line)
    _set_path(obj, FIELDS[channel][edit.role], edit)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _edit_csv(line: bytes, edit: Edit, channel: str, header: list[str]) -> bytes:
    fields = next(csv.reader([line.decode()]))
    if edit.role is None:
        fields = fields[:-1] if edit.kind == "missing_column" else [*fields, "EXTRA"]
    else:
        col = header.index(str(FIELDS[channel][edit.role][0]))
        value = edit.new_value(fields[col])
        fields[col] = "" if value is None else str(value)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue().encode()


def inject_text(
    r: Rendered, content: bytes, faults: tuple[str, ...], rng: np.random.Generator, *,
    date: str, path: str,
) -> tuple[bytes, list[FaultRecord]]:  # fmt: skip
    is_csv = P.EXTENSIONS[r.channel] == "csv"
    parts = content.split(b"\n")[:-1]  # the writers end every line with "\n"
    header = parts[0] + b"\n" if is_csv else b""
    records = np.array(parts[1:] if is_csv else parts, dtype=object)
    if len(records) == 0:
        return content, []
    columns = next(csv.reader([parts[0].decode()])) if is_csv else []
    layout = plan_layout(r, faults, rng)
    for hits in layout.edits.values():
        for pos, edit in hits:
            line = records[pos]
            records[pos] = (
                _edit_csv(line, edit, r.channel, columns)
                if is_csv
                else _edit_json(line, edit, r.channel)
            )
    a = assemble(len(records), layout)
    body = b"\n".join(records[a.index]) + b"\n"
    return header + body, fault_records(r, layout, a, date=date, path=path)


# --- Parquet (sessions) ---------------------------------------------------------------


def _edit_frame(frame: pl.DataFrame, pos: list[int], edit: Edit, channel: str) -> pl.DataFrame:
    column = str(FIELDS[channel][edit.role][0]) if edit.role else ""
    hit = pl.int_range(pl.len()).is_in(pos)
    if edit.kind == "future_timestamp":
        new = pl.col(column).dt.offset_by(f"{P.FUTURE_YEARS}y")
    else:
        new = pl.lit(edit.new_value(None), dtype=frame.schema[column])
    return frame.with_columns(pl.when(hit).then(new).otherwise(pl.col(column)).alias(column))


def inject_frame(
    r: Rendered, faults: tuple[str, ...], rng: np.random.Generator, *, date: str, path: str
) -> tuple[pl.DataFrame, list[FaultRecord]]:
    frame = r.frame
    if frame.height == 0:
        return frame, []
    layout = plan_layout(r, faults, rng)
    for hits in layout.edits.values():
        for kind in dict.fromkeys(e.kind for _, e in hits):
            edit = next(e for _, e in hits if e.kind == kind)
            frame = _edit_frame(frame, [p for p, e in hits if e.kind == kind], edit, r.channel)
    a = assemble(frame.height, layout)
    return frame[a.index], fault_records(r, layout, a, date=date, path=path)
