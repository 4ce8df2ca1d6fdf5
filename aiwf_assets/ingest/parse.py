"""Landing bytes -> raw frame: contract column names, every value as text, lineage.

Raw is lossless: values are kept as the text the export holds (numbers as
their JSON/CSV text), nothing is type-cast or dropped; unreadable records
become rows with `_parse_error` and `_raw_record` instead of exceptions. Only a
file that is not in its declared format at all (Parquet that is not Parquet)
raises, because no row of it can be attributed.

Happy paths are vectorised (Polars readers). Line-wise Python runs only for
files where the fast path found a problem, to name exactly which records are
bad.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aiwf_assets.ingest.numbers import (
    as_read,
    per_unit,
    plain_number,
    read_number,
    shortened,
    shortened_text,
)
from aiwf_assets.ingest.physical import (
    BLANK_BYTES,
    ends_mid_line,
    excel_separator,
    line_break,
    physical_records,
)
from aiwf_assets.ingest.spec import ORDER_DAY, ColumnSpec, SourceSpec
from aiwf_assets.ingest.timestamps import local_day
from aiwf_assets.io.scratch import scratch_connection

LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "_source_file": pl.String(),
    "_source_row": pl.Int64(),
    "_source_lines": pl.Int64(),  # non-blank physical lines the record spans
    "_parse_error": pl.String(),
    "_raw_record": pl.String(),
    # about the whole file, the same on each of its rows:
    "_file_records": pl.Int64(),  # records counted from the bytes, without the parser
    "_file_ends_mid_record": pl.Boolean(),  # cut short: last line unreadable, no line break
}
LINEAGE_COLUMNS: tuple[str, ...] = tuple(LINEAGE_SCHEMA)

# Lines per block when hunting malformed JSON lines: a block the reader rejects is halved.
_JSON_BLOCK = 2048
_JSON_LEAF = 32  # lines decoded one by one once a failing block is this small
_ROW = "_source_row"
_LINES = "_source_lines"
# A blank line holds only ASCII white space: the same test as physical.nonblank_lines.
_BLANK = BLANK_BYTES.decode() + "\n"


class LandingFormatError(ValueError):
    """The landing file cannot be read as its declared format at all."""


@dataclass(frozen=True)
class ParseResult:
    """A raw frame plus the schema drift seen in the file.

    extra_columns: source fields present in the file but neither mapped nor
    ignored (dotted for nested fields). missing_columns: contract columns none
    of whose source names (`from`, `aliases`) occur in the file; their raw
    values are null and cleaning reports them row by row. aliased_columns:
    (contract column, alias) where the file uses an alias instead of `from`.
    footer_lines: the trailing summary lines a source's `footer` matched (not data, not
    among the file's records: records + header + footer lines are the file's lines).
    """

    frame: pl.DataFrame
    extra_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    aliased_columns: tuple[tuple[str, str], ...] = ()
    order_amount_lines: int = 0  # rows added for `order_amounts` (on top of the records)
    footer_lines: int = 0
    # orders whose lines do not add up to the `order_total` the export states (or cannot be
    # checked against it): every row of each is a parse error, so cleaning quarantines it
    orders_not_adding_up: int = 0


@dataclass(frozen=True)
class _Records:
    frame: pl.DataFrame  # readable records: source fields + _source_row (+ _source_lines)
    errors: pl.DataFrame  # _source_row, _parse_error, _raw_record (+ _source_lines)
    paths: frozenset[str] | None  # source fields seen (dotted); None when the file is empty
    footer_lines: int = 0  # trailing summary lines matching the source's `footer`


def raw_schema(spec: SourceSpec) -> pl.Schema:
    """Schema of a raw frame for `spec` (also what an empty file parses to)."""
    return pl.Schema({**{c: pl.String() for c in spec.raw_columns}, **LINEAGE_SCHEMA})


def parse_landing(data: bytes, spec: SourceSpec, source_file: str) -> ParseResult:
    """Parse one landing file into the raw frame of `spec`.

    source_file is recorded in `_source_file` (use the path relative to the
    landing dir) and named in errors. A zero-byte (or blank) file is an empty
    delivery and gives an empty frame with `raw_schema(spec)`. Every row carries the
    file's record count taken from its bytes (`physical.physical_records`): the lines
    its records span add up to it, which cleaning checks. The trailing summary lines a
    source's `footer` matches are not records (nor counted among them): `footer_lines`.
    """
    if spec.encoding != "utf-8" and spec.format != "parquet":
        data = _as_utf8(data, spec.encoding)
    if not data.strip():
        return ParseResult(raw_schema(spec).to_frame())
    if spec.format == "parquet":
        records = _read_parquet(data, source_file)
    elif spec.format == "csv":
        records = _read_csv(data, spec.delimiter, source_file, spec.footer)
    else:
        records = _read_jsonl(data, spec, source_file)
    if reads_line_fields(spec) and spec.format != "jsonl" and records.paths is not None:
        frame = records.frame  # every field of the file (JSON: _read_jsonl reads them)
        line_fields = _line_fields(frame.drop(_ROW, _LINES, strict=False).schema, spec)
        records = replace(records, frame=frame.with_columns(line_fields))
    # drift is only known when something could be read (a header, a record)
    drift = (
        (
            _extra_paths(records.paths, spec),
            _missing_columns(records.paths, spec),
            _aliased_columns(records.paths, spec),
        )
        if records.paths is not None
        else ((), (), ())
    )
    footer_lines = records.footer_lines
    if records.frame.height == 0 and records.errors.height == 0:
        return ParseResult(raw_schema(spec).to_frame(), *drift, footer_lines=footer_lines)
    records = _Records(_with_spans(records.frame), _with_spans(records.errors), records.paths)
    carried = [_LINE_FIELDS] if _carries_line_fields(records.frame, spec) else []
    errors = records.errors.select(
        *(pl.lit(None, pl.String).alias(c) for c in spec.raw_columns),
        pl.lit(source_file).alias("_source_file"),
        pl.col(_ROW).cast(pl.Int64),
        pl.col(_LINES).cast(pl.Int64),
        pl.col("_parse_error"),
        pl.col("_raw_record"),
        *(pl.lit(None, pl.String).alias(c) for c in carried),
    )
    mapped = _map_records(records, spec, source_file)
    frame = pl.concat([mapped, errors], how="vertical").sort(_ROW, maintain_order=True)
    last = frame.filter(pl.col(_ROW) == pl.col(_ROW).max())
    truncated = (
        spec.format != "parquet"
        and not footer_lines  # it ends with its footer: not cut short
        and ends_mid_line(data)
        and last.get_column("_parse_error").is_not_null().any()
    )
    frame = frame.with_columns(
        pl.lit(physical_records(data, spec.format) - footer_lines, pl.Int64).alias("_file_records"),
        pl.lit(truncated, pl.Boolean).alias("_file_ends_mid_record"),
    ).select(*raw_schema(spec), *carried)
    frame = _made_unique(_filled_per_order(frame, spec), spec)
    records_read = frame.height
    texts = _order_texts(records, spec)
    frame = _with_order_amount_lines(frame, texts, spec)
    frame = _number_sequences(frame, spec)
    frame, not_adding_up = _with_checked_totals(frame, texts, spec, records.paths)
    # the fields the source does not map serve the line numbers only: raw keeps its schema
    return ParseResult(
        frame.drop(*carried, _ORDER_AMOUNT, strict=False),
        *drift,
        order_amount_lines=frame.height - records_read,
        footer_lines=footer_lines,
        orders_not_adding_up=not_adding_up,
    )


# the `_parse_error` of the one raw row that stands for a daily file that was refused
REFUSED = "the file was refused: "


def refused_frame(spec: SourceSpec, source_file: str, error: LandingFormatError) -> pl.DataFrame:
    """The raw partition of a daily file that cannot be read as its format at all: one row
    for the whole file, its `_parse_error` the refusal (`REFUSED` + the error, which names
    the file and the line). Cleaning quarantines it and holds the day back, so the other
    days of a range run are published and this one waits for a corrected file (or a run
    tag that publishes the day without it). Its counts are the file's, as one record."""
    return pl.DataFrame(
        {
            **{c: [None] for c in spec.raw_columns},
            "_source_file": [source_file],
            "_source_row": [1],
            "_source_lines": [1],
            "_parse_error": [f"{REFUSED}{error}"],
            "_raw_record": [None],
            "_file_records": [1],
            "_file_ends_mid_record": [False],
        },
        schema=raw_schema(spec),
    )


