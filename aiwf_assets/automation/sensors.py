"""Landing observation and the automation condition sensor.

Why a sensor observes the landing zone (checked on dagster 1.13): an
`automation_condition` on a *partitioned* observable source asset requests an
observation of every partition on each tick, i.e. a run per interval over the
whole history. One pass over a folder observes all of its partitions, so the
sensor does that pass in the code server (hashes cached by stat, see
`ingest.landing`) and records `AssetObservation`s only for partitions whose
content version changed. `AutomationCondition.data_version_changed()` then
sees exactly those partitions. The observable source assets still exist
(lineage, and "Observe" in the UI), and use the same function.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg

from aiwf_assets.ingest.landing import days_with_files, files_outside_window, landing_versions
from aiwf_assets.ingest.spec import SourcesConfig, SourceSpec
from aiwf_assets.resources import LandingResource
from aiwf_assets.settings import Settings

DATA_VERSION_TAG = "dagster/data_version"
Versions = Mapping[str | None, str]  # partition (None: unpartitioned) -> content version


def versions_digest(versions: Versions) -> str:
    """One short digest of a source's whole listing: equal digests, nothing changed."""
    text = json.dumps(sorted((p or "", v) for p, v in versions.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def last_observed(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str | None]
) -> dict[str | None, str]:
    """The data version last recorded for each partition of a landing asset."""
    known: dict[str | None, str] = {}
    for partition in partitions:
        record = instance.get_latest_data_version_record(key, True, partition_key=partition)
        observation = record.asset_observation if record else None
        version = (observation.tags or {}).get(DATA_VERSION_TAG) if observation else None
        if version:
            known[partition] = version
    return known


def changed_observations(
    key: dg.AssetKey, current: Versions, known: Mapping[str | None, str]
) -> list[dg.AssetObservation]:
    """Observations for partitions that are new or whose content changed, in partition order.

    A partition whose file disappeared gets none: removing a file does not un-deliver
    data (a listing that fails transiently must never look like a mass deletion).
    """
    return [
        dg.AssetObservation(
            asset_key=key,
            partition=partition,
            tags={DATA_VERSION_TAG: version},
            metadata={"sha256": version},
        )
        for partition, version in sorted(current.items(), key=lambda kv: kv[0] or "")
        if known.get(partition) != version
    ]


def vanished_days(
    instance: dg.DagsterInstance,
    spec: SourceSpec,
    landing: LandingResource,
    partitions: dg.DailyPartitionsDefinition,
) -> list[str]:
    """Days of a daily source whose file was observed once and is gone from the landing
    zone now (a file still being written counts as there). One query for all of them."""
    listed = days_with_files(spec, landing, partitions)
    missing = [day for day in partitions.get_partition_keys() if day not in listed]
    if not missing:
        return []
    key = dg.AssetKey(f"landing_{spec.name}")
    # every partition among `missing` with a data version recorded since the first event
    observed = instance.event_log_storage.get_updated_data_version_partitions(key, missing, 0)
    return sorted(observed)


def vanished_message(source: str, days: list[str]) -> str:
    """The landing sensor's warning for a source's vanished files."""
    shown = ", ".join(days[:10]) + (f" and {len(days) - 10} more" if len(days) > 10 else "")
    return (
        f"{source}: the landing file(s) of {shown} were observed before and are gone now;"
        " the published data of those days stays as it was (a deleted file retracts"
        " nothing). Put the file back if it was removed by mistake; to retract a day, see"
        " docs/AUTOMATION.md (Retracting a day)"
    )


@dataclass
class LandingCursor:
    """What the landing sensor keeps between ticks: per source the digest of its listing,
    and the days whose observed file is gone (warned about on every tick until the file
    is back; found again only when the source's listing changes)."""

    digests: dict[str, str] = field(default_factory=dict)
    vanished: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> LandingCursor:
        data = json.loads(text) if text else {}
        if "digests" not in data:  # none yet, or the digests alone: every source afresh
            return cls()
        return cls(data["digests"], data["vanished"])

    def to_json(self) -> str:
        return json.dumps({"digests": self.digests, "vanished": self.vanished}, sort_keys=True)


def observe_landing(
    instance: dg.DagsterInstance,
    landing: LandingResource,
    previous: LandingCursor,
    sources: SourcesConfig,
    partitions: dg.DailyPartitionsDefinition,
    settled_before: dt.datetime | None = None,
) -> tuple[list[dg.AssetObservation], LandingCursor]:
    """Observations for what changed in the landing zone, and the new cursor.

    `previous.digests` (source -> digest of its listing) is the previous pass; a source
    whose digest is unchanged costs one listing. For the others, the versions are compared
    with what the instance last recorded, partition by partition, and a daily source's
    days with an observation but no file any more are looked up (`vanished_days`).
    `settled_before`: files written later are left for a later pass (None: every file
    counts).
    """
    events: list[dg.AssetObservation] = []
    current = LandingCursor()
    for spec in sources.sources.values():
        versions = landing_versions(spec, landing, partitions, settled_before)
        current.digests[spec.name] = versions_digest(versions)
        if previous.digests.get(spec.name) != current.digests[spec.name]:
            key = dg.AssetKey(f"landing_{spec.name}")
            known = last_observed(instance, key, list(versions))
            events += changed_observations(key, versions, known)
            gone = vanished_days(instance, spec, landing, partitions) if spec.contract.daily else []
        else:
            gone = previous.vanished.get(spec.name, [])
        if gone:
            current.vanished[spec.name] = gone
    return events, current


def record_landing_observations(
    instance: dg.DagsterInstance,
    landing: LandingResource,
    sources: SourcesConfig,
    partitions: dg.DailyPartitionsDefinition,
) -> int:
    """Record the landing zone's current versions now (e.g. after `aiwf demo` materialised
    raw directly): the sensor then finds nothing new and nothing re-runs. Returns how
    many observations were recorded."""
    events, _ = observe_landing(instance, landing, LandingCursor(), sources, partitions)
    for event in events:
        instance.report_runless_asset_event(event)
    return len(events)


def landing_observation_sensor(
    settings: Settings, sources: SourcesConfig, partitions: dg.DailyPartitionsDefinition
) -> dg.SensorDefinition:
    """Observes the landing files of `sources`, days on `partitions`, every
    `settings.observe_interval_s`."""

    @dg.sensor(
        name="landing_observation_sensor",
        # the landing assets it observes: the UI lists the sensor on their pages; it never
        # requests a run, only records observations
        target=dg.AssetSelection.groups("landing", include_sources=True),
        minimum_interval_seconds=settings.observe_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Lists every landing folder, hashes new or touched files (sha256, cached by size "
            "and mtime) and records an observation for each partition whose content changed;"
            " warns about files outside the partition window and observed files now gone."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingResource) -> dg.SensorResult:
        previous = LandingCursor.parse(context.cursor)
        settle = settings.landing_settle_s
        settled_before = (
            dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settle) if settle > 0 else None
        )
        events, cursor = observe_landing(
            context.instance, landing, previous, sources, partitions, settled_before
        )
        for problem in files_outside_window(sources.sources.values(), landing, partitions):
            context.log.warning(f"landed files not observed: {problem}")
        # a vanished file is more often a cleanup than a retraction: said, never acted on
        for source, days in sorted(cursor.vanished.items()):
            context.log.warning(f"landed files gone: {vanished_message(source, days)}")
        return dg.SensorResult(asset_events=events, cursor=cursor.to_json())

    return _sensor


def automation_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    """One run per requested partition (`emit_backfills=False`), evaluated in the code server
    (`use_user_code_server`): the models' history requirement is a Python condition
    (policies.HistoryAtLeast) that the daemon alone cannot evaluate.

    Dagster records one data version per asset per run: a run over a range of days
    gives all of them the same (combined) version, which would look like a change
    of every day in the range next time. Per-partition runs keep each day's own
    content version, which is what change detection compares.
    """
    return dg.AutomationConditionSensorDefinition(
        "automation_condition_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.automation_interval_s,
        emit_backfills=False,
        use_user_code_server=True,
        description=(
            "Evaluates every asset's automation policy (docs/AUTOMATION.md) and launches runs "
            "for what changed."
        ),
    )
