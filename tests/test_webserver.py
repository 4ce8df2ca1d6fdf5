"""The UI backend loads the code location from workspace.yaml and serves the whole graph."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUERY = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } hasAssetChecks } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui")
    port = _free_port()
    env = {**os.environ, "AIWF_HOME": str(home / "aiwf"), "DAGSTER_HOME": str(home)}
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver_bin), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                data = _post(url, QUERY)
                if data.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"webserver did not serve the graph: {process.stderr.read()}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ui_serves_every_layer_with_lineage(webserver) -> None:
    nodes = _post(webserver, QUERY)["data"]["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    groups = {n["groupName"] for n in nodes}
    assert {"landing", "raw", "cleaned", "marts", "features", "ml", "serving"} <= groups
    # one lineage: landing -> raw -> cleaned -> a dbt mart -> features
    assert ["landing_web_orders"] in [d["path"] for d in by_key["raw_web_orders"]["dependencyKeys"]]
    assert ["raw_web_orders"] in [d["path"] for d in by_key["order_lines"]["dependencyKeys"]]
    fct_deps = {"/".join(d["path"]) for d in by_key["fct_order_lines"]["dependencyKeys"]}
    assert fct_deps & {"order_lines", "stg_cleaned__order_lines"}
    assert by_key["order_lines"]["hasAssetChecks"]
