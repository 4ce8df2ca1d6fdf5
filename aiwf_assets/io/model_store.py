"""Content-addressed model store with champion/challenger registry, over pyarrow.fs.

Layout under the root (a local directory or an S3 prefix):

    artifacts/<family>/<sha256>.skops the model bundle in skops format; its name is its sha256
    cards/<family>/<sha256>.json      the model card (params, metrics, data versions, library
                                      versions, ...), signed
    registry/<family>.json            champion lineage and the promotion history

Artifacts are skops files, not pickles: loading one builds only the types in
`TRUSTED_TYPES` (scikit-learn's estimators, numpy, scipy and the few functions of ours
listed there) and refuses anything else, so a planted artifact cannot run code. Loading
re-hashes the bytes and refuses a mismatch with the version; the card carries an HMAC
under a key the store is given (derived from the deployment's secret), so a card edited or
written by someone without the key is refused too, even if they also wrote the artifact.
A model loaded under other Python, scikit-learn or numpy versions than it was trained with
loads with a `ModelEnvironmentWarning`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import platform
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from typing import Any

import pyarrow.fs as pafs
import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from aiwf_assets.io.parquet_store import write_atomically

# Types a model artifact may contain beyond what skops trusts by default (builtins, numpy,
# scipy, scikit-learn's estimators); anything else makes loading fail.
TRUSTED_TYPES: list[str] = [
    "aiwf_assets.ml.churn.signed_log",  # FunctionTransformer's function in churn/segmentation
    "aiwf_assets.ml.segmentation.shrink_shares",  # segmentation: shrunk channel shares
    "numpy.dtype",
    "scipy.sparse._csr.csr_matrix",  # the recommender's item-item scores
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # gradient boosting
]
ARTIFACT_SUFFIX = ".skops"
# The card key is derived from the store's secret so the secret itself signs nothing else.
_CARD_KEY_LABEL = b"aiwf model card v1"


class ModelIntegrityError(RuntimeError):
    """An artifact or card was changed after it was written, or holds untrusted types."""


class ModelEnvironmentWarning(UserWarning):
    """A model is loaded under other library versions than it was trained with."""


def skops_bytes(artifact: object) -> bytes:
    """`artifact` in skops format, the same bytes for the same model (so an identical retrain
    keeps its sha256): skops names objects and their array files by `id()` and stamps zip
    entries with the time; both are renumbered here in the schema's own order."""
    written = zipfile.ZipFile(io.BytesIO(sio.dumps(artifact)))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, list):
            return [renumber(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids) + 1)  # skops reads 0 as "no id"
            elif key == "file" and isinstance(value, str):
                suffix = value.rpartition(".")[2]
                out[key] = files.setdefault(value, f"{len(files)}.{suffix}")
            else:
                out[key] = renumber(value)
        return out

    schema = renumber(json.loads(written.read("schema.json")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as rewritten:
        entries = [("schema.json", json.dumps(schema, indent=2).encode())]
        entries += sorted((new, written.read(old)) for old, new in files.items())
        for name, data in entries:
            rewritten.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def runtime_environment() -> dict[str, str]:
    """The versions a model's behaviour depends on, as recorded on its card."""
    return {
        "python": platform.python_version(),
        "scikit-learn": installed_version("scikit-learn"),
        "numpy": installed_version("numpy"),
        "scipy": installed_version("scipy"),
        "skops": installed_version("skops"),
    }


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
    environment: dict[str, str] = field(default_factory=dict)  # runtime_environment()

    def canonical(self) -> bytes:
        """The bytes the card's signature covers."""
        return json.dumps(asdict(self), sort_keys=True, default=str).encode()

    def to_json(self, signature: str) -> str:
        return json.dumps(
            {**asdict(self), "signature": signature}, indent=2, sort_keys=True, default=str
        )

    @classmethod
    def from_json(cls, text: str) -> tuple[ModelCard, str]:
        """The card and the signature stored with it."""
        fields = json.loads(text)
        signature = fields.pop("signature", "")
        return cls(**fields), signature


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
    secret: bytes = field(repr=False)  # the deployment's secret; cards are signed with it

    @classmethod
    def local(cls, root: str, secret: bytes) -> ModelStore:
        return cls(pafs.LocalFileSystem(), root.rstrip("/"), secret)

    def _sign(self, card: ModelCard) -> str:
        key = hmac.new(self.secret, _CARD_KEY_LABEL, hashlib.sha256).digest()
        return hmac.new(key, card.canonical(), hashlib.sha256).hexdigest()

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
        """Store `artifact` in skops format under its sha256 and write its signed card.

        The same bytes trained again (an upgrade re-running training on unchanged data) keep
        their stored card unless this training evaluated them differently (newer code that
        measures more, e.g. the action gate's lower bound, or another holdout): then the
        card is rewritten, so it always holds the latest evaluation of those bytes."""
        data = skops_bytes(artifact)
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        if untrusted:
            raise ModelIntegrityError(
                f"a {card_fields['family']} artifact holds types the store would refuse to "
                f"load: {untrusted}. Add them to TRUSTED_TYPES in {__name__} if they are safe."
            )
        version = hashlib.sha256(data).hexdigest()
        family = card_fields["family"]
        card = ModelCard(
            version=version, created_at=_now(), environment=runtime_environment(), **card_fields
        )
        if self._exists(f"artifacts/{family}/{version}{ARTIFACT_SUFFIX}"):
            stored = self.card(family, version)
            evaluation = ("metrics", "baseline_metrics", "code_version", "trained_through")
            if all(getattr(stored, f) == getattr(card, f) for f in evaluation):
                return stored
        else:
            self._write(f"artifacts/{family}/{version}{ARTIFACT_SUFFIX}", data)
        self._write(f"cards/{family}/{version}.json", card.to_json(self._sign(card)).encode())
        return card

    def card(self, family: str, version: str) -> ModelCard:
        """The card of a version, refused unless it carries this store's signature."""
        path = f"cards/{family}/{version}.json"
        if not self._exists(path):
            raise FileNotFoundError(f"no model card {self.root}/{path}: unknown {family} version")
        card, signature = ModelCard.from_json(self._read(path).decode())
        if card.version != version or not hmac.compare_digest(signature, self._sign(card)):
            raise ModelIntegrityError(
                f"{family} model card {self.root}/{path} was changed or not written by this "
                "deployment (its signature does not match). Refusing it; roll back with "
                f"`aiwf model rollback {family}` or retrain the model."
            )
        return card

    def artifact_uri(self, family: str, version: str) -> str:
        """Where a version's artifact is (a path, or s3://bucket/key)."""
        path = f"{self.root}/artifacts/{family}/{version}{ARTIFACT_SUFFIX}"
        return f"s3://{path}" if self.filesystem.type_name == "s3" else path

    def load(self, family: str, version: str) -> Any:
        """The artifact of a version whose card is genuine and whose bytes hash to `version`,
        built from trusted types only."""
        card = self.card(family, version)
        path = f"artifacts/{family}/{version}{ARTIFACT_SUFFIX}"
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
        differences = {
            name: (card.environment.get(name), now)
            for name, now in runtime_environment().items()
            if card.environment.get(name) != now
        }
        if differences:
            warnings.warn(
                ModelEnvironmentWarning(
                    f"{family} model {version[:12]} was trained under other versions "
                    + ", ".join(f"{k} {was} (now {now})" for k, (was, now) in differences.items())
                    + ": its predictions may differ; retrain it under the current versions."
                ),
                stacklevel=2,
            )
        try:
            return sio.loads(data, trusted=TRUSTED_TYPES)
        except UntrustedTypesFoundException as exc:
            raise ModelIntegrityError(
                f"{family} model {self.root}/{path} holds untrusted types: {exc}"
            ) from exc

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
