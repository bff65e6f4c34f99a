"""Relays the engine child's reports to the job's rows and SSE events (``worker.store`` ->
``backend.reporting``), and notes starts and resumes in the job log.

Progress is coalesced: the newest report is written when ``interval_s`` has passed since the
last write (the child sends ~5 per second, the UI wants about one), and always before metrics,
samples and the end of the job, so the row never lags a metric step.

At each start the rows are made to match the run's own ``metrics.jsonl`` up to the start step:
later rows are dropped (an attempt that died after them but before its next checkpoint), and
rows the file holds but the database does not are restored (a worker killed between the engine
writing a metric step, then its checkpoint, and the row reaching the database).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

from worker.joblog import append_log

log = logging.getLogger("worker.report_relay")


class ReportRelay:
    def __init__(self, store: Any, job_id: int, log_path: str, interval_s: float = 0.5,
                 default_total: int = 0, metrics_file: Optional[Path] = None) -> None:
        self.store = store
        self.metrics_file = metrics_file  # the run's metrics.jsonl (train and fine-tune jobs)
        self.job_id = job_id
        self.log_path = log_path
        self.interval_s = interval_s
        self.total = default_total
        self.step = 0
        self._pending: Optional[dict] = None
        self._last_write = 0.0

    def handle(self, kind: str, payload: dict) -> None:
        """Best effort: a report that cannot be written (database busy or away) is logged and
        dropped; it must never stop a training run that is otherwise fine."""
        try:
            self._handle(kind, payload)
        except Exception as exc:  # noqa: BLE001
            log.warning("job %s: %s report not written: %s", self.job_id, kind, exc)

    def _handle(self, kind: str, payload: dict) -> None:
        if kind == "progress":
            self._pending = payload
            self.tick()
        elif kind == "start":
            self.total = int(payload.get("total") or self.total)
            self.step = int(payload.get("step") or 0)
            where = payload.get("resumed_from")
            append_log(self.log_path, f"[worker] {'resuming from ' + where if where else 'starting'} "
                                      f"at step {self.step} of {self.total}")
            # rows past the start step were written by an attempt that died before its next
            # checkpoint, or before its first (a start at step 0 after a kill keeps none)
            self.store.discard_after(self.job_id, self.step)
            self._restore_metrics()
            self._pending = {"step": self.step, "total": self.total}
            self._flush()
        elif kind == "phase":
            self._flush()  # the step reached so far first, then what comes next
            self.store.phase(self.job_id, str(payload.get("phase")), payload.get("done"), payload.get("total"))
        elif kind == "run_info":
            self.store.run_info(self.job_id, dict(payload))
            append_log(self.log_path, f"[worker] device {payload.get('device')}, precision "
                                      f"{payload.get('precision')} ({payload.get('precision_reason')})")
        elif kind == "metrics":
            self._flush()
            values = dict(payload.get("metrics") or {})
            self.store.metrics(self.job_id, int(payload["step"]), values)
        elif kind == "samples":
            self._flush()
            for f in payload.get("files") or []:
                self.store.sample(self.job_id, int(f["index"]), f["shape"], f.get("volume_path"),
                                  f.get("preview_path"), payload.get("step"))
        elif kind == "checkpoint":
            step = int(payload["step"])
            self.store.checkpoint(self.job_id, step)
            self.advance(step)
        else:
            log.warning("job %s: unknown report %r from the child", self.job_id, kind)

    def _restore_metrics(self) -> None:
        """Rows for the metric steps up to the start step that the run's metrics.jsonl holds
        (the engine truncates it to the checkpoint it resumes from) and the database lacks."""
        if self.metrics_file is None or not self.metrics_file.is_file():
            return
        have = self.store.metric_steps(self.job_id)
        for line in self.metrics_file.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: the engine rewrites the file on its next metric step
            step = record.get("step") if isinstance(record, dict) else None
            if isinstance(step, int) and 0 < step <= self.step and step not in have:
                self.store.metrics(self.job_id, step, record)
                have.add(step)

    def advance(self, step: int) -> None:
        """The run is known to be at ``step`` (a checkpoint, its final result): the progress row
        must not lag behind it (the engine throttles its progress reports)."""
        if step > self.step and (self._pending is None or int(self._pending.get("step") or 0) < step):
            self._pending = {**(self._pending or {}), "step": step, "total": self.total}

    def tick(self) -> None:
        """Write the newest progress if the interval has passed (called by the supervisor loop)."""
        if self._pending is not None and time.monotonic() - self._last_write >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        try:
            self._flush()
        except Exception as exc:  # noqa: BLE001 - see handle
            log.warning("job %s: progress not written: %s", self.job_id, exc)

    def _flush(self) -> None:
        p, self._pending = self._pending, None
        if p is None:
            return
        self.step = int(p.get("step") or 0)
        self.total = int(p.get("total") or self.total)
        self.store.progress(self.job_id, self.step, self.total, p.get("it_s"), p.get("eta_s"), p.get("loss"))
        self._last_write = time.monotonic()
