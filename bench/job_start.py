"""Where a job's first seconds go, on the real stack (Redis, `python -m backend`, `python -m worker`).

Starts a throwaway Redis, the API and one CPU worker (the worker tests' helpers), uploads 4 tiny
3D volumes, then for ``--rounds`` rounds runs a tiny 3D training job and a 4 x 16³ sample job from
it, listening to each job's events. Prints, per job, seconds from the POST to: the claim (the
``running`` status event), the first phase event, the first progress event, the first training
step, the end (``succeeded``). Nothing is asserted: the numbers go to bench/RESULTS.md.

    PYTHONPATH=. .venv/bin/python bench/job_start.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import threading
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "worker"))  # the real-stack helpers the worker tests use

import worker_helpers as helpers  # noqa: E402
from worker_servers import ApiServer, WorkerProcess, base_env, redis_server  # noqa: E402

COLUMNS = ("claim", "child's first phase", "first progress", "first step", "end")


class Replay(threading.Thread):
    """Every event of a job from its first (``?after=0``), with its arrival time (time.time())."""

    def __init__(self, base_url: str, job_id: int) -> None:
        super().__init__(daemon=True)
        self.url, self.events = f"{base_url}/api/jobs/{job_id}/events?after=0", []
        self.start()

    def run(self) -> None:
        import httpx

        kind, data = None, []
        with httpx.stream("GET", self.url, timeout=httpx.Timeout(5, read=120)) as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data.append(line.split(":", 1)[1].strip())
                elif line == "" and kind is not None:
                    self.events.append((kind, json.loads("\n".join(data)), time.time()))
                    kind, data = None, []


def _times(client, base_url: str, body: dict) -> dict[str, float]:
    t0 = time.time()
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    listener = Replay(base_url, job_id)
    job = helpers.wait_job(client, job_id, timeout=300)
    listener.join(30)
    assert job["status"] == "succeeded", job
    # the claim from the row (the listener may connect after it); event times on the same clock
    out: dict[str, float] = {"claim": dt.datetime.fromisoformat(job["started_at"]).timestamp() - t0}
    for kind, data, at in listener.events:
        if kind == "phase" and data.get("phase") != "starting":  # "starting" comes from the worker
            out.setdefault("child's first phase", at - t0)
        elif kind == "progress":
            out.setdefault("first progress", at - t0)
            if int(data.get("step") or 0) > 0:
                out.setdefault("first step", at - t0)
        elif kind == "status" and data.get("status") == "succeeded":
            out["end"] = at - t0
    return out


def _row(name: str, samples: list[dict[str, float]]) -> str:
    cells = []
    for col in COLUMNS:
        vals = [s[col] for s in samples if col in s]
        cells.append(f"{statistics.median(vals):.2f}" if vals else "—")
    claim = [s["claim"] for s in samples if "claim" in s]
    firsts = [min(s.get("child's first phase", 1e9), s.get("first progress", 1e9)) - s["claim"]
              for s in samples if "claim" in s]
    cells.append(f"{statistics.median(firsts):.2f}" if claim else "—")
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gap", type=float, default=4.0,
                    help="seconds between a job's end and the next POST (an idle worker's spare child "
                         "is ready by then; 0 = back to back)")
    args = ap.parse_args()
    with contextlib.ExitStack() as es:
        root = Path(es.enter_context(tempfile.TemporaryDirectory(prefix="job-start-")))
        url = es.enter_context(redis_server())
        env = base_env(root / "data", url, WORKER_HEARTBEAT_TIMEOUT_S="10")
        api = ApiServer(env, root)
        es.callback(api.stop)
        worker = WorkerProcess("bench", env, root)
        es.callback(worker.stop)
        worker.wait_live(api.client)
        ds = helpers.upload_dataset(api.client, "blobs-3d",
                                    [(f"vols/v{i}.nii.gz", helpers.nifti_bytes(i)) for i in range(4)])
        cfg = helpers.config(helpers.CONFIG_3D, iterations=10, freq_metrics=10, freq_checkpoint=10)
        train, sample = [], []
        for _ in range(args.rounds):
            t = _times(api.client, api.base_url,
                       {"kind": "train", "dataset_id": ds, "config": cfg, "device": "cpu"})
            train.append(t)
            time.sleep(args.gap)
            job_id = api.client.get("/api/jobs").json()
            source = max(j["id"] for j in (job_id if isinstance(job_id, list) else job_id["items"])
                         if j["kind"] == "train")
            sample.append(_times(api.client, api.base_url,
                                 {"kind": "sample", "source_job_id": source, "num_samples": 4,
                                  "device": "cpu"}))
            time.sleep(args.gap)
        print(f"seconds from POST /api/jobs (median of {args.rounds}; last column: claim -> the child's first "
              "phase or progress event)\n")
        print("| job | " + " | ".join(COLUMNS) + " | claim -> child's first event |")
        print("|---" * (len(COLUMNS) + 2) + "|")
        print(_row("train 3D 16³, 10 steps, tiny U-Net", train))
        print(_row("sample 4 x 16³ (default sampler)", sample))


if __name__ == "__main__":
    main()
