"""Dated exchange rates: a rate file declared in the sources, each order line converted at
its currency's rate for its order day, the constant table as the reported fallback."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from aiwf_assets.cleaning import clean_orders_day, clean_reference_exchange_rates
from aiwf_assets.cleaning.assets import TABLE_KEYS, rejected_rows
from aiwf_assets.cleaning.clean import EXCHANGE_RATES_SCHEMA
from aiwf_assets.cleaning.contracts import validate_table
from aiwf_assets.cleaning.transforms import IDENTITY_SCHEMA, content_version
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import parse_sources

KEY = b"test-pii-key"
DAY = dt.date(2026, 3, 3)  # the delivery day of a file spanning three days
SOURCES = parse_sources("""
version: 1
currency_rates_to_eur: {EUR: 1.0, GBP: 1.17, USD: 0.92}
sources:
  shop_orders:
    contract: order_lines
    channel: shop
    format: csv
    landing: shop/{date}.csv
    columns:
      order_id:    {from: order, type: string}
      line_number: {from: line, type: int}
      ordered_at:  {from: at, type: timestamp, timestamp_format: iso8601}
      sku:         {from: sku, type: string}
      quantity:    {from: qty, type: int}
      unit_price:  {from: price, type: float}
      currency:    {from: ccy, type: string}
  fx:
    contract: exchange_rates
    format: csv
    landing: reference/fx.csv
    columns:
      date:        {from: date, type: date, timestamp_format: "%Y-%m-%d"}
      currency:    {from: currency, type: string, normalise: [upper]}
      rate_to_eur: {from: rate_to_eur, type: float}
