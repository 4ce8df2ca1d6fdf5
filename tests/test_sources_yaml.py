"""sources.yaml: the packaged declarations, and errors that name the entry and key."""

from __future__ import annotations

import datetime as dt
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
        "promotion_plan": "promotion_plan",
    }
    assert config.order_channels == ("web", "app", "store")
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
            ("    landing: shop/{date}.csv", "    landing: shop/{date}/{date}.csv"),
            "sources.shop.landing: '{date}' once, in a file or a folder name",
        ),
        (
            ("    landing: shop/{date}.csv", "    landing: shop//{date}.csv"),
            "sources.shop.landing: '{date}' once, in a file or a folder name, and no empty",
        ),
        (
            ("    landing: shop/{date}.csv", "    landing: shop/./{date}.csv"),
            "sources.shop.landing: '{date}' once, in a file or a folder name, and no empty or '.'",
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
        (
            ('canonical: "SKU-%05d"}', 'pattern: "[0-9]{5}([A-Z]"}'),
            "sources.shop.columns.sku.pattern: not a regular expression",
        ),
        (
            ("    format: csv", "    format: csv\n    returns: {}"),
            "sources.shop.returns: say how returns are marked",
        ),
        (
            ("    format: csv", "    format: csv\n    returns: {status: [returned]}"),
            "sources.shop.returns.status: map the line_status column first",
        ),
        (
            ("    format: csv", "    format: csv\n    non_merchandise: {POST: Postage}"),
            "sources.shop.non_merchandise.POST: a lower_snake_case kind other than 'product'",
        ),
        (
            ("    format: csv", "    format: csv\n    phone_region: uk"),
            "sources.shop.phone_region: a two-letter region code",
        ),
        (
            ("{from: id, type: string}", "{from: id, type: string, within: [store_code]}"),
            "sources.shop.columns.order_id.within: 'store_code' is not a declared column",
        ),
        (
            ("{from: pos, type: int}", "{from: pos, type: int, within: [sku]}"),
            "sources.shop.columns.line_number.within: only for string columns read with from",
        ),
        (
            ("{from: id, type: string}", "{from: id, type: string, within: [order_id]}"),
            "sources.shop.columns.order_id.within: order_id cannot be within itself",
        ),
        (
            ("{from: id, type: string}", "{from: id, type: string, within: [day]}"),
            "within: 'day' is not a declared column read with from or constant (and not itself "
            "made unique), nor 'order_day'",
        ),
        (
            ("    format: csv", '    format: csv\n    day_ends_at: "13:00"'),
            'sources.shop.day_ends_at: the local time the business day ends, "HH:MM" from '
            '"00:00" to "12:00" (e.g. "04:00": a sale at 01:45 belongs to the day before), '
            "got '13:00'",
        ),
        (
            ("    format: csv", '    format: csv\n    day_ends_at: "4 am"'),
            "sources.shop.day_ends_at: the local time the business day ends",
        ),
        (
            ("    format: csv", '    format: csv\n    day_ends_at: "04:60"'),
            "sources.shop.day_ends_at: the local time the business day ends",
        ),
        (
            ("    format: csv", "    format: csv\n    day_ends_at: 4:30"),
            "got 270 (YAML reads an unquoted 4:30 as the number 270: write the time in quotes)",
        ),
        (
            ("    format: csv", "    format: csv\n    once_per_ordr: [currency]"),
            "sources.shop: unknown entry key(s) once_per_ordr; allowed: ",
        ),
        (
            ("    format: csv", "    format: csv\n    once_per_order: currency"),
            "sources.shop.once_per_order: a list of names, got 'currency'",
        ),
        (
            ("    format: csv", "    format: csv\n    once_per_order: [ordered_at, email]"),
            "sources.shop.once_per_order: 'email' is not a column of this source read with from"
            " (declared: order_id, line_number, ordered_at, sku, quantity, unit_price)",
        ),
        (
            ("    format: csv", "    format: csv\n    once_per_order: [currency]"),
            "sources.shop.once_per_order: 'currency' is not a column of this source read with from",
        ),
        (
            ("    format: csv", "    format: csv\n    once_per_order: [ordered_at, unit_price]"),
            "sources.shop.once_per_order: unit_price is a line's own value, not the order's",
        ),
        (
            (
                "    columns:\n      order_id:    {from: id, type: string}",
                "    once_per_order: [ordered_at]\n"
                "    columns:\n      order_id:    {constant: O1, type: string}",
            ),
            "sources.shop.once_per_order: the rows of an order are found by their order_id, "
            "which must be read from the file",
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


def test_product_key_pattern_comes_from_the_declaration() -> None:
    assert parse_sources(MINIMAL)["shop"].product_key_pattern == r"SKU\-[0-9]{5,}"
    free = parse_sources(MINIMAL.replace(', canonical: "SKU-%05d"', ""))
    assert free["shop"].product_key_pattern is None and free.product_key_patterns == {}
    own = parse_sources(MINIMAL.replace('canonical: "SKU-%05d"', 'pattern: "[0-9]{5}[A-Z]?"'))
    assert own.product_key_patterns == {"shop": "[0-9]{5}[A-Z]?"}


UK_OVERLAY = """
version: 1
currency_rates_to_eur: {GBP: 1.16}
sources:
  shop:
    contract: order_lines
    channel: shop_uk
    format: csv
    landing: shop_uk/{date}.csv
    returns: {order_prefix: C}
    non_merchandise: {POST: postage, BANK CHARGES: fee}
    columns:
      order_id:    {from: Invoice, type: string}
      line_number: {sequence: order_id, type: int}
      ordered_at:  {from: InvoiceDate, type: timestamp, timestamp_format: "%d/%m/%Y %H:%M",
                    timezone: Europe/London}
      loyalty_id:  {from: Customer ID, type: string, normalise: [integer]}
      sku:         {from: StockCode, type: string, normalise: [upper], pattern: "[0-9]{5}[A-Z]*"}
      quantity:    {from: Quantity, type: int}
      unit_price:  {from: Price, type: float}
      currency:    {constant: GBP, type: string}
"""


def test_aiwf_sources_adds_and_overrides_sources_without_touching_the_package(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiwf_assets.settings import reset_settings_cache

    folder = tmp_path / "sources.d"
    folder.mkdir()
    (folder / "10-uk.yaml").write_text(UK_OVERLAY)
    # a later file replaces an entry of the same name: the packaged one, or an earlier file's
    (folder / "20-stores.yaml").write_text(
        "version: 1\nsources:\n  stores:\n    contract: stores\n    format: csv\n"
        "    landing: reference/shops.csv\n    columns:\n"
        "      store_code: {from: id, type: string}\n      name: {from: n, type: string}\n"
    )
    (folder / "notes.txt").write_text("not a source file")
    monkeypatch.setenv("AIWF_SOURCES", str(folder))
    reset_settings_cache()
    try:
        config = load_sources()
    finally:
        monkeypatch.delenv("AIWF_SOURCES")
        reset_settings_cache()
    assert config.order_channels == ("web", "app", "store", "shop_uk")
    assert config["stores"].landing == "reference/shops.csv"
    assert config["web_orders"] == load_sources()["web_orders"]
    assert config.currency_rates_to_eur == {"EUR": 1.0, "GBP": 1.16, "USD": 0.92}
    shop = config["shop"]
    assert shop.returns is not None and shop.returns.order_prefix == "C"
    assert shop.non_merchandise == {"POST": "postage", "BANK CHARGES": "fee"}
    assert str(folder / "10-uk.yaml") in config.origin


def test_aiwf_sources_errors_name_the_setting_and_the_file(tmp_path) -> None:
    from aiwf_assets.ingest.spec import overlay_files, parse_documents

    with pytest.raises(SourceSpecError, match=r"AIWF_SOURCES=.*nowhere: no such file or folder"):
        overlay_files(tmp_path / "nowhere")
    assert overlay_files(tmp_path) == []  # an empty ConfigMap: the packaged sources only
    packaged = (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text())
    clash = UK_OVERLAY.replace("channel: shop_uk", "channel: web")
    with pytest.raises(SourceSpecError) as err:
        parse_documents([packaged, ("uk.yaml", clash)])
    assert str(err.value) == (
        "uk.yaml: sources.shop.channel: 'web' is already the channel of source 'web_orders'"
    )
    with pytest.raises(SourceSpecError, match="uk.yaml: currency_rates_to_eur: EUR must be"):
        parse_documents([packaged, ("uk.yaml", UK_OVERLAY.replace("{GBP: 1.16}", "{EUR: 2}"))])


def test_dbt_project_defaults_are_the_packaged_sources() -> None:
    """dbt runs outside Dagster (tests, a developer's shell) see what Dagster would pass."""
    import yaml

    from aiwf_assets.marts.assets import source_vars
    from aiwf_assets.marts.project import DBT_PROJECT_DIR

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"] == source_vars(parse_sources(DEFAULT_SOURCES_PATH.read_text()))


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


def _packaged() -> tuple[str, str]:
    return (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text())


def test_an_overlay_switches_packaged_sources_off() -> None:
    from aiwf_assets.ingest.spec import parse_documents

    off = "version: 1\nsources:\n  web_orders: {enabled: false}\n  customers: {enabled: false}\n"
    config = parse_documents([_packaged(), ("off.yaml", off)])
    assert "web_orders" not in config.sources and "customers" not in config.sources
    assert config.order_channels == ("app", "store")
    assert config.disabled == {"web_orders", "customers"}
    # a later file may declare it again
    again = parse_documents(
        [_packaged(), ("off.yaml", off), ("uk.yaml", UK_OVERLAY.replace("shop:", "web_orders:"))]
    )
    assert again["web_orders"].channel == "shop_uk" and again.disabled == {"customers"}
    # replace_packaged: only this file's sources remain; rates still merge
    replacing = UK_OVERLAY.replace("version: 1", "version: 1\nreplace_packaged: true")
    only = parse_documents([_packaged(), ("uk.yaml", replacing)])
    assert list(only.sources) == ["shop"] and only.order_channels == ("shop_uk",)
    assert only.disabled == set(load_sources().sources)
    assert only.currency_rates_to_eur["GBP"] == 1.16 and only.currency_rates_to_eur["USD"] == 0.92


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            "version: 1\nsources:\n  web_order: {enabled: false}\n",
            "off.yaml: sources.web_order.enabled: no source 'web_order' to switch off",
        ),
        ("version: 1\nsources:\n  web_orders: {enabled: no-thanks}\n",
         "off.yaml: sources.web_orders.enabled: true or false"),
        ("version: 1\nreplace_packaged: yes please\n",
         "off.yaml: replace_packaged: true or false"),
        ("version: 1\nreplace_packaged: true\n",
         "every source is switched off; declare at least one"),
    ],
)
def test_switching_off_errors_name_the_file_and_key(overlay: str, message: str) -> None:
    from aiwf_assets.ingest.spec import parse_documents

    with pytest.raises(SourceSpecError) as err:
        parse_documents([_packaged(), ("off.yaml", overlay)])
    assert message in str(err.value)


