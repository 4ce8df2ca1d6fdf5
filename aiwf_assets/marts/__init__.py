"""The marts domain: the dbt project (dbt_project/) as Dagster assets.

`aiwf_assets.marts.definitions.build_marts_definitions` builds the assets and the `dbt`
resource; `aiwf_assets.marts.project` names the dbt project, and `aiwf_assets.marts.prepare`
is the file `dagster-dbt project prepare-and-package` loads.
"""
