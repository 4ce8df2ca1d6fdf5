"""How far segmentation gets on a home, and how far its features could get with the answers
(docs/ML.md, Segmentation).

    AIWF_HOME=HOME python -m benchmarks.segmentation_study HOME

Reads HOME's marts as `aiwf evaluate` does, builds the customer features at the newest
activity day (the served path), and prints the adjusted Rand index (ARI) against the
truth's segments on the identified customers of:

* the served segmentation (`train_segmentation`: k and algorithm by silhouette), and KMeans
  at fixed k in the same clustering space;
* other clusterers in that space (Ward, tied Gaussian mixture, bisecting KMeans);
* supervised ceilings: classifiers fitted *on the truth's segments* with 5-fold
  cross-validation (gradient boosting on the segmentation features and on every customer
  feature, multinomial logistic regression on the clustering space: the best linear cut).

The ceilings read the truth to fit, so they are bounds for this evaluation, never a model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.cluster import AgglomerativeClustering, BisectingKMeans, KMeans
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from aiwf_assets.ml import segmentation

RANDOM_STATE = 0
NOT_FEATURES = ("customer_key", "as_of_date", "identified", "truth")


def clustering_rows(features: pl.DataFrame, truth: np.ndarray, known: np.ndarray) -> list[str]:
    """ARI on the rows `known` (truth not null) of unsupervised clusterers fitted on every
    row of `features` (guests too, as the served model is)."""
    space = segmentation.evaluation_space(features)
    rows = []
    for k in (4, 5):
        candidates = {
            "KMeans": KMeans(k, n_init=4, random_state=RANDOM_STATE),
            "Ward": AgglomerativeClustering(k),
            "Gaussian mixture, tied": GaussianMixture(
                k, covariance_type="tied", random_state=RANDOM_STATE
            ),
            "bisecting KMeans": BisectingKMeans(
                k, n_init=4, random_state=RANDOM_STATE, bisecting_strategy="biggest_inertia"
            ),
        }
        for name, model in candidates.items():
            labels = model.fit_predict(space)
            ari = adjusted_rand_score(truth[known], labels[known])
            rows.append(f"| {name}, k = {k} | {ari:.3f} |")
    return rows


def supervised_ari(x: np.ndarray, y: np.ndarray, model: object, seed: int) -> float:
    """ARI of 5-fold cross-validated predictions of `model` fitted on the answers `y`."""
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(adjusted_rand_score(y, cross_val_predict(model, x, y, cv=folds)))  # type: ignore[arg-type]


def ceiling_rows(features: pl.DataFrame, seeds: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """Supervised bounds on the identified rows of `features` (column `truth`)."""
    known = features.filter(pl.col("truth").is_not_null())
    y = known["truth"].to_numpy()
    columns = segmentation.segment_features_of(features)
    every = [c for c in features.columns if c not in NOT_FEATURES]
    space = segmentation.evaluation_space(features)[features["truth"].is_not_null().to_numpy()]
    cases = {
        f"gradient boosting, the {len(columns)} segmentation features": lambda s: supervised_ari(
            known.select(columns).to_numpy(), y, HistGradientBoostingClassifier(random_state=s), s
        ),
        f"gradient boosting, all {len(every)} customer features": lambda s: supervised_ari(
            known.select(every).to_numpy(), y, HistGradientBoostingClassifier(random_state=s), s
        ),
        "logistic regression on the clustering space (linear cuts)": lambda s: supervised_ari(
            space, y, LogisticRegression(max_iter=2000), s
        ),
    }
    rows = []
    for name, run in cases.items():
        values = [run(seed) for seed in seeds]
        rows.append(f"| {name} | {min(values):.3f}-{max(values):.3f} (seeds {list(seeds)}) |")
    return rows


def study(features: pl.DataFrame) -> str:
    """The markdown tables for `features` with a `truth` column (null for guests)."""
    truth = features["truth"].to_numpy()
    known = features["truth"].is_not_null().to_numpy()
    from aiwf_assets.ml.evaluate import SEGMENT_K, SEGMENT_SAMPLE

    served = segmentation.train_segmentation(features.drop("truth"), SEGMENT_K, SEGMENT_SAMPLE)
    labels = segmentation.assign_segments(served.artifact, features.drop("truth"))
    joined = labels.join(features.select("customer_key", "truth"), on="customer_key").filter(
        pl.col("truth").is_not_null()
    )
    served_ari = adjusted_rand_score(joined["truth"], joined["segment_id"])
    lines = [
        f"identified customers: {int(known.sum())}, all customers: {features.height}",
        "",
        "| without the answers | ARI |",
        "| --- | --- |",
        f"| served (silhouette picked k = {joined['segment_id'].n_unique()}) | {served_ari:.3f} |",
        *clustering_rows(features.drop("truth"), truth, known),
        "",
        "| with the answers (5-fold cross-validation) | ARI |",
        "| --- | --- |",
        *ceiling_rows(features),
    ]
    return "\n".join(lines)


def home_features(home: Path) -> pl.DataFrame:
    """The served path's customer features at the newest activity day, with the truth's
    segment of each identified customer in `truth` (AIWF_HOME=home gives the PII key)."""
    from aiwf_assets.ml import evaluate, features
    from aiwf_assets.resources import build_resources
    from aiwf_assets.settings import get_settings

    settings = get_settings()
    marts = evaluate.read_marts(build_resources(settings)["warehouse"].get())
    origin = marts["fct_customer_daily_activity"]["activity_date"].max()
    past = evaluate.marts_as_of(marts, origin)  # type: ignore[arg-type]
    current = features.customer_features_as_of(
        past["fct_customer_daily_activity"], past["fct_orders"], past["dim_customers"], origin
    )
    truth = evaluate._keyed(
        pl.read_parquet(home / "truth" / "customers.parquet"), settings.pii_key
    ).select("customer_key", truth="segment_id")
    return current.join(truth, on="customer_key", how="left")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    print(study(home_features(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
