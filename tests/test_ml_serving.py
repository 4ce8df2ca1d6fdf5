"""The CRM export's action gate: no action where the model has not beaten its baseline."""

from datetime import date, timedelta

import polars as pl

from aiwf_assets.ml import features, populations, recommend, serving
from aiwf_assets.ml.churn import GAIN_BOUND
from aiwf_assets.ml.populations import GUEST, IDENTIFIED, metric_name
from tests.test_ml_marts_factory import START, make_marts

CHURN = serving.GATE_RULES["churn"]
RECS = serving.GATE_RULES["recommender"]


def _metrics(
    metric: str, count_metric: str, values: dict[str, tuple[float, int]]
) -> dict[str, float]:
    out: dict[str, float] = {metric: 0.9}
    for population, (value, count) in values.items():
        out[metric_name(metric, population)] = value
        out[metric_name(count_metric, population)] = float(count)
    return out


def test_gate_releases_only_a_population_where_the_model_measurably_beats_the_baseline() -> None:
    metrics = _metrics("roc_auc", "rows", {IDENTIFIED: (0.967, 3547), GUEST: (0.494, 1440)})
    # the cards' lower bounds of the gain over recency and chance (2026-12-07, 120-day demo)
    metrics[metric_name(GAIN_BOUND, IDENTIFIED)] = 0.0057
    metrics[metric_name(GAIN_BOUND, GUEST)] = -0.032
    baseline = {metric_name("roc_auc", IDENTIFIED): 0.958, metric_name("roc_auc", GUEST): 0.481}
    gates = serving.action_gate(CHURN, metrics, baseline)
    assert gates[IDENTIFIED].released and gates[IDENTIFIED].bound == 0.0057
    assert "measurably beats recency (0.958) and chance" in gates[IDENTIFIED].reason
    # guests: 0.013 above recency, more than the old fixed margin of 0.01, but recency is
    # worse than chance there and the model no better than chance: held
    assert not gates[GUEST].released
    assert "does not measurably beat recency (0.481)" in gates[GUEST].reason
    assert "-0.032" in gates[GUEST].reason


def test_recommender_gate_keeps_its_fixed_margin() -> None:
    metrics = _metrics(
        "hit_rate_at_10", "evaluated_customers", {IDENTIFIED: (0.66, 1880), GUEST: (0.305, 427)}
    )
    baseline = {
        metric_name("hit_rate_at_10", IDENTIFIED): 0.30,
        metric_name("hit_rate_at_10", GUEST): 0.29,
    }
    gates = serving.action_gate(RECS, metrics, baseline)
    assert gates[IDENTIFIED].released and "beats popularity (0.300)" in gates[IDENTIFIED].reason
    assert not gates[GUEST].released  # better by 0.015 only: within the margin
    assert "does not beat" in gates[GUEST].reason


def test_gate_holds_churn_for_a_champion_without_the_gain_bound() -> None:
    metrics = _metrics("roc_auc", "rows", {IDENTIFIED: (0.969, 3551), GUEST: (0.483, 1446)})
    baseline = {metric_name("roc_auc", IDENTIFIED): 0.954, metric_name("roc_auc", GUEST): 0.481}
    gates = serving.action_gate(CHURN, metrics, baseline)
    assert not any(g.released for g in gates.values())
    assert "no lower bound" in gates[IDENTIFIED].reason and "retrain" in gates[IDENTIFIED].reason


def test_gate_reasons_on_small_populations_say_what_is_missing() -> None:
    """A tiny home (2026-12-07 probe): 99 guest rows with a bound of +0.107, 250 identified
    rows of which none churned, 40 guests evaluated by the recommender."""
    churn = _metrics("roc_auc", "rows", {IDENTIFIED: (0.9, 250), GUEST: (0.71, 99)})
    churn |= {
        metric_name(GAIN_BOUND, GUEST): 0.107,
        metric_name("churned", GUEST): 30.0,
        metric_name("churned", IDENTIFIED): 0.0,
    }
    baseline = {metric_name("roc_auc", GUEST): 0.55}
    gates = serving.action_gate(CHURN, churn, baseline)
    assert not gates[GUEST].released and gates[GUEST].bound == 0.107
    assert gates[GUEST].reason == (
        "99 guest holdout rows, fewer than the 200 the gate needs: the model is not judged "
        "against recency on so few (its gain bound +0.107 is not trusted on so few)"
    )
    assert not gates[IDENTIFIED].released
    assert gates[IDENTIFIED].reason.startswith("250 identified holdout rows, of which 0 churned")
    recs = _metrics(
        "hit_rate_at_10", "evaluated_customers", {IDENTIFIED: (0.6, 400), GUEST: (0.5, 40)}
    )
    guests = serving.action_gate(RECS, recs, {})[GUEST]
    assert guests.reason.startswith("40 guest evaluated customers, fewer than the 100")
    assert "outcomes" not in guests.reason


