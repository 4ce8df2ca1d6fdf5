"""Landing bytes -> raw frames: every channel, malformed records, drift, empty files."""

from __future__ import annotations

import datetime as dt
import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiwf_assets.ingest.parse import LandingFormatError, parse_landing, raw_schema
from aiwf_assets.ingest.spec import SourcesConfig, load_sources


@pytest.fixture(scope="module")
def sources() -> SourcesConfig:
    return load_sources()


def jsonl(*records: dict | str) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


WEB_ORDER = {
    "order_id": "W00001234",
    "created_at": "2026-01-05T14:03:22Z",
    "email": "Jane.Doe@example.com",
    "currency": "GBP",
    "promo_code": "SPRING10",
    "shipping": 4.99,
    "items": [
        {"sku": "SKU-00012", "qty": 2, "unit_price": 19.99},
        {"sku": "SKU-00013", "qty": 1, "unit_price": 4.10},
    ],
}
APP_LINE = {
    "orderRef": "A00004567",
    "lineNo": 1,
    "ts": 1767625402,
    "loyaltyId": "l0012345 ",
    "productCode": "sku-12",
    "quantity": 1,
    "price": 19.99,
    "currencyCode": "EUR",
    "promo": True,
}
POS_CSV = (
    b"txn_id,store_code,local_time,loyalty_card,sku,qty,unit_price,payment\n"
    b"T0001,S01,05/01/2026 10:00:00,L0012345,SKU-00012,1,19.99,card\n"
    b'T0001,S01,05/01/2026 10:00:00,L0012345,SKU-00013,2,"5.00",card\n'
    b"T0002,S02,05/01/2026 11:30:00,,SKU-00012,1,19.99,cash\n"
)
TICKETS_CSV = (
    b"ticket_id,opened_at,customer_email,customer_phone,category,contact_channel,status,"
    b"satisfaction\n"
    b"K1,2026-01-05 09:00:00,jane.doe@example.com,,delivery,email,closed,4\n"
    b"K2,2026-01-05 10:00:00,,+49 170 1234567,billing,phone,open,\n"
)


def sessions_parquet(**overrides: list) -> bytes:
    columns = {
        "session_id": pa.array(["S1", "S2"]),
        "started_at": pa.array(
            [dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC), dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)],
            pa.timestamp("us", "UTC"),
        ),
        "email": pa.array(["Jane.Doe@example.com", None]),
        "device": pa.array(["mobile", "desktop"]),
        "pages_viewed": pa.array([3, 1], pa.int32()),
        "product_views": pa.array([2, 0], pa.int32()),
        "added_to_cart": pa.array([1, 0], pa.int32()),
        "duration_s": pa.array([120, 5], pa.int32()),
    }
    columns.update({k: pa.array(v) for k, v in overrides.items()})
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- channels


def test_web_orders_explode_items_one_row_per_line(sources: SourcesConfig) -> None:
    result = parse_landing(jsonl(WEB_ORDER), sources["web_orders"], "web_orders/2026-01-05.jsonl")
    frame = result.frame
    assert frame.schema == raw_schema(sources["web_orders"])
    assert frame.select("order_id", "sku", "quantity", "unit_price", "line_number").rows() == [
        ("W00001234", "SKU-00012", "2", "19.99", "1"),
        ("W00001234", "SKU-00013", "1", "4.1", "2"),
    ]
    assert frame.get_column("_source_row").to_list() == [1, 1]
    assert frame.get_column("_source_file").unique().to_list() == ["web_orders/2026-01-05.jsonl"]
    assert frame.get_column("_parse_error").is_null().all()
    assert result.extra_columns == () and result.missing_columns == ()  # shipping is ignored


