"""The real stack the fault scenarios break: a Redis this module owns (it can be SIGKILLed and
started again on the same port), the API (`python -m backend`), a tiny 2D dataset, and CPU
workers (`python -m worker`) that a scenario SIGKILLs and restarts under the same name, as a
container restart policy would (a container's worker keeps its name across restarts).

No pytest imports: the tests (tests/faults/test_*.py) and bench/faults.py share it.
"""
from __future__ import annotations

import datetime as dt
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "worker"))  # the worker tests' real-process helpers

import worker_helpers as helpers  # noqa: E402
from worker_servers import ApiServer, WorkerProcess, base_env  # noqa: E402  (also puts tests/backend on the path)
from servers import free_port, redis_server_binary, stop_process, wait_for_port  # noqa: E402


class RedisProcess:
    """A private redis-server on a fixed port, no persistence (as `make run`'s): ``kill`` is a
    SIGKILL, ``start`` brings up an empty one on the same port (queued messages are gone)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="redis-faults-")
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Kill:
    """One SIGKILL of a worker: when (time.time()), whom, the job it held, and when its engine
    children were seen gone (None: some outlived it by the wait; ``survivors`` says which)."""

    at: float
    worker: str
    job_id: Optional[int] = None
    children_gone_at: Optional[float] = None
    survivors: list[str] = field(default_factory=list)
    _children: list = field(default_factory=list, repr=False)

    def wait_children_gone(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            alive = [p for p in self._children if _alive(p)]
            if not alive:
                self.children_gone_at = time.time()
                return
            if time.monotonic() > deadline:
                self.survivors = [f"pid {p.pid}: {' '.join(_cmdline(p))[-80:]}" for p in alive]
                return
            time.sleep(0.02)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return ["?"]


class Worker:
    """A worker slot: one `python -m worker` at a time under one name, killed and restarted."""

    def __init__(self, name: str, env: dict[str, str], root: Path) -> None:
        self.name, self.env, self.root = name, env, root
        self.incarnations = 0
        self.started_at = 0.0  # time.time() of the current incarnation's start
        self.process: Optional[WorkerProcess] = None

    def start(self, **env: str) -> WorkerProcess:
        self.incarnations += 1
        logs = self.root / f"{self.name}.{self.incarnations}"  # one log per incarnation
        logs.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        self.process = WorkerProcess(self.name, {**self.env, **env}, logs)
        return self.process

    def sigkill(self) -> Kill:
        """SIGKILL, no goodbye; the caller waits for its children (``Kill.wait_children_gone``)
        after reading what the database says at the moment of death."""
        assert self.process is not None
        try:
            children = self.process.children()
        except psutil.NoSuchProcess:
            children = []
        at = time.time()
        self.process.kill()
        return Kill(at=at, worker=self.name, _children=children)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def parse_time(value: Optional[str]) -> Optional[float]:
    """An API timestamp (ISO, UTC) as time.time()."""
    if not value:
        return None
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


@dataclass(frozen=True)
class Attempt:
    """A claim of a job as the database recorded it (seen by the watcher)."""

    job_id: int
    number: int  # jobs.attempts after the claim
    worker: str
    started_at: float


@dataclass
class Sighting:
    at: float
    status: str
    worker: Optional[str]
    attempts: int
    step: int


class JobWatch(threading.Thread):
    """Polls GET /api/jobs (every ``interval_s``) and keeps what a scenario needs: every claim
    (attempt number, worker, started_at) and the timeline of each job's row. API answers other
    than 200 (and exceptions) are counted as errors with their reason."""

    def __init__(self, base_url: str, job_ids: list[int], interval_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.job_ids = set(job_ids)
        self.interval_s = interval_s
        self.attempts: dict[tuple[int, int], Attempt] = {}
        self.timeline: dict[int, list[Sighting]] = {j: [] for j in job_ids}
        self.errors: list[str] = []
        self._client = httpx.Client(base_url=base_url, timeout=10)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.start()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                r = self._client.get("/api/jobs")
                if r.status_code != 200:
                    self.errors.append(f"GET /api/jobs {r.status_code}: {r.text[:200]}")
                else:
                    self._record(r.json(), time.time())
            except httpx.HTTPError as exc:
                self.errors.append(f"GET /api/jobs: {type(exc).__name__}: {exc}")
            self._halt.wait(self.interval_s)

    def _record(self, jobs: list[dict], now: float) -> None:
        with self._lock:
            for j in jobs:
                if j["id"] not in self.job_ids:
                    continue
                step = int((j.get("progress") or {}).get("step") or 0)
                self.timeline[j["id"]].append(Sighting(now, j["status"], j["worker"], j["attempts"], step))
                if j["status"] == "running" and j["worker"]:
                    key = (j["id"], j["attempts"])
                    self.attempts.setdefault(key, Attempt(j["id"], j["attempts"], j["worker"],
                                                          parse_time(j["started_at"]) or now))

    def latest(self, job_id: int) -> Optional[Sighting]:
        with self._lock:
            line = self.timeline[job_id]
            return line[-1] if line else None

    def running_on(self) -> dict[str, int]:
        """worker name -> the job the newest sightings show it running."""
        out: dict[str, int] = {}
        for job_id in self.job_ids:
            s = self.latest(job_id)
            if s is not None and s.status == "running" and s.worker:
                out[s.worker] = job_id
        return out

    def steps_this_attempt(self, job_id: int) -> int:
        """Steps the job's current attempt has trained so far, by its progress rows (a resumed
        run's first report moves the row back to its checkpoint's step)."""
        with self._lock:
            line = self.timeline[job_id]
            if not line:
                return 0
            now = line[-1]
            steps = [s.step for s in line if s.attempts == now.attempts and s.status == "running"]
        return now.step - min(steps) if steps else 0

    def claims(self, job_id: int) -> list[Attempt]:
        with self._lock:
            return sorted((a for a in self.attempts.values() if a.job_id == job_id), key=lambda a: a.number)

    def still_running_after(self, kill: Kill) -> Optional[float]:
        """Seconds the killed worker's job still showed ``running`` on that worker after the
        kill (until re-queued or re-claimed); None when the kill held no job."""
        if kill.job_id is None:
            return None
        with self._lock:
            line = [s for s in self.timeline[kill.job_id] if s.at >= kill.at]
        held: Optional[int] = None
        for s in line:
            if held is None and s.status == "running" and s.worker == kill.worker:
                held = s.attempts
            if s.status != "running" or s.worker != kill.worker or (held is not None and s.attempts != held):
                return s.at - kill.at
        return (line[-1].at - kill.at) if line else 0.0

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self._client.close()


class FaultStack:
    """Redis (ours), the API and a committed 2D dataset of 8 tiny PNGs; workers on demand.

    ``heartbeat_timeout_s`` is WORKER_HEARTBEAT_TIMEOUT_S for API and workers: how long a
    SIGKILLed worker's job stays ``running`` before it is re-queued."""

    def __init__(self, root: Path, heartbeat_timeout_s: float = 2.0, **env: str) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.redis = RedisProcess()
        interval = min(1.0, heartbeat_timeout_s / 4)
        self.env = base_env(self.data_dir, self.redis.url,
                            WORKER_HEARTBEAT_TIMEOUT_S=str(heartbeat_timeout_s),
                            WORKER_HEARTBEAT_INTERVAL_S=str(interval), WEB_CONCURRENCY="1",
                            WORKER_CANCEL_GRACE_S="5", **env)
        self.workers: dict[str, Worker] = {}
        try:
            self.api = ApiServer(self.env, self.root)
        except BaseException:
            self.redis.stop()
            raise
        self.client = self.api.client
        self.dataset_id = helpers.upload_dataset(
            self.client, "faults-2d", [(f"shapes/img{i:02d}.png", helpers.png_bytes(i)) for i in range(8)])

    def worker(self, name: str) -> Worker:
        if name not in self.workers:
            self.workers[name] = Worker(name, self.env, self.root / "workers")
        return self.workers[name]

    def wait_live(self, names: list[str], timeout: float = 120) -> None:
        for name in names:
            self.workers[name].process.wait_live(self.client, timeout)

    def create_train_job(self, **model: Any) -> int:
        cfg = helpers.config(helpers.CONFIG_2D, **model)
        return helpers.create_train_job(self.client, self.dataset_id, cfg)["id"]

    def run_dir(self, job_id: int) -> Path:
        return self.data_dir / "runs" / str(job_id)

    def wait_jobs(self, job_ids: list[int], timeout: float) -> dict[int, dict]:
        return {j: helpers.wait_job(self.client, j, timeout=timeout) for j in job_ids}

    def stop_workers(self) -> None:
        for w in self.workers.values():
            w.stop()
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        self.api.stop()
        self.redis.stop()


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:g}s")
        time.sleep(every)


__all__ = ["Attempt", "FaultStack", "JobWatch", "Kill", "RedisProcess", "Worker",
           "helpers", "parse_time", "wait_for"]
