"""Errors of the training loop (a run folder or checkpoint the user must fix is ddpm.run.RunError)."""
from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """Training stopped after too many consecutive non-finite losses or gradients."""
