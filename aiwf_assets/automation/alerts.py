"""Alerts that reach people: failed runs, stale assets and warning checks.

Three kinds, each one `Alert` with a readable `text` that links to the run (or the
asset) in the UI (`AIWF_WEBSERVER_URL`):

- `run_failure`: every failed run (`run_failure_alert_sensor`);
- `freshness`: an asset whose freshness policy turned WARN or FAIL (the freshness
  daemon records the change as an event) or whose freshness check failed;
- `check_warning`: a failed asset check of severity WARN (`asset_alert_sensor`, one
  alert per check and tick, the failing partitions listed).

Every alert is appended to `<AIWF_HOME>/alerts/alerts.jsonl` and sent to each channel
of the `alerts` resource (`AlertChannels`) that its setting enables: Slack through
dagster-slack's `SlackResource` (`AIWF_SLACK_TOKEN`, `AIWF_SLACK_CHANNEL`), Microsoft
Teams through dagster-msteams' `MSTeamsResource` (`AIWF_TEAMS_WEBHOOK_URL`) and a
generic JSON webhook (`AIWF_ALERT_WEBHOOK_URL`). Tokens and URLs reach the resources
as `dg.EnvVar`, so the UI shows the variables' names only. With no channel, or when a
channel cannot deliver, the alert goes to `<AIWF_HOME>/alerts/alerts.log` with the
reason: an alert is never lost.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_msteams import Card, MSTeamsResource
from dagster_msteams.adaptive_card import AdaptiveCard
from dagster_msteams.utils import MSTeamsHyperlink, build_message_with_link
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk.errors import SlackClientError
from slack_sdk.web.client import WebClient

from aiwf_assets.settings import (
    ALERT_WEBHOOK_VAR,
    SLACK_TOKEN_VAR,
    TEAMS_WEBHOOK_VAR,
    Settings,
)

RECORDS_FILE = "alerts.jsonl"
LOG_FILE = "alerts.log"
SLACK_API_URL = "https://slack.com/api/"
RUN_FAILURE, FRESHNESS, CHECK_WARNING = "run_failure", "freshness", "check_warning"
FRESHNESS_STATES = ("WARN", "FAIL")  # freshness states that alert
MAX_PARTITIONS_SHOWN = 10


@dataclass(frozen=True)
class Alert:
    kind: str  # RUN_FAILURE, FRESHNESS or CHECK_WARNING
    subject: str  # the job, or the asset (and check)
    title: str  # what happened, one short sentence
    message: str  # why: the root errors, the check's description, the freshness state
    url: str  # the run's page in the UI, else the asset's
    at: str
    run_id: str | None = None
    failed_steps: tuple[str, ...] = ()
    partitions: tuple[str, ...] = ()
    link_label: str = field(default="View run")

    @property
    def text(self) -> str:
        message = f": {self.message}" if self.message else ""
        return f"aiwf: {self.title}{message} <{self.url}>"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    def one_line(self) -> str:
        return f"{self.at} {self.kind} {self.subject}: {self.text}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_url(webserver_url: str, run_id: str) -> str:
    return f"{webserver_url}/runs/{run_id}"


def asset_url(webserver_url: str, key: dg.AssetKey, view: str | None = None) -> str:
    path = "/".join(urllib.parse.quote(part, safe="") for part in key.path)
    return f"{webserver_url}/assets/{path}" + (f"?view={view}" if view else "")


# run failures -------------------------------------------------------------------------
def root_cause(error: Any) -> str:
    """The innermost message of a serialised error (Dagster wraps the user's exception)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def failure_alert(context: dg.RunFailureSensorContext, webserver_url: str) -> Alert:
    steps = context.get_step_failure_events()
    errors = [
        f"{e.step_key}: {root_cause(e.step_failure_data.error)}"
        for e in steps
        if e.step_failure_data and e.step_failure_data.error
    ]
    failed = tuple(e.step_key for e in steps if e.step_key)
    job = context.dagster_run.job_name
    run_id = context.dagster_run.run_id
    return Alert(
        kind=RUN_FAILURE,
        subject=job,
        title=f"run of {job} failed ({', '.join(failed) or 'no step'})",
        message="; ".join(errors) or context.failure_event.message or "run failed",
        url=run_url(webserver_url, run_id),
        at=now(),
        run_id=run_id,
        failed_steps=failed,
    )


# freshness and checks -----------------------------------------------------------------
def freshness_alert(
    key: dg.AssetKey, previous: str, state: str, webserver_url: str
) -> Alert | None:
    """An alert when a freshness policy's state turned WARN or FAIL, else None."""
    if state not in FRESHNESS_STATES:
        return None
    asset = key.to_user_string()
    return Alert(
        kind=FRESHNESS,
        subject=asset,
        title=f"{asset} is stale (freshness {state}, was {previous})",
        message=(
            "no materialization within its freshness policy's "
            + ("fail" if state == "FAIL" else "warn")
            + " window"
        ),
        url=asset_url(webserver_url, key),
        at=now(),
        link_label="View asset",
    )


@dataclass(frozen=True)
class CheckFailure:
    """One failed check evaluation, as read from the event log."""

    key: dg.AssetKey
    check_name: str
    severity: str  # WARN or ERROR
    description: str | None
    partition: str | None
    run_id: str | None
    # the evaluation's metadata as text (`metadata_summary`): most checks say what they
    # found there, not in a description
    details: str = ""


MAX_DETAILS_CHARS = 600
_ROWS_SHOWN = 3


def metadata_summary(metadata: Mapping[str, Any], limit: int = MAX_DETAILS_CHARS) -> str:
    """A check evaluation's metadata as one line: `key: value` per entry; a markdown table
    (the anomaly checks') as its first rows, `column=value` each; bullets joined."""
    parts = []
    for key, value in metadata.items():
        text = _metadata_text(getattr(value, "value", value))
        if text:
            parts.append(f"{key}: {text}")
    line = "; ".join(parts)
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _metadata_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if not isinstance(value, str):
        return "" if value is None else str(value)
    lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
    if len(lines) > 2 and lines[0].startswith("|"):  # header, rule, rows
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
        shown = [
            ", ".join(f"{h}={c}" for h, c in zip(header, row, strict=False))
            for row in rows[:_ROWS_SHOWN]
        ]
        more = f" (and {len(rows) - _ROWS_SHOWN} more)" if len(rows) > _ROWS_SHOWN else ""
        return " | ".join(shown) + more
    return " / ".join(line.removeprefix("- ") for line in lines)


def is_freshness_check(check_name: str) -> bool:
    """Dagster's freshness checks (build_last_update_freshness_checks & co) and ours."""
    return "freshness" in check_name


def check_alerts(
    failures: Iterable[CheckFailure], webserver_url: str,
    descriptions: Mapping[dg.AssetCheckKey, str | None] | None = None,
) -> list[Alert]:
    """One alert per failed WARN or freshness check (its partitions together), in order.
    The message: the latest evaluation's description and metadata (`details`), else the
    check's own description from `descriptions`.

    ERROR checks are left out: a blocking one fails its run (a run-failure alert), and
    the data behind a failed non-blocking one is held back by the publishing guards.
    """
    grouped: dict[tuple[dg.AssetKey, str], list[CheckFailure]] = {}
    for failure in failures:
        if failure.severity == "WARN" or is_freshness_check(failure.check_name):
            grouped.setdefault((failure.key, failure.check_name), []).append(failure)
    alerts = []
    for (key, check_name), group in grouped.items():
        subject = f"{key.to_user_string()}:{check_name}"
        partitions = tuple(sorted({f.partition for f in group if f.partition}))
        runs = list(dict.fromkeys(f.run_id for f in group if f.run_id))
        shown = ", ".join(partitions[:MAX_PARTITIONS_SHOWN])
        if len(partitions) > MAX_PARTITIONS_SHOWN:
            shown += f" and {len(partitions) - MAX_PARTITIONS_SHOWN} more"
        kind = FRESHNESS if is_freshness_check(check_name) else CHECK_WARNING
        title = f"check {subject} failed ({group[-1].severity})"
        if shown:
            title += f" for {shown}"
        alerts.append(
            Alert(
                kind=kind,
                subject=subject,
                title=title,
                message=_check_message(group[-1], (descriptions or {}).get(
                    dg.AssetCheckKey(key, check_name)
                )),
                # the run that evaluated it (the latest one), else the asset's checks
                url=run_url(webserver_url, runs[-1]) if runs
                else asset_url(webserver_url, key, view="checks"),
                at=now(),
                run_id=runs[-1] if runs else None,
                partitions=partitions,
                link_label="View run" if runs else "View checks",
            )
        )
    return alerts


def _check_message(failure: CheckFailure, spec_description: str | None) -> str:
    said = [text for text in (failure.description, failure.details) if text]
    return "; ".join(said) if said else (spec_description or "")


# channels -----------------------------------------------------------------------------
def slack_message(alert: Alert) -> dict[str, Any]:
    """chat.postMessage arguments: `text` (notifications, fallback) and blocks with a
    button to the run or asset in the UI."""
    return {
        "text": alert.text,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*aiwf: {alert.title}*\n{alert.message}"},
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": alert.link_label},
                        "url": alert.url,
                    }
                ],
            },
        ],
    }