def test_app_orders_keep_values_as_text(sources: SourcesConfig) -> None:
    line = {**APP_LINE, "quantity": "two"}
    frame = parse_landing(jsonl(APP_LINE, line), sources["app_orders"], "a.jsonl").frame
    assert frame.get_column("quantity").to_list() == ["1", "two"]
    assert frame.get_column("loyalty_id").to_list() == ["l0012345 ", "l0012345 "]  # lossless
    assert frame.get_column("ordered_at").to_list() == ["1767625402"] * 2
    assert frame.get_column("promo_flag").to_list() == ["true"] * 2


def test_pos_csv_maps_columns_and_constant_currency(sources: SourcesConfig) -> None:
    frame = parse_landing(POS_CSV, sources["pos_transactions"], "p.csv").frame
    assert frame.get_column("currency").to_list() == ["EUR"] * 3
    assert frame.get_column("loyalty_id").to_list() == ["L0012345", "L0012345", ""]
    assert frame.get_column("unit_price").to_list() == ["19.99", "5.00", "19.99"]
    assert frame.get_column("_source_row").to_list() == [1, 2, 3]
    assert frame.get_column("line_number").to_list() == ["1", "2", "1"]


def test_pos_line_numbers_come_from_content_not_position(sources: SourcesConfig) -> None:
    header, a, b, c = POS_CSV.decode().splitlines()

    def numbers(*rows: str) -> list[tuple[str | None, str | None]]:
        data = "\n".join([header, *rows]).encode()
        frame = parse_landing(data, sources["pos_transactions"], "p.csv").frame
        return frame.select("order_id", "line_number").rows()

    # T0001's lines are numbered by content (SKU-00012 before SKU-00013) wherever they
    # stand; the same item scanned twice is two lines; an unreadable row gets no number
    assert numbers(b, c, a, "T0002,S02,bad row", a) == [
        ("T0001", "3"),
        ("T0002", "1"),
        ("T0001", "1"),
        (None, None),
        ("T0001", "2"),
    ]
    # every line of T0001 twice: the transaction was delivered twice, the copy repeats
    # the numbers (and cleaning removes it as a duplicate)
    assert numbers(a, b, c, b, a) == [
        ("T0001", "1"),
        ("T0001", "2"),
        ("T0002", "1"),
        ("T0001", "2"),
        ("T0001", "1"),
    ]


def test_tickets_csv(sources: SourcesConfig) -> None:
    frame = parse_landing(TICKETS_CSV, sources["crm_tickets"], "t.csv").frame
    assert frame.select("ticket_id", "customer_phone", "satisfaction").rows() == [
        ("K1", "", "4"),
        ("K2", "+49 170 1234567", ""),
    ]


def test_sessions_parquet_typed_values_become_text(sources: SourcesConfig) -> None:
    frame = parse_landing(sessions_parquet(), sources["web_sessions"], "s.parquet").frame
    assert frame.row(0, named=True) | {"_source_file": None} == {
        "session_id": "S1",
        "started_at": "2026-01-05T08:00:00Z",
        "customer_email": "Jane.Doe@example.com",
        "device": "mobile",
        "pages_viewed": "3",
        "product_views": "2",
        "added_to_cart": "1",
        "duration_s": "120",
        "_source_file": None,
        "_source_row": 1,
        "_source_lines": 1,
        "_parse_error": None,
        "_raw_record": None,
        "_file_records": 2,
        "_file_ends_mid_record": False,
    }


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (
            "customers",
            b"crm_id,first_name,last_name,email,phone,loyalty_id,signup_date,country,"
            b"birth_year\nC1,Jane,Doe,jane@example.com,,L0012345,2024-01-01,DE,1980\n",
        ),
        (
            "products",
            b"sku,name,category,subcategory,list_price,launch_date\n"
            b"SKU-00012,Mug,home,kitchen,9.90,2024-01-01\n",
        ),
        ("stores", b"store_code,name,city,region,opened_date\nS01,Mitte,Berlin,BE,2020-05-01\n"),
    ],
)
def test_reference_files_parse(sources: SourcesConfig, name: str, data: bytes) -> None:
    result = parse_landing(data, sources[name], f"reference/{name}.csv")
    assert result.frame.height == 1
    assert result.frame.get_column("_parse_error").is_null().all()
    assert result.extra_columns == () and result.missing_columns == ()


