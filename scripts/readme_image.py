"""Make the README's picture (docs/sample-viewer.png) from the five-minute tour, as a user runs it.

    make readme-image            # or: .venv/bin/python scripts/readme_image.py [--out PATH]

It starts the real stack (a private Redis, ``python -m backend`` serving frontend/dist,
``python -m worker`` on the CPU) over a fresh DATA_DIR on free ports, uploads
examples/phantoms3d (``make example-data``) through REST one file per request, trains the
``tiny_3d`` preset that ``GET /api/config/presets`` serves, draws 4 samples with the default
sampler at 20 steps, opens the sample job's page in headless Chromium and saves the NiiVue
viewer (multiplanar with its 3D-render tile). It prints how long training and sampling took, so
the README's caption can say it. Any error or timeout: one line on stderr and exit 1; the
servers' logs stay in test-artifacts/readme-image/.
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "e2e"))  # the browser tests' stack: one way to start it

from backend.jobs import TERMINAL  # noqa: E402
from e2e_stack import CHROMIUM_ARGS, Stack, chromium_path, ensure_frontend_built, running_stack  # noqa: E402
from servers import wait_until  # noqa: E402  (tests/backend, put on the path by e2e_stack)

PRESET = "tiny_3d"
DATA = REPO / "examples" / "phantoms3d"
OUT = REPO / "docs" / "sample-viewer.png"
LOGS = REPO / "test-artifacts" / "readme-image"
NUM_SAMPLES, SAMPLE_STEPS, SEED = 4, 20, 0
MAX_PNG_BYTES = 300_000
# Bounds for a loaded 2-core machine; the tour says "about 4 minutes" for training.
TRAIN_TIMEOUT_S = 30 * 60
SAMPLE_TIMEOUT_S = 10 * 60
WORKER_START_S = 180
VIEWER_LOAD_MS = 90_000
VIEWER_BG = (15, 18, 23)  # VolumeViewer's backColor [0.06, 0.07, 0.09] in 8 bits


class Failure(Exception):
    """What went wrong, in one line."""


def _ok(resp: Any, what: str) -> Any:
    if resp.status_code >= 400:
        raise Failure(f"{what}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json()


def start_user_worker(stack: Stack) -> None:
    """``python -m worker`` with the environment a user's ``make run`` gives it: the browser
    tests pin OpenMP to one thread to share the machine, which would understate the speed."""
    env = {k: v for k, v in stack.env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["WORKER_NAME"] = "readme"
    proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env,
                            stdout=open(stack.worker_log, "a"), stderr=subprocess.STDOUT)
    stack.procs.append(proc)  # stopped by stack.close()
    stack.worker = proc
    wait_until(lambda: any(w["name"] == "readme" for w in stack.client.get("/api/workers").json()),
               WORKER_START_S, "the worker", proc, stack.worker_log)


def upload_phantoms(stack: Stack) -> int:
    """The tour's REST upload: one PUT per file, then commit; returns the dataset id."""
    files = sorted(DATA.rglob("*.nii.gz"))
    if not files:
        raise Failure(f"no .nii.gz under {DATA.relative_to(REPO)}: run `make example-data` first")
    ds = _ok(stack.client.post("/api/datasets", json={"name": DATA.name}), "create dataset")["id"]
    for f in files:
        rel = "/".join(quote(part) for part in f.relative_to(DATA).parts)
        _ok(stack.client.put(f"/api/datasets/{ds}/files/{rel}", content=f.read_bytes(),
                             headers={"Content-Type": "application/octet-stream"}), f"upload {rel}")
    detail = _ok(stack.client.post(f"/api/datasets/{ds}/commit"), "commit dataset")
    if detail["status"] != "ready":
        raise Failure(f"dataset {ds} is {detail['status']!r} after commit, not 'ready'")
    return ds


def served_preset(stack: Stack, name: str) -> dict:
    presets = _ok(stack.client.get("/api/config/presets"), "GET /api/config/presets")
    for p in presets:
        if p["name"] == name:
            return p["config"]
    raise Failure(f"the API serves no preset {name!r} (it has {', '.join(p['name'] for p in presets)})")


def run_job(stack: Stack, body: dict, timeout_s: float, on_wait: Callable[[dict], None]) -> tuple[dict, float]:
    """POST /api/jobs, then poll until the job ends; returns (job, seconds from POST to its end)."""
    t0 = time.monotonic()
    job = _ok(stack.client.post("/api/jobs", json=body), f"create {body['kind']} job")
    deadline = t0 + timeout_s
    while job["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise Failure(f"{body['kind']} job {job['id']} still {job['status']} after {timeout_s:.0f}s "
                          f"(step {job['progress']['step']}/{job['progress']['total']})")
        if stack.worker is not None and stack.worker.poll() is not None:
            raise Failure(f"the worker exited with {stack.worker.returncode} during {body['kind']} job {job['id']}")
        time.sleep(2)
        job = _ok(stack.client.get(f"/api/jobs/{job['id']}"), f"GET job {job['id']}")
        on_wait(job)
    wall = time.monotonic() - t0
    if job["status"] != "succeeded":
        raise Failure(f"{body['kind']} job {job['id']} {job['status']}: {job.get('error') or 'no error text'}")
    return job, wall


