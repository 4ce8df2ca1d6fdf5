"""The CRM export: one row per customer with risk, segment, recommendations, next action.

Its rows are every scored customer (a purchase in the history: CRM customers and
guests) and every CRM customer without a score (no purchase yet), so the CRM
gets a row for each customer it knows.

No actions on guesswork: a churn-driven action (call, voucher, e-mail) is only
released for a population (identified CRM customers, guests) where the churn
champion measurably beat recency and chance on its own holdout (a one-sided 95 %
lower bound of the gain above 0), and a cross-sell only where the recommender
beat popularity by a margin (`action_gate`, from the
champions' model cards: computed by the pipeline, never from the truth). Every
row says why it got, or did not get, an action (`action_reason`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import polars as pl

from aiwf_assets.ml.churn import CHURNED, GAIN_BOUND, MIN_OUTCOME_ROWS, gain_measurable
from aiwf_assets.ml.populations import IDENTIFIED, POPULATIONS, metric_name

EXPORT_COLUMNS = [
    "customer_key",
    "as_of_date",
    "population",
    "churn_risk",
    "risk_band",
    "segment",
    "top_5_recommendations",
    "next_best_action",
    "action_reason",
    "churn_model_version",
    "segmentation_model_version",
    "recommender_version",
]
UNKNOWN_POPULATION = "unknown"
NOT_SCORED = "no purchase yet: no churn score"  # why a CRM customer's row has no risk


@dataclass(frozen=True)
class GateRule:
    """What a family's champion must show on its holdout, per population: a gain over its
    baseline on the same rows, either a lower bound the card carries (`bound`, released
    when above 0) or a fixed `margin`."""

    metric: str  # higher is better
    baseline: str  # the baseline's name, for the reason
    count_metric: str  # how many holdout rows/customers the population had
    count_label: str  # what they are, for the reason
    min_count: int
    margin: float = 0.0  # absolute gain over the baseline on the same holdout rows
    bound: str | None = None  # card metric: the gain's lower bound (release when > 0)
    outcomes: str | None = None  # card metric: the rows with the positive outcome


# Churn: the one-sided 95 % lower bound of the ROC AUC gain over the better of recency and
# chance (DeLong, paired: `common.auc_gain_lower_bound`), so the bar follows the holdout's
# size and how closely the two rankings agree. Recommender: a fixed margin of about twice
# the noise of a hit rate over ~100-400 customers (~0.01-0.02).
GATE_RULES = {
    "churn": GateRule(
        "roc_auc", "recency", "rows", "holdout rows", 200, bound=GAIN_BOUND, outcomes=CHURNED
    ),
    "recommender": GateRule(
        "hit_rate_at_10", "popularity", "evaluated_customers", "evaluated customers", 100, 0.02
    ),
}


@dataclass(frozen=True)
class Gate:
    released: bool
    reason: str
    model: float | None = None
    baseline: float | None = None
    count: int | None = None
    bound: float | None = None  # the gain's lower bound, for a rule with one

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def action_gate(
    rule: GateRule, metrics: Mapping[str, float], baseline_metrics: Mapping[str, float]
) -> dict[str, Gate]:
    """Per population: is the champion measurably better than its baseline on its holdout?"""
    return {p: _population_gate(rule, p, metrics, baseline_metrics) for p in POPULATIONS}


def _population_gate(
    rule: GateRule,
    population: str,
    metrics: Mapping[str, float],
    baseline_metrics: Mapping[str, float],
) -> Gate:
    count_key = metric_name(rule.count_metric, population)
    if count_key not in metrics:
        return Gate(
            False, "the champion's card has no per-population holdout evaluation: retrain it"
        )
    count = int(metrics[count_key])
    rows = f"{count} {population} {rule.count_label}"
    key = metric_name(rule.metric, population)
    model, baseline = metrics.get(key), baseline_metrics.get(key)
    bound = metrics.get(metric_name(rule.bound, population)) if rule.bound else None
    if count < rule.min_count:
        trust = "" if bound is None else f" (its gain bound {bound:+.3f} is not trusted on so few)"
        return Gate(
            False,
            f"{rows}, fewer than the {rule.min_count} the gate needs: the model is not judged "
            f"against {rule.baseline} on so few{trust}",
            model,
            baseline,
            count,
            bound,
        )
    outcomes = metrics.get(metric_name(rule.outcomes, population)) if rule.outcomes else None
    if outcomes is not None and not gain_measurable(outcomes, count):
        return Gate(
            False,
            f"{rows}, of which {int(outcomes)} churned: at least {MIN_OUTCOME_ROWS} churners and "
            f"{MIN_OUTCOME_ROWS} who did not are needed to measure the model against "
            f"{rule.baseline}",
            model,
            baseline,
            count,
        )
    if model is None or baseline is None:
        return Gate(
            False,
            f"{rows}, but the card has no {rule.metric} for them: the model cannot be judged",
            model,
            baseline,
            count,
        )
    if rule.bound is None:
        released = model >= baseline + rule.margin
        verdict = "beats" if released else "does not beat"
        return Gate(
            released,
            f"{rule.metric} {model:.3f} {verdict} {rule.baseline} ({baseline:.3f}) by the "
            f"required {rule.margin} on {rows}",
            model,
            baseline,
            count,
        )
    if bound is None or not math.isfinite(bound):
        return Gate(
            False,
            f"the champion's card has no lower bound of its gain over {rule.baseline}: retrain it",
            model,
            baseline,
            count,
        )
    released = bound > 0
    verdict = "measurably beats" if released else "does not measurably beat"
    return Gate(
        released,
        f"{rule.metric} {model:.3f} {verdict} {rule.baseline} ({baseline:.3f}) and chance "
        f"on {rows} (gain at least {bound:+.3f}, one-sided 95 %)",
        model,
        baseline,
        count,
        bound,
    )


def _gate_columns(family: str, gates: Mapping[str, Gate]) -> list[pl.Expr]:
    population = pl.col("population")
    released = {p: g.released for p, g in gates.items()}
    reasons = {p: g.reason for p, g in gates.items()}
    return [
        population.replace_strict(released, default=False, return_dtype=pl.Boolean).alias(
            f"{family}_released"
        ),
        population.replace_strict(
            reasons, default="the customer's population is unknown", return_dtype=pl.String
        ).alias(f"{family}_gate"),
    ]


def next_best_action(
    risk_band: pl.Expr,
    segment: pl.Expr,
    has_recommendations: pl.Expr,
    churn_released: pl.Expr,
    recommender_released: pl.Expr,
) -> pl.Expr:
    """A plain rule the CRM team can read: protect value at risk first, then cross-sell;
    each only where its model has earned it for the customer's population. A null band
    (no score) matches no churn rule: a comparison with null is never true."""
    high_value = segment.str.contains("high value")
    cross_sell = has_recommendations & recommender_released
    return (
        pl.when(churn_released & (risk_band == "high") & high_value)
        .then(pl.lit("personal retention call"))
        .when(churn_released & (risk_band == "high"))
        .then(pl.lit("win-back voucher"))
        .when(churn_released & (risk_band == "medium") & cross_sell)
        .then(pl.lit("re-engagement email with recommendations"))
        .when(churn_released & (risk_band == "medium"))
        .then(pl.lit("re-engagement email"))
        .when(cross_sell)
        .then(pl.lit("cross-sell recommendations"))
        .otherwise(pl.lit("no action"))
    )


def action_reason(risk_band: pl.Expr, has_recommendations: pl.Expr, population: pl.Expr) -> pl.Expr:
    """Why the row got its action: its churn band (or no score) and whether churn actions
    are released for its population, then whether recommendations are (with the gate's
    reason if not)."""
    released = pl.lit(" churn risk; churn actions released for ")
    churn_part = (
        pl.when(risk_band.is_null())
        .then(pl.lit(NOT_SCORED))
        .when(pl.col("churn_released"))
        .then(pl.concat_str(risk_band, released, population))
        .when(risk_band == "low")
        .then(pl.lit("low churn risk"))
        .otherwise(
            pl.concat_str(
                risk_band,
                pl.lit(" churn risk, but churn actions are held for "),
                population,
                pl.lit(": "),
                pl.col("churn_gate"),
            )
        )
    )  # fmt: skip
    recs_part = (
        pl.when(~has_recommendations)
        .then(pl.lit("no recommendations"))
        .when(pl.col("recommender_released"))
        .then(pl.concat_str(pl.lit("recommendations released for "), population))
        .otherwise(
            pl.concat_str(
                pl.lit("recommendations held for "), population, pl.lit(": "),
                pl.col("recommender_gate"),
            )
        )
    )  # fmt: skip
    return pl.concat_str(churn_part, pl.lit("; "), recs_part)


def crm_export(
    churn_scores: pl.DataFrame,
    segments: pl.DataFrame,
    recommendations: pl.DataFrame,
    model_versions: dict[str, str],
    gates: Mapping[str, Mapping[str, Gate]],
    crm_customer_keys: pl.Series,
) -> pl.DataFrame:
    """Join the serving outputs on customer_key (pseudonymous: no clear PII leaves).

    `gates`: family ("churn", "recommender") -> population -> Gate (`action_gate`).
    `crm_customer_keys` (`populations.identified_keys`): a CRM customer without a churn
    score (no purchase yet) gets a row too, identified, as of the scores' date, with no
    risk and no churn action.
    """
    scores = churn_scores.select(
        "customer_key", "as_of_date", "population", "churn_risk", "risk_band"
    )
    not_scored = (
        crm_customer_keys.unique()
        .to_frame("customer_key")
        .join(scores, on="customer_key", how="anti")
        .select(
            "customer_key",
            as_of_date=pl.lit(scores["as_of_date"].max()),
            population=pl.lit(IDENTIFIED),
        )
    )
    top_5 = (
        recommendations.filter(pl.col("rank") <= 5)
        .sort("customer_key", "rank")
        .group_by("customer_key", maintain_order=True)
        .agg(top_5_recommendations=pl.col("sku").str.join(";"))
    )
    has_recommendations = pl.col("top_5_recommendations") != ""
    return (
        pl.concat([scores, not_scored], how="diagonal_relaxed")
        .join(segments.select("customer_key", "segment"), on="customer_key", how="left")
        .join(top_5, on="customer_key", how="left")
        .with_columns(
            population=pl.col("population").fill_null(UNKNOWN_POPULATION),
            segment=pl.col("segment").fill_null("unsegmented"),
            top_5_recommendations=pl.col("top_5_recommendations").fill_null(""),
        )
        .with_columns(
            *_gate_columns("churn", gates["churn"]),
            *_gate_columns("recommender", gates["recommender"]),
        )
        .with_columns(
            next_best_action=next_best_action(
                pl.col("risk_band"),
                pl.col("segment"),
                has_recommendations,
                pl.col("churn_released"),
                pl.col("recommender_released"),
            ),
            action_reason=action_reason(
                pl.col("risk_band"), has_recommendations, pl.col("population")
            ),
            churn_model_version=pl.lit(model_versions["churn"]),
            segmentation_model_version=pl.lit(model_versions["segmentation"]),
            recommender_version=pl.lit(model_versions["recommender"]),
        )
        .select(EXPORT_COLUMNS)
        .sort("customer_key")
    )
