"""API benchmark: upload throughput (server RSS) and GET /api/jobs latency under concurrency.

Starts a real Redis and a real ``python -m backend`` on loopback with a throwaway DATA_DIR, then
1. uploads large files (uncompressed .nii, .nii.gz that the server inflates to validate) and
   reports MB/s and the server's peak RSS over its idle RSS (targets: >= 200 MB/s, RSS flat);
2. seeds jobs and runs N concurrent clients doing GET /api/jobs; reports p50/p95/p99 latency
   (target p95 < 50 ms with 50 clients).

Usage: PYTHONPATH=. .venv/bin/python bench/api.py [--file-mb 512] [--files 3] [--clients 50]
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "backend"))
from servers import api_server, redis_server  # noqa: E402

CHUNK = 1 << 20


def nifti_header(shape: tuple[int, ...]) -> bytes:
    img = nib.Nifti1Image(np.zeros((1, 1, 1), np.float32), np.eye(4))
    hdr = img.header.copy()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + b"\x00" * 4


def raw_body(shape: tuple[int, ...]):
    """Header + pseudo-random float32 voxels, generated on the fly (client memory flat too)."""
    yield nifti_header(shape)
    remaining = int(np.prod(shape)) * 4
    block = np.random.default_rng(0).random(CHUNK // 4, dtype=np.float32).tobytes()
    while remaining:
        n = min(remaining, CHUNK)
        yield block[:n]
        remaining -= n


def gz_file(shape: tuple[int, ...], path: Path) -> int:
    """A CT-like int16 volume (smooth anatomy-ish field + noise), gzip level 6 like nibabel's
    default; compresses about as well as real scans do (~3x)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = 352
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:shape[1], 0:shape[2]].astype(np.float32)
    with open(path, "wb") as fh:
        fh.write(comp.compress(hdr.binaryblock + b"\x00" * 4))
        cy, cx = shape[1] / 2, shape[2] / 2
        body = ((y - cy) / (0.4 * shape[1])) ** 2 + ((x - cx) / (0.45 * shape[2])) ** 2 < 1
        for z in range(shape[0]):
            field = 300 * np.sin(x / 23 + z / 40) * np.cos(y / 31) + 40 + rng.normal(0, 6, x.shape)
            plane = np.where(body, np.round(field), -1024)  # air around the body, as in a CT
            fh.write(comp.compress(plane.astype("<i2").tobytes()))
        fh.write(comp.flush())
    return path.stat().st_size


