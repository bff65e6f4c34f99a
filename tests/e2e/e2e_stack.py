"""The real stack for browser tests: Redis, `python -m backend` (serving frontend/dist) and
`python -m worker`, on free ports with a temporary DATA_DIR; plus the frontend build and the
Chromium launch options. No pytest imports, so a script can start the same stack by hand."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

import httpx

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "frontend"
ARTIFACTS = REPO / "test-artifacts" / "e2e"

# One copy of the Redis/port helpers: the backend tests' servers.py.
sys.path.insert(0, str(REPO / "tests" / "backend"))
from servers import free_port, redis_server, stop_process, wait_until  # noqa: E402

CHROMIUM_ARGS = [
    "--use-angle=swiftshader",  # WebGL2 in software: NiiVue renders without a GPU
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Debian's chromium is not on PATH (apt-get install chromium); "
                           "these tests never download a browser")
    return path


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for p in paths:
        if p.is_file():
            newest = max(newest, p.stat().st_mtime)
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and not f.name.endswith((".test.ts", ".test.tsx")):  # unit tests are not built
                    newest = max(newest, f.stat().st_mtime)
    return newest


def ensure_frontend_built() -> Path:
    """frontend/dist, rebuilt (npm ci && npm run build) when missing or older than its sources."""
    dist = FRONTEND / "dist"
    index = dist / "index.html"
    sources = [FRONTEND / "src", FRONTEND / "index.html", FRONTEND / "package.json",
               FRONTEND / "package-lock.json", FRONTEND / "vite.config.ts"]
    if index.is_file() and index.stat().st_mtime >= _newest_mtime(sources):
        return dist
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeError("frontend/dist is missing or stale and npm is not installed")
    if not (FRONTEND / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True)
    return dist


class Stack:
    """API + worker processes over one DATA_DIR and Redis; logs under ``root``."""

    def __init__(self, root: Path, redis_url: str, api_token: Optional[str] = None, worker: bool = True) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.token = api_token
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WORKER_", "DATABASE_URL", "API_TOKEN", "FRONTEND_DIR"))}
        env.update(DATA_DIR=str(self.data_dir), REDIS_URL=redis_url, PYTHONPATH=str(REPO),
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   CUDA_VISIBLE_DEVICES="", WORKER_HEARTBEAT_INTERVAL_S="1")
        if api_token:
            env["API_TOKEN"] = api_token
        self.env = env
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_log = root / "api.log"
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self.client = httpx.Client(base_url=self.base_url, timeout=30, headers=headers)
        self.api = self._start_api()
        self.worker_log = root / "worker.log"
        self.worker: Optional[subprocess.Popen] = None
        if worker:
            self.worker = self._spawn([sys.executable, "-m", "worker"], {"WORKER_NAME": "e2e"}, self.worker_log)
            wait_until(lambda: any(w["name"] == "e2e" for w in self.client.get("/api/workers").json()),
                       90, "the worker", self.worker, self.worker_log)

    def _start_api(self) -> subprocess.Popen:
        api = self._spawn([sys.executable, "-m", "backend"], {"HOST": "127.0.0.1", "PORT": str(self.port)},
                          self.api_log)
        wait_until(lambda: self.client.get("/api/health").status_code == 200, 60, "the API", api, self.api_log)
        return api

    def restart_api(self) -> None:
        """Stop the API and start it again on the same port (workers and Redis keep running)."""
        stop_process(self.api)
        self.procs.remove(self.api)
        self.api = self._start_api()

    def _spawn(self, argv: list[str], extra: dict[str, str], log: Path) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=REPO, env={**self.env, **extra},
                                stdout=open(log, "a"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self.client.close()
        for p in reversed(self.procs):
            stop_process(p)

    def logs(self) -> str:
        out = []
        for log in (self.api_log, self.worker_log):
            if log.exists():
                out.append(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


@contextlib.contextmanager
def running_stack(root: Path, **kw) -> Iterator[Stack]:
    with redis_server() as redis_url:
        s = Stack(root, redis_url, **kw)
        try:
            yield s
        finally:
            s.close()
