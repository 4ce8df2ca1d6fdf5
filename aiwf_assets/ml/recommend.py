"""Recommendations: item-item cosine, TruncatedSVD and EASE vs a popularity baseline.

Evaluated on held-out next purchases: the training matrix holds what each
customer bought before the holdout start; the targets are the products a
customer bought for the first time inside the holdout window. Products a
customer already bought are never recommended (and so never counted as
hits): the list is for discovery, repeat purchases need no recommender.
Every candidate reduces to an item x item score matrix, kept sparse as each
item's strongest neighbours; a customer's scores are the sum of the rows of
the items they bought.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse
from sklearn.decomposition import TruncatedSVD

from aiwf_assets.io.model_store import ModelCard
from aiwf_assets.ml import plots
from aiwf_assets.ml.common import RANDOM_STATE
from aiwf_assets.ml.features import sparse_matrix
from aiwf_assets.ml.populations import IDENTIFIED, POPULATIONS, metric_name
from aiwf_assets.ml.promotion import PromotionPolicy, TrainingOutcome

PRIMARY_METRIC = "hit_rate_at_10"
NEIGHBOURS = 100
CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    *[("item_cosine", {"shrinkage": s}) for s in (0.0, 10.0)],
    *[("truncated_svd", {"n_components": n}) for n in (16, 32, 64)],
    *[("ease", {"l2_per_mean_count": r}) for r in (0.25, 1.0, 4.0)],
]


def policy(margin: float) -> PromotionPolicy:
    return PromotionPolicy(metric=PRIMARY_METRIC, higher_is_better=True, margin=margin)


def _keep_strongest(scores: np.ndarray, neighbours: int) -> sparse.csr_matrix:
    """Each item's `neighbours` largest scores in absolute value (negative weights, as
    EASE and SVD learn them, say "bought X, so not Y"), the rest set to zero."""
    np.fill_diagonal(scores, 0.0)
    if scores.shape[1] > neighbours:
        weakest = np.argpartition(np.abs(scores), -neighbours, axis=1)[:, :-neighbours]
        np.put_along_axis(scores, weakest, 0.0, axis=1)
    return sparse.csr_matrix(scores.astype(np.float32))


def co_purchases(matrix: sparse.csr_matrix) -> np.ndarray:
    """Item x item co-purchase counts X'X of a binary customer x item matrix (dense)."""
    return (matrix.T @ matrix).toarray().astype(np.float64)


@dataclass
class Interactions:
    """What every candidate fitted on the same pairs starts from, built once for all of
    them: the items and customers (sorted), the binary customer x item matrix and, on first
    use, its co-purchase counts (read by item cosine and EASE, never changed)."""

    items: list[str]
    customers: list[str]
    matrix: sparse.csr_matrix

    @classmethod
    def of(cls, pairs: pl.DataFrame) -> Interactions:
        items = sorted(pairs["sku"].unique().to_list())
        customers = sorted(pairs["customer_key"].unique().to_list())
        return cls(items, customers, sparse_matrix(pairs, customers, items))

    @cached_property
    def co_purchases(self) -> np.ndarray:
        return co_purchases(self.matrix)


def cosine_scores(co: np.ndarray, shrinkage: float) -> np.ndarray:
    """Co-purchase counts (`co_purchases`) over the product of the items' norms plus
    `shrinkage`, which damps similarities resting on few shared customers."""
    norms = np.sqrt(np.diag(co))
    return co / (np.outer(norms, norms) + shrinkage + (norms == 0)[:, None])


def ease_scores(gram: np.ndarray, l2_per_mean_count: float) -> np.ndarray:
    """EASE (Steck 2019): the ridge regression of each item's column on all the others,
    closed form B = -P / diag(P), P = (X'X + l2 I)^-1, zero diagonal, from the co-purchase
    counts X'X (`co_purchases`). The penalty is relative to the mean purchase count of an
    item, so one grid fits every data size."""
    l2 = l2_per_mean_count * max(float(np.diag(gram).mean()), 1.0)
    precision = np.linalg.inv(gram + l2 * np.eye(len(gram)))
    return -precision / np.diag(precision)


def item_scores(kind: str, params: dict[str, Any], data: Interactions) -> sparse.csr_matrix:
    """Item x item affinity from the customer x item matrix."""
    if kind == "item_cosine":
        return _keep_strongest(cosine_scores(data.co_purchases, params["shrinkage"]), NEIGHBOURS)
    if kind == "truncated_svd":
        matrix = data.matrix
        components = min(params["n_components"], matrix.shape[1] - 1)
        factors = TruncatedSVD(n_components=components, random_state=RANDOM_STATE).fit(matrix)
        loadings = factors.components_
        return _keep_strongest(loadings.T @ loadings, NEIGHBOURS)
    if kind == "ease":
        return _keep_strongest(
            ease_scores(data.co_purchases, params["l2_per_mean_count"]), NEIGHBOURS
        )
    raise ValueError(f"unknown recommender candidate {kind!r}")


