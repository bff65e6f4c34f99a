"""Page helpers for the browser tests: screenshots, canvas pixel statistics, job waiting."""
from __future__ import annotations

import io
import json
import re
import struct
import time
from pathlib import Path

import numpy as np
from PIL import Image

from e2e_stack import ARTIFACTS

VIEWER_BG = np.array([0.06, 0.07, 0.09]) * 255  # VolumeViewer's backColor
TERMINAL = {"succeeded", "failed", "cancelled"}


def shot(page, name: str) -> Path:  # noqa: ANN001
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-picture
    page.screenshot(path=str(path), full_page=True)
    return path


def canvas_pixels(page) -> np.ndarray:  # noqa: ANN001
    """What the NiiVue canvas shows, as composited on screen (H, W, 3) uint8."""
    png = page.get_by_test_id("niivue-canvas").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def canvas_stats(rgb: np.ndarray) -> dict[str, float]:
    """Share of pixels that are not background, grey levels used, colourfulness."""
    diff = np.abs(rgb.astype(float) - VIEWER_BG).max(axis=2)
    drawn = diff > 40
    grey = rgb.astype(float).mean(axis=2)
    spread = (rgb.max(axis=2).astype(float) - rgb.min(axis=2))[drawn]
    return {
        "drawn": float(drawn.mean()),
        "levels": float(len(np.unique(grey[drawn].round()))) if drawn.any() else 0.0,
        "mean": float(grey.mean()),
        "colour": float(np.median(spread)) if drawn.any() else 0.0,
    }


def wait_viewer_loaded(page, timeout_ms: int = 60_000) -> None:  # noqa: ANN001
    page.locator("section.viewer[data-state=loaded]").wait_for(timeout=timeout_ms)
    page.wait_for_timeout(700)  # a few frames for the first draw


def watch_job(page, progress_name: str, timeout_s: float = 240) -> list[dict]:  # noqa: ANN001
    """Poll the job page until its badge shows a final status; returns what was seen."""
    seen: list[dict] = []
    bar = page.get_by_role("progressbar", name=progress_name)
    badge = page.locator(".page-head .badge")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = {
            "status": badge.inner_text(),
            "value": float(bar.get_attribute("aria-valuenow") or 0) if bar.count() else None,
            "points": int(page.get_by_test_id("loss-chart").get_attribute("data-points") or 0)
            if page.get_by_test_id("loss-chart").count() else None,
            "speed": page.locator("dt:has-text('Speed') + dd").inner_text()
            if page.locator("dt:has-text('Speed')").count() else None,
        }
        if not seen or {k: v for k, v in state.items()} != {k: v for k, v in seen[-1].items() if k != "t"}:
            seen.append({**state, "t": round(time.monotonic(), 2)})
        if state["status"] in TERMINAL:
            return seen
        page.wait_for_timeout(100)
    raise TimeoutError(f"job did not finish within {timeout_s}s; last seen {seen[-1:]}")


def read_safetensors_header(data: bytes) -> dict:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])


def path_tail(text: str, path: str) -> str:
    """The server's reason without the leading file path (the UI shows the path beside it)."""
    return re.sub(r"^[:\s]+", "", text[len(path):]) if text.startswith(path) else text
