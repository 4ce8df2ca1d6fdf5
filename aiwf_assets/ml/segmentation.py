"""Customer segmentation: KMeans vs GaussianMixture on scaled RFM and behaviour.

The number of segments and the algorithm are chosen by silhouette on a
sample, in one fixed evaluation space (log-scaled, standardised features of
the current customers) so that candidates, baseline and champion are
compared on equal terms. Segments are described in plain words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.impute import SimpleImputer
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from aiwf_assets.io.model_store import ModelCard
from aiwf_assets.ml import plots
from aiwf_assets.ml.churn import signed_log
from aiwf_assets.ml.common import RANDOM_STATE
from aiwf_assets.ml.features import feature_channels
from aiwf_assets.ml.promotion import PromotionPolicy, TrainingOutcome

# How a customer shops, not where they are in their life cycle: recency, tenure and
# tickets describe lapsing (the churn model's job) and split customers of one kind
# apart. On the 120-day demo data these features took the adjusted Rand index
# against the generator's segments from 0.10 (k = 2, the previous RFM-led set) to
# ~0.4; see docs/ML.md.
# One `<channel>_share` per order channel of the features (the declared sources' channels)
# sits between units_per_order and promo_share (web, app, store for the packaged sources).
_BEFORE_CHANNELS = ["frequency", "avg_basket", "units_per_order"]
_AFTER_CHANNELS = ["promo_share", "sessions_90d", "age"]
# what the plain-words description also reads
_PROFILE_EXTRA = ["monetary", "recency_days", "tickets_90d"]


def segment_features(channels: Sequence[str]) -> list[str]:
    return [*_BEFORE_CHANNELS, *(f"{c}_share" for c in channels), *_AFTER_CHANNELS]


def segment_features_of(frame: pl.DataFrame) -> list[str]:
    return segment_features(feature_channels(frame))


def profile_columns(channels: Sequence[str]) -> list[str]:
    return [*segment_features(channels), *_PROFILE_EXTRA]


PRIMARY_METRIC = "silhouette"


def policy(margin: float) -> PromotionPolicy:
    return PromotionPolicy(metric=PRIMARY_METRIC, higher_is_better=True, margin=margin)


# A customer with 2 orders, one per channel, is not "half web, half store" as surely as
# one with 40: each channel share is shrunk towards an even split by this many
# pseudo-orders, so occasional buyers do not scatter into channel-pure segments. On the
# 120-day demo data this took the served ARI from 0.36 to 0.41 (docs/ML.md).
SHARE_PRIOR_ORDERS = 5.0


def shrink_shares(
    x: np.ndarray, count: int, shares: Sequence[int], strength: float = SHARE_PRIOR_ORDERS
) -> np.ndarray:
    """`x` with the share columns `shares` pulled towards an even split, weighted by the
    order count in column `count`: (share * n + strength / len(shares)) / (n + strength)."""
    out = np.array(x, dtype=np.float64, copy=True)
    if not shares:
        return out
    n = np.nan_to_num(out[:, count])[:, None]
    columns = list(shares)
    out[:, columns] = (out[:, columns] * n + strength / len(columns)) / (n + strength)
    return out


def _preprocess(n_channels: int) -> list[tuple[str, Any]]:
    """Shrunk channel shares, imputed, signed-log, standardised: the columns are
    segment_features' (frequency first, the channel shares from the fourth)."""
    first = len(_BEFORE_CHANNELS)
    shrink = FunctionTransformer(
        shrink_shares,
        kw_args={
            "count": _BEFORE_CHANNELS.index("frequency"),
            "shares": list(range(first, first + n_channels)),
        },
    )
    return [
        ("shrink", shrink),
        ("impute", SimpleImputer(strategy="median")),
        ("log", FunctionTransformer(signed_log)),
        ("scale", StandardScaler()),
    ]


