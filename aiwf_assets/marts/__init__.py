"""The marts domain: the dbt project (dbt_project/) as Dagster assets.

`aiwf_assets.marts.definitions.defs` holds the assets and the `dbt` resource;
`aiwf_assets.marts.project` names the dbt project (for `dagster-dbt project prepare-and-package`).
"""
