"""The daemon's part of the README tour's "drop a file" step, played in one process on a
demo home (AIWF_HOME / DAGSTER_HOME from the environment, as `aiwf ui` runs them):

    python -m tests.tour_daemon observe|tick|run ...

Each call prints one JSON line. `observe`: one landing_observation_sensor tick (its
observations recorded as the daemon records them); `tick`: one evaluation of the
automation policies, with the cursor kept in <home>/tour-automation-cursor; `run DAY
KEY...`: one run of those assets for DAY, as the automation sensor launches it.
"""

from __future__ import annotations

import json
import sys

import dagster as dg
from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
from dagster._serdes import deserialize_value, serialize_value

from aiwf_assets.definitions import defs
from aiwf_assets.settings import get_settings


def observe(instance: dg.DagsterInstance) -> list[list[str | None]]:
    settings = get_settings()
    sensor = defs.resolve_sensor_def("landing_observation_sensor")  # as the location runs it
    cursor_file = settings.home / "tour-sensor-cursor"
    cursor = cursor_file.read_text() if cursor_file.exists() else None
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": defs.resources["landing"]}
    ) as context:
        result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    cursor_file.write_text(result.cursor or "")
    return [[e.asset_key.to_user_string(), e.partition] for e in result.asset_events]


def tick(instance: dg.DagsterInstance) -> dict[str, list[str | None]]:
    cursor_file = get_settings().home / "tour-automation-cursor"
    cursor = (
        deserialize_value(cursor_file.read_text(), AssetDaemonCursor)
        if cursor_file.exists() else None
    )
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    cursor_file.write_text(serialize_value(result.cursor))
    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string(): sorted(parts, key=str)
        for key in graph.materializable_asset_keys
        if (parts := result.get_requested_partitions(key))
    }


def run(instance: dg.DagsterInstance, day: str, keys: list[str]) -> bool:
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, partition_key=day,
        asset_selection=[dg.AssetKey(k) for k in keys], raise_on_error=False,
    )
    return result.success


def main(argv: list[str]) -> int:
    with dg.DagsterInstance.get() as instance:
        if argv[0] == "observe":
            answer: object = observe(instance)
        elif argv[0] == "tick":
            answer = tick(instance)
        else:
            answer = run(instance, argv[1], argv[2:])
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
