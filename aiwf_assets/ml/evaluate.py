"""Model quality on the served path, per population, against the generator's latent truth.

Evaluation only: the pipeline never imports this module and never reads
`truth/`. Every number comes from what the pipeline *serves*: at each origin
the marts are cut at the origin (`marts_as_of`: nothing dated later is passed
on), the pipeline's own feature, training and scoring functions run with the
assets' default configuration, exactly as a schedule running on that day
would have produced the served output, and only then is the served output
compared with what happened after the origin:

- churn, at the truth's cutoff: ROC AUC of the served risk vs of the true
  churn probabilities (the ceiling) vs recency, for all scored customers,
  identified customers not yet lapsed (the ones a retention action can still
  win back), identified customers already lapsed (every one churns: the share
  the model ranks high) and guests (realised labels: the truth has no
  probabilities for guests);
- demand, from weekly rolling origins: WAPE and bias of the served forecast
  vs the truth's expected units (ceiling) vs a 28-day moving average, for
  horizons 1-7 (the served `horizon_days: 7`) and 8-28 (`horizon_days: 28`),
  campaign days and other days;
- recommendations, from rolling origins 14 days apart: hit rate@10 of the
  served lists vs popularity on the next 14 days' new purchases, identified
  customers and guests;
- segmentation, at the last day: adjusted Rand index of the served segments
  against the truth's segments (identified customers), vs monetary terciles.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from aiwf_assets.io.warehouse import Warehouse
from aiwf_assets.ml import churn, demand, features, recommend, segmentation
from aiwf_assets.ml.common import limited_threads, wape
from aiwf_assets.ml.marts import read_file_accounting, read_mart, read_promotion_plan
from aiwf_assets.ml.populations import (
    ALL_SCORED,
    GUEST,
    IDENTIFIED,
    LAPSED,
    NOT_YET_LAPSED,
    identified_keys,
    with_population,
)

CHURN_TARGET = 0.97  # served AUC >= 0.97 x the truth's on identified, not yet lapsed
DEMAND_TARGET = 1.15  # h1-7 WAPE <= 1.15 x the truth's expected demand's
DEMAND_VS_MOVING_AVERAGE = 0.9  # and at least 10 % below a 28-day moving average
CAMPAIGN_BIAS = 0.10  # h1-7 campaign-day bias within +-10 %
RECS_TARGET = 1.5  # identified customers' hit rate >= 1.5 x popularity's
ARI_TARGET = 0.5

# as the assets' default configuration serves them
CHURN_SNAPSHOTS, CHURN_STEP_DAYS = 10, 7
DEMAND_HOLDOUT_DAYS = 28
# (first horizon, last horizon, the horizon_days the demand assets are configured with)
DEMAND_BANDS = ((1, 7, 7), (8, 28, 28))
DEMAND_ORIGINS = 4  # weekly origins per band
RECS_HOLDOUT_DAYS, RECS_ORIGINS, K = 14, 2, 10
SEGMENT_K = range(2, 9)
SEGMENT_SAMPLE = 2000

DATED_MARTS = {
    "fct_customer_daily_activity": "activity_date",
    "fct_orders": "order_date",
    "fct_product_daily_sales": "sales_date",
    "fct_order_lines": "order_date",
}
MARTS = (*DATED_MARTS, "dim_customers", "dim_products")
ACCOUNTING = "file_accounting"  # cleaned.file_accounting, read alongside the marts

RESULT_SCHEMA = {
    "family": pl.String,
    "population": pl.String,
    "metric": pl.String,
    "model": pl.Float64,
    "truth": pl.Float64,
    "baseline": pl.Float64,
    "baseline_name": pl.String,
    "bias": pl.Float64,
    "target": pl.String,
    "meets_target": pl.Boolean,
    "rows": pl.Int64,
    "note": pl.String,
}


class TruthMissingError(FileNotFoundError):
    """The home has no generated truth to evaluate against."""


@dataclass(frozen=True)
class TruthEvaluation:
    table: pl.DataFrame
    markdown: str


def customer_key(crm_id: str, pii_key: bytes) -> str:
    """The cleaned layer's pseudonymous key of a CRM customer (see DATA_CONTRACTS.md)."""
    return hmac.new(pii_key, f"crm:{crm_id}".encode(), hashlib.sha256).hexdigest()[:16]