# --------------------------------------------------------------------------- bad records


def test_malformed_json_lines_are_named_and_kept(sources: SourcesConfig) -> None:
    data = jsonl(
        WEB_ORDER,
        '{"order_id": "W2", "created_at',
        "[1, 2]",
        {**WEB_ORDER, "order_id": "W3", "items": "not a list"},
        {**WEB_ORDER, "order_id": "W4", "items": []},
        {**WEB_ORDER, "order_id": "W5"},
    )
    frame = parse_landing(data, sources["web_orders"], "w.jsonl").frame
    errors = dict(
        frame.filter(pl.col("_parse_error").is_not_null())
        .select("_source_row", "_parse_error")
        .iter_rows()
    )
    assert errors[2].startswith("malformed JSON at column")
    assert errors[3] == "not a JSON object but a list"
    assert errors[4] == "'items' is not a list of objects"
    assert errors[5] == "no 'items' entries (missing or empty list)"
    raw = dict(frame.select("_source_row", "_raw_record").iter_rows())
    assert raw[2] == '{"order_id": "W2", "created_at'
    assert raw[5] is None  # readable, just without lines: its columns are kept instead
    assert frame.filter(pl.col("_source_row") == 5).get_column("order_id").item() == "W4"
    # the good records around them are parsed normally
    assert frame.filter(pl.col("_parse_error").is_null()).get_column("order_id").to_list() == [
        "W00001234",
        "W00001234",
        "W5",
        "W5",
    ]


def test_many_json_lines_only_bad_ones_fall_back(sources: SourcesConfig) -> None:
    records: list[dict | str] = [{**APP_LINE, "lineNo": i} for i in range(1, 5001)]
    records[4321] = "{broken"
    frame = parse_landing(jsonl(*records), sources["app_orders"], "a.jsonl").frame
    bad = frame.filter(pl.col("_parse_error").is_not_null())
    assert bad.get_column("_source_row").to_list() == [4322]
    assert frame.height == 5000


def test_bad_json_lines_are_found_wherever_they_are(sources: SourcesConfig) -> None:
    # at block and leaf edges, adjacent, of every kind: each named, every good line kept
    records: list[dict | str] = [{**WEB_ORDER, "order_id": f"W{i}"} for i in range(1, 5001)]
    bad = {
        1: "{broken",
        32: "[1]",
        33: json.dumps({**WEB_ORDER, "items": "not a list"}),
        2048: "{",
        2049: json.dumps({**WEB_ORDER, "items": [1, 2]}),
        4322: '"text"',
        5000: "{]",
    }
    for line, text in bad.items():
        records[line - 1] = text
    frame = parse_landing(jsonl(*records), sources["web_orders"], "w.jsonl").frame
    errors = frame.filter(pl.col("_parse_error").is_not_null())
    assert errors.get_column("_source_row").to_list() == sorted(bad)
    assert errors.get_column("_raw_record").to_list() == [bad[line] for line in sorted(bad)]
    good = frame.filter(pl.col("_parse_error").is_null())
    assert good.get_column("_source_row").n_unique() == 5000 - len(bad)


def test_blank_lines_keep_json_line_numbers(sources: SourcesConfig) -> None:
    data = b"\n" + jsonl(APP_LINE) + b"\r\n" + jsonl("{oops")
    frame = parse_landing(data, sources["app_orders"], "a.jsonl").frame
    assert frame.get_column("_source_row").to_list() == [2, 4]
    assert frame.get_column("_parse_error").to_list()[1].startswith("malformed JSON at column")


