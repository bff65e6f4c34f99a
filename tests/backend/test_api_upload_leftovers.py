"""Temp files of uploads cut off by an API crash (DATA_DIR/tmp/upload-*.part) are removed at the
next start and by the periodic sweep, never while their upload is still in progress. Against a
real API process killed with SIGKILL mid-body."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import psutil
from servers import api_server, wait_until
from upload_files import nifti_bytes


def _start_upload(base: str, ds: int, name: str, body: bytes, send: int) -> socket.socket:
    url = httpx.URL(base)
    sock = socket.create_connection((url.host, url.port))
    sock.sendall((f"PUT /api/datasets/{ds}/files/{name} HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:send])
    return sock


def _parts(data: Path) -> list[Path]:
    return list((data / "tmp").glob("upload-*.part"))


def test_a_killed_api_leaves_no_upload_temp_file_after_restart(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    env = {"DATA_DIR": str(data), "REDIS_URL": redis_url, "STALE_UPLOAD_S": "0"}
    body = nifti_bytes((96, 96, 96), gz=False)  # 3.4 MiB
    with api_server(env) as (base, proc):
        ds = httpx.post(f"{base}/api/datasets", json={"name": "cut"}).json()["id"]
        sock = _start_upload(base, ds, "big.nii", body, 2 << 20)
        wait_until(lambda: any(p.stat().st_size >= 1 << 20 for p in _parts(data)), 10, "a part file")
        for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            p.kill()  # SIGKILL, every API process (one per core by default): no cleanup code runs
        proc.wait(10)
        sock.close()
    assert _parts(data), "the crash should have left the upload's temp file"
    with api_server(env) as (base, _proc):
        wait_until(lambda: not _parts(data), 10, "the start-up sweep")
        assert httpx.get(f"{base}/api/datasets/{ds}").json()["files"] == []
    assert not (data / "datasets" / str(ds) / "files" / "big.nii").exists()


def test_the_sweep_never_takes_the_file_of_an_upload_in_progress(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    env = {"DATA_DIR": str(data), "REDIS_URL": redis_url, "STALE_UPLOAD_S": "0", "HOUSEKEEPING_S": "0.1"}
    body = nifti_bytes((96, 96, 96), gz=False)
    with api_server(env) as (base, _proc):
        ds = httpx.post(f"{base}/api/datasets", json={"name": "slow"}).json()["id"]
        with _start_upload(base, ds, "slow.nii", body, 2 << 20) as sock:
            wait_until(lambda: bool(_parts(data)), 10, "a part file")
            time.sleep(1.0)  # ten sweeps while the client pauses mid-body
            assert _parts(data), "a sweep removed the temp file of an upload in progress"
            sock.sendall(body[2 << 20:])
            reply = sock.recv(4096).decode("latin1")
        assert reply.startswith("HTTP/1.1 201"), reply
        [f] = httpx.get(f"{base}/api/datasets/{ds}").json()["files"]
        assert f["path"] == "slow.nii" and f["size_bytes"] == len(body)
    assert not _parts(data)
