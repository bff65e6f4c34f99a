"""The bounds of every integer a request carries, defined once.

Ids and counters are 64-bit signed integers in SQLite and PostgreSQL: a larger value must be a
422 from validation, not an OverflowError from the driver (a 500). Path and query parameters
use the ``*Id``/``Offset`` types below, request bodies ``RowId``.
"""
from __future__ import annotations

from typing import Annotated, Optional

from fastapi import Path, Query
from pydantic import Field

DB_INT_MAX = 2**63 - 1  # the largest value of a 64-bit signed database integer

RowId = Annotated[int, Field(ge=1, le=DB_INT_MAX)]  # an id inside a JSON body

JobId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a job's id")]
DatasetId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a dataset's id")]
FileId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a dataset file's id")]
SampleId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a sample's id")]

OptionalDatasetIdQuery = Annotated[Optional[int], Query(ge=1, le=DB_INT_MAX, description="only this dataset's")]
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX, description="skip this many")]
StepAfter = Annotated[int, Query(ge=-1, le=DB_INT_MAX, description="only steps after this one")]
EventIdAfter = Annotated[Optional[int], Query(ge=0, le=DB_INT_MAX, description=(
    "replay events after this id (EventSource cannot set headers)"))]


def parse_event_id(value: Optional[str]) -> Optional[int]:
    """A ``Last-Event-ID`` header as an event id; None when absent or not one (a client's stale or
    garbled header starts a fresh stream rather than failing it)."""
    value = (value or "").strip()
    if not value.isdigit() or len(value) > 19:
        return None
    n = int(value)
    return n if n <= DB_INT_MAX else None