CRM_OVERLAY = """\
version: 1
sources:
  crm:
    contract: customers
    format: csv
    landing: reference/crm.csv
    columns:
      crm_id: {from: id, type: string}
"""


@pytest.mark.parametrize(
    "overlay",
    [
        CRM_OVERLAY.replace("version: 1", "version: 1\nreplace_packaged: true"),  # the only CRM
        CRM_OVERLAY,  # a second customers source beside the packaged one
        CRM_OVERLAY.replace("customers", "stores").replace(
            "crm_id: {from: id, type: string}",
            "store_code: {from: id, type: string}\n      name: {from: n, type: string}",
        ),
    ],
)
def test_a_reference_source_must_be_named_as_its_contract(overlay: str) -> None:
    # cleaning finds customers, products, stores and promotion_plan by source name: under
    # another name the snapshot was parsed and never cleaned (cleaned.customers empty, green)
    from aiwf_assets.ingest.spec import parse_documents

    contract = overlay.split("contract: ")[1].split()[0]
    with pytest.raises(SourceSpecError) as err:
        parse_documents([_packaged(), ("crm.yaml", overlay)])
    assert str(err.value).startswith(
        f"crm.yaml: sources.crm.contract: a {contract} source must be named '{contract}'"
    )
    renamed = parse_documents([_packaged(), ("crm.yaml", overlay.replace("crm:", f"{contract}:"))])
    assert renamed[contract].landing == "reference/crm.csv"