def build_candidate(name: str, k: int, n_channels: int) -> Pipeline:
    if name == "kmeans":
        model: Any = KMeans(n_clusters=k, n_init=4, random_state=RANDOM_STATE)
    elif name == "gaussian_mixture":
        model = GaussianMixture(n_components=k, covariance_type="diag", random_state=RANDOM_STATE)
    else:
        raise ValueError(f"unknown segmentation candidate {name!r}")
    return Pipeline([*_preprocess(n_channels), ("model", model)])


def evaluation_space(frame: pl.DataFrame) -> np.ndarray:
    columns = segment_features_of(frame)
    return Pipeline(_preprocess(len(feature_channels(frame)))).fit_transform(
        frame.select(columns).to_numpy()
    )


def silhouette(space: np.ndarray, labels: np.ndarray) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(silhouette_score(space, labels))


def value_tiers(frame: pl.DataFrame) -> np.ndarray:
    """Baseline segmentation: monetary terciles (the classic 'low/mid/high value' split)."""
    monetary = frame["monetary"].to_numpy()
    return np.searchsorted(np.quantile(monetary, [1 / 3, 2 / 3]), monetary, side="right")


def describe_segments(frame: pl.DataFrame, labels: np.ndarray) -> pl.DataFrame:
    """Per segment: size, feature means and a plain-words description ("<channel>-first"
    names whichever declared channel holds at least half of the segment's purchases)."""
    channels = feature_channels(frame)
    profile_cols = profile_columns(channels)
    data = frame.select(profile_cols).with_columns(segment=pl.Series(labels))
    overall_monetary = np.quantile(frame["monetary"].to_numpy(), [1 / 3, 2 / 3])
    overall_frequency = np.quantile(frame["frequency"].to_numpy(), [1 / 3, 2 / 3])
    overall_recency = float(np.median(frame["recency_days"].to_numpy()))
    overall = frame.select(
        pl.col("sessions_90d", "promo_share", "units_per_order").mean(), pl.col("age").median()
    ).row(0, named=True)
    profile = (
        data.group_by("segment")
        .agg(
            *[pl.col(c).mean() for c in profile_cols],
            customers=pl.len(),
            median_monetary=pl.col("monetary").median(),
            median_frequency=pl.col("frequency").median(),
            median_recency=pl.col("recency_days").median(),
            median_age=pl.col("age").median(),
        )
        .sort("segment")
    )

    def above(row: dict[str, Any], column: str, factor: float) -> bool:
        typical = overall[column]
        return typical is not None and typical > 0 and (row[column] or 0.0) > factor * typical

    descriptions = []
    for row in profile.iter_rows(named=True):
        value = (
            "high value"
            if row["median_monetary"] > overall_monetary[1]
            else "low value"
            if row["median_monetary"] < overall_monetary[0]
            else "mid value"
        )
        shares = {c: row[f"{c}_share"] for c in channels}
        channel, share = max(shares.items(), key=lambda item: item[1] or 0.0, default=("", 0.0))
        words = [value]
        if row["median_frequency"] > overall_frequency[1]:
            words.append("frequent")
        elif row["median_frequency"] < overall_frequency[0]:
            words.append("occasional")
        words.append(f"{channel}-first" if (share or 0.0) >= 0.5 else "omni-channel")
        words.append("lapsing" if row["median_recency"] > 2 * overall_recency else "active")
        if above(row, "promo_share", 1.5):
            words.append("promotion-driven")
        if above(row, "units_per_order", 1.25):
            words.append("large baskets")
        if (
            overall["age"] is not None
            and row["median_age"] is not None
            and row["median_age"] < overall["age"] - 10
        ):
            words.append("young")
        if above(row, "sessions_90d", 1.5):
            words.append("engaged online")
        if (row["tickets_90d"] or 0.0) >= 1:
            words.append("contacts support")
        description = ", ".join(words)
        if description in descriptions:  # two segments alike in words: keep them apart
            description += f" (segment {row['segment']})"
        descriptions.append(description)
    return profile.with_columns(description=pl.Series(descriptions, dtype=pl.String))


