"""Settings: the one place that reads the environment.

Everything else asks `get_settings()`; nothing reads `os.environ` ad hoc.
`AIWF_ENV=local` (default) is the embedded setup (files + DuckDB + SQLite
instance); `AIWF_ENV=prod` is S3 + Postgres + Kubernetes.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

Environment = Literal["local", "prod"]
ExecutorChoice = Literal["default", "k8s"]


# Secrets: resources get them as dg.EnvVar(<name>), so only these names reach the webserver.
WAREHOUSE_DSN_VAR = "AIWF_WAREHOUSE_DSN"
PII_KEY_VAR = "AIWF_PII_KEY"
# alert channels (docs/AUTOMATION.md#alerts): each on when its variable is set
ALERT_WEBHOOK_VAR = "AIWF_ALERT_WEBHOOK_URL"
SLACK_TOKEN_VAR = "AIWF_SLACK_TOKEN"
TEAMS_WEBHOOK_VAR = "AIWF_TEAMS_WEBHOOK_URL"


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to set."""


@dataclass(frozen=True)
class Settings:
    env: Environment
    home: Path
    # prod: object storage and databases
    s3_bucket: str | None = None
    s3_prefix: str = "aiwf"
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_max_attempts: int = 5
    warehouse_dsn: str | None = None
    warehouse_schema_suffix: str = ""
    pii_key_value: str | None = field(default=None, repr=False)
    # alert channels: whether each secret is set (its value reaches resources as dg.EnvVar)
    alert_webhook_enabled: bool = False
    slack_enabled: bool = False
    slack_channel: str = "#aiwf-alerts"
    slack_api_url: str = "https://slack.com/api/"
    teams_enabled: bool = False
    # where people open the UI: alerts link to their run there
    webserver_url: str = "http://127.0.0.1:3000"
    partition_start: str = "2026-01-01"
    partition_end: str | None = None  # last daily partition (inclusive); None: up to today
    executor: ExecutorChoice = "default"
    # extra source declarations outside the image (a YAML file or a folder of them)
    sources_path: Path | None = None
    # automation and monitoring (docs/AUTOMATION.md); crons are UTC
    observe_interval_s: int = 60
    # a landed file is observed only once it has not been written for this long (0: at
    # once); for landing folders written in place (SFTP, NFS), where a file grows while
    # it uploads. S3 objects appear whole.
    landing_settle_s: int = 0
    automation_interval_s: int = 30
    debounce_cron: str = "*/15 * * * *"
    scoring_cron: str = "0 6 * * *"
    retrain_cron: str = "0 3 * * 1"
    drift_psi_warn: float = 0.1
    drift_psi_retrain: float = 0.25
    drift_ks_warn: float = 0.1
    drift_ks_retrain: float = 0.2
    performance_auc_drop: float = 0.05
    performance_wape_rise: float = 0.05
    anomaly_z: float = 3.5
    freshness_fail_hours: float = 36.0
    guard_min_volume_ratio: float = 0.2
    guard_window_days: int = 28
    guard_max_reference_shrink: float = 0.2
    guard_early_end_hours: float = 2.0
    guard_max_quarantine_share: float = 0.5
    guard_max_cross_day_share: float = 0.5

    # local layout -------------------------------------------------------
    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def truth_dir(self) -> Path:
        """Latent truth from the generator: for evaluation only, never read by the pipeline."""
        return self.home / "truth"

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def alerts_dir(self) -> Path:
        return self.home / "alerts"

    @property
    def cache_dir(self) -> Path:
        """Disposable caches (e.g. landing file fingerprints); safe to delete."""
        return self.home / "cache"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster_home")

    # prod layout --------------------------------------------------------
    def s3_uri(self, *parts: str) -> str:
        if not self.s3_bucket:
            raise SettingsError(
                "AIWF_ENV=prod needs AIWF_S3_BUCKET (the bucket for landing, storage and models)"
            )
        key = "/".join(p.strip("/") for p in (self.s3_prefix, *parts) if p)
        return f"s3://{self.s3_bucket}/{key}"

    @property
    def pii_key(self) -> bytes:
        """Key for the keyed HMAC that pseudonymises PII.

        prod: must come from AIWF_PII_KEY (a Secret). local: generated once per
        AIWF_HOME and kept in `<home>/pii.key`, so keys are stable across runs.
        """
        if self.pii_key_value:
            return self.pii_key_value.encode()
        if self.env == "prod":
            raise SettingsError(
                f"{PII_KEY_VAR} is not set: in prod the pseudonymisation key must come from "
                "the environment (a Kubernetes Secret); refusing to invent one"
            )
        return local_pii_key(self.pii_key_file)

    @property
    def pii_key_file(self) -> Path:
        """local only: the key generated for this AIWF_HOME."""
        return self.home / "pii.key"