RATES_OVERLAY = """\
version: 1
sources:
  ecb_rates:
    contract: exchange_rates
    format: csv
    landing: reference/rates.csv
    columns:
      date:        {from: day, type: date, timestamp_format: "%Y-%m-%d"}
      currency:    {from: ccy, type: string, normalise: [upper]}
      rate_to_eur: {from: rate, type: float}
"""


def test_one_dated_rate_file_may_be_declared() -> None:
    from aiwf_assets.ingest.spec import parse_documents

    assert load_sources().exchange_rates is None  # none packaged: constant rates only
    config = parse_documents([_packaged(), ("rates.yaml", RATES_OVERLAY)])
    assert config.exchange_rates is not None and config.exchange_rates.name == "ecb_rates"
    second = RATES_OVERLAY.replace("ecb_rates:", "boe_rates:")
    with pytest.raises(SourceSpecError, match="only one exchange_rates source may be declared"):
        parse_documents([_packaged(), ("rates.yaml", RATES_OVERLAY), ("more.yaml", second)])
    daily = RATES_OVERLAY.replace("reference/rates.csv", "rates/{date}.csv")
    with pytest.raises(SourceSpecError, match="contract exchange_rates must not contain"):
        parse_documents([_packaged(), ("rates.yaml", daily)])


def test_channel_names_that_would_clash_with_fixed_columns_are_refused() -> None:
    for name, clash in (("promo", "promo_share"), ("n", "n_orders")):
        with pytest.raises(SourceSpecError, match=f"'{name}' is reserved .*{clash}"):
            overlay = UK_OVERLAY.replace("channel: shop_uk", f"channel: {name}")
            parse_sources(overlay.replace("{GBP: 1.16}", "{EUR: 1, GBP: 1.16}"))


