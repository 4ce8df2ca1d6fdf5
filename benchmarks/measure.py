"""Run one benchmark case in a fresh Python process and measure the whole process tree.

Wall time is measured around the process; CPU time (user + sys) comes from the
kernel's rusage of the reaped child, which includes every descendant it reaped
(the multiprocess executor's step processes); peak RSS is the largest sum of
RSS over the process and all its descendants, sampled every 50 ms with psutil.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Measurement:
    case: str
    wall_s: float
    cpu_s: float
    peak_rss: int
    payload: dict = field(default_factory=dict)


class CaseFailed(RuntimeError):
    pass


def tree_rss(process: psutil.Process) -> int:
    """RSS of a process plus all its live descendants (bytes)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_case(case: str, kwargs: dict, *, env: dict[str, str], log_dir: Path) -> Measurement:
    """Run `python -m benchmarks.cases CASE` with kwargs; its JSON result is the payload."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{case}-{time.strftime('%H%M%S')}-{time.perf_counter_ns() % 10**6}"
    out = log_dir / f"{stamp}.json"
    log = log_dir / f"{stamp}.log"
    cmd = [sys.executable, "-m", "benchmarks.cases", case, json.dumps(kwargs), str(out)]
    wall, cpu, peak = measure_process(cmd, env=env, log=log)
    return Measurement(case, wall, cpu, peak, json.loads(out.read_text()))


def run_command(case: str, argv: list[str], *, env: dict[str, str], log_dir: Path,
                payload: dict) -> Measurement:
    """Run a command as a user types it (e.g. `aiwf demo ...`) and measure its tree."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{case}-{time.strftime('%H%M%S')}-{time.perf_counter_ns() % 10**6}.log"
    wall, cpu, peak = measure_process(argv, env=env, log=log)
    return Measurement(case, wall, cpu, peak, {**payload, "log": str(log)})


def measure_process(
    cmd: list[str], *, env: dict[str, str], log: Path
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + sys of the process and every descendant it
    reaped) and peak tree RSS of `cmd` run from the repository root; CaseFailed when it
    exits non-zero."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("w") as log_file:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=full_env, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT
        )
        watched = psutil.Process(proc.pid)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(watched))
            time.sleep(SAMPLE_INTERVAL_S)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise CaseFailed(f"{' '.join(cmd)} exited {proc.returncode}; log {log}:\n{tail}")
    return wall, usage.ru_utime + usage.ru_stime, peak
