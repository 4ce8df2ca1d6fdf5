"""Churn: will a customer place no order in the N days after the cutoff?

Training rows are customer feature snapshots at earlier as-of dates d, each
labelled from the orders in (d, d + N]; only snapshots whose label window
has closed by the cutoff are used. Hyperparameters are chosen by time-aware
cross-validation over those snapshots (validate on a snapshot, train on
snapshots whose labels were known by then); the newest labelled snapshot
(cutoff - N) is the holdout that every metric and the champion comparison
use; the served model is refit on every labelled snapshot.

The risk served is the model's combined with the customer's own quiet probability
(`quiet_probability`: no order in the horizon at their own order rate, were they still
buying) as a second, independent cause: `1 - (1 - model) * (1 - quiet)` (`churn_risk`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from aiwf_assets.io.model_store import ModelCard
from aiwf_assets.ml import plots
from aiwf_assets.ml.common import RANDOM_STATE, auc_gain_lower_bound, parallel_map, same_recipe
from aiwf_assets.ml.features import ORDER_RATE_COLUMNS, feature_columns_of
from aiwf_assets.ml.populations import GUEST, IDENTIFIED, POPULATIONS, metric_name
from aiwf_assets.ml.promotion import PromotionPolicy, TrainingOutcome

PRIMARY_METRIC = "roc_auc"
# per population on the card: the one-sided 95 % lower bound of the ROC AUC gain over the
# better of recency and chance; the CRM export releases churn actions only where it is > 0
GAIN_BOUND = "roc_auc_gain_low"
# per population on the card: the holdout rows that churned; the bound needs at least
# MIN_OUTCOME_ROWS churners and as many who did not (DeLong's variance is noise below that)
CHURNED = "churned"
MIN_OUTCOME_ROWS = 10
RISK_BANDS = ((0.5, "high"), (0.2, "medium"), (0.0, "low"))
# The gamma prior of a customer's daily order rate in `quiet_probability`: as if every
# customer had QUIET_PRIOR_ORDER_DAYS days with an order in QUIET_PRIOR_DAYS more days.
QUIET_PRIOR_ORDER_DAYS, QUIET_PRIOR_DAYS = 1.0, 7.0


def quiet_probability(
    order_days: np.ndarray,
    days_since_first_order: np.ndarray,
    horizon_days: int,
    prior: tuple[float, float] = (QUIET_PRIOR_ORDER_DAYS, QUIET_PRIOR_DAYS),
) -> np.ndarray:
    """P(no order in the next `horizon_days` days) for a customer who keeps buying at their
    own rate: the gamma-Poisson (NBD) predictive `(b / (b + N)) ** a` with `a = a0 + order
    days`, `b = b0 + days from the first order to the as-of date, that day included` (prior
    a0 order days in b0 days). A customer with no order (NaN) gets 1."""
    a0, b0 = prior
    exposure = b0 + np.asarray(days_since_first_order, dtype=np.float64) + 1.0
    quiet = (exposure / (exposure + horizon_days)) ** (a0 + np.asarray(order_days, np.float64))
    return np.nan_to_num(quiet, nan=1.0)


def with_quiet(risk: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """The model's risk and the quiet probability as two independent causes of churn."""
    return 1.0 - (1.0 - risk) * (1.0 - quiet)


def churn_risk(artifact: dict[str, Any], frame: pl.DataFrame) -> np.ndarray:
    """The served risk of each row of a customer feature frame: the artifact's model,
    combined with the quiet probability when the artifact was trained with it
    (`quiet_prior`; artifacts from before it score with the model alone)."""
    x = frame.select(artifact["feature_columns"]).to_numpy().astype(np.float64)
    risk = artifact["pipeline"].predict_proba(x)[:, 1]
    prior = artifact.get("quiet_prior")
    if prior is None:
        return risk
    missing = [c for c in ORDER_RATE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the churn model needs {', '.join(missing)} in customer_features: "
            "rematerialise customer_features with this code"
        )
    quiet = quiet_probability(
        frame["order_days"].to_numpy(),
        frame["days_since_first_order"].to_numpy(),
        artifact["horizon_days"],
        (float(prior[0]), float(prior[1])),
    )
    return with_quiet(risk, quiet)


def signed_log(values: np.ndarray) -> np.ndarray:
    """Compress heavy tails (spend, counts) so a linear model is not driven by outliers."""
    return np.sign(values) * np.log1p(np.abs(values))