def refusal(raw: pl.DataFrame) -> str | None:
    """Why the daily file behind a raw partition was refused (see `refused_frame`), or None."""
    if raw.height != 1 or "_parse_error" not in raw.columns:
        return None
    error = raw.get_column("_parse_error")[0]
    return error.removeprefix(REFUSED) if error and error.startswith(REFUSED) else None


def _as_utf8(data: bytes, encoding: str) -> bytes:
    """A text file's bytes in `encoding` as UTF-8, before any line is read: line breaks stay
    where they are (so do line numbers and the counts from the bytes). A byte the codec
    does not define (0x81 in cp1252) is kept as it was, so its line is quarantined as not
    valid UTF-8, like any other unreadable line, and the rest is read."""
    return data.decode(encoding, "surrogateescape").encode("utf-8", "surrogateescape")


def _with_spans(frame: pl.DataFrame) -> pl.DataFrame:
    # only records read across several lines (quoted CSV fields) say how many they span
    if _LINES in frame.columns:
        return frame
    return frame.with_columns(pl.lit(1, pl.Int64).alias(_LINES))


# --------------------------------------------------------------------------- lines


def _no_errors() -> pl.DataFrame:
    return pl.DataFrame(
        schema={_ROW: pl.Int64, "_parse_error": pl.String, "_raw_record": pl.String}
    )


