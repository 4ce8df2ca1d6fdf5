"""Run-failure alerts: every failed run is recorded and sent through a pluggable notifier.

Records go to `<AIWF_HOME>/alerts/failures.jsonl` (one JSON object a line).
Notifiers: `LogFileNotifier` (default, `<AIWF_HOME>/alerts/alerts.log`) and
`WebhookNotifier` (JSON POST with urllib) when `AIWF_ALERT_WEBHOOK_URL` is
set. Every alert carries `text`, one readable line with the link to the run in the
UI (`AIWF_WEBSERVER_URL`): chat webhooks such as Slack's reject a payload without it.
A notifier that cannot deliver never loses the alert: the record is already written
and the sensor falls back to the log file.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import dagster as dg

from aiwf_assets.settings import Settings, get_settings

FAILURES_FILE = "failures.jsonl"
LOG_FILE = "alerts.log"


@dataclass(frozen=True)
class Alert:
    kind: str
    job: str
    run_id: str
    message: str
    failed_steps: list[str]
    at: str
    run_url: str

    @property
    def text(self) -> str:
        steps = ", ".join(self.failed_steps) or "no step"
        return f"aiwf: run of {self.job} failed ({steps}): {self.message} <{self.run_url}>"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "text": self.text}, sort_keys=True)

    def one_line(self) -> str:
        steps = ", ".join(self.failed_steps) or "no step"
        where = f"job={self.job} run={self.run_id} steps={steps}"
        return f"{self.at} {self.kind} {where}: {self.message}"


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class LogFileNotifier:
    path: Path

    def notify(self, alert: Alert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(alert.one_line() + "\n")


@dataclass(frozen=True)
class WebhookNotifier:
    url: str
    timeout_s: float = 10.0

    def notify(self, alert: Alert) -> None:
        """POST the alert as JSON; raises OSError (URLError, HTTPError) when not delivered."""
        request = urllib.request.Request(
            self.url,
            data=alert.to_json().encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


def default_notifier(settings: Settings) -> Notifier:
    if settings.alert_webhook_url:
        return WebhookNotifier(settings.alert_webhook_url)
    return LogFileNotifier(settings.alerts_dir / LOG_FILE)


def record_alert(alert: Alert, alerts_dir: Path) -> Path:
    alerts_dir.mkdir(parents=True, exist_ok=True)
    path = alerts_dir / FAILURES_FILE
    with path.open("a", encoding="utf-8") as out:
        out.write(alert.to_json() + "\n")
    return path


def deliver(alert: Alert, notifier: Notifier, fallback: Notifier) -> str | None:
    """Send through `notifier`; on a delivery error use `fallback` and return the error."""
    try:
        notifier.notify(alert)
    except OSError as exc:
        fallback.notify(alert)
        return f"{type(exc).__name__}: {exc}"
    return None


def root_cause(error: Any) -> str:
    """The innermost message of a serialised error (Dagster wraps the user's exception)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def failure_alert(context: dg.RunFailureSensorContext, webserver_url: str) -> Alert:
    steps = context.get_step_failure_events()
    message = context.failure_event.message or "run failed"
    errors = [
        f"{e.step_key}: {root_cause(e.step_failure_data.error)}"
        for e in steps
        if e.step_failure_data and e.step_failure_data.error
    ]
    return Alert(
        kind="run_failure",
        job=context.dagster_run.job_name,
        run_id=context.dagster_run.run_id,
        message="; ".join(errors) or message,
        failed_steps=[e.step_key for e in steps if e.step_key],
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        run_url=f"{webserver_url}/runs/{context.dagster_run.run_id}",
    )


def build_run_failure_sensor(
    notifier_for: Callable[[Settings], Notifier] = default_notifier,
) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Records every failed run in <AIWF_HOME>/alerts/failures.jsonl and notifies "
            "(webhook when AIWF_ALERT_WEBHOOK_URL is set, else alerts/alerts.log)."
        ),
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
        settings = get_settings()
        alert = failure_alert(context, settings.webserver_url)
        record_alert(alert, settings.alerts_dir)
        problem = deliver(
            alert, notifier_for(settings), LogFileNotifier(settings.alerts_dir / LOG_FILE)
        )
        if problem:
            context.log.warning(f"alert for run {alert.run_id} went to the log file: {problem}")

    return run_failure_alert_sensor
