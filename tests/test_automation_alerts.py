"""Run-failure alerts: recorded as JSON lines and delivered by the configured notifier."""

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from aiwf_assets.automation.alerts import FAILURES_FILE, LOG_FILE, build_run_failure_sensor
from aiwf_assets.settings import Settings, get_settings, reset_settings_cache


@dg.op
def load_orders() -> None:
    raise ValueError("orders file has no header row")


@dg.job
def nightly_load() -> None:
    load_orders()


def fire_failure_sensor(instance: dg.DagsterInstance) -> str:
    """Fail a run for real, then evaluate the failure sensor on it; returns the run id."""
    result = nightly_load.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    build_run_failure_sensor()(context)
    return result.run_id


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    thread.join()


def with_webhook(monkeypatch: pytest.MonkeyPatch, url: str) -> Settings:
    monkeypatch.setenv("AIWF_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("AIWF_WEBSERVER_URL", "http://ui.example:3000/")
    reset_settings_cache()
    return get_settings()


def records(settings: Settings) -> list[dict]:
    lines = (settings.alerts_dir / FAILURES_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_failed_run_is_recorded_and_logged(aiwf_home: Settings) -> None:
    with dg.instance_for_test() as instance:
        run_id = fire_failure_sensor(instance)
    [record] = records(aiwf_home)
    assert record["kind"] == "run_failure"
    assert (record["job"], record["run_id"]) == ("nightly_load", run_id)
    assert record["failed_steps"] == ["load_orders"]
    assert "orders file has no header row" in record["message"]
    log = (aiwf_home.alerts_dir / LOG_FILE).read_text()
    assert run_id in log and "load_orders" in log


def test_the_webhook_receives_the_alert(
    aiwf_home: Settings, monkeypatch: pytest.MonkeyPatch, webhook: str
) -> None:
    settings = with_webhook(monkeypatch, webhook)
    with dg.instance_for_test() as instance:
        fire_failure_sensor(instance)
    assert Receiver.received == records(settings)
    [payload] = Receiver.received
    # chat webhooks (Slack) need `text`; it links to the run in the UI
    assert payload["text"].startswith("aiwf: run of nightly_load failed (load_orders): ")
    assert "orders file has no header row" in payload["text"]
    assert payload["run_url"] == f"http://ui.example:3000/runs/{payload['run_id']}"
    assert payload["text"].endswith(f"<{payload['run_url']}>")
    assert not (settings.alerts_dir / LOG_FILE).exists()


def test_an_unreachable_webhook_falls_back_to_the_log_file(
    aiwf_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = with_webhook(monkeypatch, f"http://127.0.0.1:{port}/alerts")
    with dg.instance_for_test() as instance:
        run_id = fire_failure_sensor(instance)
    assert [r["run_id"] for r in records(settings)] == [run_id]
    assert run_id in (settings.alerts_dir / LOG_FILE).read_text()
