"""Against a real API process (``python -m backend``) and a real Redis: Server-Sent Events
written by another process arrive within a second, Last-Event-ID resumes, pings flow; an upload
cut off mid-body leaves nothing behind."""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Iterator, Optional

import httpx
import pytest
from servers import api_server

from backend import reporting
from backend.db import make_engine, make_session_factory, open_database
from backend.leases import claim_job
from backend.models import Job
from backend.settings import Settings

TOKEN = "s3cret-token"


class SSEReader:
    """Reads an event stream in a thread; ``events`` gets (arrival time, event dict)."""

    def __init__(self, url: str, headers: Optional[dict] = None):
        self.events: "queue.Queue[tuple[float, dict]]" = queue.Queue()
        self.comments: list[str] = []
        self.status: Optional[int] = None
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=30.0))
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers or {}), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "no response from the events route"

    def _run(self, url: str, headers: dict) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as r:
                self.status = r.status_code
                self._ready.set()
                if r.status_code != 200:
                    return
                ev: dict = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line == "":
                        if ev:
                            ev["data"] = json.loads(ev["data"]) if "data" in ev else None
                            self.events.put((time.monotonic(), ev))
                        ev = {}
                    else:
                        key, _, value = line.partition(":")
                        ev[key] = value[1:] if value.startswith(" ") else value
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self._ready.set()

    def next(self, timeout: float = 5.0) -> tuple[float, dict]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_url) -> Iterator[tuple[str, Settings]]:
    """One API process for the module (each test makes its own job)."""
    data_dir = tmp_path_factory.mktemp("sse") / "data"
    settings = Settings(data_dir=data_dir, redis_url=redis_url)
    env = {"DATA_DIR": str(data_dir), "REDIS_URL": redis_url, "API_TOKEN": TOKEN, "SSE_PING_S": "0.5",
           "SSE_POLL_S": "0.25"}
    with api_server(env) as (base, _proc):
        yield base, settings


def _make_running_job(settings: Settings) -> int:
    factory = open_database(settings)
    with factory() as s:
        job = Job(kind="train", status="queued", config={}, total=100)
        s.add(job)
        s.commit()
        assert claim_job(s, job.id, "test-worker")
        return job.id


def test_events_from_another_process_arrive_within_a_second(live):
    base, settings = live
    jid = _make_running_job(settings)
    reader = SSEReader(f"{base}/api/jobs/{jid}/events", {"Authorization": f"Bearer {TOKEN}"})
    try:
        assert reader.status == 200
        _, snap = reader.next()
        assert snap["event"] == "status" and snap["data"]["status"] == "running" and snap["data"]["snapshot"]
        factory = open_database(settings)  # this test process is "the worker"
        latencies = []
        for step in range(1, 6):
            with factory() as s:
                written = time.monotonic()
                reporting.report_progress(s, jid, step, 100, it_s=10.0, eta_s=9.0)
            arrived, ev = reader.next(timeout=3)
            latencies.append(arrived - written)
            assert ev["event"] == "progress" and ev["data"]["step"] == step
            assert int(ev["id"]) > int(snap["id"])
        # a writer in another thread
        t = threading.Thread(target=lambda: reporting.add_metrics(factory(), jid, 6, {"train_loss": 0.1}))
        written = time.monotonic()
        t.start()
        arrived, ev = reader.next(timeout=3)
        latencies.append(arrived - written)
        assert ev["event"] == "metrics" and ev["data"] == {"step": 6, "train_loss": 0.1}
        assert max(latencies) < 1.0, latencies
    finally:
        reader.close()


def test_poll_fallback_without_redis_wakeup(live):
    base, settings = live
    jid = _make_running_job(settings)
    reader = SSEReader(f"{base}/api/jobs/{jid}/events?token={TOKEN}")  # EventSource-style auth
    try:
        reader.next()  # snapshot
        silent = make_session_factory(make_engine(settings.resolved_database_url), redis_url=None)
        with silent() as s:
            written = time.monotonic()
            reporting.report_progress(s, jid, 3, 100)
        arrived, ev = reader.next(timeout=3)
        assert ev["event"] == "progress" and arrived - written < 1.0
    finally:
        reader.close()


