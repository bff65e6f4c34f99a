"""`make run` and `make stop` as a user runs them: the real scripts, Redis, API and worker.

`make stop` ends the run on purpose, so the run must say so, not report a crash.
"""
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_stop_ends_a_run_without_reporting_a_crash(tmp_path):
    port = _free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "RUN_DIR": str(tmp_path / "run"),
           "PORT": str(port), "REDIS_PORT": str(_free_port())}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    run = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the API of `make run` did not come up within 90 s")
        stop = subprocess.run(["bash", "scripts/stop.sh"], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=90)
        assert stop.returncode == 0 and "stopped" in stop.stdout
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            subprocess.run(["bash", "scripts/stop.sh"], cwd=ROOT, env=env, timeout=90)
            run.kill()
    assert "stopped by make stop" in out
    assert "unexpectedly" not in out
    assert run.returncode == 0
