"""Entry point of the image's dbt step, like `aiwf_assets.definitions` for the code location:
`dagster-dbt project prepare-and-package --file aiwf_assets/marts/prepare.py` finds
`marts_dbt_project` here and writes its manifest (docs/MARTS.md says which environment it
needs). Reads the settings at import; nothing imports this module.
"""

from aiwf_assets.marts.project import marts_project
from aiwf_assets.resources import warehouse_resource
from aiwf_assets.settings import get_settings

# profiles.yml targets are named like the warehouse kinds (duckdb, postgres)
marts_dbt_project = marts_project(warehouse_resource(get_settings()).kind)
