"""What a landing file holds, counted from its bytes without the parser.

Row accounting starts here: the raw layer records this count beside every
parsed record, and the cleaned layer's `rows_add_up` check reconciles the lines
the parser covered against it, so a reader that swallows lines (an unclosed
quote turning the rest of a CSV into one field) cannot go unnoticed.

A line is the bytes between two `\\n` (between two `\\r` in a file without any `\\n`:
classic Mac line ends); it is blank when it holds nothing but ASCII
white space (a leading UTF-8 byte-order mark is ignored, as the parser does). CSV
records are the non-blank lines after the first one (the header; after the first two when
the first is Excel's `sep=<c>` line), JSONL records
the non-blank lines, Parquet records the row count in the file's footer. A CSV source's
declared `footer` (summary lines ending the file) is among these lines: the parser finds
and subtracts it (`ParseResult.footer_lines`).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq

from aiwf_assets.ingest.spec import Format

BLANK_BYTES = b" \t\r\x0b\x0c"  # with \n: the white space that makes a line blank
_BOM = b"\xef\xbb\xbf"


class UnreadableFooterError(ValueError):
    """A Parquet file whose footer cannot be read: the parser refuses it too."""


def line_break(data: bytes) -> bytes:
    """The bytes that end a line: `\\n` (LF or CRLF), or `\\r` in a file whose lines end in
    CR alone (classic Mac exports), which would otherwise be one line."""
    return b"\r" if b"\n" not in data and b"\r" in data else b"\n"


def _with_lf(data: bytes) -> bytes:
    return data.replace(b"\r", b"\n") if line_break(data) == b"\r" else data


def nonblank_lines(data: bytes) -> int:
    """How many physical lines hold anything but white space."""
    # deleting the white space (in C) leaves blank lines empty; no per-byte Python work
    content = _with_lf(data).removeprefix(_BOM).translate(None, BLANK_BYTES)
    return sum(map(bool, content.split(b"\n")))


def physical_records(data: bytes, fmt: Format) -> int:
    """How many records the file holds, counted without parsing it."""
    if fmt == "parquet":
        if not data.strip():
            return 0
        try:
            return pq.read_metadata(pa.BufferReader(data)).num_rows
        except (pa.ArrowException, OSError) as e:
            raise UnreadableFooterError(str(e)) from e
    lines = nonblank_lines(data)
    if fmt != "csv":
        return lines
    return max(lines - 1 - (excel_separator(data) is not None), 0)


# Excel's first line `sep=;` names the file's delimiter; it is neither header nor record.
_EXCEL_SEP = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n\x0b\x0c]*sep=([^\r\n])[ \t]*(?:\r|\n|$)")


def excel_separator(data: bytes) -> str | None:
    """The delimiter a CSV's leading `sep=<c>` line names (Excel writes one), or None."""
    found = _EXCEL_SEP.match(data)
    return found.group(1).decode("utf-8", "replace") if found else None


def ends_mid_line(data: bytes) -> bool:
    """Whether the last line has content but no line break after it: where a file cut
    short ends. Writers that omit the final break look the same, so the raw layer
    only calls a file truncated when that last line is also unreadable."""
    tail = _with_lf(data).rstrip(BLANK_BYTES)
    return bool(tail.strip(b"\n")) and not tail.endswith(b"\n")