def test_resume_with_last_event_id_and_keepalive(live):
    base, settings = live
    jid = _make_running_job(settings)
    factory = open_database(settings)
    with factory() as s:
        for step in (1, 2, 3):
            reporting.report_progress(s, jid, step, 100)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    full = SSEReader(f"{base}/api/jobs/{jid}/events?after=0", headers)
    try:
        got = [full.next()[1] for _ in range(4)]  # claim's status + 3 progress
        assert [e["event"] for e in got] == ["status", "progress", "progress", "progress"]
        ids = [int(e["id"]) for e in got]
        assert ids == sorted(ids)
    finally:
        full.close()
    resumed = SSEReader(f"{base}/api/jobs/{jid}/events", {**headers, "Last-Event-ID": str(ids[1])})
    try:
        rest = [resumed.next()[1] for _ in range(2)]
        assert [int(e["id"]) for e in rest] == ids[2:]
        assert [e["data"]["step"] for e in rest] == [2, 3]
        with factory() as s:
            reporting.report_progress(s, jid, 4, 100)
        assert resumed.next()[1]["data"]["step"] == 4
        deadline = time.monotonic() + 3  # pings every 0.5 s: polled, not slept for
        while not any("ping" in c for c in resumed.comments) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("ping" in c for c in resumed.comments), resumed.comments
    finally:
        resumed.close()


def _read_until_end(url: str, headers: dict, within_s: float = 10.0) -> list[dict]:
    """Every event of a stream that must end on its own (pings keep lines coming meanwhile)."""
    events, ev, deadline = [], {}, time.monotonic() + within_s
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10.0, read=5.0)) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            assert time.monotonic() < deadline, f"the stream did not end; got {events}"
            if line == "" and ev:
                events.append({**ev, "data": json.loads(ev["data"])})
                ev = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(":")
                ev[key] = value.removeprefix(" ")
    return events


def test_the_stream_ends_after_the_terminal_status_and_reconnects_resume(live):
    """``curl -sN .../events`` returns when the job ends; EventSource's reconnect still works."""
    from backend import jobs

    base, settings = live
    jid = _make_running_job(settings)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{base}/api/jobs/{jid}/events"
    listening = SSEReader(url, headers)
    try:
        listening.next()  # snapshot: running
        factory = open_database(settings)
        with factory() as s:
            reporting.report_progress(s, jid, 100, 100)
            assert jobs.finish_job(s, jid, "test-worker", "cancelled")
        assert listening.next()[1]["event"] == "progress"
        _, last = listening.next()
        assert last["event"] == "status" and last["data"]["status"] == "cancelled"
        listening._thread.join(5)
        assert not listening._thread.is_alive(), "the stream stayed open after the job finished"
    finally:
        listening.close()
    # a finished job: its snapshot, then the end
    [snap] = _read_until_end(url, headers)
    assert snap["data"]["status"] == "cancelled" and snap["data"]["snapshot"]
    # the whole history replayed ends with the terminal status
    replay = _read_until_end(f"{url}?after=0", headers)
    assert replay[-1]["id"] == last["id"] and replay[-1]["data"]["status"] == "cancelled"
    # a browser reconnecting from the last event it saw: nothing new, the stream ends
    assert _read_until_end(url, {**headers, "Last-Event-ID": last["id"]}) == []
    # the job is resumed: the same reconnect gets the new status and stays open for what follows
    with factory() as s:
        jobs.resume(s, jid)
    reconnect = SSEReader(url, {**headers, "Last-Event-ID": last["id"]})
    try:
        _, ev = reconnect.next()
        assert ev["event"] == "status" and ev["data"]["status"] == "queued"
        time.sleep(1.0)
        assert reconnect._thread.is_alive()
    finally:
        reconnect.close()


def test_events_need_the_token_and_an_existing_job(live):
    base, settings = live
    jid = _make_running_job(settings)
    with httpx.Client(timeout=5) as c:
        assert c.get(f"{base}/api/jobs/{jid}/events").status_code == 401
        assert c.get(f"{base}/api/jobs/{jid}/events?token=wrong").status_code == 401
        assert c.get(f"{base}/api/jobs/999/events?token={TOKEN}").status_code == 404
        # ?token= is accepted on the events route only
        assert c.get(f"{base}/api/jobs/{jid}?token={TOKEN}").status_code == 401
        assert c.get(f"{base}/api/health").status_code == 200