def _logistic() -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("log", FunctionTransformer(signed_log)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=2000, random_state=RANDOM_STATE)),
        ]
    )


def _boosting() -> Pipeline:
    return Pipeline(
        [
            ("model", HistGradientBoostingClassifier(max_iter=200, random_state=RANDOM_STATE)),
        ]
    )


CANDIDATES: dict[str, tuple[Any, list[dict[str, Any]]]] = {
    "logistic_regression": (_logistic, [{"model__C": c} for c in (0.1, 1.0, 10.0)]),
    # learning rate 0.05 only: 0.1 never won a selection measured, always at or below 0.05
    # (docs/ML.md, Performance note); both leaf counts stay (31 alone served worse)
    "hist_gradient_boosting": (
        _boosting,
        [{"model__learning_rate": 0.05, "model__max_leaf_nodes": leaves} for leaves in (15, 31)],
    ),
}


def build_candidate(name: str, params: dict[str, Any]) -> Pipeline:
    factory, _ = CANDIDATES[name]
    return factory().set_params(**params)


def policy(margin: float) -> PromotionPolicy:
    return PromotionPolicy(metric=PRIMARY_METRIC, higher_is_better=True, margin=margin)


def churn_labels(
    snapshots: pl.DataFrame, purchase_days: pl.DataFrame, horizon_days: int
) -> pl.DataFrame:
    """`churned` = no order in (as_of_date, as_of_date + horizon_days] for each snapshot row.

    `purchase_days`: customer_key, activity_date for days with at least one order.
    """
    labelled = []
    for (as_of,), rows in snapshots.group_by("as_of_date", maintain_order=True):
        end = as_of + timedelta(days=horizon_days)
        buyers = (
            purchase_days.filter(pl.col("activity_date") > as_of, pl.col("activity_date") <= end)
            .select("customer_key")
            .unique()
            .with_columns(bought=pl.lit(True))
        )
        labelled.append(
            rows.join(buyers, on="customer_key", how="left")
            .with_columns(churned=pl.col("bought").is_null())
            .drop("bought")
        )
    return pl.concat(labelled)


def labelled_snapshots(
    features: pl.DataFrame, purchase_days: pl.DataFrame, horizon_days: int, cutoff: date
) -> pl.DataFrame:
    """Snapshots whose whole label window ends on or before the cutoff, with labels."""
    closed = features.filter(
        pl.col("as_of_date") + pl.duration(days=horizon_days) <= pl.lit(cutoff)
    )
    if closed.is_empty():
        return closed.with_columns(churned=pl.lit(False))
    # sorted, so the same data always trains the same (byte-identical) model
    return churn_labels(closed, purchase_days, horizon_days).sort("as_of_date", "customer_key")


def time_folds(
    dates: list[date], horizon_days: int, max_folds: int
) -> tuple[list[tuple[list[date], date]], bool]:
    """(train dates, validation date) pairs, newest validation first.

    Strict folds train only on snapshots whose labels were known at the
    validation date (d + N <= validation). When the history is too short for
    any strict fold, folds train on every earlier snapshot; the flag says so.
    """
    ordered = sorted(dates)
    for strict in (True, False):
        folds = []
        for val in reversed(ordered):
            train = [
                d
                for d in ordered
                if (d + timedelta(days=horizon_days) <= val if strict else d < val)
            ]
            if train:
                folds.append((train, val))
            if len(folds) == max_folds:
                break
        if folds:
            return folds, strict
    return [], False


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray) -> float:
    edges = np.quantile(probabilities, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, 9)
    error = 0.0
    for b in np.unique(bins):
        members = bins == b
        error += members.mean() * abs(probabilities[members].mean() - labels[members].mean())
    return float(error)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "calibration_error": expected_calibration_error(labels, probabilities),
        "mean_predicted": float(probabilities.mean()),
        "observed_rate": float(labels.mean()),
    }


def baseline_metrics(
    labels: np.ndarray, recency: np.ndarray, probabilities: np.ndarray
) -> dict[str, float]:
    """The recency baseline's metrics: its ranking (ROC and PR AUC) is recency itself, as
    `aiwf evaluate` scores it (the rule's deciles tie customers whom the days tell apart),
    so the card, the action gate and the evaluation compare the model with one baseline;
    its probabilities (Brier, calibration) are the rule's."""
    return {
        **classification_metrics(labels, probabilities),
        "roc_auc": float(roc_auc_score(labels, recency)),
        "pr_auc": float(average_precision_score(labels, recency)),
    }


