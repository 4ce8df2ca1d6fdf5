"""Browser tests: a small demo, `aiwf ui` (webserver + daemon) on loopback, Debian's Chromium.

The demo is generated and materialised once per session (60 days: the models need
that much history; at scale 0.1 the demand model fails its sanity check, 0.2 passes).
Chromium is the system package (`/usr/bin/chromium`, installed by `.ci/run`), never a
`playwright install` download.
With CI=true a missing Chromium fails the tests; elsewhere they skip with the reason.
Set AIWF_SCREENSHOTS_DIR (e.g. docs/img) to keep the pages' screenshots, and
AIWF_UI_TEST_HOME to test against an existing demo home instead of building one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DEMO_ARGS = ["--days", "60", "--scale", "0.2"]
START_TIMEOUT_S = 180


def chromium_or_skip() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    reason = f"{CHROMIUM} not found (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: the browser tests are required")
    pytest.skip(reason)


def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _aiwf(home: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("aiwf")), "--home", str(home), *args]


def _environment(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIWF_", "DAGSTER_"))}
    return {**keep, "AIWF_ENV": "local", "AIWF_HOME": str(home), "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="session")
def demo_home(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if existing := os.environ.get("AIWF_UI_TEST_HOME"):
        return Path(existing)
    home = tmp_path_factory.mktemp("ui") / "aiwf"
    done = subprocess.run(
        _aiwf(home, "demo", *DEMO_ARGS), cwd=REPO, env=_environment(home),
        capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, f"aiwf demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return home


UI_READY = """
{ assetNodes { id }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }
"""


@pytest.fixture(scope="session")
def ui_url(demo_home: Path) -> Iterator[str]:
    """`aiwf ui` (dagster dev: webserver + daemon) on a free loopback port."""
    port = _free_port()
    log = (demo_home / "ui.log").open("w")
    # its own process group: dagster dev starts the webserver and the daemon as children
    process = subprocess.Popen(
        _aiwf(demo_home, "ui", "--port", str(port)), cwd=REPO, env=_environment(demo_home),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process, demo_home / "ui.log")
        graphql(url, "mutation { setNuxSeen }")  # no "join the community" dialog over the pages
        yield url
    finally:
        # dagster dev shuts its webserver and daemon down on an interrupt (it ignores SIGTERM)
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            data = graphql(url, UI_READY)
            daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
            if data["assetNodes"] and daemons and all(d["healthy"] for d in daemons):
                return
        except (OSError, AssertionError, KeyError, TypeError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"aiwf ui did not come up at {url}:\n{log.read_text()[-3000:]}")
        time.sleep(2)


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # pages fetch their data after loading: a busy machine needs more than the 5 s default
    expect.set_options(timeout=60_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, ui_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=ui_url)
    context.set_default_timeout(60_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("AIWF_SCREENSHOTS_DIR")
    target = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target
