"""Automation policies, applied post-hoc to every asset by its place in the graph.

Owners of assets write no automation code: `apply_automation_policies(defs)`
gives each asset one of the policies below (an asset that already declares
its own `automation_condition` keeps it), adds the freshness policy to the
serving assets and the daily cleaned tables, and adds the graph-derived jobs
and schedules (jobs.py).
docs/AUTOMATION.md has the table of which asset gets which policy and why.

Every policy reacts to *data version* changes, not to materialisations: a
re-run that reproduces the same content (same bytes landed, same cleaned
rows) requests nothing downstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from aiwf_assets.automation.jobs import MODEL_GROUP, SERVING_GROUP, build_jobs_and_schedules
from aiwf_assets.settings import Settings, get_settings

AC = dg.AutomationCondition

LANDING_GROUP = "landing"
CLEANED_GROUP = "cleaned"
# dbt models report no content versions (theirs follow code + inputs), so checking each
# layer's version between runs saves nothing: a change runs the whole chain in one run
CHAINED_GROUPS = frozenset({"marts"})
RETRAIN_METADATA_KEY = "aiwf/retrains_on_failure"  # on an asset check: model keys, comma-joined
# on a model asset: the days of daily history its training needs (ml/assets/models.py)
MIN_HISTORY_METADATA_KEY = "aiwf/min_history_days"


@dataclass(frozen=True)
class Policy:
    name: str
    condition: dg.AutomationCondition | None
    when: str  # one sentence for the docs table and the asset's metadata


# building blocks -------------------------------------------------------------------
@dataclass(frozen=True)
class Parents:
    """An asset's parents, by how their partitions map onto it.

    same: same partitioning (or both unpartitioned). A parent requested on the same
    tick runs in the same run, before the child, so it may be requested now.
    reference: unpartitioned parents of a partitioned asset. They run in a run of
    their own, so the child waits until they exist, are idle and passed their
    blocking checks; their changes do not re-run every partition.
    wide: partitioned parents of an unpartitioned asset. Many partitions feed it and
    some may never exist; none of them may have failed a blocking check.
    """

    same: tuple[dg.AssetKey, ...] = ()
    reference: tuple[dg.AssetKey, ...] = ()
    wide: tuple[dg.AssetKey, ...] = ()
    # parents of the assets this one runs with in one step (a multi-asset that cannot
    # subset), not its own, with its partitioning: requesting it runs the whole step, which
    # reads them (orders and the day's ticket file)
    step: tuple[dg.AssetKey, ...] = ()

    @classmethod
    def of(cls, key: dg.AssetKey, graph: dg.AssetGraph) -> Parents:
        partitioned = graph.get(key).partitions_def is not None
        groups: dict[str, list[dg.AssetKey]] = {"same": [], "reference": [], "wide": []}
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            parent_partitioned = graph.get(parent).partitions_def is not None
            if parent_partitioned == partitioned:
                groups["same"].append(parent)
            else:
                groups["reference" if partitioned else "wide"].append(parent)
        together = {
            k for k in graph.get_execution_set_asset_and_check_keys(key)
            if isinstance(k, dg.AssetKey)
        }
        step = {
            p for k in together for p in graph.get(k).parent_keys
            if p not in together and p not in graph.get(key).parent_keys
            and (graph.get(p).partitions_def is not None) == partitioned
        }
        return cls(
            *(tuple(groups[g]) for g in ("same", "reference", "wide")),
            step=tuple(sorted(step, key=lambda k: k.to_user_string())),
        )


def upstream_changed(
    ignore: Iterable[dg.AssetKey] = (), chain: Iterable[dg.AssetKey] = ()
) -> dg.AutomationCondition:
    """Some parent (partition) has a new data version since the previous tick, or a
    `chain` parent is requested now (and so runs first in the same run)."""
    changed = AC.any_deps_match(AC.data_version_changed())
    ignored, chained = list(ignore), list(chain)
    if ignored:
        changed = changed.ignore(dg.AssetSelection.assets(*ignored))
    if not chained:
        return changed.with_label("upstream_data_version_changed")
    runs_now = AC.any_deps_match(AC.will_be_requested()).allow(dg.AssetSelection.assets(*chained))
    return (changed | runs_now).with_label("upstream changed, or its chain runs now")


def ready(parents: Parents) -> dg.AutomationCondition:
    """Nothing involved is being computed, and the parents are fit to be read."""
    condition = ~AC.in_progress() & ~AC.any_deps_in_progress()
    if parents.same:
        same = dg.AssetSelection.assets(*parents.same)
        condition = condition & (
            ~AC.any_deps_match(AC.missing() & ~AC.will_be_requested()).allow(same)
        ).with_label("parents exist or run first") & AC.all_deps_match(
            # a parent requested now runs first in the same run, where its blocking checks
            # stop this asset if they fail: waiting for them cost a tick per layer of a chain
            AC.will_be_requested()
            | AC.all_checks_match(AC.check_passed(), blocking_only=True)
        ).allow(same).with_label("parents' blocking checks passed or the parents run first")
    if parents.reference:
        reference = dg.AssetSelection.assets(*parents.reference)
        condition = condition & (
            ~AC.any_deps_match(AC.missing() | AC.will_be_requested()).allow(reference)
        ).with_label("reference parents exist and are settled") & AC.all_deps_match(
            AC.all_checks_match(AC.check_passed(), blocking_only=True)
        ).allow(reference).with_label("reference parents' blocking checks passed")
    for mate in parents.step:
        condition = condition & AC.asset_matches(
            mate, ~AC.missing() | AC.will_be_requested()
        ).with_label(f"{mate.to_user_string()} (read by the same step) exists or runs first")
    if parents.wide:
        wide = dg.AssetSelection.assets(*parents.wide)
        condition = condition & (
            ~AC.any_deps_match(
                AC.any_checks_match(AC.check_failed(), blocking_only=True)
            ).allow(wide)
        ).with_label("no parent partition failed a blocking check")
    return condition.with_label("ready")


def check_newly_failed(check: dg.AssetCheckKey) -> dg.AutomationCondition:
    """`check` has a new evaluation since the previous tick, and it failed."""
    return AC.asset_matches(
        check.asset_key,
        AC.any_checks_match(AC.check_failed() & AC.newly_updated()).allow(
            dg.AssetSelection.checks(check)
        ),
    ).with_label(f"{check.to_user_string()} newly failed")


def history_shortfall(days_present: int, days_needed: int) -> str | None:
    """None when the history suffices, else what the automation explanation says."""
    missing = days_needed - days_present
    if missing <= 0:
        return None
    return f"waiting for {missing} more day{'s' if missing != 1 else ''} of history"


class HistoryAtLeast(dg.AutomationCondition):
    """True once the daily assets upstream hold at least `days` days (partitions) of data.

    A model whose training needs N days fails on less: without this, automation would
    request it after every change and each run would fail and alert. The evaluation's
    metadata says how many days there are and how many more are needed; the condition is
    plain Python, so the automation sensor evaluates in the code server.
    """

    def __init__(self, days: int, daily: Iterable[dg.AssetKey]) -> None:
        self.days = days
        self.daily = tuple(sorted(daily, key=lambda k: k.to_user_string()))

    @property
    def name(self) -> str:
        return f"history_at_least({self.days} days)"

    def get_label(self) -> str | None:
        return f"at least {self.days} days of history"

    @property
    def description(self) -> str:
        return (
            f"at least {self.days} days of daily history upstream (days materialised in "
            "any daily asset it depends on); until then it waits, saying for how many more"
        )

    async def evaluate(self, context):  # noqa: ANN001, ANN201 - dagster's AutomationContext
        view = context.asset_graph_view
        days: set[str] = set()
        for key in self.daily:
            subset = await view.compute_materialized_asset_subset(key)
            days |= set(subset.expensively_compute_partition_keys())
        shortfall = history_shortfall(len(days), self.days)
        true_subset = context.candidate_subset if shortfall is None else context.get_empty_subset()
        return dg.AutomationResult(
            context,
            true_subset,
            metadata={
                "history_days": dg.MetadataValue.int(len(days)),
                "required_days": dg.MetadataValue.int(self.days),
                "status": dg.MetadataValue.text(shortfall or "history requirement met"),
            },
        )


def history_requirement(
    key: dg.AssetKey, graph: dg.AssetGraph
) -> HistoryAtLeast | None:
    """The model's history condition, from its MIN_HISTORY_METADATA_KEY metadata."""
    value = graph.get(key).metadata.get(MIN_HISTORY_METADATA_KEY)
    days = int(getattr(value, "value", value) or 0)
    if days <= 1:
        return None
    daily = [
        k for k in graph.get_ancestor_asset_keys(key)
        if graph.get(k).partitions_def is not None and graph.get(k).is_materializable
    ]
    return HistoryAtLeast(days, daily) if daily else None


