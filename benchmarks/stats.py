"""Pure helpers: summaries, ratios, formatting and /proc parsing. No I/O except `read_*`."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spread:
    """min / median / max of repeated measurements."""

    min: float
    median: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        data = sorted(values)
        if not data:
            raise ValueError("a spread needs at least one value")
        return cls(data[0], statistics.median(data), data[-1], len(data))

    def fmt(self, unit: str = "s", digits: int = 2) -> str:
        """`1.23 s` for one value, `1.23 s (1.10–1.40, n=3)` for several."""
        median = f"{self.median:.{digits}f} {unit}".rstrip()
        if self.n == 1:
            return median
        return f"{median} ({self.min:.{digits}f}–{self.max:.{digits}f}, n={self.n})"


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else None


def fmt_ratio(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}×"


def fmt_bytes(n: float) -> str:
    """Binary units: 1536 -> `1.5 KiB`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_rate(rows: float, seconds: float) -> str:
    """Rows per second, rounded to thousands: `1,234k rows/s`."""
    if seconds <= 0:
        return "n/a"
    return f"{rows / seconds / 1000:,.0f}k rows/s"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, header has {len(header)}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def verdict(value: float | None, target: float, *, at_most: bool) -> str:
    """`met` / `missed` against a target, with the margin as a factor."""
    if value is None:
        return "not measured"
    ok = value <= target if at_most else value >= target
    margin = (target / value if at_most else value / target) if value else float("inf")
    return f"{'met' if ok else 'missed'} ({margin:.2f}× the target)"


def parse_cpuinfo(text: str) -> str:
    """The CPU model name from /proc/cpuinfo text (`unknown` when absent)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return "unknown"


def parse_meminfo(text: str) -> int:
    """MemTotal in bytes from /proc/meminfo text."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024
    raise ValueError("MemTotal not found in meminfo")


def read_machine() -> dict[str, object]:
    import os

    return {
        "nproc": os.cpu_count(),
        "cpu_model": parse_cpuinfo(Path("/proc/cpuinfo").read_text()),
        "memory_bytes": parse_meminfo(Path("/proc/meminfo").read_text()),
    }


def overhead_share(step_seconds: float, run_seconds: float) -> float | None:
    """Share of wall time spent outside step bodies (clamped to [0, 1])."""
    if run_seconds <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - step_seconds / run_seconds))


def parse_scales(text: str) -> list[float]:
    """`1,10,100` -> [1.0, 10.0, 100.0]; each must be positive."""
    scales = [float(s) for s in text.split(",") if s.strip()]
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers separated by commas, got {text!r}")
    return scales


def parse_day_caps(text: str) -> dict[float, int]:
    """`100:10,10:30` -> {100.0: 10, 10.0: 30}: days used at a scale instead of --days."""
    caps: dict[float, int] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        scale, sep, days = item.partition(":")
        if not sep or int(days) <= 0:
            raise ValueError(f"day cap must look like SCALE:DAYS, got {item!r}")
        caps[float(scale)] = int(days)
    return caps


def scale_label(scale: float) -> str:
    return f"{scale:g}"


PACKAGES = (
    "aiwf_assets", "benchmarks", "dagster", "polars", "pyarrow", "duckdb", "pandera",
    "pandas", "sqlalchemy", "pydantic", "yaml", "numpy",
)


def package_of(file_path: str) -> str:
    """Which package a profiled frame's file belongs to (`python` for the standard
    library, `native` for frames without a file, `other` for the rest)."""
    if not file_path or file_path.startswith("<"):
        return "native"
    parts = file_path.replace("\\", "/").split("/")
    if "site-packages" in parts:
        name = parts[parts.index("site-packages") + 1]
        return next((p for p in PACKAGES if name == p or name.startswith(f"{p}_")), "other")
    for package in PACKAGES:
        if package in parts:
            return package
    return "python" if any(p.startswith("python3") for p in parts) else "other"
