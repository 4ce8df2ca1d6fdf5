"""A real third-party export, through configuration alone: a UK online retailer's invoice
lines (tests/fixtures/uk_retailer) declared in a YAML file given by AIWF_SOURCES, from landing
to customer_rfm in a fresh process, with no code change.

The fixture has the shape of such exports: alphanumeric stock codes with letter suffixes
(85123A beside 85123, a lower-case 85123a), `C` invoices cancelling with negative
quantities, customer ids blank or written as `17850.0`, GBP prices, UK local times across
the BST -> GMT switch (25 Oct 2026), postage, carriage, bank-charge, manual and discount
lines, four days in one file, an undeclared negative quantity and a row broken by an
unquoted comma. A dated rate file gives GBP a different rate on each day but the first
(which falls back to the constant rate), and the packaged sources are switched off
(`replace_packaged: true`), so no publish guard needs an override.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest

from aiwf_assets.ingest.spec import DEFAULT_SOURCES_PATH, load_sources, parse_documents

FIXTURE = Path(__file__).parent / "fixtures" / "uk_retailer"
REPO = Path(__file__).resolve().parent.parent
FILE_DAY = "2026-10-27"  # the export is named by its last day
GBP_TO_EUR = Decimal("1.17")  # the packaged sources.yaml rate: the fallback
NON_MERCHANDISE = {"POST", "DOT", "C2", "BANK CHARGES", "M", "D"}

# Runs in a fresh interpreter so the sources (and so the asset graph) come from AIWF_SOURCES.
# Fails on a failed step or a failed check that is not a warning; prints what it built.
RUN = textwrap.dedent(
    """
    import json
    import dagster as dg
    from aiwf_assets.definitions import defs
    from aiwf_assets.demo import plan_runs

    graph = defs.resolve_asset_graph()
    plan = plan_runs(defs)
    layers = {"raw", "cleaned", "marts"}
    daily = [k for k in plan.daily if graph.get(k).group_name in layers]
    # customer_rfm, and dim_products (no catalogue: empty, warned about, nothing fails)
    wanted = {dg.AssetKey("customer_rfm"), dg.AssetKey("dim_products")}
    wanted |= {a for k in set(wanted) for a in graph.get_ancestor_asset_keys(k)}
    after = [k for k in plan.after if k in wanted]
    job = defs.resolve_implicit_global_asset_job_def()
    report = {"assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys())}
    warned, checked = [], []
    with dg.DagsterInstance.get() as instance:
        # the packaged sources are switched off: no guard override (aiwf/accept_drop) needed
        for keys, tags in (
            (plan.before, {}),
            (daily, {"dagster/asset_partition_range_start": "%(first)s",
                     "dagster/asset_partition_range_end": "%(last)s"}),
            (after, {}),
        ):
            result = job.execute_in_process(
                instance=instance, asset_selection=keys, tags=tags, raise_on_error=False
            )
            failed = [
                e.step_failure_data.error.message for e in result.all_events if e.is_step_failure
            ]
            assert result.success, failed
            for check in result.get_asset_check_evaluations():
                assert check.passed or check.severity == dg.AssetCheckSeverity.WARN, (
                    check.asset_key, check.check_name, check.metadata,
                )
                checked.append([check.check_name, check.passed])
                warned.extend(
                    [check.asset_key.to_user_string(), check.check_name]
                    for _ in [1] if not check.passed
                )
        record = instance.get_latest_materialization_event(dg.AssetKey("order_lines"))
        meta = record.asset_materialization.metadata
        if "rate_fallbacks" in meta:
            report["rate_fallbacks"] = meta["rate_fallbacks"].value
    report["warned"], report["checked"] = warned, checked
    print("REPORT" + json.dumps(report))
    """
)


def run_to_marts(home: Path, sources: Path, first: str, last: str) -> dict:
    """Build raw -> cleaned -> marts for the days `first`..`last` landed under `home`, with
    the sources of the AIWF_SOURCES file `sources`, in a fresh process; what RUN printed:
    asset keys, checks run (name, passed), failed WARN checks, rate fallbacks if any."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIWF_ENV": "local",
        "AIWF_HOME": str(home),
        "AIWF_SOURCES": str(sources),
        "AIWF_PII_KEY": "third-party-test-key",
        "DAGSTER_HOME": str(home / "dagster_home"),
        # parse the dbt project on load, as `dagster dev` does: a manifest left in the
        # checkout by an older version of the models must not be used
        "DAGSTER_IS_DEV_CLI": "1",
    }
    (home / "dagster_home").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", RUN % {"first": first, "last": last}], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return json.loads(done.stdout.split("REPORT", 1)[1])


