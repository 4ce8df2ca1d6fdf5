"""A guest who signs up later: her published orders keep the key of her e-mail while her
later ones get the CRM key, so her history is split. The `history_linked` check on
`customer_identity` warns, counting the records and naming the days to clean again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from aiwf_assets.cleaning.assets import HISTORY_LINKED
from aiwf_assets.cleaning.audit import relinked_finding
from tests.test_write_audit_publish import Pipeline, generated_pipeline


def test_the_finding_counts_the_records_and_names_the_backfill() -> None:
    assert relinked_finding([]) is None
    finding = relinked_finding([("2026-01-01", 2), ("2026-01-03", 1)])
    assert finding is not None
    assert finding.startswith("3 published order(s)/interaction(s) on 2 day(s)")
    assert "--from 2026-01-01 --to 2026-01-03" in finding


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with generated_pipeline(tmp_path_factory.mktemp("linked"), 11, 3, 0.05) as p:
        assert p.deliver(p.days[0], p.days[-1]).success
        yield p


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    evaluations = [
        e for e in result.get_asset_check_evaluations() if e.check_name == HISTORY_LINKED
    ]
    assert len(evaluations) == 1
    return evaluations[0]


def guest_email(landing: Path, crm: str) -> str:
    """An e-mail that ordered on the web and is not in the CRM file."""
    known = crm.lower()
    for path in sorted((landing / "web_orders").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            email = (json.loads(line)["email"] or "").strip().lower()
            if email and email not in known:
                return email
    raise AssertionError("no guest order in the generated days")


def test_a_guest_who_signs_up_later_is_warned_about_with_her_days(pipeline: Pipeline) -> None:
    before = check_result(pipeline.reference())
    assert before.passed  # the generator's CRM: nobody's history is split

    known = set(pipeline.wh.query("SELECT customer_key FROM cleaned.customers")["customer_key"])
    crm_file = pipeline.settings.landing_dir / "reference" / "customers.csv"
    crm = crm_file.read_text()
    email = guest_email(pipeline.settings.landing_dir, crm)
    crm_file.write_text(crm + f"C9999999,Gina,Guest,{email},,,2026-01-02,DE,1990\n")
    after = check_result(pipeline.reference())

    wh = pipeline.wh
    (new_key,) = set(wh.query("SELECT customer_key FROM cleaned.customers")["customer_key"]) - known
    own_key = wh.query(
        "SELECT substr(identifier_hash, 1, 16) AS k FROM cleaned.customer_identity"
        " WHERE customer_key = ?",
        [new_key],
    )
    assert own_key.height == 1  # her e-mail, now linked to her CRM key
    expected = wh.query(
        "SELECT partition_date, count(*) AS n FROM (SELECT partition_date, customer_key FROM"
        " cleaned.orders UNION ALL SELECT partition_date, customer_key FROM"
        " cleaned.interactions) WHERE customer_key = ? GROUP BY 1 ORDER BY 1",
        [own_key["k"].item()],
    )
    assert expected["n"].sum() >= 1
    assert not after.passed and after.severity == dg.AssetCheckSeverity.WARN
    assert after.metadata["records"].value == expected["n"].sum()
    assert after.metadata["days"].value == expected.height
    first = expected["partition_date"].min().isoformat()
    assert f"--from {first}" in after.metadata["finding"].value
