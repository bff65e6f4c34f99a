"""Errors of the training/sampling pipeline that are the user's to fix (shown as one line)."""
from __future__ import annotations


class RunError(RuntimeError):
    """A run folder, checkpoint or option that cannot be used; the message says which and why."""


class NonFiniteLossError(RuntimeError):
    """Training stopped after too many consecutive non-finite losses or gradients."""
