"""Model store: content addressing, integrity, promotion decisions and rollback."""

import hashlib
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import skops.io as sio

from aiwf_assets.io import model_store
from aiwf_assets.io.model_store import (
    ModelCard,
    ModelEnvironmentWarning,
    ModelIntegrityError,
    ModelStore,
    NoChampionError,
    runtime_environment,
)
from aiwf_assets.ml import churn, segmentation
from aiwf_assets.ml.promotion import (
    TrainingOutcome,
    decide_promotion,
    missing_metrics,
    promote_challenger,
)
from tests.test_ml_models import separated_groups

MARGIN = 0.01
KEY = b"store-secret"
CARD = dict(
    family="churn", model_name="m", params={}, metrics={"roc_auc": 0.8}, baseline_metrics={},
    data_versions={"a": "v"}, row_counts={}, trained_through="2026-03-01", code_version="c",
)  # fmt: skip


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
    store = ModelStore.local(str(tmp_path), KEY)
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
    assert (tmp_path / "artifacts" / "churn" / f"{card.version}.skops").exists()
    assert store.card("churn", card.version) == card
    assert store.load("churn", card.version) == {"weights": [1, 2, 3]}


def test_a_tampered_artifact_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    version = _promote(store, _outcome("a", 0.8)).challenger.version
    (tmp_path / "artifacts" / "churn" / f"{version}.skops").write_bytes(b"not the model")
    with pytest.raises(ModelIntegrityError, match=f"expected {version}. Refusing to load it"):
        store.load("churn", version)


def test_a_fitted_pipeline_round_trips_and_its_card_records_the_libraries(
    tmp_path: Path,
) -> None:
    frame = separated_groups(groups=3, spread=0.05)
    artifact = segmentation.train_segmentation(frame, range(2, 4), sample_size=200).artifact
    store = ModelStore.local(str(tmp_path), KEY)
    card = store.save(artifact, **CARD)
    data = (tmp_path / "artifacts" / "churn" / f"{card.version}.skops").read_bytes()
    assert not data.startswith(b"\x80")  # not a pickle: a skops (zip) file
    assert data.startswith(b"PK")
    assert store.save(artifact, **CARD).version == card.version  # same model, same bytes
    assert card.environment == runtime_environment()
    assert {"python", "scikit-learn", "numpy"} <= set(card.environment)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same versions: no warning
        loaded = store.load("churn", card.version)
    x = frame.select(segmentation.segment_features(("web", "app", "store"))).to_numpy()
    assert (loaded["pipeline"].predict(x) == artifact["pipeline"].predict(x)).all()


def test_loading_under_other_library_versions_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    card = store.save({"weights": [1.0]}, **CARD)
    newer = {**runtime_environment(), "scikit-learn": "9.9.0"}
    monkeypatch.setattr(model_store, "runtime_environment", lambda: newer)
    with pytest.warns(ModelEnvironmentWarning, match=r"scikit-learn .* \(now 9.9.0\)"):
        assert store.load("churn", card.version) == {"weights": [1.0]}