def test_gate_holds_a_population_too_small_or_with_one_outcome() -> None:
    metrics = _metrics("roc_auc", "rows", {IDENTIFIED: (0.95, 50)})
    metrics[metric_name("rows", GUEST)] = 900.0  # rows, but one class: no AUC
    gates = serving.action_gate(CHURN, metrics, {metric_name("roc_auc", IDENTIFIED): 0.5})
    assert not gates[IDENTIFIED].released and "50 identified" in gates[IDENTIFIED].reason
    assert not gates[GUEST].released and gates[GUEST].model is None


def test_gate_holds_everything_for_a_champion_without_per_population_metrics() -> None:
    gates = serving.action_gate(RECS, {"hit_rate_at_10": 0.6}, {"hit_rate_at_10": 0.3})
    assert not any(g.released for g in gates.values())
    assert "retrain" in gates[IDENTIFIED].reason


def _gates(churn_guest: bool, recs_identified: bool) -> dict[str, dict[str, serving.Gate]]:
    return {
        "churn": {
            IDENTIFIED: serving.Gate(True, "churn ok"),
            GUEST: serving.Gate(churn_guest, "guest churn: no better than recency"),
        },
        "recommender": {
            IDENTIFIED: serving.Gate(recs_identified, "recs identified: no better"),
            GUEST: serving.Gate(True, "recs ok"),
        },
    }


def _export(
    gates: dict[str, dict[str, serving.Gate]], crm_customer_keys: tuple[str, ...] = ()
) -> pl.DataFrame:
    keys = ["i-high", "i-medium", "i-low", "g-high", "g-low", "x-high"]
    scores = pl.DataFrame(
        {
            "customer_key": keys,
            "as_of_date": date(2026, 4, 1),
            "population": [IDENTIFIED, IDENTIFIED, IDENTIFIED, GUEST, GUEST, None],
            "churn_risk": [0.8, 0.3, 0.05, 0.9, 0.1, 0.9],
            "risk_band": ["high", "medium", "low", "high", "low", "high"],
        }
    )
    segments = pl.DataFrame({"customer_key": keys, "segment": "active"})
    # a CRM customer who has not bought yet can still have recommendations
    recommended = [*keys, "n-recs"]
    recs = pl.DataFrame(
        {"customer_key": recommended, "rank": 1, "sku": "SKU-1"},
        schema_overrides={"rank": pl.Int32},
    )
    versions = {"churn": "c", "segmentation": "s", "recommender": "r"}
    crm_keys = pl.Series("customer_key", crm_customer_keys, dtype=pl.String)
    return serving.crm_export(scores, segments, recs, versions, gates, crm_keys)


def test_export_acts_only_where_released_and_says_why() -> None:
    export = _export(_gates(churn_guest=False, recs_identified=False))
    assert export.columns == serving.EXPORT_COLUMNS
    action = dict(export.select("customer_key", "next_best_action").iter_rows())
    assert action["i-high"] == "win-back voucher"
    assert action["i-medium"] == "re-engagement email"  # recs held for identified
    assert action["i-low"] == "no action"
    # a high-risk guest gets no churn-driven action, only the released cross-sell
    assert action["g-high"] == "cross-sell recommendations"
    assert action["g-low"] == "cross-sell recommendations"
    assert action["x-high"] == "no action"  # unknown population: nothing is released
    reason = dict(export.select("customer_key", "action_reason").iter_rows())
    assert "churn actions are held for guest: guest churn" in reason["g-high"]
    assert "recommendations held for identified: recs identified" in reason["i-low"]
    assert "population is unknown" in reason["x-high"]
    assert export["action_reason"].null_count() == 0


