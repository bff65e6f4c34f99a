"""Datasets in the database and on disk: totals, storing a validated upload, commit checks."""
from __future__ import annotations

import collections
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend import labelled_store
from backend.models import READY, UPLOADING, Dataset, DatasetFile, utcnow
from backend.pathsafe import UnsafePath, safe_join
from backend.sniff import FileInfo, Rejected
from backend.storage import Storage


def totals(session: Session, dataset_ids: Optional[list[int]] = None) -> dict[int, tuple[int, int]]:
    """dataset id -> (file count, total bytes), in one query."""
    stmt = select(DatasetFile.dataset_id, func.count(DatasetFile.id),
                  func.coalesce(func.sum(DatasetFile.size_bytes), 0)).group_by(DatasetFile.dataset_id)
    if dataset_ids is not None:
        stmt = stmt.where(DatasetFile.dataset_id.in_(dataset_ids))
    return {row[0]: (int(row[1]), int(row[2])) for row in session.execute(stmt)}


def labelled_ids(session: Session) -> set[int]:
    """Ids of the datasets holding at least one label map."""
    return set(session.scalars(select(DatasetFile.dataset_id).where(DatasetFile.label_role == "label").distinct()))


def bytes_used(session: Session, dataset_id: int, except_path: Optional[str] = None) -> int:
    stmt = select(func.coalesce(func.sum(DatasetFile.size_bytes), 0)).where(DatasetFile.dataset_id == dataset_id)
    if except_path is not None:
        stmt = stmt.where(DatasetFile.path != except_path)
    return int(session.scalar(stmt) or 0)


