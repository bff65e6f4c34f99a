"""Sample files: the .nii.gz volume (3D samples) and the PNG preview (both kinds)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from backend.download_names import sample_file_name
from backend.deps import get_session, get_storage, require_token
from backend.models import Sample
from backend.params import SampleId
from backend.schemas import ErrorResponse
from backend.storage import Storage

router = APIRouter(tags=["samples"], dependencies=[Depends(require_token)])
ERRORS = {404: {"model": ErrorResponse}}


def _file(session: Session, storage: Storage, sample_id: int, which: str) -> tuple[Sample, Path]:
    s = session.get(Sample, sample_id)
    if s is None:
        raise HTTPException(404, f"sample {sample_id} does not exist")
    rel: Optional[str] = s.volume_path if which == "volume" else s.preview_path
    if rel is None:
        hint = "; 2D samples have only preview.png" if which == "volume" else ""
        raise HTTPException(404, f"sample {sample_id} has no {which}{hint}")
    path = storage.resolve(rel)
    if path is None or not path.is_file():
        raise HTTPException(404, f"sample {sample_id}'s {which} file is missing")
    return s, path


@router.get("/samples/{sample_id}/volume.nii.gz", response_class=FileResponse,
            responses={200: {"content": {"application/gzip": {}}, "description": "NIfTI volume"}, **ERRORS})
def sample_volume(sample_id: SampleId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    s, path = _file(session, storage, sample_id, "volume")
    return FileResponse(path, media_type="application/gzip", content_disposition_type="inline",
                        filename=sample_file_name(session, s, ".nii.gz"))


@router.get("/samples/{sample_id}/preview.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "PNG preview"}, **ERRORS})
def sample_preview(sample_id: SampleId, session: Session = Depends(get_session), storage: Storage = Depends(get_storage)):
    s, path = _file(session, storage, sample_id, "preview")
    return FileResponse(path, media_type="image/png", content_disposition_type="inline",
                        filename=sample_file_name(session, s, ".png"))