def local_pii_key(key_file: Path) -> bytes:
    """The key kept in `key_file`, generated there on first use."""
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
    return key_file.read_text().strip().encode()


def _read_env(environ: dict[str, str]) -> Settings:
    env = environ.get("AIWF_ENV", "local").strip().lower()
    if env not in ("local", "prod"):
        raise SettingsError(f"AIWF_ENV must be 'local' or 'prod', got {env!r}")
    home = Path(environ.get("AIWF_HOME", ".aiwf")).expanduser().resolve()
    executor = environ.get("AIWF_EXECUTOR", "default").strip().lower()
    if executor not in ("default", "k8s"):
        raise SettingsError(
            f"AIWF_EXECUTOR must be 'default' (steps run inside the run's process or pod) or "
            f"'k8s' (one Kubernetes pod per step), got {executor!r}"
        )
    return Settings(
        env=env,  # type: ignore[arg-type]
        home=home,
        s3_bucket=environ.get("AIWF_S3_BUCKET") or None,
        s3_prefix=environ.get("AIWF_S3_PREFIX", "aiwf"),
        s3_endpoint=environ.get("AIWF_S3_ENDPOINT") or environ.get("AWS_ENDPOINT_URL") or None,
        # the variables boto3 and the AWS SDKs read, so every client signs for one region
        s3_region=(
            environ.get("AIWF_S3_REGION")
            or environ.get("AWS_REGION")
            or environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        ),
        s3_max_attempts=int(_number(environ, "AIWF_S3_MAX_ATTEMPTS", 5)),
        warehouse_dsn=environ.get(WAREHOUSE_DSN_VAR) or None,
        warehouse_schema_suffix=environ.get("AIWF_WAREHOUSE_SCHEMA_SUFFIX", ""),
        pii_key_value=environ.get(PII_KEY_VAR) or None,
        alert_webhook_enabled=bool(environ.get(ALERT_WEBHOOK_VAR, "").strip()),
        slack_enabled=bool(environ.get(SLACK_TOKEN_VAR, "").strip()),
        slack_channel=environ.get("AIWF_SLACK_CHANNEL", "").strip() or "#aiwf-alerts",
        slack_api_url=environ.get("AIWF_SLACK_API_URL", "").strip() or "https://slack.com/api/",
        teams_enabled=bool(environ.get(TEAMS_WEBHOOK_VAR, "").strip()),
        webserver_url=environ.get("AIWF_WEBSERVER_URL", "http://127.0.0.1:3000").rstrip("/"),
        partition_start=environ.get("AIWF_PARTITION_START", "2026-01-01"),
        partition_end=_partition_end(environ),
        executor=executor,  # type: ignore[arg-type]
        sources_path=(
            Path(environ["AIWF_SOURCES"]).expanduser().resolve()
            if environ.get("AIWF_SOURCES", "").strip()
            else None
        ),
        observe_interval_s=int(_number(environ, "AIWF_OBSERVE_INTERVAL_S", 60)),
        landing_settle_s=int(_number(environ, "AIWF_LANDING_SETTLE_S", 0)),
        automation_interval_s=int(_number(environ, "AIWF_AUTOMATION_INTERVAL_S", 30)),
        debounce_cron=environ.get("AIWF_DEBOUNCE_CRON", "*/15 * * * *"),
        scoring_cron=environ.get("AIWF_SCORING_CRON", "0 6 * * *"),
        retrain_cron=environ.get("AIWF_RETRAIN_CRON", "0 3 * * 1"),
        drift_psi_warn=_number(environ, "AIWF_DRIFT_PSI_WARN", 0.1),
        drift_psi_retrain=_number(environ, "AIWF_DRIFT_PSI_RETRAIN", 0.25),
        drift_ks_warn=_number(environ, "AIWF_DRIFT_KS_WARN", 0.1),
        drift_ks_retrain=_number(environ, "AIWF_DRIFT_KS_RETRAIN", 0.2),
        performance_auc_drop=_number(environ, "AIWF_PERFORMANCE_AUC_DROP", 0.05),
        performance_wape_rise=_number(environ, "AIWF_PERFORMANCE_WAPE_RISE", 0.05),
        anomaly_z=_number(environ, "AIWF_ANOMALY_Z", 3.5),
        freshness_fail_hours=_number(environ, "AIWF_FRESHNESS_FAIL_HOURS", 36.0),
        guard_min_volume_ratio=_number(environ, "AIWF_GUARD_MIN_VOLUME_RATIO", 0.2),
        guard_window_days=int(_number(environ, "AIWF_GUARD_WINDOW_DAYS", 28)),
        guard_max_reference_shrink=_number(environ, "AIWF_GUARD_MAX_REFERENCE_SHRINK", 0.2),
        guard_early_end_hours=_number(environ, "AIWF_GUARD_EARLY_END_HOURS", 2.0),
        guard_max_quarantine_share=_number(environ, "AIWF_GUARD_MAX_QUARANTINE_SHARE", 0.5),
        guard_max_cross_day_share=_number(environ, "AIWF_GUARD_MAX_CROSS_DAY_SHARE", 0.5),
    )