# the policies ------------------------------------------------------------------------
def on_partition_change(parents: Parents, chain: tuple[dg.AssetKey, ...] = ()) -> Policy:
    """Partitioned assets: exactly the partitions whose parent partitions changed."""
    condition = (
        upstream_changed(parents.reference, chain).since_last_handled() & ready(parents)
    ).with_label("on_partition_change")
    when = "each partition whose parent partition's data version changed, once its parents "
    when += "exist, are idle and passed their blocking checks"
    if parents.reference:
        when += (
            "; changes of the unpartitioned parents ("
            + ", ".join(k.to_user_string() for k in parents.reference)
            + ") do not re-run history (backfill deliberately)"
        )
    return Policy("on_partition_change", condition, when + chained_note(chain))


def debounced_refresh(parents: Parents, cron: str) -> Policy:
    """Unpartitioned assets fed by daily partitions: once per burst of partition updates."""
    changed = upstream_changed()
    condition = (
        changed.since_last_handled()
        & AC.cron_tick_passed(cron).since(changed).with_label(f"a {cron} tick since the change")
        & ~AC.any_deps_match(AC.will_be_requested()).with_label("no parent requested now")
        & ready(parents)
    ).with_label("debounced_refresh")
    return Policy(
        "debounced_refresh",
        condition,
        f"once after a burst of upstream changes: at the first `{cron}` tick after the last "
        "change, when parents are idle and no parent partition failed a blocking check",
    )


