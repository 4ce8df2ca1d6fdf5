"""The automation sensor runs every check of what it rebuilds: dbt tests included.

Operating the platform found a run that rebuilt `dim_customers` and `model_performance`
running `dbt build` without one dbt test: Dagster's automation sensor lists a run's checks
explicitly as soon as a requested asset computes checks in its own step, and then leaves out
the checks that would otherwise ride along (see aiwf_assets/checks.py). The blocking dbt tests
never ran again, so nothing gated on them (customer_rfm, features, scores, the CRM export)
ever refreshed after a correction. The sensor is evaluated here as the daemon does (Dagster's
own evaluation function: an automation condition sensor cannot be called like a plain one).
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.automation_condition_sensor_definition import _evaluate

from aiwf_assets.checks import WITH_ITS_STEP, in_step_check

AC = dg.AutomationCondition


def toy_definitions(step_check: type | object) -> dg.Definitions:
    """`model`, a dbt-like multi-asset whose tests can be subset, and a Python asset with a
    check computed in its step, both downstream of `source`."""

    @dg.asset
    def source() -> int:
        return 1

    @dg.multi_asset(
        specs=[dg.AssetSpec("dim", deps=["source"], automation_condition=AC.eager())],
        check_specs=[dg.AssetCheckSpec("unique_key", asset="dim", blocking=True)],
        can_subset=True,
    )
    def dbt_like(context):  # noqa: ANN001, ANN202 - dagster refuses a string annotation
        yield dg.MaterializeResult(asset_key="dim")
        for check in context.selected_asset_check_keys:
            yield dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)

    @dg.asset(
        deps=["source"],
        automation_condition=AC.eager(),
        check_specs=[step_check("performance", asset="performance")],  # type: ignore[operator]
    )
    def performance() -> dg.MaterializeResult:
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])

    sensor = dg.AutomationConditionSensorDefinition(
        "automation", target=dg.AssetSelection.all(), use_user_code_server=True
    )
    return dg.Definitions(assets=[source, dbt_like, performance], sensors=[sensor])


def requested_checks(defs: dg.Definitions) -> tuple[list[dg.RunRequest], set[str]]:
    """The run requests after `source` changed, and the checks those runs executed."""
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("automation")
    with dg.instance_for_test() as instance:
        first = _evaluate(sensor, dg.build_sensor_context(instance=instance, repository_def=repo))
        dg.materialize([defs.get_assets_def("source")], instance=instance)
        result = _evaluate(
            sensor,
            dg.build_sensor_context(instance=instance, repository_def=repo, cursor=first.cursor),
        )
        job = defs.resolve_implicit_global_asset_job_def()
        executed: set[str] = set()
        for request in result.run_requests or []:
            checks = request.asset_check_keys
            run = job.get_subset(
                asset_selection=set(request.asset_selection or []),
                asset_check_selection=None if checks is None else set(checks),
            ).execute_in_process(instance=instance)
            executed |= {
                e.asset_key.to_user_string() + ":" + e.check_name
                for e in run.get_asset_check_evaluations()
            }
    return list(result.run_requests or []), executed


@pytest.mark.parametrize("declared", [False, True])
def test_a_run_with_an_in_step_check_still_runs_the_dbt_tests(declared: bool) -> None:
    requests, executed = requested_checks(
        toy_definitions(in_step_check if declared else dg.AssetCheckSpec)
    )
    assert len(requests) == 1  # dim and performance in one run
    if declared:
        assert executed == {"dim:unique_key", "performance:performance"}
    else:  # Dagster's own behaviour without the declaration: the dbt-like test is left out
        assert executed == {"performance:performance"}


def test_every_in_step_check_is_declared_so_and_no_other_owns_a_condition() -> None:
    from aiwf_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    in_step, separable = [], []
    for key in graph.asset_check_keys:
        together = graph.get_execution_set_asset_and_check_keys(key)
        (in_step if any(isinstance(k, dg.AssetKey) for k in together) else separable).append(key)
    assert in_step and separable  # the Python assets' checks, the dbt tests
    assert all(graph.get(k).automation_condition == WITH_ITS_STEP for k in in_step), [
        k.to_user_string() for k in in_step if graph.get(k).automation_condition != WITH_ITS_STEP
    ]
    # a separable check with a condition of its own would stop riding along with its asset
    assert [k.to_user_string() for k in separable if graph.get(k).automation_condition] == []
