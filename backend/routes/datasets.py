"""Datasets: create, upload files (streamed, validated), commit, list, detail, file bytes, delete."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import PurePosixPath
from typing import Optional

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect

from backend import dataset_store, deletion, labelled_store
from backend.deps import get_session, get_storage, require_token
from backend.jobs import ACTIVE
from backend.models import DELETING, Dataset, DatasetFile, Job
from backend.params import DatasetId, FileId
from backend.pathsafe import UnsafePath, sanitize_relative_path
from backend.schemas import DatasetCreate, DatasetDetail, DatasetOut, ErrorResponse, FileOut, LabelledOut
from backend.settings import Settings
from backend.sniff import Limits, Rejected, format_from_name
from backend.storage import Storage
from backend.storage_errors import describe, storage_failure
from backend.uploads import UploadSink

router = APIRouter(tags=["datasets"], dependencies=[Depends(require_token)])


class _AnyPath(PathConvertor):
    """Like ``path`` but also matching control characters (newline...), so a hostile name
    reaches the sanitiser and gets a clear 400 instead of falling through to another route."""

    regex = r"[\s\S]*"


register_url_convertor("anypath", _AnyPath())

WRITE_BATCH = 1 << 20  # hand the body to the writer thread in 1 MiB pieces
DRAIN_LIMIT = 64 << 20  # after a refusal, read on this much so the client sees the answer
MEDIA = {"nifti-gz": "application/gzip", "nifti": "application/octet-stream", "npy": "application/octet-stream",
         "png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff"}
ERRORS = {404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


def file_out(f: DatasetFile) -> FileOut:
    return FileOut(id=f.id, path=f.path, kind=f.kind, format=f.format, shape=f.shape, spacing=f.spacing,
                   dtype=f.dtype, channels=f.channels, size_bytes=f.size_bytes, created_at=f.created_at,
                   url=f"/api/datasets/{f.dataset_id}/files/{f.id}", orientation=f.orientation, role=f.label_role)


def dataset_out(ds: Dataset, count: int, total: int, labelled: bool = False) -> DatasetOut:
    return DatasetOut(id=ds.id, name=ds.name, status=ds.status, kind=ds.kind, channels=ds.channels,
                      file_count=count, total_bytes=total, created_at=ds.created_at, committed_at=ds.committed_at,
                      labelled=labelled)


def dataset_detail(session: Session, ds: Dataset) -> DatasetDetail:
    files = list(session.scalars(select(DatasetFile).where(DatasetFile.dataset_id == ds.id)
                                 .order_by(DatasetFile.path)))
    summary = labelled_store.summary(files)
    labelled = None
    if summary is not None:
        pairs = [{**p, "image": p["image"] and file_out(p["image"]), "label": file_out(p["label"])}
                 for p in summary["pairs"]]
        labelled = LabelledOut(**{**summary, "pairs": pairs})
    base = dataset_out(ds, len(files), sum(f.size_bytes for f in files), labelled is not None)
    return DatasetDetail(**base.model_dump(), files=[file_out(f) for f in files], labelled_data=labelled)


def _get(session: Session, dataset_id: int, deleting_ok: bool = False) -> Dataset:
    ds = session.get(Dataset, dataset_id, populate_existing=True)
    if ds is None or (ds.status == DELETING and not deleting_ok):
        raise HTTPException(404, f"dataset {dataset_id} does not exist")
    return ds


@router.post("/datasets", status_code=201, response_model=DatasetOut)
def create_dataset(body: DatasetCreate, session: Session = Depends(get_session)):
    """A new, empty dataset in state ``uploading``."""
    ds = Dataset(name=body.name)
    session.add(ds)
    session.commit()
    return dataset_out(ds, 0, 0)


@router.get("/datasets", response_model=list[DatasetOut])
def list_datasets(session: Session = Depends(get_session)):
    rows = list(session.scalars(select(Dataset).where(Dataset.status != DELETING).order_by(Dataset.id.desc())))
    sums = dataset_store.totals(session)
    labelled = dataset_store.labelled_ids(session)
    return [dataset_out(ds, *sums.get(ds.id, (0, 0)), ds.id in labelled) for ds in rows]


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, responses=ERRORS)
def get_dataset(dataset_id: DatasetId, session: Session = Depends(get_session)):
    return dataset_detail(session, _get(session, dataset_id))


@router.put("/datasets/{dataset_id}/files/{path:anypath}", status_code=201, response_model=FileOut,
            responses={400: {"model": ErrorResponse, "description": "unsafe path"},
                       413: {"model": ErrorResponse, "description": "over a size limit (file, dataset, "
                                                                   "dimensions, inflated size)"},
                       415: {"model": ErrorResponse, "description": "type unsupported or content not "
                                                                   "matching the extension"},
                       503: {"model": ErrorResponse, "description": "the data volume is read-only or failing"},
                       507: {"model": ErrorResponse, "description": "the server's disk is full"}, **ERRORS},
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_file(dataset_id: DatasetId, path: str, request: Request):
    """The raw bytes of one file at ``path`` (its path in the uploaded folder). Streamed to disk,
    validated by content, kept only if valid; a re-sent path replaces the old file."""
    settings: Settings = request.app.state.settings
    storage: Storage = request.app.state.storage
    factory = request.app.state.session_factory
    try:
        rel = sanitize_relative_path(path)
    except UnsafePath as exc:
        await _drain(request)
        raise HTTPException(400, f"{path!r}: {exc}") from None
    stream = request.stream()
    sink = None
    pending: Optional[asyncio.Future] = None
    try:
        fmt = format_from_name(rel)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_file_bytes:
            raise Rejected(413, f"file larger than the limit of {settings.max_file_bytes} bytes")

        def budget() -> int:
            with factory() as s:
                return dataset_store.upload_budget(s, dataset_id, rel, settings.max_dataset_bytes)

        limits = Limits(settings.max_dim, settings.max_voxels, settings.max_decompressed_bytes)
        sink = UploadSink(storage.tmp_dir, fmt, limits, settings.max_file_bytes, await to_thread.run_sync(budget))
        # Double-buffered: the next MiB is received while a thread writes (and inflates) the last.
        buf = bytearray()
        async for chunk in stream:
            buf += chunk
            if len(buf) >= WRITE_BATCH:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(to_thread.run_sync(sink.write, bytes(buf)))
                buf.clear()
        if pending is not None:
            await pending
            pending = None
        if buf:
            await to_thread.run_sync(sink.write, bytes(buf))
        info = await to_thread.run_sync(sink.finish)

        def store() -> FileOut:
            with factory() as s:
                extra = labelled_store.upload_fields(s, dataset_id, rel, info, sink.path)
                row = dataset_store.store_file(s, storage, dataset_id, rel, info, sink.path, sink.size,
                                               settings.max_dataset_bytes, extra)
                return file_out(row)

        return await to_thread.run_sync(store)
    except Rejected as exc:
        await _drain(request, stream)
        raise HTTPException(exc.status, f"{rel}: {exc.reason}") from None
    except ClientDisconnect:
        raise HTTPException(400, f"{rel}: upload interrupted") from None
    except (OSError, DBAPIError) as exc:
        failure = storage_failure(exc, storage.root)  # the one mapping of storage faults, with the file's name
        if failure is None:
            raise
        raise HTTPException(failure[0], f"{rel}: {describe(failure[1])}") from None
    finally:
        if pending is not None:  # a refusal or disconnect while a write was in flight
            with contextlib.suppress(BaseException):
                await pending
        if sink is not None:
            sink.discard()  # no-op when the file was moved into the dataset


async def _drain(request: Request, stream=None) -> None:  # noqa: ANN001
    """Read (and drop) the rest of a refused body, up to DRAIN_LIMIT, so the client gets our answer
    instead of a reset connection."""
    seen = 0
    try:
        async for chunk in (stream if stream is not None else request.stream()):
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                break
    except Exception:  # noqa: BLE001 - disconnects or a consumed stream: nothing more to read
        pass


@router.post("/datasets/{dataset_id}/commit", response_model=DatasetDetail, responses=ERRORS)
def commit_dataset(dataset_id: DatasetId, session: Session = Depends(get_session)):
    """Check the set (at least one file, one kind, one channel count) and mark it ``ready``.
    422 with the reasons, each naming ``files`` or ``files/<path>``. Committing twice is harmless."""
    ds = _get(session, dataset_id)
    problems = dataset_store.commit(session, ds)
    if problems:
        raise HTTPException(422, problems)
    return dataset_detail(session, ds)


@router.get("/datasets/{dataset_id}/files/{file_id}", response_class=FileResponse,
            responses={200: {"content": {media: {} for media in sorted(set(MEDIA.values()))},
                             "description": "the file's bytes, typed by its format"}, **ERRORS})
def get_file(dataset_id: DatasetId, file_id: FileId, session: Session = Depends(get_session),
             storage: Storage = Depends(get_storage)):
    """The file's bytes, for NiiVue; Content-Disposition carries its name with its extension."""
    f = session.get(DatasetFile, file_id)
    if f is None or f.dataset_id != dataset_id:
        raise HTTPException(404, f"file {file_id} of dataset {dataset_id} does not exist")
    target = storage.dataset_files_dir(dataset_id) / f.path
    if not target.is_file():
        raise HTTPException(404, f"file {file_id} is missing on disk")
    return FileResponse(target, media_type=MEDIA.get(f.format, "application/octet-stream"),
                        filename=PurePosixPath(f.path).name, content_disposition_type="inline")