def on_upstream_change(parents: Parents, chain: tuple[dg.AssetKey, ...] = ()) -> Policy:
    """Unpartitioned assets fed by unpartitioned assets: after each real change."""
    condition = (
        upstream_changed(chain=chain).since_last_handled() & ready(parents)
    ).with_label("on_upstream_change")
    return Policy(
        "on_upstream_change",
        condition,
        "after a parent's data version changed, once parents exist, are idle and passed "
        "their blocking checks" + chained_note(chain),
    )


def chained_note(chain: tuple[dg.AssetKey, ...]) -> str:
    if not chain:
        return ""
    return "; also in the same run as its parents in its group (dbt: one run per change)"


def retrain_when_worth_it(
    parents: Parents, checks: Iterable[dg.AssetCheckKey], history: HistoryAtLeast | None = None
) -> Policy:
    """Models: on a failing drift/performance check, a code change, or first data; never
    before the history its training needs is there."""
    ordered = sorted(checks, key=lambda c: c.to_user_string())
    first_training = (AC.missing() & upstream_changed()).with_label("never trained, inputs ready")
    trigger = AC.code_version_changed() | first_training
    for check in ordered:
        trigger = trigger | check_newly_failed(check)
    if history is not None:
        # only a trigger seen while the history suffices counts: the first training then
        # waits for the features built from enough days, not merely for the days to land
        trigger = (history & trigger).with_label("history suffices and a trigger fired")
    condition = trigger.since_last_handled() & ready(parents)
    reasons = [f"`{c.to_user_string()}` fails" for c in ordered]
    when = (
        "never on plain upstream updates; retrains when "
        + ", ".join([*reasons, "its code version changes", "it has never been trained"])
        + "; plus the weekly retrain schedule"
    )
    if history is not None:
        when += f"; not before {history.days} days of daily history exist (the training's minimum)"
    return Policy(
        "retrain_when_worth_it", condition.with_label("retrain_when_worth_it"), when
    )


