"""Fixtures: one Redis, one API (`python -m backend`) and one DATA_DIR + SQLite file for the
worker tests; each test starts the real `python -m worker` processes it needs."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # worker_*.py, without making tests a package

import worker_helpers as helpers  # noqa: E402
from worker_servers import ApiServer, WorkerProcess, base_env, redis_server  # noqa: E402


class Stack:
    def __init__(self, root: Path, redis_url: str) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.redis_url = redis_url
        self.env = base_env(self.data_dir, redis_url, WORKER_CANCEL_GRACE_S="10",
                            WORKER_HEARTBEAT_INTERVAL_S="0.5")
        self.api = ApiServer(self.env, root)
        self.client = self.api.client
        self.base_url = self.api.base_url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with contextlib.ExitStack() as es:
        url = es.enter_context(redis_server())
        s = Stack(tmp_path_factory.mktemp("worker-stack"), url)
        es.callback(s.api.stop)
        yield s


@pytest.fixture
def start_worker(stack: Stack, request: pytest.FixtureRequest):
    """start_worker(name, **env) -> a live WorkerProcess; all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(name: str, wait: bool = True, **env: str) -> WorkerProcess:
        w = WorkerProcess(f"{request.node.name[:40]}-{name}", {**stack.env, **env}, stack.root)
        started.append(w)
        if wait:
            w.wait_live(stack.client)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="session")
def dataset_2d(stack: Stack) -> int:
    return helpers.upload_dataset(stack.client, "shapes-2d",
                                  [(f"shapes/img{i:02d}.png", helpers.png_bytes(i)) for i in range(8)])


@pytest.fixture(scope="session")
def dataset_3d(stack: Stack) -> int:
    return helpers.upload_dataset(stack.client, "blobs-3d",
                                  [(f"vols/v{i}.nii.gz", helpers.nifti_bytes(i)) for i in range(4)])