def _keyed(truth: pl.DataFrame, pii_key: bytes) -> pl.DataFrame:
    return truth.with_columns(
        customer_key=pl.col("crm_id")
        .cast(pl.String)
        .map_elements(lambda crm_id: customer_key(crm_id, pii_key), return_dtype=pl.String)
    )


def marts_as_of(marts: dict[str, pl.DataFrame], origin: date) -> dict[str, pl.DataFrame]:
    """The marts as the pipeline saw them on the origin: nothing dated after it."""
    dated = {**DATED_MARTS, ACCOUNTING: "partition_date"}
    return {
        name: frame.filter(pl.col(dated[name]) <= origin) if name in dated else frame
        for name, frame in marts.items()
    }


# ---------------------------------------------------------------- served outputs
def served_churn(marts: dict[str, pl.DataFrame], origin: date, horizon_days: int) -> pl.DataFrame:
    """customer_features -> churn_model -> churn_scores as run on the origin.

    Columns: customer_key, churn_risk, risk_band, recency_days (the baseline's input).
    """
    past = marts_as_of(marts, origin)
    activity = past["fct_customer_daily_activity"]
    dates = features.snapshot_dates(
        origin,
        activity["activity_date"].min(),  # type: ignore[arg-type]
        horizon_days,
        CHURN_SNAPSHOTS,
        CHURN_STEP_DAYS,
    )
    snapshots = features.customer_feature_snapshots(
        activity, past["fct_orders"], past["dim_customers"], dates
    )
    buying_days = activity.filter(pl.col("n_orders") > 0).select("customer_key", "activity_date")
    outcome = churn.train_churn(snapshots, buying_days, horizon_days)
    current = snapshots.filter(pl.col("as_of_date") == origin).select(
        "customer_key", "recency_days"
    )
    return (
        churn.score_customers(outcome.artifact, snapshots)
        .select("customer_key", "churn_risk", "risk_band")
        .join(current, on="customer_key")
    )


