"""The IsolationForest scores of monitoring.iforest are scikit-learn's, bit for bit."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from aiwf_assets.monitoring import iforest


def sklearn_scores(train: np.ndarray, points: np.ndarray, random_state: int = 0) -> np.ndarray:
    forest = IsolationForest(n_estimators=100, random_state=random_state).fit(train)
    return forest.score_samples(points)


def health_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows like pipeline_health's: counts, two rates, hours; a constant column, ties."""
    return np.column_stack(
        [
            rng.normal(400, 10, n).round(),
            np.full(n, 0.0),  # a source that never quarantines
            rng.uniform(0.2, 0.25, n).round(2),  # many ties
            rng.uniform(0.5, 1.5, n),
        ]
    )


@pytest.mark.parametrize("n", [2, 3, 30, 64, 90, 256])
def test_scores_are_scikit_learns(n: int) -> None:
    rng = np.random.default_rng(n)
    train = health_like(rng, n)
    points = np.vstack([train, health_like(rng, 5), [[150.0, 0.3, 0.9, 9.0]]])
    np.testing.assert_array_equal(
        iforest.score_samples(train, points), sklearn_scores(train, points)
    )


def test_another_seed_and_a_larger_training_set_are_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    train, points = health_like(rng, 40), health_like(rng, 7)
    np.testing.assert_array_equal(
        iforest.score_samples(train, points, random_state=3),
        sklearn_scores(train, points, random_state=3),
    )
    big = health_like(rng, 300)  # more rows than a tree sees: scikit-learn samples them
    np.testing.assert_array_equal(iforest.score_samples(big, points), sklearn_scores(big, points))


def test_an_odd_point_scores_below_every_training_row() -> None:
    rng = np.random.default_rng(2)
    train = health_like(rng, 60)
    scores = iforest.score_samples(train, np.vstack([train, [[150.0, 0.3, 0.9, 9.0]]]))
    assert scores[-1] < scores[:-1].min()
