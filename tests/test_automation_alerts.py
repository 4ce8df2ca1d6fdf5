"""Alerts: failed runs, freshness and WARN checks, recorded and delivered to Slack
(dagster-slack), Microsoft Teams (dagster-msteams) and a generic webhook, each payload as
a loopback HTTP server receives it."""

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from aiwf_assets.automation.alerts import (
    LOG_FILE,
    RECORDS_FILE,
    AlertChannels,
    alert_channels,
    build_asset_alert_sensor,
    build_run_failure_sensor,
)
from aiwf_assets.partitions import daily_partitions_def
from aiwf_assets.settings import Settings, get_settings, reset_settings_cache

UI = "http://ui.example:3000"
SLACK_TOKEN = "xoxb-test-4e1d"
daily_partitions = daily_partitions_def("2026-01-01", None)
CHANNEL_VARS = (
    "AIWF_SLACK_TOKEN", "AIWF_SLACK_CHANNEL", "AIWF_SLACK_API_URL", "AIWF_TEAMS_WEBHOOK_URL",
    "AIWF_ALERT_WEBHOOK_URL",
)


# a failing job --------------------------------------------------------------------------
@dg.op
def load_orders() -> None:
    raise ValueError("orders file has no header row")


@dg.job
def nightly_load() -> None:
    load_orders()


def fire_failure_sensor(instance: dg.DagsterInstance, channels: AlertChannels) -> str:
    """Fail a run for real, then evaluate the failure sensor on it; returns the run id."""
    result = nightly_load.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    with dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alerts": channels},
    ) as context:
        build_run_failure_sensor()(context.for_run_failure())
    return result.run_id


# the loopback server: Slack's Web API, a Teams workflow webhook, a generic webhook -------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict


class Receiver(BaseHTTPRequestHandler):
    received: list[Received] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.received.append(Received(self.path, dict(self.headers), body))
        answer = b'{"ok": true, "channel": "C0ALERTS", "ts": "1.0"}'  # Slack's shape
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return


def by_path(path: str) -> list[Received]:
    return [r for r in Receiver.received if r.path == path]


@pytest.fixture
def server() -> Iterator[str]:
    Receiver.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join()


