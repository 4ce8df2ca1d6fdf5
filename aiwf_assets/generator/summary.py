"""What a generation run produced, for the CLI and for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


@dataclass
class GenerationSummary:
    home: Path
    seed: int
    start: date
    days: int
    scale: float
    n_customers: int
    n_products: int
    n_stores: int
    files: list[Path] = field(default_factory=list)
    order_lines: dict[str, int] = field(default_factory=dict)  # generated, per order channel
    n_orders: dict[str, int] = field(default_factory=dict)
    n_tickets: int = 0
    n_sessions: int = 0
    churn_cutoff: date | None = None
    faults_applied: dict[str, list[str]] = field(default_factory=dict)  # fault -> descriptions

    @property
    def total_order_lines(self) -> int:
        return sum(self.order_lines.values())

    def to_text(self) -> str:
        end = date.fromordinal(self.start.toordinal() + self.days - 1)
        lines = [
            f"generated {self.start.isoformat()} .. {end.isoformat()} ({self.days} days) "
            f"into {self.home} (seed {self.seed}, scale {self.scale:g})",
            f"  customers {self.n_customers:,}  products {self.n_products:,}  "
            f"stores {self.n_stores:,}",
            "  order lines "
            + "  ".join(f"{ch} {n:,}" for ch, n in self.order_lines.items())
            + f"  total {self.total_order_lines:,}",
            "  orders " + "  ".join(f"{ch} {n:,}" for ch, n in self.n_orders.items()),
            f"  tickets {self.n_tickets:,}  sessions {self.n_sessions:,}",
            f"  churn cutoff {self.churn_cutoff.isoformat() if self.churn_cutoff else 'none'}",
            f"  files written {len(self.files)}",
        ]
        if self.faults_applied:
            lines.append("  faults:")
            for fault, items in self.faults_applied.items():
                lines.append(f"    {fault}:")
                lines.extend(f"      {item}" for item in items)
        else:
            lines.append("  faults: none")
        return "\n".join(lines)
