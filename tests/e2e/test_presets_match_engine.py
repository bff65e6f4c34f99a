"""The New-job presets against the real engine: ddpm.config accepts each one, and the page's
parameter estimate equals the parameter count of the UNet the engine builds from it."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from ddpm.config import load_config
from ddpm.nn.unet import UNet
from e2e_stack import FRONTEND

torch.set_num_threads(1)  # shared 2-core machine (the counts run on the meta device anyway)


@pytest.fixture(scope="module")
def presets() -> list[dict]:
    npx = shutil.which("npx")
    assert npx, "Node.js (npx) is needed to evaluate the frontend's presets"
    if not (FRONTEND / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    out = subprocess.run([npx, "vite-node", "scripts/presets-json.ts"], cwd=FRONTEND, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_six_presets(presets):  # noqa: ANN001
    assert sorted(p["name"] for p in presets) == sorted(f"{d} {s}" for d in ("2d", "3d") for s in ("tiny", "small", "base"))


def test_presets_are_valid_configs_and_the_estimate_is_exact(presets):  # noqa: ANN001
    for p in presets:
        cfg = load_config(p["config"])  # raises ConfigError naming the key if a preset is wrong
        with torch.device("meta"):  # shapes only: no memory, no time
            n = sum(t.numel() for t in UNet.from_config(cfg).parameters())
        assert p["params"] == n, f"{p['name']}: the page estimates {p['params']}, the engine builds {n}"