def train_segmentation(features: pl.DataFrame, k_range: range, sample_size: int) -> TrainingOutcome:
    """Choose algorithm and k by silhouette on a sample of the newest snapshot."""
    cutoff = features["as_of_date"].max()
    # one canonical row order: the silhouette sample and KMeans' init depend on it
    current = features.filter(pl.col("as_of_date") == cutoff).sort("customer_key")
    if current.height < 2 * max(k_range):
        raise ValueError(
            f"segmentation needs at least {2 * max(k_range)} customers, found {current.height}"
        )
    sample = current.sample(min(sample_size, current.height), seed=RANDOM_STATE)
    space = evaluation_space(sample)
    columns = segment_features_of(features)
    n_channels = len(feature_channels(features))
    x_sample = sample.select(columns).to_numpy()
    rows = []
    for name in ("kmeans", "gaussian_mixture"):
        for k in k_range:
            labels = build_candidate(name, k, n_channels).fit(x_sample).predict(x_sample)
            rows.append({"candidate": name, "k": k, "silhouette": silhouette(space, labels)})
    selection = pl.DataFrame(rows).sort(  # ties go to the first candidate
        "silhouette", descending=True, nulls_last=True, maintain_order=True
    )
    best = selection.row(0, named=True)
    pipeline = build_candidate(best["candidate"], best["k"], n_channels).fit(
        current.select(columns).to_numpy()
    )
    labels = pipeline.predict(current.select(columns).to_numpy())
    profile = describe_segments(current, labels)
    sample_labels = pipeline.predict(x_sample)
    metrics = {
        "silhouette": silhouette(space, sample_labels),
        "segments": float(len(np.unique(labels))),
        "smallest_segment_share": float(profile["customers"].min() / current.height),
    }
    problems = []
    if np.isnan(metrics["silhouette"]):
        problems.append("fewer than two segments")
    if metrics["smallest_segment_share"] < 0.01:
        problems.append(f"a segment holds {metrics['smallest_segment_share']:.2%} of customers")

    def evaluate_champion(card: ModelCard, artifact: dict[str, Any]) -> dict[str, float]:
        # the champion's own columns: it may predate a change of the features or channels
        if not set(artifact["feature_columns"]) <= set(sample.columns):
            return {}
        champion_labels = artifact["pipeline"].predict(
            sample.select(artifact["feature_columns"]).to_numpy()
        )
        return {"silhouette": silhouette(space, champion_labels)}

    artifact = {
        "pipeline": pipeline,
        "feature_columns": columns,
        "descriptions": dict(
            zip(profile["segment"].to_list(), profile["description"].to_list(), strict=True)
        ),
    }
    return TrainingOutcome(
        model_name=best["candidate"],
        params={"n_clusters": best["k"]},
        artifact=artifact,
        metrics=metrics,
        baseline_metrics={"silhouette": silhouette(space, value_tiers(sample))},
        selection=selection,
        row_counts={"customers": current.height, "silhouette_sample": sample.height},
        trained_through=cutoff,
        holdout_start=cutoff,
        evaluate_champion=evaluate_champion,
        sanity_problems=problems,
        plots={"segment_profile": plots.segment_profile_plot(profile, columns)},
    )


def assign_segments(artifact: dict[str, Any], features: pl.DataFrame) -> pl.DataFrame:
    as_of = features["as_of_date"].max()
    current = features.filter(pl.col("as_of_date") == as_of)
    labels = artifact["pipeline"].predict(current.select(artifact["feature_columns"]).to_numpy())
    descriptions = artifact["descriptions"]
    return current.select("customer_key", "as_of_date").with_columns(
        segment_id=pl.Series(labels, dtype=pl.Int64),
        segment=pl.Series([descriptions[int(label)] for label in labels], dtype=pl.String),
    )