def _lines(data: bytes) -> pl.DataFrame:
    """One row per physical line: line (1-based), text, utf8_error (reason or null)."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return _lines_per_line_decode(data)
    return (
        pl.DataFrame({"text": [text]})
        .select(pl.col("text").str.split(line_break(data).decode()))
        .explode("text")
        .select(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("line"),
            pl.col("text").str.strip_suffix("\r"),
            pl.lit(None, pl.String).alias("utf8_error"),
        )
    )


def _lines_per_line_decode(data: bytes) -> pl.DataFrame:
    # Only for files that are not valid UTF-8 as a whole: find which lines are not.
    texts: list[str] = []
    errors: list[str | None] = []
    for raw in data.removeprefix(b"\xef\xbb\xbf").split(line_break(data)):
        raw = raw.removesuffix(b"\r")
        try:
            texts.append(raw.decode("utf-8"))
            errors.append(None)
        except UnicodeDecodeError as e:
            texts.append(raw.decode("utf-8", "backslashreplace"))
            errors.append(
                f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
            )
    return pl.DataFrame(
        {"line": range(1, len(texts) + 1), "text": texts, "utf8_error": errors},
        schema={"line": pl.Int64, "text": pl.String, "utf8_error": pl.String},
    )


def _utf8_errors(lines: pl.DataFrame, row: pl.Expr) -> pl.DataFrame:
    return lines.filter(pl.col("utf8_error").is_not_null()).select(
        row.alias(_ROW),
        pl.col("utf8_error").alias("_parse_error"),
        pl.col("text").alias("_raw_record"),
    )


# --------------------------------------------------------------------------- JSONL


def _read_jsonl(data: bytes, spec: SourceSpec, source_file: str) -> _Records:
    lines = _lines(data).filter(
        (pl.col("text").str.strip_chars(_BLANK) != "") | pl.col("utf8_error").is_not_null()
    )
    errors = _utf8_errors(lines, pl.col("line"))
    ok = lines.filter(pl.col("utf8_error").is_null())
    schema = _json_read_schema(spec)
    try:
        frame = _read_ndjson(ok.get_column("text"), schema)
    except pl.exceptions.PolarsError:
        problems = _json_problems(ok, schema, spec)
        bad = ok.filter(pl.col("line").is_in(list(problems)))
        errors = pl.concat(
            [
                errors,
                bad.select(
                    pl.col("line").alias(_ROW),
                    pl.col("line")
                    .replace_strict(problems, return_dtype=pl.String)
                    .alias("_parse_error"),
                    pl.col("text").alias("_raw_record"),
                ),
            ]
        )
        ok = ok.filter(~pl.col("line").is_in(list(problems)))
        try:
            frame = _read_ndjson(ok.get_column("text"), schema)
        except pl.exceptions.PolarsError as e:  # every line passed alone: a reader limit
            raise LandingFormatError(
                f"{source_file}: JSON lines read alone but not together ({e})"
            ) from e
    frame = frame.with_columns(ok.get_column("line").alias(_ROW))
    paths = _json_paths(ok.get_column("text")) if ok.height else None
    if paths is not None and reads_line_fields(spec):
        # the fields the source does not map, read again as text (objects as their JSON)
        schema = _unmapped_schema(paths, spec)
        unmapped = _read_ndjson(ok.get_column("text"), schema) if schema else pl.DataFrame()
        frame = frame.with_columns(
            unmapped.select(_line_fields(schema, spec)).to_series()
            if schema
            else pl.lit(None, pl.String).alias(_LINE_FIELDS)
        )
    return _Records(frame, errors, paths)


def _json_read_schema(spec: SourceSpec) -> pl.Schema:
    """Every mapped path read as text (the order amounts' and total's too); objects become
    Structs, the explode field a list."""
    tree: dict[str, Any] = {}
    for col in spec.columns:
        for path in col.source:
            _insert_path(tree, path.split("."))
    # the order's own money (`order_amounts`, `order_total`) and the times of day of dates
    # (`time_from`): read as text, like a column
    for path in (*spec.order_fields, *spec.time_fields):
        _insert_path(tree, path.split("."))
    if spec.explode is not None:
        items: dict[str, Any] = {}
        for col in spec.explode.columns:
            for path in col.source:
                _insert_path(items, path.split("."))
        tree[spec.explode.field] = ("list", items)
    return pl.Schema({name: _tree_dtype(node) for name, node in tree.items()})


def _insert_path(tree: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        tree.setdefault(head, None)
        return
    node = tree.get(head)
    if not isinstance(node, dict):
        node = tree[head] = {}
    _insert_path(node, rest)


def _tree_dtype(node: Any) -> pl.DataType:
    if node is None:
        return pl.String()
    if isinstance(node, tuple):  # ("list", item tree)
        return pl.List(pl.Struct({k: _tree_dtype(v) for k, v in node[1].items()}))
    return pl.Struct({k: _tree_dtype(v) for k, v in node.items()})


def _read_ndjson(texts: pl.Series, schema: pl.Schema) -> pl.DataFrame:
    if texts.is_empty():
        return schema.to_frame()
    payload = texts.str.join("\n").item().encode()
    frame = pl.read_ndjson(io.BytesIO(payload), schema=schema)
    if frame.height != texts.len():  # one object per line is the contract of this reader
        raise pl.exceptions.ComputeError(f"read {frame.height} records from {texts.len()} lines")
    return frame


def _json_reads(texts: pl.Series, schema: pl.Schema) -> bool:
    """Whether the fast reader accepts these lines (used to narrow down bad lines)."""
    try:
        _read_ndjson(texts, schema)
    except pl.exceptions.PolarsError:
        return False
    return True


def _json_problems(lines: pl.DataFrame, schema: pl.Schema, spec: SourceSpec) -> dict[int, str]:
    """Line numbers the fast reader rejects, with the reason.

    DuckDB's vectorised JSON validation picks the lines that are not JSON
    objects; only those are decoded with the json module for a precise message.
    Blocks of the rest that the fast reader still rejects (wrong shapes) are
    halved until the failing parts are small, then looked at line by line.
    """
    problems: dict[int, str] = {}
    for number, text in _json_suspects(lines).iter_rows():
        if (reason := _json_line_problem(text, spec)) is not None:
            problems[number] = reason
    rest = lines.filter(~pl.col("line").is_in(list(problems)))
    for block in rest.iter_slices(_JSON_BLOCK):
        if not _json_reads(block.get_column("text"), schema):
            problems |= _narrow_json_problems(block, schema, spec)
    return problems


def _json_suspects(lines: pl.DataFrame) -> pl.DataFrame:
    """(line, text) of the lines that are not one valid JSON object."""
    frame = lines.select("line", "text")  # noqa: F841 (read by DuckDB)
    return scratch_connection().sql(
        "SELECT line, text FROM frame "
        "WHERE NOT CASE WHEN json_valid(text) THEN json_type(text) = 'OBJECT' ELSE false END "
        "ORDER BY line"
    ).pl()


def _narrow_json_problems(
    block: pl.DataFrame, schema: pl.Schema, spec: SourceSpec
) -> dict[int, str]:
    """Problems of a block the fast reader rejects, by halving it."""
    if block.height <= _JSON_LEAF:
        return _json_line_problems(block, schema, spec)
    half = block.height // 2
    found: dict[int, str] = {}
    halves_read = True
    for part in (block.slice(0, half), block.slice(half)):
        if not _json_reads(part.get_column("text"), schema):
            halves_read = False
            found |= _narrow_json_problems(part, schema, spec)
    # each half reads alone but not together: look at every line of the block
    return _json_line_problems(block, schema, spec) if halves_read else found


def _json_line_problems(
    block: pl.DataFrame, schema: pl.Schema, spec: SourceSpec
) -> dict[int, str]:
    """Each line decoded with the json module; if the block still fails without
    those lines, the rest are tried one by one with the fast reader."""
    found = {
        number: reason
        for number, text in block.select("line", "text").iter_rows()
        if (reason := _json_line_problem(text, spec)) is not None
    }
    rest = block.filter(~pl.col("line").is_in(list(found)))
    if not _json_reads(rest.get_column("text"), schema):
        for number, text in rest.select("line", "text").iter_rows():
            if not _json_reads(pl.Series([text]), schema):
                found[number] = "does not fit the declared fields"
    return found


def _json_line_problem(text: str, spec: SourceSpec) -> str | None:
    # Messages name columns and fields, never content: raw text may hold PII. The line is
    # the row's _source_row, not part of the message, so a moved line reads the same.
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return f"malformed JSON at column {e.colno} ({e.msg})"
    if not isinstance(obj, dict):
        return f"not a JSON object but a {type(obj).__name__}"
    return _shape_problem(obj, spec)


def _shape_problem(obj: dict[str, Any], spec: SourceSpec) -> str | None:
    for col in spec.columns:
        for path in col.source:
            problem = _parent_problem(obj, path)
            if problem:
                return problem
    if spec.explode is not None:
        items = obj.get(spec.explode.field)
        if items is not None and not (
            isinstance(items, list) and all(i is None or isinstance(i, dict) for i in items)
        ):
            return f"'{spec.explode.field}' is not a list of objects"
        for item in items or []:
            for col in spec.explode.columns:
                for path in col.source:
                    problem = _parent_problem(item or {}, path)
                    if problem:
                        return problem.replace("'", f"'{spec.explode.field}.", 1)
    return None


def _parent_problem(obj: dict[str, Any], path: str) -> str | None:
    node: Any = obj
    parts = path.split(".")
    for depth, part in enumerate(parts[:-1]):
        node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, dict):
            return f"'{'.'.join(parts[: depth + 1])}' is not an object"
    return None


def _json_paths(texts: pl.Series) -> frozenset[str]:
    """All field paths in the file (for drift), from a full-file schema inference."""
    payload = texts.str.join("\n").item().encode()
    try:
        schema = pl.scan_ndjson(io.BytesIO(payload), infer_schema_length=None).collect_schema()
    except pl.exceptions.PolarsError:
        # Conflicting shapes of an unmapped field defeat inference: walk the records.
        paths: set[str] = set()
        for line in texts.to_list():
            paths.update(_value_paths(json.loads(line), ""))
        return frozenset(paths)
    return frozenset(p for name, dtype in schema.items() for p in _dtype_paths(name, dtype))


def _value_paths(value: Any, prefix: str) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _value_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for v in value:
            if isinstance(v, dict):
                yield from _value_paths(v, prefix)
    elif prefix:
        yield prefix


def _dtype_paths(name: str, dtype: pl.DataType) -> Iterator[str]:
    if isinstance(dtype, pl.Struct) and dtype.fields:
        for f in dtype.fields:
            yield from _dtype_paths(f"{name}.{f.name}", f.dtype)
    elif isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct) and dtype.inner.fields:
        yield from _dtype_paths(name, dtype.inner)
    else:
        yield name


# --------------------------------------------------------------------------- CSV


# the version of how a `footer` is found, for the raw versions of sources that declare one
# (ingest/landing.py `raw_code_version`)
FOOTER_READING = "footer-1"


def _read_csv(data: bytes, delimiter: str, source_file: str, footer: str | None = None) -> _Records:
    lines = _lines(data)
    filled = lines.filter(
        (pl.col("text").str.strip_chars(_BLANK) != "") | pl.col("utf8_error").is_not_null()
    )
    if filled.is_empty():
        return _Records(pl.DataFrame(), _no_errors(), None)
    first = filled.row(0, named=True)
    named = excel_separator(first["text"].encode()) if first["utf8_error"] is None else None
    if named is not None:  # Excel's `sep=;` line: the header follows it
        if named != delimiter:
            raise LandingFormatError(
                f"{source_file}: line {first['line']} is Excel's 'sep={named}': the file is "
                f"delimited by {named!r}, the source declares delimiter {delimiter!r}"
            )
        if filled.height == 1:
            return _Records(pl.DataFrame(), _no_errors(), None)
        first = filled.row(1, named=True)
    if first["utf8_error"] is not None:
        raise LandingFormatError(f"{source_file}: the CSV header (line 1) is not valid UTF-8")
    header, trailing = _header(first["text"], delimiter, source_file)
    header_line: int = first["line"]
    body = lines.filter(pl.col("line") > header_line)
    if trailing:
        # the export ends every line with a delimiter (`a;b;c;`): the empty field after it is
        # no column; a row with a value there still has one field too many
        body = body.with_columns(
            pl.col("text").str.replace(f"{re.escape(delimiter)}[ \t]*\r?$", "")
        )
    records = _read_csv_body(body, header, delimiter, header_line)
    if footer is None:
        return records
    # the footer is matched against the lines as written (with a trailing delimiter)
    candidates = _footer_candidates(filled.filter(pl.col("line") > header_line), footer)
    last_line: int = filled.item(-1, "line")
    return _without_footer(records, candidates, header_line, last_line, footer, source_file)


def _read_csv_body(
    body: pl.DataFrame, header: list[str], delimiter: str, header_line: int
) -> _Records:
    """The records of the lines after the header (`body`)."""
    # _source_row is the data row: the line number counted from the header
    row = pl.col("line") - header_line
    if _has_multiline_records(body):
        return _read_csv_linewise(body, header, delimiter)
    body = body.filter(
        (pl.col("text").str.strip_chars(_BLANK) != "") | pl.col("utf8_error").is_not_null()
    )
    errors = _utf8_errors(body, row)
    ok = body.filter(pl.col("utf8_error").is_null()).with_columns(
        _field_count(delimiter).alias("n_fields")
    )
    wrong = ok.filter(pl.col("n_fields") != len(header))
    errors = pl.concat(
        [
            errors,
            wrong.select(
                row.alias(_ROW),
                pl.format(
                    "CSV row has {} fields, header has {}", pl.col("n_fields"), pl.lit(len(header))
                ).alias("_parse_error"),
                pl.col("text").alias("_raw_record"),
            ),
        ]
    )
    ok = ok.filter(pl.col("n_fields") == len(header))
    try:
        frame = _read_csv_rows(ok.get_column("text"), header, delimiter)
    except pl.exceptions.PolarsError:  # a line the count took for whole but the reader not
        return _read_csv_linewise(body, header, delimiter)
    if frame.height != ok.height:  # the quote-aware count and the reader disagree
        return _read_csv_linewise(body, header, delimiter)
    return _Records(
        frame.with_columns(ok.select(row).to_series().alias(_ROW)), errors, frozenset(header)
    )


def _footer_candidates(filled: pl.DataFrame, footer: str) -> list[int]:
    """Line numbers of the lines ending the file that all match `footer` (`filled`: the
    non-blank physical lines as written after the header), in file order."""
    pattern = re.compile(footer)
    found: list[int] = []
    for number, text in zip(
        reversed(filled.get_column("line").to_list()),
        reversed(filled.get_column("text").to_list()),
        strict=True,
    ):
        if pattern.search(text) is None:
            break
        found.append(number)
    return found[::-1]


def _without_footer(
    records: _Records,
    candidates: list[int],
    header_line: int,
    last_line: int,
    footer: str,
    source_file: str,
) -> _Records:
    """`records` without the footer: the trailing lines matching `footer` from the first
    one that starts a record of its own (a line inside a quoted field read across lines is
    its record's, not a footer). A file without one is refused: it may be cut short."""
    rows = pl.concat([records.frame.get_column(_ROW), records.errors.get_column(_ROW)])
    starts = set(rows.filter(rows.is_in([n - header_line for n in candidates])).to_list())
    first = next((n for n in candidates if n - header_line in starts), None)
    if first is None:
        where = (
            f"is inside the quoted record that starts on line {rows.max() + header_line}, "
            f"not the declared footer {footer!r}"
            if candidates
            else f"does not match the declared footer {footer!r}"
        )
        raise LandingFormatError(
            f"{source_file}: line {last_line} (the last) {where}: the footer is missing, the "
            "file may be cut short or still being uploaded"
        )
    cut = first - header_line

    def kept(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col(_ROW) < cut)

    return _Records(
        kept(records.frame),
        kept(records.errors),
        records.paths,
        footer_lines=sum(n >= first for n in candidates),
    )


def _header(text: str, delimiter: str, source_file: str) -> tuple[list[str], bool]:
    """The header's column names, and whether it ends with a delimiter (an empty last name:
    no column, and the data lines end with one too)."""
    if any(ord(c) < 32 and c not in "\t\r" for c in text):
        raise LandingFormatError(
            f"{source_file}: the CSV header (line 1) holds control characters: "
            "not a text file in the declared format"
        )
    try:
        names = [n.strip() for n in next(csv.reader([text], delimiter=delimiter))]
    except csv.Error as exc:
        raise LandingFormatError(
            f"{source_file}: the CSV header (line 1) cannot be read: {exc}"
        ) from exc
    trailing = len(names) > 1 and names[-1] == ""
    if trailing:  # a delimiter after the last name, as many exports end every line
        names = names[:-1]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or "" in names:
        problem = f"duplicate column(s) {', '.join(dup)}" if dup else "an empty column name"
        raise LandingFormatError(f"{source_file}: CSV header has {problem}")
    return names, trailing


def _has_multiline_records(body: pl.DataFrame) -> bool:
    # An odd number of quotes on a line means a quoted field continues on the next line
    # (or broken quoting): both need the record-aware reader.
    return bool(
        body.select((pl.col("text").str.count_matches('"', literal=True) % 2 == 1).any()).item()
    )


def _field_count(delimiter: str) -> pl.Expr:
    # Quoted fields may contain the delimiter: drop them before counting. A quote opens a
    # quoted field only at the start of a field, as the readers (Polars, csv) take it; one
    # inside a field (`SET 12" PLATE, 6" BOWL`) is a character, and the delimiter after it
    # separates fields.
    sep = re.escape(delimiter)
    unquoted = pl.col("text").str.replace_all(rf'(^|{sep})"(?:[^"]|"")*"', "${1}")
    return unquoted.str.count_matches(delimiter, literal=True) + 1


def _read_csv_rows(texts: pl.Series, header: list[str], delimiter: str) -> pl.DataFrame:
    schema = pl.Schema({name: pl.String() for name in header})
    if texts.is_empty():
        return schema.to_frame()
    payload = texts.str.join("\n").item().encode()
    return pl.read_csv(
        io.BytesIO(payload),
        has_header=False,
        schema=schema,
        separator=delimiter,
        quote_char='"',
        infer_schema=False,
        empty_string_is_null=False,  # lossless: an empty field stays ''
    )


def _read_csv_linewise(body: pl.DataFrame, header: list[str], delimiter: str) -> _Records:
    """Record-aware reading for files with multi-line quoted fields or broken quoting.

    `body` starts on the line after the header, so body line i+1 is data row i+1; a
    record is numbered by its first line, like the fast path. A record read across
    several lines is only taken when it has the header's fields and none of the lines
    it swallowed is a whole row on its own; otherwise the quote that opened it is
    stray: that line alone is quarantined and reading resumes on the next line, so
    one stray quote costs one line, not the rest of the file.
    """
    texts: list[str] = body.get_column("text").to_list()
    utf8: list[str | None] = body.get_column("utf8_error").to_list()
    filled = [bool(u) or bool(t.strip(_BLANK)) for t, u in zip(texts, utf8, strict=True)]
    rows: list[list[str]] = []
    row_numbers: list[int] = []
    spans: list[int] = []
    errors: list[tuple[int, str, str, int]] = []
    start = 0
    while start < len(texts):
        if not filled[start]:
            start += 1
            continue
        if utf8[start]:
            errors.append((start + 1, str(utf8[start]), texts[start], 1))
            start += 1
            continue
        record, end, problem = _csv_record(texts, utf8, start, delimiter)
        if problem is None and end - start > 1:
            problem = _swallowed(record, texts[start + 1 : end - 1], header, delimiter)
        if problem is None and len(record) != len(header):
            problem = f"CSV row has {len(record)} fields, header has {len(header)}"
        if problem is None:
            rows.append(record)
            row_numbers.append(start + 1)
            spans.append(sum(filled[start:end]))
            start = end
            continue
        if end - start > 1:  # the quote opened on this line is not part of a real record
            problem = _stray_quote(texts[start], header, delimiter)
        errors.append((start + 1, problem, texts[start], 1))
        start += 1
    frame = (
        pl.DataFrame(rows, schema=list(header), orient="row")
        if rows
        else pl.DataFrame(schema={h: pl.String for h in header})
    )
    frame = frame.with_columns(
        pl.Series(_ROW, row_numbers, dtype=pl.Int64), pl.Series(_LINES, spans, dtype=pl.Int64)
    )
    error_frame = pl.DataFrame(
        errors,
        schema={_ROW: pl.Int64, "_parse_error": pl.String, "_raw_record": pl.String,
                _LINES: pl.Int64},
        orient="row",
    )  # fmt: skip
    return _Records(frame, error_frame, frozenset(header))


def _csv_record(
    texts: list[str], utf8: list[str | None], start: int, delimiter: str
) -> tuple[list[str], int, str | None]:
    """(fields, index after the record's last line, problem) of the record at `start`."""
    # invalid UTF-8 lines are fed as blank lines so line numbers stay aligned; a stray
    # quote reads on only up to the next quote, so the lines read stay linear overall
    lines = (("" if utf8[i] else texts[i]) + "\n" for i in range(start, len(texts)))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        return next(reader), start + reader.line_num, None
    except csv.Error as e:
        return [], start + max(reader.line_num, 1), f"unreadable CSV ({e})"
    except StopIteration:  # unreachable: `start` is a non-blank line
        return [], start + 1, "unreadable CSV (no record)"


def _swallowed(
    record: list[str], inner: list[str], header: list[str], delimiter: str
) -> str | None:
    """Why a multi-line record is really a stray quote, or None if it looks genuine."""
    if len(record) != len(header):
        return f"CSV row has {len(record)} fields, header has {len(header)}"
    for text in inner:
        fields = next(csv.reader([text], delimiter=delimiter), [])
        if len(fields) == len(header) and text.count('"') % 2 == 0:
            return "a quoted field runs over whole rows"
    return None


def _stray_quote(text: str, header: list[str], delimiter: str) -> str:
    field = _open_quote_field(text, delimiter)
    where = (
        f"field {field} ({header[field - 1]})"
        if field is not None and field <= len(header)
        else "this row"
    )
    return (
        f"unbalanced quote in {where}: it is not closed on this line, so the line is "
        "quarantined and the lines after it are read on their own"
    )


def _open_quote_field(text: str, delimiter: str) -> int | None:
    """1-based field in which a quote opens and stays open to the end of the line."""
    field, quoted, at_start, opened = 1, False, True, None
    i = 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == '"' and text[i + 1 : i + 2] == '"':
                i += 1  # an escaped quote inside a quoted field
            elif char == '"':
                quoted = False
        elif char == delimiter:
            field, at_start = field + 1, True
            i += 1
            continue
        elif char == '"' and at_start:
            quoted, opened = True, field
        at_start = False
        i += 1
    return opened if quoted else None


# --------------------------------------------------------------------------- Parquet


def _read_parquet(data: bytes, source_file: str) -> _Records:
    try:
        table = pq.read_table(pa.BufferReader(data))
        frame = pl.from_arrow(table)
    except (pa.ArrowException, OSError, pl.exceptions.PolarsError) as e:
        raise LandingFormatError(f"{source_file}: not a readable Parquet file ({e})") from e
    assert isinstance(frame, pl.DataFrame)
    paths = frozenset(p for name, dtype in frame.schema.items() for p in _dtype_paths(name, dtype))
    frame = frame.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(_ROW))
    return _Records(frame, _no_errors(), paths)


