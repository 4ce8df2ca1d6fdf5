"""Content-addressed model store with champion/challenger registry, over pyarrow.fs.

Layout under the root (a local directory or an S3 prefix):

    artifacts/<family>/<sha256>.pkl   the pickled model bundle; its name is its sha256
    cards/<family>/<sha256>.json      the model card (params, metrics, data versions, ...)
    registry/<family>.json            champion lineage and the promotion history

Loading re-hashes the bytes and refuses a mismatch, so a corrupted or swapped
artifact is never served.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs

from aiwf_assets.io.parquet_store import ParquetStore, write_atomically


class ModelIntegrityError(RuntimeError):
    """An artifact's bytes do not hash to the version they are stored under."""


class NoChampionError(LookupError):
    """A family has no champion (yet, or any more) to serve or roll back to."""


@dataclass(frozen=True)
class ModelCard:
    family: str
    version: str  # sha256 of the artifact bytes
    model_name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    data_versions: dict[str, str]
    row_counts: dict[str, int]
    trained_through: str  # last date whose outcomes the artifact has seen (ISO)
    code_version: str
    created_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls(**json.loads(text))


@dataclass
class Registry:
    family: str
    champions: list[str] = field(default_factory=list)  # promotion order; last = champion
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def champion(self) -> str | None:
        return self.champions[-1] if self.champions else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelStore:
    filesystem: pafs.FileSystem
    root: str

    @classmethod
    def local(cls, root: str) -> ModelStore:
        return cls(pafs.LocalFileSystem(), root.rstrip("/"))

    @classmethod
    def s3(cls, bucket_and_prefix: str, *, endpoint: str | None) -> ModelStore:
        parquet = ParquetStore.s3(bucket_and_prefix, endpoint=endpoint)
        return cls(parquet.filesystem, parquet.root)

    # bytes ----------------------------------------------------------------
    def _write(self, path: str, data: bytes) -> None:
        write_atomically(self.filesystem, f"{self.root}/{path}", lambda out: out.write(data))

    def _read(self, path: str) -> bytes:
        with self.filesystem.open_input_stream(f"{self.root}/{path}") as stream:
            return stream.read()

    def _exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(f"{self.root}/{path}").type == pafs.FileType.File

    # artifacts and cards ---------------------------------------------------
    def save(self, artifact: object, **card_fields: Any) -> ModelCard:
        """Pickle `artifact`, store it under its sha256 and write its card."""
        data = pickle.dumps(artifact, protocol=pickle.HIGHEST_PROTOCOL)
        version = hashlib.sha256(data).hexdigest()
        family = card_fields["family"]
        card = ModelCard(version=version, created_at=_now(), **card_fields)
        if not self._exists(f"artifacts/{family}/{version}.pkl"):
            self._write(f"artifacts/{family}/{version}.pkl", data)
            self._write(f"cards/{family}/{version}.json", card.to_json().encode())
            return card
        return self.card(family, version)

    def card(self, family: str, version: str) -> ModelCard:
        path = f"cards/{family}/{version}.json"
        if not self._exists(path):
            raise FileNotFoundError(f"no model card {self.root}/{path}: unknown {family} version")
        return ModelCard.from_json(self._read(path).decode())

    def load(self, family: str, version: str) -> Any:
        """Unpickle an artifact after checking that its bytes hash to `version`."""
        path = f"artifacts/{family}/{version}.pkl"
        if not self._exists(path):
            raise FileNotFoundError(f"no model artifact {self.root}/{path}")
        data = self._read(path)
        actual = hashlib.sha256(data).hexdigest()
        if actual != version:
            raise ModelIntegrityError(
                f"{family} model {self.root}/{path} is corrupt or was replaced: its sha256 is "
                f"{actual}, expected {version}. Refusing to load it; roll back with "
                f"`aiwf model rollback {family}` or retrain the model."
            )
        return pickle.loads(data)  # noqa: S301 - bytes verified against the content address

    # registry ----------------------------------------------------------------
    def registry(self, family: str) -> Registry:
        path = f"registry/{family}.json"
        if not self._exists(path):
            return Registry(family=family)
        return Registry(**json.loads(self._read(path).decode()))

    def _save_registry(self, registry: Registry) -> None:
        text = json.dumps(asdict(registry), indent=2, sort_keys=True)
        self._write(f"registry/{registry.family}.json", text.encode())

    def champion(self, family: str) -> ModelCard | None:
        version = self.registry(family).champion
        return self.card(family, version) if version else None

    def champion_artifact(self, family: str) -> tuple[ModelCard, Any]:
        card = self.champion(family)
        if card is None:
            raise NoChampionError(
                f"there is no {family} champion: materialise the {family} model asset "
                "and let its promotion check pass first"
            )
        return card, self.load(family, card.version)

    def record(self, family: str, version: str, action: str, reason: str) -> Registry:
        """Append a decision (promote, reject, keep); on promote the version becomes champion."""
        registry = self.registry(family)
        previous = registry.champion
        if action == "promote" and previous != version:
            registry.champions.append(version)
        registry.history.append(
            {
                "at": _now(),
                "action": action,
                "version": version,
                "champion_before": previous,
                "reason": reason,
            }
        )
        self._save_registry(registry)
        return registry

    def rollback(self, family: str, reason: str = "manual rollback") -> ModelCard:
        """Restore the previous champion; the current one leaves the lineage."""
        registry = self.registry(family)
        if len(registry.champions) < 2:
            raise NoChampionError(
                f"cannot roll back {family}: there is no earlier champion "
                f"(lineage: {registry.champions or 'empty'})"
            )
        retired = registry.champions.pop()
        restored = registry.champions[-1]
        self.load(family, restored)  # refuse to roll back onto a corrupt artifact
        registry.history.append(
            {
                "at": _now(),
                "action": "rollback",
                "version": restored,
                "champion_before": retired,
                "reason": reason,
            }
        )
        self._save_registry(registry)
        return self.card(family, restored)


def rollback(store: ModelStore, family: str) -> ModelCard:
    """CLI entry point (`aiwf model rollback <family>`): restore the previous champion."""
    return store.rollback(family)
