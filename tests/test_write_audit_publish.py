"""Write-audit-publish through the real assets: a day or reference snapshot that fails a
blocking check (contract, volume guard, reference guard) leaves the published tables exactly
as they were, fails the run and says which file, row and column; a deliberate override
publishes a real drop."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._serdes import serialize_value

import aiwf_assets.cleaning.assets as cleaning_assets
from aiwf_assets.cleaning.audit import OVERRIDE_TAG
from aiwf_assets.cleaning.transforms import CleanResult
from aiwf_assets.demo import PARTITION_RANGE_END, PARTITION_RANGE_START, landed_days, plan_runs
from aiwf_assets.generator import generate
from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.resources import build_resources
from aiwf_assets.settings import Settings
from tests.domains import data_definitions

DAILY = ["orders", "order_lines", "interactions", "quarantine", "file_accounting"]
REFERENCE = ["customers", "customer_identity", "reference_quarantine"]


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.defs = dg.Definitions.merge(
            data_definitions(settings), dg.Definitions(resources=build_resources(settings))
        )
        self.plan = plan_runs(self.defs)
        self.job = self.defs.resolve_implicit_global_asset_job_def()
        self.instance = dg.DagsterInstance.get()
        self.days = landed_days(settings.landing_dir)
        self.wh = DuckDBWarehouse(settings.warehouse_path)

    def reference(self) -> dg.ExecuteInProcessResult:
        """The customers file again (raw and cleaned)."""
        keys = [dg.AssetKey(k) for k in ("raw_customers", "customers", "customer_identity")]
        return self.job.execute_in_process(
            instance=self.instance, asset_selection=keys, raise_on_error=False
        )

    def day(
        self, day: str, channel: str | None = None, tags: dict[str, str] | None = None
    ) -> dg.ExecuteInProcessResult:
        """One day's cleaning, after re-reading `channel`'s file if given."""
        cleaned = ["orders", "order_lines", "interactions", "quarantine"]
        keys = [dg.AssetKey(k) for k in ([f"raw_{channel}"] if channel else []) + cleaned]
        return self.job.execute_in_process(
            instance=self.instance, asset_selection=keys, partition_key=day,
            tags=tags or {}, raise_on_error=False,
        )

    def deliver(
        self, first: str, last: str, tags: dict[str, str] | None = None
    ) -> dg.ExecuteInProcessResult:
        """The daily assets (raw and cleaned) of the days first..last, in one run."""
        return self.job.execute_in_process(
            instance=self.instance, asset_selection=self.plan.daily, raise_on_error=False,
            tags={PARTITION_RANGE_START: first, PARTITION_RANGE_END: last, **(tags or {})},
        )  # fmt: skip

    def snapshot(self, tables: list[str]) -> dict[str, pl.DataFrame]:
        return {t: self.wh.query(f"SELECT * FROM cleaned.{t}") for t in tables}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    event = next(e for e in result.all_events if e.is_step_failure)
    data = event.step_failure_data
    assert data is not None and data.user_failure_data is not None, data
    return data.user_failure_data.description or ""


def assert_same(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    for table, frame in before.items():
        assert after[table].sort(after[table].columns).equals(
            frame.sort(frame.columns)
        ), table


@contextmanager
def generated_pipeline(root: Path, seed: int, days: int, scale: float) -> Iterator[Pipeline]:
    """A local home under `root` with `days` generated clean days, its reference data (and
    products, which the price check reads) published; the daily days are the caller's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIWF_ENV", "local")
    mp.setenv("AIWF_HOME", str(root / "home"))
    mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    (root / "dagster_home").mkdir()
    from aiwf_assets.settings import get_settings, reset_settings_cache

    reset_settings_cache()
    settings = get_settings()
    generate(settings.home, seed=seed, days=days, scale=scale, faults=())
    p = Pipeline(settings)
    assert p.reference().success
    products = [dg.AssetKey("raw_products"), dg.AssetKey("products")]
    assert p.job.execute_in_process(instance=p.instance, asset_selection=products).success
    try:
        yield p
    finally:
        p.instance.dispose()
        reset_settings_cache()
        mp.undo()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Four clean days and the reference data, published once for the module."""
    with generated_pipeline(tmp_path_factory.mktemp("wap"), 5, 4, 0.05) as p:
        assert p.deliver(p.days[0], p.days[-1]).success
        yield p


@pytest.fixture
def restore_landing(pipeline: Pipeline) -> Iterator[Path]:
    """The landing dir; whatever a test changes in it is put back (and re-published)."""
    landing = pipeline.settings.landing_dir
    backup = landing.parent / "landing.bak"
    shutil.copytree(landing, backup)
    yield landing
    shutil.rmtree(landing)
    backup.rename(landing)


def test_a_contract_failure_leaves_the_published_day_and_names_file_row_and_column(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = pipeline.days[2]
    before = pipeline.snapshot(DAILY)
    clean_orders = cleaning_assets.clean_orders

    def broken(*args, **kwargs) -> CleanResult:  # a cleaning bug: SKUs lose their prefix
        result = clean_orders(*args, **kwargs)
        lines = result.tables["order_lines"].with_columns(pl.col("sku").str.replace("SKU-", ""))
        return CleanResult({**result.tables, "order_lines": lines}, result.quarantine,
                           result.accounting)

    monkeypatch.setattr(cleaning_assets, "clean_orders", broken)
    result = pipeline.day(day)
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))
    text = failure_text(result)
    first = pipeline.wh.query(
        "SELECT source_file, source_row FROM cleaned.order_lines WHERE partition_date = ?"
        " ORDER BY order_id, line_number LIMIT 1", [day],
    ).row(0)
    lines_of_day = before["order_lines"].filter(pl.col("partition_date").cast(pl.String) == day)
    assert f"- {day}: order_lines: str_matches" in text
    assert f"column sku in {lines_of_day.height} row(s)" in text
    assert f"file {first[0]}, row {first[1]}" in text and "more" in text
    # no run tag publishes a failed contract: the message says so and offers none
    assert "cannot be overridden: correct the landing file" in text
    assert OVERRIDE_TAG not in text
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed
              for c in result.get_asset_check_evaluations()}
    assert checks[("order_lines", "pandera_contract")] is False
    assert checks[("orders", "pandera_contract")] is True
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not materialised & {"orders", "order_lines", "interactions", "quarantine"}


def test_a_truncated_file_is_held_back_by_the_volume_guard_until_overridden(
    pipeline: Pipeline, restore_landing: Path
) -> None:
    day = pipeline.days[3]
    path = restore_landing / "pos_transactions" / f"{day}.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: max(2, len(lines) // 20)]))  # the first 5 %
    before = pipeline.snapshot(DAILY)
    result = pipeline.day(day, "pos_transactions")
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))
    text = failure_text(result)
    assert f"- {day}: pos_transactions: " in text and "trailing median" in text
    assert f"{OVERRIDE_TAG}=pos_transactions" in text and "cannot be overridden" not in text

    accepted = pipeline.day(day, tags={OVERRIDE_TAG: "pos_transactions"})
    assert accepted.success
    published = pipeline.wh.query(
        "SELECT rows_in FROM cleaned.file_accounting"
        " WHERE channel = 'pos_transactions' AND partition_date = ?", [day],
    )
    assert published["rows_in"].to_list() == [len(lines[: max(2, len(lines) // 20)]) - 1]


def test_a_day_delivered_again_with_far_fewer_records_is_held_back_until_overridden(
    pipeline: Pipeline, restore_landing: Path
) -> None:
    # 60 % of a published day's till lines, re-sent: above the volume guard's floor, but
    # the rest would vanish from a day nobody looks at again
    day = pipeline.days[1]
    path = restore_landing / "pos_transactions" / f"{day}.csv"
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[: 1 + (len(lines) - 1) * 6 // 10]
    path.write_text("".join(kept))
    before = pipeline.snapshot(DAILY)
    result = pipeline.day(day, "pos_transactions")
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))
    text = failure_text(result)
    published = before["file_accounting"].filter(
        (pl.col("channel") == "pos_transactions")
        & (pl.col("partition_date").cast(pl.String) == day)
    )["rows_in"].item()
    assert f"- {day}: pos_transactions: delivered again with {len(kept) - 1} record(s)" in text
    assert f"the {published} the day was published with" in text
    assert "trailing median" not in text  # not the volume guard's floor
    assert f"{OVERRIDE_TAG}=pos_transactions" in text

    accepted = pipeline.day(day, tags={OVERRIDE_TAG: "pos_transactions"})
    assert accepted.success
    assert pipeline.wh.query(
        "SELECT rows_in FROM cleaned.file_accounting"
        " WHERE channel = 'pos_transactions' AND partition_date = ?", [day],
    )["rows_in"].to_list() == [len(kept) - 1]


def test_an_empty_file_on_the_first_day_is_held_back_without_history(
    pipeline: Pipeline, restore_landing: Path
) -> None:
    day = pipeline.days[0]
    (restore_landing / "web_orders" / f"{day}.jsonl").write_bytes(b"")
    before = pipeline.snapshot(DAILY)
    result = pipeline.day(day, "web_orders")
    assert not result.success
    assert_same(before, pipeline.snapshot(DAILY))
    assert f"- {day}: web_orders: no record for the day" in failure_text(result)


@pytest.mark.parametrize(
    "export",
    [
        pytest.param(lambda text: text.splitlines(keepends=True)[0], id="header-only"),
        pytest.param(lambda text: text.replace("crm_id,", "customer_no,", 1), id="renamed-header"),
        pytest.param(lambda text: text.replace(",", ";"), id="semicolons"),
    ],
)
def test_an_unusable_customers_export_leaves_the_reference_tables(
    pipeline: Pipeline, restore_landing: Path, export
) -> None:
    path = restore_landing / "reference" / "customers.csv"
    path.write_text(export(path.read_text()))
    before = pipeline.snapshot(REFERENCE)
    result = pipeline.reference()
    assert not result.success
    assert_same(before, pipeline.snapshot(REFERENCE))
    text = failure_text(result)
    assert "reference file customers held back" in text
    assert "customers -> cleaned.customers: the new snapshot has no usable row" in text
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed
              for c in result.get_asset_check_evaluations()}
    assert checks[("customers", "reference_guard")] is False
    assert checks[("customer_identity", "reference_guard")] is False


def test_a_shrunk_customers_export_is_held_back(
    pipeline: Pipeline, restore_landing: Path
) -> None:
    path = restore_landing / "reference" / "customers.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))
    before = pipeline.snapshot(REFERENCE)
    result = pipeline.reference()
    assert not result.success
    assert_same(before, pipeline.snapshot(REFERENCE))
    assert "fewer than the published" in failure_text(result)


def test_a_file_cut_right_after_an_at_sign_is_held_back_and_its_last_record_masked(
    pipeline: Pipeline, restore_landing: Path
) -> None:
    day = pipeline.days[1]
    path = restore_landing / "web_orders" / f"{day}.jsonl"
    text = path.read_text()
    path.write_text(text[: text.rindex("@") + 1])  # the last order cut inside its email
    before = pipeline.snapshot(DAILY)
    held = pipeline.day(day, "web_orders")
    assert not held.success
    assert_same(before, pipeline.snapshot(DAILY))
    assert f"- {day}: web_orders: the file ends mid-record" in failure_text(held)
    result = pipeline.day(day, tags={OVERRIDE_TAG: "web_orders"})
    assert result.success
    cut = pipeline.wh.query(
        "SELECT record FROM cleaned.quarantine WHERE partition_date = ?"
        " AND channel = 'web_orders' AND reasons LIKE 'record: %'", [day],
    )
    assert cut.height == 1
    text = json.loads(cut["record"][0])["_raw_record"]
    assert '"email":"<masked>"' in text and "@" not in text


def clear_pii(landing: Path) -> set[str]:
    """Emails, phone numbers and full names as the landing files spell them."""
    crm = pl.read_csv(landing / "reference" / "customers.csv", infer_schema=False)
    names = crm.select(pl.concat_str("first_name", "last_name", separator=" ")).to_series()
    return {
        value
        for series in (crm["email"], crm["phone"], names)
        for value in series.drop_nulls().to_list()
        if value.strip()
    }


def test_no_table_after_raw_and_no_event_holds_clear_pii(pipeline: Pipeline) -> None:
    """Greps every warehouse table (quarantine and staging included) and the whole event log
    of this module's runs, the failed ones too, for the landing files' clear PII."""
    pii = clear_pii(pipeline.settings.landing_dir)
    emails = {v.lower() for v in pii if "@" in v}
    assert len(pii) > 100
    tables = pipeline.wh.query(
        "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
    )["t"].to_list()
    assert "cleaned.quarantine" in tables and "cleaned.file_accounting" in tables
    for table in tables:
        frame = pipeline.wh.query(f"SELECT * FROM {table}")
        for column, dtype in frame.schema.items():
            if dtype != pl.String:
                continue
            text = "\n".join(frame[column].drop_nulls().to_list())
            assert "@" not in text, (table, column)
            found = [v for v in pii if v in text]
            assert not found, (table, column, found[:3])
    runs = pipeline.instance.get_run_records()
    assert any(r.dagster_run.status == dg.DagsterRunStatus.FAILURE for r in runs)
    for record in runs:
        entries = pipeline.instance.all_logs(record.dagster_run.run_id)
        log = "\n".join(serialize_value(entry) for entry in entries)
        found = [v for v in pii if v in log or v.lower() in emails and v.lower() in log.lower()]
        assert not found, (record.dagster_run.run_id, found[:3])


def test_prices_in_cents_and_a_till_file_sent_twice_are_warned_about(
    pipeline: Pipeline, restore_landing: Path
) -> None:
    day = pipeline.days[2]
    pos = restore_landing / "pos_transactions" / f"{day}.csv"
    header, *lines = pos.read_text().splitlines(keepends=True)
    pos.write_text(header + "".join(lines) + "".join(lines))
    app = restore_landing / "app_orders" / f"{day}.jsonl"
    app_lines = [json.loads(line) for line in app.read_text().splitlines()]
    app.write_text(
        "".join(json.dumps({**r, "price": round(r["price"] * 100)}) + "\n" for r in app_lines)
    )
    keys = [dg.AssetKey(k) for k in ("raw_pos_transactions", "raw_app_orders", "orders",
                                      "order_lines", "interactions", "quarantine")]
    result = pipeline.job.execute_in_process(
        instance=pipeline.instance, asset_selection=keys, partition_key=day, raise_on_error=False
    )
    assert result.success  # warnings do not block
    checks = {(c.asset_key.to_user_string(), c.check_name): c
              for c in result.get_asset_check_evaluations()}
    prices = checks[("order_lines", "plausible_prices")]
    assert not prices.passed and prices.severity == dg.AssetCheckSeverity.WARN
    text = prices.metadata["findings"].value
    assert f"app_orders/{day}.jsonl: {len(app_lines)} of {len(app_lines)} line(s)" in text
    assert "median 100x" in text
    repeated = checks[("order_lines", "repeated_records")]
    assert not repeated.passed and f"{day}: pos_transactions: " in repeated.metadata[
        "findings"].value
    assert checks[("interactions", "repeated_records")].passed


def test_reference_steps_of_one_run_stage_apart() -> None:
    """Each reference step stages a reference_quarantine; steps of one run may run at once
    (multiprocess or k8s executor), so their staging tables must not share a name (one
    step's cleanup dropped the other's staged rows before)."""
    from aiwf_assets.io.warehouse import staging_table

    run_id = "4f312537-e5ac-42ef-be3d-6af958c8c4d5"
    names = {
        source: staging_table(
            "cleaned.reference_quarantine", cleaning_assets.reference_token(run_id, source)
        )
        for source in ("customers", "products", "stores", "promotion_plan")
    }
    assert len(set(names.values())) == len(names)
    assert names["promotion_plan"] == (
        "cleaned_staging.reference_quarantine__4f312537e5acpromotionplan"
    )
    assert all(len(name.split(".")[1]) <= 63 for name in names.values())  # Postgres' limit