# --------------------------------------------------------------------------- mapping


def _map_records(records: _Records, spec: SourceSpec, source_file: str) -> pl.DataFrame:
    frame = records.frame
    present = records.paths or frozenset()
    fields = dict(frame.schema)
    top = [_column_expr(c, fields, None, present, "") for c in spec.columns]
    lineage = [
        pl.lit(source_file).alias("_source_file"),
        pl.col(_ROW).cast(pl.Int64),
        pl.col(_LINES).cast(pl.Int64),
        pl.lit(None, pl.String).alias("_raw_record"),
    ]
    order = [c for c in raw_schema(spec) if not c.startswith("_file_")]
    if spec.explode is None:
        carried = [_LINE_FIELDS] if _carries_line_fields(frame, spec) else []
        return frame.select(
            *top, *lineage, pl.lit(None, pl.String).alias("_parse_error"), *carried
        ).select(*order, *carried)

    ex = spec.explode
    dtype = fields.get(ex.field, pl.Null())
    if not isinstance(dtype, pl.Null | pl.List) or not isinstance(
        getattr(dtype, "inner", pl.Null()), pl.Struct | pl.Null
    ):
        raise LandingFormatError(
            f"{source_file}: field {ex.field!r} is {dtype}, not a list of objects to explode"
        )
    if ex.field not in fields:
        frame = frame.with_columns(pl.lit(None, pl.Null).alias(ex.field))
    no_items = (
        pl.lit(True)
        if isinstance(dtype, pl.Null)
        else pl.col(ex.field).is_null() | (pl.col(ex.field).list.len() == 0)
    )
    # A record without items has no order lines to clean: keep it visible as one row.
    empty = frame.filter(no_items).select(
        *top,
        *(pl.lit(None, pl.String).alias(c.name) for c in ex.columns),
        *lineage,
        pl.lit(f"no '{ex.field}' entries (missing or empty list)").alias("_parse_error"),
    )
    exploded = frame.filter(~no_items).explode(ex.field)
    item_dtype = exploded.schema[ex.field]
    item_fields = (
        {f.name: f.dtype for f in item_dtype.fields} if isinstance(item_dtype, pl.Struct) else {}
    )
    items = exploded.select(
        *top,
        *(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(_ROW).cast(pl.String).alias(c.name)
            if c.explode_index
            else _column_expr(c, item_fields, pl.col(ex.field), present, ex.field)
            for c in ex.columns
        ),
        *lineage,
        pl.lit(None, pl.String).alias("_parse_error"),
    )
    return pl.concat([items.select(order), empty.select(order)]).sort(_ROW, maintain_order=True)