def teams_payload(alert: Alert, legacy_webhook: bool) -> dict[str, Any]:
    """The card dagster-msteams posts: a MessageCard to an Office 365 connector
    (`*.webhook.office.com`), else an Adaptive Card (Workflows webhooks)."""
    card = Card() if legacy_webhook else AdaptiveCard()
    text = build_message_with_link(
        legacy_webhook,
        f"aiwf: {alert.title}" + (f": {alert.message}" if alert.message else ""),
        MSTeamsHyperlink(alert.link_label, alert.url),
    )
    card.add_attachment(text_message=text)
    return card.payload


class SlackAlertResource(SlackResource):
    """dagster-slack's SlackResource, with the channel alerts go to and the API's base URL
    (Slack's by default; a proxy or a test server otherwise)."""

    channel: str = Field(description="channel alerts are posted to, e.g. #aiwf-alerts")
    base_url: str = Field(default=SLACK_API_URL, description="Slack Web API base URL")

    def get_client(self) -> WebClient:
        return WebClient(token=self.token, base_url=self.base_url)

    def send(self, alert: Alert) -> None:
        self.get_client().chat_postMessage(channel=self.channel, **slack_message(alert))


class WebhookResource(dg.ConfigurableResource):
    """A generic webhook: the alert as JSON (every `Alert` field and `text`), POSTed."""

    url: str = Field(
        description=f"dg.EnvVar('{ALERT_WEBHOOK_VAR}'): the UI shows only the variable's name"
    )
    timeout_s: float = 10.0

    def send(self, alert: Alert) -> None:
        """POST the alert; raises OSError (URLError, HTTPError) when not delivered."""
        request = urllib.request.Request(
            self.url,
            data=alert.to_json().encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


def send_to_teams(teams: MSTeamsResource, alert: Alert) -> None:
    client = teams.get_client()
    client.post_message(teams_payload(alert, client.is_legacy_webhook()))


# a channel that cannot deliver raises one of these (requests' errors are OSErrors)
DELIVERY_ERRORS = (OSError, SlackClientError)


class AlertChannels(dg.ConfigurableResource):
    """Where alerts go: each channel set when its setting is (docs/AUTOMATION.md#alerts)."""

    webserver_url: str = Field(description="the UI's address: alerts link to runs there")
    alerts_dir: str = Field(description="alerts.jsonl (every alert) and alerts.log")
    slack: SlackAlertResource | None = None
    teams: MSTeamsResource | None = None
    webhook: WebhookResource | None = None

    def channels(self) -> dict[str, Callable[[Alert], None]]:
        found: dict[str, Callable[[Alert], None]] = {}
        if self.slack is not None:
            found["slack"] = self.slack.send
        if self.teams is not None:
            teams = self.teams
            found["teams"] = lambda alert: send_to_teams(teams, alert)
        if self.webhook is not None:
            found["webhook"] = self.webhook.send
        return found

    def publish(self, alert: Alert) -> list[str]:
        """Record `alert`, send it to every channel; returns the delivery problems."""
        return publish(alert, Path(self.alerts_dir), self.channels())


def alert_channels(settings: Settings) -> AlertChannels:
    """The `alerts` resource: a channel per enabled setting, secrets as dg.EnvVar."""
    return AlertChannels(
        webserver_url=settings.webserver_url,
        alerts_dir=str(settings.alerts_dir),
        slack=SlackAlertResource(
            token=dg.EnvVar(SLACK_TOKEN_VAR),
            channel=settings.slack_channel,
            base_url=settings.slack_api_url,
        )
        if settings.slack_enabled
        else None,
        teams=MSTeamsResource(hook_url=dg.EnvVar(TEAMS_WEBHOOK_VAR))
        if settings.teams_enabled
        else None,
        webhook=WebhookResource(url=dg.EnvVar(ALERT_WEBHOOK_VAR))
        if settings.alert_webhook_enabled
        else None,
    )


def log_line(alerts_dir: Path, line: str) -> None:
    alerts_dir.mkdir(parents=True, exist_ok=True)
    with (alerts_dir / LOG_FILE).open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def record_alert(alert: Alert, alerts_dir: Path) -> Path:
    alerts_dir.mkdir(parents=True, exist_ok=True)
    path = alerts_dir / RECORDS_FILE
    with path.open("a", encoding="utf-8") as out:
        out.write(alert.to_json() + "\n")
    return path


def publish(
    alert: Alert, alerts_dir: Path, channels: Mapping[str, Callable[[Alert], None]]
) -> list[str]:
    """Record `alert`, then send it through every channel; a channel that fails does not
    stop the others. With no channel, or when one failed, the log file gets the alert
    (and why). Returns the problems, one line each."""
    record_alert(alert, alerts_dir)
    problems = []
    for name, send in channels.items():
        try:
            send(alert)
        except DELIVERY_ERRORS as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    if not channels:
        log_line(alerts_dir, alert.one_line())
    elif problems:
        log_line(alerts_dir, f"{alert.one_line()} (not delivered: {'; '.join(problems)})")
    return problems


# sensors ------------------------------------------------------------------------------
def build_run_failure_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Every failed run, with each step's root error and a link to the run, to the "
            "`alerts` resource's channels (Slack, Teams, webhook; docs/AUTOMATION.md)."
        ),
    )
    def run_failure_alert_sensor(
        context: dg.RunFailureSensorContext, alerts: AlertChannels
    ) -> None:
        alert = failure_alert(context, alerts.webserver_url)
        for problem in alerts.publish(alert):
            context.log.warning(f"alert for run {alert.run_id} not delivered: {problem}")

    return run_failure_alert_sensor