@dataclass(frozen=True)
class Run:
    home: Path
    source_rows: list[dict[str, str]]  # the readable rows of the export, as written
    report: dict  # what the run printed: asset keys, failed WARN checks, rate fallbacks

    def query(self, sql: str) -> pl.DataFrame:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.sql(sql).pl()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("uk_home")
    landing = home / "landing" / "uk_invoices"
    landing.mkdir(parents=True)
    (landing / f"{FILE_DAY}.csv").write_bytes((FIXTURE / "invoices.csv").read_bytes())
    (home / "landing" / "reference").mkdir()
    (home / "landing" / "reference" / "exchange_rates.csv").write_bytes(
        (FIXTURE / "exchange_rates.csv").read_bytes()
    )
    report = run_to_marts(home, FIXTURE / "sources.yaml", FILE_DAY, FILE_DAY)
    with (FIXTURE / "invoices.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r]  # the unquoted-comma row aside
    return Run(home, rows, report)


def _rates() -> dict[date, Decimal]:
    """GBP's dated rates in the fixture's rate file (upper-cased codes, as declared)."""
    with (FIXTURE / "exchange_rates.csv").open(newline="") as f:
        return {
            date.fromisoformat(r["date"]): Decimal(r["rate_to_eur"])
            for r in csv.DictReader(f) if r["currency"].upper() == "GBP"
        }


def _order_day(row: dict[str, str]) -> date:
    """The UTC day of the row's UK local time (the repeated autumn hour read as BST)."""
    local = datetime.strptime(row["InvoiceDate"], "%d/%m/%Y %H:%M")
    return local.replace(tzinfo=ZoneInfo("Europe/London"), fold=0).astimezone(
        ZoneInfo("UTC")
    ).date()


def _merchandise(row: dict[str, str]) -> bool:
    return row["StockCode"].strip().upper() not in NON_MERCHANDISE


def _cleaned_source_rows(run: Run) -> list[dict[str, str]]:
    """Source rows that are not quarantined: the one undeclared negative quantity is."""
    return [r for r in run.source_rows if not (int(r["Quantity"]) < 0 and r["Invoice"][0] != "C")]


def test_the_export_is_declared_outside_the_image_without_code() -> None:
    packaged = load_sources()
    assert "uk_invoices" not in packaged.sources
    overlaid = parse_documents(
        [
            (str(DEFAULT_SOURCES_PATH), DEFAULT_SOURCES_PATH.read_text()),
            (str(FIXTURE / "sources.yaml"), (FIXTURE / "sources.yaml").read_text()),
        ]
    )
    assert overlaid["uk_invoices"].channel == "online_uk"
    assert set(overlaid.sources) == {"uk_invoices", "exchange_rates"}
    assert overlaid.disabled == set(packaged.sources)  # replace_packaged: true


def test_every_distinct_stock_code_is_a_distinct_product(run: Run) -> None:
    written = {r["StockCode"].strip().upper() for r in _cleaned_source_rows(run) if _merchandise(r)}
    assert {"85123A", "85123", "85099B", "85099C", "85099F"} <= written
    lines = run.query(
        "select distinct sku from marts.fct_order_lines where line_kind = 'product'"
    )
    assert set(lines["sku"]) == written
    sales = run.query("select distinct sku from marts.fct_product_daily_sales")
    assert set(sales["sku"]) == written


def test_cancellations_are_returns_and_net_is_gross_minus_returns(run: Run) -> None:
    orders = run.query("select * from marts.fct_orders where channel = 'online_uk'")
    returns = orders.filter(pl.col("is_return"))
    assert sorted(returns["order_id"]) == [
        "online_uk:C536379", "online_uk:C536383", "online_uk:C536391",
    ]
    # C536379 cancels a discount (stock code D): money of the order, no unit of goods
    units = dict(zip(returns["order_id"], returns["n_units"], strict=True))
    assert units.pop("online_uk:C536379") == 0 and all(u < 0 for u in units.values())
    assert (returns["gross_amount"] == 0).all()
    gross, returned, net = orders.select(
        pl.col("gross_amount").sum(), pl.col("returns_amount").sum(), pl.col("order_total").sum()
    ).row(0)
    assert returned > 0 and net == pytest.approx(gross - returned, abs=1e-6)
    lines = run.query("select * from marts.fct_order_lines where is_return")
    assert (lines["quantity"] < 0).all() and (lines["line_amount"] < 0).all()
    # the customer of C536383 also bought; RFM counts purchases and nets the cancellation
    rfm = run.query("select * from marts.customer_rfm")
    customer = orders.filter(pl.col("order_id") == "online_uk:C536383")["customer_key"][0]
    theirs = orders.filter(pl.col("customer_key") == customer)
    mine = rfm.filter(pl.col("customer_key") == customer).row(0, named=True)
    assert mine["frequency"] == theirs.filter(~pl.col("is_return")).height == 1
    assert mine["monetary"] == round(float(theirs["order_total"].sum()), 2)
    assert mine["online_uk_share"] == 1.0
    # the packaged channels are switched off: no column for them anywhere
    assert "web_share" not in rfm.columns


def test_an_undeclared_negative_quantity_is_still_quarantined(run: Run) -> None:
    quarantine = run.query("select source_row, reasons from cleaned.quarantine order by 1")
    assert quarantine.rows() == [
        (43, "record: CSV row has 9 fields, header has 8"),
        (46, "quantity: must be > 0 (-10)"),
    ]


def test_non_product_lines_are_booked_as_such(run: Run) -> None:
    kinds = run.query(
        "select sku, line_kind from marts.fct_order_lines where line_kind <> 'product' order by 1"
    )
    assert kinds.rows() == [
        ("BANK CHARGES", "fee"), ("C2", "postage"), ("D", "discount"), ("DOT", "postage"),
        ("M", "adjustment"), ("POST", "postage"),
    ]
    quarantine = run.query("select reasons from cleaned.quarantine")
    assert not quarantine.filter(pl.col("reasons").str.contains("sku")).height


def test_the_cleaned_total_is_the_source_total_at_each_days_rate_to_the_cent(
    run: Run,
) -> None:
    """Each line converts at GBP's rate for its UTC order day in the rate file; the 23rd has
    none and falls back to the constant rate (reported in the order_lines metadata)."""
    rates = _rates()
    rows = _cleaned_source_rows(run)
    days = {_order_day(r) for r in rows}
    assert len({rates.get(d, GBP_TO_EUR) for d in days}) == len(days) == 5  # a rate per day
    source_gbp = sum(Decimal(r["Quantity"]) * Decimal(r["Price"]) for r in rows)
    source_eur = sum(
        Decimal(r["Quantity"]) * Decimal(r["Price"]) * rates.get(_order_day(r), GBP_TO_EUR)
        for r in rows
    )
    cleaned = run.query(
        "select sum(line_amount_source) as gbp, sum(cast(line_amount as decimal(38, 9))) as eur "
        "from cleaned.order_lines"
    ).row(0, named=True)
    assert Decimal(str(cleaned["gbp"])).quantize(Decimal("0.01")) == source_gbp
    assert abs(Decimal(cleaned["eur"]) - source_eur) < Decimal("0.005")
    net = run.query("select sum(order_total) as eur from marts.fct_orders").row(0)[0]
    assert Decimal(str(round(net, 2))) == source_eur.quantize(Decimal("0.01"))
    # the day's own rate, line by line (order_date is the UTC day)
    by_day = run.query(
        "select order_date, sum(line_amount) / sum(line_amount_source) as rate "
        "from cleaned.order_lines group by 1 order by 1"
    )
    for day, rate in by_day.iter_rows():
        assert rate == pytest.approx(float(rates.get(day, GBP_TO_EUR)), abs=1e-9)
    fallbacks = run.report["rate_fallbacks"]
    fallback_lines = sum(1 for r in rows if _order_day(r) not in rates)
    assert "| 2026-10-23 | GBP | " + str(fallback_lines) + " | 1.17 |" in fallbacks
    assert "2026-10-24" not in fallbacks


def test_packaged_sources_are_switched_off_without_an_override(run: Run) -> None:
    """replace_packaged: no landing or raw asset for the packaged sources; the reference
    tables they fed are published empty on purpose (dim_products warns, nothing fails)."""
    assets = set(run.report["assets"])
    assert {"raw_uk_invoices", "raw_exchange_rates", "exchange_rates"} <= assets
    assert not {"raw_web_orders", "raw_customers", "raw_products", "landing_stores"} & assets
    assert run.query("select count(*) from cleaned.customer_identity").item() == 0
    assert run.query("select count(*) from marts.dim_products").item() == 0
    assert any(
        key == "dim_products" and "min_row_count" in check for key, check in run.report["warned"]
    ), run.report["warned"]


def test_a_file_spanning_days_lands_in_the_partition_it_is_named_by(run: Run) -> None:
    """docs/SOURCES.md: rows stay in the file's partition; order_date is their own (UTC) day."""
    lines = run.query(
        "select distinct partition_date, order_date from cleaned.order_lines order by 2"
    )
    assert set(lines["partition_date"]) == {date(2026, 10, 27)}
    # 00:26 BST on the 24th is 23:26 UTC on the 23rd; 01:30 on the 25th (the repeated hour)
    # is read as BST, 00:30 UTC
    assert lines["order_date"].to_list() == [date(2026, 10, d) for d in (23, 24, 25, 26, 27)]
    at = run.query(
        "select order_id, ordered_at from cleaned.orders "
        "where order_id in ('online_uk:536381', 'online_uk:536382') order by 1"
    )
    assert [t.astimezone().utctimetuple()[3:5] for t in at["ordered_at"]] == [(0, 30), (3, 15)]
