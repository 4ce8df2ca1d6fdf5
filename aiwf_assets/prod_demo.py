"""`aiwf --env prod demo`: the local demo's pipeline on production services, from one machine.

Only where things live differs from `aiwf demo` (aiwf_assets/demo.py):

- the generator writes into a temporary directory; its landing files are uploaded to
  `s3://<bucket>/<prefix>/landing/` and its `truth/` is kept under AIWF_HOME (for
  `aiwf evaluate`; the pipeline never reads it);
- the Dagster instance is the production one from deploy/dagster.yaml (Postgres storage
  from the DAGSTER_PG_* variables, the run queue, step logs on S3) with the in-process run
  launcher instead of Kubernetes Jobs, written to `<DAGSTER_HOME>/dagster.yaml`;
- the resources are the prod ones (`build_resources`): Parquet storage, models and exports
  on S3, the warehouse on Postgres (dbt-postgres for the marts).

Every setting and service is checked before anything is generated or run, and a problem
names the variable to fix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg
import pyarrow.fs as pafs
import yaml

from aiwf_assets.connections import s3_resource
from aiwf_assets.connections import s3_store as store_on_s3
from aiwf_assets.demo import REPO_ROOT, days_of_landed_files, materialise_all
from aiwf_assets.ingest.spec import declared_sources
from aiwf_assets.io.parquet_store import ParquetStore
from aiwf_assets.partitions import partitions_for
from aiwf_assets.settings import Settings, SettingsError, get_settings

DEPLOY_INSTANCE = REPO_ROOT / "deploy" / "dagster.yaml"
INSTANCE_HEADER = "# Written by `aiwf --env prod demo` from deploy/dagster.yaml, on every run.\n"
DEFAULT_INSTANCE_DIR = "dagster_home_prod"  # under AIWF_HOME, unless DAGSTER_HOME is set
IN_PROCESS_LAUNCHER = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
# the uploaded files, so that a re-run removes what the previous one uploaded and this one did
# not (the generator does the same locally); a dot file outside every channel folder
UPLOAD_MANIFEST = ".aiwf-demo-upload.json"
UPLOAD_THREADS = 8
CONNECT_TIMEOUT_S = 5

REQUIRED_SETTINGS = {
    "AIWF_S3_BUCKET": "the bucket for landing files, Parquet storage, models and exports",
    "AIWF_WAREHOUSE_DSN": "the Postgres warehouse, e.g. postgresql://user:password@host:5432/db",
    "AIWF_PII_KEY": "the pseudonymisation key, e.g. $(openssl rand -hex 32)",
}
DAGSTER_PG_VARIABLES = {
    "DAGSTER_PG_HOST": "host of the Dagster instance's Postgres",
    "DAGSTER_PG_PORT": "its port, e.g. 5432",
    "DAGSTER_PG_USER": "its user",
    "DAGSTER_PG_PASSWORD": "its password (set it empty for trust authentication)",
    "DAGSTER_PG_DB": "its database, created beforehand and separate from the warehouse",
}


class ProdDemoError(SettingsError):
    """The prod demo cannot start: the message says which setting or service to fix."""


@dataclass(frozen=True)
class InstanceDatabase:
    """The Dagster instance's Postgres database, as deploy/dagster.yaml reads it (DAGSTER_PG_*)."""

    host: str
    port: str
    user: str
    dbname: str
    password: str = field(default="", repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> InstanceDatabase:
        return cls(
            host=environ["DAGSTER_PG_HOST"], port=environ["DAGSTER_PG_PORT"],
            user=environ["DAGSTER_PG_USER"], dbname=environ["DAGSTER_PG_DB"],
            password=environ["DAGSTER_PG_PASSWORD"],
        )

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password or None,
            dbname=self.dbname, connect_timeout=CONNECT_TIMEOUT_S,
        )

    @property
    def label(self) -> str:
        return f"postgres {self.user}@{self.host}:{self.port}/{self.dbname}"


