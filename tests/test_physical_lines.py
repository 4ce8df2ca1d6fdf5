"""Accounting starts at the file: lines counted from the bytes, reconciled after parsing.

Stray quotes, multi-line quoted fields, blank lines, byte-order marks and files
cut short, on small literal files in the landing formats.
"""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiwf_assets.cleaning import clean_interactions_day, clean_orders_day
from aiwf_assets.cleaning.assets import accounting_result
from aiwf_assets.cleaning.transforms import ACCOUNTING_SCHEMA, IDENTITY_SCHEMA
from aiwf_assets.ingest.parse import LandingFormatError, parse_landing
from aiwf_assets.ingest.physical import ends_mid_line, physical_records
from aiwf_assets.ingest.spec import load_sources, parse_sources

SOURCES = load_sources()
DAY = dt.date(2026, 1, 5)
KEY = b"k"
NO_IDENTITY = IDENTITY_SCHEMA.to_frame()
POS_HEADER = b"txn_id,store_code,local_time,loyalty_card,sku,qty,unit_price,payment\n"


def pos_row(i: int) -> bytes:
    return f"T{i:04d},S01,05/01/2026 10:{i % 60:02d}:00,,SKU-{i:05d},1,9.99,card\n".encode()


POS = POS_HEADER + b"".join(pos_row(i) for i in range(1, 21))


def clean_pos(data: bytes):
    raw = parse_landing(data, SOURCES["pos_transactions"], "pos_transactions/x.csv").frame
    result = clean_orders_day({"pos_transactions": raw}, NO_IDENTITY, KEY, DAY, SOURCES)
    return raw, result, result.accounting.row(0, named=True)


@pytest.mark.parametrize(
    ("data", "fmt", "records"),
    [
        (b"", "csv", 0),
        (b"a,b\n", "csv", 0),
        (b"\xef\xbb\xbfa,b\r\n1,2\r\n\r\n   \r\n3,4", "csv", 2),  # BOM, CRLF, blanks, no final
        (b"\n\na,b\n1,2\n", "csv", 1),  # the header is the first non-blank line
        (b'a,b\n"x\ny",2\n', "csv", 2),  # lines, not records: a quoted field spans two
        (b'{"a":1}\n\n{"a":2}\n{"a', "jsonl", 3),
        (b"\xff\xfe{\x00\n\x00", "jsonl", 2),  # UTF-16: still counted by line breaks
        (b"a,b\r1,2\r\r3,4\r", "csv", 2),  # lines ending in CR alone (classic Mac)
        (b'{"a":1}\r{"a":2}', "jsonl", 2),
        (b'a,b\r\n"x\ry",2\r\n', "csv", 1),  # a lone CR in a CRLF file ends no line
        (b"\xef\xbb\xbfsep=,\r\na,b\r\n1,2\r\n", "csv", 1),  # Excel's delimiter line
        (b"\nsep=\t\na\tb\n1\t2\n3\t4", "csv", 2),
        (b"sep=,\n", "csv", 0),
    ],
)
def test_records_are_counted_from_the_bytes(data: bytes, fmt: str, records: int) -> None:
    assert physical_records(data, fmt) == records  # type: ignore[arg-type]


def test_parquet_records_come_from_the_footer() -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(7))}), buffer)
    assert physical_records(buffer.getvalue(), "parquet") == 7


def test_a_stray_quote_costs_one_line_not_the_rest_of_the_file() -> None:
    lines = POS.splitlines(keepends=True)
    lines[5] = lines[5].replace(b"SKU-", b'"SKU-')  # data row 5: a quote that never closes
    raw, result, counts = clean_pos(b"".join(lines))
    assert counts["lines_in_file"] == counts["lines_parsed"] == 20
    assert counts["rows_in"] == 20
    assert counts["rows_cleaned"] == 19 and counts["rows_quarantined"] == 1
    quarantined = result.quarantine.row(0, named=True)
    assert quarantined["source_row"] == 5
    assert quarantined["reasons"] == (
        "record: unbalanced quote in field 5 (sku): it is not closed on this line, so the "
        "line is quarantined and the lines after it are read on their own"
    )
    assert accounting_result("order_lines", result.accounting).passed


