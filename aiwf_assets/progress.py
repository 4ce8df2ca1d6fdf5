"""Progress a person can follow: long steps log how far they are, the demo prints it.

`log_progress` is called by steps that loop over days: it logs `progress: ...` lines at
about every tenth of the work (the run page in the UI shows them). `terminal_progress` is a
Dagster logger for in-process runs that prints each finished or failed step, and those
progress lines, to the terminal: the demo's console logger stays at WARNING otherwise.
"""

from __future__ import annotations

import logging
import sys
import time

import dagster as dg

PROGRESS_PREFIX = "progress: "


def is_milestone(done: int, total: int, parts: int = 10) -> bool:
    """True at about every 1/parts of `total` and at the end (always for small totals)."""
    step = max(1, total // parts)
    return done == total or done % step == 0


def log_progress(
    context: dg.AssetExecutionContext, what: str, done: int, total: int, rows: int
) -> None:
    """Log `progress: <what> <done>/<total> days, <rows> rows` at milestones of a range."""
    if total > 1 and is_milestone(done, total):
        context.log.info(f"{PROGRESS_PREFIX}{what} {done}/{total} days, {rows:,} rows")


def progress_line(event_type: str | None, step_key: str | None, message: str) -> str | None:
    """What the terminal shows for one log record of a run, or None to stay quiet."""
    if event_type == "STEP_SUCCESS":
        return f"  done    {step_key}"
    if event_type == "STEP_FAILURE":
        return f"  FAILED  {step_key}"
    if event_type is None and message.startswith(PROGRESS_PREFIX):
        return f"          {message.removeprefix(PROGRESS_PREFIX)}"
    return None


class _TerminalHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {})
        event = meta.get("dagster_event")
        line = progress_line(
            event.event_type_value if event is not None else None,
            meta.get("step_key"),
            str(meta.get("orig_message") or ""),
        )
        if line is not None:
            elapsed = time.monotonic() - self.started
            print(f"{line}  [{elapsed:,.0f} s]", file=sys.stdout, flush=True)


@dg.logger(description="prints finished steps and `progress:` lines to the terminal")
def terminal_progress(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("aiwf_progress", level=logging.DEBUG)  # step events are DEBUG
    logger.addHandler(_TerminalHandler())
    return logger
