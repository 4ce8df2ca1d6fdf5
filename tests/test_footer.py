"""A summary line at the end of the file: a source's `footer`.

Shop order exports, tills' end-of-day reports and ERP CSVs end with a totals line
(`Total,,,,,315.20,...`) or a `Report generated ...` line. Without a way to declare it, the
line was read as a data row and quarantined with several reasons (noise, and counted by the
quarantine guard). A source that declares `footer: <regular expression>` has the trailing
lines matching it left out of its rows and counted apart (records + header + footer lines
are the file's lines); a file of that source without its footer is refused (it may be cut
short, or still uploading), and a matching line in the middle of the data is data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.cleaning import clean_orders_day
from aiwf_assets.cleaning.assets import accounting_findings
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA
from aiwf_assets.ingest.assets import _ingest_one
from aiwf_assets.ingest.landing import RAW_CODE_VERSION, raw_code_version, spec_fingerprint
from aiwf_assets.ingest.parse import (
    FOOTER_READING,
    LandingFormatError,
    parse_landing,
    refusal,
)
from aiwf_assets.ingest.physical import nonblank_lines
from aiwf_assets.ingest.spec import (
    SourceSpec,
    SourceSpecError,
    declared_sources,
    load_sources,
    parse_sources,
)
from aiwf_assets.resources import LandingResource
from tests.test_sources_yaml import MINIMAL

FIXTURES = Path(__file__).parent / "fixtures"
SHOPIFY = FIXTURES / "shopify"
KEY = b"test-pii-key"
DAY = dt.date(2026, 3, 4)


def _with_footer(yaml_text: str, footer: str, after: str = "    format: csv") -> str:
    assert after in yaml_text
    return yaml_text.replace(after, f"{after}\n    footer: {footer}", 1)


# --------------------------------------------------------------------------- declaration


@pytest.mark.parametrize(
    ("footer", "message"),
    [
        ('"^Total,("', "sources.shop.footer: not a regular expression (missing ), unterminated"),
        ("42", "sources.shop.footer: a regular expression the summary line(s) ending the file"),
        ("[Total]", "sources.shop.footer: a regular expression the summary line(s)"),
        ('""', "sources.shop.footer: a regular expression the summary line(s)"),
        ('".*"', "sources.shop.footer: '.*' matches an empty line, so any line"),
        ('"^(Total)?"', "sources.shop.footer: '^(Total)?' matches an empty line"),
    ],
)
def test_a_footer_that_is_no_usable_regular_expression_is_refused(
    footer: str, message: str
) -> None:
    with pytest.raises(SourceSpecError) as err:
        parse_sources(_with_footer(MINIMAL, footer), origin="test.yaml")
    assert str(err.value).startswith("test.yaml: sources.shop.footer: ")
    assert message in str(err.value)


def test_a_footer_is_declared_on_csv_sources() -> None:
    spec = parse_sources(_with_footer(MINIMAL, '"^(Total|Report generated)"'))["shop"]
    assert spec.footer == "^(Total|Report generated)"
    assert parse_sources(MINIMAL)["shop"].footer is None
    jsonl = MINIMAL.replace("format: csv", "format: jsonl").replace("{date}.csv", "{date}.jsonl")
    with pytest.raises(SourceSpecError, match="sources.shop.footer: only csv sources have a"):
        parse_sources(_with_footer(jsonl, '"^Total"', after="    format: jsonl"))


def test_only_sources_declaring_a_footer_are_re_versioned() -> None:
    """The raw code version of a source with a footer carries the footer reading's; the
    packaged sources (none declares one) keep their raw versions."""
    packaged = load_sources().sources
    pos = packaged["pos_transactions"]
    assert raw_code_version(pos).startswith(RAW_CODE_VERSION)
    assert raw_code_version(dataclasses.replace(pos, footer="^Total,")) == (
        f"{raw_code_version(pos)}+{FOOTER_READING}"
    )
    assert all(FOOTER_READING not in raw_code_version(s) for s in packaged.values())
    assert spec_fingerprint(dataclasses.replace(pos, footer="^Total,")) != spec_fingerprint(pos)


# --------------------------------------------------------------------------- parsing

POS = load_sources()["pos_transactions"]
FOOTER = '^(Total,|"Report generated )'
POS_FOOTED = dataclasses.replace(POS, footer=FOOTER)
HEADER = b"txn_id,store_code,local_time,loyalty_card,sku,qty,unit_price,payment\n"
TOTAL = b"Total,,,,,3,29.97,\n"


def _row(i: int, payment: bytes = b"card") -> bytes:
    return f"T{i:04d},S01,05/01/2026 10:{i:02d}:00,,SKU-{i:05d},1,9.99,".encode() + payment + b"\n"


ROWS = _row(1) + _row(2) + _row(3)


def _parse(data: bytes, spec: SourceSpec = POS_FOOTED):
    return parse_landing(data, spec, "pos_transactions/2026-01-05.csv")


def test_the_footer_is_no_row_and_is_counted_apart() -> None:
    data = HEADER + ROWS + TOTAL + b"\n  \n"  # blank lines after it, as the reader skips
    result = _parse(data)
    plain = _parse(HEADER + ROWS, POS)
    assert result.frame.equals(plain.frame)
    assert result.frame.get_column("_parse_error").null_count() == 3
    assert (result.footer_lines, plain.footer_lines) == (1, 0)
    records = result.frame.get_column("_file_records").unique().to_list()
    assert records == [3]
    assert records[0] + 1 + result.footer_lines == nonblank_lines(data)
    # without the key the footer was a row, quarantined with several reasons
    assert _parse(data, POS).frame.height == 4


def test_a_footer_of_several_lines() -> None:
    data = HEADER + ROWS + TOTAL + b'"Report generated 2026-01-05 23:59",,,,,,,\r\n'
    result = _parse(data.replace(b"\n", b"\r\n"))
    assert result.frame.height == 3 and result.footer_lines == 2
    assert result.frame.get_column("_file_records").unique().to_list() == [3]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (HEADER + ROWS, 4),  # cut short after a whole row
        (HEADER + ROWS[:-9], 4),  # cut short mid-row, no line break
        (HEADER + ROWS + TOTAL + _row(4), 6),  # the footer is not at the end
        (HEADER, 1),  # the header alone
    ],
)
def test_a_file_without_its_footer_is_refused(data: bytes, line: int) -> None:
    with pytest.raises(LandingFormatError) as err:
        _parse(data)
    assert str(err.value) == (
        f"pos_transactions/2026-01-05.csv: line {line} (the last) does not match the declared "
        f"footer {FOOTER!r}: the footer is missing, the file may be cut short or still being "
        "uploaded"
    )


def test_a_matching_line_in_the_middle_is_data() -> None:
    """Only the trailing block is the footer: a `Total` line between rows is read (and
    quarantined with its reasons) as without the key."""
    data = HEADER + _row(1) + TOTAL + _row(2) + TOTAL
    result = _parse(data)
    assert result.footer_lines == 1
    assert result.frame.get_column("_source_row").to_list() == [1, 2, 3]
    assert result.frame.get_column("order_id").to_list() == ["T0001", "Total", "T0002"]
    assert result.frame.get_column("_file_records").unique().to_list() == [3]


def test_header_and_footer_alone_are_a_day_without_rows() -> None:
    result = _parse(HEADER + TOTAL)
    assert result.frame.is_empty() and result.footer_lines == 1
    raw, meta = _ingest(HEADER + TOTAL)
    assert raw.is_empty() and (meta["records_in_file"], meta["footer_lines"]) == (0, 1)


def test_a_quoted_last_record_over_several_lines_is_not_the_footer() -> None:
    """The footer is physical lines at the end that start a record of their own: the last
    line of a quoted field read across lines belongs to its record, even when it matches."""
    quoted = b'T0004,S01,05/01/2026 10:04:00,,SKU-00004,1,9.99,"card\nTotal, paid"\n'
    with pytest.raises(LandingFormatError) as err:
        _parse(HEADER + ROWS + quoted)
    assert str(err.value).startswith(
        "pos_transactions/2026-01-05.csv: line 6 (the last) is inside the quoted record that "
        f"starts on line 5, not the declared footer {FOOTER!r}: the footer is missing"
    )
    # with its footer after it, the record is read whole, over its two lines
    result = _parse(HEADER + ROWS + quoted + TOTAL)
    assert result.footer_lines == 1
    last = result.frame.row(-1, named=True)
    assert (last["_source_row"], last["_source_lines"], last["payment"]) == (
        4, 2, "card\nTotal, paid",
    )  # fmt: skip
    assert last["_file_records"] == 5 and result.frame.get_column("_source_lines").sum() == 5


def test_a_semicolon_export_with_decimal_commas_and_a_summe_line(tmp_path: Path) -> None:
    """The late bar's till (tests/fixtures/late_bar: `;`, decimal commas) with the day's
    total written under the receipts."""
    declared = FIXTURES / "late_bar" / "sources.yaml"
    overlay = tmp_path / "sources.yaml"
    overlay.write_text(_with_footer(declared.read_text(), '"^Summe;"', after='    delimiter: ";"'))
    plain = declared_sources(declared)["bar_till"]
    spec = declared_sources(overlay)["bar_till"]
    data = (FIXTURES / "late_bar" / "bar_till" / "2026-01-05.csv").read_bytes()
    summe = b"Summe;;;;;;;;123,40;;\n"
    result = parse_landing(data + summe, spec, "bar_till/2026-01-05.csv")
    expected = parse_landing(data, plain, "bar_till/2026-01-05.csv")
    assert result.footer_lines == 1
    assert result.frame.equals(expected.frame)
    with pytest.raises(LandingFormatError, match=r"bar_till/2026-01-05.csv: line \d+ \(the last"):
        parse_landing(data, spec, "bar_till/2026-01-05.csv")


# --------------------------------------------------------------------------- raw step


def _ingest(data: bytes, spec: SourceSpec = POS_FOOTED) -> tuple[pl.DataFrame, dict]:
    """The raw step's frame and metadata for one landed day."""
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "pos_transactions" / "2026-01-05.csv"
        path.parent.mkdir()
        path.write_bytes(data)
        frame, meta, _ = _ingest_one(spec, "2026-01-05", LandingResource(root=root))
    return frame, meta