def test_two_stray_quotes_that_pair_up_do_not_swallow_the_rows_between() -> None:
    lines = POS.splitlines(keepends=True)
    lines[3] = lines[3].replace(b",card", b',"card')  # opens in the last field ...
    lines[9] = lines[9].replace(b"T0009", b'"T0009')  # ... and one opening a later row
    raw, result, counts = clean_pos(b"".join(lines))
    assert counts["lines_in_file"] == counts["lines_parsed"] == 20
    assert result.quarantine.get_column("source_row").to_list() == [3, 9]
    assert counts["rows_cleaned"] == 18


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        # quotes inside an unquoted field are characters; the comma between them splits it
        ((b",card", b',card 12" PLATE, 6" BOWL'), "CSV row has 9 fields, header has 8"),
        # a quoted field with text after its closing quote: neither reader takes it whole
        ((b"T0007", b'"T0007"x'), "unreadable CSV"),
    ],
)
def test_quotes_inside_a_field_cost_that_line_only(edit: tuple[bytes, bytes], reason: str) -> None:
    lines = POS.splitlines(keepends=True)
    lines[7] = lines[7].replace(*edit)  # data row 7
    raw, result, counts = clean_pos(b"".join(lines))
    assert counts["lines_in_file"] == counts["lines_parsed"] == 20
    assert counts["rows_cleaned"] == 19 and counts["rows_quarantined"] == 1
    quarantined = result.quarantine.row(0, named=True)
    assert quarantined["source_row"] == 7
    assert quarantined["reasons"].startswith(f"record: {reason}")


def test_quotes_inside_a_semicolon_field_cost_that_line_only() -> None:
    spec = parse_sources(
        """
version: 1
currency_rates_to_eur: {EUR: 1.0}
sources:
  de:
    contract: order_lines
    channel: de
    format: csv
    delimiter: ";"
    landing: de/{date}.csv
    ignore: [Text]
    columns:
      order_id:    {from: Beleg, type: string}
      line_number: {from: Pos, type: int}
      ordered_at:  {from: Datum, type: timestamp, timestamp_format: "%d.%m.%Y %H:%M"}
      sku:         {from: Artikel, type: string}
      quantity:    {from: Menge, type: int}
      unit_price:  {from: Preis, type: float, decimal: ","}
      currency:    {constant: EUR, type: string}
"""
    )["de"]
    data = (
        b"Beleg;Pos;Datum;Artikel;Menge;Preis;Text\n"
        b'A1;1;05.01.2026 10:00;X;1;1,50;Teller 12" rund; 6" tief\n'
        b"A1;2;05.01.2026 10:00;Y;2;2,50;Schale\n"
    )
    raw = parse_landing(data, spec, "de/2026-01-05.csv").frame
    assert raw.get_column("_source_row").to_list() == [1, 2]
    assert raw.get_column("_parse_error").to_list() == [
        "CSV row has 8 fields, header has 7",
        None,
    ]


def test_a_quoted_field_over_two_lines_is_one_record_of_two_lines() -> None:
    header = (
        b"ticket_id,opened_at,customer_email,customer_phone,category,contact_channel,status,"
        b"satisfaction\n"
    )
    data = (
        header
        + b'K1,2026-01-05 09:00:00,,,delivery,phone,"closed\nby phone",4\n'
        + b"K2,2026-01-05 10:00:00,,,billing,email,open,\n"
    )
    raw = parse_landing(data, SOURCES["crm_tickets"], "crm_tickets/x.csv").frame
    assert raw.select("_source_row", "_source_lines", "status").rows() == [
        (1, 2, "closed\nby phone"),
        (3, 1, "open"),
    ]
    result = clean_interactions_day({"crm_tickets": raw}, NO_IDENTITY, KEY, DAY, SOURCES)
    counts = result.accounting.row(0, named=True)
    assert counts["lines_in_file"] == counts["lines_parsed"] == 3
    assert counts["rows_cleaned"] == 2


@pytest.mark.parametrize(
    ("name", "data", "cut"),
    [
        ("pos_transactions", POS, True),
        ("pos_transactions", POS.rstrip(b"\n"), False),  # no final line break, complete
        ("web_orders", b'{"order_id":"W1","items":[]}\n{"order_id":"W2","ite', True),
        ("web_orders", b'{"order_id":"W1","items":[]}\n', False),
    ],
)
def test_a_file_cut_mid_record_is_flagged_in_raw(name: str, data: bytes, cut: bool) -> None:
    if name == "pos_transactions" and cut:
        data = data[: data.rindex(b"SKU-") + 3]  # cut inside the last row
    raw = parse_landing(data, SOURCES[name], f"{name}/x").frame
    assert raw.get_column("_file_ends_mid_record").unique().to_list() == [cut]
    assert ends_mid_line(data) == (not data.endswith(b"\n"))