def fit(kind: str, params: dict[str, Any], pairs: pl.DataFrame | Interactions) -> dict[str, Any]:
    """A servable recommender: item ids, item x item scores, popularity for cold starts.
    Candidates fitted on the same pairs can share their `Interactions`."""
    data = pairs if isinstance(pairs, Interactions) else Interactions.of(pairs)
    items = data.items
    popularity = np.asarray(data.matrix.sum(axis=0)).ravel()
    scores = (
        sparse.csr_matrix((len(items), len(items)), dtype=np.float32)
        if kind == "popularity"
        else item_scores(kind, params, data)
    )
    return {
        "kind": kind,
        "params": params,
        "items": items,
        "scores": scores,
        "popularity": popularity / max(popularity.max(), 1.0),
    }


def recommend(
    artifact: dict[str, Any],
    history: pl.DataFrame,
    customers: list[str],
    k: int,
    batch_size: int = 2000,
) -> np.ndarray:
    """Top-k item indices (into artifact['items']) per customer, excluding what they bought.

    Popularity breaks ties (and fills the list for customers with no signal);
    -1 pads the list of a customer who has bought nearly everything.
    """
    matrix = sparse_matrix(history, customers, artifact["items"])
    return recommend_rows(artifact, matrix, k, batch_size)


def recommend_rows(
    artifact: dict[str, Any], matrix: sparse.csr_matrix, k: int, batch_size: int = 2000
) -> np.ndarray:
    """`recommend` for the customers whose purchases are the rows of `matrix` (customer x
    artifact['items'], `features.sparse_matrix`)."""
    items = artifact["items"]
    tie_break = 1e-6 * artifact["popularity"]
    width = min(k, len(items))
    top = np.full((matrix.shape[0], k), -1, dtype=np.int64)
    for start in range(0, matrix.shape[0], batch_size):
        rows = matrix[start : start + batch_size]
        scores = np.asarray((rows @ artifact["scores"]).todense()) + tie_break
        scores[rows.nonzero()] = -np.inf
        best = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-best_scores, axis=1)
        ranked = np.take_along_axis(best, order, axis=1)
        already_bought = np.isneginf(np.take_along_axis(best_scores, order, axis=1))
        top[start : start + batch_size, :width] = np.where(already_bought, -1, ranked)
    return top


@dataclass
class Window:
    """A window's evaluation over the items `items`, built once for every candidate scored
    on it: the customers with a new purchase in it (sorted), their purchases before it and
    their new purchases in it (customer x item), and per customer whether it is identified
    (None without an `identified` column in the targets)."""

    items: list[str]
    customers: list[str]
    history: sparse.csr_matrix
    wanted: sparse.csr_matrix
    identified: np.ndarray | None

    @classmethod
    def of(cls, history: pl.DataFrame, targets: pl.DataFrame, items: list[str]) -> Window:
        customers = sorted(targets["customer_key"].unique().to_list())
        identified = None
        if "identified" in targets.columns:
            identified = (
                pl.DataFrame({"customer_key": customers})
                .join(targets.select("customer_key", "identified").unique(), on="customer_key")
                .sort("customer_key")["identified"]
                .to_numpy()
            )
        return cls(
            items,
            customers,
            sparse_matrix(history, customers, items),
            sparse_matrix(targets, customers, items),
            identified,
        )

    @cached_property
    def wanted_dense(self) -> np.ndarray:
        return self.wanted.toarray()


def ranking_metrics(
    artifact: dict[str, Any],
    history: pl.DataFrame,
    targets: pl.DataFrame,
    k: int,
    window: Window | None = None,
) -> dict[str, float]:
    """Hit rate@k and precision@k over customers with a new purchase in the holdout;
    with an `identified` column in `targets`, also the hit rate and customer count
    per population (the CRM export's gate reads them). `window`: the same history and
    targets prepared once (`Window.of`), used when it is over the artifact's items."""
    if window is None or window.items != artifact["items"]:
        window = Window.of(history, targets, artifact["items"])
    customers = window.customers
    top = recommend_rows(artifact, window.history, k)
    hits = (np.take_along_axis(window.wanted_dense, np.maximum(top, 0), axis=1) * (top >= 0)).sum(
        axis=1
    )
    metrics = {
        f"hit_rate_at_{k}": float((hits > 0).mean()),
        f"precision_at_{k}": float((hits / k).mean()),
        "evaluated_customers": float(len(customers)),
    }
    identified = window.identified
    if identified is not None:
        for population in POPULATIONS:
            member = identified if population == IDENTIFIED else ~identified
            metrics[metric_name("evaluated_customers", population)] = float(member.sum())
            if member.any():
                metrics[metric_name(f"hit_rate_at_{k}", population)] = float(
                    (hits[member] > 0).mean()
                )
    return metrics


