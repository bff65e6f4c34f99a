"""One scenario's outcome, as the tests assert it and bench/faults.py prints it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

COLUMNS = ("scenario", "jobs finished", "kills", "redone steps (max per kill)",
           "max s a dead job stayed running", "errors")


@dataclass
class ScenarioReport:
    """``problems``: broken invariants (a job on two workers at once, a gap in the metric steps,
    more than a checkpoint interval redone); ``errors``: API errors and jobs that did not succeed."""

    scenario: str
    jobs: int = 0
    finished: int = 0  # ended ``succeeded``
    kills: int = 0
    redone_steps: list[int] = field(default_factory=list)  # one entry per kill that hit a running job
    dead_running_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts for the reader, not faults

    @property
    def max_dead_running_s(self) -> Optional[float]:
        return max(self.dead_running_s) if self.dead_running_s else None

    def row(self) -> tuple[str, ...]:
        redone = (f"{sum(self.redone_steps)} ({max(self.redone_steps)})" if self.redone_steps else "-")
        dead = "-" if self.max_dead_running_s is None else f"{self.max_dead_running_s:.1f}"
        errors = str(len(self.errors) + len(self.problems))
        return (self.scenario, f"{self.finished}/{self.jobs}", str(self.kills), redone, dead, errors)

    def details(self) -> str:
        lines = [f"{self.scenario}:"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def markdown_table(reports: list[ScenarioReport]) -> str:
    rows = [COLUMNS, tuple("---" for _ in COLUMNS)] + [r.row() for r in reports]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)
