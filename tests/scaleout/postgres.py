"""A throwaway PostgreSQL server for tests: initdb into a temp dir, listen on a free loopback port.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user that
Debian's package creates; as anyone else it runs as that user."""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from typing import Iterator


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: apt-get install postgresql (make test does it as root)")
    return found[-1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server(port: int) -> Iterator[str]:
    """Yields a SQLAlchemy URL (psycopg 3) of an empty database `ddpm` owned by user `ddpm`."""
    root = tempfile.mkdtemp(prefix="pg-test-")
    os.chmod(root, 0o755)
    data, sock = os.path.join(root, "data"), os.path.join(root, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(_as_server_user([_pg_bin("initdb"), "-D", data, "-U", "ddpm", "-A", "trust",
                                    "--no-sync", "-E", "UTF8"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.Popen(_as_server_user([_pg_bin("postgres"), "-D", data, "-p", str(port),
                                             "-k", sock, "-c", "listen_addresses=127.0.0.1",
                                             "-c", "fsync=off", "-c", "max_connections=100"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)
        subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ddpm", "ddpm"],
                       check=True)
        yield f"postgresql+psycopg://ddpm@127.0.0.1:{port}/ddpm"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
