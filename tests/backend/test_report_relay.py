"""The worker's report relay against a real database: at a start, the job's metric rows are made
to match the run's own metrics.jsonl up to the start step."""
from __future__ import annotations

import json

from sqlalchemy import select

from backend.models import Job, Metric
from worker.report_relay import ReportRelay
from worker.store import Store


def test_a_resume_restores_the_rows_the_run_file_holds_and_drops_later_ones(settings, tmp_path):
    store = Store(settings)
    with store.session() as s:
        job = Job(kind="train", status="running", config={})
        s.add(job)
        s.commit()
        job_id = job.id
    # the killed attempt: rows 10-30 arrived, 40 was written to the run's file and checkpointed
    # but its row never reached the database, 50 arrived after the last checkpoint (40)
    for step in (10, 20, 30, 50):
        store.metrics(job_id, step, {"train_loss": step / 100})
    metrics = tmp_path / "metrics.jsonl"  # as the engine leaves it when it resumes from step 40
    metrics.write_text("".join(json.dumps({"step": s, "train_loss": s / 100}) + "\n" for s in (10, 20, 30, 40)))

    relay = ReportRelay(store, job_id, str(tmp_path / "job.log"), metrics_file=metrics)
    relay.handle("start", {"step": 40, "total": 60, "resumed_from": "step-00000040.pt"})

    with store.session() as s:
        rows = s.execute(select(Metric.step, Metric.data).where(Metric.job_id == job_id).order_by(Metric.step)).all()
        last = s.get(Job, job_id).last_metrics
    assert [(step, data["train_loss"]) for step, data in rows] == [(10, 0.1), (20, 0.2), (30, 0.3), (40, 0.4)]
    assert last["step"] == 40
    # a second start at the same step adds nothing twice
    relay.handle("start", {"step": 40, "total": 60, "resumed_from": "step-00000040.pt"})
    with store.session() as s:
        assert len(s.scalars(select(Metric.step).where(Metric.job_id == job_id)).all()) == 4
