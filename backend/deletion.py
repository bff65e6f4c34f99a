"""Crash-safe, ordered deletes of datasets and jobs, and the sweep that finishes half-done ones.

Order: mark (a dataset's status becomes ``deleting``: no upload, commit or new job takes it any
more; a job is finished, so nothing writes its run folder), move the folder into
``DATA_DIR/tmp/trash-<kind>-<id>-*`` (one rename: it leaves its place whole or not at all), delete
the row, then empty the trash. A storage fault at any step answers 503/507 (backend.errors) with
the row still there, and the same DELETE retried finishes the job. A crash between the steps leaves
a ``deleting`` dataset or a trash folder naming its row; ``finish_deletes`` (run by the API at
start and periodically) completes those. Every step is idempotent, so two processes doing the
same delete at once converge.
"""
from __future__ import annotations

import logging
import re
import shutil

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.jobs import TERMINAL
from backend.models import DELETING, Dataset, Job
from backend.storage import TRASH_PREFIX, Storage

log = logging.getLogger(__name__)

_TRASH = re.compile(rf"^{TRASH_PREFIX}(dataset|job)-(\d+)-")


def delete_job(session: Session, storage: Storage, job_id: int) -> None:
    """The run folder, then the row (the caller checked the job may go)."""
    storage.move_to_trash(storage.run_dir(job_id), f"job-{job_id}")
    session.execute(delete(Job).where(Job.id == job_id))  # no-op when a sweep got there first
    session.commit()
    storage.empty_trash(f"job-{job_id}")


def delete_dataset(session: Session, storage: Storage, dataset_id: int) -> None:
    """Mark, the files, then the row (the caller checked no active job uses it)."""
    session.execute(update(Dataset).where(Dataset.id == dataset_id).values(status=DELETING))
    session.commit()
    storage.move_to_trash(storage.dataset_dir(dataset_id), f"dataset-{dataset_id}")
    session.execute(delete(Dataset).where(Dataset.id == dataset_id))
    session.commit()
    storage.empty_trash(f"dataset-{dataset_id}")


def finish_deletes(factory: sessionmaker[Session], storage: Storage) -> list[str]:
    """Complete what a crash interrupted; returns what it finished, e.g. ['dataset 3', 'job 7']."""
    done: list[str] = []
    with factory() as s:
        for ds_id in s.scalars(select(Dataset.id).where(Dataset.status == DELETING)):
            delete_dataset(s, storage, ds_id)
            done.append(f"dataset {ds_id}")
        trash = storage.tmp_dir.iterdir() if storage.tmp_dir.is_dir() else ()
        for entry in list(trash):
            if not entry.name.startswith(TRASH_PREFIX):
                continue
            m = _TRASH.match(entry.name)
            if m and m.group(1) == "job":
                row_id = int(m.group(2))
                # moved aside but the row stayed: the job was being deleted (finished jobs only)
                gone = s.execute(delete(Job).where(Job.id == row_id, Job.status.in_(TERMINAL))).rowcount
                s.commit()
                if gone:
                    done.append(f"job {row_id}")
            shutil.rmtree(entry, ignore_errors=True)
    return done