def upload_budget(session: Session, dataset_id: int, rel: str, max_dataset_bytes: int) -> int:
    """Bytes this upload may have: the dataset must exist and still accept files."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise Rejected(404, f"dataset {dataset_id} does not exist")
    if ds.status != UPLOADING:
        raise Rejected(409, f"dataset {dataset_id} is {ds.status}: files can only be added before commit")
    return max_dataset_bytes - bytes_used(session, dataset_id, except_path=rel)


def _prune_empty_dirs(start: Path, stop: Path) -> None:
    d = start
    while d != stop and d.is_relative_to(stop):
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


def kind_problem(session: Session, dataset_id: int, rel: str, kind: str) -> Optional[str]:
    """Why a file of ``kind`` cannot join this dataset (it already holds the other kind), or None."""
    other = session.scalar(select(DatasetFile.path).where(DatasetFile.dataset_id == dataset_id,
                                                          DatasetFile.kind != kind, DatasetFile.path != rel)
                           .order_by(DatasetFile.id).limit(1))
    if other is None:
        return None
    theirs = "3D" if kind == "2d" else "2D"
    return (f"a {kind.upper()} file, but this dataset already holds {theirs} files (such as {other}); "
            f"a dataset holds one kind, so upload it to a {kind.upper()} dataset")


def store_file(session: Session, storage: Storage, dataset_id: int, rel: str, info: FileInfo,
               temp_path: Path, size: int, max_dataset_bytes: int,
               extra: Optional[dict[str, Any]] = None) -> DatasetFile:
    """Move a validated temp file into the dataset and upsert its row, as one unit.

    A re-sent path replaces the old file with one rename (readers see old or new, never half).
    ``extra``: further columns (the labelled-pair ones, ``backend.labelled_store``).
    """
    budget = upload_budget(session, dataset_id, rel, max_dataset_bytes)  # re-checked under the write
    if size > budget:
        raise Rejected(413, "dataset would exceed its size limit with this file")
    problem = kind_problem(session, dataset_id, rel, info.kind)
    if problem:
        raise Rejected(422, problem)
    files_dir = storage.dataset_files_dir(dataset_id)
    files_dir.mkdir(parents=True, exist_ok=True)
    try:
        target = safe_join(files_dir, rel)
    except UnsafePath as exc:
        raise Rejected(400, str(exc)) from None
    if target.is_dir():
        raise Rejected(409, "a folder of that name already exists in the dataset")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise Rejected(409, "a parent folder of this path is a file in the dataset") from None
    fields: dict[str, Any] = dict(kind=info.kind, format=info.format, shape=info.shape, spacing=info.spacing,
                                  dtype=info.dtype, channels=info.channels, size_bytes=size, created_at=utcnow(),
                                  orientation=info.orientation, affine=info.affine, label_role=None,
                                  pair_case=None, label_classes=None)
    fields.update(extra or {})
    row = session.scalar(select(DatasetFile).where(DatasetFile.dataset_id == dataset_id, DatasetFile.path == rel))
    created = row is None
    try:
        if row is None:
            row = DatasetFile(dataset_id=dataset_id, path=rel, **fields)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # the same path arrived in parallel: replace that one
                session.rollback()
                row = session.scalar(select(DatasetFile).where(DatasetFile.dataset_id == dataset_id,
                                                               DatasetFile.path == rel))
                created = False
                if row is None:
                    raise Rejected(409, "concurrent upload of the same path; retry") from None
        if not created:
            for k, v in fields.items():
                setattr(row, k, v)
            session.flush()
        os.replace(temp_path, target)
        session.commit()
    except BaseException:
        session.rollback()
        if created:
            with contextlib.suppress(FileNotFoundError):
                if not temp_path.exists():  # already renamed: take it back out
                    target.unlink()
            _prune_empty_dirs(target.parent, files_dir)
        raise
    return row


def delete_file(session: Session, storage: Storage, dataset_id: int, file_id: int) -> None:
    """Remove one file of a dataset still uploading (Rejected 404/409 otherwise).

    The file is moved aside first and the row deleted after; a failure puts it back, so the
    folder a job reads and the rows never disagree.
    """
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise Rejected(404, f"dataset {dataset_id} does not exist")
    row = session.get(DatasetFile, file_id)
    if row is None or row.dataset_id != dataset_id:
        raise Rejected(404, f"file {file_id} of dataset {dataset_id} does not exist")
    if ds.status != UPLOADING:
        raise Rejected(409, f"dataset {dataset_id} is {ds.status}: files can only be removed before commit")
    files_dir = storage.dataset_files_dir(dataset_id)
    target = safe_join(files_dir, row.path)
    storage.tmp_dir.mkdir(parents=True, exist_ok=True)
    aside = Path(tempfile.mkdtemp(prefix="removed-", dir=storage.tmp_dir)) / "file"
    moved = False
    with contextlib.suppress(FileNotFoundError):
        os.replace(target, aside)
        moved = True
    try:
        session.delete(row)
        session.commit()
    except BaseException:
        session.rollback()
        if moved:
            os.replace(aside, target)
        raise
    finally:
        shutil.rmtree(aside.parent, ignore_errors=True)
    _prune_empty_dirs(target.parent, files_dir)


def commit_problems(files: list[DatasetFile]) -> list[dict[str, str]]:
    """Why a set of files cannot be a dataset ([] when it can): one kind, one channel count, and
    (labelled) every image with its label. One sentence each, naming files by their path."""
    if not files:
        return [{"loc": "files", "msg": "The dataset has no files; upload at least one before commit."}]
    problems: list[dict[str, str]] = []
    kinds = collections.Counter(f.kind for f in files)
    if len(kinds) > 1:
        major = kinds.most_common(1)[0][0]
        odd = [f for f in files if f.kind != major]
        problems.append({"loc": "files", "msg": f"The dataset mixes 2D and 3D files ({kinds['3d']} 3D, "
                                                f"{kinds['2d']} 2D); remove the {len(odd)} "
                                                f"{odd[0].kind.upper()} file(s) to commit the rest."})
        problems += [{"loc": f"files/{f.path}", "msg": f"{f.path} is a {f.kind.upper()} file in a dataset of "
                                                       f"{major.upper()} files; remove it."} for f in odd[:20]]
        return problems
    chans = collections.Counter(f.channels for f in files if f.label_role != "label")
    if len(chans) > 1:
        major = chans.most_common(1)[0][0]
        problems.append({"loc": "files", "msg": f"The files have different channel counts "
                                                f"{dict(sorted(chans.items()))}; remove the odd ones."})
        problems += [{"loc": f"files/{f.path}", "msg": f"{f.path} has {f.channels} channels where most files "
                                                       f"have {major}; remove it."}
                     for f in files if f.channels != major and f.label_role != "label"][:20]
    return problems + labelled_store.pair_problems(files)


def commit(session: Session, ds: Dataset) -> list[dict[str, str]]:
    """uploading -> ready when the files make one dataset; returns the problems otherwise."""
    files = list(session.scalars(select(DatasetFile).where(DatasetFile.dataset_id == ds.id)))
    problems = commit_problems(files)
    if problems:
        return problems
    if ds.status != READY:
        image = next((f for f in files if f.label_role != "label"), files[0])  # labels have 1 channel
        ds.status, ds.kind, ds.channels, ds.committed_at = READY, files[0].kind, image.channels, utcnow()
        session.commit()
    return []