@pytest.fixture
def no_channels(aiwf_home: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in CHANNEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIWF_WEBSERVER_URL", UI + "/")
    reset_settings_cache()
    return get_settings()


def enable_channels(monkeypatch: pytest.MonkeyPatch, base: str) -> Settings:
    """Every channel on, as an operator sets them, pointed at the loopback server."""
    monkeypatch.setenv("AIWF_SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("AIWF_SLACK_CHANNEL", "#data-alerts")
    monkeypatch.setenv("AIWF_SLACK_API_URL", f"{base}/slack/api/")
    monkeypatch.setenv("AIWF_TEAMS_WEBHOOK_URL", f"{base}/teams/workflow")
    monkeypatch.setenv("AIWF_ALERT_WEBHOOK_URL", f"{base}/hook")
    reset_settings_cache()
    return get_settings()


def records(settings: Settings) -> list[dict]:
    lines = (settings.alerts_dir / RECORDS_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


# run failures ---------------------------------------------------------------------------
def test_without_channels_a_failed_run_is_recorded_and_logged(no_channels: Settings) -> None:
    with dg.instance_for_test() as instance:
        run_id = fire_failure_sensor(instance, alert_channels(no_channels))
    [record] = records(no_channels)
    assert record["kind"] == "run_failure"
    assert (record["subject"], record["run_id"]) == ("nightly_load", run_id)
    assert record["failed_steps"] == ["load_orders"]
    assert "orders file has no header row" in record["message"]
    assert record["url"] == f"{UI}/runs/{run_id}"
    log = (no_channels.alerts_dir / LOG_FILE).read_text()
    assert run_id in log and "load_orders" in log


def test_the_channel_secrets_reach_the_resource_as_env_vars(
    no_channels: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert alert_channels(no_channels).slack is None
    settings = enable_channels(monkeypatch, "http://127.0.0.1:9")
    alerts = alert_channels(settings)
    assert isinstance(alerts.slack.token, dg.EnvVar) and alerts.slack.token == "AIWF_SLACK_TOKEN"
    assert isinstance(alerts.teams.hook_url, dg.EnvVar)
    assert alerts.teams.hook_url == "AIWF_TEAMS_WEBHOOK_URL"
    assert isinstance(alerts.webhook.url, dg.EnvVar)
    assert alerts.webhook.url == "AIWF_ALERT_WEBHOOK_URL"
    assert alerts.slack.channel == "#data-alerts"


def test_a_failed_run_reaches_slack_teams_and_the_webhook(
    no_channels: Settings, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    settings = enable_channels(monkeypatch, server)
    with dg.instance_for_test() as instance:
        run_id = fire_failure_sensor(instance, alert_channels(settings))
    link = f"{UI}/runs/{run_id}"
    title = "aiwf: run of nightly_load failed (load_orders)"
    error = "load_orders: ValueError: orders file has no header row"

    [slack] = by_path("/slack/api/chat.postMessage")
    assert slack.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert slack.body == {
        "channel": "#data-alerts",
        "text": f"{title}: {error} <{link}>",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{error}"}},
            {"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "View run"},
                "url": link,
            }]},
        ],
    }

    [teams] = by_path("/teams/workflow")
    [attachment] = teams.body["attachments"]
    assert teams.body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["body"] == [
        {"type": "TextBlock", "text": f"{title}: {error} [View run]({link})", "wrap": True}
    ]

    [hook] = by_path("/hook")
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.body == records(settings)[0]
    assert hook.body["text"] == f"{title}: {error} <{link}>"
    assert (hook.body["kind"], hook.body["run_id"], hook.body["url"]) == (
        "run_failure", run_id, link
    )
    assert len(Receiver.received) == 3
    assert not (settings.alerts_dir / LOG_FILE).exists()


def test_a_channel_that_fails_does_not_stop_the_others(
    no_channels: Settings, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    settings = enable_channels(monkeypatch, server)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AIWF_SLACK_API_URL", f"http://127.0.0.1:{port}/api/")
    reset_settings_cache()
    settings = get_settings()
    with dg.instance_for_test() as instance:
        run_id = fire_failure_sensor(instance, alert_channels(settings))
    assert [r.path for r in Receiver.received] == ["/teams/workflow", "/hook"]
    assert [r["run_id"] for r in records(settings)] == [run_id]
    [line] = (settings.alerts_dir / LOG_FILE).read_text().splitlines()
    assert run_id in line and "not delivered: slack: URLError" in line


def test_a_legacy_teams_connector_gets_a_card_with_an_html_link(no_channels: Settings) -> None:
    from aiwf_assets.automation.alerts import Alert, teams_payload

    alert = Alert(kind="run_failure", subject="j", title="run of j failed (s)", message="boom",
                  url=f"{UI}/runs/r1", at="2026-01-01T00:00:00+00:00", run_id="r1")
    [attachment] = teams_payload(alert, legacy_webhook=True)["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.hero"
    assert attachment["content"]["text"] == (
        f"aiwf: run of j failed (s): boom <a href='{UI}/runs/r1'>View run</a>"
    )


# freshness and WARN checks --------------------------------------------------------------
@dg.asset(
    check_specs=[dg.AssetCheckSpec("rows_within_range", asset="daily_sales")],
    partitions_def=daily_partitions,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36)),
)
def daily_sales(context: dg.AssetExecutionContext) -> Iterator[dg.Output | dg.AssetCheckResult]:
    yield dg.Output(None)
    yield dg.AssetCheckResult(
        passed=context.partition_key != "2026-01-02",
        severity=dg.AssetCheckSeverity.WARN,
        description="1,204 rows, expected 9,000 to 11,000",
    )


@dg.asset(
    check_specs=[dg.AssetCheckSpec("has_rows", asset="churn_scores", blocking=True)],
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=36)),
)
def churn_scores() -> Iterator[dg.Output | dg.AssetCheckResult]:
    yield dg.Output(None)
    yield dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


def tick(
    instance: dg.DagsterInstance, channels: AlertChannels, cursor: str | None,
    assets: tuple[dg.AssetsDefinition, ...] = (),
) -> str:
    """One evaluation of the sensor in a code location with `assets` (default: daily_sales
    and churn_scores); returns its new cursor."""
    sensor = build_asset_alert_sensor(get_settings())
    repository = dg.Definitions(
        assets=list(assets or (daily_sales, churn_scores)), sensors=[sensor],
        resources={"alerts": channels},
    ).get_repository_def()
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alerts": channels},
        repository_def=repository,
    ) as context:
        sensor(context)
        return context.cursor


def freshness(
    instance: dg.DagsterInstance, asset: str, before: FreshnessState, after: FreshnessState
) -> None:
    """The event the freshness daemon records when an asset's freshness state changes."""
    instance.report_runless_asset_event(FreshnessStateChange(
        key=dg.AssetKey(asset), previous_state=before, new_state=after,
        state_change_timestamp=1.0,
    ))


