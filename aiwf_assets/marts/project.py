"""The dbt project, chosen for the warehouse of the environment.

`marts_project(kind)` builds it; nothing here reads the settings. The packaging step
(`dagster-dbt project prepare-and-package --file aiwf_assets/marts/prepare.py`) loads
`prepare.py`, which picks the kind from the environment's settings.
"""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


def marts_project(
    warehouse_kind: str, target_path: Path = Path("target"), project_dir: Path = DBT_PROJECT_DIR
) -> DbtProject:
    """The dbt project with the profile target named like the warehouse kind (duckdb, postgres).

    `target_path` (relative to the project, or absolute) holds the manifest.
    """
    return DbtProject(
        project_dir=project_dir,
        profiles_dir=project_dir,
        target=warehouse_kind,
        target_path=target_path,
    )