def gain_measurable(churned: float, rows: float) -> bool:
    """Whether a population's holdout has enough of each outcome for `GAIN_BOUND`."""
    return min(churned, rows - churned) >= MIN_OUTCOME_ROWS


def population_metrics(
    holdout: pl.DataFrame, labels: np.ndarray, scores: np.ndarray, baseline_scores: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """(model, baseline) ROC AUC and row count per population on the holdout
    (`baseline_scores`: a ranking, e.g. recency in days), and the lower bound of the
    model's gain over the baseline and chance (`GAIN_BOUND`, `common.auc_gain_lower_bound`).

    The CRM export releases churn-driven actions only for a population where the
    model beats the baseline here (`serving.action_gate`). A population with one
    class only gets its row count and no AUC.
    """
    if "identified" not in holdout.columns:
        return {}, {}
    identified = holdout["identified"].to_numpy()
    model: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for population in POPULATIONS:
        member = identified if population == IDENTIFIED else ~identified
        model[metric_name("rows", population)] = float(member.sum())
        churned = int(labels[member].sum())
        model[metric_name(CHURNED, population)] = float(churned)
        if len(np.unique(labels[member])) == 2:
            auc = metric_name(PRIMARY_METRIC, population)
            model[auc] = float(roc_auc_score(labels[member], scores[member]))
            baseline[auc] = float(roc_auc_score(labels[member], baseline_scores[member]))
        if gain_measurable(churned, member.sum()):
            model[metric_name(GAIN_BOUND, population)] = auc_gain_lower_bound(
                labels[member], scores[member], baseline_scores[member]
            )
    return model, baseline


@dataclass(frozen=True)
class RecencyRule:
    """The baseline's probabilities: the training churn rate of customers in the same recency
    decile (its ranking is recency itself: `baseline_metrics`)."""

    edges: np.ndarray
    rates: np.ndarray

    @classmethod
    def fit(cls, recency: np.ndarray, labels: np.ndarray) -> RecencyRule:
        edges = np.unique(np.quantile(recency, np.linspace(0, 1, 11)[1:-1]))
        bins = np.searchsorted(edges, recency, side="right")
        prior = labels.mean()
        rates = np.array(
            [
                labels[bins == b].mean() if (bins == b).any() else prior
                for b in range(len(edges) + 1)
            ]
        )
        return cls(edges, rates)

    def predict(self, recency: np.ndarray) -> np.ndarray:
        return self.rates[np.searchsorted(self.edges, recency, side="right")]


def _xy(frame: pl.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return (
        frame.select(columns).to_numpy().astype(np.float64),
        frame["churned"].to_numpy().astype(int),
    )


def select_candidate(
    labelled: pl.DataFrame, horizon_days: int, max_folds: int, processes: int | None = 1
) -> tuple[str, dict[str, Any], pl.DataFrame]:
    """Every candidate and grid point scored by mean ROC AUC over time-aware folds. The fits
    are independent: up to `processes` tasks run at once (`parallel_map`); a candidate whose
    preprocessing the grid leaves alone fits it once per fold (`_fold_roc_aucs`)."""
    columns = feature_columns_of(labelled)
    folds, strict = time_folds(labelled["as_of_date"].unique().to_list(), horizon_days, max_folds)
    if not folds:
        raise ValueError("churn model selection needs at least two labelled snapshots")
    fold_data = []
    for train_dates, val_date in folds:
        x_train, y_train = _xy(labelled.filter(pl.col("as_of_date").is_in(train_dates)), columns)
        x_val, y_val = _xy(labelled.filter(pl.col("as_of_date") == val_date), columns)
        if len(np.unique(y_train)) < 2 or len(np.unique(y_val)) < 2:
            continue
        fold_data.append((x_train, y_train, x_val, y_val))
    # (candidate, grid points fitted in one task): a shared preprocessing keeps its grid whole
    parts = [
        (name, part) for name, (_, grid) in CANDIDATES.items() for part in grid_parts(name, grid)
    ]
    tasks = [(name, part, *data) for name, part in parts for data in fold_data]
    fit_rows = max((len(data[1]) for data in fold_data), default=0)
    results = iter(parallel_map(_fold_roc_aucs, tasks, processes, fit_rows))
    scores: dict[tuple[str, str], list[float]] = {}
    for name, part in parts:
        for _ in fold_data:
            for params, score in zip(part, next(results), strict=True):
                scores.setdefault((name, json.dumps(params, sort_keys=True)), []).append(score)
    rows = []
    for name, (_, grid) in CANDIDATES.items():
        for params in grid:
            point_scores = scores.get((name, json.dumps(params, sort_keys=True)), [])
            rows.append(
                {
                    "candidate": name,
                    "params": json.dumps(params, sort_keys=True),
                    "cv_roc_auc": float(np.mean(point_scores)) if point_scores else float("nan"),
                    "folds": len(point_scores),
                    "strict_time_gap": strict,
                }
            )
    table = pl.DataFrame(rows).sort(  # ties go to the first candidate
        "cv_roc_auc", descending=True, nulls_last=True, maintain_order=True
    )
    if table["folds"].max() == 0:
        raise ValueError("churn model selection: no fold has both churners and non-churners")
    best = table.row(0, named=True)
    return best["candidate"], json.loads(best["params"]), table


def grid_parts(name: str, grid: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The grid of a candidate in the groups one selection task fits: the whole grid when
    the pipeline has steps before its model and the grid sets only the model's parameters
    (those steps are then the same for every grid point), else one grid point per task."""
    steps = build_candidate(name, grid[0]).steps if grid else []
    shared = len(steps) > 1 and all(key.startswith("model__") for p in grid for key in p)
    return [grid] if shared else [[params] for params in grid]


def _fold_roc_aucs(
    name: str,
    grid: list[dict[str, Any]],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> list[float]:
    """Selection fits of one candidate on one fold: each grid point's ROC AUC on the
    validation snapshot. The steps before the model are fitted once for all the grid points
    (`grid_parts`: they do not depend on it), then each point's model on their output: the
    same numbers as fitting each point's whole pipeline."""
    pipelines = [build_candidate(name, params) for params in grid]
    prepare = pipelines[0][:-1]
    if len(prepare):
        x_train, x_val = prepare.fit_transform(x_train, y_train), prepare.transform(x_val)
    scores = []
    for pipeline in pipelines:
        model = pipeline[-1].fit(x_train, y_train)
        scores.append(float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])))
    return scores


