"""dbt models as Dagster assets, dbt tests as (blocking) asset checks.

Two `@dbt_assets`, one per partitioning scheme: the models tagged `daily` (staging and
intermediate models of the daily cleaned tables, and the incremental daily facts) run per
delivery window with `--vars '{"min_date": ..., "max_date": ...}'`; the rest (reference
staging, dimensions, customer_rfm) are unpartitioned.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject, dbt_assets

from aiwf_assets.ingest.spec import SourcesConfig
from aiwf_assets.io.warehouse import Warehouse
from aiwf_assets.marts.resources import WarehouseDbtCliResource, share_partial_parse

DAILY_TAG = "daily"
MARTS_GROUP = "marts"
MARTS_OWNERS = ["team:analytics-engineering"]
FAILED_STATUSES = {"error", "fail"}
TABLE_MATERIALIZATIONS = {"table", "incremental"}


# The delivery window reaches dbt as these environment variables (macros/delivery_window.sql):
# as `--vars` it would change dbt's command-line vars every run, and dbt parses the whole
# project again whenever those change (partial parsing only survives constant vars).
WINDOW_ENV = {"min_date": "AIWF_DBT_MIN_DATE", "max_date": "AIWF_DBT_MAX_DATE"}


def dbt_window(start: date, end: date) -> dict[str, str]:
    """The delivery days [start, end) (end exclusive, like a partition window) as dbt's
    inclusive `min_date` and `max_date`."""
    if end <= start:
        raise ValueError(f"empty delivery window: start {start} is not before end {end}")
    return {"min_date": start.isoformat(), "max_date": (end - timedelta(days=1)).isoformat()}


def dbt_window_vars(start: date, end: date) -> str:
    """`--vars` for the delivery days [start, end) (a dbt run by hand, or a test)."""
    return json.dumps(dbt_window(start, end))


def dbt_window_env(start: date, end: date) -> dict[str, str]:
    """The environment variables holding the delivery days [start, end) for a dbt run."""
    return {WINDOW_ENV[name]: day for name, day in dbt_window(start, end).items()}


def source_vars(sources: SourcesConfig) -> dict[str, Any]:
    """What the dbt models need from the declared sources: the order channels (one
    per-channel column each), those placed online (what a web session converts into),
    each channel's product-key pattern and the channels whose lines may be free (dbt tests)."""
    return {
        "channels": list(sources.order_channels),
        "online_channels": list(sources.online_channels),
        "product_keys": sources.product_key_patterns,
        "free_line_channels": list(sources.free_line_channels),
    }


def dbt_vars(sources: SourcesConfig, window_vars: str | None = None) -> list[str]:
    """`--vars` for a dbt build: the sources' vars, plus the delivery window if given."""
    merged = {**source_vars(sources), **(json.loads(window_vars) if window_vars else {})}
    return ["--vars", json.dumps(merged)]


def models_without_tag(manifest: Mapping[str, Any], tag: str) -> str:
    """A dbt selection of the project's models that do not carry `tag`.

    Selecting them by name rather than `--exclude tag:...` keeps the tests that also read a
    tagged model (e.g. dim_customers holds every customer of fct_orders): dbt drops those
    with the excluded models, so they would be neither run nor asset checks.
    """
    return " ".join(
        sorted(
            node["name"]
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and tag not in node["tags"]
        )
    )


def unexplained_dbt_failures(
    run_results: Mapping[str, Any] | None, failed_check_ids: set[str]
) -> list[str]:
    """Nodes dbt reports as failed or errored that no failed asset check stands for.

    A failing dbt test that became a failed (blocking) asset check explains itself; anything
    else (a model error, a compilation error, a test that could not run) does not. Without
    run results (dbt stopped before running anything) the whole invocation is unexplained.
    """
    if run_results is None:
        return ["dbt produced no run results"]
    return [
        result["unique_id"]
        for result in run_results.get("results", [])
        if result.get("status") in FAILED_STATUSES and result["unique_id"] not in failed_check_ids
    ]


