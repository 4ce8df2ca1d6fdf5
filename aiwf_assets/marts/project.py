"""The dbt project, chosen for the warehouse of the environment.

`dagster-dbt project prepare-and-package --file aiwf_assets/marts/project.py` finds
`marts_dbt_project` here and writes its manifest (see docs/MARTS.md for the environment it needs).
"""

from pathlib import Path

from dagster_dbt import DbtProject

from aiwf_assets.resources import warehouse_resource
from aiwf_assets.settings import get_settings

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


# profiles.yml targets are named like the warehouse kinds (duckdb, postgres)
marts_dbt_project = marts_project(warehouse_resource(get_settings()).kind)
