"""The `dbt` resource: dbt CLI runs pointed at the warehouse the `warehouse` resource names.

dbt's profiles.yml reads the connection from environment variables only; this module derives
them from the warehouse (DuckDB file, or Postgres DSN and schema suffix) and sets them for the
dbt processes and dagster-dbt's in-process adapter, nothing written to files.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliInvocation, DbtCliResource
from dagster_dbt.core.dbt_cli_invocation import PARTIAL_PARSE_FILE_NAME, _get_dbt_target_path
from packaging import version
from psycopg.conninfo import conninfo_to_dict

from aiwf_assets.io.postgres import PostgresWarehouse
from aiwf_assets.io.warehouse import DuckDBWarehouse, Warehouse
from aiwf_assets.resources import WarehouseResource
from aiwf_assets.settings import SettingsError

_ENVIRON_LOCK = threading.Lock()


def local_dbt_executable() -> str:
    """The dbt installed next to this Python (works without an activated venv), else `dbt`."""
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else "dbt"


def dbt_warehouse_env(warehouse: Warehouse) -> dict[str, str]:
    """The environment variables dbt_project/profiles.yml reads for this warehouse."""
    if isinstance(warehouse, DuckDBWarehouse):
        return {"AIWF_WAREHOUSE_PATH": str(warehouse.path.resolve())}
    if isinstance(warehouse, PostgresWarehouse):
        params = conninfo_to_dict(warehouse.dsn)
        missing = [key for key in ("host", "user", "dbname") if not params.get(key)]
        if missing:
            raise SettingsError(
                f"AIWF_WAREHOUSE_DSN does not name {', '.join(missing)}, which dbt needs:"
                " use postgresql://user:password@host:5432/dbname"
            )
        return {
            "AIWF_WAREHOUSE_PG_HOST": str(params["host"]),
            "AIWF_WAREHOUSE_PG_PORT": str(params.get("port") or 5432),
            "AIWF_WAREHOUSE_PG_USER": str(params["user"]),
            "AIWF_WAREHOUSE_PG_DBNAME": str(params["dbname"]),
            "AIWF_WAREHOUSE_PG_SSLMODE": str(params.get("sslmode") or "prefer"),
            # dbt scrubs DBT_ENV_SECRET_* values from its logs
            "DBT_ENV_SECRET_AIWF_WAREHOUSE_PG_PASSWORD": str(params.get("password") or ""),
            "AIWF_WAREHOUSE_SCHEMA_SUFFIX": warehouse.schema_suffix,
        }
    raise SettingsError(f"dbt has no profile target for a {warehouse.dialect} warehouse")


@contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them.

    dagster-dbt starts dbt with a copy of os.environ and loads the profile in process, so the
    connection has to be in os.environ while a dbt command starts; the lock keeps threads of
    one process from seeing each other's values.
    """
    with _ENVIRON_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def share_partial_parse(invocation_target: Path, project_dir: Path) -> bool:
    """Put a finished dbt command's `partial_parse.msgpack` where dagster-dbt takes the one it
    copies into every new command's own target directory; True when there was one.

    Without it each command starts from the file the manifest's parse left there, made with
    other vars, or for another warehouse, so dbt parses the whole project again (3 CPU s
    more than a partial parse here, docs/MARTS.md). Replaced atomically: commands of other
    processes may be copying it.
    """
    source = invocation_target / PARTIAL_PARSE_FILE_NAME
    shared = _get_dbt_target_path()  # where dagster-dbt copies it from
    if not shared.is_absolute():
        shared = project_dir / shared
    if not source.exists() or source.parent.resolve() == shared.resolve():
        return False
    shared.mkdir(parents=True, exist_ok=True)
    partial = shared / f".{PARTIAL_PARSE_FILE_NAME}.{os.getpid()}.{threading.get_ident()}"
    shutil.copyfile(source, partial)
    os.replace(partial, shared / PARTIAL_PARSE_FILE_NAME)
    return True


class WarehouseDbtCliResource(DbtCliResource):
    """A `DbtCliResource` whose dbt commands connect to `warehouse`."""

    warehouse: WarehouseResource

    def dbt_env(self) -> dict[str, str]:
        """The warehouse connection for profiles.yml, and PATH leading to this resource's dbt
        (dagster-dbt's own dbt calls, like the manifest preparer's, look dbt up on PATH)."""
        dbt_dir = Path(shutil.which(self.dbt_executable) or self.dbt_executable).parent
        path = os.pathsep.join([str(dbt_dir), os.environ.get("PATH", "")])
        return {**dbt_warehouse_env(self.warehouse.get()), "PATH": path}

    def cli(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> DbtCliInvocation:
        """dagster-dbt's `cli`, the dbt process started with the warehouse connection and `env`."""
        with scoped_environ({**self.dbt_env(), **(env or {})}):
            return super().cli(args, **kwargs)

    # Two costs dagster-dbt pays before every dbt command, ~10 s per run on this machine
    # (measured with pyinstrument; the dbt process itself then takes its own start-up):
    @cached_property
    def _cli_version(self) -> version.Version:
        """dbt-core's version from package metadata when `dbt_executable` is the dbt beside
        this Python (one installation), instead of a `dbt --version` subprocess."""
        if Path(self.dbt_executable) == Path(local_dbt_executable()):
            return version.parse(installed_version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        """No in-process dbt adapter: it only serves dagster-dbt's `fetch_row_counts` /
        `fetch_column_metadata`, which aiwf does not use (`assets.table_metadata` reads the
        warehouse), and loading dbt's macros for it takes seconds."""
        return None