class MartsTranslator(DagsterDbtTranslator):
    """Asset keys are bare dbt names, so sources meet the cleaned assets (`orders`, ...)
    and models are `fct_orders`, `dim_customers`, ...; every model is in group `marts`."""

    def __init__(self, warehouse_kind: str):
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.warehouse_kind = warehouse_kind

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return MARTS_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str]:
        return MARTS_OWNERS

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The model's YAML description only: dagster-dbt's default appends the raw SQL,
        which buries the description in the catalog (the SQL stays in the dbt project)."""
        return dbt_resource_props.get("description") or (
            f"dbt {dbt_resource_props['resource_type']} {dbt_resource_props['name']}"
        )

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        return spec.replace_attributes(kinds={"dbt", self.warehouse_kind})


def _metadata_text(event: dg.Output | dg.AssetCheckResult, key: str) -> str:
    value = event.metadata[key]
    return value.value if isinstance(value, dg.MetadataValue) else str(value)


def table_metadata(warehouse: Warehouse, model: Mapping[str, Any]) -> dict[str, Any]:
    """Row count and column schema (with the dbt descriptions) of a model's table, read
    through the warehouse, so both engines (and any schema suffix) work the same way."""
    relation = f"{model['config']['schema']}.{model['alias']}"
    row_count = warehouse.query(f"SELECT count(*) AS row_count FROM {relation}")["row_count"][0]
    schema = warehouse.query(f"SELECT * FROM {relation} LIMIT 0").schema
    descriptions = {name: column.get("description") for name, column in model["columns"].items()}
    columns = [
        dg.TableColumn(name, str(dtype), description=descriptions.get(name) or None)
        for name, dtype in schema.items()
    ]
    return {
        "dagster/row_count": dg.MetadataValue.int(int(row_count)),
        "dagster/column_schema": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
    }


def dbt_build(
    context: dg.AssetExecutionContext,
    dbt: WarehouseDbtCliResource,
    manifest: Mapping[str, Any],
    extra_args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """`dbt build` the selected models and tests (with `env` set for dbt); tables get row
    counts and column schemas.

    Failing tests come back as failed asset checks (blocking when their severity is error,
    which stops downstream assets); any other dbt failure fails the step with dbt's errors.
    """
    invocation = dbt.cli(["build", *extra_args], env=env, context=context, raise_on_error=False)
    # DuckDB admits no reader while dbt writes: read the tables once dbt has finished.
    events = list(invocation.stream())
    share_partial_parse(invocation.target_path, invocation.project_dir)
    warehouse = dbt.warehouse.get()
    failed_check_ids: set[str] = set()
    for event in events:
        if isinstance(event, dg.Output):
            model = manifest["nodes"][_metadata_text(event, "unique_id")]
            if model["config"]["materialized"] in TABLE_MATERIALIZATIONS:
                event = event.with_metadata({**event.metadata, **table_metadata(warehouse, model)})
        elif isinstance(event, dg.AssetCheckResult) and not event.passed:
            failed_check_ids.add(_metadata_text(event, "unique_id"))
        yield event
    error = invocation.get_error()
    if error is None:
        return
    results_path = invocation.target_path / "run_results.json"
    run_results = json.loads(results_path.read_text()) if results_path.exists() else None
    if not failed_check_ids or unexplained_dbt_failures(run_results, failed_check_ids):
        raise error


def build_dbt_assets(
    project: DbtProject,
    manifest: Mapping[str, Any],
    warehouse_kind: str,
    sources: SourcesConfig,
    partitions: dg.DailyPartitionsDefinition,
) -> list[dg.AssetsDefinition]:
    """The daily models on `partitions` and the others; dbt's channel variables from `sources`."""
    translator = MartsTranslator(warehouse_kind)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        select=f"tag:{DAILY_TAG}",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        name="dbt_daily_models",
    )
    def dbt_daily_models(context: dg.AssetExecutionContext, dbt: WarehouseDbtCliResource):
        window = context.partition_time_window
        window_env = dbt_window_env(window.start.date(), window.end.date())
        yield from dbt_build(context, dbt, manifest, dbt_vars(sources), env=window_env)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        select=models_without_tag(manifest, DAILY_TAG),
        name="dbt_models",
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: WarehouseDbtCliResource):
        yield from dbt_build(context, dbt, manifest, dbt_vars(sources))

    return [dbt_daily_models, dbt_models]
