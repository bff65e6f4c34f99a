"""What a running job reports: progress, metrics, samples, checkpoints. Rows + SSE events.

Used by the worker (the engine's callbacks end here). Each function commits.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from backend.events import publish_event
from backend.models import Event, Job, Metric, Sample
from backend.storage import Storage


def _finite(x: Any) -> Any:
    """JSON has no NaN/inf: report them as null (the job's error says why it stopped)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def progress_payload(step: int, total: int, it_s: Optional[float], eta_s: Optional[float],
                     loss: Optional[float] = None) -> dict[str, Any]:
    fraction = min(1.0, step / total) if total else 0.0
    return {"step": step, "total": total, "fraction": fraction,
            "eta_s": _finite(eta_s), "it_s": _finite(it_s), "loss": _finite(loss)}


def report_progress(session: Session, job_id: int, step: int, total: int,
                    it_s: Optional[float] = None, eta_s: Optional[float] = None,
                    loss: Optional[float] = None) -> None:
    """Call about once a second: updates the job row and sends a ``progress`` event (with the
    training loss averaged since the previous report, when training reports one)."""
    session.execute(update(Job).where(Job.id == job_id)
                    .values(step=step, total=total, it_s=_finite(it_s), eta_s=_finite(eta_s))
                    .execution_options(synchronize_session=False))
    ev = publish_event(session, job_id, "progress", progress_payload(step, total, it_s, eta_s, loss))
    if ev.id % PRUNE_EVERY == 0:
        _prune_progress(session, job_id)
    session.commit()


# Progress events are the job's live loss curve (GET /api/jobs/{id}/live), bounded so a
# week-long run does not leave a million rows: a job keeps its newest KEEP_PROGRESS_EVENTS, and
# of the older ones every other is dropped whenever they exceed KEEP_OLDER_PROGRESS, so the
# older part of the curve stays evenly spread over the whole run. A listener resuming from a
# dropped id still gets every later event.
KEEP_PROGRESS_EVENTS = 200
KEEP_OLDER_PROGRESS = 300
PRUNE_EVERY = 50


def _prune_progress(session: Session, job_id: int) -> None:
    older = list(session.scalars(select(Event.id).where(Event.job_id == job_id, Event.type == "progress")
                                 .order_by(Event.id.desc()).offset(KEEP_PROGRESS_EVENTS)))
    if len(older) > KEEP_OLDER_PROGRESS:
        drop = older[::-1][1::2]  # oldest first: the run's first point always stays
        session.execute(delete(Event).where(Event.id.in_(drop)).execution_options(synchronize_session=False))


def report_phase(session: Session, job_id: int, phase: str, done: Optional[int] = None,
                 total: Optional[int] = None) -> None:
    """What the run is doing before / between steps ("preparing data" 3 of 40): a ``phase`` event."""
    publish_event(session, job_id, "phase", {"phase": phase, "done": done, "total": total})
    session.commit()


def report_run_info(session: Session, job_id: int, info: dict[str, Any]) -> None:
    """Facts of a (re)start of the run: device, precision and why (a ``run_info`` event)."""
    publish_event(session, job_id, "run_info", {k: _finite(v) for k, v in info.items()})
    session.commit()


def add_metrics(session: Session, job_id: int, step: int, values: dict[str, Any]) -> None:
    """One metrics row ({train_loss, val_loss, lr, ...} at ``step``), the job's last_metrics, an event."""
    data = {k: _finite(v) for k, v in values.items() if k != "step"}
    session.add(Metric(job_id=job_id, step=step, data=data))
    session.execute(update(Job).where(Job.id == job_id)
                    .values(last_metrics={"step": step, **data})
                    .execution_options(synchronize_session=False))
    publish_event(session, job_id, "metrics", {"step": step, **data})
    session.commit()


def sample_urls(sample: Sample) -> dict[str, Optional[str]]:
    """API URLs of a sample's files; 2D samples have no volume (their PNG is the preview)."""
    return {"volume_url": f"/api/samples/{sample.id}/volume.nii.gz" if sample.volume_path else None,
            "preview_url": f"/api/samples/{sample.id}/preview.png" if sample.preview_path else None}


def sample_payload(sample: Sample) -> dict[str, Any]:
    return {"id": sample.id, "job_id": sample.job_id, "index": sample.index, "step": sample.step,
            "shape": sample.shape, **sample_urls(sample)}


def add_sample(session: Session, storage: Storage, job_id: int, index: int, shape: Sequence[int],
               volume_path: Union[str, Path, None] = None, preview_path: Union[str, Path, None] = None,
               step: Optional[int] = None) -> Sample:
    """Register files the worker wrote under DATA_DIR (absolute or DATA_DIR-relative paths).

    3D: ``volume_path`` is the .nii.gz and ``preview_path`` a PNG slice; 2D: only ``preview_path``.
    """
    def rel(p: Union[str, Path, None]) -> Optional[str]:
        if p is None:
            return None
        p = Path(p)
        return storage.relative(p if p.is_absolute() else storage.root / p)

    row = Sample(job_id=job_id, index=index, step=step, shape=[int(s) for s in shape],
                 volume_path=rel(volume_path), preview_path=rel(preview_path))
    session.add(row)
    session.flush()
    publish_event(session, job_id, "sample", sample_payload(row))
    session.commit()
    return row


def set_checkpoint(session: Session, job_id: int, step: int) -> None:
    """The newest checkpoint on disk is at ``step`` (a resume starts there; sampling may use it)."""
    session.execute(update(Job).where(Job.id == job_id).values(checkpoint_step=step)
                    .execution_options(synchronize_session=False))
    session.commit()


def metric_steps(session: Session, job_id: int) -> set[int]:
    """The steps of the job's metric rows."""
    return set(session.scalars(select(Metric.step).where(Metric.job_id == job_id)))


def discard_after(session: Session, job_id: int, step: int) -> list[str]:
    """A run resumed from its checkpoint at ``step``: drop the metric and sample rows of later
    steps (written before a crash; they are about to be written again) and point last_metrics at
    the newest remaining row. Returns the DATA_DIR-relative files of the dropped samples."""
    dropped = session.execute(select(Sample.volume_path, Sample.preview_path)
                              .where(Sample.job_id == job_id, Sample.step > step)).all()
    session.execute(delete(Sample).where(Sample.job_id == job_id, Sample.step > step)
                    .execution_options(synchronize_session=False))
    session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step > step)
                    .execution_options(synchronize_session=False))
    newest = session.scalars(select(Metric).where(Metric.job_id == job_id)
                             .order_by(Metric.step.desc(), Metric.id.desc()).limit(1)).first()
    session.execute(update(Job).where(Job.id == job_id)
                    .values(last_metrics={"step": newest.step, **newest.data} if newest else None)
                    .execution_options(synchronize_session=False))
    session.commit()
    return [p for row in dropped for p in row if p]
