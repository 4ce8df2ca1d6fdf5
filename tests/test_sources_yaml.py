"""sources.yaml: the packaged declarations, and errors that name the entry and key."""

from __future__ import annotations

import textwrap

import pytest

from aiwf_assets.ingest.spec import (
    CONTRACTS,
    DEFAULT_SOURCES_PATH,
    SourceSpecError,
    load_sources,
    parse_sources,
)


def test_packaged_sources_declare_every_channel() -> None:
    config = load_sources()
    contracts = {name: spec.contract.name for name, spec in config.sources.items()}
    assert contracts == {
        "web_orders": "order_lines",
        "app_orders": "order_lines",
        "pos_transactions": "order_lines",
        "crm_tickets": "tickets",
        "web_sessions": "sessions",
        "customers": "customers",
        "products": "products",
        "stores": "stores",
    }
    assert config.order_channels == ("app", "store", "web")
    assert config.currency_rates_to_eur == {"EUR": 1.0, "GBP": 1.17, "USD": 0.92}
    assert config["pos_transactions"].column("ordered_at").timezone == "Europe/Berlin"
    assert set(config.by_contract("tickets", "sessions")) == {"crm_tickets", "web_sessions"}


def test_packaged_raw_columns_match_the_data_contract() -> None:
    config = load_sources()
    assert config["web_orders"].raw_columns == (
        "order_id",
        "ordered_at",
        "customer_email",
        "currency",
        "promo_code",
        "sku",
        "quantity",
        "unit_price",
        "line_number",
    )
    assert config["app_orders"].raw_columns == (
        "order_id",
        "line_number",
        "ordered_at",
        "loyalty_id",
        "sku",
        "quantity",
        "unit_price",
        "currency",
        "promo_flag",
    )
    assert config["pos_transactions"].raw_columns == (
        "order_id",
        "store_code",
        "ordered_at",
        "loyalty_id",
        "sku",
        "quantity",
        "unit_price",
        "payment",
        "line_number",
        "currency",
    )


def test_landing_paths() -> None:
    config = load_sources()
    assert config["web_orders"].landing_path("2026-01-05") == "web_orders/2026-01-05.jsonl"
    assert config["customers"].landing_path() == "reference/customers.csv"
    with pytest.raises(ValueError, match="daily"):
        config["web_orders"].landing_path()


def test_unknown_source_names_the_declared_ones() -> None:
    with pytest.raises(KeyError, match="no source 'nope'; declared: app_orders"):
        load_sources()["nope"]


MINIMAL = """
version: 1
currency_rates_to_eur: {EUR: 1}
sources:
  shop:
    contract: order_lines
    channel: shop
    format: csv
    landing: shop/{date}.csv
    columns:
      order_id:    {from: id, type: string}
      line_number: {from: pos, type: int}
      ordered_at:  {from: at, type: timestamp, timestamp_format: iso8601}
      sku:         {from: sku, type: string, canonical: "SKU-%05d"}
      quantity:    {from: qty, type: int}
      unit_price:  {from: price, type: float}
      currency:    {constant: EUR, type: string}
"""