@router.delete("/datasets/{dataset_id}/files/{file_id}", status_code=204, response_class=Response,
               responses=ERRORS)
def delete_file(dataset_id: DatasetId, file_id: FileId, session: Session = Depends(get_session),
                storage: Storage = Depends(get_storage)):
    """204: one file removed from a dataset still uploading (a refused mix, a stray file), so
    the rest can be committed; 409 once the dataset is committed."""
    try:
        dataset_store.delete_file(session, storage, dataset_id, file_id)
    except Rejected as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return Response(status_code=204)


@router.delete("/datasets/{dataset_id}", status_code=204, response_class=Response, responses=ERRORS)
def delete_dataset(dataset_id: DatasetId, session: Session = Depends(get_session),
                   storage: Storage = Depends(get_storage)):
    """204; 409 while a queued or running job uses it. Its files go too. Retrying a delete that
    failed part-way (503/507) finishes it."""
    ds = _get(session, dataset_id, deleting_ok=True)
    busy = list(session.scalars(select(Job.id).where(Job.dataset_id == dataset_id, Job.status.in_(ACTIVE))))
    if busy:
        raise HTTPException(409, f"dataset {dataset_id} is used by active job(s) {busy}; cancel them first")
    deletion.delete_dataset(session, storage, ds.id)  # mark, files, row: a retry finishes it
    return Response(status_code=204)