def test_export_releases_churn_actions_for_guests_once_earned() -> None:
    export = _export(_gates(churn_guest=True, recs_identified=True))
    action = dict(export.select("customer_key", "next_best_action").iter_rows())
    assert action["g-high"] == "win-back voucher"
    assert action["i-medium"] == "re-engagement email with recommendations"


# CRM keys: three scored (one listed twice) and two who have not bought yet
CRM_KEYS = ("i-high", "i-medium", "i-low", "i-low", "n-none", "n-recs")
CHURN_ACTIONS = {
    "personal retention call",
    "win-back voucher",
    "re-engagement email",
    "re-engagement email with recommendations",
}


def _not_scored(export: pl.DataFrame) -> dict[str, tuple[str, str]]:
    rows = export.filter(pl.col("risk_band").is_null())
    assert not CHURN_ACTIONS & set(rows["next_best_action"])  # no score, no churn action
    columns = rows.select("customer_key", "next_best_action", "action_reason")
    return {key: (action, reason) for key, action, reason in columns.iter_rows()}


def test_every_crm_customer_gets_one_row_and_no_action_without_a_score() -> None:
    # churn actions are released for identified customers: still none without a score
    export = _export(_gates(churn_guest=True, recs_identified=False), CRM_KEYS)
    assert export.height == 6 + 2  # scored customers + CRM customers without a score
    assert export["customer_key"].is_unique().all()
    not_scored = export.filter(pl.col("customer_key").is_in(["n-none", "n-recs"]))
    assert not_scored["population"].to_list() == [IDENTIFIED, IDENTIFIED]
    assert not_scored["churn_risk"].null_count() == 2
    assert not_scored["segment"].to_list() == ["unsegmented", "unsegmented"]
    assert not_scored["as_of_date"].to_list() == [date(2026, 4, 1)] * 2
    assert not_scored["top_5_recommendations"].to_list() == ["", "SKU-1"]
    assert _not_scored(export) == {
        "n-none": ("no action", "no purchase yet: no churn score; no recommendations"),
        "n-recs": (
            "no action",
            "no purchase yet: no churn score; recommendations held for identified: "
            "recs identified: no better",
        ),
    }


def test_a_crm_customer_without_a_score_gets_a_released_cross_sell() -> None:
    export = _export(_gates(churn_guest=True, recs_identified=True), CRM_KEYS)
    assert export.height == 6 + 2
    assert _not_scored(export) == {
        "n-none": ("no action", "no purchase yet: no churn score; no recommendations"),
        "n-recs": (
            "cross-sell recommendations",
            "no purchase yet: no churn score; recommendations released for identified",
        ),
    }


def test_recommender_holdout_metrics_per_population_by_hand() -> None:
    history = pl.DataFrame(
        {"customer_key": ["a", "g", "b", "c", "d"], "sku": ["x", "x", "y", "y", "z"]}
    )
    artifact = recommend.fit("popularity", {}, history)
    # the top-1 for a and g (both bought x) is y, the most popular product they lack:
    # a wanted y (a hit), g wanted z (a miss)
    targets = pl.DataFrame(
        {"customer_key": ["a", "g"], "sku": ["y", "z"], "identified": [True, False]}
    )
    metrics = recommend.ranking_metrics(artifact, history, targets, 1)
    assert metrics["hit_rate_at_1"] == 0.5
    assert metrics[metric_name("hit_rate_at_1", IDENTIFIED)] == 1.0
    assert metrics[metric_name("hit_rate_at_1", GUEST)] == 0.0
    assert metrics[metric_name("evaluated_customers", GUEST)] == 1.0


def test_features_and_pairs_say_who_is_identified() -> None:
    marts = make_marts(n_customers=40, days=40)
    guests = ["c00001", "c00002"]
    customers = marts["dim_customers"].with_columns(
        is_known_to_crm=~pl.col("customer_key").is_in(guests)
    )
    as_of = START + timedelta(days=39)
    frame = features.customer_features_as_of(
        marts["fct_customer_daily_activity"], marts["fct_orders"], customers, as_of
    )
    pairs = features.interaction_pairs(marts["fct_order_lines"], as_of, customers)
    for table in (frame, pairs):
        flagged = table.filter(~pl.col("identified"))["customer_key"].unique().sort().to_list()
        assert flagged == [k for k in guests if k in table["customer_key"].to_list()]
        assert flagged  # the two guests bought something in 40 days
    assert populations.identified_keys(customers).len() == 38