def test_interrupted_upload_leaves_nothing(live):
    import socket

    from sqlalchemy import func, select

    from backend.models import DatasetFile

    base, settings = live
    url = httpx.URL(base)
    h = {"Authorization": f"Bearer {TOKEN}"}
    ds = httpx.post(f"{base}/api/datasets", json={"name": "cut"}, headers=h).json()["id"]
    tmp_dir = settings.resolved_data_dir / "tmp"
    before = set(tmp_dir.iterdir()) if tmp_dir.exists() else set()
    with socket.create_connection((url.host, url.port)) as sock:
        sock.sendall((f"PUT /api/datasets/{ds}/files/big.nii HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {TOKEN}\r\nContent-Length: {50 << 20}\r\n\r\n").encode())
        from upload_files import nifti_bytes
        sock.sendall(nifti_bytes((64, 64, 64), gz=False)[: 3 << 20])  # then hang up mid-body
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leftovers = set(tmp_dir.iterdir()) - before if tmp_dir.exists() else set()
        if not leftovers:
            break
        time.sleep(0.1)
    assert not leftovers
    assert not (settings.resolved_data_dir / "datasets" / str(ds) / "files" / "big.nii").exists()
    factory = open_database(settings)
    with factory() as s:
        assert s.scalar(select(func.count(DatasetFile.id)).where(DatasetFile.dataset_id == ds)) == 0


def test_the_live_route_gives_a_reloaded_page_the_loss_curve_phase_and_run_facts(live):
    """Issue 13 items 3 and 4: progress carries the training loss; GET /live returns the curve
    (bounded, evenly thinned over a long run, rewound on resume), the newest phase, the run facts."""
    base, settings = live
    jid = _make_running_job(settings)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    empty = httpx.get(f"{base}/api/jobs/{jid}/live", headers=auth)
    assert empty.status_code == 200 and empty.json() == {"loss": [], "phase": None, "run_info": None}
    factory = open_database(settings)
    with factory() as s:
        reporting.report_phase(s, jid, "preparing data", 3, 40)
        reporting.report_run_info(s, jid, {"device": "cpu", "precision": "bf16",
                                           "precision_reason": "auto: the CPU runs bf16 natively"})
        n = reporting.KEEP_PROGRESS_EVENTS + 2 * reporting.KEEP_OLDER_PROGRESS + 100
        for step in range(1, n + 1):
            reporting.report_progress(s, jid, step, n, it_s=10.0, eta_s=1.0, loss=1.0 / step)
        reporting.report_phase(s, jid, "training")
        for step in (n - 50, n - 49):  # resumed from a checkpoint 50 steps back
            reporting.report_progress(s, jid, step, n, loss=2.0)
    body = httpx.get(f"{base}/api/jobs/{jid}/live", headers=auth).json()
    steps = [p[0] for p in body["loss"]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert len(steps) <= reporting.KEEP_PROGRESS_EVENTS + reporting.KEEP_OLDER_PROGRESS + reporting.PRUNE_EVERY
    assert steps[0] <= 4, "the start of the run stays on the curve"
    assert steps[-2:] == [n - 50, n - 49] and body["loss"][-1][1] == 2.0  # the rewound points replace
    older = [s for s in steps if s < n - reporting.KEEP_PROGRESS_EVENTS]
    gaps = [b - a for a, b in zip(older, older[1:])]
    assert max(gaps) <= n // 50, "older points cover the run without holes"
    assert body["loss"][0][1] == 1.0 / steps[0]
    assert body["phase"] == {"phase": "training", "done": None, "total": None}
    assert body["run_info"]["precision"] == "bf16" and "natively" in body["run_info"]["precision_reason"]
    assert httpx.get(f"{base}/api/jobs/{jid + 999}/live", headers=auth).status_code == 404
    assert httpx.get(f"{base}/api/jobs/{jid}/live").status_code == 401
