"""`aiwf demo`: generate data, materialise every asset in-process, print where to look.

The run plan is derived from the asset graph, not hand-listed: unpartitioned
assets upstream of the daily layer first (reference data), then every daily
partition that has landed files as one single-run range, then everything
else. Re-running is safe: generation is deterministic and writes replace.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.definitions.dependency import NodeHandle

from aiwf_assets.partitions import require_partitions
from aiwf_assets.progress import terminal_progress
from aiwf_assets.settings import (
    HOME_SETTINGS_FILE,
    Settings,
    get_settings,
    reset_settings_cache,
    write_home_settings,
)

if TYPE_CHECKING:  # the type of a step failure's details (not exported by dagster)
    from dagster._core.execution.plan.objects import StepFailureData

REPO_ROOT = Path(__file__).resolve().parent.parent
PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"
# the run's events are in the instance (and the UI); the terminal gets warnings, errors,
# finished steps and the steps' progress lines
RUN_LOGGERS = {
    "loggers": {"console": {"config": {"log_level": "WARNING"}}, "aiwf_progress": {}}
}


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME under AIWF_HOME (unless set), with the local dagster.yaml in it."""
    settings = get_settings()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    packaged = Path(__file__).with_name("dagster.yaml")
    if packaged.exists() and not config.exists():
        shutil.copyfile(packaged, config)
    return home


@dataclass(frozen=True)
class RunPlan:
    before: list[dg.AssetKey]
    daily: list[dg.AssetKey]
    after: list[dg.AssetKey]


