"""Run the project's commands as a user types them: the venv's scripts in a subprocess.

Shared by the documented-command tests and the browser tests: `run` for a command that
ends, `serving_ui` for `aiwf ui` (dg dev: webserver + daemon) on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's scripts: aiwf, dagster, dg


@dataclass(frozen=True)
class Completed:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"$ {' '.join(self.args)}\nexit {self.returncode}\n{self.output[-4000:]}"


def environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's environment for `home`: AIWF_HOME and its DAGSTER_HOME, this checkout
    importable (as `pip install -e .` makes it), no settings inherited from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIWF_", "DAGSTER_"))}
    env.update(
        AIWF_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        PYTHONPATH=str(REPO),
        COLUMNS="200",  # dg's rich help and tables wrap at the terminal width
    )
    env.update(extra or {})
    return env


def run(
    command: str, *args: str, home: Path, timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """`command args...` from the repository root, as `.venv/bin/<command>` would run."""
    argv = [str(BIN / command), *args]
    done = subprocess.run(
        argv, cwd=REPO, env=environment(home, env), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )
    shown = [f".venv/bin/{command}", *args]
    return Completed(shown, done.returncode, done.stdout, done.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServingUI:
    url: str
    log: Path
    process: subprocess.Popen

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serving_ui(home: Path, *, timeout: float = 300) -> Iterator[ServingUI]:
    """`aiwf ui --port N` until its webserver answers; stopped (with its children) after."""
    port = free_port()
    log = home.parent / f"aiwf-ui-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "aiwf"), "ui", "--port", str(port)], cwd=REPO, env=environment(home),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped whole below
        )
    ui = ServingUI(f"http://127.0.0.1:{port}", log, process)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(f"{ui.url}/server_info"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"aiwf ui did not start:\n{ui.output()[-4000:]}")
            time.sleep(1)
        yield ui
    finally:
        _stop_group(process)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the UI's process group (dg dev, webserver, daemon, code server)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    time.sleep(2)  # dg dev stops its children on SIGTERM; whatever is left is killed
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
