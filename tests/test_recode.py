"""A source's own words for the contract's values (`recode`), from a help-desk export.

A help desk writes `Via: web`, `Via: Mail`, `Type: Refund`, `Type: Where is my order?`;
the tickets contract knows contact channels phone/email/chat and categories delivery,
return, product, billing, account. Without a declared map such tickets are quarantined
whole and the customer's ticket counts (a churn feature) are short, every check green.
Fixtures are written by hand, shaped like a Zendesk CSV export (every field quoted, ISO
times with `Z`), not by the generator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult, clean_interactions_day, clean_reference_customers
from aiwf_assets.cleaning.contracts import validate_table
from aiwf_assets.cleaning.pii import hmac_hex
from aiwf_assets.cleaning.rules import cast_columns, return_mark
from aiwf_assets.ingest.landing import spec_fingerprint
from aiwf_assets.ingest.parse import parse_landing
from aiwf_assets.ingest.spec import SourcesConfig, SourceSpecError, load_sources, parse_sources

KEY = b"test-pii-key"
DAY = dt.date(2026, 1, 5)

CUSTOMERS = """crm_id,first_name,last_name,email,phone,loyalty_id,signup_date,country,birth_year
C1,Jane,Doe,jane.doe@example.com,,,2024-01-01,DE,1980
C2,John,Roe,john.roe@example.com,,,2024-02-01,DE,1975
"""

FIXTURES = Path(__file__).parent / "fixtures" / "helpdesk"
# a day of tickets as the help desk exports them
HELPDESK_EXPORT = (FIXTURES / "tickets.csv").read_text()
# what each ticket is in the contract's words: (category, contact_channel)
EXPECTED = {
    "4711": ("return", "email"),
    "4712": ("delivery", "email"),
    "4713": ("billing", "phone"),
    "4714": ("delivery", "email"),
    "4715": ("return", "email"),
    "4716": ("billing", "phone"),
}

HELPDESK_SOURCES = (FIXTURES / "sources.yaml").read_text()
# the same declaration without the maps: how such an export was declared before
WITHOUT_RECODE = re.sub(r",\s*recode: \{[^}]*\}", "", HELPDESK_SOURCES)


@pytest.fixture(scope="module")
def identity() -> pl.DataFrame:
    customers = parse_landing(
        CUSTOMERS.encode(), load_sources()["customers"], "reference/customers.csv"
    ).frame
    return clean_reference_customers(customers, KEY).tables["customer_identity"]


def clean(export: str, yaml: str, identity: pl.DataFrame) -> CleanResult:
    sources: SourcesConfig = parse_sources(yaml)
    raw = parse_landing(export.encode(), sources["helpdesk"], f"helpdesk/{DAY}.csv").frame
    return clean_interactions_day({"helpdesk": raw}, identity, KEY, DAY, sources)


def crm_key(crm_id: str) -> str:
    return hmac_hex(KEY, f"crm:{crm_id}")[:16]


def test_a_help_desks_own_words_are_recoded_onto_the_contract(identity: pl.DataFrame) -> None:
    result = clean(HELPDESK_EXPORT, HELPDESK_SOURCES, identity)
    table = result.tables["interactions"]
    published = {
        row["interaction_id"].removeprefix("ticket:"): (row["subtype"], row["contact_channel"])
        for row in table.iter_rows(named=True)
    }
    assert published == EXPECTED
    assert result.quarantine.is_empty()
    counts = result.accounting.row(0, named=True)
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (6, 6, 0)
    # each customer's tickets are all there: three each (a churn feature counts them)
    per_customer = dict(table.group_by("customer_key").len().iter_rows())
    assert per_customer == {crm_key("C1"): 3, crm_key("C2"): 3}
    assert validate_table("interactions", table) == []


def test_without_the_map_the_help_desks_words_are_quarantined(identity: pl.DataFrame) -> None:
    """Today's behaviour, which the map is for: four of six tickets lost, green."""
    assert not any(c.recode for c in parse_sources(WITHOUT_RECODE)["helpdesk"].columns)
    result = clean(HELPDESK_EXPORT, WITHOUT_RECODE, identity)
    kept = result.tables["interactions"].get_column("interaction_id").to_list()
    assert sorted(kept) == ["ticket:4713", "ticket:4716"]
    reasons = dict(result.quarantine.select("source_row", "reasons").iter_rows())
    categories = "category: not one of account, billing, delivery, product, return"
    channels = "contact_channel: not one of chat, email, phone"
    assert reasons == {
        1: f"{categories} (refund); {channels} (web)",
        2: f"{categories} (where is my order?); {channels} (mail)",
        4: f"{categories} (where is my order?); {channels} (web)",
        5: f"{categories} (refund); {channels} (mail)",
    }