def test_csv_rows_with_wrong_field_count(sources: SourcesConfig) -> None:
    data = (
        POS_CSV
        + b"T0003,S01,05/01/2026 12:00:00,,SKU-00012,1,19.99\n"
        + (b"T0004,S01,05/01/2026 12:00:00,,SKU-00012,1,19.99,cash,extra\n")
    )
    frame = parse_landing(data, sources["pos_transactions"], "p.csv").frame
    errors = frame.filter(pl.col("_parse_error").is_not_null())
    assert errors.select("_source_row", "_parse_error").rows() == [
        (4, "CSV row has 7 fields, header has 8"),
        (5, "CSV row has 9 fields, header has 8"),
    ]
    assert errors.get_column("_raw_record").to_list()[0].startswith("T0003,S01")
    assert errors.get_column("order_id").is_null().all()


def test_csv_quoted_delimiters_and_multiline_fields(sources: SourcesConfig) -> None:
    data = (
        POS_CSV
        + b'T0005,"S,01",05/01/2026 12:00:00,,"SKU\n00012",1,19.99,card\n'
        + (b"T0006,S01,05/01/2026 12:00:00,,SKU-00012,1,19.99,card\n")
    )
    frame = parse_landing(data, sources["pos_transactions"], "p.csv").frame
    assert frame.get_column("_parse_error").is_null().all()
    assert frame.select("store_code", "sku").rows()[3] == ("S,01", "SKU\n00012")
    # rows are numbered by the line they start on (line - 1)
    assert frame.get_column("_source_row").to_list() == [1, 2, 3, 4, 6]


def test_invalid_utf8_line_is_a_parse_error(sources: SourcesConfig) -> None:
    data = POS_CSV + b"T0007,S01,05/01/2026 12:00:00,,SKU-\xff,1,19.99,card\n"
    frame = parse_landing(data, sources["pos_transactions"], "p.csv").frame
    bad = frame.filter(pl.col("_parse_error").is_not_null())
    assert bad.select("_source_row", "_parse_error").row(0) == (
        4,
        "not valid UTF-8 (byte 0xff at column 36)",
    )
    assert frame.height == 4


def test_not_parquet_raises_naming_the_file(sources: SourcesConfig) -> None:
    with pytest.raises(LandingFormatError, match="web_sessions/2026-01-05.parquet"):
        parse_landing(
            b"PAR1 but not really", sources["web_sessions"], "web_sessions/2026-01-05.parquet"
        )


def test_duplicate_csv_header_raises(sources: SourcesConfig) -> None:
    with pytest.raises(LandingFormatError, match="t.csv: CSV header has duplicate column"):
        parse_landing(b"ticket_id,ticket_id\n1,2\n", sources["crm_tickets"], "t.csv")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("web_orders", b""),
        ("web_orders", b"\n\n"),
        ("pos_transactions", b""),
        ("pos_transactions", POS_CSV.split(b"\n")[0] + b"\n"),  # header only
        ("web_sessions", b""),
        ("web_sessions", None),  # a Parquet file with zero rows
    ],
)
def test_empty_file_gives_empty_frame_with_raw_schema(
    sources: SourcesConfig, name: str, data: bytes | None
) -> None:
    if data is None:
        data = sessions_parquet(
            **{k: [] for k in ("session_id", "email", "device")}
            | {
                "started_at": pa.array([], pa.timestamp("us", "UTC")),
                **{
                    k: pa.array([], pa.int32())
                    for k in ("pages_viewed", "product_views", "added_to_cart", "duration_s")
                },
            }
        )
    frame = parse_landing(data, sources[name], "f").frame
    assert frame.height == 0
    assert frame.schema == raw_schema(sources[name])


# --------------------------------------------------------------------------- drift