def split_at(pairs: pl.DataFrame, start: date, end: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """History before `start`; targets = first purchases in [start, end] by known customers."""
    history = pairs.filter(pl.col("first_purchase_date") < start)
    targets = pairs.filter(
        pl.col("first_purchase_date") >= start, pl.col("first_purchase_date") <= end
    ).join(history.select("customer_key").unique(), on="customer_key", how="semi")
    return history, targets


def train_recommender(pairs: pl.DataFrame, holdout_days: int, k: int = 10) -> TrainingOutcome:
    cutoff: date = pairs["as_of_date"].max()  # type: ignore[assignment]
    holdout_start = cutoff - timedelta(days=holdout_days - 1)
    valid_start = holdout_start - timedelta(days=holdout_days)
    metric = f"hit_rate_at_{k}"
    fit_history, valid_targets = split_at(pairs, valid_start, holdout_start - timedelta(days=1))
    history, targets = split_at(pairs, holdout_start, cutoff)
    if valid_targets.is_empty() or targets.is_empty():
        raise ValueError(
            f"recommender evaluation needs new purchases in the last {2 * holdout_days} days "
            f"before {cutoff}"
        )
    # every candidate starts from the same matrices: built once (exact: the same models)
    fit_data = Interactions.of(fit_history)
    valid_window = Window.of(fit_history, valid_targets, fit_data.items)
    rows = []
    for kind, params in CANDIDATES:
        scored = ranking_metrics(
            fit(kind, params, fit_data), fit_history, valid_targets, k, valid_window
        )
        rows.append(
            {
                "candidate": kind,
                "params": json.dumps(params, sort_keys=True),
                "validation_" + metric: scored[metric],
            }
        )
    selection = pl.DataFrame(rows).sort(
        "validation_" + metric, descending=True, maintain_order=True
    )
    kind, params = selection["candidate"][0], json.loads(selection["params"][0])
    holdout_data = Interactions.of(history)
    holdout_window = Window.of(history, targets, holdout_data.items)
    metrics = ranking_metrics(fit(kind, params, holdout_data), history, targets, k, holdout_window)
    baseline = ranking_metrics(
        fit("popularity", {}, holdout_data), history, targets, k, holdout_window
    )
    problems = [] if metrics[metric] > 0 else ["no hit at all on the holdout"]

    def evaluate_champion(card: ModelCard, artifact: dict[str, Any]) -> dict[str, float]:
        if date.fromisoformat(card.trained_through) >= holdout_start:
            # it saw the holdout: refit its recipe on the challenger's training pairs, unless
            # that recipe is the challenger's: the refit would be the challenger's own
            if (artifact["kind"], artifact["params"]) == (kind, params):
                return dict(metrics)
            artifact = fit(artifact["kind"], artifact["params"], holdout_data)
        return ranking_metrics(artifact, history, targets, k, holdout_window)

    return TrainingOutcome(
        model_name=kind,
        params={**params, "k": k, "neighbours": NEIGHBOURS},
        artifact=fit(kind, params, pairs),
        metrics=metrics,
        baseline_metrics=baseline,
        selection=selection,
        row_counts={
            "pairs": pairs.height,
            "history_pairs": history.height,
            "holdout_targets": targets.height,
            "items": pairs["sku"].n_unique(),
        },
        trained_through=cutoff,
        holdout_start=holdout_start,
        evaluate_champion=evaluate_champion,
        sanity_problems=problems,
        plots={
            "hit_rate": plots.bar_plot(
                {kind: metrics[metric], "popularity": baseline[metric]},
                metric,
                "Hit rate on the holdout",
            )
        },
    )


def top_recommendations(artifact: dict[str, Any], pairs: pl.DataFrame, k: int) -> pl.DataFrame:
    """Long format: customer_key, rank (1..k), sku, for every customer with a purchase."""
    customers = sorted(pairs["customer_key"].unique().to_list())
    top = recommend(artifact, pairs, customers, k).ravel()
    items = pl.Series(artifact["items"], dtype=pl.String)
    frame = pl.DataFrame(
        {
            "customer_key": pl.Series(customers, dtype=pl.String).gather(
                np.repeat(np.arange(len(customers)), k)
            ),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(customers)),
            "sku": items.gather(np.maximum(top, 0)),
        }
    )
    return frame.filter(pl.Series(top >= 0))