# checks, before anything runs ----------------------------------------------------------
def check_environment(settings: Settings, environ: Mapping[str, str]) -> InstanceDatabase:
    """The Dagster database settings, once every required variable is set; else one error
    listing all that are missing."""
    values = {
        "AIWF_S3_BUCKET": settings.s3_bucket,
        "AIWF_WAREHOUSE_DSN": settings.warehouse_dsn,
        "AIWF_PII_KEY": settings.pii_key_value,
    }
    missing = [f"  {name}: {why}" for name, why in REQUIRED_SETTINGS.items() if not values[name]]
    missing += [
        f"  {name}: {why}"
        for name, why in DAGSTER_PG_VARIABLES.items()
        if environ.get(name) is None or (name != "DAGSTER_PG_PASSWORD" and not environ[name])
    ]
    if missing:
        raise ProdDemoError(
            "these environment variables are not set (docs/DEPLOY.md, "
            "'Production mode on this machine'):\n" + "\n".join(missing)
        )
    return InstanceDatabase.from_environ(environ)


def check_services(settings: Settings, database: InstanceDatabase) -> None:
    """Reach the bucket, the warehouse and the Dagster database; name what does not answer."""
    _check_bucket(settings)
    try:
        psycopg.connect(settings.warehouse_dsn or "", connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg.Error as exc:
        raise ProdDemoError(
            f"cannot connect to the warehouse AIWF_WAREHOUSE_DSN "
            f"({_dsn_label(settings.warehouse_dsn or '')}): {str(exc).strip()}"
        ) from exc
    try:
        database.connect().close()
    except psycopg.Error as exc:
        raise ProdDemoError(
            f"cannot connect to the Dagster instance database {database.label} (DAGSTER_PG_*): "
            f"{str(exc).strip()}. Create it first, e.g. "
            f"`createdb -h {database.host} -p {database.port} -U {database.user} {database.dbname}`"
        ) from exc


def _check_bucket(settings: Settings) -> None:
    store = s3_store(settings)
    bucket = settings.s3_bucket or ""
    where = f"at {settings.s3_endpoint}" if settings.s3_endpoint else "on AWS S3"
    try:
        found = store.filesystem.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as exc:
        raise ProdDemoError(
            f"cannot reach bucket {bucket!r} {where}: {exc}. Check AIWF_S3_ENDPOINT (or "
            "AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        ) from exc
    if not found:
        raise ProdDemoError(
            f"bucket {bucket!r} (AIWF_S3_BUCKET) does not exist {where}: create it first, e.g. "
            f"`aws s3 mb s3://{bucket}"
            + (f" --endpoint-url {settings.s3_endpoint}`" if settings.s3_endpoint else "`")
        )


def _dsn_label(dsn: str) -> str:
    from aiwf_assets.summary import postgres_label

    try:
        return postgres_label(dsn)
    except psycopg.ProgrammingError:
        return "unparseable DSN"


# the instance -----------------------------------------------------------------------------
def instance_dir(settings: Settings, environ: Mapping[str, str]) -> Path:
    """DAGSTER_HOME if set, else `<AIWF_HOME>/dagster_home_prod` (apart from the local demo's)."""
    chosen = environ.get("DAGSTER_HOME")
    return Path(chosen).expanduser().resolve() if chosen else settings.home / DEFAULT_INSTANCE_DIR


def instance_config(settings: Settings, home: Path, environ: Mapping[str, str]) -> dict:
    """deploy/dagster.yaml with the in-process run launcher, step logs in the demo's bucket.

    Storage stays exactly as deployed (Postgres from the DAGSTER_PG_* variables, read when
    the instance loads; no password is written).
    """
    config = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    config["run_launcher"] = dict(IN_PROCESS_LAUNCHER)
    logs = config["compute_logs"]["config"]
    logs["bucket"] = settings.s3_bucket
    logs["prefix"] = compute_log_prefix(settings, environ)
    logs["local_dir"] = str(home / "compute-logs")
    if settings.s3_endpoint:
        logs["endpoint_url"] = settings.s3_endpoint
    else:
        logs.pop("endpoint_url", None)
    return config


def compute_log_prefix(settings: Settings, environ: Mapping[str, str]) -> str:
    """DAGSTER_COMPUTE_LOG_PREFIX, else `<AIWF_S3_PREFIX>/dagster-compute-logs`."""
    default = settings.s3_uri("dagster-compute-logs").removeprefix(f"s3://{settings.s3_bucket}/")
    return environ.get("DAGSTER_COMPUTE_LOG_PREFIX") or default


def prepare_instance(settings: Settings, environ: Mapping[str, str]) -> Path:
    """Write the demo's dagster.yaml into its DAGSTER_HOME; never over one aiwf did not write."""
    home = instance_dir(settings, environ)
    target = home / "dagster.yaml"
    if target.exists() and not target.read_text().startswith(INSTANCE_HEADER):
        raise ProdDemoError(
            f"DAGSTER_HOME={home} already has a dagster.yaml that the prod demo did not write "
            f"(the local demo's, or a deployment's): unset DAGSTER_HOME to use "
            f"{settings.home / DEFAULT_INSTANCE_DIR}, or point it at an empty directory"
        )
    home.mkdir(parents=True, exist_ok=True)
    config = instance_config(settings, home, environ)
    target.write_text(INSTANCE_HEADER + yaml.safe_dump(config, sort_keys=False))
    return home


# landing on S3 ----------------------------------------------------------------------------
def s3_store(settings: Settings, *parts: str) -> ParquetStore:
    """The S3 filesystem and `bucket/prefix/<parts>` root, as the prod resources see them."""
    uri = settings.s3_uri(*parts) if parts else f"s3://{settings.s3_bucket}"
    return store_on_s3(uri, s3_resource(settings))


def upload_landing(local_landing: Path, landing: ParquetStore) -> list[str]:
    """Upload every file below `local_landing` to the same relative key below the landing
    root (one PUT each, so a reader sees a file whole or not at all), then remove what the
    previous upload put there and this one did not. Returns the relative paths uploaded."""
    files = sorted(
        p.relative_to(local_landing).as_posix() for p in local_landing.rglob("*") if p.is_file()
    )
    fs = landing.filesystem

    def put(relative: str) -> None:
        with fs.open_output_stream(f"{landing.root}/{relative}") as out:
            out.write((local_landing / relative).read_bytes())

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(put, files))
    stale = sorted(set(_previous_upload(landing)) - set(files))
    for relative in stale:
        fs.delete_file(f"{landing.root}/{relative}")
    with fs.open_output_stream(f"{landing.root}/{UPLOAD_MANIFEST}") as out:
        out.write(json.dumps({"files": files}, indent=1).encode())
    return files


def _previous_upload(landing: ParquetStore) -> list[str]:
    path = f"{landing.root}/{UPLOAD_MANIFEST}"
    if landing.filesystem.get_file_info(path).type != pafs.FileType.File:
        return []
    with landing.filesystem.open_input_stream(path) as stream:
        files = json.loads(stream.read()).get("files", [])
    # only ever relative paths below the landing root
    return [f for f in files if isinstance(f, str) and not f.startswith("/") and ".." not in f]


def landed_days_on_s3(landing: ParquetStore) -> list[str]:
    """Every day with at least one landed daily file below the landing root."""
    selector = pafs.FileSelector(landing.root, recursive=True, allow_not_found=True)
    prefix = landing.root + "/"
    return days_of_landed_files(
        info.path.removeprefix(prefix)
        for info in landing.filesystem.get_file_info(selector)
        if info.type == pafs.FileType.File
    )


def generate_to_s3(
    settings: Settings, landing: ParquetStore, *, seed: int, start: dt.date, days: int,
    scale: float, faults: Collection[str], drift_from: dt.date | None,
) -> str:
    """Generate into a temporary directory, upload landing/, keep truth/ under AIWF_HOME."""
    from aiwf_assets.generator import generate

    with tempfile.TemporaryDirectory(prefix="aiwf-generate-") as tmp:
        generated = Path(tmp)
        summary = generate(
            generated, seed=seed, start=start, days=days, scale=scale, faults=faults,
            drift_from=drift_from,
        )
        uploaded = upload_landing(generated / "landing", landing)
        shutil.copytree(generated / "truth", settings.truth_dir, dirs_exist_ok=True)
    return (
        f"{summary.to_text()}\nuploaded {len(uploaded)} landing files to s3://{landing.root}; "
        f"truth (for `aiwf evaluate` only) in {settings.truth_dir}"
    )


# the summary --------------------------------------------------------------------------------
def prod_locations(
    settings: Settings, home: Path, database: InstanceDatabase
) -> list[tuple[str, str]]:
    from aiwf_assets.summary import postgres_label

    suffix = settings.warehouse_schema_suffix
    return [
        ("S3 endpoint", settings.s3_endpoint or "AWS S3 (default endpoint)"),
        ("landing files", settings.s3_uri("landing")),
        ("Parquet storage", settings.s3_uri("storage")),
        (
            "warehouse",
            postgres_label(settings.warehouse_dsn or "")
            + (f"  (schemas suffixed {suffix})" if suffix else ""),
        ),
        ("models", settings.s3_uri("models")),
        ("exports", settings.s3_uri("exports")),
        ("Dagster instance", f"{database.label}  (DAGSTER_HOME {home})"),
        ("step logs", f"s3://{settings.s3_bucket}/{compute_log_prefix(settings, os.environ)}"),
        ("truth (local)", str(settings.truth_dir)),
    ]


def ui_hint(home: Path) -> str:
    return (
        f"open the UI on this instance:  DAGSTER_HOME={home} aiwf --env prod ui"
        "   (same environment; then http://127.0.0.1:3000)"
    )


# the demo -----------------------------------------------------------------------------------
def run_prod_demo(
    *, seed: int, start: dt.date, days: int, scale: float, faults: Collection[str],
    drift_from: dt.date | None, generate_data: bool = True, defs: dg.Definitions | None = None,
) -> int:
    """Check, generate and upload, record the landing observations, materialise everything
    in-process, print the summary.

    `defs` defaults to the code location (`aiwf_assets.definitions`, loaded for these
    settings); tests pass their own.
    """
    settings = get_settings()
    if settings.env != "prod":
        raise ProdDemoError(f"the prod demo runs with AIWF_ENV=prod, not {settings.env!r}")
    database = check_environment(settings, os.environ)
    check_services(settings, database)
    home = prepare_instance(settings, os.environ)
    landing = s3_store(settings, "landing")
    if generate_data:
        print(
            generate_to_s3(
                settings, landing, seed=seed, start=start, days=days, scale=scale,
                faults=faults, drift_from=drift_from,
            )
        )
    if defs is None:
        from aiwf_assets.definitions import defs
    from aiwf_assets.automation.sensors import record_landing_observations
    from aiwf_assets.resources import build_resources
    from aiwf_assets.summary import summarise

    with dg.DagsterInstance.from_config(str(home)) as instance:
        # as `aiwf demo`: observe first, so the landing sensor under `aiwf ui` finds nothing new
        record_landing_observations(
            instance, defs.resources["landing"], declared_sources(settings.sources_path),
            partitions_for(settings),
        )
        materialise_all(defs, instance, landed_days_on_s3(landing))
    resources = build_resources(settings)
    print(
        summarise(
            settings, resources["warehouse"].get(), resources["storage"].store(),
            resources["model_store"].store(), prod_locations(settings, home, database),
            ui_hint(home),
        )
    )
    return 0
