"""The error of the run folder's users (train, sample, export) that is the user's to fix."""
from __future__ import annotations


class RunError(RuntimeError):
    """A run folder, checkpoint, exported file or option that cannot be used; the message says
    which and why (the CLI prints it as one line and exits 2)."""