""")
ORDERS = (
    b"order,line,at,sku,qty,price,ccy\n"
    b"A1,1,2026-03-01T10:00:00Z,P1,3,2.55,GBP\n"
    b"A1,2,2026-03-01T10:00:00Z,P2,1,19.99,GBP\n"
    b"A2,1,2026-03-02T23:30:00Z,P1,2,2.55,GBP\n"
    b"A3,1,2026-03-03T08:00:00Z,P3,7,0.85,GBP\n"  # no dated GBP rate on the 3rd
    b"A4,1,2026-03-03T09:00:00Z,P3,1,5.00,USD\n"  # no dated USD rate at all
    b"A5,1,2026-03-03T09:30:00Z,P4,1,10.00,EUR\n"
)
RATES = (
    b"date,currency,rate_to_eur\n"
    b"2026-03-01,GBP,1.1512\n"
    b"2026-03-02,gbp,1.1498\n"
    b"2026-03-02,EUR,1\n"
)


def _rates(csv: bytes = RATES) -> pl.DataFrame:
    raw = parse_landing(csv, SOURCES["fx"], "reference/fx.csv").frame
    return clean_reference_exchange_rates(raw, SOURCES["fx"]).tables["exchange_rates"]


def _clean(rates: pl.DataFrame | None):
    raw = parse_landing(ORDERS, SOURCES["shop_orders"], f"shop/{DAY}.csv").frame
    return clean_orders_day(
        {"shop_orders": raw}, IDENTITY_SCHEMA.to_frame(), KEY, DAY, SOURCES, rates
    )


def test_each_line_converts_at_its_days_rate_else_the_constant_one() -> None:
    result = _clean(_rates())
    lines = result.tables["order_lines"]
    rate = (pl.col("line_amount") / pl.col("line_amount_source")).alias("rate")
    got = {f"{o}/{n}": r for o, n, r in lines.select("order_id", "line_number", rate).rows()}
    assert got == pytest.approx({
        "shop:A1/1": 1.1512, "shop:A1/2": 1.1512, "shop:A2/1": 1.1498,
        "shop:A3/1": 1.17, "shop:A4/1": 0.92, "shop:A5/1": 1.0,
    })
    # the unit price in EUR follows the same rate: the contract's amount check holds
    assert validate_table("order_lines", lines, sources=SOURCES) == []
    # totals reconcile to the cent with the source at the rate each line used
    expected = (
        (3 * Decimal("2.55") + Decimal("19.99")) * Decimal("1.1512")
        + 2 * Decimal("2.55") * Decimal("1.1498")
        + 7 * Decimal("0.85") * Decimal("1.17")
        + Decimal("5.00") * Decimal("0.92")
        + Decimal("10.00")
    )
    total = Decimal(str(lines.select(pl.col("line_amount").sum()).item()))
    assert abs(total - expected) < Decimal("0.000001")
    # the fallback is reported per day and currency (EUR never falls back)
    assert result.rate_fallbacks.rows() == [
        (dt.date(2026, 3, 3), "GBP", 1, 1.17),
        (dt.date(2026, 3, 3), "USD", 1, 0.92),
    ]


def test_without_a_rate_file_the_constant_rates_apply_and_nothing_is_reported() -> None:
    result = _clean(None)
    amounts = result.tables["order_lines"].get_column("line_amount").to_list()
    assert amounts == pytest.approx([
        7.65 * 1.17, 19.99 * 1.17, 5.1 * 1.17, 5.95 * 1.17, 5.0 * 0.92, 10.0,
    ])
    assert result.rate_fallbacks is None


def test_a_changed_rate_changes_only_that_days_content_version() -> None:
    """Cleaned versions are content-based: a corrected rate for 2026-03-02 changes the
    version of a delivery holding that day's lines, so what reads it re-runs; a delivery
    without lines of that day keeps its version."""
    before = _clean(_rates())
    corrected = _clean(_rates(RATES.replace(b"1.1498", b"1.1501")))

    def version(result, day: dt.date | None = None) -> str:
        lines = result.tables["order_lines"]
        if day is not None:
            lines = lines.filter(pl.col("order_date") == day)
        return content_version(lines, TABLE_KEYS["order_lines"], ignore=["source_file"])

    assert version(before) != version(corrected)
    assert version(before, dt.date(2026, 3, 2)) != version(corrected, dt.date(2026, 3, 2))
    assert version(before, dt.date(2026, 3, 1)) == version(corrected, dt.date(2026, 3, 1))


def test_a_rate_file_with_bad_rows_names_file_row_line_and_column() -> None:
    bad = (
        b"date,currency,rate_to_eur\n"
        b"2026-03-01,GBP,1.1512\n"
        b"2026-03-02,GBP,-1.1\n"
        b"2026-03-32,GBP,1.15\n"
        b"2026-03-02,EUR,1.2\n"
        b"2026-03-02,POUND,1.15\n"
        b"2026-03-01,GBP,1.16\n"  # a second, different rate for GBP on the 1st
    )
    raw = parse_landing(bad, SOURCES["fx"], "reference/fx.csv").frame
    result = clean_reference_exchange_rates(raw, SOURCES["fx"])
    assert result.tables["exchange_rates"].is_empty()
    findings = rejected_rows(result.quarantine)
    assert findings[0] == "reference/fx.csv row 1 (line 2): " + findings[0].split(": ", 1)[1]
    assert "reference/fx.csv row 2 (line 3): rate_to_eur: must be > 0 (-1.1)" in findings
    assert any(f.startswith("reference/fx.csv row 3 (line 4): date:") for f in findings)
    assert "reference/fx.csv row 4 (line 5): rate_to_eur: must be 1 for EUR (1.2)" in findings
    assert any(
        f.startswith("reference/fx.csv row 5 (line 6): currency: not a three-letter ISO 4217")
        for f in findings
    )
    assert len(findings) == 6  # both GBP rates of the 1st: which one is right is unknown


def test_the_cleaned_rates_contract() -> None:
    rates = _rates()
    assert rates.schema == EXCHANGE_RATES_SCHEMA
    assert rates.rows() == [
        (dt.date(2026, 3, 1), "GBP", 1.1512),
        (dt.date(2026, 3, 2), "EUR", 1.0),
        (dt.date(2026, 3, 2), "GBP", 1.1498),
    ]
    assert validate_table("exchange_rates", rates, sources=SOURCES) == []
    twice = pl.concat([rates, rates.head(1)])
    assert validate_table("exchange_rates", twice, sources=SOURCES)


def test_a_bad_rate_file_is_held_back_whole_through_the_asset(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exchange_rates asset publishes a good file; a file with one bad row fails the run
    naming file, row, line and column, and the published rates stay as they were."""
    import dagster as dg

    import aiwf_assets.cleaning.assets as cleaning_assets
    from aiwf_assets.io.warehouse import DuckDBWarehouse
    from aiwf_assets.resources import build_resources
    from aiwf_assets.settings import get_settings, reset_settings_cache

    monkeypatch.setenv("AIWF_ENV", "local")
    monkeypatch.setenv("AIWF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIWF_SOURCES", raising=False)
    reset_settings_cache()
    try:
        settings = get_settings()
        resources = build_resources(settings)
        asset = cleaning_assets.build_single_reference(
            "exchange_rates", clean_reference_exchange_rates, SOURCES,
            cleaning_assets.guard_thresholds(settings), source="fx", strict=True,
        )
        assert asset.specs_by_key[dg.AssetKey("exchange_rates")].deps[0].asset_key == (
            dg.AssetKey("raw_fx")
        )
        store = resources["storage"].store()

        def publish(csv: bytes) -> dg.ExecuteInProcessResult:
            store.write("raw_fx", parse_landing(csv, SOURCES["fx"], "reference/fx.csv").frame)
            return dg.materialize([asset], resources=resources, raise_on_error=False)

        assert publish(RATES).success
        wh = DuckDBWarehouse(settings.warehouse_path)
        published = wh.query("SELECT * FROM cleaned.exchange_rates ORDER BY 1, 2")
        assert published.height == 3
        held = publish(RATES + b"2026-03-03,GBP,-1.1\n")
        assert not held.success
        failure = next(e for e in held.all_events if e.is_step_failure)
        text = failure.step_failure_data.user_failure_data.description
        assert "reference file fx held back" in text
        assert "reference/fx.csv row 4 (line 5): rate_to_eur: must be > 0 (-1.1)" in text
        assert wh.query("SELECT * FROM cleaned.exchange_rates ORDER BY 1, 2").equals(published)
    finally:
        reset_settings_cache()