def test_the_raw_step_records_the_footer_lines() -> None:
    frame, meta = _ingest(HEADER + ROWS + TOTAL)
    assert frame.height == 3
    assert (meta["records_in_file"], meta["footer_lines"]) == (3, 1)
    assert meta["unreadable_records"] == 0
    # a source without the key records what it did before
    _, plain = _ingest(HEADER + ROWS, POS)
    assert set(meta) - set(plain) == {"footer_lines"}


def test_a_daily_file_without_its_footer_holds_its_day() -> None:
    """Refused, not read in part: its raw partition is the one row standing for the file,
    which cleaning quarantines and holds the day back with (tests/test_refused_file.py)."""
    frame, meta = _ingest(HEADER + ROWS)
    assert frame.height == 1
    why = refusal(frame)
    assert why is not None and why.startswith(
        "pos_transactions/2026-01-05.csv: line 4 (the last) does not match the declared footer"
    )
    assert meta["refused"] == why


# --------------------------------------------------------------------------- cleaning


def test_a_shopify_export_with_a_total_line_is_cleaned_without_quarantine() -> None:
    """tests/fixtures/shopify/shop_totals: shop_b's orders and the report's `Total` line.
    Every line reaches its order, nothing is quarantined, and the rows add up against the
    file's lines."""
    sources = declared_sources(SHOPIFY / "totals.yaml")
    spec = sources["shop_totals"]
    data = (SHOPIFY / "shop_totals" / f"{DAY}.csv").read_bytes()
    assert data.decode().splitlines()[-1].startswith("Total,")

    def clean(spec: SourceSpec):
        raw = parse_landing(data, spec, f"shop_totals/{DAY}.csv").frame
        srcs = dataclasses.replace(sources, sources={**sources.sources, spec.name: spec})
        return clean_orders_day({spec.name: raw}, IDENTITY_SCHEMA.to_frame(), KEY, DAY, srcs)

    result = clean(spec)
    assert result.quarantine.is_empty()
    counts = result.accounting.row(0, named=True)
    assert counts["rows_in"] == counts["rows_cleaned"] == 10
    assert counts["lines_in_file"] == counts["lines_parsed"] == 10
    assert accounting_findings(result.accounting) == []
    assert sorted(result.tables["orders"]["order_id"]) == [
        f"shop_totals:#100{i}" for i in range(1, 6)
    ]
    # the same orders as shop_b's export without the line
    shop_b = (SHOPIFY / "shop_b" / f"{DAY}.csv").read_bytes()
    assert data.startswith(shop_b)

    # without the key the totals line was an order of its own, quarantined
    without = clean(dataclasses.replace(spec, footer=None))
    assert without.quarantine.get_column("reasons").to_list() == [
        "ordered_at: missing; currency: missing; sku: missing; unit_price: missing"
    ]