def test_a_tampered_card_is_refused(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    card = store.save({"weights": [1.0]}, **CARD)
    path = tmp_path / "cards" / "churn" / f"{card.version}.json"
    original = path.read_text()
    path.write_text(original.replace('"roc_auc": 0.8', '"roc_auc": 0.99'))
    with pytest.raises(ModelIntegrityError, match="signature does not match"):
        store.card("churn", card.version)
    with pytest.raises(ModelIntegrityError, match="signature does not match"):
        store.load("churn", card.version)
    # a card re-signed with another key (someone who can write the store, not the secret)
    path.write_text(original)
    ModelStore.local(str(tmp_path / "other"), b"attacker").save({"weights": [1.0]}, **CARD)
    forged = (tmp_path / "other" / "cards" / "churn" / f"{card.version}.json").read_text()
    path.write_text(forged)
    with pytest.raises(ModelIntegrityError, match="signature does not match"):
        store.load("churn", card.version)


def test_a_champion_with_a_refused_card_is_not_compared_against(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    champion = _promote(store, _outcome("a", 0.8)).challenger.version
    card = tmp_path / "cards" / "churn" / f"{champion}.json"
    card.write_text(card.read_text().replace('"roc_auc": 0.8', '"roc_auc": 0.5'))
    result = _promote(store, _outcome("b", 0.7))
    assert result.champion_before is None and result.champion_metrics == {}
    assert "signature does not match" in result.decision.reason


def test_an_artifact_and_card_both_replaced_are_refused(tmp_path: Path) -> None:
    """Someone who can write the store but not the secret swaps in another model."""
    store = ModelStore.local(str(tmp_path), KEY)
    card = store.save({"weights": [1.0]}, **CARD)
    other = ModelStore.local(str(tmp_path / "other"), b"attacker")
    planted = other.save({"weights": [666.0]}, **CARD)
    for kind, suffix in (("artifacts", ".skops"), ("cards", ".json")):
        source = tmp_path / "other" / kind / "churn" / f"{planted.version}{suffix}"
        (tmp_path / kind / "churn" / f"{card.version}{suffix}").write_bytes(source.read_bytes())
    with pytest.raises(ModelIntegrityError):
        store.load("churn", card.version)


def test_an_artifact_with_untrusted_types_is_refused(tmp_path: Path) -> None:
    """A skops file naming a type outside the trusted list is never built (no code runs)."""
    store = ModelStore.local(str(tmp_path), KEY)
    with pytest.raises(ModelIntegrityError, match="TRUSTED_TYPES"):
        store.save({"model": Path("/etc")}, **CARD)
    card = store.save({"weights": [1.0]}, **CARD)
    data = sio.dumps({"model": Path("/etc")})
    version = hashlib.sha256(data).hexdigest()
    (tmp_path / "artifacts" / "churn" / f"{version}.skops").write_bytes(data)
    genuine = (tmp_path / "cards" / "churn" / f"{card.version}.json").read_text()
    (tmp_path / "cards" / "churn" / f"{version}.json").write_text(
        genuine.replace(card.version, version)
    )
    with pytest.raises(ModelIntegrityError):
        store.load("churn", version)


def test_first_challenger_becomes_champion(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    result = _promote(store, _outcome("a", 0.8))
    assert result.decision.promote and result.decision.passed
    assert "no champion yet" in result.decision.reason
    assert store.champion("churn") == result.challenger
    assert store.champion("churn").data_versions == {"customer_features": "v1"}


def test_promotion_needs_the_margin_on_the_same_holdout(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
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


def test_a_champion_whose_card_predates_the_gate_metrics_gives_way(tmp_path: Path) -> None:
    """After an upgrade the champion's card lacks what the action gate reads: a challenger
    no worse by the margin replaces it, so the gate is not held until one wins outright."""
    store = ModelStore.local(str(tmp_path), KEY)
    _promote(store, _outcome("a", 0.80))
    bound = "roc_auc_gain_low[identified]"

    def newer(name: str, auc: float) -> TrainingOutcome:
        outcome = _outcome(name, auc, champion_auc=0.80)
        outcome.metrics = {**outcome.metrics, bound: 0.004}
        return outcome

    worse = _promote(store, newer("b", 0.785))  # worse by more than the margin: stays
    assert not worse.decision.promote and store.champion("churn").model_name == "a"
    level = _promote(store, newer("c", 0.795))
    assert level.decision.promote and store.champion("churn").model_name == "c"
    assert "champion's card lacks roc_auc_gain_low (written by older code)" in level.decision.reason
    # the new champion's card has it: the next challenger needs the margin again
    assert not _promote(store, newer("d", 0.80)).decision.promote
    # a population measured in one holdout and not the other is no older card
    assert missing_metrics(
        {"roc_auc": 0.7, "roc_auc[guest]": 0.6, "roc_auc_gain_low[guest]": 0.01,
         "roc_auc_gain_low[identified]": 0.02},
        {"roc_auc": 0.7, "roc_auc_gain_low[identified]": 0.03},
    ) == ()  # fmt: skip


def test_an_insane_challenger_is_rejected_whatever_its_score(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    _promote(store, _outcome("a", 0.8))
    result = _promote(store, _outcome("b", 0.99, problems=["NaN churn scores on the holdout"]))
    assert not result.decision.promote and not result.decision.passed
    assert (
        result.decision.reason == "challenger fails sanity checks: NaN churn scores on the holdout"
    )
    assert store.champion("churn").model_name == "a"


def test_rollback_restores_the_previous_champion(tmp_path: Path) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    first = _promote(store, _outcome("a", 0.80)).challenger
    _promote(store, _outcome("b", 0.90, champion_auc=0.80))
    assert store.rollback("churn") == first
    assert store.champion("churn") == first
    assert store.registry("churn").history[-1]["action"] == "rollback"
    with pytest.raises(NoChampionError, match="no earlier champion"):
        store.rollback("churn")


def test_the_same_bytes_trained_again_keep_their_card_unless_evaluated_differently(
    tmp_path: Path,
) -> None:
    store = ModelStore.local(str(tmp_path), KEY)
    first = store.save({"weights": [1]}, **CARD)
    assert store.save({"weights": [1]}, **CARD) == first  # same evaluation: card kept
    # an upgrade re-runs training on unchanged data: the same bytes, newer code measuring
    # more (the action gate's lower bound); the card is the latest evaluation of the bytes
    upgraded = {
        **CARD,
        "metrics": {"roc_auc": 0.8, "roc_auc_gain_low[identified]": 0.006},
        "code_version": "c2",
    }
    second = store.save({"weights": [1]}, **upgraded)
    assert second.version == first.version and second.code_version == "c2"
    assert store.card("churn", first.version) == second  # signed: it verifies
    assert store.card("churn", first.version).metrics["roc_auc_gain_low[identified]"] == 0.006


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
