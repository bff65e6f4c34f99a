"""The persistence layer the worker builds on: migrations, WAL, the state machine, leases,
stale-job recovery, events with Redis wake-ups, storage helpers."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text, update

from backend import jobs
from backend.celery_client import recover_stale_jobs
from backend.db import open_database
from backend.events import channel, publish_event
from backend.leases import claim_job
from backend.leases import heartbeat, renew_lease, requeue_stale_jobs
from backend.worker_registry import live_workers
from backend.models import Event, Job, utcnow
from backend.pathsafe import UnsafePath, sanitize_relative_path
from backend.storage import Storage, atomic_writer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def factory(settings):
    return open_database(settings)


def new_job(factory, status="queued", **kw) -> int:
    with factory() as s:
        job = Job(kind="train", status=status, config={}, **kw)
        s.add(job)
        s.commit()
        return job.id


def age_lease(factory, job_id: int, seconds: float) -> None:
    with factory() as s:
        s.execute(update(Job).where(Job.id == job_id)
                  .values(lease_renewed_at=utcnow() - dt.timedelta(seconds=seconds)))
        s.commit()


def test_migrated_schema_matches_models_and_uses_wal(factory):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from backend.db import MIGRATIONS_DIR
    from backend.models import Base

    engine = factory.kw["bind"]
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head


def test_processes_starting_together_migrate_once(tmp_path):
    code = "from backend.db import open_database; open_database()"
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO, stderr=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-1500:]


def test_transition_table_drives_the_moves(factory, monkeypatch):
    assert set(jobs.TRANSITIONS) == set(jobs.JobStatus)
    assert not jobs.can_transition("succeeded", "queued") and not jobs.can_transition("queued", "succeeded")
    with factory() as s:
        jid = new_job(factory)
        s.execute(update(Job).where(Job.id == jid).values(status="succeeded"))
        s.commit()
        # succeeded -> queued is not in the table: asking for it changes nothing
        assert not jobs.transition(s, jid, jobs.JobStatus.queued, {}, only_from=(jobs.JobStatus.succeeded,))
        s.rollback()
        s.execute(update(Job).where(Job.id == jid).values(status="queued"))
        s.commit()
        jobs.request_cancel(s, jid)
        # without the cancelled -> queued edge, resume is refused by the table, not by a copy of it
        monkeypatch.setitem(jobs.TRANSITIONS, jobs.JobStatus.cancelled, ())
        with pytest.raises(jobs.JobStateError):
            jobs.resume(s, jid)
        monkeypatch.undo()
        assert jobs.resume(s, jid).status == "queued"


def test_claim_is_atomic_under_a_race(factory):
    jid = new_job(factory)
    wins, barrier = [], threading.Barrier(8)

    def worker(i: int) -> None:
        with factory() as s:
            barrier.wait()
            if claim_job(s, jid, f"w{i}"):
                wins.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    with factory() as s:
        job = s.get(Job, jid)
        assert job.status == "running" and job.worker == f"w{wins[0]}" and job.attempts == 1


def test_claim_refuses_finished_cancelled_and_held_jobs(factory):
    with factory() as s:
        jid = new_job(factory)
        assert claim_job(s, jid, "a")
        assert not claim_job(s, jid, "b")  # fresh lease
        age_lease(factory, jid, 120)
        assert claim_job(s, jid, "b", timeout_s=60)  # lease expired: taken over
        assert not renew_lease(s, jid, "a").held  # the old holder learns it lost the job
        assert not jobs.finish_job(s, jid, "a", "succeeded")  # and cannot finish it
        assert jobs.finish_job(s, jid, "b", "succeeded")
        assert not claim_job(s, jid, "c")
        cancelled = new_job(factory)
        jobs.request_cancel(s, cancelled)
        assert not claim_job(s, cancelled, "c")


def test_requeue_stale_jobs(factory, settings, redis_conn):
    with factory() as s:
        heartbeat(s, "dead", queues=["cpu"])
        stale, fresh, stale_cancel = new_job(factory), new_job(factory), new_job(factory)
        for j in (stale, fresh, stale_cancel):
            assert claim_job(s, j, "dead")
        jobs.request_cancel(s, stale_cancel)
        age_lease(factory, stale, 90)
        age_lease(factory, stale_cancel, 90)
        assert requeue_stale_jobs(s, timeout_s=60) == [stale]
        s.expire_all()
        assert [s.get(Job, j).status for j in (stale, fresh, stale_cancel)] == ["queued", "running", "cancelled"]
        assert s.get(Job, stale).worker is None
        assert requeue_stale_jobs(s, timeout_s=60) == []
        # recovery also sends the task again (only the id)
        age_lease(factory, fresh, 90)
        assert recover_stale_jobs(s, settings.model_copy(update={"worker_heartbeat_timeout_s": 60})) == [fresh]
    assert redis_conn.llen("cpu") == 1


def test_heartbeat_and_live_workers(factory):
    with factory() as s:
        jid = new_job(factory)
        heartbeat(s, "w1", queues=["gpu", "cpu"], device="cuda:0")
        assert claim_job(s, jid, "w1")
        state = heartbeat(s, "w1", queues=["gpu", "cpu"], device="cuda:0", current_job_id=jid)
        assert state is not None and state.held and not state.cancel_requested
        jobs.request_cancel(s, jid)
        assert heartbeat(s, "w1", current_job_id=jid).cancel_requested
        assert [w.name for w in live_workers(s, 60)] == ["w1"]
        s.execute(text("UPDATE workers SET last_heartbeat = '2000-01-01 00:00:00'"))
        s.commit()
        assert live_workers(s, 60) == []


def test_event_wakeup_is_published_after_commit_only(factory, redis_conn):
    jid = new_job(factory)
    pubsub = redis_conn.pubsub()
    pubsub.subscribe(channel(jid))
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    with factory() as s:
        publish_event(s, jid, "progress", {"step": 1})
        s.rollback()
        assert pubsub.get_message(timeout=0.3) is None  # rolled back: no wake-up, no row
        ev = publish_event(s, jid, "progress", {"step": 2})
        assert ev.id is not None
        s.commit()
    msg = pubsub.get_message(timeout=2)
    assert msg["type"] == "message" and msg["channel"].decode() == f"ddpm:job:{jid}"
    with factory() as s:
        assert [(e.type, e.data) for e in s.query(Event).filter(Event.job_id == jid)] == [("progress", {"step": 2})]
    with pytest.raises(ValueError):
        publish_event(factory(), jid, "bogus", {})
    pubsub.close()


def test_event_ids_increase_and_survive_deletes(factory):
    """SSE resumption relies on ids never being reused (AUTOINCREMENT)."""
    jid = new_job(factory)
    with factory() as s:
        a = publish_event(s, jid, "progress", {}).id
        s.commit()
        s.query(Event).delete()
        s.commit()
        b = publish_event(s, jid, "progress", {}).id
        s.commit()
    assert b > a


def test_atomic_writer_never_leaves_partial_files(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    with atomic_writer(target) as fh:
        fh.write(b"one")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_storage_paths_stay_inside_data_dir(tmp_path):
    st = Storage(tmp_path)
    assert st.relative(tmp_path / "runs" / "1" / "x.png") == "runs/1/x.png"
    with pytest.raises(ValueError):
        st.relative(tmp_path.parent / "elsewhere")
    assert st.resolve("../../etc/passwd") is None
    assert st.run_dir(7) == tmp_path.resolve() / "runs" / "7"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a/./b", "..", "a\\b", "a\x00b", "a\x1fb",
                                 "C:/x", ".git/config", "a/ b", "x" * 256, "/".join("a" * 40)])
def test_unsafe_paths(bad):
    with pytest.raises(UnsafePath):
        sanitize_relative_path(bad)


def test_safe_paths_are_nfc_normalised():
    decomposed = "cafe\u0301/scan.nii.gz"
    assert sanitize_relative_path(decomposed) == "caf\u00e9/scan.nii.gz"
    assert sanitize_relative_path("sub-01/anat/T1w.nii.gz") == "sub-01/anat/T1w.nii.gz"


def test_release_job_by_its_holder_only(factory):
    from backend.leases import release_job

    jid = new_job(factory)
    with factory() as s:
        assert claim_job(s, jid, "a")
        assert not release_job(s, jid, "b")
        assert release_job(s, jid, "a")
        job = jobs.get_job(s, jid)
        assert job.status == "queued" and job.worker is None
        assert not release_job(s, jid, "a")  # no longer running
        assert claim_job(s, jid, "b")


def test_discard_after_drops_rows_past_the_checkpoint(factory, settings):
    from backend import reporting

    jid = new_job(factory)
    st = Storage(settings.resolved_data_dir)
    with factory() as s:
        for step in (10, 20, 30):
            reporting.add_metrics(s, jid, step, {"train_loss": step / 100})
            reporting.add_sample(s, st, jid, 0, [4, 4], None, f"runs/{jid}/samples/s{step}.png", step=step)
        dropped = reporting.discard_after(s, jid, 20)
        assert dropped == [f"runs/{jid}/samples/s30.png"]
        from backend.models import Metric, Sample
        assert [m.step for m in s.query(Metric).filter_by(job_id=jid)] == [10, 20]
        assert [x.step for x in s.query(Sample).filter_by(job_id=jid)] == [10, 20]
        assert jobs.get_job(s, jid).last_metrics == {"step": 20, "train_loss": 0.2}


def test_progress_events_stay_bounded_keeping_the_newest_and_a_thinned_history(factory):
    from backend import reporting
    from backend.models import Event

    keep, older, every = reporting.KEEP_PROGRESS_EVENTS, reporting.KEEP_OLDER_PROGRESS, reporting.PRUNE_EVERY
    total = keep + 3 * older + 3 * every  # enough for the older part to be thinned twice
    jid = new_job(factory)
    with factory() as s:
        reporting.add_metrics(s, jid, 0, {"train_loss": 1.0})
        for step in range(total):
            reporting.report_progress(s, jid, step, 10_000)
        steps = [e.data["step"] for e in s.query(Event).filter_by(job_id=jid, type="progress").order_by(Event.id)]
        assert len(steps) <= keep + older + every  # bounded, however long the run
        assert steps[-keep:] == list(range(total - keep, total))  # the newest, contiguous
        assert steps[0] == 0  # the run's first point stays: a reloaded chart starts at the start
        history = steps[:-keep]
        assert history == sorted(history) and len(history) > older // 2  # spread over the run, not cut
        gaps = [b - a for a, b in zip(history, history[1:])]
        assert max(gaps) <= total // 16  # thinned evenly: no hole in the middle of the curve
        assert s.query(Event).filter_by(job_id=jid, type="metrics").count() == 1  # others untouched


def test_persistence_layer_imports_without_fastapi_or_torch():
    """The worker imports these modules; they must not drag in the web stack or the engine."""
    code = ("import sys, backend.settings, backend.db, backend.models, backend.storage, backend.jobs, "
            "backend.leases, backend.worker_registry, backend.reporting, backend.events, backend.celery_client; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'torch', 'sse_starlette') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.strip() == "[]"