def test_a_word_neither_mapped_nor_the_contracts_is_still_quarantined(
    identity: pl.DataFrame,
) -> None:
    """No silent defaulting: `Twitter` and `Complaint` are in neither the map nor the
    vocabulary; the reason is today's and the quarantined record keeps the row as written,
    also for a recoded word on a row quarantined for something else."""
    export = HELPDESK_EXPORT + (
        '"4717","DM","jane.doe@example.com","Twitter","Complaint","Open","2026-01-05T17:00:00Z"\n'
        '"4718","Refund?","john.roe@example.com","web","Refund","Open","05/01/2026 18:00"\n'
    )
    result = clean(export, HELPDESK_SOURCES, identity)
    assert result.tables["interactions"].height == len(EXPECTED)
    quarantined = {
        row["source_row"]: (row["reasons"], json.loads(row["record"]))
        for row in result.quarantine.iter_rows(named=True)
    }
    assert set(quarantined) == {7, 8}
    reasons, record = quarantined[7]
    assert reasons == (
        "category: not one of account, billing, delivery, product, return (complaint); "
        "contact_channel: not one of chat, email, phone (twitter)"
    )
    assert (record["category"], record["contact_channel"]) == ("Complaint", "Twitter")
    reasons, record = quarantined[8]
    assert reasons.startswith("opened_at: not a timestamp in ISO 8601")
    assert (record["category"], record["contact_channel"]) == ("Refund", "web")
    counts = result.accounting.row(0, named=True)
    assert (counts["rows_in"], counts["rows_cleaned"], counts["rows_quarantined"]) == (8, 6, 2)


def test_a_word_that_is_already_a_contract_value_passes_unmapped(
    identity: pl.DataFrame,
) -> None:
    """The map lists only the source's own words: `phone` and `billing` pass as they are;
    a source word may also be recoded onto another contract value."""
    yaml = HELPDESK_SOURCES.replace("mail: email}", "mail: email, phone: chat}")
    result = clean(HELPDESK_EXPORT, yaml, identity)
    channels = dict(
        result.tables["interactions"].select("interaction_id", "contact_channel").iter_rows()
    )
    assert channels["ticket:4713"] == channels["ticket:4716"] == "chat"
    assert channels["ticket:4711"] == "email"


