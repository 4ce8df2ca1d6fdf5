"""Served-path evaluation: truth keys, populations, no look-ahead, metrics by hand."""

import hashlib
import hmac
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from aiwf_assets.io.warehouse import DuckDBWarehouse
from aiwf_assets.ml import churn, demand, evaluate, features, recommend
from aiwf_assets.ml.common import limited_threads
from aiwf_assets.ml.evaluate import customer_key, evaluate_against_truth
from aiwf_assets.ml.populations import (
    ALL_SCORED,
    GUEST,
    IDENTIFIED,
    LAPSED,
    NOT_YET_LAPSED,
    with_population,
)
from tests.test_ml_marts_factory import START, make_marts

ORIGIN = START + timedelta(days=110)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with limited_threads(1):
        yield


@pytest.fixture(scope="module")
def marts() -> dict[str, pl.DataFrame]:
    return make_marts()


def test_customer_key_is_the_cleaned_layers_pseudonym() -> None:
    key = b"secret"
    expected = hmac.new(key, b"crm:C0000042", hashlib.sha256).hexdigest()[:16]
    assert customer_key("C0000042", key) == expected


def test_evaluation_without_truth_says_what_to_do(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    with pytest.raises(FileNotFoundError, match="aiwf generate"):
        evaluate_against_truth(tmp_path, warehouse, pii_key=b"k")


# ------------------------------------------------------------------ populations
def _scored() -> pl.DataFrame:
    """Three identified customers not yet lapsed, two lapsed, three guests."""
    frame = pl.DataFrame(
        {
            "customer_key": ["a", "b", "c", "d", "e", "g1", "g2", "g3"],
            "churn_risk": [0.9, 0.1, 0.2, 0.8, 0.3, 0.6, 0.4, 0.5],
            "risk_band": ["high", "low", "medium", "high", "medium", "high", "medium", "high"],
            "recency_days": [40.0, 2.0, 30.0, 50.0, 60.0, 5.0, 9.0, 1.0],
            "churned": [True, False, False, True, True, True, False, False],
            "churn_prob": [0.7, 0.1, 0.3, 1.0, 1.0, None, None, None],
            "lapsed": [False, False, False, True, True, False, False, False],
        }
    )
    return with_population(frame, pl.Series(["a", "b", "c", "d", "e", "x"]))


def test_population_split_identified_by_the_crm_and_lapsed_by_the_truth() -> None:
    scored = _scored()
    assert scored.filter(pl.col("population") == GUEST)["customer_key"].to_list() == [
        "g1",
        "g2",
        "g3",
    ]
    rows = {r["population"]: r for r in evaluate.churn_population_rows(scored, "n")}
    assert rows[ALL_SCORED]["rows"] == 8
    assert rows[IDENTIFIED]["rows"] == 5
    assert rows[NOT_YET_LAPSED]["rows"] == 3
    assert rows[LAPSED]["rows"] == 2
    assert rows[GUEST]["rows"] == 3
    # not yet lapsed: a churns (0.9), b and c do not (0.1, 0.2): perfect ranking
    assert rows[NOT_YET_LAPSED]["model"] == 1.0
    assert rows[NOT_YET_LAPSED]["truth"] == 1.0
    assert rows[NOT_YET_LAPSED]["meets_target"] is True
    # lapsed customers all churn: the share the model puts in the high band (d yes, e no)
    assert rows[LAPSED]["model"] == 0.5
    # guests: g1 churns with 0.6 above g2's 0.4 and g3's 0.5; no truth probabilities
    assert rows[GUEST]["model"] == 1.0
    assert rows[GUEST]["truth"] is None
    # recency ranks the guests backwards (g1 bought 5 days ago, g3 1 day ago: 0.5)
    assert rows[GUEST]["baseline"] == 0.5


def test_a_population_with_one_class_reports_no_auc() -> None:
    scored = _scored().with_columns(churned=pl.lit(True))
    rows = {r["population"]: r for r in evaluate.churn_population_rows(scored, "n")}
    assert rows[GUEST]["model"] is None
    assert "one class only" in rows[GUEST]["note"]


def test_realised_churn_reads_only_the_window_after_the_origin() -> None:
    origin = date(2026, 3, 1)
    activity = pl.DataFrame(
        {
            "customer_key": ["a", "b", "c", "d"],
            "activity_date": [
                origin,
                origin + timedelta(days=1),
                origin + timedelta(days=31),
                origin + timedelta(days=30),
            ],
            "n_orders": [1, 1, 1, 0],
        }
    )
    realised = evaluate.realised_churn(activity, pl.Series(["a", "b", "c", "d"]), origin, 30)
    assert dict(realised.iter_rows()) == {"a": True, "b": False, "c": True, "d": True}


# ------------------------------------------------------------------ no look-ahead
def _scrambled_after(marts: dict[str, pl.DataFrame], origin: date) -> dict[str, pl.DataFrame]:
    """Every dated mart changed after the origin: more units, other revenue, new customers."""
    shifted = dict(marts)
    for name, column in evaluate.DATED_MARTS.items():
        frame = marts[name]
        later = pl.col(column) > origin
        numeric = [c for c, t in frame.schema.items() if t.is_numeric() and c != "line_number"]
        shifted[name] = frame.with_columns(
            *(
                pl.when(later).then(pl.col(c) * 7 + 1).otherwise(pl.col(c)).alias(c)
                for c in numeric
            ),
            *(
                [
                    pl.when(later)
                    .then(pl.lit("c99999"))
                    .otherwise(pl.col("customer_key"))
                    .alias("customer_key")
                ]
                if "customer_key" in frame.columns
                else []
            ),
        )
    return shifted


def test_marts_as_of_keeps_nothing_after_the_origin(marts: dict[str, pl.DataFrame]) -> None:
    past = evaluate.marts_as_of(marts, ORIGIN)
    for name, column in evaluate.DATED_MARTS.items():
        assert past[name][column].max() <= ORIGIN
        assert past[name].height == marts[name].filter(pl.col(column) <= ORIGIN).height


def test_unknown_sales_days_as_of_the_origin(marts: dict[str, pl.DataFrame]) -> None:
    days = [ORIGIN + timedelta(days=d) for d in range(-5, 6)]
    sources = features.order_line_sources()
    accounting = pl.DataFrame(
        {
            "channel": [s for _ in days for s in sources],
            "partition_date": [d for d in days for _ in sources],
            "rows_cleaned": [5] * (len(days) * len(sources)),
        }
    ).filter(
        ~pl.col("partition_date").is_in([ORIGIN - timedelta(days=2), ORIGIN + timedelta(days=2)])
    )
    past = evaluate.marts_as_of({**marts, evaluate.ACCOUNTING: accounting}, ORIGIN)
    assert features.unknown_sales_days(past[evaluate.ACCOUNTING]) == [ORIGIN - timedelta(days=2)]
    # the origin's own files lost: no accounting row on the origin, unknown through it
    lost = accounting.filter(pl.col("partition_date") != ORIGIN)
    past = evaluate.marts_as_of({**marts, evaluate.ACCOUNTING: lost}, ORIGIN)
    assert features.unknown_sales_days(past[evaluate.ACCOUNTING], through=ORIGIN) == [
        ORIGIN - timedelta(days=2),
        ORIGIN,
    ]


def test_served_demand_reads_unknown_days_through_the_origin(
    marts: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    class Seen(Exception):
        pass

    def spy(accounting: pl.DataFrame, sources: object = None, **kwargs: object) -> list[date]:
        seen.update(kwargs, days=accounting["partition_date"].max())
        raise Seen

    monkeypatch.setattr(features, "unknown_sales_days", spy)
    accounting = pl.DataFrame(
        {
            "channel": ["web_orders"] * 2,
            "partition_date": [ORIGIN, ORIGIN + timedelta(days=1)],
            "rows_cleaned": [5, 5],
        }
    )
    with pytest.raises(Seen):
        evaluate.served_demand({**marts, evaluate.ACCOUNTING: accounting}, ORIGIN, 7)
    assert seen == {"through": ORIGIN, "days": ORIGIN}


@pytest.fixture
def small_grids(monkeypatch: pytest.MonkeyPatch) -> None:
    """One candidate per family: the same code path, a fraction of the fits."""
    monkeypatch.setattr(churn, "CANDIDATES", {"logistic_regression": (churn._logistic, [{}])})
    monkeypatch.setattr(demand, "GRID", demand.GRID[:1])
    monkeypatch.setattr(recommend, "CANDIDATES", recommend.CANDIDATES[:1])


@pytest.mark.usefixtures("small_grids")
def test_served_outputs_do_not_read_after_the_origin(marts: dict[str, pl.DataFrame]) -> None:
    changed = _scrambled_after(marts, ORIGIN)
    assert not changed["fct_product_daily_sales"].equals(marts["fct_product_daily_sales"])
    assert_frame_equal(
        evaluate.served_churn(marts, ORIGIN, 30), evaluate.served_churn(changed, ORIGIN, 30)
    )
    forecast = evaluate.served_demand(marts, ORIGIN, 28)
    assert_frame_equal(forecast, evaluate.served_demand(changed, ORIGIN, 28))
    # one forecast per day after the origin, horizons 1..28
    assert forecast["date"].min() == ORIGIN + timedelta(days=1)
    assert sorted(forecast["horizon_day"].unique().to_list()) == list(range(1, 29))
    served, popular, _ = evaluate.served_recommendations(marts, ORIGIN)
    served_changed, popular_changed, _ = evaluate.served_recommendations(changed, ORIGIN)
    assert_frame_equal(served, served_changed)
    assert_frame_equal(popular, popular_changed)


# ------------------------------------------------------------------ metrics by hand
def test_demand_rows_wape_bias_and_targets_by_hand() -> None:
    forecasts = pl.DataFrame(
        {
            "band": ["1-7"] * 4,
            "campaign_day": [True, True, False, False],
            "forecast_units": [9.0, 9.0, 4.0, 6.0],
            "moving_average_28": [5.0, 5.0, 5.0, 5.0],
            "expected_units": [10.0, 10.0, 5.0, 5.0],
            "actual_units": [10, 10, 4, 6],
        }
    )
    rows = {r["population"]: r for r in evaluate.demand_rows(forecasts, "n")}
    everything = rows["h1-7, all days"]
    assert everything["model"] == pytest.approx(2 / 30)  # |9-10| + |9-10|
    assert everything["truth"] == pytest.approx(2 / 30)  # |5-4| + |5-6|
    assert everything["baseline"] == pytest.approx(12 / 30)
    assert everything["bias"] == pytest.approx(-2 / 30)
    assert everything["meets_target"] is True
    campaign = rows["h1-7, campaign days"]
    assert campaign["bias"] == pytest.approx(-0.1)
    assert campaign["meets_target"] is True  # exactly -10 % is within +-10 %
    assert rows["h1-7, other days"]["bias"] == pytest.approx(0.0)
    assert "target" not in rows["h1-7, other days"]


def test_demand_rows_split_the_other_days_by_the_published_plan() -> None:
    """A planned campaign that did not run (called off): the forecast lifted it; the rows
    say what that costs, and 'all days but ...' leaves those days out of the headline."""
    forecasts = pl.DataFrame(
        {
            "band": ["1-7"] * 5,
            "campaign_day": [True, False, False, False, True],
            "planned_campaign": [True, True, True, False, False],  # the last ran unannounced
            "forecast_units": [10.0, 13.0, 13.0, 6.0, 5.0],
            "moving_average_28": [5.0] * 5,
            "expected_units": [10.0, 10.0, 10.0, 5.0, 10.0],
            "actual_units": [10, 10, 10, 5, 10],
        }
    )
    rows = {r["population"]: r for r in evaluate.demand_rows(forecasts, "n")}
    not_run = rows["h1-7, planned days without a campaign"]
    assert not_run["rows"] == 2
    assert not_run["model"] == pytest.approx(6 / 20)
    assert not_run["bias"] == pytest.approx(0.3)
    unplanned = rows["h1-7, other days, not planned"]
    assert unplanned["rows"] == 1
    assert unplanned["model"] == pytest.approx(1 / 5)
    rest = rows["h1-7, all days but planned days without a campaign"]
    assert rest["rows"] == 3  # the campaign days (planned or not) and the unplanned day
    assert rest["model"] == pytest.approx((0 + 1 + 5) / 25)
    assert "target" not in rest  # the headline stays all days
    assert rows["h1-7, all days"]["model"] == pytest.approx((0 + 3 + 3 + 1 + 5) / 45)
    # without the plan's column the rows are the three kinds as before
    plain = evaluate.demand_rows(forecasts.drop("planned_campaign"), "n")
    assert [r["population"] for r in plain] == [
        "h1-7, all days",
        "h1-7, campaign days",
        "h1-7, other days",
    ]


def test_campaign_dates_cover_every_campaign_day() -> None:
    promotions = pl.DataFrame(
        {
            "start_date": [date(2026, 2, 1), date(2026, 2, 2)],
            "end_date": [date(2026, 2, 3), date(2026, 2, 2)],
        }
    )
    assert evaluate.campaign_dates(promotions).to_list() == [
        date(2026, 2, 1),
        date(2026, 2, 2),
        date(2026, 2, 3),
    ]


def test_hit_rates_per_customer_by_hand() -> None:
    served = pl.DataFrame({"customer_key": ["a", "a", "b"], "sku": ["x", "y", "z"]})
    popular = pl.DataFrame({"customer_key": ["a", "b", "b"], "sku": ["p", "p", "z"]})
    targets = pl.DataFrame({"customer_key": ["a", "b", "c"], "sku": ["y", "q", "x"]})
    hits = evaluate.hit_rates(served, popular, targets).sort("customer_key")
    assert hits["hit"].to_list() == [True, False, False]
    assert hits["popular_hit"].to_list() == [False, False, False]


def test_demand_origins_leave_the_whole_band_observed() -> None:
    last = date(2026, 4, 30)
    origins = evaluate.demand_origins(last, 28, 2)
    assert origins == [date(2026, 4, 2), date(2026, 3, 26)]
    assert all(o + timedelta(days=28) <= last for o in origins)


def test_evaluation_fits_with_the_assets_thread_cap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each family's evaluation runs under one OpenMP/BLAS thread, as the model assets do."""
    from threadpoolctl import threadpool_info, threadpool_limits

    for name in ("churn", "customers", "demand", "promotions"):
        pl.DataFrame({"x": [1]}).write_parquet(tmp_path / f"{name}.parquet")
    seen: list[set[int]] = []

    def record(*_: object) -> list[dict[str, object]]:
        seen.append({pool["num_threads"] for pool in threadpool_info()})
        return []

    for family in ("churn", "demand", "recommendations", "segmentation"):
        monkeypatch.setattr(evaluate, f"evaluate_{family}", record)
    with threadpool_limits(limits=2):  # what the host would otherwise give the fits
        evaluate.evaluate_marts({}, tmp_path, b"k")
    assert seen == [{1}] * 4
