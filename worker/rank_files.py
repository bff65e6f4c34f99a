"""The folder a multi-process job's child shares with its ranks: the run spec it wrote for them
and one line per failed rank (so the child can name the rank that failed first)."""
from __future__ import annotations

from pathlib import Path

SPEC_FILE = "spec.pkl"
PEER_LOST_PREFIX = "peer lost: "  # the line of a rank that stopped because another one died
AGENT_ERROR_FILE = "agent.error"  # the agent's line for the rank that failed first (exit code, signal)


def error_file(job_dir: Path, rank: int) -> Path:
    return job_dir / f"rank{rank}.error"