def _column_expr(
    col: ColumnSpec,
    fields: dict[str, pl.DataType],
    base: pl.Expr | None,
    present: frozenset[str],
    prefix: str,
) -> pl.Expr:
    """Text of a contract column: the first present source name per row, or the constant."""
    if col.constant is not None:
        return pl.lit(col.constant, pl.String).alias(col.name)
    found = [p for p in col.source if _is_present(f"{prefix}.{p}" if prefix else p, present)]
    exprs = [_text(*_resolve(p, fields, base)) for p in found]
    if len(exprs) > 1:
        # the first name with a value wins: a CSV field left empty (or `NULL`) under one name
        # falls back to the next; with none valued, the first as written
        exprs = [*(_valued(e) for e in exprs), exprs[0]]
    value = pl.coalesce(exprs) if exprs else pl.lit(None, pl.String)
    if col.time_from is not None:
        value = _with_time_of_day(value, col.time_from, fields, base, present, prefix)
    return value.alias(col.name)


def _with_time_of_day(
    date: pl.Expr, path: str, fields: dict[str, pl.DataType], base: pl.Expr | None,
    present: frozenset[str], prefix: str,
) -> pl.Expr:
    """`<date> <time>` of a column whose time of day is written in the field `path`
    (`time_from`), each stripped; the date alone where the time holds nothing (cleaning
    then refuses it for the format) or the field is missing from the file."""
    if not _is_present(f"{prefix}.{path}" if prefix else path, present):
        return date
    expr, dtype = _resolve(path, fields, base)
    # a Parquet time keeps its fraction of a second (cast to text, Polars drops it)
    text = expr.dt.to_string("%H:%M:%S%.f") if isinstance(dtype, pl.Time) else _text(expr, dtype)
    time = _valued(text).str.strip_chars()
    day = date.str.strip_chars()
    return pl.when(time.is_null() | (time == "")).then(date).otherwise(day + " " + time)


# the version of how `aliases` are read, for the raw versions of sources that declare them
# (ingest/landing.py `raw_code_version`); aliases-2: a name present but empty falls back
ALIAS_READING = "aliases-2"

# What exports write into a cell that holds nothing: a SQL dump's NULL, a spreadsheet's N/A
# or #N/A, pandas' NaN and <NA>, Python's None. Read as text they would be values: `NULL`
# as a loyalty card made every anonymous till receipt one customer. "NA" is not here: it is
# also Namibia's country code. Cleaning reads them as missing; parsing skips them to an alias.
NULL_TOKENS = (
    "NULL", "null", "Null", "N/A", "n/a", "N/a", "#N/A", "<NA>",
    "None", "none", "NaN", "nan", "nil",
)  # fmt: skip


def holds_nothing(stripped: pl.Expr) -> pl.Expr:
    """Whether stripped text is no value: empty, or a NULL token."""
    return (stripped == "") | stripped.is_in(NULL_TOKENS)


def _valued(text: pl.Expr) -> pl.Expr:
    """`text` where it holds a value, null where it is blank or a NULL token."""
    return pl.when(holds_nothing(text.str.strip_chars())).then(None).otherwise(text)


def _is_present(path: str, present: frozenset[str]) -> bool:
    return any(p == path or p.startswith(path + ".") for p in present)


def _resolve(
    path: str, fields: dict[str, pl.DataType], base: pl.Expr | None
) -> tuple[pl.Expr, pl.DataType]:
    """Expression and dtype of a dotted field; a flat column literally named `a.b` wins."""
    if base is None and path in fields:
        return pl.col(path), fields[path]
    expr = base
    dtype: pl.DataType = pl.Null()
    for part in path.split("."):
        dtype = fields[part]
        expr = pl.col(part) if expr is None else expr.struct.field(part)
        fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
    assert expr is not None
    return expr, dtype