# what the asset alert sensor has seen (its cursor), advanced each tick
@dataclass(frozen=True)
class AlertCursor:
    checks_after: float  # evaluations at or before this time (minus the margin) are done
    # (execution id, evaluation time) of check failures already alerted within the margin
    alerted: tuple[tuple[int, float], ...] = ()
    freshness: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"checks_after": self.checks_after, "alerted": list(self.alerted),
             "freshness": {k: list(v) for k, v in sorted(self.freshness.items())}}
        )

    @classmethod
    def from_json(cls, text: str) -> AlertCursor:
        data = json.loads(text)
        return cls(
            checks_after=float(data["checks_after"]),
            alerted=tuple((int(i), float(at)) for i, at in data.get("alerted", ())),
            freshness={k: (v[0], float(v[1])) for k, v in data.get("freshness", {}).items()},
        )


# an evaluation is written a moment after it happened (and clocks of pods differ): each
# tick looks this far back and skips what it already alerted
EVALUATION_MARGIN_S = 600.0
EXECUTIONS_PAGE = 100
LONGEST_RUN_S = 86400.0  # a check is evaluated within a day of its run's start


def recent_failures(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, after: float
) -> Iterator[Any]:
    """The check's failed executions, newest first, until those planned (the run started)
    a day before `after`: older ones were evaluated before `after`."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    cursor = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=EXECUTIONS_PAGE, cursor=cursor,
            status={AssetCheckExecutionRecordStatus.FAILED},
        )
        yield from page
        if len(page) < EXECUTIONS_PAGE or page[-1].create_timestamp < after - LONGEST_RUN_S:
            return
        cursor = page[-1].id


def failed_check_executions(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey], after: float
) -> list[tuple[int, float, CheckFailure]]:
    """(execution id, evaluation time, failure) of every check evaluation that failed after
    `after` (epoch seconds), oldest first."""
    found = []
    for check_key in check_keys:
        for record in recent_failures(instance, check_key, after):
            evaluation = record.evaluation
            if evaluation is None or record.event is None or record.event.timestamp <= after:
                continue
            failure = CheckFailure(
                key=evaluation.asset_key,
                check_name=evaluation.check_name,
                severity=evaluation.severity.value,
                description=evaluation.description,
                partition=evaluation.partition or record.partition
                or checked_partition(instance, evaluation),
                run_id=record.run_id or None,
                details=metadata_summary(evaluation.metadata or {}),
            )
            found.append((record.id, record.event.timestamp, failure))
    return sorted(found, key=lambda f: (f[1], f[0]))


def checked_partition(
    instance: dg.DagsterInstance, evaluation: dg.AssetCheckEvaluation
) -> str | None:
    """The partition of the materialization a check evaluated (dagster 1.13 leaves the
    evaluation's own `partition` empty for a check of a partitioned asset)."""
    target = evaluation.target_materialization_data
    if target is None:
        return None
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=evaluation.asset_key, storage_ids=[target.storage_id]),
        limit=1,
    ).records
    return found[0].partition_key if found else None


