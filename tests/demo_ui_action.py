"""What a user does first in the UI after `aiwf demo`, played in a fresh process on that home.

`python -m tests.demo_ui_action <asset> <day>` (AIWF_HOME and DAGSTER_HOME set): the
automation sensor's first tick after the demo, then "Materialize" of one day of one asset
as the UI launches it (a run of the code location's `__ASSET_JOB` for that partition),
then a tick of the landing observation sensor and of the automation, as `aiwf ui` runs
them. Prints one JSON line: the demo's runs, the new run, what the ticks observed and
requested.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import dagster as dg

IMPLICIT_ASSET_JOB = "__ASSET_JOB"  # the job of the UI's "Materialize"
PARTITION_TAG = "dagster/partition"


def requested(result: dg.AutomationResult, defs: dg.Definitions) -> dict[str, list]:
    return {
        key.to_user_string(): sorted(parts, key=str)
        for key in defs.resolve_asset_graph().materializable_asset_keys
        if (parts := result.get_requested_partitions(key))
    }


def main(asset: str, day: str) -> None:
    from aiwf_assets.definitions import defs
    from aiwf_assets.demo import CodeLocationLauncher, code_location

    now = dt.datetime.now(dt.UTC)
    with dg.DagsterInstance.get() as instance, code_location(instance) as location:
        demo_runs = [
            {
                "job": run.job_name,
                "location": run.remote_job_origin.location_name if run.remote_job_origin else None,
            }
            for run in instance.get_runs()
        ]
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
        result = CodeLocationLauncher(location, instance).launch(
            IMPLICIT_ASSET_JOB, [dg.AssetKey(asset)], {PARTITION_TAG: day}
        )
        run = instance.get_run_by_id(result.run_id)
        sensor = defs.resolve_sensor_def("landing_observation_sensor")
        with dg.build_sensor_context(
            instance=instance, resources={"landing": defs.resources["landing"]}
        ) as context:
            observed = sensor(context)
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor,
            evaluation_time=now + dt.timedelta(seconds=30),
        )
        print(json.dumps({
            "demo_runs": demo_runs,
            "one_day_run": {
                "success": result.success,
                "job": run.job_name,
                "location": run.remote_job_origin.location_name if run.remote_job_origin else None,
                "materialized": sorted(
                    f"{e.asset_key.to_user_string()}:{e.partition}"
                    for e in result.get_asset_materialization_events()
                ),
            },
            "first_tick": requested(first, defs),
            "observed": [
                f"{e.asset_key.to_user_string()}:{e.partition}" for e in observed.asset_events
            ],
            "second_tick": requested(second, defs),
        }))


if __name__ == "__main__":
    main(*sys.argv[1:])