def _number(environ: dict[str, str], name: str, default: float) -> float:
    """A positive number from the environment, or the default when unset."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {text!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {text!r}")
    return value


def _partition_end(environ: dict[str, str]) -> str | None:
    end = environ.get("AIWF_PARTITION_END", "").strip()
    if not end:
        return None
    start = environ.get("AIWF_PARTITION_START", "2026-01-01")
    try:
        if date.fromisoformat(end) < date.fromisoformat(start):
            raise SettingsError(
                f"AIWF_PARTITION_END {end} is before AIWF_PARTITION_START {start}"
            )
    except ValueError:
        raise SettingsError(
            f"AIWF_PARTITION_START / AIWF_PARTITION_END must be YYYY-MM-DD, got {start!r} / "
            f"{end!r}"
        ) from None
    return end


HOME_SETTINGS_FILE = "aiwf.env"


def home_settings(home: Path) -> dict[str, str]:
    """`AIWF_*=value` lines of `<home>/aiwf.env`, the home's own settings (`aiwf demo`
    writes its partition window there, so `aiwf ui` and `dg` show the days it holds)."""
    path = home / HOME_SETTINGS_FILE
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().startswith("AIWF_") and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def write_home_settings(home: Path, values: dict[str, str], why: str) -> Path:
    """Write `<home>/aiwf.env` (replacing it), headed by a comment saying who wrote it."""
    path = home / HOME_SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {why}", "# the environment overrides these values", *(
        f"{name}={value}" for name, value in values.items()
    )]
    path.write_text("\n".join(lines) + "\n")
    return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings for this process, read once: the environment, then `<home>/aiwf.env`."""
    environ = dict(os.environ)
    home = Path(environ.get("AIWF_HOME", ".aiwf")).expanduser().resolve()
    return _read_env({**home_settings(home), **environ})


def reset_settings_cache() -> None:
    """For tests and the CLI, which change AIWF_* before building definitions."""
    get_settings.cache_clear()