def materialize_day(instance: dg.DagsterInstance, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([daily_sales], partition_key=day, instance=instance)


def test_freshness_and_warn_checks_alert_once_each(
    no_channels: Settings, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    settings = enable_channels(monkeypatch, server)
    channels = alert_channels(settings)
    with dg.instance_for_test() as instance:
        materialize_day(instance, "2026-01-02")  # history before the sensor started
        freshness(instance, "churn_scores", FreshnessState.UNKNOWN, FreshnessState.PASS)
        cursor = tick(instance, channels, None)
        assert Receiver.received == [] and cursor

        runs = [materialize_day(instance, day) for day in ("2026-01-02", "2026-01-03")]
        dg.materialize([churn_scores], instance=instance, raise_on_error=False)
        freshness(instance, "churn_scores", FreshnessState.PASS, FreshnessState.FAIL)
        freshness(instance, "daily_sales", FreshnessState.UNKNOWN, FreshnessState.PASS)
        cursor = tick(instance, channels, cursor)
        sent = len(Receiver.received)
        tick(instance, channels, cursor)
        assert len(Receiver.received) == sent  # nothing new: nothing sent again

    hooks = [r.body for r in by_path("/hook")]
    assert [(h["kind"], h["subject"]) for h in hooks] == [
        ("freshness", "churn_scores"), ("check_warning", "daily_sales:rows_within_range")
    ]
    stale, warned = hooks
    assert stale["text"] == (
        "aiwf: churn_scores is stale (freshness FAIL, was PASS): no materialization within "
        f"its freshness policy's fail window <{UI}/assets/churn_scores>"
    )
    # the ERROR check is not a warning (its blocking failure is a run failure alert)
    assert warned["partitions"] == ["2026-01-02"]
    assert warned["run_id"] == runs[0].run_id
    assert warned["text"] == (
        "aiwf: check daily_sales:rows_within_range failed (WARN) for 2026-01-02: "
        f"1,204 rows, expected 9,000 to 11,000 <{UI}/runs/{runs[0].run_id}>"
    )
    slack = [r.body for r in by_path("/slack/api/chat.postMessage")]
    assert [s["text"] for s in slack] == [h["text"] for h in hooks]
    assert slack[0]["blocks"][1]["elements"][0]["text"]["text"] == "View asset"
    teams = [r.body["attachments"][0]["content"]["body"][0]["text"] for r in by_path(
        "/teams/workflow")]
    assert teams[0].endswith(f"[View asset]({UI}/assets/churn_scores)")
    assert records(settings) == hooks


def test_warnings_of_a_backfill_are_one_alert_per_check(
    no_channels: Settings, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    settings = enable_channels(monkeypatch, server)
    monkeypatch.setattr("aiwf_assets.automation.alerts.MAX_PARTITIONS_SHOWN", 1)
    # the failures are read a page at a time: 2 a page, so 3 failures take two pages
    monkeypatch.setattr("aiwf_assets.automation.alerts.EXECUTIONS_PAGE", 2)
    channels = alert_channels(settings)

    @dg.asset(
        name="daily_sales",
        check_specs=[dg.AssetCheckSpec("rows_within_range", asset="daily_sales")],
        partitions_def=daily_partitions,
    )
    def always_low(context: dg.AssetExecutionContext):
        yield dg.Output(None)
        yield dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)

    with dg.instance_for_test() as instance:
        cursor = tick(instance, channels, None, (always_low,))
        for day in ("2026-01-05", "2026-01-04", "2026-01-06"):
            dg.materialize([always_low], partition_key=day, instance=instance)
        tick(instance, channels, cursor, (always_low,))
    [hook] = [r.body for r in by_path("/hook")]
    assert hook["partitions"] == ["2026-01-04", "2026-01-05", "2026-01-06"]
    assert hook["title"] == (
        "check daily_sales:rows_within_range failed (WARN) for 2026-01-04 and 2 more"
    )


def test_a_warn_check_without_a_description_alerts_with_its_metadata(
    no_channels: Settings, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    """Found by the 2026-12-07 probe: the pipeline's WARN checks (health anomalies,
    plausibility, drift) say what they found in metadata, and the alert's message was
    empty. It carries the metadata now; a check with neither says its own description."""
    settings = enable_channels(monkeypatch, server)
    channels = alert_channels(settings)
    anomalies = (
        "| day | source | metric | value | expected |\n| --- | --- | --- | --- | --- |\n"
        "| 2026-01-04 | web_sessions | records | 0 | 158.0 |\n"
        "| 2026-01-04 | crm_tickets | records | 0 | 8.0 |"
    )

    @dg.asset(
        name="pipeline_health",
        check_specs=[
            dg.AssetCheckSpec("volume_anomalies", asset="pipeline_health"),
            dg.AssetCheckSpec(
                "staleness", asset="pipeline_health",
                description="every source delivered within a day",
            ),
        ],
        partitions_def=daily_partitions,
    )
    def health(context: dg.AssetExecutionContext):
        yield dg.Output(None)
        yield dg.AssetCheckResult(
            check_name="volume_anomalies", passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"anomalies": dg.MetadataValue.md(anomalies), "values_judged": 42},
        )
        yield dg.AssetCheckResult(
            check_name="staleness", passed=False, severity=dg.AssetCheckSeverity.WARN
        )

    with dg.instance_for_test() as instance:
        cursor = tick(instance, channels, None, (health,))
        dg.materialize([health], partition_key="2026-01-04", instance=instance)
        tick(instance, channels, cursor, (health,))
    messages = {h["subject"]: h["message"] for h in (r.body for r in by_path("/hook"))}
    assert messages == {
        "pipeline_health:volume_anomalies": (
            "anomalies: day=2026-01-04, source=web_sessions, metric=records, value=0,"
            " expected=158.0 | day=2026-01-04, source=crm_tickets, metric=records, value=0,"
            " expected=8.0; values_judged: 42"
        ),
        "pipeline_health:staleness": "every source delivered within a day",
    }
