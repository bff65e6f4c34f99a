"""Fixtures that more than one test folder uses: one throwaway PostgreSQL cluster for the
session (initdb and its start cost seconds), from which each user takes a database of its own."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent / "backend"))  # servers.py, without making tests a package

from servers import postgres_server  # noqa: E402


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """The cluster's URL; pass it to ``servers.fresh_database`` for an empty database."""
    with postgres_server() as url:
        yield url