NOT_AUTOMATED = Policy(
    "observed", None, "observed by landing_observation_sensor (content hash per partition)"
)
CUSTOM = "custom (set by the asset's owner)"


# assignment ----------------------------------------------------------------------------
def retrain_checks(graph: dg.AssetGraph) -> dict[dg.AssetKey, list[dg.AssetCheckKey]]:
    """model key -> checks that request its retraining (declared in the check's metadata)."""
    triggers: dict[dg.AssetKey, list[dg.AssetCheckKey]] = {}
    for check_key in graph.asset_check_keys:
        value = graph.get_check_spec(check_key).metadata.get(RETRAIN_METADATA_KEY)
        text = getattr(value, "value", value)
        for model in str(text or "").split(","):
            if model.strip():
                triggers.setdefault(dg.AssetKey(model.strip()), []).append(check_key)
    return triggers


def policy_for(
    key: dg.AssetKey, graph: dg.AssetGraph, settings: Settings,
    triggers: Mapping[dg.AssetKey, list[dg.AssetCheckKey]],
) -> Policy:
    node = graph.get(key)
    if node.is_observable or node.group_name == LANDING_GROUP:
        return NOT_AUTOMATED
    parents = Parents.of(key, graph)
    if node.group_name == MODEL_GROUP:
        return retrain_when_worth_it(
            parents, triggers.get(key, []), history_requirement(key, graph)
        )
    chain = tuple(
        p for p in parents.same
        if node.group_name in CHAINED_GROUPS and graph.get(p).group_name == node.group_name
    )
    if node.partitions_def is not None:
        return on_partition_change(parents, chain)
    if parents.wide:
        return debounced_refresh(parents, settings.debounce_cron)
    return on_upstream_change(parents, chain)


def assign_policies(
    defs: dg.Definitions, settings: Settings | None = None
) -> dict[dg.AssetKey, Policy]:
    """The policy of every asset in `defs` (owners' own conditions reported as custom)."""
    settings = settings or get_settings()
    graph = defs.resolve_asset_graph()
    triggers = retrain_checks(graph)
    policies = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.automation_condition is not None:
            policies[key] = Policy(CUSTOM, node.automation_condition, CUSTOM)
        else:
            policies[key] = policy_for(key, graph, settings, triggers)
    return policies


def wants_freshness(spec: dg.AssetSpec) -> bool:
    """Serving assets (the daily scoring schedule keeps them fresh) and the daily cleaned
    tables (a day's files land every day: stale cleaned tables mean missing deliveries)."""
    if spec.group_name == SERVING_GROUP:
        return True
    return spec.group_name == CLEANED_GROUP and spec.partitions_def is not None


def freshness_policy(settings: Settings) -> dg.FreshnessPolicy:
    fail = timedelta(hours=settings.freshness_fail_hours)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=fail * 0.75)


def apply_automation_policies(
    defs: dg.Definitions, settings: Settings | None = None
) -> dg.Definitions:
    """`defs` with every asset's automation condition set, freshness on serving assets and
    daily cleaned tables, and the graph-derived jobs and schedules
    (`jobs.build_jobs_and_schedules`)."""
    settings = settings or get_settings()
    policies = assign_policies(defs, settings)
    freshness = freshness_policy(settings)

    def with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policies[spec.key]
        if policy.name == CUSTOM:
            return spec
        spec = spec.merge_attributes(metadata={"aiwf/automation_policy": policy.when})
        if wants_freshness(spec) and spec.freshness_policy is None:
            spec = spec.replace_attributes(freshness_policy=freshness)
        return spec.replace_attributes(automation_condition=policy.condition)

    # observable source assets are not specs: the permissive variant leaves them as they are
    mapped = defs.permissive_map_resolved_asset_specs(func=with_policy, selection=None)
    return dg.Definitions.merge(
        mapped, build_jobs_and_schedules(mapped.resolve_asset_graph(), settings)
    )