def freshness_states(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]
) -> dict[str, tuple[str, float]]:
    """The current freshness state (and when it was reached) of each asset that has one."""
    records = instance.event_log_storage.get_freshness_state_records(list(keys))
    return {
        key.to_user_string(): (record.freshness_state.value, record.updated_at.timestamp())
        for key, record in records.items()
    }


def freshness_changes(
    before: Mapping[str, tuple[str, float]], now_: Mapping[str, tuple[str, float]],
    webserver_url: str,
) -> list[Alert]:
    """An alert for each asset whose freshness turned WARN or FAIL since `before`."""
    alerts = []
    for key, (state, at) in sorted(now_.items()):
        previous = before.get(key)
        if previous is None or previous == (state, at):
            continue
        alert = freshness_alert(dg.AssetKey.from_user_string(key), previous[0], state,
                                webserver_url)
        alerts += [alert] if alert else []
    return alerts


def asset_alerts_tick(
    instance: dg.DagsterInstance,
    graph: dg.AssetGraph,
    cursor: AlertCursor | None,
    webserver_url: str,
    clock: float,
) -> tuple[list[Alert], AlertCursor]:
    """The alerts since `cursor` and the next cursor. Without a cursor (the first tick),
    none: the sensor alerts on what happens from then on, never on the history."""
    freshness_keys = [k for k in graph.get_all_asset_keys() if graph.get(k).freshness_policy]
    states = freshness_states(instance, freshness_keys)
    if cursor is None:  # what failed just before is history too
        recent = failed_check_executions(
            instance, graph.asset_check_keys, clock - EVALUATION_MARGIN_S
        )
        history = tuple(sorted((i, at) for i, at, _ in recent))
        return [], AlertCursor(checks_after=clock, alerted=history, freshness=states)
    # a key seen for the first time compares with UNKNOWN (new asset or first evaluation)
    before = {k: cursor.freshness.get(k, ("UNKNOWN", 0.0)) for k in states}
    alerts = freshness_changes(before, states, webserver_url)
    since = cursor.checks_after - EVALUATION_MARGIN_S
    seen = {i for i, _ in cursor.alerted}
    failed = [
        f for f in failed_check_executions(instance, graph.asset_check_keys, since)
        if f[0] not in seen
    ]
    descriptions = {k: graph.get_check_spec(k).description for k in graph.asset_check_keys}
    alerts += check_alerts([f for _, _, f in failed], webserver_url, descriptions)
    done = [(i, at) for i, at, _ in failed] + list(cursor.alerted)
    keep = tuple(sorted((i, at) for i, at in done if at > clock - EVALUATION_MARGIN_S))
    return alerts, AlertCursor(checks_after=clock, alerted=keep, freshness=states)


def build_asset_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="asset_alert_sensor",
        minimum_interval_seconds=settings.observe_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Freshness (an asset's freshness policy turning WARN or FAIL, a freshness check "
            "failing) and failed WARN checks, linked to their run or asset, to the `alerts` "
            "resource's channels (Slack, Teams, webhook; docs/AUTOMATION.md)."
        ),
    )
    def asset_alert_sensor(
        context: dg.SensorEvaluationContext, alerts: AlertChannels
    ) -> dg.SkipReason:
        cursor = AlertCursor.from_json(context.cursor) if context.cursor else None
        sent, after = asset_alerts_tick(
            context.instance, context.repository_def.asset_graph, cursor,
            alerts.webserver_url, datetime.now(UTC).timestamp(),
        )
        for alert in sent:
            for problem in alerts.publish(alert):
                context.log.warning(f"alert {alert.subject} not delivered: {problem}")
        context.update_cursor(after.to_json())
        if cursor is None:
            return dg.SkipReason("started: alerts on what happens from now on")
        return dg.SkipReason(f"{len(sent)} alert(s) sent" if sent else "nothing to alert")

    return asset_alert_sensor