def test_online_channels_are_declared_and_reach_the_marts_vars() -> None:
    """Which orders a web session can convert into comes from the sources: the packaged
    tills say `online: false`; a new order source is online unless it says otherwise."""
    from aiwf_assets.marts.assets import source_vars

    packaged = load_sources()
    assert packaged.online_channels == ("web", "app")
    assert source_vars(packaged)["online_channels"] == ["web", "app"]
    overlay = UK_OVERLAY.replace("{GBP: 1.16}", "{EUR: 1, GBP: 1.16}")
    assert parse_sources(overlay).online_channels == ("shop_uk",)
    tills = overlay.replace("channel: shop_uk", "channel: shop_uk\n    online: false")
    assert parse_sources(tills).online_channels == ()
    with pytest.raises(SourceSpecError, match=r"sources\.\w+\.online: true or false, got 'yes'"):
        parse_sources(overlay.replace("channel: shop_uk", "channel: shop_uk\n    online: 'yes'"))
    with pytest.raises(SourceSpecError, match=r"\.online: only order_lines sources have it"):
        parse_sources(
            textwrap.dedent(
                """
                version: 1
                currency_rates_to_eur: {EUR: 1}
                sources:
                  desk:
                    contract: tickets
                    online: true
                    format: csv
                    landing: desk/{date}.csv
                    columns: {}
                """
            )
        )


def test_order_day_needs_an_order_time() -> None:
    sales = parse_sources(
        MINIMAL.replace("{from: id, type: string}", "{from: id, type: string, within: [order_day]}")
    )
    assert sales["shop"].column("order_id").within == ("order_day",)
    crm = """
version: 1
currency_rates_to_eur: {EUR: 1}
sources:
  crm:
    contract: customers
    format: csv
    landing: crm/customers.csv
    columns:
      crm_id:      {from: id, type: string, within: [order_day]}
      signup_date: {from: since, type: date, timestamp_format: "%Y-%m-%d"}
"""
    with pytest.raises(SourceSpecError, match="'order_day' .* needs an ordered_at column"):
        parse_sources(crm)


def test_once_per_order_is_declared_with_contract_columns() -> None:
    """`once_per_order` names contract columns, the order id first whether listed or not
    (it is how an order's rows are found); only order sources have it."""
    declared = "    format: csv\n    once_per_order: [ordered_at, order_id, ordered_at]"
    shop = parse_sources(MINIMAL.replace("    format: csv", declared))["shop"]
    assert shop.once_per_order == ("order_id", "ordered_at")
    assert parse_sources(MINIMAL)["shop"].once_per_order == ()
    tickets = textwrap.dedent(
        """
        version: 1
        currency_rates_to_eur: {EUR: 1}
        sources:
          desk:
            contract: tickets
            format: csv
            landing: desk/{date}.csv
            once_per_order: [opened_at]
            columns:
              ticket_id: {from: id, type: string}
              opened_at: {from: at, type: timestamp, timestamp_format: iso8601}
              category:  {from: type, type: string}
        """
    )
    with pytest.raises(
        SourceSpecError, match=r"sources\.desk\.once_per_order: only order_lines sources have it"
    ):
        parse_sources(tickets)


def test_a_business_day_end_is_declared_on_a_daily_source() -> None:
    """`day_ends_at`: "HH:MM", 00:00 to 12:00, written with or without the leading zero
    (docs/SOURCES.md, Business days that run past midnight)."""
    shop = parse_sources(MINIMAL)["shop"]
    assert (shop.day_ends_at, shop.business_day_end) == (None, None)
    # YAML reads an unquoted 04:00 as text (a leading zero is no base-60 number), 4:00 not
    for written, read in (('"4:30"', "04:30"), ('"04:00"', "04:00"), ("04:00", "04:00"),
                          ('"12:00"', "12:00"), ('"00:00"', "00:00")):
        declared = f"    format: csv\n    day_ends_at: {written}"
        late = parse_sources(MINIMAL.replace("    format: csv", declared))
        assert late["shop"].day_ends_at == read
    assert late["shop"].business_day_end == dt.time(0)
    with pytest.raises(SourceSpecError, match=r"sources\.stores\.day_ends_at: only daily sources"):
        parse_sources(
            textwrap.dedent(
                """
                version: 1
                currency_rates_to_eur: {EUR: 1}
                sources:
                  stores:
                    contract: stores
                    format: csv
                    landing: reference/stores.csv
                    day_ends_at: "04:00"
                    columns:
                      store_code: {from: code, type: string}
                      name:       {from: name, type: string}
                """
            )
        )