class RSSWatcher:
    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def __enter__(self) -> "RSSWatcher":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def upload(client: httpx.Client, base: str, ds: int, name: str, body, size: int) -> float:
    t0 = time.perf_counter()
    r = client.put(f"{base}/api/datasets/{ds}/files/{name}", content=body,
                   headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
    dt = time.perf_counter() - t0
    if r.status_code != 201:
        raise SystemExit(f"upload {name} failed: {r.status_code} {r.text}")
    return dt


def bench_uploads(base: str, pid: int, file_mb: int, files: int, tmp: Path) -> list[tuple[str, ...]]:
    side = round((file_mb * 2**20 / 4) ** (1 / 3))
    shape = (side, side, side)
    raw_size = 352 + side**3 * 4
    rows = []
    with httpx.Client(timeout=600) as c:
        ds = c.post(f"{base}/api/datasets", json={"name": "bench"}).json()["id"]
        c.put(f"{base}/api/datasets/{ds}/files/warm.nii", content=b"".join(raw_body((8, 8, 8))))
        idle = psutil.Process(pid).memory_info().rss
        with RSSWatcher(pid) as w:
            times = [upload(c, base, ds, f"raw{i}.nii", raw_body(shape), raw_size) for i in range(files)]
        total = raw_size * files
        rows.append((f".nii {side}^3 f32 x{files}", f"{raw_size / 2**20:.0f}", f"{total / sum(times) / 1e6:.0f}",
                     f"{idle / 2**20:.0f}", f"{w.peak / 2**20:.0f}", f"{(w.peak - idle) / 2**20:+.0f}"))
        gz_path = tmp / "big.nii.gz"
        gz_size = gz_file(shape, gz_path)
        gz_raw = 352 + side**3 * 2

        def gz_body():
            with open(gz_path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk

        idle = psutil.Process(pid).memory_info().rss
        with RSSWatcher(pid) as w:
            times = [upload(c, base, ds, f"gz{i}.nii.gz", gz_body(), gz_size) for i in range(files)]
        rows.append((f".nii.gz {side}^3 int16 CT-like (inflates to {gz_raw / 2**20:.0f} MiB) x{files}",
                     f"{gz_size / 2**20:.0f}",
                     f"{gz_size * files / sum(times) / 1e6:.0f}", f"{idle / 2**20:.0f}", f"{w.peak / 2**20:.0f}",
                     f"{(w.peak - idle) / 2**20:+.0f}"))
        c.delete(f"{base}/api/datasets/{ds}")
    return rows


def seed_jobs(data_dir: Path, redis_url: str, n: int) -> None:
    from backend.db import open_database
    from backend.models import Job
    from backend.settings import Settings

    from ddpm.config import config_to_dict, load_config

    factory = open_database(Settings(data_dir=data_dir, redis_url=redis_url))
    # a full resolved config, as the API stores it (~1.5 KB of JSON per job)
    cfg = config_to_dict(load_config({"is_3d": True, "dataset": {"name": "volume3d", "path": str(data_dir)},
                                      "experiment_path": str(data_dir / "runs")}))
    with factory() as s:
        for i in range(n):
            s.add(Job(kind="train", status=["queued", "running", "succeeded"][i % 3], config=cfg, total=10000,
                      step=i * 10, last_metrics={"step": i * 10, "loss": 0.1, "lr": 1e-4}))
        s.commit()


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 GET client on asyncio streams: the load generator shares the
    machine with the server, so it must cost far less CPU per request than httpx does."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept-Encoding: gzip\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def bench_latency(base: str, clients: int, per_client: int, interval: float) -> dict[str, float]:
    """``clients`` connections, each doing ``per_client`` GETs; with ``interval`` > 0 each client
    waits that long between its requests (polling browsers), with 0 it fires back to back."""
    url = httpx.URL(base)
    conns = [RawHTTP(url.host, url.port) for _ in range(clients)]
    await asyncio.gather(*(c.connect() for c in conns))
    await asyncio.gather(*(c.get("/api/jobs") for c in conns))  # warm
    lat: list[float] = []

    async def one(k: int, conn: RawHTTP) -> None:
        if interval:
            await asyncio.sleep(interval * k / clients)  # spread the clients over the interval
        for _ in range(per_client):
            t0 = time.perf_counter()
            status, _body = await conn.get("/api/jobs")
            took = time.perf_counter() - t0
            lat.append(took)
            assert status == 200
            if interval:
                await asyncio.sleep(max(0.0, interval - took))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k, c) for k, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(c.close() for c in conns))
    q = statistics.quantiles(lat, n=100)
    return {"n": len(lat), "p50": q[49] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3, "rps": len(lat) / wall}