def train_churn(
    features: pl.DataFrame,
    purchase_days: pl.DataFrame,
    horizon_days: int,
    max_folds: int = 3,
    max_calibration_error: float = 0.1,
    processes: int | None = 1,
) -> TrainingOutcome:
    """Select, evaluate on the holdout snapshot (cutoff - N), refit on all labelled snapshots.
    Up to `processes` selection fits run at once."""
    cutoff: date = features["as_of_date"].max()  # type: ignore[assignment]
    labelled = labelled_snapshots(features, purchase_days, horizon_days, cutoff)
    # one share per order channel the features hold (the declared sources' channels)
    columns = feature_columns_of(features)
    dates = sorted(labelled["as_of_date"].unique().to_list())
    if len(dates) < 3:
        raise ValueError(
            f"churn training needs at least 3 snapshots whose {horizon_days}-day label window "
            f"ends by the cutoff {cutoff}, found {len(dates)}: materialise customer_features with "
            "more history_snapshots (or load more history)"
        )
    holdout_date = dates[-1]
    earlier = labelled.filter(pl.col("as_of_date") < holdout_date)
    name, params, selection = select_candidate(earlier, horizon_days, max_folds, processes)
    strict_train = [d for d in dates[:-1] if d + timedelta(days=horizon_days) <= holdout_date]
    train = earlier.filter(pl.col("as_of_date").is_in(strict_train or dates[:-1]))
    holdout = labelled.filter(pl.col("as_of_date") == holdout_date)
    x_train, y_train = _xy(train, columns)
    x_hold, y_hold = _xy(holdout, columns)
    model = build_candidate(name, params).fit(x_train, y_train)
    quiet_prior = [QUIET_PRIOR_ORDER_DAYS, QUIET_PRIOR_DAYS]
    scores = churn_risk(
        {
            "pipeline": model,
            "feature_columns": columns,
            "horizon_days": horizon_days,
            "quiet_prior": quiet_prior,
        },
        holdout,
    )
    rule = RecencyRule.fit(train["recency_days"].to_numpy(), y_train)
    recency = holdout["recency_days"].to_numpy().astype(np.float64)
    baseline_scores = rule.predict(recency)

    problems = []
    if np.isnan(scores).any():
        problems.append("NaN churn scores on the holdout")
    metrics = classification_metrics(y_hold, np.nan_to_num(scores))
    per_population, baseline_per_population = population_metrics(
        holdout, y_hold, np.nan_to_num(scores), recency
    )
    if metrics["calibration_error"] > max_calibration_error:
        problems.append(
            f"calibration error {metrics['calibration_error']:.3f} > {max_calibration_error}"
        )

    challenger_columns = columns

    def evaluate_champion(card: ModelCard, artifact: dict[str, Any]) -> dict[str, float]:
        columns = artifact["feature_columns"]
        if not set(columns) <= set(holdout.columns):
            return {}
        pipeline = artifact["pipeline"]
        if date.fromisoformat(card.trained_through) > holdout_date:
            # it has seen the holdout's outcomes: compare its recipe on the same training rows
            same_quiet = artifact.get("quiet_prior") == quiet_prior
            if columns == challenger_columns and same_quiet and same_recipe(pipeline, model):
                return classification_metrics(y_hold, scores)  # that refit would be `model`
            pipeline = clone(pipeline).fit(train.select(columns).to_numpy(), y_train)
        champion_scores = churn_risk({**artifact, "pipeline": pipeline}, holdout)
        return classification_metrics(y_hold, champion_scores)

    x_all, y_all = _xy(labelled, columns)
    artifact = {
        "pipeline": build_candidate(name, params).fit(x_all, y_all),
        "feature_columns": columns,
        "horizon_days": horizon_days,
        "quiet_prior": quiet_prior,
    }
    sample = np.random.default_rng(RANDOM_STATE).permutation(len(y_hold))[:3000]
    importance = permutation_importance(
        model,
        x_hold[sample],
        y_hold[sample],
        scoring="roc_auc",
        n_repeats=3,
        random_state=RANDOM_STATE,
    ).importances_mean
    return TrainingOutcome(
        model_name=name,
        params=params,
        artifact=artifact,
        metrics={**metrics, **per_population},
        baseline_metrics={
            **baseline_metrics(y_hold, recency, baseline_scores),
            **baseline_per_population,
        },
        selection=selection,
        row_counts={
            "train_rows": train.height,
            "holdout_rows": holdout.height,
            "refit_rows": labelled.height,
            "snapshots": len(dates),
        },
        trained_through=cutoff,
        holdout_start=holdout_date,
        evaluate_champion=evaluate_champion,
        sanity_problems=problems,
        holdout_predictions=holdout.select(
            "customer_key", "as_of_date", "churned", "recency_days"
        ).with_columns(churn_risk=pl.Series(scores), baseline_risk=pl.Series(baseline_scores)),
        plots={
            "roc": plots.roc_plot(y_hold, {name: scores, "recency": recency}),
            "calibration": plots.calibration_plot(y_hold, scores),
            "importance": plots.importance_plot(
                columns, importance, "Permutation importance (holdout ROC AUC)"
            ),
        },
    )


def risk_band(risk: pl.Expr) -> pl.Expr:
    expr = pl.lit(RISK_BANDS[-1][1])
    for threshold, band in reversed(RISK_BANDS[:-1]):
        expr = pl.when(risk >= threshold).then(pl.lit(band)).otherwise(expr)
    return expr


def score_customers(artifact: dict[str, Any], features: pl.DataFrame) -> pl.DataFrame:
    """Churn risk as of the newest snapshot in `features`, with each customer's population."""
    as_of = features["as_of_date"].max()
    current = features.filter(pl.col("as_of_date") == as_of)
    if "identified" not in current.columns:  # features built before populations existed
        current = current.with_columns(identified=pl.lit(None, pl.Boolean))
    risk = churn_risk(artifact, current)
    population = pl.when(pl.col("identified")).then(pl.lit(IDENTIFIED))
    return (
        current.select(
            "customer_key",
            "as_of_date",
            population.when(~pl.col("identified")).then(pl.lit(GUEST)).alias("population"),
        )
        .with_columns(
            churn_risk=pl.Series(risk), churn_horizon_days=pl.lit(artifact["horizon_days"])
        )
        .with_columns(risk_band=risk_band(pl.col("churn_risk")))
    )
