"""Results of fine-tune and study jobs: the evaluation (Dice), the predicted label maps of the
evaluation cases beside their images, and a study's result (JSON and plot).

The worker writes them at the end of a job (``worker.finetune_run``) where ``backend.storage``
says; these routes only read. Files are named by the server (Content-Disposition).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from backend.deps import get_session, get_storage, require_token
from backend.finetune_jobs import source_train_config
from backend.job_create import JobInputError
from backend.jobs import JobKind, get_job
from backend.models import Job
from backend.params import JobId
from backend.schemas import ErrorResponse, Evaluation, PredictionOut, StudyOut
from backend.storage import Storage
from ddpm.config import FinetuneConfig
from ddpm.finetune.study_files import PLOT_FILE, STUDY_FILE  # torch-free, unlike ddpm.finetune.study

router = APIRouter(tags=["fine-tuning"], dependencies=[Depends(require_token)])
ERRORS = {404: {"model": ErrorResponse}}
_MEDIA = {".png": "image/png", ".gz": "application/gzip"}


def _job_of(session: Session, job_id: int, *kinds: JobKind) -> Job:
    job = get_job(session, job_id)
    if job.kind not in kinds:
        raise HTTPException(404, f"job {job_id} is a {job.kind} job; this belongs to {' and '.join(kinds)} jobs")
    return job


def _read_json(path: Path, missing: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise HTTPException(404, missing) from None


def _manifest(storage: Storage, job_id: int) -> list[dict[str, str]]:
    return _read_json(storage.predictions_manifest(job_id),
                      f"job {job_id} has no predictions yet (written when fine-tuning ends)")


def _entry(storage: Storage, job_id: int, case: str) -> dict[str, str]:
    for entry in _manifest(storage, job_id):
        if entry["case"] == case:
            return entry
    raise HTTPException(404, f"job {job_id} has no prediction of case {case!r}")


def _suffix(name: str) -> str:
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def _send(path: Path, download_name: str) -> FileResponse:
    if not path.is_file():
        raise HTTPException(404, f"{download_name} is missing on the server")
    return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"),
                        content_disposition_type="attachment", filename=download_name)


@router.get("/jobs/{job_id}/finetune-config", response_model=FinetuneConfig,
            responses={**ERRORS, 409: {"model": ErrorResponse}})
def finetune_defaults(job_id: JobId, session: Session = Depends(get_session)):
    """The fine-tune config a form starts from for this train job's weights: the defaults, with
    what the pretrained run decides (its U-Net, is_3d, image size and intensity keys) filled in
    (``pretrained`` stays null: the server sets it from ``source_job_id``)."""
    job = _job_of(session, job_id, JobKind.train)
    try:
        return FinetuneConfig().with_pretrained(source_train_config(job))
    except JobInputError as exc:
        raise HTTPException(409, exc.items[0]["msg"]) from None


@router.get("/jobs/{job_id}/evaluation", response_model=Evaluation, responses=ERRORS)
def job_evaluation(job_id: JobId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    """Dice of the finished model on the evaluation cases (the eval dataset, or the held-out split)."""
    _job_of(session, job_id, JobKind.finetune)
    return _read_json(storage.evaluation_path(job_id),
                      f"job {job_id} has no evaluation yet (written when fine-tuning ends)")


@router.get("/jobs/{job_id}/predictions", response_model=list[PredictionOut], responses=ERRORS)
def job_predictions(job_id: JobId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    """The predicted label map of every evaluation case, with its image."""
    _job_of(session, job_id, JobKind.finetune)
    base = f"/api/jobs/{job_id}/predictions/"
    return [PredictionOut(case=e["case"], label_url=base + quote(e["case"], safe=""),
                          image_url=base + quote(e["case"], safe="") + "/image")
            for e in _manifest(storage, job_id)]


@router.get("/jobs/{job_id}/predictions/{case}", response_class=FileResponse,
            responses={200: {"content": {"application/gzip": {}, "image/png": {}},
                             "description": "the label map (uint8 classes; NIfTI with the image's affine)"},
                       **ERRORS})
def job_prediction(job_id: JobId, case: str, session: Session = Depends(get_session),
                   storage: Storage = Depends(get_storage)):
    _job_of(session, job_id, JobKind.finetune)
    entry = _entry(storage, job_id, case)
    path = storage.predictions_dir(job_id) / Path(entry["label"]).name
    return _send(path, f"job{job_id}-{case}-prediction{_suffix(entry['label'])}")


@router.get("/jobs/{job_id}/predictions/{case}/image", response_class=FileResponse,
            responses={200: {"content": {"application/gzip": {}, "image/png": {}},
                             "description": "the image the label map was predicted from"}, **ERRORS})
def job_prediction_image(job_id: JobId, case: str, session: Session = Depends(get_session),
                         storage: Storage = Depends(get_storage)):
    _job_of(session, job_id, JobKind.finetune)
    path = storage.resolve(_entry(storage, job_id, case)["image"])
    if path is None:
        raise HTTPException(404, f"the image of case {case!r} is outside DATA_DIR")
    return _send(path, f"{case}{_suffix(path.name)}")


@router.get("/jobs/{job_id}/study", response_model=StudyOut, responses=ERRORS)
def job_study(job_id: JobId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    """Dice per label budget of each arm (mean, sd over seeds) and every finished run."""
    _job_of(session, job_id, JobKind.study)
    return _read_json(storage.run_dir(job_id) / STUDY_FILE, f"job {job_id} has no study result yet")


@router.get("/jobs/{job_id}/study.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "Dice against labelled cases"},
                       **ERRORS})
def job_study_plot(job_id: JobId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    _job_of(session, job_id, JobKind.study)
    path = storage.run_dir(job_id) / PLOT_FILE
    if not path.is_file():
        raise HTTPException(404, f"job {job_id} has no study plot yet")
    return FileResponse(path, media_type="image/png", content_disposition_type="inline",
                        filename=f"job{job_id}-study.png")
