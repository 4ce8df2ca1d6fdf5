"""The hostile-input corpus: the generator's own landing files, broken on purpose.

`build_case(landing, source, case)` derives, for every declared source (daily
channels and reference files) and every case in CASES that applies to its format,
one file from a clean generated file, and says which record it broke (`target`,
0-based) where a case breaks one record.
The tests (test_hostile_inputs.py) run each through parsing and cleaning and
assert its outcome. Run as a script to write the corpus to a directory for a
look by hand:

    python -m tests.hostile_corpus OUT_DIR   # generates a small dataset first
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aiwf_assets.ingest.spec import SourceSpec
from tests.landing_corpus import FIRST_DAY, SOURCES, LandingFile, generate_home

HUGE = "X" * 1_000_000
# The first generated day has a single ticket: the tickets' corpus starts from a fuller day
# (2026-01-04 holds no injected fault for them).
CORPUS_DAY = {"crm_tickets": "2026-01-04"}
# Per source: a field whose value a rule checks (a huge value there must be rejected)
# and, where there is one, the price field (decimal commas, cents).
CHECKED_FIELD = {
    "web_orders": "items.sku",
    "app_orders": "productCode",
    "pos_transactions": "sku",
    "crm_tickets": "category",
    "web_sessions": "device",
    "customers": "signup_date",
    "products": "sku",
    "stores": "opened_date",
    "promotion_plan": "start_date",
}
PRICE_FIELD = {
    "web_orders": "items.unit_price",
    "app_orders": "price",
    "pos_transactions": "unit_price",
    "products": "list_price",
}


@dataclass(frozen=True)
class Case:
    """One hostile file: its bytes and the record it broke (None: the whole file)."""

    source: str
    case: str
    data: bytes
    day: str | None
    target: int | None = None


def key_field(name: str) -> str:
    spec = SOURCES[name]
    return spec.column(spec.contract.key[0]).source[0]


# --------------------------------------------------------------------------- records


def csv_rows(file: LandingFile) -> tuple[list[str], list[list[str]]]:
    header = next(csv.reader([file.header.decode()]))
    return header, [next(csv.reader([r.decode()])) for r in file.records]


def write_csv(header: list[str], rows: list[list[Any]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def objects(file: LandingFile) -> list[dict[str, Any]]:
    return [json.loads(r) for r in file.records]


def write_jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def write_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def single_record(file: LandingFile) -> int:
    """The first record whose key no other record shares (one order line, one ticket):
    breaking it leaves every other record's identity as it was."""
    keys = [file.key_of(i) for i in range(len(file))]
    return next(i for i, k in enumerate(keys) if k is not None and keys.count(k) == 1)


def edit_field(file: LandingFile, index: int, field: str, value: Callable[[Any], Any]) -> bytes:
    """The file with `field` of record `index` replaced by value(old); `items.x` edits x
    in every item of a JSON order (all its lines)."""
    if file.table is not None:
        column = file.table.column(field).to_pylist()
        column[index] = value(column[index])
        position = file.table.schema.get_field_index(field)
        kind = file.table.schema.field(field).type
        new = pa.array(column, type=pa.string() if isinstance(column[index], str) else kind)
        return write_parquet(file.table.set_column(position, field, new))
    if file.spec.format == "csv":
        header, rows = csv_rows(file)
        rows[index][header.index(field)] = value(rows[index][header.index(field)])
        return write_csv(header, rows)
    records = objects(file)
    parent, _, leaf = field.rpartition(".")
    for target in records[index][parent] if parent else [records[index]]:
        target[leaf] = value(target[leaf])
    return write_jsonl(records)


def rename_field(file: LandingFile, old: str, new: str | None) -> bytes:
    """Every record with `old` renamed to `new`, or dropped when `new` is None."""
    if file.table is not None:
        table = file.table.drop_columns([old])
        if new is not None:
            table = table.append_column(new, file.table.column(old))
        return write_parquet(table)
    if file.spec.format == "csv":
        header, rows = csv_rows(file)
        i = header.index(old)
        if new is None:
            return write_csv(header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows])
        return write_csv([new if h == old else h for h in header], rows)
    out = []
    for record in objects(file):
        value = record.pop(old)
        out.append(record if new is None else {**record, new: value})
    return write_jsonl(out)


def add_field(file: LandingFile, name: str) -> bytes:
    if file.table is not None:
        return write_parquet(file.table.append_column(name, pa.array(["x"] * len(file))))
    if file.spec.format == "csv":
        header, rows = csv_rows(file)
        return write_csv([*header, name], [[*r, "x"] for r in rows])
    return write_jsonl([{**r, name: "x"} for r in objects(file)])


def all_null(file: LandingFile) -> bytes:
    if file.table is not None:
        return write_parquet(
            pa.table({f.name: pa.nulls(len(file), f.type) for f in file.table.schema})
        )
    if file.spec.format == "csv":
        header, rows = csv_rows(file)
        return write_csv(header, [[""] * len(header) for _ in rows])
    return write_jsonl([dict.fromkeys(r) for r in objects(file)])


