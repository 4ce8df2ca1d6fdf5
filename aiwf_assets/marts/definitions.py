"""The marts domain's definitions: dbt assets and the `dbt` resource for the settings' warehouse."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject

from aiwf_assets.ingest.spec import SourcesConfig
from aiwf_assets.marts.assets import build_dbt_assets
from aiwf_assets.marts.project import DBT_PROJECT_DIR, marts_project
from aiwf_assets.marts.resources import (
    WarehouseDbtCliResource,
    local_dbt_executable,
    scoped_environ,
)
from aiwf_assets.resources import WarehouseResource

logger = logging.getLogger(__name__)


def read_manifest(project: DbtProject) -> dict[str, Any] | None:
    """The project's parsed manifest; None when there is none yet."""
    if not project.manifest_path.exists():
        return None
    return json.loads(project.manifest_path.read_text())


# what a parse reads: a change in any of these after the manifest was written makes it stale
PARSED_INPUTS = ("dbt_project.yml", "models", "macros", "tests")


def stale_inputs(project_dir: Path, manifest_path: Path) -> list[Path]:
    """The dbt project files changed after `manifest_path` was written (a `git pull` that
    brought new models or tests); empty when the manifest is current or absent."""
    if not manifest_path.exists():
        return []
    written = manifest_path.stat().st_mtime
    changed = []
    for name in PARSED_INPUTS:
        root = project_dir / name
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        changed += [p for p in paths if p.exists() and p.stat().st_mtime > written]
    return changed


def load_manifest(project: DbtProject, dbt: WarehouseDbtCliResource) -> dict[str, Any]:
    """The project's manifest for this warehouse, parsed first where needed.

    Under `dagster dev` the manifest is re-parsed on every load (`prepare_if_dev`). Elsewhere a
    missing manifest (a fresh clone, an editable install), or one parsed for the other engine,
    is parsed once here, and so is one older than a model, macro or test file (the project
    changed under it: a `git pull`); deployments ship one made by `dagster-dbt project
    prepare-and-package` and parse nothing at start-up.
    """
    with scoped_environ(dbt.dbt_env()):
        project.prepare_if_dev()
        manifest = read_manifest(project)
        changed = stale_inputs(Path(project.project_dir), Path(project.manifest_path))
        if (
            manifest is None
            or manifest["metadata"].get("adapter_type") != dbt.warehouse.kind
            or changed
        ):
            logger.info(
                "dbt manifest for %s at %s missing, for another engine or older than %s:"
                " running dbt parse once",
                dbt.warehouse.kind, project.manifest_path,
                changed[0] if changed else "nothing",
            )
            project.preparer.prepare(project)
            manifest = read_manifest(project)
    if manifest is None:
        raise FileNotFoundError(f"dbt parse wrote no manifest at {project.manifest_path}")
    return manifest


def build_marts_definitions(
    warehouse: WarehouseResource,
    target_path: Path = Path("target"),
    project_dir: Path = DBT_PROJECT_DIR,
    *,
    sources: SourcesConfig,
    partitions: dg.DailyPartitionsDefinition,
) -> dg.Definitions:
    """dbt assets building on `warehouse`; the manifest lives in `target_path` of the project.
    Daily models are on `partitions`; the channel variables come from `sources`."""
    project = marts_project(warehouse.kind, target_path, project_dir)
    dbt = WarehouseDbtCliResource(
        project_dir=project, warehouse=warehouse, dbt_executable=local_dbt_executable()
    )
    manifest = load_manifest(project, dbt)
    return dg.Definitions(
        assets=build_dbt_assets(project, manifest, warehouse.kind, sources, partitions),
        resources={"dbt": dbt},
    )