def _progress(label: str) -> Callable[[dict], None]:
    last = {"step": -100, "status": ""}

    def show(job: dict) -> None:  # a line per 50 steps or new status: the run is alive
        step = job["progress"]["step"]
        if step >= last["step"] + 50 or job["status"] != last["status"]:
            last.update(step=step, status=job["status"])
            print(f"  {label}: {job['status']} step {step}/{job['progress']['total']}", flush=True)
    return show


def _running_s(job: dict) -> float:
    """Seconds the worker ran the job (started_at -> finished_at, from the API)."""
    from datetime import datetime

    start, end = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (end - start).total_seconds()


def screenshot_viewer(base_url: str, sample_job: int, out: Path) -> None:
    """The sample job's page in headless Chromium (WebGL2 through SwiftShader); saves the viewer."""
    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, timeout=120_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=base_url)
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"/samples/{sample_job}")
            page.locator("section.viewer[data-state=loaded]").wait_for(timeout=VIEWER_LOAD_MS)
            page.wait_for_timeout(1500)  # a few frames: the 3D tile's first render
            if errors:
                raise Failure(f"the sample page threw: {errors[0]}")
            canvas = np.asarray(Image.open(io.BytesIO(page.get_by_test_id("niivue-canvas").screenshot()))
                                .convert("RGB")).astype(float)
            drawn = float((np.abs(canvas - VIEWER_BG).max(axis=2) > 40).mean())
            if drawn < 0.15:
                raise Failure(f"the NiiVue canvas is nearly empty ({drawn:.0%} drawn): no picture to save")
            png = page.locator("section.viewer").screenshot()  # cropped to the viewer
        finally:
            browser.close()
    save_small_png(png, out)


def save_small_png(png: bytes, out: Path) -> None:
    """Optimised PNG; a 256-colour palette when that is what keeps it under MAX_PNG_BYTES."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    for candidate in (img, img.quantize(256, dither=Image.Dither.NONE)):
        buf = io.BytesIO()
        candidate.save(buf, format="PNG", optimize=True)
        if buf.tell() <= MAX_PNG_BYTES:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(buf.getvalue())
            return
    raise Failure(f"the viewer's PNG is {buf.tell()} bytes even with a palette (limit {MAX_PNG_BYTES})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT.relative_to(REPO)})")
    args = ap.parse_args(argv)
    ensure_frontend_built()
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    with running_stack(LOGS, worker=False) as stack:
        start_user_worker(stack)
        ds = upload_phantoms(stack)
        print(f"uploaded {DATA.relative_to(REPO)} as dataset {ds}; training preset {PRESET}", flush=True)
        config = served_preset(stack, PRESET)
        train, train_wall = run_job(stack, {"kind": "train", "dataset_id": ds, "config": config},
                                    TRAIN_TIMEOUT_S, _progress("train"))
        info = _ok(stack.client.get(f"/api/jobs/{train['id']}/live"), "GET live")["run_info"] or {}
        # sampler left out: the API's default, the one the tour and the form start from
        sample, sample_wall = run_job(stack, {"kind": "sample", "source_job_id": train["id"],
                                              "num_samples": NUM_SAMPLES, "steps": SAMPLE_STEPS, "seed": SEED},
                                      SAMPLE_TIMEOUT_S, lambda job: None)
        shapes = {tuple(s["shape"]) for s in _ok(stack.client.get(f"/api/jobs/{sample['id']}/samples"), "samples")}
        screenshot_viewer(stack.base_url, sample["id"], args.out)
    size = "×".join(map(str, sorted(shapes)[0][1:])) if shapes else "?"
    it = config["model"]["iterations"]
    print(f"training ({PRESET}, {it} steps, device {info.get('device')}, precision {info.get('precision')}): "
          f"{train_wall:.0f} s from POST to succeeded ({_running_s(train):.0f} s on the worker)")
    print(f"sampling ({NUM_SAMPLES} × {size}, {sample['config']['sampler']} at {SAMPLE_STEPS} steps): "
          f"{sample_wall:.0f} s from POST to succeeded ({_running_s(sample):.0f} s on the worker)")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1000} KB)")


def cli() -> int:
    """main() with every failure as one line on stderr and exit status 1."""
    try:
        main()
        return 0
    except KeyboardInterrupt:
        print("readme_image: interrupted", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - a documentation generator: any failure is one line and exit 1
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"readme_image: {type(exc).__name__}: {text[:400]} (logs in {LOGS.relative_to(REPO)}/)",
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(cli())