def times_100(value: Any) -> Any:
    return round(float(value) * 100) if not isinstance(value, str) else str(
        round(float(value) * 100)
    )


def decimal_comma(value: Any) -> str:
    return f"{float(value):.2f}".replace(".", ",")


# --------------------------------------------------------------------------- cases


def _truncated(file: LandingFile, _: int) -> tuple[bytes, int | None]:
    data = file.render()
    if file.table is not None:
        return data[: len(data) // 2], None
    cut = len(data) - len(file.records[-1]) // 2  # inside the last record
    return data[:cut], len(file) - 1


def _latin1(file: LandingFile, target: int) -> tuple[bytes, int | None]:
    edited = edit_field(file, target, CHECKED_FIELD[file.spec.name], lambda v: f"{v}é")
    return edited.decode().encode("latin-1"), target


def _stray_quote(file: LandingFile, target: int) -> tuple[bytes, int | None]:
    lines = file.render().splitlines(keepends=True)
    at = target + (1 if file.spec.format == "csv" else 0)
    if file.spec.format == "csv":  # a quote opening the second field, never closed
        i = lines[at].index(b",") + 1
        lines[at] = lines[at][:i] + b'"' + lines[at][i:]
    else:  # a quote opening a JSON string where a value begins
        lines[at] = lines[at].replace(b'":', b'":"', 1)
    return b"".join(lines), target


def _whole(build: Callable[[LandingFile], bytes]) -> Callable[[LandingFile, int], Any]:
    return lambda file, _: (build(file), None)


def _at(field: dict[str, str], value: Callable[[Any], Any]) -> Callable[[LandingFile, int], Any]:
    return lambda file, target: (edit_field(file, target, field[file.spec.name], value), target)


def _text(spec: SourceSpec) -> bool:
    return spec.format != "parquet"


def _priced(spec: SourceSpec) -> bool:
    return spec.name in PRICE_FIELD and spec.format != "parquet"


# name -> (applies to the source, build(file, target record) -> (bytes, broken record))
CASES: dict[str, tuple[Callable[[SourceSpec], bool], Callable[[LandingFile, int], Any]]] = {
    "empty": (lambda _: True, _whole(lambda f: b"")),
    "header_only": (lambda _: True, _whole(lambda f: f.render([]))),
    "truncated": (lambda _: True, _truncated),
    "binary": (lambda _: True, _whole(lambda f: bytes(range(256)) * 4)),
    "utf16": (_text, _whole(lambda f: f.render().decode().encode("utf-16"))),
    "latin1": (_text, _latin1),
    "crlf": (_text, _whole(lambda f: f.render().replace(b"\n", b"\r\n"))),
    "cr_only": (_text, _whole(lambda f: f.render().replace(b"\n", b"\r"))),  # classic Mac
    "shuffled": (lambda _: True, _whole(lambda f: f.render(list(reversed(range(len(f))))))),
    "every_row_twice": (
        lambda _: True, _whole(lambda f: f.render([i for i in range(len(f)) for _ in (0, 1)]))
    ),
    "huge_row": (lambda _: True, _at(CHECKED_FIELD, lambda _: HUGE)),
    "stray_quote": (_text, _stray_quote),
    "semicolons": (
        lambda spec: spec.format == "csv", _whole(lambda f: write_csv(*csv_rows(f), ";"))
    ),
    "renamed_column": (
        lambda _: True, _whole(lambda f: rename_field(f, key_field(f.spec.name), "renamed"))
    ),
    "missing_column": (
        lambda _: True, _whole(lambda f: rename_field(f, key_field(f.spec.name), None))
    ),
    "extra_column": (lambda _: True, _whole(lambda f: add_field(f, "added_by_a_new_release"))),
    "decimal_comma": (_priced, _at(PRICE_FIELD, decimal_comma)),
    "cents": (_priced, _at(PRICE_FIELD, times_100)),
    "nulls_everywhere": (lambda _: True, _whole(all_null)),
}


def case_names(spec: SourceSpec) -> list[str]:
    return [name for name, (applies, _) in CASES.items() if applies(spec)]


def build_case(landing: Path, source: str, case: str) -> Case:
    """One hostile file derived from the first generated day's file of `source`."""
    spec = SOURCES[source]
    day = CORPUS_DAY.get(source, FIRST_DAY) if spec.contract.daily else None
    file = LandingFile.read(landing, source, day)
    data, target = CASES[case][1](file, single_record(file))
    return Case(source, case, data, day, target)


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        landing = generate_home(Path(tmp))
        for c in (
            build_case(landing, name, case)
            for name, spec in SOURCES.sources.items()
            for case in case_names(spec)
        ):
            target = Path(out) / c.source / f"{c.case}.{SOURCES[c.source].format}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(c.data)
            print(target)


if __name__ == "__main__":
    main(sys.argv[1])