def _error(yaml: str) -> str:
    with pytest.raises(SourceSpecError) as err:
        parse_sources(yaml, origin="helpdesk.yaml")
    return str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("{web: email, mail: email}", "{web: emial, mail: email}"),
            "helpdesk.yaml: sources.helpdesk.columns.contact_channel.recode.web: 'emial' is not "
            "a value contract tickets accepts for contact_channel (phone, email, chat)",
        ),
        (
            ("{web: email, mail: email}", "{Web: email}"),
            "sources.helpdesk.columns.contact_channel.recode.Web: never matches: values are "
            "compared after normalise [lower], which makes it 'web'",
        ),
        (
            ("{web: email, mail: email}", "{1: phone}"),
            "columns.contact_channel.recode: a source word is text without surrounding blanks,"
            " got 1 (quote numbers and yes/no/on/off, which YAML reads otherwise)",
        ),
        (
            ("{web: email, mail: email}", "{web: [email]}"),
            "columns.contact_channel.recode: a value is text without surrounding blanks, got "
            "['email']",
        ),
        (
            ("{web: email, mail: email}", "{}"),
            "columns.contact_channel.recode: name at least one source word and its value",
        ),
        (
            ("{web: email, mail: email}", "[web, email]"),
            "columns.contact_channel.recode: recode must be a mapping, got list",
        ),
        (
            (
                "{from: Requester email, type: string}",
                "{from: Requester email, type: string, recode: {jane: jane@example.com}}",
            ),
            "sources.helpdesk.columns.customer_email.recode: not for customer_email: personal data",
        ),
        (
            ("{from: Id, type: string}", "{from: Id, type: string, recode: {'4711': '4712'}}"),
            "sources.helpdesk.columns.ticket_id.recode: not for ticket_id: it identifies a record",
        ),
        (
            (
                "      status:",
                "      satisfaction:    {from: Rating, type: int, recode: {good: 5}}\n"
                "      status:",
            ),
            "sources.helpdesk.columns.satisfaction.recode: only for string columns read with from",
        ),
        (
            (
                "{from: Status, type: string, normalise: [lower]}",
                "{constant: open, type: string, recode: {open: solved}}",
            ),
            "sources.helpdesk.columns.status.recode: only for string columns read with from",
        ),
    ],
)
def test_recode_errors_name_the_source_column_and_word(
    change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in HELPDESK_SOURCES
    assert message in _error(HELPDESK_SOURCES.replace(old, new))


SHOP = """
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
      loyalty_id:  {from: card, type: string}
      sku:         {from: sku, type: string}
      quantity:    {from: qty, type: int}
      unit_price:  {from: price, type: float}
      currency:    {from: cur, type: string, normalise: [upper], pattern: "[A-Z]{3}"}
      store_code:  {from: shop, type: string}
"""


@pytest.mark.parametrize(
    ("column", "field", "why"),
    [
        ("order_id", "id", "it identifies a record"),
        ("sku", "sku", "it identifies a record"),
        ("loyalty_id", "card", "personal data"),
    ],
)
def test_identifiers_and_personal_data_are_not_recoded(column: str, field: str, why: str) -> None:
    """A map on an order id or a product code could make two orders or two products one;
    on a loyalty card it would write customers' identifiers into the sources file."""
    old = f"{{from: {field}, type: string}}"
    assert old in SHOP
    declared = SHOP.replace(old, f"{{from: {field}, type: string, recode: {{x: y}}}}")
    assert f"sources.shop.columns.{column}.recode: not for {column}: {why}" in _error(declared)


def test_an_order_attribute_is_recoded_onto_its_pattern() -> None:
    """Columns without a fixed vocabulary take any value, matched to a declared pattern."""
    euro = SHOP.replace('pattern: "[A-Z]{3}"}', 'pattern: "[A-Z]{3}", recode: {€: EUR}}')
    assert parse_sources(euro)["shop"].column("currency").recode == (("€", "EUR"),)
    bad = SHOP.replace('pattern: "[A-Z]{3}"}', 'pattern: "[A-Z]{3}", recode: {€: euro}}')
    assert "columns.currency.recode.€: 'euro' does not match the column's pattern" in _error(bad)
    stores = SHOP.replace(
        "{from: shop, type: string}", "{from: shop, type: string, recode: {Berlin Mitte: S01}}"
    )
    assert parse_sources(stores)["shop"].column("store_code").recode == (("Berlin Mitte", "S01"),)


def test_the_map_is_part_of_the_declaration_only_where_declared() -> None:
    """Sources without it keep their fingerprints (the packaged pins, in
    test_spec_fingerprint); declaring it, or changing a word, is a new declaration."""
    declared = parse_sources(HELPDESK_SOURCES)["helpdesk"]
    plain = parse_sources(WITHOUT_RECODE)["helpdesk"]
    assert all(not c.recode for c in plain.columns)
    stripped = dataclasses.replace(
        declared, columns=tuple(dataclasses.replace(c, recode=()) for c in declared.columns)
    )
    assert spec_fingerprint(stripped) == spec_fingerprint(plain)
    assert spec_fingerprint(declared) != spec_fingerprint(plain)
    other = parse_sources(HELPDESK_SOURCES.replace("mail: email", "mail: chat"))["helpdesk"]
    assert spec_fingerprint(other) != spec_fingerprint(declared)


def test_a_recoded_line_status_marks_a_return() -> None:
    """`returns.status` reads the recoded value: a till's `R` is a `returned` line."""
    tills = parse_sources(
        SHOP.replace("    columns:", "    returns: {status: [returned]}\n    columns:")
        + "      line_status: {from: st, type: string, normalise: [upper],"
        " recode: {R: returned, S: sold}}\n"
    )["shop"]
    export = (
        "id,pos,at,card,sku,qty,price,cur,shop,st\n"
        "T1,1,2026-01-05T10:00:00Z,,A1,1,9.99,EUR,S01,S\n"
        "T2,1,2026-01-05T11:00:00Z,,A1,1,9.99,EUR,S01, r\n"
        "T3,1,2026-01-05T12:00:00Z,,A1,1,9.99,EUR,S01,X\n"
    )
    raw = parse_landing(export.encode(), tills, "shop/2026-01-05.csv").frame
    typed, _ = cast_columns(raw, tills)
    marked = typed.select("order_id", "line_status", return_mark(tills).alias("is_return"))
    assert marked.rows() == [("T1", "sold", False), ("T2", "returned", True), ("T3", "X", False)]