def test_a_csv_whose_lines_end_in_cr_alone_reads_as_its_lf_twin() -> None:
    raw, result, counts = clean_pos(POS.replace(b"\n", b"\r"))
    twin, twin_result, twin_counts = clean_pos(POS)
    assert raw.drop("_file_records").equals(twin.drop("_file_records"))
    assert counts == twin_counts and counts["lines_in_file"] == counts["lines_parsed"] == 20
    assert ends_mid_line(POS.replace(b"\n", b"\r")) is False
    assert ends_mid_line(POS.rstrip(b"\n").replace(b"\n", b"\r")) is True


def test_an_excel_sep_line_is_skipped_and_must_name_the_declared_delimiter() -> None:
    # Excel writes `sep=,` above the header when asked to keep the delimiter with the file
    raw, result, counts = clean_pos(b"sep=,\r\n" + POS.replace(b"\n", b"\r\n"))
    plain, plain_result, plain_counts = clean_pos(POS)
    assert raw.equals(plain)
    assert counts == plain_counts and counts["rows_cleaned"] == 20
    message = (
        "pos_transactions/x.csv: line 1 is Excel's 'sep=;': the file is delimited by ';', "
        "the source declares delimiter ','"
    )
    with pytest.raises(LandingFormatError, match=message):
        clean_pos(b"sep=;\n" + POS.replace(b",", b";"))


def test_a_delimiter_ending_every_line_is_no_column() -> None:
    # SAP and spreadsheet exports end every line with the delimiter, the header too: the
    # file was refused as 'CSV header has an empty column name'
    trailing = b"".join(line + b"," + b"\n" for line in POS.splitlines())
    raw, result, counts = clean_pos(trailing)
    plain, _, plain_counts = clean_pos(POS)
    assert raw.equals(plain) and counts == plain_counts and counts["rows_cleaned"] == 20
    # a line without it is the same row; a value after the last column is one field too many
    lines = trailing.splitlines()
    mixed = b"\n".join([*lines[:3], lines[3].rstrip(b","), lines[4] + b"extra", *lines[5:]])
    raw, result, counts = clean_pos(mixed + b"\n")
    assert counts["rows_cleaned"] == 19 and counts["rows_quarantined"] == 1
    assert result.quarantine.get_column("reasons").to_list() == [
        "record: CSV row has 9 fields, header has 8"
    ]


def test_an_unreadable_csv_header_names_the_file() -> None:
    # a lone CR inside the header of a file that has LF line ends: not a header at all
    with pytest.raises(LandingFormatError, match="pos_transactions/x.csv: the CSV header"):
        parse_landing(b"txn_id,\rstore_code\nT1,S01\n", SOURCES["pos_transactions"],
                      "pos_transactions/x.csv")  # fmt: skip


def test_rows_add_up_fails_when_lines_are_lost_or_not_counted() -> None:
    def accounting(lines_in_file: int | None, lines_parsed: int | None) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "channel": "pos_transactions", "partition_date": DAY, "rows_in": 2,
                    "rows_cleaned": 2, "rows_quarantined": 0, "duplicates_removed": 0,
                    "lines_in_file": lines_in_file, "lines_parsed": lines_parsed,
                }
            ],
            schema=ACCOUNTING_SCHEMA,
        )  # fmt: skip

    assert accounting_result("order_lines", accounting(2, 2)).passed
    lost = accounting_result("order_lines", accounting(5, 2))
    assert not lost.passed
    assert lost.description is not None
    assert "pos_transactions 2026-01-05: 5 lines in the file, 2 read" in lost.description
    old = accounting_result("order_lines", accounting(None, None))
    assert not old.passed and "re-materialise raw" in (old.description or "")


def test_a_stray_quote_in_every_row_costs_each_row_its_own_line() -> None:
    # each quote closes the one opened on the line before: no row may swallow another
    rows = [pos_row(i).replace(b",S01,", b',"S01,') for i in range(1, 301)]
    raw, result, counts = clean_pos(POS_HEADER + b"".join(rows))
    assert counts["lines_in_file"] == counts["lines_parsed"] == 300
    assert counts["rows_quarantined"] == 300
    assert raw.get_column("_parse_error").str.starts_with("unbalanced quote in field 2").all()
