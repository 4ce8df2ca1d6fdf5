"""IsolationForest scores for small training sets, as scikit-learn computes them, faster.

`pipeline_health` fits one IsolationForest(n_estimators=100, random_state=0) per source
and week on at most 90 rows. At that size scikit-learn's time is almost all per-tree
Python overhead (cloning the template tree, re-deriving its seed, validating parameters
and inputs); a year-long range fits ~240 forests (~0.1 s each). `score_samples` builds
the same trees directly: the seeds scikit-learn derives, the same tree recipe, every
row in every tree (with max_samples = n_samples <= 256 each tree's draw without
replacement is a permutation, i.e. unit weights, which a tree fitted without weights
uses: no weight array to validate per tree), and the same path-length arithmetic
in the same order, so the scores are bit for bit scikit-learn's (`tests/
test_monitoring_iforest.py` compares them on the pinned version). Larger training sets
go to scikit-learn itself.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.tree import ExtraTreeRegressor

MAX_SAMPLES = 256  # IsolationForest's max_samples="auto": min(256, n_samples)
_MAX_INT = np.iinfo(np.int32).max


@lru_cache(maxsize=8)
def _tree_seeds(n_estimators: int, random_state: int) -> tuple[int, ...]:
    """Each tree's random_state as the bagging ensemble sets it: a seed per tree drawn
    from `random_state`, and the tree's own state drawn from that seed."""
    seeds = np.random.RandomState(random_state).randint(_MAX_INT, size=n_estimators)
    return tuple(int(np.random.RandomState(seed).randint(_MAX_INT)) for seed in seeds)


def average_path_length(n_samples: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful search in a binary tree of n samples
    (scikit-learn's `_average_path_length`, same operations)."""
    n = np.asarray(n_samples, dtype=np.float64)
    length = np.zeros(n.shape)
    many = n > 2
    length[n == 2] = 1.0
    length[many] = 2.0 * (np.log(n[many] - 1.0) + np.euler_gamma) - 2.0 * (n[many] - 1.0) / n[many]
    return length


def score_samples(
    train: np.ndarray, points: np.ndarray, n_estimators: int = 100, random_state: int = 0
) -> np.ndarray:
    """`IsolationForest(n_estimators, random_state=random_state).fit(train)
    .score_samples(points)`: lower is more abnormal."""
    train = np.asarray(train, dtype=np.float32)
    points = np.asarray(points, dtype=np.float32)
    n_samples = train.shape[0]
    if n_samples > MAX_SAMPLES:  # trees see a sample of the rows: scikit-learn draws it
        forest = IsolationForest(n_estimators=n_estimators, random_state=random_state)
        return forest.fit(train).score_samples(points)
    target = np.random.RandomState(random_state).uniform(size=n_samples)
    max_depth = int(np.ceil(np.log2(max(n_samples, 2))))
    depths = np.zeros(points.shape[0])
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for seed in _tree_seeds(n_estimators, random_state):
            tree = (
                ExtraTreeRegressor(
                    max_depth=max_depth, max_features=1, splitter="random", random_state=seed
                )
                .fit(train, target, check_input=False)
                .tree_
            )
            leaves = tree.apply(points)
            depths += (
                tree.compute_node_depths()[leaves]
                + average_path_length(tree.n_node_samples)[leaves]
                - 1.0
            )
    denominator = n_estimators * average_path_length(np.array([n_samples]))
    return -(
        2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))
    )
