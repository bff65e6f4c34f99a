"""The engine's C++ CPU kernels and their Python glue: ``csrc/`` (the sources), ``loader`` (build
on first use, cache, load as ``torch.ops``), ``norm_act`` (the norm node on the kernels).

``ops()`` is ``torch.ops.ddpm_native`` or None; ``status()`` says in one line whether training
on a CPU uses them and, if not, why. ``ddpm kernels`` builds them ahead of time.
"""
from .loader import available, build_name, ops, status

__all__ = ["available", "build_name", "ops", "status"]
