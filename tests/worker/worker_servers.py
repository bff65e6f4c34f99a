"""Real processes for the worker tests: the API (`python -m backend`) and workers
(`python -m worker`), each a subprocess with its own log file; Redis comes from the backend
tests' ``redis_server``. Named worker_servers so it never shadows tests/backend/servers.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


# The backend tests' helpers (a throwaway Redis, free ports); one copy of that logic.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from servers import free_port, redis_server, stop_process, wait_until  # noqa: E402


def base_env(data_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "DATABASE_URL", "API_TOKEN"))}
    env.update(DATA_DIR=str(data_dir), REDIS_URL=redis_url, PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               WORKER_HEARTBEAT_TIMEOUT_S="3", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


class ApiServer:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "api.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "backend"], cwd=REPO,
                                     env={**env, "HOST": "127.0.0.1", "PORT": str(self.port)},
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        wait_until(lambda: self.client.get("/api/health").status_code == 200, 60, "the API", self.proc, self.log)

    def stop(self) -> None:
        self.client.close()
        stop_process(self.proc)


class WorkerProcess:
    """One `python -m worker`; its log goes to <workdir>/<name>.log."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"worker-{name}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO,
                                     env={**env, "WORKER_NAME": name},
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_live(self, client: httpx.Client, timeout: float = 60) -> None:
        """Until GET /api/workers lists this worker (it heartbeats and consumes)."""
        wait_until(lambda: self.name in {w["name"] for w in client.get("/api/workers").json()},
              timeout, f"worker {self.name}", self.proc, self.log)

    def children(self) -> list:
        import psutil

        return psutil.Process(self.pid).children(recursive=True)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        stop_process(self.proc, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")
