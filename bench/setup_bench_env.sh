#!/usr/bin/env bash
# Creates .bench-venv, the separate environment for bench/unet.py's peer models.
#
# - torch stays the project's pinned torch==2.13.0: .bench-venv sees .venv's site-packages
#   through a .pth file (appended after its own), instead of a second copy of torch (PyPI's
#   Linux torch wheel brings gigabytes of CUDA libraries the CPU machines cannot use).
# - MONAI is installed as published (its only needs, torch and numpy, come from .venv).
# - lucidrains' denoising-diffusion-pytorch is installed with --no-deps: its package imports
#   torchvision, accelerate, ema-pytorch, scipy and pytorch-fid at import time for its Trainer,
#   dataset and FID code, none of which its Unet uses; PyPI's torchvision does not import beside
#   this torch build. bench/unet_peers.py registers inert stand-ins for exactly those modules when
#   they are missing (see lucidrains_unet there); its Unet's real needs (torch, einops,
#   packaging) come from .venv.
# Idempotent: a second run only checks the pins.
set -euo pipefail
cd "$(dirname "$0")/.."

MONAI=1.6.1
DDP=2.3.4

if [ ! -x .venv/bin/python ]; then
    echo "setup_bench_env: .venv is missing; run 'make setup' first" >&2
    exit 1
fi
if [ ! -x .bench-venv/bin/python ]; then
    .venv/bin/python -m venv .bench-venv
fi
main_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
bench_site=$(.bench-venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$main_site" > "$bench_site/_ddpm_studio_main_venv.pth"

have() {  # have NAME VERSION: is exactly that version installed in .bench-venv itself?
    .bench-venv/bin/python - "$1" "$2" "$bench_site" <<'PY'
import sys
from importlib.metadata import distributions
name, version, site = sys.argv[1:]
ok = any(d.metadata["Name"].lower().replace("_", "-") == name and d.version == version
         and str(d.locate_file("")).rstrip("/") == site.rstrip("/") for d in distributions(path=[site]))
sys.exit(0 if ok else 1)
PY
}
have monai "$MONAI" || .bench-venv/bin/python -m pip install -q --no-deps "monai==$MONAI"
have denoising-diffusion-pytorch "$DDP" || .bench-venv/bin/python -m pip install -q --no-deps "denoising-diffusion-pytorch==$DDP"

.bench-venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__} in .bench-venv, expected 2.13.0"
import monai
print(f"bench env ready: torch {torch.__version__}, monai {monai.__version__}, "
      f"denoising-diffusion-pytorch 2.3.4 (--no-deps)")
PY