def plan_runs(defs: dg.Definitions) -> RunPlan:
    """Split materialisable assets into: unpartitioned upstream of daily, daily, the rest."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.materializable_asset_keys]
    daily = {k for k in keys if graph.get(k).partitions_def is not None}
    upstream_of_daily: set[dg.AssetKey] = set()
    for key in daily:
        for ancestor in graph.get_ancestor_asset_keys(key):
            # a multi-asset runs whole: take its siblings along
            upstream_of_daily |= {
                k for k in graph.get_execution_set_asset_and_check_keys(ancestor)
                if isinstance(k, dg.AssetKey)
            }
    before = sorted(
        (k for k in keys if k not in daily and k in upstream_of_daily), key=lambda k: k.to_string()
    )
    after = sorted(
        (k for k in keys if k not in daily and k not in upstream_of_daily),
        key=lambda k: k.to_string(),
    )
    return RunPlan(before, sorted(daily, key=lambda k: k.to_string()), after)


def landed_days(landing_dir: Path) -> list[str]:
    """Every day that has at least one landed daily file."""
    return days_of_landed_files(
        p.relative_to(landing_dir).as_posix() for p in landing_dir.glob("*/*") if p.is_file()
    )


def days_of_landed_files(paths: Iterable[str]) -> list[str]:
    """Every day named by a daily file among `<channel>/<file>` paths (reference/ has none)."""
    days = {
        path.split("/")[1].split(".", 1)[0]
        for path in paths
        if path.count("/") == 1 and not path.startswith("reference/")
    }
    return sorted(d for d in days if _is_iso_day(d))


def _is_iso_day(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def materialise_all(
    defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str]
) -> list[dg.ExecuteInProcessResult]:
    plan = plan_runs(defs)
    job = defs.resolve_implicit_global_asset_job_def()
    job = job.with_logger_defs({**job.loggers, "aiwf_progress": terminal_progress})
    count = sum(1 for keys in (plan.before, plan.daily if days else [], plan.after) if keys)
    numbers = iter(range(1, count + 1))
    results = []
    if plan.before:
        _announce(next(numbers), count, "reference data", plan.before)
        results.append(_execute(job, instance, plan.before, {}))
    if plan.daily and days:
        require_partitions(days)
        title = f"daily layer, {len(days)} days ({days[0]} .. {days[-1]}) in one run"
        _announce(next(numbers), count, title, plan.daily)
        tags = {PARTITION_RANGE_START: days[0], PARTITION_RANGE_END: days[-1]}
        daily = _execute(job, instance, plan.daily, tags, tolerate_held_back=True)
        results.append(daily)
        if not daily.success:
            # the guards held days back (the generator's empty and late files): say so, and
            # build what the failed run skipped from the days that were published
            for message in held_back_messages(daily):
                print(message)
            held = {k for e in _step_failures(daily) for k in _step_asset_keys(job, e.step_key)}
            done = {e.asset_key for e in daily.get_asset_materialization_events()}
            skipped = [k for k in plan.daily if k not in done and k not in held]
            if skipped:
                results.append(_execute(job, instance, skipped, tags))
    if plan.after:
        _announce(
            next(numbers), count, "marts, features, models, serving, monitoring", plan.after
        )
        results.append(_execute(job, instance, plan.after, {}))
    return results


def _step_failures(result: dg.ExecuteInProcessResult) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.is_step_failure]


def _held_back(event: dg.DagsterEvent) -> bool:
    """A step that failed only because guards held days back (see cleaning/assets.py)."""
    data = event.step_failure_data
    user = data.user_failure_data if data else None
    return user is not None and "held_back_days" in (user.metadata or {})


def held_back_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.step_failure_data.user_failure_data.description or ""
        for e in _step_failures(result)
        if _held_back(e) and e.step_failure_data and e.step_failure_data.user_failure_data
    ]


def _step_asset_keys(job: dg.JobDefinition, step_key: str | None) -> set[dg.AssetKey]:
    """The assets computed by a (failed) step of the in-process run."""
    if not step_key or not job.graph.has_node_named(step_key):
        return set()
    assets_def = job.asset_layer.get_assets_def_for_node(NodeHandle(step_key, None))
    return set(assets_def.keys) if assets_def else set()


def _announce(number: int, count: int, title: str, keys: list[dg.AssetKey]) -> None:
    print(f"phase {number}/{count}: {title}: {len(keys)} assets", flush=True)


def _execute(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[dg.AssetKey], tags: dict,
    *, tolerate_held_back: bool = False,
) -> dg.ExecuteInProcessResult:
    result = job.execute_in_process(
        instance=instance, asset_selection=keys, tags=tags, raise_on_error=False,
        run_config=RUN_LOGGERS,
    )
    failed = _step_failures(result)
    if tolerate_held_back and failed and all(_held_back(e) for e in failed):
        return result
    if not result.success:
        failures = {
            e.step_key or "run": root_error_message(e.step_failure_data)
            for e in failed
        }
        raise DemoRunFailed(result.run_id, failures)
    return result


class DemoRunFailed(RuntimeError):
    """A run of the demo failed; names each failed step with its root cause."""

    def __init__(self, run_id: str, failures: dict[str, str]) -> None:
        steps = "; ".join(f"{step}: {message}" for step, message in failures.items())
        super().__init__(
            f"run {run_id} failed ({steps}); the run's events are in the UI (`aiwf ui`)"
        )


def root_error_message(failure: StepFailureData | None) -> str:
    """The innermost cause of a step failure (the user code's error), on one line."""
    error = failure.error if failure is not None else None
    if error is None:
        return "failed"
    while error.cause is not None:
        error = error.cause
    return " ".join(error.message.split())


def fit_partitions_to(home: Path, days: list[str]) -> Settings:
    """Daily partitions from the first to the last landed day, for every later command on
    this home (`aiwf ui`, `dg`, `dagster`): the UI then shows the demo's days filled instead
    of a calendar mostly empty. Written to `<home>/aiwf.env`; the environment still wins."""
    write_home_settings(
        home, {"AIWF_PARTITION_START": days[0], "AIWF_PARTITION_END": days[-1]},
        why="written by `aiwf demo`: the daily partitions are the days the demo landed",
    )
    reset_settings_cache()
    settings = get_settings()
    print(
        f"daily partitions {settings.partition_start} .. {settings.partition_end} "
        f"({home / HOME_SETTINGS_FILE})"
    )
    return settings


def run_demo(
    *, seed: int, start: dt.date, days: int, scale: float, faults: Collection[str],
    drift_from: dt.date | None, generate_data: bool = True,
) -> int:
    settings = get_settings()
    dagster_home = prepare_dagster_home()
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    if generate_data:
        from aiwf_assets.generator import generate

        summary = generate(
            settings.home, seed=seed, start=start, days=days, scale=scale, faults=faults,
            drift_from=drift_from,
        )
        print(summary.to_text())
    days_landed = landed_days(settings.landing_dir)
    if days_landed:
        settings = fit_partitions_to(settings.home, days_landed)

    from aiwf_assets.automation.sensors import record_landing_observations
    from aiwf_assets.definitions import defs
    from aiwf_assets.resources import build_resources
    from aiwf_assets.summary import summarise

    with dg.DagsterInstance.get() as instance:
        # observe first, so the landing sensor under `aiwf ui` finds nothing new to re-run
        record_landing_observations(instance, defs.resources["landing"])
        materialise_all(defs, instance, days_landed)
        resources = build_resources(settings)
        print(
            summarise(
                settings, resources["warehouse"].get(), resources["storage"].store(),
                resources["model_store"].store(),
            )
        )
    return 0
