"""A source declares the codec of its bytes (`encoding:`): a Windows (cp1252) export reads
as it was written, line for line; without it, its accented lines are quarantined (found by
the 2026-12-07 probe: a Latin-1 exporter could not be onboarded)."""

from __future__ import annotations

import datetime as dt

import pytest

from aiwf_assets.cleaning.transforms import clean_source
from aiwf_assets.ingest.landing import spec_fingerprint
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import SourceSpecError, parse_sources

DAY = dt.date(2026, 3, 2)
SOURCES = """
version: 1
currency_rates_to_eur: {EUR: 1, GBP: 1.17}
sources:
  uk:
    contract: order_lines
    channel: uk
    format: csv
    landing: uk/{date}.csv{encoding}
    ignore: [Description]
    columns:
      order_id:    {from: Invoice, type: string}
      line_number: {sequence: order_id, type: int}
      ordered_at:  {from: InvoiceDate, type: timestamp, timestamp_format: iso8601}
      sku:         {from: StockCode, type: string, pattern: "[0-9]{5}"}
      quantity:    {from: Quantity, type: int}
      unit_price:  {from: Price, type: float}
      currency:    {constant: GBP, type: string}
"""
# the characters cp1252 writes as É 0xc9, £ 0xa3, ç 0xe7, € 0x80
TEXT = (
    "Invoice,InvoiceDate,StockCode,Description,Quantity,Price\r\n"
    "É1001,2026-03-02T09:00:00Z,10001,CRÈME BRÛLÉE SET £5,2,3.5\r\n"
    "É1001,2026-03-02T09:00:00Z,10002,façade mug,1,4.25\r\n"
    "1002,2026-03-02T10:30:00Z,10003,gift card 10€,x,10\r\n"
    "1003,2026-03-02T11:00:00Z,10004,plain,3,1\r\n"
)


def _spec(encoding: str | None):  # noqa: ANN202 - a SourceSpec
    line = f"\n    encoding: {encoding}" if encoding is not None else ""
    return parse_sources(SOURCES.replace("{encoding}", line), origin="test.yaml")["uk"]


def _parse_and_clean(data: bytes, encoding: str | None):  # noqa: ANN202 - a SourceOutcome
    raw = parse_landing(data, _spec(encoding), "uk/2026-03-02.csv").frame
    return clean_source(
        raw, _spec(encoding), b"k", partition_date=DAY, currency_rates={"EUR": 1, "GBP": 1.17}
    )


def test_a_cp1252_export_reads_as_written_line_for_line() -> None:
    out = _parse_and_clean(TEXT.encode("cp1252"), "cp1252")
    accounting = out.accounting.row(0, named=True)
    assert (accounting["rows_in"], accounting["rows_cleaned"], accounting["rows_quarantined"]) == (
        4, 3, 1
    )  # fmt: skip
    assert accounting["lines_in_file"] == accounting["lines_parsed"] == 4
    assert sorted(out.valid["order_id"].unique()) == ["1003", "É1001"]
    # the bad quantity is named on its own line, not on a shifted one
    assert out.quarantine.select("source_row", "reasons").rows() == [
        (3, "quantity: not an integer ('x')")
    ]


def test_without_the_encoding_the_accented_lines_are_quarantined() -> None:
    out = _parse_and_clean(TEXT.encode("cp1252"), None)
    reasons = dict(out.quarantine.select("source_row", "reasons").iter_rows())
    assert reasons[1].startswith("record: not valid UTF-8 (byte 0xc9")
    assert reasons[3].startswith("record: not valid UTF-8 (byte 0x80")
    assert out.accounting["rows_cleaned"].to_list() == [1]


def test_a_byte_the_codec_does_not_define_quarantines_only_its_line() -> None:
    data = TEXT.encode("cp1252").replace(b"plain", b"pl\x81in")  # 0x81: undefined in cp1252
    out = _parse_and_clean(data, "cp1252")
    reasons = dict(out.quarantine.select("source_row", "reasons").iter_rows())
    assert reasons[4].startswith("record: not valid UTF-8 (byte 0x81")
    assert out.accounting["rows_cleaned"].to_list() == [2]


def test_a_utf16_export_with_its_byte_order_mark() -> None:
    out = _parse_and_clean(TEXT.encode("utf-16"), "utf-16")
    assert out.accounting["rows_cleaned"].to_list() == [3]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cp-1252x", "test.yaml: sources.uk.encoding: 'cp-1252x' is not a text encoding Python"),
        ("base64", "sources.uk.encoding: 'base64' is not a text encoding"),
        ("1252", "sources.uk.encoding: 1252 is not a text encoding"),
    ],
)
def test_an_unknown_encoding_is_refused_by_name(value: str, message: str) -> None:
    with pytest.raises(SourceSpecError) as err:
        _spec(value)
    assert message in str(err.value)


def test_parquet_has_no_encoding() -> None:
    text = (
        SOURCES.replace("format: csv", "format: parquet")
        .replace("{encoding}", "\n    encoding: cp1252")
        .replace(".csv", ".parquet")
    )
    with pytest.raises(SourceSpecError, match="sources.uk.encoding: only csv and jsonl"):
        parse_sources(text, origin="test.yaml")


def test_the_default_written_out_keeps_the_fingerprint_and_a_codec_changes_it() -> None:
    default = spec_fingerprint(_spec(None))
    assert _spec("UTF8").encoding == "utf-8"
    assert spec_fingerprint(_spec("UTF8")) == spec_fingerprint(_spec("utf-8")) == default
    assert _spec("latin-1").encoding == "iso8859-1"  # one name per codec
    assert spec_fingerprint(_spec("cp1252")) != default
