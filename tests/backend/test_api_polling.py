"""GET /api/jobs shares one answer among pollers for at most list_cache.TTL_S: a change made in
this process shows at once, one written by another process (a worker) within TTL_S; the gzip and
plain answers are the same JSON."""
from __future__ import annotations

import sqlite3
import time

from fastapi.testclient import TestClient

from backend import list_cache
from backend.settings import Settings


def test_a_write_from_another_process_shows_within_the_ttl(client: TestClient, settings: Settings) -> None:
    assert client.get("/api/jobs").json() == []
    # a write no Session of this process sees commit: as a worker's would be
    db = sqlite3.connect(settings.resolved_data_dir / "db.sqlite")
    db.execute("INSERT INTO jobs (kind, status, device, queue, config, step, total, cancel_requested, attempts, "
               "created_at) VALUES ('sample', 'queued', 'auto', 'cpu', '{}', 0, 1, 0, 0, '2026-01-01 00:00:00')")
    db.commit()
    db.close()
    time.sleep(list_cache.TTL_S)
    [job] = client.get("/api/jobs").json()
    assert job["status"] == "queued"
    # a change through the API (this process) is visible at once
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
    assert client.get("/api/jobs").json()[0]["status"] == "cancelled"


def test_gzip_and_plain_answers_agree(client: TestClient) -> None:
    client.post("/api/datasets", json={"name": "x"})
    plain = client.get("/api/jobs?limit=5", headers={"Accept-Encoding": "identity"})
    zipped = client.get("/api/jobs?limit=5", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()