async def bench_polling(base: str, clients: int, duration: float, job_ids: list[int]) -> dict[str, float]:
    """``clients`` connections polling without pause for ``duration`` seconds, alternating
    GET /api/jobs and GET /api/jobs/{id} (a jobs page and a job page). Errors are counted, not fatal."""
    url = httpx.URL(base)
    conns = [RawHTTP(url.host, url.port) for _ in range(clients)]
    await asyncio.gather(*(c.connect() for c in conns))
    lat: list[float] = []
    errors = 0

    async def one(k: int, conn: RawHTTP) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < end:
            path = "/api/jobs" if i % 2 == 0 else f"/api/jobs/{job_ids[i % len(job_ids)]}"
            i += 1
            t0 = time.perf_counter()
            try:
                status, _body = await conn.get(path)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                await conn.connect()
                continue
            lat.append(time.perf_counter() - t0)
            errors += status != 200

    t0 = time.perf_counter()
    end = t0 + duration
    await asyncio.gather(*(one(k, c) for k, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(c.close() for c in conns))
    q = statistics.quantiles(lat, n=100)
    return {"n": len(lat), "p50": q[49] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3, "rps": len(lat) / wall,
            "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file-mb", type=int, default=512)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20, help="per client")
    ap.add_argument("--jobs", type=int, default=50, help="jobs in the list")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between one client's polls")
    ap.add_argument("--skip-uploads", action="store_true")
    ap.add_argument("--web-concurrency", type=int, default=None,
                    help="API processes (WEB_CONCURRENCY); default: the server's own default")
    ap.add_argument("--poll-s", type=float, default=0.0,
                    help="instead of the latency table: every client polls GET /api/jobs and "
                         "GET /api/jobs/{id} without pause for this many seconds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmpdir, redis_server() as redis_url:
        tmp = Path(tmpdir)
        data_dir = tmp / "data"
        env = {"DATA_DIR": str(data_dir), "REDIS_URL": redis_url, "MAX_FILE_BYTES": str(8 << 30)}
        if args.web_concurrency is not None:
            env["WEB_CONCURRENCY"] = str(args.web_concurrency)
        os.environ.pop("WEB_CONCURRENCY", None)
        os.environ.pop("API_TOKEN", None)
        with api_server(env, cwd=str(REPO)) as (base, proc):
            if not args.skip_uploads:
                rows = bench_uploads(base, proc.pid, args.file_mb, args.files, tmp)
                print("\nUpload throughput (loopback, one file at a time; RSS of the API process)\n")
                print("| upload | MiB each | MB/s | RSS idle MiB | RSS peak MiB | delta |")
                print("|---|---|---|---|---|---|")
                for r in rows:
                    print("| " + " | ".join(r) + " |")
            seed_jobs(data_dir, redis_url, args.jobs)
            if args.poll_s:
                time.sleep(2.0)  # every API process up (they start one after another)
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                cpu0 = sum(sum(p.cpu_times()[:2]) for p in tree)
                res = asyncio.run(bench_polling(base, args.clients, args.poll_s, list(range(1, args.jobs + 1))))
                cpu_ms = (sum(sum(p.cpu_times()[:2]) for p in tree) - cpu0) / res["n"] * 1e3
                print(f"\n{args.clients} clients polling GET /api/jobs ({args.jobs} jobs) and GET /api/jobs/{{id}} "
                      f"without pause for {args.poll_s:.0f} s, WEB_CONCURRENCY={env.get('WEB_CONCURRENCY', 'default')}\n")
                print("| API processes | requests | errors | p50 ms | p95 ms | p99 ms | req/s | API CPU ms/req |")
                print("|---|---|---|---|---|---|---|---|")
                print(f"| {env.get('WEB_CONCURRENCY', 'default')} | {res['n']} | {res['errors']} | {res['p50']:.1f} "
                      f"| {res['p95']:.1f} | {res['p99']:.1f} | {res['rps']:.0f} | {cpu_ms:.2f} |")
                return
            print(f"\nGET /api/jobs ({args.jobs} jobs in the list), {args.clients} concurrent clients\n")
            print("| load | requests | p50 ms | p95 ms | p99 ms | req/s |")
            print("|---|---|---|---|---|---|")
            for interval, label in ((args.interval, f"each client polls every {args.interval} s"),
                                    (0.0, "back to back (saturation)")):
                res = asyncio.run(bench_latency(base, args.clients, args.requests, interval))
                print(f"| {label} | {res['n']} | {res['p50']:.1f} | {res['p95']:.1f} | {res['p99']:.1f} "
                      f"| {res['rps']:.0f} |")


if __name__ == "__main__":
    main()
