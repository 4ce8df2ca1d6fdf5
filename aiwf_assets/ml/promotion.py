"""Champion/challenger: what a training run hands over, and the promotion decision."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from aiwf_assets.io.model_store import ModelCard, ModelIntegrityError, ModelStore


@dataclass(frozen=True)
class PromotionPolicy:
    metric: str
    higher_is_better: bool
    margin: float  # the challenger must be better by at least this much (absolute)


@dataclass(frozen=True)
class Decision:
    promote: bool
    passed: bool  # the promotion check passes: only an insane challenger fails it
    reason: str


@dataclass
class TrainingOutcome:
    """A challenger: the artifact to serve plus its evaluation on a time-ordered holdout."""

    model_name: str
    params: dict[str, Any]
    artifact: Any  # refit through the cutoff, for serving
    metrics: dict[str, float]  # challenger on the holdout
    baseline_metrics: dict[str, float]  # naive baseline on the same holdout
    selection: pl.DataFrame  # every candidate's validation score
    row_counts: dict[str, int]
    trained_through: date
    holdout_start: date
    # scores a champion (card, artifact) on the same holdout
    evaluate_champion: Callable[[ModelCard, Any], dict[str, float]]
    sanity_problems: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    # row-level holdout predictions next to the baseline's (for evaluation and monitoring)
    holdout_predictions: pl.DataFrame | None = None


def decide_promotion(
    policy: PromotionPolicy,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    sanity_problems: list[str],
    identical_to_champion: bool = False,
    missing_from_champion_card: tuple[str, ...] = (),
) -> Decision:
    """Promote only a sane challenger that beats the champion on the same holdout by the margin.

    `missing_from_champion_card`: metrics the challenger's card has and the champion's does
    not (a card written by older code: the CRM export's action gate cannot read it). Such
    a champion gives way to a challenger that is no worse than it by the margin."""
    if sanity_problems:
        return Decision(
            False, False, "challenger fails sanity checks: " + "; ".join(sanity_problems)
        )
    if identical_to_champion:
        return Decision(False, True, "challenger is byte-identical to the champion: nothing to do")
    name = policy.metric
    new = challenger[name]
    if champion is None:
        return Decision(True, True, f"no champion yet: challenger promoted ({name} {new:.4f})")
    old = champion.get(name, math.nan)
    if math.isnan(old):
        return Decision(
            True,
            True,
            f"champion cannot be scored on the fresh holdout: challenger promoted "
            f"({name} {new:.4f})",
        )
    gain = new - old if policy.higher_is_better else old - new
    direction = "higher" if policy.higher_is_better else "lower"
    verdict = (
        f"challenger {name} {new:.4f} vs champion {old:.4f} on the same holdout "
        f"({direction} is better; gain {gain:+.4f}, margin {policy.margin})"
    )
    if gain >= policy.margin:
        return Decision(True, True, f"promoted: {verdict}")
    if missing_from_champion_card and gain > -policy.margin:
        shown = ", ".join(missing_from_champion_card[:3])
        more = len(missing_from_champion_card) - 3
        shown += f" and {more} more" if more > 0 else ""
        return Decision(
            True,
            True,
            f"promoted: the champion's card lacks {shown} (written by older code), and the "
            f"challenger is no worse by the margin: {verdict}",
        )
    return Decision(False, True, f"champion stays: {verdict}")


def missing_metrics(
    challenger: Mapping[str, float], champion: Mapping[str, float]
) -> tuple[str, ...]:
    """Metrics the challenger's card has and the champion's has under no population: a card
    written by older code. A per-population metric missing for one population only (a
    population with one outcome in that holdout) does not count."""

    def names(metrics: Mapping[str, float]) -> set[str]:
        return {key.split("[", 1)[0] for key in metrics}

    return tuple(sorted(names(challenger) - names(champion)))


@dataclass(frozen=True)
class PromotionResult:
    challenger: ModelCard
    decision: Decision
    champion_before: ModelCard | None
    champion_metrics: dict[str, float] | None  # the champion on the challenger's holdout
    champion_after: str | None


def promote_challenger(
    store: ModelStore,
    family: str,
    outcome: TrainingOutcome,
    policy: PromotionPolicy,
    data_versions: dict[str, str],
    code_version: str,
) -> PromotionResult:
    """Save the challenger, score the champion on the same holdout, decide and record."""
    challenger = store.save(
        outcome.artifact,
        family=family,
        model_name=outcome.model_name,
        params=outcome.params,
        metrics=outcome.metrics,
        baseline_metrics=outcome.baseline_metrics,
        data_versions=data_versions,
        row_counts=outcome.row_counts,
        trained_through=outcome.trained_through.isoformat(),
        code_version=code_version,
    )
    champion_metrics: dict[str, float] | None = None
    note = ""
    try:
        champion = store.champion(family)
    except ModelIntegrityError as exc:  # its card was changed (or is from an unsigned store)
        champion, champion_metrics, note = None, {}, f" ({exc})"
    if champion is not None:
        try:
            champion_metrics = outcome.evaluate_champion(
                champion, store.load(family, champion.version)
            )
        except ModelIntegrityError as exc:
            champion_metrics, note = {}, f" ({exc})"
    identical = champion is not None and champion.version == challenger.version
    missing = () if champion is None else missing_metrics(challenger.metrics, champion.metrics)
    decision = decide_promotion(
        policy, outcome.metrics, champion_metrics, outcome.sanity_problems, identical, missing
    )
    decision = Decision(decision.promote, decision.passed, decision.reason + note)
    action = "promote" if decision.promote else ("keep" if identical else "reject")
    registry = store.record(family, challenger.version, action, decision.reason)
    return PromotionResult(challenger, decision, champion, champion_metrics, registry.champion)
