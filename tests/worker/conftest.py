"""Fixtures: one Redis, one API (`python -m backend`) and one DATA_DIR + SQLite file for the
worker tests; each test starts the real `python -m worker` processes it needs, or asks for
``worker``: one plain worker shared by consecutive tests that need nothing else."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator, Optional

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # worker_*.py, without making tests a package

import worker_helpers as helpers  # noqa: E402
from worker_servers import ApiServer, WorkerProcess, base_env, redis_server  # noqa: E402

from backend.jobs import TERMINAL  # noqa: E402


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


class SharedWorker:
    """The worker behind the ``worker`` fixture. Starting a worker, and the spare job child that
    imports torch for its first job, costs seconds; consecutive tests that only need "a worker"
    share this one and find its spare child warm. It is stopped before every test that does not
    ask for it, so a test that starts its own workers never has this one take its jobs."""

    current: Optional[WorkerProcess] = None

    @classmethod
    def get(cls, stack: Stack) -> WorkerProcess:
        if cls.current is None or cls.current.proc.poll() is not None:
            cls.stop()
            cls.current = WorkerProcess("shared", stack.env, stack.root)
            cls.current.wait_live(stack.client)
        return cls.current

    @classmethod
    def stop(cls) -> None:
        if cls.current is not None:
            cls.current.stop()
            cls.current = None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with contextlib.ExitStack() as es:
        url = es.enter_context(redis_server())
        s = Stack(tmp_path_factory.mktemp("worker-stack"), url)
        es.callback(s.api.stop)
        es.callback(SharedWorker.stop)  # first: it needs the API and Redis to stop cleanly
        yield s


@pytest.fixture(autouse=True)
def _shared_worker_only_where_asked(request: pytest.FixtureRequest) -> None:
    if "worker" not in request.fixturenames:
        SharedWorker.stop()


@pytest.fixture
def worker(stack: Stack) -> Iterator[WorkerProcess]:
    """A live plain worker (the stack's settings), shared with the neighbouring tests that ask
    for it; kept for the next one only if this test left no job queued or running on it."""
    w = SharedWorker.get(stack)
    yield w
    busy = [j["id"] for j in stack.client.get("/api/jobs").json() if j["status"] not in TERMINAL]
    if busy:
        SharedWorker.stop()  # as a worker of its own would be: its job goes back to the queue


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