def served_demand(
    marts: dict[str, pl.DataFrame],
    origin: date,
    horizon_days: int,
    plan: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """demand_features -> demand_model -> demand_forecast as run on the origin.

    `plan` is cleaned.promotion_plan; the features read only the campaigns published
    by the origin. Columns: sku, date, horizon_day, forecast_units, model_units,
    campaign_uplift, blend_weight, planned, planned_campaign, moving_average_28 (the
    product's mean daily units over the 28 days up to the origin).
    """
    past = marts_as_of(marts, origin)
    unknown = (
        features.unknown_sales_days(past[ACCOUNTING], through=origin) if ACCOUNTING in past else []
    )
    grid = features.demand_features(
        past["fct_product_daily_sales"],
        past["dim_products"],
        origin,
        horizon_days,
        unknown,
        plan,
    )
    outcome = demand.train_demand(grid, DEMAND_HOLDOUT_DAYS)
    moving_average = (
        grid.filter(~pl.col("is_future"), pl.col("date") > origin - timedelta(days=28))
        .group_by("sku")
        .agg(moving_average_28=pl.col("units").cast(pl.Float64).sum() / 28)
    )
    return (
        demand.forecast(outcome.artifact, grid)
        .join(moving_average, on="sku", how="left")
        .with_columns(pl.col("moving_average_28").fill_null(0.0))
    )


def served_recommendations(
    marts: dict[str, pl.DataFrame], origin: date
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """interaction_matrix -> recommender -> recommendations as run on the origin.

    Returns (served top-K, popularity's top-K for the same customers, the pairs).
    """
    past = marts_as_of(marts, origin)
    pairs = features.interaction_pairs(
        past["fct_order_lines"], origin, past["dim_customers"]
    ).with_columns(as_of_date=pl.lit(origin))
    outcome = recommend.train_recommender(pairs, RECS_HOLDOUT_DAYS, K)
    served = recommend.top_recommendations(outcome.artifact, pairs, K)
    popular = recommend.top_recommendations(recommend.fit("popularity", {}, pairs), pairs, K)
    return served, popular, pairs


def served_segments(marts: dict[str, pl.DataFrame], origin: date) -> pl.DataFrame:
    """customer_features -> segmentation_model -> customer_segments as run on the origin."""
    past = marts_as_of(marts, origin)
    current = features.customer_features_as_of(
        past["fct_customer_daily_activity"], past["fct_orders"], past["dim_customers"], origin
    )
    outcome = segmentation.train_segmentation(current, SEGMENT_K, SEGMENT_SAMPLE)
    return segmentation.assign_segments(outcome.artifact, current).join(
        current.select("customer_key", "monetary"), on="customer_key"
    )


# ---------------------------------------------------------------- metrics
def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when the population holds one class only."""
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else None


def realised_churn(
    activity: pl.DataFrame, keys: pl.Series, origin: date, horizon_days: int
) -> pl.DataFrame:
    """customer_key, churned: no order in (origin, origin + horizon] (from what happened)."""
    buyers = (
        activity.filter(
            pl.col("n_orders") > 0,
            pl.col("activity_date") > origin,
            pl.col("activity_date") <= origin + timedelta(days=horizon_days),
        )
        .select("customer_key")
        .unique()
    )
    return pl.DataFrame({"customer_key": keys}).with_columns(
        churned=~pl.col("customer_key").is_in(buyers["customer_key"].implode())
    )


def churn_population_rows(scored: pl.DataFrame, note: str) -> list[dict[str, Any]]:
    """Rows per population of `scored`: customer_key, population, lapsed, churn_risk,
    risk_band, recency_days, churned and churn_prob (null without a truth probability)."""
    populations: list[tuple[str, pl.Expr]] = [
        (ALL_SCORED, pl.lit(True)),
        (IDENTIFIED, pl.col("population") == IDENTIFIED),
        (NOT_YET_LAPSED, (pl.col("population") == IDENTIFIED) & ~pl.col("lapsed")),
        (LAPSED, (pl.col("population") == IDENTIFIED) & pl.col("lapsed")),
        (GUEST, pl.col("population") == GUEST),
    ]
    rows = []
    for name, member in populations:
        part = scored.filter(member)
        labels = part["churned"].cast(pl.Int8).to_numpy()
        if name == LAPSED:
            # all of them churn: what matters is whether the model ranks them high
            rows.append(
                {
                    "family": "churn",
                    "population": name,
                    "metric": "share in the high band",
                    "model": float((part["risk_band"] == "high").mean() or 0.0),
                    "truth": 1.0 if part.height else None,
                    "rows": part.height,
                    "target": "none (report)",
                    "note": note,
                }
            )
            continue
        model = _auc(labels, part["churn_risk"].to_numpy()) if part.height else None
        has_truth = part.height > 0 and part["churn_prob"].null_count() == 0
        truth = _auc(labels, part["churn_prob"].to_numpy()) if has_truth else None
        row: dict[str, Any] = {
            "family": "churn",
            "population": name,
            "metric": "roc_auc",
            "model": model,
            "truth": truth,
            "baseline": _auc(labels, part["recency_days"].to_numpy()) if part.height else None,
            "baseline_name": "recency",
            "rows": part.height,
            "note": note if model is not None else f"{note}; one class only: AUC undefined",
        }
        if name == NOT_YET_LAPSED:
            row["target"] = f">= {CHURN_TARGET} x truth"
            row["meets_target"] = (
                model is not None and truth is not None and model >= CHURN_TARGET * truth
            )
        rows.append(row)
    return rows


def evaluate_churn(
    marts: dict[str, pl.DataFrame],
    churn_truth: pl.DataFrame,
    customers_truth: pl.DataFrame,
    pii_key: bytes,
) -> list[dict[str, Any]]:
    if churn_truth.is_empty():
        raise ValueError(
            "the generated period is too short to have a churn cutoff (the truth is empty); "
            "generate more days"
        )
    origin: date = churn_truth["cutoff_date"].max()  # type: ignore[assignment]
    truth = churn_truth.filter(pl.col("cutoff_date") == origin)
    horizon = int(truth["horizon_days"][0])
    served = served_churn(marts, origin, horizon)
    truth = _keyed(truth, pii_key).select("customer_key", "churn_prob", "churned")
    lapsed = (
        _keyed(customers_truth, pii_key)
        .filter(pl.col("lapsed_on") <= origin)
        .select("customer_key")
    )
    realised = realised_churn(
        marts["fct_customer_daily_activity"], served["customer_key"], origin, horizon
    )
    scored = (
        with_population(served, identified_keys(marts["dim_customers"]))
        .join(truth, on="customer_key", how="left")
        .join(realised.rename({"churned": "realised"}), on="customer_key")
        .with_columns(
            churned=pl.coalesce("churned", "realised"),
            lapsed=pl.col("customer_key").is_in(lapsed["customer_key"].implode()),
        )
    )
    note = (
        f"served at {origin} (the truth's cutoff), {horizon}-day horizon; guests' labels "
        "realised from the marts (the truth has no guest probabilities)"
    )
    return churn_population_rows(scored, note)


def campaign_dates(promotions: pl.DataFrame) -> pl.Series:
    """Every day inside a campaign of the truth's calendar."""
    if promotions.is_empty():
        return pl.Series("date", [], dtype=pl.Date)
    return (
        promotions.select(date=pl.date_ranges("start_date", "end_date", interval="1d"))
        .explode("date")
        .unique()
        .sort("date")["date"]
    )


PLANNED_NOT_RUN = "planned days without a campaign"


def demand_rows(forecasts: pl.DataFrame, note: str) -> list[dict[str, Any]]:
    """Rows per horizon band x day kind from forecasts joined to the truth.

    `forecasts`: band, campaign_day, forecast_units, moving_average_28,
    expected_units, actual_units, and optionally planned_campaign (the published plan
    marked the day as a campaign day when the forecast was made). With it, the other days
    are also split by the plan: days planned as campaign days on which no campaign ran
    (called off or moved: the served forecast lifts them, nothing can tell it otherwise)
    and days neither planned nor run, and one more row leaves the former out of all days,
    so the table says how much of the error the plan's misses make.
    """
    kinds = [
        ("all days", pl.lit(True)),
        ("campaign days", pl.col("campaign_day")),
        ("other days", ~pl.col("campaign_day")),
    ]
    if "planned_campaign" in forecasts.columns:
        missed_plan = pl.col("planned_campaign") & ~pl.col("campaign_day")
        kinds += [
            (PLANNED_NOT_RUN, missed_plan),
            ("other days, not planned", ~pl.col("planned_campaign") & ~pl.col("campaign_day")),
            (f"all days but {PLANNED_NOT_RUN}", ~missed_plan),
        ]
    rows = []
    for band in forecasts["band"].unique(maintain_order=True).to_list():
        for kind, member in kinds:
            part = forecasts.filter(pl.col("band") == band, member)
            actual = part["actual_units"].cast(pl.Float64).to_numpy()
            if actual.sum() == 0:
                continue
            forecast = part["forecast_units"].to_numpy()
            row: dict[str, Any] = {
                "family": "demand",
                "population": f"h{band}, {kind}",
                "metric": "wape",
                "model": wape(actual, forecast),
                "truth": wape(actual, part["expected_units"].to_numpy()),
                "baseline": wape(actual, part["moving_average_28"].to_numpy()),
                "baseline_name": "28-day moving average",
                "bias": float(forecast.sum() / actual.sum() - 1),
                "rows": part.height,
                "note": note,
            }
            if band == "1-7" and kind == "all days":
                row["target"] = (
                    f"<= {DEMAND_TARGET} x truth and <= {DEMAND_VS_MOVING_AVERAGE} x baseline"
                )
                row["meets_target"] = (
                    row["model"] <= DEMAND_TARGET * row["truth"]
                    and row["model"] <= DEMAND_VS_MOVING_AVERAGE * row["baseline"]
                )
            elif band == "1-7" and kind == "campaign days":
                row["target"] = f"|bias| <= {CAMPAIGN_BIAS:.0%}"
                row["meets_target"] = abs(row["bias"]) <= CAMPAIGN_BIAS
            rows.append(row)
    return rows


def demand_origins(last_day: date, last_horizon: int, count: int) -> list[date]:
    """Weekly origins, newest first, whose whole band is observed by `last_day`."""
    newest = last_day - timedelta(days=last_horizon)
    return [newest - timedelta(days=7 * i) for i in range(count)]


def evaluate_demand(
    marts: dict[str, pl.DataFrame],
    truth: pl.DataFrame,
    promotions: pl.DataFrame,
    plan: pl.DataFrame | None = None,
) -> list[dict[str, Any]]:
    sales = marts["fct_product_daily_sales"]
    last_day = min(sales["sales_date"].max(), truth["date"].max())  # type: ignore[type-var]
    forecasts = []
    origins_used = []
    for first, last, horizon_days in DEMAND_BANDS:
        for origin in demand_origins(last_day, last, DEMAND_ORIGINS):  # type: ignore[arg-type]
            served = served_demand(marts, origin, horizon_days, plan)
            forecasts.append(
                served.filter(pl.col("horizon_day").is_between(first, last)).with_columns(
                    band=pl.lit(f"{first}-{last}")
                )
            )
            origins_used.append(origin)
    campaigns = campaign_dates(promotions)
    joined = (
        pl.concat(forecasts)
        .join(truth.select("sku", "date", "expected_units", "actual_units"), on=["sku", "date"])
        .with_columns(campaign_day=pl.col("date").is_in(campaigns.implode()))
    )
    note = (
        f"weekly origins {min(origins_used)}..{max(origins_used)}; actuals from the truth; "
        "bias = forecast / actual - 1"
    )
    return demand_rows(joined, note)


def hit_rates(served: pl.DataFrame, popular: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """customer_key, hit, popular_hit (any of the top-K bought) per customer with a target."""

    def hits(top: pl.DataFrame, name: str) -> pl.DataFrame:
        return (
            top.join(targets.select("customer_key", "sku"), on=["customer_key", "sku"])
            .select("customer_key")
            .unique()
            .with_columns(pl.lit(True).alias(name))
        )

    customers = targets.select("customer_key").unique()
    return (
        customers.join(hits(served, "hit"), on="customer_key", how="left")
        .join(hits(popular, "popular_hit"), on="customer_key", how="left")
        .with_columns(pl.col("hit", "popular_hit").fill_null(False))
    )


def evaluate_recommendations(marts: dict[str, pl.DataFrame]) -> list[dict[str, Any]]:
    lines = marts["fct_order_lines"]
    last_day: date = lines["order_date"].max()  # type: ignore[assignment]
    everything = features.interaction_pairs(lines, last_day)
    per_customer = []
    origins = [last_day - timedelta(days=RECS_HOLDOUT_DAYS * i) for i in range(1, RECS_ORIGINS + 1)]
    for origin in origins:
        served, popular, pairs = served_recommendations(marts, origin)
        end = origin + timedelta(days=RECS_HOLDOUT_DAYS)
        targets = everything.filter(
            pl.col("first_purchase_date") > origin, pl.col("first_purchase_date") <= end
        ).join(pairs.select("customer_key").unique(), on="customer_key", how="semi")
        per_customer.append(hit_rates(served, popular, targets))
    scored = with_population(pl.concat(per_customer), identified_keys(marts["dim_customers"]))
    note = (
        f"origins {min(origins)}, {max(origins)}: new purchases in the next "
        f"{RECS_HOLDOUT_DAYS} days by customers with a purchase before"
    )
    rows = []
    for name, member in (
        (ALL_SCORED, pl.lit(True)),
        (IDENTIFIED, pl.col("population") == IDENTIFIED),
        (GUEST, pl.col("population") == GUEST),
    ):
        part = scored.filter(member)
        if part.is_empty():
            continue
        row: dict[str, Any] = {
            "family": "recommendations",
            "population": name,
            "metric": f"hit_rate_at_{K}",
            "model": float(part["hit"].mean()),  # type: ignore[arg-type]
            "baseline": float(part["popular_hit"].mean()),  # type: ignore[arg-type]
            "baseline_name": "popularity",
            "rows": part.height,
            "note": note,
        }
        if name == IDENTIFIED:
            row["target"] = f">= {RECS_TARGET} x baseline"
            row["meets_target"] = row["model"] >= RECS_TARGET * row["baseline"]
        rows.append(row)
    return rows


def evaluate_segmentation(
    marts: dict[str, pl.DataFrame], customers_truth: pl.DataFrame, pii_key: bytes
) -> list[dict[str, Any]]:
    origin: date = marts["fct_customer_daily_activity"]["activity_date"].max()  # type: ignore[assignment]
    served = served_segments(marts, origin)
    truth = _keyed(customers_truth, pii_key).select("customer_key", "segment_id")
    joined = served.join(truth.rename({"segment_id": "true_segment"}), on="customer_key")
    tiers = pl.Series(segmentation.value_tiers(joined))
    ari = float(adjusted_rand_score(joined["true_segment"], joined["segment_id"]))
    return [
        {
            "family": "segmentation",
            "population": IDENTIFIED,
            "metric": "adjusted_rand_index",
            "model": ari,
            "baseline": float(adjusted_rand_score(joined["true_segment"], tiers)),
            "baseline_name": "monetary terciles",
            "target": f">= {ARI_TARGET}",
            "meets_target": ari >= ARI_TARGET,
            "rows": joined.height,
            "note": (
                f"served at {origin}: {served['segment_id'].n_unique()} segments vs "
                f"{truth['segment_id'].n_unique()} in the truth"
            ),
        }
    ]


# ---------------------------------------------------------------- report
def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def to_markdown(table: pl.DataFrame) -> str:
    lines = [
        "| family | population | metric | model | truth | model / truth | baseline "
        "| model / baseline | bias | target | met | rows | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.iter_rows(named=True):
        model, truth, baseline = row["model"], row["truth"], row["baseline"]
        ratio_truth = model / truth if model is not None and truth else None
        ratio_base = model / baseline if model is not None and baseline else None
        met = {True: "yes", False: "**NO**", None: ""}[row["meets_target"]]
        base = "" if baseline is None else f"{baseline:.4f} ({row['baseline_name']})"
        bias = "" if row["bias"] is None else f"{row['bias']:+.1%}"
        cells = [
            row["family"],
            row["population"] or "",
            row["metric"] or "",
            _number(model),
            _number(truth),
            "" if ratio_truth is None else f"{ratio_truth:.3f}x",
            base,
            "" if ratio_base is None else f"{ratio_base:.3f}x",
            bias,
            row["target"] or "",
            met,
            "" if row["rows"] is None else str(row["rows"]),
            row["note"] or "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_marts(warehouse: Warehouse) -> dict[str, pl.DataFrame]:
    """The marts, and the cleaned layer's file accounting (which days' sales are unknown)."""
    marts = {name: read_mart(warehouse, name) for name in MARTS}
    return {**marts, ACCOUNTING: read_file_accounting(warehouse)}


def evaluate_marts(
    marts: dict[str, pl.DataFrame],
    truth_dir: Path,
    pii_key: bytes,
    max_threads: int | None = 1,
    plan: pl.DataFrame | None = None,
) -> TruthEvaluation:
    """Every family's served-path evaluation; a family that cannot be evaluated (too
    little history before its origin) gets a row saying why. `plan`: the published
    promotion plan (cleaned.promotion_plan), None when none was landed. Fits run with
    `max_threads` OpenMP/BLAS threads, as the model assets do by default (`max_threads:
    1`; see `common.limited_threads`): the demand part alone fits ten models per origin."""
    truth = {
        name: pl.read_parquet(truth_dir / f"{name}.parquet")
        for name in ("churn", "customers", "demand", "promotions")
    }
    evaluations: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [
        ("churn", lambda: evaluate_churn(marts, truth["churn"], truth["customers"], pii_key)),
        ("demand", lambda: evaluate_demand(marts, truth["demand"], truth["promotions"], plan)),
        ("recommendations", lambda: evaluate_recommendations(marts)),
        ("segmentation", lambda: evaluate_segmentation(marts, truth["customers"], pii_key)),
    ]
    rows: list[dict[str, Any]] = []
    for family, evaluation in evaluations:
        try:
            with limited_threads(max_threads):
                rows.extend(evaluation())
        except ValueError as exc:  # e.g. too little history before the origin
            rows.append({"family": family, "meets_target": False, "note": f"not evaluated: {exc}"})
    table = pl.DataFrame(
        [{name: row.get(name) for name in RESULT_SCHEMA} for row in rows], schema=RESULT_SCHEMA
    )
    return TruthEvaluation(table=table, markdown=to_markdown(table))


def evaluate_against_truth(
    home: Path, warehouse: Warehouse, pii_key: bytes | None = None
) -> TruthEvaluation:
    """Evaluate every family on the marts in `warehouse` against `home/truth/`.

    `pii_key` defaults to the settings' key (the one the cleaned layer used).
    """
    truth_dir = home / "truth"
    needed = ("churn", "customers", "demand", "promotions")
    missing = [f"{n}.parquet" for n in needed if not (truth_dir / f"{n}.parquet").exists()]
    if missing:
        raise TruthMissingError(
            f"{truth_dir} lacks {', '.join(missing)}: evaluation needs a generated dataset "
            "(`aiwf generate`), whose truth/ folder holds the latent churn and demand"
        )
    if pii_key is None:
        from aiwf_assets.settings import get_settings

        pii_key = get_settings().pii_key
    return evaluate_marts(
        read_marts(warehouse), truth_dir, pii_key, plan=read_promotion_plan(warehouse)
    )
