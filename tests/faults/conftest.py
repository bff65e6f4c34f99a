"""The fault scenarios (issue 16) as tests: one real stack (a Redis these tests own, the API,
a tiny dataset) for the session; each test starts, SIGKILLs and restarts its own workers.
The scenario code lives in modules without pytest (storm.py, redis_kill.py, kill_instants.py)
so that bench/faults.py runs the same scenarios at full size."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the scenario modules, without making tests a package

from fault_stack import FaultStack  # noqa: E402


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    stack = FaultStack(tmp_path_factory.mktemp("faults"), heartbeat_timeout_s=3.0)
    try:
        yield stack
    finally:
        stack.stop()