def _text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Render a typed (Parquet) value as text without losing information."""
    if isinstance(dtype, pl.String):
        return expr
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone:
            return expr.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
        return expr.dt.to_string("%Y-%m-%dT%H:%M:%S%.f")
    if isinstance(dtype, pl.Date):
        return expr.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Struct):
        return expr.struct.json_encode()
    if isinstance(dtype, pl.List | pl.Array):
        # Polars JSON-encodes structs only: encode {"v": list} and cut the wrapper off.
        wrapped = pl.struct(expr.alias("v")).struct.json_encode()
        return wrapped.str.strip_prefix('{"v":').str.strip_suffix("}")
    return expr.cast(pl.String)


def _filled_per_order(frame: pl.DataFrame, spec: SourceSpec) -> pl.DataFrame:
    """The source's `once_per_order` columns, written on an order's first row only, given
    to the order's other rows (`frame` in file order).

    The rows of an order are found by their place in the file: a row whose order id is
    blank continues the order of the row above it, and consecutive rows with the same id
    are one order. A blank value takes the first value the order's rows have, as written;
    a column blank on all of an order's rows stays blank (a guest order without e-mail),
    never taking the order above's. An unreadable row ends the order: the blank-id rows
    after it (until the next id) cannot be told apart from the lines of an order whose
    first row was lost, so they keep their blanks, as does a blank-id row at the top of
    the file (cleaning quarantines them: `order_id: missing`)."""
    if not spec.once_per_order:
        return frame

    def value(c: str) -> pl.Expr:  # None where blank
        return pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c))

    unreadable = pl.col("_parse_error").is_not_null()
    order_id = pl.when(~unreadable).then(value("order_id").str.strip_chars())
    # the order a row belongs to: the last id above it, not above an unreadable row
    current = order_id.forward_fill().over(unreadable.cum_sum())
    starts = current.is_not_null() & (
        unreadable.shift(1, fill_value=True) | current.ne_missing(current.shift(1))
    )
    order = "__order"
    framed = frame.with_columns(
        pl.when(current.is_not_null() & ~unreadable).then(starts.cum_sum()).alias(order)
    )
    filled = [
        pl.when(pl.col(order).is_not_null())
        .then(pl.coalesce(value(c), value(c).drop_nulls().first().over(order), pl.col(c)))
        .otherwise(pl.col(c))
        .alias(c)
        for c in spec.once_per_order
    ]
    return framed.with_columns(filled).drop(order)


# the version of how `order_amounts` become lines, for the raw versions of sources that
# declare them (ingest/landing.py `raw_code_version`)
# (2: a made line takes the source's once_per_order columns too, e.g. the order's status)
ORDER_AMOUNT_READING = "order-amounts-2"
_AMOUNT = "__amount"
_ORDER_AMOUNT = "__order_amount"  # marks the lines made from order amounts, until numbered
# a written zero (0, 0.00, -0,00): an order without that amount, no line
_ZERO = r"^[+-]?0*(?:[.,]0*)?$"


def _order_texts(records: _Records, spec: SourceSpec) -> pl.DataFrame | None:
    """Per readable record, the text of each `order_amounts` field (`__amount<i>`) and of the
    `order_total` field (`__total`), null when the field is absent, blank or a NULL token;
    None when the source declares neither."""
    fields = [(f"{_AMOUNT}{i}", a.field) for i, a in enumerate(spec.order_amounts)]
    if spec.order_total is not None:
        fields.append((_TOTAL, spec.order_total))
    if not fields:
        return None
    schema, present = dict(records.frame.schema), records.paths or frozenset()
    return records.frame.select(
        pl.col(_ROW).cast(pl.Int64),
        *(
            _valued(
                _column_expr(ColumnSpec(name, "string", source=(field,)), schema, None, present, "")
            )
            .str.strip_chars()
            .alias(name)
            for name, field in fields
        ),
    )


def _with_order_amount_lines(
    frame: pl.DataFrame, texts: pl.DataFrame | None, spec: SourceSpec
) -> pl.DataFrame:
    """`frame` plus one line per order and declared order amount (shipping, an order-level
    discount) the order's rows give a non-zero value for: product code and quantity 1, the
    value as unit price (its sign turned with `negate`), the order-level columns of the row
    the value is first written on (the contract's, the source's `once_per_order` ones and an
    exploded record's own), its lineage (so a file's lines still add up: the line spans the
    lines of that row, like the items of one exploded record). Line-level columns
    stay empty; `line_number` is numbered with the order's lines by content afterwards.

    An order whose rows give two different values for one amount gets the line with the
    first value and a parse error naming both (cleaning quarantines it: the order's money
    is in doubt). Rows are grouped by their order id after `once_per_order` filling and
    `within` composing; unreadable rows and rows without an order id give no line."""
    if not spec.order_amounts or texts is None:
        return frame
    frame = frame.with_columns(pl.lit(False).alias(_ORDER_AMOUNT))
    # the order's own columns, and those the source writes once per order or on the order
    # record of its items (Shopify's status: a refunded order's shipping and discount are
    # refunded with its goods)
    own = {c.name for c in spec.columns} if spec.explode is not None else set()
    order_level = (set(spec.contract.shared) | set(spec.once_per_order) | own) - {"line_number"}
    rows = frame.filter(
        pl.col("_parse_error").is_null() & pl.col("order_id").str.strip_chars().ne("")
    ).join(texts, on=_ROW, how="inner")
    lines = []
    price = spec.column("unit_price")
    assert price is not None  # mandatory for order lines
    for i, amount in enumerate(spec.order_amounts):
        value = pl.col(f"{_AMOUNT}{i}")
        # read as the price is: `0,00 €` is a zero where the price declares its sign
        plain = plain_number(price, value)
        valued = rows.filter(value.is_not_null() & ~plain.str.contains(_ZERO))
        if valued.is_empty():
            continue
        per_order = (
            valued.sort(_ROW)
            .group_by("order_id", maintain_order=True)
            .agg(
                pl.all().exclude(f"{_AMOUNT}{i}").first(),
                value.unique(maintain_order=True).alias("__values"),
                pl.col(_ROW).unique(maintain_order=True).alias("__rows"),
            )
        )
        signed = pl.col("__values").list.first()  # the first value written
        if amount.negate:
            # its sign first in front, without a currency sign: `($6.00)`, `6,00-` negate too
            signed = plain_number(price, signed)
            signed = (
                pl.when(signed.str.starts_with("-"))
                .then(signed.str.strip_prefix("-"))
                .otherwise(pl.concat_str(pl.lit("-"), signed.str.strip_prefix("+")))
            )
        conflict = pl.col("__values").list.len() > 1
        lines.append(
            per_order.with_columns(
                *(
                    pl.lit(None, pl.String).alias(c)
                    for c in spec.raw_columns
                    if c not in order_level and c not in ("sku", "quantity", "unit_price")
                ),
                pl.lit(amount.code, pl.String).alias("sku"),
                pl.lit("1", pl.String).alias("quantity"),
                signed.alias("unit_price"),
                pl.when(conflict)
                .then(
                    pl.format(
                        "{}: the order's rows give different values ({}) on rows {}",
                        pl.lit(amount.field),
                        pl.col("__values").list.join(", "),
                        pl.col("__rows").cast(pl.List(pl.String)).list.join(", "),
                    )
                )
                .alias("_parse_error"),
                pl.lit(True).alias(_ORDER_AMOUNT),
                pl.lit(i).alias("__k"),
            ).select(*frame.columns, "__k")
        )
    if not lines:
        return frame
    made = pl.concat(lines)
    if spec.explode is not None:
        made = _numbered_after_items(made, frame)
    return pl.concat([frame, made.drop("__k")]).sort(_ROW, maintain_order=True)


def _numbered_after_items(made: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """The made lines of an exploded source numbered after their order's items: the highest
    item number of the order (its list position, or the item's own number) plus 1, 2, ... in
    the order the amounts are declared. An order sent twice numbers its lines alike, so the
    copies are duplicates. (Sources that number lines by content number the made lines with
    the rest: `_number_sequences`.)"""
    highest = (
        frame.filter(pl.col("order_id").str.strip_chars().ne(""))
        .group_by("order_id")
        .agg(pl.col("line_number").cast(pl.Int64, strict=False).max().alias("__highest"))
    )
    return (
        made.join(highest, on="order_id", how="left")
        .with_columns(
            (pl.col("__highest") + pl.int_range(1, pl.len() + 1).over("order_id", order_by="__k"))
            .cast(pl.String)
            .alias("line_number")
        )
        .drop("__highest")
    )


# the version of the `order_total` check, for the raw versions of sources that declare it;
# order-total-2: a value quoted in the reason is cut to QUOTE_CHARS (cleaning masks the
# identifiers in it), so declaring sources re-clean their days once and their quarantine
# loses what an order's reason quoted in clear
ORDER_TOTAL_READING = "order-total-2"
_TOTAL = "__total"
TOTAL_DOUBT = "order_total: "  # begins the parse error of each row of an order held back


def _with_checked_totals(
    frame: pl.DataFrame, texts: pl.DataFrame | None, spec: SourceSpec,
    present: frozenset[str] | None,
) -> tuple[pl.DataFrame, int]:
    """`frame` with every row of each order that does not add up to the total the export
    states for it (`order_total`) marked as a parse error naming both sums, and the number
    of such orders. An order is its rows with one order id (after `once_per_order` filling
    and `within` composing), its made `order_amounts` lines included; its sum is quantity x
    unit price as written over its distinct lines (an order sent twice in one file is one
    order), compared with the stated total to half a unit of the total's last written digit.

    An order is held back too when its total cannot be told (none written, two different
    ones, not a number, the field absent from the file) or its lines cannot all be read (a
    row of it unreadable or its quantity or price not a number): what would be published
    could not be checked. A row that already has a parse error keeps it."""
    if spec.order_total is None or texts is None or frame.is_empty():
        return frame, 0
    quantity, price = spec.column("quantity"), spec.column("unit_price")
    assert quantity is not None and price is not None  # mandatory columns
    total_col = replace(price, name=_TOTAL, source=(), line_total=False)
    made = [_ORDER_AMOUNT] if _ORDER_AMOUNT in frame.columns else []
    order = pl.col("order_id").str.strip_chars()
    rows = (
        frame.with_row_index("__i")
        .filter(order.is_not_null() & (order != ""))
        .select("__i", order.alias("__order"), _ROW, "_parse_error", "line_number", "sku",
                "quantity", "unit_price", *made)  # fmt: skip
        .join(texts.select(_ROW, _TOTAL), on=_ROW, how="left")
    )
    # read as cleaning reads them (ingest.numbers), so a value cleaning refuses is refused here
    (units, units_why), (each, each_why), (total, _) = (
        _number(spec, c) for c in (quantity, price, total_col)
    )
    unreadable = units_why.is_not_null() | each_why.is_not_null()
    rows = rows.with_columns(
        total.alias("__total_value"),
        unreadable.alias("__unreadable"),
        pl.when(unreadable)
        .then(pl.concat_str([units_why, each_why], separator=", ", ignore_nulls=True))
        .alias("__reason"),
    )
    if price.line_total:  # the field is the line's total: its money whatever the quantity
        each = per_unit(each, units)
    typed = rows.with_columns(units.alias("quantity"), each.alias("unit_price"))
    good = pl.col("_parse_error").is_null() & ~pl.col("__unreadable")
    # money given back later (a refund's line) is not part of what the order was charged
    refunds = list(spec.refund_codes)
    charged = ~(pl.col(_ORDER_AMOUNT) & pl.col("sku").is_in(refunds)) if made else pl.lit(True)
    summed = (
        typed.filter(good, charged)
        .unique(subset=["__order", "line_number", "sku", "quantity", "unit_price", *made])
        .group_by("__order")
        .agg((pl.col("quantity") * pl.col("unit_price")).sum().round(6).alias("__sum"))
    )
    per_order = (
        rows.sort(_ROW)
        .group_by("__order", maintain_order=True)
        .agg(
            pl.col(_TOTAL).drop_nulls().unique(maintain_order=True).alias("__totals"),
            pl.col("__total_value").drop_nulls().first().alias("__total_value"),
            pl.col(_ROW).unique(maintain_order=True).alias("__rows"),
            pl.when(~good)
            .then(
                pl.format("row {}{}", pl.col(_ROW),
                          pl.when(pl.col("__reason").is_not_null())
                          .then(pl.lit(": ") + pl.col("__reason")).otherwise(pl.lit("")))
            )
            .drop_nulls()
            .unique(maintain_order=True)
            .alias("__bad"),
        )  # fmt: skip
        .join(summed, on="__order", how="left")
    )
    absent = present is not None and not _is_present(spec.order_total, present)
    mark = price.decimal or "."
    doubts = {
        o: why
        for o, *values in per_order.iter_rows()
        if (why := _total_doubt(spec.order_total, mark, absent, *values)) is not None
    }
    if not doubts:
        return frame, 0
    marked = rows.select(
        "__i", pl.col("__order").replace_strict(doubts, default=None).alias("__doubt")
    ).filter(pl.col("__doubt").is_not_null())
    error = pl.Series("_parse_error", [None] * frame.height, pl.String).scatter(
        marked["__i"], marked["__doubt"]
    )
    return frame.with_columns(pl.coalesce(pl.col("_parse_error"), error)), len(doubts)


def _number(spec: SourceSpec, col: ColumnSpec) -> tuple[pl.Expr, pl.Expr]:
    """(value, why it cannot be read: null when it can) of the int or float column `col`,
    from its text as cleaning reads it (stripped; empty and NULL tokens are missing)."""
    text = pl.col(col.name).str.strip_chars()
    text = pl.when(holds_nothing(text)).then(None).otherwise(text)
    reading = read_number(as_read(spec, col), text)
    problem = (
        pl.format(f"{col.name}: {{}} ('{{}}')", reading.problem(text), shortened(text))
        if reading.problem is not None
        else pl.lit(None, pl.String)
    )
    why = (
        pl.when(text.is_null())
        .then(pl.lit(f"{col.name}: missing"))
        .when(reading.value.is_null())
        .then(problem)
    )
    return reading.value, why


def _total_doubt(
    field: str, mark: str, absent: bool, totals: list[str], total: float | None, rows: list[int],
    bad: list[str], summed: float | None,
) -> str | None:
    """Why an order's lines cannot be published against the total its export states, or
    None when they add up to it. Written `order_total: <problem> (<values>)` without `;`, so
    the quarantine's kind of reason is the problem, whatever the order's values. A value
    quoted is cut to `QUOTE_CHARS` (cleaning masks identifiers in every parse error)."""
    totals = [shortened_text(t) for t in totals]
    where = f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}"
    kept = "so none of its lines is kept"
    if absent:
        why = f"the file has no field {field!r} to check the order against, {kept} (renamed?"
        why += f" {where})"
    elif not totals:
        why = f"no {field} is written for the order, {kept} ({where})"
    elif len(totals) > 1:
        why = f"the order's rows give different {field}s, {kept} ({', '.join(totals)} on {where})"
    elif total is None:
        why = f"the order's {field} is not a number, {kept} ({totals[0]!r}, {where})"
    elif bad:
        why = (
            f"the order's lines cannot all be read to check them against its {field}, {kept} "
            f"({', '.join(b.replace('; ', ', ') for b in bad)}, {field} {totals[0]})"
        )
    else:
        # compared to half a unit of the total's last written digit (the decimal `mark`'s;
        # a currency sign or an accounting parenthesis may follow it: `58,90 €`, `($1.00)`)
        digits = re.search(rf"{re.escape(mark)}(\d+)\D*$", totals[0])
        decimals = len(digits.group(1)) if digits else 0
        if summed is not None and abs(summed - total) <= 0.5 * 10**-decimals + 1e-9:
            return None
        lines = f"{summed or 0:.{decimals}f}".replace(".", mark)  # as the Total is written
        why = (
            f"the order's lines do not add up to its {field}, {kept}: a line or an order "
            f"amount is not read (a tax, shipping, a tip? see order_amounts) ({field} "
            f"{totals[0]}, lines {lines}, {where})"
        )
    return f"{TOTAL_DOUBT}{why}"


def _made_unique(frame: pl.DataFrame, spec: SourceSpec) -> pl.DataFrame:
    """Columns declared `within` others become `<others>/<value>` (`S01/R0001`), from the
    text as written; a row missing one of the others keeps its value as written.
    `order_day` in `within` is the day of the row's order time where it was written
    (`S01/2026-01-05/R0001`), its business day when the source declares `day_ends_at`; a
    row whose time cannot be read keeps its value too."""
    composed = []
    for col in spec.columns:
        if not col.within:
            continue
        parts = [
            _order_day(spec) if c == ORDER_DAY and spec.column(c) is None
            else pl.col(c).str.strip_chars()
            for c in (*col.within, col.name)
        ]  # fmt: skip
        present = pl.all_horizontal(p.is_not_null() & (p != "") for p in parts)
        composed.append(
            pl.when(present)
            .then(pl.concat_str(parts, separator="/"))
            .otherwise(pl.col(col.name))
            .alias(col.name)
        )
    return frame.with_columns(composed) if composed else frame


def _order_day(spec: SourceSpec) -> pl.Expr:
    ordered_at = spec.column("ordered_at")
    assert ordered_at is not None  # the declaration is checked when it is loaded
    return local_day(ordered_at, pl.col("ordered_at"), spec.business_day_end)


def _number_sequences(frame: pl.DataFrame, spec: SourceSpec) -> pl.DataFrame:
    """Fill `sequence` columns (e.g. the line numbers of a till transaction) from the
    content of the rows sharing the named column, never from their order in the file.

    Within one group (say transaction T1) a line is what its own fields say: its mapped
    columns but the contract's `shared` order-level ones (sku, quantity, price), then
    the fields of the file the source does not map (`_line_fields`: a line item's name,
    and also an order-level field an export writes on an order's first row only). The
    distinct lines are numbered in the sort order of their text, and a line occurring
    several times gets one number per occurrence (a till may scan an item twice).
    When every distinct line of a group occurs a multiple of the same k > 1 times,
    the group was delivered k times: its copies repeat the numbers of the first
    delivery, so cleaning removes them as duplicates. Rows without a value (unreadable,
    or the value missing) get no number. Any permutation of a file numbers alike.
    """
    numbered = [
        _content_line_numbers(frame, col, spec).alias(col.name)
        for col in spec.columns
        if col.sequence is not None
    ]
    return frame.with_columns(numbered) if numbered else frame


def _content_line_numbers(frame: pl.DataFrame, col: ColumnSpec, spec: SourceSpec) -> pl.Series:
    assert col.sequence is not None
    sequenced = {c.name for c in spec.columns if c.sequence is not None}
    shared = set(spec.contract.shared) | {col.sequence}
    text = [c for c in spec.raw_columns if c not in sequenced]
    rest = [c for c in text if c in shared]
    # the unmapped fields come after the mapped ones: they only order lines alike in those
    unmapped = [_LINE_FIELDS] if _carries_line_fields(frame, spec) else []
    # a line made from an order amount is never the same line as one the file wrote
    made = [_ORDER_AMOUNT] if _ORDER_AMOUNT in frame.columns else []
    line = [c for c in text if c not in shared] + unmapped + made
    group, index = "__group", "__index"
    rows = (
        frame.with_row_index(index)
        .select(
            index,
            pl.col(col.sequence).str.strip_chars().alias(group),
            *(pl.col(c).str.strip_chars() for c in text),
            *unmapped,
            *made,
        )
        .filter(pl.col(group).is_not_null() & (pl.col(group) != ""))
        # a total order on content: equal lines sit together, ties by their shared columns
        .sort([group, *line, *rest], nulls_last=True)
    )
    if rows.is_empty():
        return pl.Series(col.name, [None] * frame.height, dtype=pl.String)
    same_line = [group, *line]
    rows = rows.with_columns(
        pl.int_range(pl.len()).over(same_line).alias("__occurrence"),
        pl.len().over(same_line).alias("__count"),
    )
    distinct = rows.filter(pl.col("__occurrence") == 0)
    counts = distinct.get_column("__count").to_numpy()
    groups = distinct.get_column(group)
    starts = np.flatnonzero(np.r_[True, (groups[1:] != groups[:-1]).to_numpy()])
    # an order amount's line is made once per order: it does not say how often the
    # order was delivered (gcd(n, 0) = n), and it is one line however often that was
    made_once = (
        distinct.get_column(_ORDER_AMOUNT).to_numpy() if made else np.zeros(len(counts), bool)
    )
    deliveries = np.repeat(
        np.maximum(np.gcd.reduceat(np.where(made_once, 0, counts), starts), 1),
        np.diff(np.r_[starts, len(counts)]),
    )
    once = np.where(made_once, 1, counts // deliveries)
    numbers = distinct.select(same_line).with_columns(
        pl.Series("__once", once, dtype=pl.Int64)
    ).with_columns(
        (pl.col("__once").cum_sum().over(group) - pl.col("__once")).alias("__first")
    )
    positions = rows.join(numbers, on=same_line, how="left", nulls_equal=True).select(
        index,
        (pl.col("__first") + pl.col("__occurrence") % pl.col("__once") + 1).cast(pl.String),
    )
    out = pl.Series(col.name, [None] * frame.height, dtype=pl.String)
    return out.scatter(positions.get_column(index), positions.to_series(1))


# the version of what a line is to `sequence` numbering, for the raw versions of sources
# that number lines by content (ingest/landing.py `raw_code_version`); lines-2: a line is
# all of its own fields, mapped or not (lines-1 read its mapped columns only)
LINE_IDENTITY = "lines-2"
# the text of a row's unmapped fields, carried to the numbering only (never written to raw)
_LINE_FIELDS = "__aiwf_line_fields"


def reads_line_fields(spec: SourceSpec) -> bool:
    """Whether parsing reads the file's unmapped fields for `spec`: only to number lines by
    content (`sequence`), and not for exploded sources, whose lines are the list's items
    and whose sequence numbers read the mapped columns only."""
    return spec.explode is None and any(c.sequence is not None for c in spec.columns)


def _carries_line_fields(frame: pl.DataFrame, spec: SourceSpec) -> bool:
    return reads_line_fields(spec) and _LINE_FIELDS in frame.columns


def _line_paths(spec: SourceSpec) -> set[str]:
    return {p for c in spec.columns for p in c.source} | set(spec.time_fields)


def _unmapped_fields(
    fields: dict[str, pl.DataType], base: pl.Expr | None, prefix: str, mapped: set[str]
) -> list[tuple[str, pl.Expr, pl.DataType]]:
    """(path, expression, dtype) of each field no column maps: an object part of which is
    mapped gives its other fields, one that nothing maps is one field (its JSON text)."""
    out = []
    for name, dtype in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        expr = pl.col(name) if base is None else base.struct.field(name)
        if path in mapped:
            continue
        if isinstance(dtype, pl.Struct) and any(m.startswith(path + ".") for m in mapped):
            inner = {f.name: f.dtype for f in dtype.fields}
            out += _unmapped_fields(inner, expr, path, mapped)
        else:
            out.append((path, expr, dtype))
    return out


def _line_fields(schema: pl.Schema, spec: SourceSpec) -> pl.Expr:
    """One text per row of the fields the source does not map (`ignore`d ones too), each
    as written without surrounding white space, in the order of their names: what tells
    apart two lines of an order whose mapped columns are alike (two engraved mugs of one
    SKU and price, the names unmapped). Null when the file has no such field."""
    fields = sorted(_unmapped_fields(dict(schema), None, "", _line_paths(spec)), key=_path)
    if not fields:
        return pl.lit(None, pl.String).alias(_LINE_FIELDS)
    texts = [
        (expr.bin.encode("hex") if isinstance(dtype, pl.Binary) else _text(expr, dtype))
        .str.strip_chars()
        .alias(str(i))
        for i, (_, expr, dtype) in enumerate(fields)
    ]
    return pl.struct(texts).struct.json_encode().alias(_LINE_FIELDS)


def _path(field: tuple[str, pl.Expr, pl.DataType]) -> str:
    return field[0]


def _unmapped_schema(paths: frozenset[str], spec: SourceSpec) -> pl.Schema:
    """What to read of a JSON file to get its unmapped fields: each as text, inside the
    objects the source maps part of."""
    mapped = _line_paths(spec)
    tree: dict[str, Any] = {}
    for path in paths:
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            head = ".".join(parts[:depth])
            if head in mapped:
                break
            if not any(m.startswith(head + ".") for m in mapped):
                _insert_path(tree, parts[:depth])
                break
    return pl.Schema({name: _tree_dtype(node) for name, node in tree.items()})


# --------------------------------------------------------------------------- drift


def _found_names(present: frozenset[str], spec: SourceSpec) -> list[tuple[ColumnSpec, list[str]]]:
    """Per mapped contract column, its source names (from, aliases) present in the file."""
    item_prefix = f"{spec.explode.field}." if spec.explode else ""
    groups = [("", spec.columns)] + ([(item_prefix, spec.explode.columns)] if spec.explode else [])
    return [
        (col, [p for p in col.source if _is_present(prefix + p, present)])
        for prefix, columns in groups
        for col in columns
        if col.source
    ]


def _mapped_paths(spec: SourceSpec) -> list[str]:
    paths = [p for c in spec.columns for p in c.source] + list(spec.ignore)
    paths += [*spec.order_fields, *spec.time_fields]
    if spec.explode is not None:
        paths += [f"{spec.explode.field}.{p}" for c in spec.explode.columns for p in c.source]
    return paths


def _extra_paths(present: frozenset[str], spec: SourceSpec) -> tuple[str, ...]:
    mapped = _mapped_paths(spec)
    explode_field = spec.explode.field if spec.explode else None

    def covered(path: str) -> bool:
        return path == explode_field or any(
            path == m or path.startswith(m + ".") or m.startswith(path + ".") for m in mapped
        )

    return tuple(sorted(p for p in present if not covered(p)))


def _missing_columns(present: frozenset[str], spec: SourceSpec) -> tuple[str, ...]:
    """Contract columns none of whose source names the file has, then the `order_amounts`
    fields it lacks (`order_amounts.Shipping`: its orders get no such line)."""
    columns = tuple(col.name for col, found in _found_names(present, spec) if not found)
    amounts = tuple(
        f"order_amounts.{a.field}" for a in spec.order_amounts if not _is_present(a.field, present)
    )
    times = tuple(
        f"{c.name}.{c.time_from}"
        for c in spec.columns
        if c.time_from is not None and not _is_present(c.time_from, present)
    )
    total = spec.order_total
    return columns + times + amounts + (
        (f"order_total.{total}",) if total is not None and not _is_present(total, present) else ()
    )


def _aliased_columns(present: frozenset[str], spec: SourceSpec) -> tuple[tuple[str, str], ...]:
    return tuple(
        (col.name, found[0])
        for col, found in _found_names(present, spec)
        if found and found[0] != col.source[0]
    )
