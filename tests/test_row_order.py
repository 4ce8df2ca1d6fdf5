"""Row order never changes what is cleaned (hypothesis over every source).

For every daily source, files written by the generator (a clean day, a day with
re-sent orders and malformed rows, a day with exact row copies) are permuted
at random: the cleaned tables, the quarantine, their data versions and the
row accounting must come out identical. A re-delivered order or ticket, put
anywhere in the file, must be recognised as a duplicate. Reference files too.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.landing_corpus import (
    DAILY,
    FAULTY_DAYS,
    FIRST_DAY,
    REFERENCE,
    LandingFile,
    clean_file,
    counts,
    generate_home,
    identity_of,
    published,
    versions,
)

EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_home(tmp_path_factory.mktemp("row_order"))


@pytest.fixture(scope="module")
def identity(landing: Path) -> pl.DataFrame:
    return identity_of(landing)


def assert_same_cleaning(a, b) -> None:
    assert versions(a) == versions(b)
    assert counts(a) == counts(b)
    for table, frame in published(a).items():
        assert frame.equals(published(b)[table], null_equal=True), table


@pytest.mark.parametrize("day", [FIRST_DAY, *FAULTY_DAYS])
@pytest.mark.parametrize("name", DAILY)
@EXAMPLES
@given(data=st.data())
def test_any_permutation_cleans_identically(
    landing: Path, identity: pl.DataFrame, name: str, day: str, data: st.DataObject
) -> None:
    file = LandingFile.read(landing, name, day)
    if len(file) < 2:
        pytest.skip(f"{name} {day}: fewer than two records to reorder")
    original = clean_file(name, file.render(), day, identity)
    order = data.draw(st.permutations(range(len(file))), label="order")
    assert_same_cleaning(original, clean_file(name, file.render(order), day, identity))


@pytest.mark.parametrize("name", REFERENCE)
@EXAMPLES
@given(data=st.data())
def test_any_permutation_of_a_reference_file_cleans_identically(
    landing: Path, identity: pl.DataFrame, name: str, data: st.DataObject
) -> None:
    # customer_identity included: a shared identifier goes to the earliest signup
    file = LandingFile.read(landing, name)
    original = clean_file(name, file.render(), None, identity)
    order = data.draw(st.permutations(range(len(file))), label="order")
    assert_same_cleaning(original, clean_file(name, file.render(order), None, identity))


@pytest.mark.parametrize("name", DAILY)
@EXAMPLES
@given(data=st.data())
def test_a_redelivered_order_is_a_duplicate_wherever_it_lands(
    landing: Path, identity: pl.DataFrame, name: str, data: st.DataObject
) -> None:
    file = LandingFile.read(landing, name, FIRST_DAY)
    keys = [file.key_of(i) for i in range(len(file))]
    resent = data.draw(st.sampled_from(sorted({k for k in keys if k is not None})), label="key")
    copies = [i for i, k in enumerate(keys) if k == resent]
    order = data.draw(st.permutations([*range(len(file)), *copies]), label="order")
    original = clean_file(name, file.render(), FIRST_DAY, identity)
    redelivered = clean_file(name, file.render(order), FIRST_DAY, identity)
    assert versions(redelivered) == versions(original)
    added = counts(redelivered)["rows_in"] - counts(original)["rows_in"]
    removed = counts(redelivered)["duplicates_removed"] - counts(original)["duplicates_removed"]
    assert removed == added > 0  # web orders: the copy's lines are the duplicates


@pytest.mark.parametrize("name", DAILY)
def test_every_record_twice_cleans_to_the_same_day(
    landing: Path, identity: pl.DataFrame, name: str
) -> None:
    file = LandingFile.read(landing, name, FIRST_DAY)
    original = clean_file(name, file.render(), FIRST_DAY, identity)
    twice = clean_file(name, file.render([i for i in range(len(file)) for _ in (0, 1)]),
                       FIRST_DAY, identity)  # fmt: skip
    before, after = counts(original), counts(twice)
    assert before["rows_quarantined"] == 0  # a day without injected faults
    assert versions(twice) == versions(original)
    assert after["rows_cleaned"] == before["rows_cleaned"]
    # repeats within a transaction that the first file already read as re-sent stay so
    assert after["duplicates_removed"] == before["rows_in"] + before["duplicates_removed"]