def test_minimal_yaml_is_valid() -> None:
    spec = parse_sources(MINIMAL)["shop"]
    assert spec.column("currency").constant == "EUR"
    assert spec.column("order_id").required  # contract-mandatory columns are required


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("    format: csv", "    format: xlsx"),
            "sources.shop.format: 'xlsx' is not one of jsonl, csv, parquet",
        ),
        (
            (
                "      quantity:    {from: qty, type: int}",
                "      quantity:    {from: qty, tpye: int}",
            ),
            "sources.shop.columns.quantity: unknown column key(s) tpye",
        ),
        (
            (
                "      quantity:    {from: qty, type: int}",
                "      quantity:    {from: qty, type: float}",
            ),
            "columns.quantity.type: contract order_lines has quantity as int, not float",
        ),
        (
            ("      quantity:    {from: qty, type: int}\n", ""),
            "sources.shop: contract order_lines needs column(s) quantity",
        ),
        (
            (
                '      sku:         {from: sku, type: string, canonical: "SKU-%05d"}',
                '      sku:         {from: sku, type: string, canonical: "SKU-%s"}',
            ),
            "sources.shop.columns.sku.canonical: a string column pattern",
        ),
        (
            ("timestamp_format: iso8601}", "timestamp_format: iso8601, timezone: Mars/Olympus}"),
            "sources.shop.columns.ordered_at.timezone: unknown IANA time zone 'Mars/Olympus'",
        ),
        (
            (
                "      order_id:    {from: id, type: string}",
                "      order_id:    {from: id, type: string}\n      colour: {from: c}",
            ),
            "sources.shop.columns.colour: not a column of contract order_lines",
        ),
        (("    channel: shop\n", ""), "sources.shop.channel: order sources need"),
        (
            ("    landing: shop/{date}.csv", "    landing: shop/today.csv"),
            "sources.shop.landing: contract order_lines must contain '{date}'",
        ),
        (
            (
                "      currency:    {constant: EUR, type: string}",
                "      currency:    {constant: EUR, from: cur, type: string}",
            ),
            "sources.shop.columns.currency: give exactly one of from, constant, sequence",
        ),
        (
            ("    format: csv", "    format: csv\n    explode: {from: items, columns: {}}"),
            "sources.shop.explode: csv rows are flat",
        ),
        (("{EUR: 1}", "{EUR: 1, GBP: -2}"), "currency_rates_to_eur.GBP: must be a positive number"),
        (
            (
                "      ordered_at:  {from: at, type: timestamp, timestamp_format: iso8601}",
                "      ordered_at:  {from: at, type: timestamp}",
            ),
            "sources.shop.columns.ordered_at.timestamp_format: required for timestamp columns",
        ),
    ],
)
def test_errors_name_the_entry_and_key(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in MINIMAL
    with pytest.raises(SourceSpecError) as err:
        parse_sources(MINIMAL.replace(old, new), origin="test.yaml")
    assert str(err.value).startswith("test.yaml: ")
    assert message in str(err.value)


def test_not_yaml_and_missing_file() -> None:
    with pytest.raises(SourceSpecError, match="x.yaml: not valid YAML"):
        parse_sources("sources: [unclosed", origin="x.yaml")
    with pytest.raises(SourceSpecError, match="cannot read the sources file"):
        load_sources(DEFAULT_SOURCES_PATH.with_name("missing.yaml"))


def test_nested_paths_that_conflict_are_rejected() -> None:
    text = MINIMAL.replace(
        "      order_id:    {from: id, type: string}",
        "      order_id:    {from: id, type: string}\n"
        "      customer_email: {from: id.email, type: string}",
    )
    with pytest.raises(SourceSpecError, match="'id' is mapped as a value but 'id.email'"):
        parse_sources(text)


def test_every_contract_mandatory_column_is_declared_in_the_contract() -> None:
    for contract in CONTRACTS.values():
        assert set(contract.mandatory) <= set(contract.columns)
        assert set(contract.key) <= set(contract.mandatory)
        assert set(contract.pii) <= set(contract.columns)


MARKETPLACE_YAML = textwrap.dedent(
    """
    version: 1
    currency_rates_to_eur: {EUR: 1.0, GBP: 1.17}
    sources:
      marketplace_orders:
        contract: order_lines
        channel: marketplace
        format: csv
        delimiter: ";"
        landing: marketplace/{date}.csv
        ignore: [Versand]
        columns:
          order_id:       {from: Bestellnummer, type: string}
          line_number:    {from: Position, type: int}
          ordered_at:     {from: Rechnungsdatum, type: timestamp,
                           timestamp_format: "%d.%m.%Y %H:%M", timezone: Europe/Berlin}
          customer_email: {from: Kaeufer-Email, type: string}
          sku:            {from: Artikelnummer, type: string, canonical: "SKU-%05d"}
          quantity:       {from: Menge, type: int}
          unit_price:     {from: Einzelpreis, type: float, decimal: ","}
          currency:       {from: Waehrung, type: string, normalise: [upper]}
    """
)


def test_a_new_export_is_declared_in_yaml_only() -> None:
    spec = parse_sources(MARKETPLACE_YAML)["marketplace_orders"]
    assert spec.delimiter == ";"
    assert spec.column("unit_price").decimal == ","
    assert spec.channel == "marketplace"