def test_schema_drift_alias_maps_and_extra_column_is_reported() -> None:
    from aiwf_assets.ingest.spec import parse_sources

    config = parse_sources(
        """
version: 1
currency_rates_to_eur: {EUR: 1}
sources:
  crm_tickets:
    contract: tickets
    format: csv
    landing: crm_tickets/{date}.csv
    columns:
      ticket_id: {from: ticket_id, type: string}
      opened_at: {from: opened_at, aliases: [created], type: timestamp,
                  timestamp_format: "%Y-%m-%d %H:%M:%S"}
      category:  {from: category, type: string}
"""
    )
    data = b"ticket_id,created,category,agent\nK1,2026-01-05 09:00:00,delivery,bob\n"
    result = parse_landing(data, config["crm_tickets"], "t.csv")
    assert result.frame.get_column("opened_at").to_list() == ["2026-01-05 09:00:00"]
    assert result.extra_columns == ("agent",)
    assert result.missing_columns == ()
    assert result.aliased_columns == (("opened_at", "created"),)


def test_an_empty_field_under_one_name_falls_back_to_its_alias() -> None:
    """A dump holding both `Customer Email` and the older `Email` column, each row filling
    one of them (found by the 2026-12-07 Shopify probe: the rows that filled only `Email`
    lost their customer, every check green). Per row the first name with a value wins;
    blank and `NULL` are no value; with none valued the first is kept as written."""
    from aiwf_assets.ingest.spec import parse_sources

    config = parse_sources(
        """
version: 1
currency_rates_to_eur: {EUR: 1}
sources:
  desk:
    contract: tickets
    format: csv
    landing: desk/{date}.csv
    columns:
      ticket_id:      {from: id, type: string}
      opened_at:      {from: at, type: timestamp, timestamp_format: iso8601}
      customer_email: {from: Customer Email, aliases: [Email], type: string}
      category:       {from: category, type: string}
"""
    )
    data = (
        b"id,at,Customer Email,Email,category\n"
        b"K1,2026-01-05T09:00:00Z,new@x.example,old@x.example,billing\n"
        b"K2,2026-01-05T09:00:00Z,,old@x.example,billing\n"
        b"K3,2026-01-05T09:00:00Z, NULL ,old@x.example,billing\n"
        b"K4,2026-01-05T09:00:00Z,,,billing\n"
    )
    result = parse_landing(data, config["desk"], "desk/2026-01-05.csv")
    assert result.frame.get_column("customer_email").to_list() == [
        "new@x.example", "old@x.example", "old@x.example", "",
    ]


def test_missing_column_is_reported_not_raised(sources: SourcesConfig) -> None:
    record = {k: v for k, v in APP_LINE.items() if k != "orderRef"} | {"orderReference": "A1"}
    result = parse_landing(jsonl(record), sources["app_orders"], "a.jsonl")
    assert result.missing_columns == ("order_id",)
    assert result.extra_columns == ("orderReference",)
    assert result.frame.get_column("order_id").to_list() == [None]


def test_nested_extra_fields_are_dotted(sources: SourcesConfig) -> None:
    order = {**WEB_ORDER, "items": [{**WEB_ORDER["items"][0], "gift_wrap": True}]}
    result = parse_landing(jsonl(order), sources["web_orders"], "w.jsonl")
    assert result.extra_columns == ("items.gift_wrap",)


def test_parquet_extra_column(sources: SourcesConfig) -> None:
    result = parse_landing(
        sessions_parquet(referrer=["google", None]), sources["web_sessions"], "s.parquet"
    )
    assert result.extra_columns == ("referrer",)


def test_a_landed_file_is_read_once_with_the_fingerprint_the_sensor_records(tmp_path) -> None:
    from aiwf_assets.ingest.landing import read_landed
    from aiwf_assets.resources import LandingResource

    (tmp_path / "web_orders").mkdir()
    (tmp_path / "web_orders" / "2026-01-05.jsonl").write_bytes(b'{"order_id": "o1"}\n')
    landing = LandingResource(root=str(tmp_path))
    data, fingerprint = read_landed(landing, "web_orders/2026-01-05.jsonl")
    assert data == b'{"order_id": "o1"}\n'
    assert fingerprint == landing.fingerprint("web_orders/2026-01-05.jsonl")
    assert read_landed(landing, "web_orders/2026-01-06.jsonl") is None
