"""Model store: content addressing, integrity, promotion decisions and rollback."""

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from aiwf_assets.io.model_store import ModelCard, ModelIntegrityError, ModelStore, NoChampionError
from aiwf_assets.ml import churn
from aiwf_assets.ml.promotion import TrainingOutcome, decide_promotion, promote_challenger

MARGIN = 0.01


def _outcome(
    name: str, auc: float, champion_auc: float | None = None, problems: list[str] | None = None
) -> TrainingOutcome:
    def evaluate_champion(card: ModelCard, artifact: Any) -> dict[str, float]:
        return {"roc_auc": champion_auc if champion_auc is not None else card.metrics["roc_auc"]}

    return TrainingOutcome(
        model_name=name,
        params={"name": name},
        artifact={"weights": name},
        metrics={"roc_auc": auc},
        baseline_metrics={"roc_auc": 0.6},
        selection=pl.DataFrame({"candidate": [name]}),
        row_counts={"train_rows": 10},
        trained_through=date(2026, 3, 1),
        holdout_start=date(2026, 2, 1),
        evaluate_champion=evaluate_champion,
        sanity_problems=problems or [],
    )


def _promote(store: ModelStore, outcome: TrainingOutcome):
    return promote_challenger(
        store, "churn", outcome, churn.policy(MARGIN), {"customer_features": "v1"}, "code1"
    )


def test_artifacts_are_stored_under_their_sha256_with_a_card(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path))
    card = store.save(
        {"weights": [1, 2, 3]},
        family="churn",
        model_name="m",
        params={},
        metrics={"roc_auc": 0.8},
        baseline_metrics={},
        data_versions={"a": "v"},
        row_counts={},
        trained_through="2026-03-01",
        code_version="c",
    )
    assert len(card.version) == 64
    assert (tmp_path / "artifacts" / "churn" / f"{card.version}.pkl").exists()
    assert store.card("churn", card.version) == card
    assert store.load("churn", card.version) == {"weights": [1, 2, 3]}


def test_a_tampered_artifact_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path))
    version = _promote(store, _outcome("a", 0.8)).challenger.version
    (tmp_path / "artifacts" / "churn" / f"{version}.pkl").write_bytes(b"not the model")
    with pytest.raises(ModelIntegrityError, match=f"expected {version}. Refusing to load it"):
        store.load("churn", version)


def test_first_challenger_becomes_champion(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path))
    result = _promote(store, _outcome("a", 0.8))
    assert result.decision.promote and result.decision.passed
    assert "no champion yet" in result.decision.reason
    assert store.champion("churn") == result.challenger
    assert store.champion("churn").data_versions == {"customer_features": "v1"}


def test_promotion_needs_the_margin_on_the_same_holdout(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path))
    first = _promote(store, _outcome("a", 0.80)).challenger
    # re-scored on the new holdout the champion gives 0.795: a 0.80 challenger gains too little
    rejected = _promote(store, _outcome("b", 0.80, champion_auc=0.795))
    assert not rejected.decision.promote and rejected.decision.passed
    assert rejected.decision.reason.startswith("champion stays")
    assert "champion 0.7950" in rejected.decision.reason
    assert "gain +0.0050, margin 0.01" in rejected.decision.reason
    assert store.champion("churn") == first
    promoted = _promote(store, _outcome("c", 0.83, champion_auc=0.795))
    assert promoted.decision.promote and promoted.decision.reason.startswith("promoted")
    assert store.champion("churn").model_name == "c"
    actions = [event["action"] for event in store.registry("churn").history]
    assert actions == ["promote", "reject", "promote"]


def test_an_insane_challenger_is_rejected_whatever_its_score(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path))
    _promote(store, _outcome("a", 0.8))
    result = _promote(store, _outcome("b", 0.99, problems=["NaN churn scores on the holdout"]))
    assert not result.decision.promote and not result.decision.passed
    assert (
        result.decision.reason == "challenger fails sanity checks: NaN churn scores on the holdout"
    )
    assert store.champion("churn").model_name == "a"


def test_rollback_restores_the_previous_champion(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path))
    first = _promote(store, _outcome("a", 0.80)).challenger
    _promote(store, _outcome("b", 0.90, champion_auc=0.80))
    assert store.rollback("churn") == first
    assert store.champion("churn") == first
    assert store.registry("churn").history[-1]["action"] == "rollback"
    with pytest.raises(NoChampionError, match="no earlier champion"):
        store.rollback("churn")


def test_an_identical_challenger_keeps_the_champion() -> None:
    decision = decide_promotion(
        churn.policy(MARGIN), {"roc_auc": 0.8}, {"roc_auc": 0.8}, [], identical_to_champion=True
    )
    assert decision.passed and not decision.promote


def test_lower_is_better_metrics_promote_on_a_drop() -> None:
    from aiwf_assets.ml import demand

    decision = decide_promotion(demand.policy(0.01), {"wape": 0.40}, {"wape": 0.45}, [])
    assert decision.promote
    assert not decide_promotion(demand.policy(0.01), {"wape": 0.445}, {"wape": 0.45}, []).promote
