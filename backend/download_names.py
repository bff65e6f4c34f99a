"""File names for downloads (Content-Disposition): say what the file is, not only ids.

``brains-job2-step400-sample0.nii.gz`` instead of ``job2-sample0-3.nii.gz``: the dataset the
model learnt from, the job, the training step the sample comes from and its index.
"""
from __future__ import annotations

import re
from typing import Optional

from sqlalchemy.orm import Session

from backend.models import Dataset, Job, Sample

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 60


def slug(text: str) -> str:
    """``text`` as a file-name part: letters, digits, '.', '_' and '-' ('My brains!' -> 'My-brains')."""
    return _UNSAFE.sub("-", text).strip("-.")[:MAX_STEM].strip("-.")


def job_label(session: Session, job: Optional[Job]) -> str:
    """The name a job's files start with: its dataset's (a sample job: its source model's), else 'ddpm'."""
    seen: set[int] = set()
    while job is not None and job.id not in seen:
        seen.add(job.id)
        if job.dataset_id is not None:
            ds = session.get(Dataset, job.dataset_id)
            if ds is not None and slug(ds.name):
                return slug(ds.name)
        job = session.get(Job, job.source_job_id) if job.source_job_id is not None else None
    return "ddpm"


def sample_file_name(session: Session, sample: Sample, ext: str) -> str:
    """``<dataset>-job<id>[-step<step>]-sample<index><ext>``."""
    step = f"-step{sample.step}" if sample.step is not None else ""
    return f"{job_label(session, session.get(Job, sample.job_id))}-job{sample.job_id}{step}-sample{sample.index}{ext}"
