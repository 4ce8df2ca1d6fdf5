"""`aiwf demo`: generate data, build every asset as runs of the code location, print where to look.

The run plan is derived from the asset graph, not hand-listed, and each phase is one of the
code location's jobs (automation/jobs.py): `reference_job` (unpartitioned assets upstream of
the daily layer), `daily_ingest_job` over every landed day as single-run ranges (first the
assets that record each day's own data version, day_versions.py, then the daily dbt models
and monitoring), then `refresh_job` (everything else). The runs carry the job and the code
location's origin, so the UI lists them in its timeline and re-executes them like its own.
Re-running is safe: generation is deterministic and writes replace.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import dagster as dg
from dagster._core.definitions.dependency import NodeHandle
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.api import execute_run
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.hosted_user_process import recon_job_from_origin
from dagster._utils.tags import normalize_tags

from aiwf_assets.automation.jobs import (
    DAILY_INGEST_JOB,
    REFERENCE_JOB,
    REFRESH_JOB,
    daily_keys,
    reference_keys,
    refresh_keys,
)
from aiwf_assets.day_versions import DEFER_ASSET_EVENTS_TAG, RECORDS_DAY_VERSIONS
from aiwf_assets.ingest.spec import SourcesConfig, declared_sources
from aiwf_assets.partitions import partitions_for, require_partitions
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
# the code location: pyproject's [tool.dg.project] and workspace.yaml name it so
LOCATION_MODULE = "aiwf_assets.definitions"
LOCATION_NAME = "aiwf"
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
    """Split materialisable assets into: unpartitioned upstream of daily, daily, the rest
    (the assets of reference_job, daily_ingest_job and refresh_job)."""
    graph = defs.resolve_asset_graph()
    return RunPlan(reference_keys(graph), daily_keys(graph), refresh_keys(graph))


def landed_days(landing_dir: Path, sources: SourcesConfig | None = None) -> list[str]:
    """Every day that has at least one landed daily file."""
    return days_of_landed_files(
        (p.relative_to(landing_dir).as_posix() for p in landing_dir.rglob("*") if p.is_file()),
        sources,
    )


def days_of_landed_files(paths: Iterable[str], sources: SourcesConfig | None = None) -> list[str]:
    """Every day named by a daily file among paths from the landing dir: a path that follows a
    daily source's landing template with a YYYY-MM-DD day, as the landing sensor reads them
    (`2026-01-05.csv.partial`, `2026-01-05.CSV` or `20260105.csv` name no day). `sources`:
    the declared sources (None: the settings')."""
    from aiwf_assets.ingest.landing import day_of_file, landing_folder

    if sources is None:
        sources = declared_sources(get_settings().sources_path)
    daily = [(s, landing_folder(s)) for s in sources.sources.values() if s.contract.daily]
    days = set()
    for path in paths:
        for spec, folder in daily:
            start = f"{folder}/" if folder else ""
            if path.startswith(start) and (day := day_of_file(spec, path[len(start) :])):
                days.add(day)
    return sorted(days)


class Launcher(Protocol):
    """Runs a job over some of its assets and returns the run's result."""

    def launch(
        self, job_name: str, keys: list[dg.AssetKey], tags: Mapping[str, str]
    ) -> ExecutionResult: ...

    def job_def(self, job_name: str) -> dg.JobDefinition: ...


class InProcessLauncher:
    """Runs of the implicit asset job of `defs` (tests and tools with their own defs)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        job = defs.resolve_implicit_global_asset_job_def()
        self.job = job.with_logger_defs({**job.loggers, "aiwf_progress": terminal_progress})
        self.instance = instance

    def launch(
        self, job_name: str, keys: list[dg.AssetKey], tags: Mapping[str, str]
    ) -> ExecutionResult:
        return self.job.execute_in_process(
            instance=self.instance, asset_selection=keys, tags=dict(tags),
            raise_on_error=False, run_config=RUN_LOGGERS,
        )

    def job_def(self, job_name: str) -> dg.JobDefinition:
        return self.job


class CodeLocationLauncher:
    """Runs of the code location's jobs, created as the UI creates them (the job, its
    snapshot, the code location's origin) and executed here, in this process, as the run
    worker of the local run launcher would: the UI's timeline lists them under their job
    and re-executes them without warning."""

    def __init__(self, location: CodeLocation, instance: dg.DagsterInstance) -> None:
        self.location = location
        self.instance = instance
        [self.repository] = location.get_repositories().values()

    def launch(
        self, job_name: str, keys: list[dg.AssetKey], tags: Mapping[str, str]
    ) -> ExecutionResult:
        selector = JobSubsetSelector(
            location_name=self.location.name, repository_name=self.repository.name,
            job_name=job_name, op_selection=None, asset_selection=set(keys),
        )
        remote_job = self.location.get_job(selector)
        plan = self.location.get_execution_plan(
            remote_job, RUN_LOGGERS, step_keys_to_execute=None, known_state=None,
            instance=self.instance,
        )
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config=RUN_LOGGERS,
            resolved_op_selection=None, step_keys_to_execute=None,
            status=DagsterRunStatus.NOT_STARTED, op_selection=None, root_run_id=None,
            parent_run_id=None, tags=normalize_tags({**remote_job.tags, **tags}),
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(keys), asset_check_selection=None,
            asset_graph=self.repository.asset_graph,
        )
        if tags.get(DEFER_ASSET_EVENTS_TAG) == "true":
            # Dagster plans no materialisations for a deferred run; the UI shows the run's
            # assets in progress (and failed days as failed) only from these
            self.instance.run_domain._log_asset_planned_events(  # noqa: SLF001
                run, plan.execution_plan_snapshot, self.repository.asset_graph
            )
        job = recon_job_from_origin(remote_job.get_python_origin())
        return execute_run(job, run, self.instance)

    def job_def(self, job_name: str) -> dg.JobDefinition:
        from aiwf_assets.definitions import defs

        return defs.resolve_job_def(job_name)


@contextmanager
def code_location(instance: dg.DagsterInstance) -> Iterator[CodeLocation]:
    """The code location `aiwf ui` serves (same module and name), loaded in this process."""
    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable, module_name=LOCATION_MODULE,
            working_directory=str(REPO_ROOT),
        ),
        location_name=LOCATION_NAME,
    )
    with origin.create_location(instance) as location:
        yield location


def materialise_all(
    defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str],
    launcher: Launcher | None = None,
) -> list[ExecutionResult]:
    """Every asset of `defs`: reference data, the landed days, the rest, one run each (the
    daily layer in two); by `launcher`, or in-process runs of `defs`' asset job."""
    launcher = launcher or InProcessLauncher(defs, instance)
    plan = plan_runs(defs)
    graph = defs.resolve_asset_graph()
    own_versions = [k for k in plan.daily if graph.get(k).metadata.get(RECORDS_DAY_VERSIONS)]
    rest = [k for k in plan.daily if k not in own_versions]
    phases = [
        (REFERENCE_JOB, "reference data", plan.before, False),
        (DAILY_INGEST_JOB, "raw and cleaned days, each with its own data version",
         own_versions if days else [], True),
        (DAILY_INGEST_JOB, "daily marts and monitoring", rest if days else [], True),
        (REFRESH_JOB, "marts, features, models, serving, monitoring", plan.after, False),
    ]
    phases = [phase for phase in phases if phase[2]]
    if days and plan.daily:
        require_partitions(days, graph.get(plan.daily[0]).partitions_def)
    range_tags = {PARTITION_RANGE_START: days[0], PARTITION_RANGE_END: days[-1]} if days else {}
    results = []
    for number, (job_name, title, keys, daily) in enumerate(phases, 1):
        if daily:
            title += f", {len(days)} days ({days[0]} .. {days[-1]}) in one run"
        _announce(number, len(phases), f"{job_name}: {title}", keys)
        if not daily:
            results.append(_execute(launcher, job_name, keys, {}))
            continue
        deferred = keys is own_versions
        tags = {**range_tags, **({DEFER_ASSET_EVENTS_TAG: "true"} if deferred else {})}
        result = _execute(launcher, job_name, keys, tags, tolerate_held_back=deferred)
        results.append(result)
        if not result.success:
            # the guards held days back (the generator's empty and late files): say so; the
            # published days go on, the next phases build from them
            for message in held_back_messages(result):
                print(message)
            held = {
                k for e in _step_failures(result)
                for k in _step_asset_keys(launcher.job_def(job_name), e.step_key)
            }
            done = {e.asset_key for e in result.get_asset_materialization_events()}
            skipped = [k for k in keys if k not in done and k not in held]
            if skipped:
                results.append(_execute(launcher, job_name, skipped, tags))
    return results


def _step_failures(result: ExecutionResult) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.is_step_failure]


