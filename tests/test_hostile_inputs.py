"""The hostile-input corpus (hostile_corpus.py), case by case, for every source.

Each case ends in one of: accepted identically (same cleaned tables, quarantine
and data versions as the clean file), the broken record quarantined with a
reason while everything else cleans exactly as without it, every row
quarantined with a reason, or the file refused with an error naming it. In
every case that parses, the records cover every line counted in the file's
bytes and the rows add up. Guards that hold a whole day or reference back
(empty, header-only and truncated files, every row twice, cents) are checks
after this layer; here the test asserts what parsing and cleaning guarantee
(docs/RELIABILITY.md lists both).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from aiwf_assets.cleaning import CleanResult
from aiwf_assets.cleaning.assets import accounting_result
from aiwf_assets.ingest.parse import LandingFormatError, parse_landing
from tests.hostile_corpus import (
    CHECKED_FIELD,
    PRICE_FIELD,
    Case,
    build_case,
    case_names,
    single_record,
)
from tests.landing_corpus import (
    SOURCES,
    LandingFile,
    clean_file,
    counts,
    generate_home,
    identity_of,
    published,
    versions,
)

ALL = [(name, case) for name, spec in SOURCES.sources.items() for case in case_names(spec)]
IDENTICAL = {"crlf", "cr_only", "shuffled", "extra_column"}
ONE_RECORD_QUARANTINED = {"truncated", "latin1", "huge_row", "stray_quote", "decimal_comma"}
ALL_QUARANTINED = {"renamed_column", "missing_column", "semicolons", "nulls_everywhere"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_home(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def identity(landing: Path) -> pl.DataFrame:
    return identity_of(landing)


def clean(case: Case, data: bytes, identity: pl.DataFrame) -> CleanResult:
    return clean_file(case.source, data, case.day, identity)


def tables(result: CleanResult) -> dict[str, pl.DataFrame]:
    return {t: f for t, f in published(result).items() if t != "quarantine"}


def same_tables(a: CleanResult, b: CleanResult) -> bool:
    left, right = tables(a), tables(b)
    return left.keys() == right.keys() and all(
        left[t].equals(right[t], null_equal=True) for t in left
    )


def expected_reason(case: Case) -> str:
    field = (PRICE_FIELD if case.case == "decimal_comma" else CHECKED_FIELD)[case.source]
    leaf = field.rpartition(".")[2]
    column = next(c.name for c in SOURCES[case.source].all_columns if leaf in c.source)
    return {
        "truncated": "record: ",
        "latin1": "record: not valid UTF-8",
        "huge_row": f"{column}: ",
        "stray_quote": "record: ",
        "decimal_comma": f"{column}: not a number",
    }[case.case]


@pytest.mark.parametrize(("source", "case_name"), ALL)
def test_hostile_input(landing: Path, identity: pl.DataFrame, source: str, case_name: str) -> None:
    case = build_case(landing, source, case_name)
    spec = SOURCES[source]
    file = LandingFile.read(landing, source, case.day)
    original = clean(case, file.render(), identity)

    if case_name in ("binary", "utf16") and spec.format == "csv" or (
        spec.format == "parquet" and case_name in ("truncated", "binary")
    ):
        with pytest.raises(LandingFormatError, match=spec.landing_path(case.day)):
            parse_landing(case.data, spec, spec.landing_path(case.day))
        return

    raw = parse_landing(case.data, spec, spec.landing_path(case.day))
    result = clean(case, case.data, identity)
    n = counts(result)
    # what this layer always guarantees: every counted line read, every row accounted for
    assert n["lines_in_file"] == n["lines_parsed"], n
    assert accounting_result("order_lines", result.accounting).passed

    if case_name in IDENTICAL:
        assert versions(result) == versions(original)
        assert counts(result) == counts(original)
        if case_name == "extra_column":
            assert raw.extra_columns == ("added_by_a_new_release",)
    elif case_name in ("empty", "header_only"):
        # a day (or reference) with nothing in it; holding it back is the volume guard's job
        assert raw.frame.height == 0 and n["lines_in_file"] == 0
        assert all(f.height == 0 for f in tables(result).values())
    elif case_name == "every_row_twice":
        assert same_tables(result, original)
        assert n["duplicates_removed"] == counts(original)["rows_in"] + counts(original)[
            "duplicates_removed"
        ]
    elif case_name == "cents":
        # accepted as sent, 100x: only the plausibility check can tell (not this layer)
        assert n["rows_cleaned"] == counts(original)["rows_cleaned"]
        assert not same_tables(result, original)
    elif case_name in ONE_RECORD_QUARANTINED:
        assert case.target is not None
        without = clean(case, file.render([i for i in range(len(file)) if i != case.target]),
                        identity)  # fmt: skip
        assert same_tables(result, without)
        new = result.quarantine.join(
            without.quarantine, on=["source_row", "reasons"], how="anti"
        )
        assert new.height >= 1 and new.get_column("source_row").n_unique() == 1
        assert all(r.startswith(expected_reason(case)) for r in new.get_column("reasons"))
        assert all(len(r) < 300 for r in new.get_column("reasons"))  # never the huge value
        if case_name == "truncated":
            assert raw.frame.get_column("_file_ends_mid_record").all()
    elif case_name in ALL_QUARANTINED or case_name in ("binary", "utf16"):
        assert all(f.height == 0 for f in tables(result).values())
        assert n["rows_quarantined"] == n["rows_in"] > 0
        reasons = result.quarantine.get_column("reasons")
        assert reasons.str.len_chars().min() > 0
        if case_name in ("renamed_column", "missing_column"):
            missing = spec.contract.key[0]
            assert raw.missing_columns == (missing,)
            assert reasons.str.starts_with(f"{missing}: missing").all()
    else:
        pytest.fail(f"no expected outcome for {case_name}")


def test_every_source_meets_every_case_that_fits_its_format() -> None:
    assert {name for name, _ in ALL} == set(SOURCES.sources)
    assert {case for _, case in ALL} == (
        IDENTICAL | ONE_RECORD_QUARANTINED | ALL_QUARANTINED
        | {"empty", "header_only", "binary", "utf16", "every_row_twice", "cents"}
    )  # fmt: skip


def test_the_broken_record_holds_its_own_key(landing: Path) -> None:
    # single_record picks a record no other shares a key with, so removing it is clean
    file = LandingFile.read(landing, "pos_transactions", "2026-01-01")
    key = file.key_of(single_record(file))
    assert [file.key_of(i) for i in range(len(file))].count(key) == 1
