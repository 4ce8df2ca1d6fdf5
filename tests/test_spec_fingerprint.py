"""A source's declaration is part of its raw data version: what changes it, and what must not.

Every raw day of a source re-runs (and everything downstream) when its fingerprint
changes, so an upgrade that only adds an option must leave it alone."""

from __future__ import annotations

import dataclasses

import pytest

from aiwf_assets.ingest.landing import declared, raw_data_version, spec_fingerprint
from aiwf_assets.ingest.spec import ColumnSpec, SourceSpec, load_sources

# The packaged sources' fingerprints. If this fails, upgrading re-versions every raw day of
# the sources named (a full re-run downstream): if that is meant, say so in docs/DEPLOY.md
# ("Upgrading") and update the pins; if not, the change added a declared value by accident.
PINNED = {
    "web_orders": "89058bfb3d22",
    "app_orders": "dc808848fafb",
    "pos_transactions": "3094839b2e05",
    "crm_tickets": "c730e2ba9348",
    "web_sessions": "855bdd783d71",
    "customers": "015ea711a943",
    "products": "d66dd0de3e0c",
    "stores": "e707c6b20c1c",
    "promotion_plan": "e4368b844a7e",
}


def _pos() -> SourceSpec:
    return load_sources().sources["pos_transactions"]


def _with_new_option(spec: SourceSpec, value: bool) -> SourceSpec:
    """`spec` as a later release would declare it: ColumnSpec has grown an option."""
    grown = dataclasses.make_dataclass(
        "ColumnSpec",
        [(f.name, f.type, f) for f in dataclasses.fields(ColumnSpec)]
        + [("trim_zeros", bool, dataclasses.field(default=False))],
        frozen=True,
    )
    columns = tuple(
        grown(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)}, trim_zeros=value)
        for c in spec.columns
    )
    return dataclasses.replace(spec, columns=columns)


def test_the_packaged_sources_keep_their_fingerprints() -> None:
    found = {name: spec_fingerprint(s)[:12] for name, s in load_sources().sources.items()}
    assert found == PINNED


def test_a_new_option_left_at_its_default_keeps_the_fingerprint() -> None:
    pos = _pos()
    assert spec_fingerprint(_with_new_option(pos, False)) == spec_fingerprint(pos)
    # the repr the fingerprint used to hash does see it
    assert repr(_with_new_option(pos, False)) != repr(pos)
    # setting the option is a change of how the source is read
    assert spec_fingerprint(_with_new_option(pos, True)) != spec_fingerprint(pos)


def test_every_declared_value_changes_the_fingerprint() -> None:
    pos = _pos()
    column = pos.columns[0]
    changed = [
        dataclasses.replace(pos, delimiter=";"),
        dataclasses.replace(pos, ignore=(*pos.ignore, "till_operator")),
        dataclasses.replace(pos, phone_region="DE"),
        dataclasses.replace(pos, day_ends_at="04:00"),
        dataclasses.replace(pos, once_per_order=("order_id", "ordered_at")),
        dataclasses.replace(
            pos, columns=(dataclasses.replace(column, timezone="UTC"),) + pos.columns[1:]
        ),
        dataclasses.replace(pos, columns=pos.columns[::-1]),
        dataclasses.replace(
            pos,
            columns=tuple(
                dataclasses.replace(c, recode=(("karte", "card"),)) if c.name == "payment" else c
                for c in pos.columns
            ),
        ),
    ]
    prints = {spec_fingerprint(s) for s in changed} | {spec_fingerprint(pos)}
    assert len(prints) == len(changed) + 1
    # and so the raw data version of the same bytes
    assert raw_data_version("abc", changed[0]) != raw_data_version("abc", pos)


def test_a_declaration_the_fingerprint_cannot_read_is_an_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        pattern: object

    assert declared(Odd(pattern=("a", {"b": 1}))) == {"pattern": ["a", {"b": 1}]}
    with pytest.raises(TypeError, match="cannot fingerprint a set"):
        declared(Odd(pattern={"a"}))


def test_a_release_that_changes_a_reading_re_parses_only_sources_that_use_it() -> None:
    """Parsing reads order times only for `within: [..., order_day]` (the day goes into the
    id): those sources' raw versions carry the timestamp reading's version, so a release
    that reads more ISO 8601 forms re-parses their days; every other source keeps its raw
    versions (and the packaged ones their pins). So with what a line is (`LINE_IDENTITY`):
    only sources numbering lines by content (`sequence`) re-parse."""
    from aiwf_assets.ingest.landing import RAW_CODE_VERSION, raw_code_version
    from aiwf_assets.ingest.parse import ALIAS_READING, LINE_IDENTITY
    from aiwf_assets.ingest.timestamps import TIMESTAMP_READING

    pos = _pos()
    order_id = dataclasses.replace(pos.column("order_id"), within=("store_code", "order_day"))
    per_day = dataclasses.replace(
        pos, columns=tuple(order_id if c.name == "order_id" else c for c in pos.columns)
    )
    packaged = load_sources().sources
    plain = {n: spec for n, spec in packaged.items() if n not in ("app_orders", "pos_transactions")}
    assert {raw_code_version(spec) for spec in plain.values()} == {RAW_CODE_VERSION}
    assert raw_code_version(per_day) == f"{RAW_CODE_VERSION}+{TIMESTAMP_READING}+{LINE_IDENTITY}"
    # app_orders reads `quantity` or its older name `qty`: the aliases' reading counts there
    assert raw_code_version(packaged["app_orders"]) == f"{RAW_CODE_VERSION}+{ALIAS_READING}"
    # the tills number their lines by content (`sequence`): what a line is counts there
    assert raw_code_version(pos) == f"{RAW_CODE_VERSION}+{LINE_IDENTITY}"
    # web_orders' line numbers are its items' places in the list: it reads no more fields
    assert not any(c.sequence for c in packaged["web_orders"].all_columns)