def _held_back(event: dg.DagsterEvent) -> bool:
    """A step that failed only because guards held days back (see cleaning/assets.py)."""
    data = event.step_failure_data
    user = data.user_failure_data if data else None
    return user is not None and "held_back_days" in (user.metadata or {})


def held_back_messages(result: ExecutionResult) -> list[str]:
    return [
        e.step_failure_data.user_failure_data.description or ""
        for e in _step_failures(result)
        if _held_back(e) and e.step_failure_data and e.step_failure_data.user_failure_data
    ]


def _step_asset_keys(job: dg.JobDefinition, step_key: str | None) -> set[dg.AssetKey]:
    """The assets computed by a (failed) step of a run of `job`."""
    if not step_key or not job.graph.has_node_named(step_key):
        return set()
    assets_def = job.asset_layer.get_assets_def_for_node(NodeHandle(step_key, None))
    return set(assets_def.keys) if assets_def else set()


def _announce(number: int, count: int, title: str, keys: list[dg.AssetKey]) -> None:
    print(f"phase {number}/{count}: {title}: {len(keys)} assets", flush=True)


def _execute(
    launcher: Launcher, job_name: str, keys: list[dg.AssetKey], tags: Mapping[str, str],
    *, tolerate_held_back: bool = False,
) -> ExecutionResult:
    result = launcher.launch(job_name, keys, tags)
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
    days_landed = landed_days(settings.landing_dir, declared_sources(settings.sources_path))
    if days_landed:
        settings = fit_partitions_to(settings.home, days_landed)

    from aiwf_assets.automation.sensors import record_landing_observations
    from aiwf_assets.definitions import defs
    from aiwf_assets.resources import build_resources
    from aiwf_assets.summary import summarise

    with dg.DagsterInstance.get() as instance, code_location(instance) as location:
        # observe first, so the landing sensor under `aiwf ui` finds nothing new to re-run
        record_landing_observations(
            instance, defs.resources["landing"], declared_sources(settings.sources_path),
            partitions_for(settings),
        )
        materialise_all(defs, instance, days_landed, CodeLocationLauncher(location, instance))
        resources = build_resources(settings)
        print(
            summarise(
                settings, resources["warehouse"].get(), resources["storage"].store(),
                resources["model_store"].store(),
            )
        )
    return 0
