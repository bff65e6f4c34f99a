"""One-line failure reasons a user can act on; the full traceback goes to the job log."""
from __future__ import annotations

import signal

_MAX = 300


# Engine errors whose message already says what is wrong and how to fix it.
_SELF_EXPLAINING = {"DataError", "RunError", "NonFiniteLossError", "RuntimeError", "ValueError", "Exception"}


def _one_line(text: str) -> str:
    """Multi-line messages (e.g. a list of unreadable files) joined with '; '."""
    lines = [line.strip().rstrip(":") for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX else text[: _MAX - 1] + "…"


def reason_for(exc: BaseException, hide_prefix: str = "") -> str:
    """Map an exception raised by the engine to one line for the job's ``error`` field.

    ``hide_prefix`` (DATA_DIR) is cut from paths: the user knows files by their dataset path.
    """
    name = type(exc).__name__
    detail = _one_line(exc)
    if hide_prefix:
        detail = detail.replace(hide_prefix.rstrip("/") + "/", "")
    if name == "OutOfMemoryError" or "CUDA out of memory" in detail:
        return ("out of GPU memory: lower dataset.batch_size (raise dataset.grad_accumulation to keep "
                "the effective batch), dataset.image_size or model.unet.dim, or set "
                "model.unet.checkpointing or model.precision bf16")
    if isinstance(exc, MemoryError):
        return ("out of memory (RAM): lower dataset.batch_size or dataset.image_size, "
                "or set dataset.cache false")
    if name == "ConfigError":
        errors = getattr(exc, "errors", None) or []
        parts = [f"{loc}: {msg}" if loc else msg for loc, msg in errors] or [detail]
        return _clip("invalid config: " + "; ".join(parts))
    if not detail:
        return _clip(f"{name} (see the job log for the traceback)")
    # Engine errors already name the file / key and why; keep them as they are.
    return _clip(detail if name in _SELF_EXPLAINING else f"{name}: {detail}")


def reason_for_exit(exitcode: int | None) -> str:
    """The child ended without reporting a result (crashed, or killed by the system)."""
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        try:
            sname = signal.Signals(sig).name
        except ValueError:
            sname = f"signal {sig}"
        if sig == signal.SIGKILL:
            return (f"the training process was killed ({sname}), most often by the system's "
                    "out-of-memory killer: lower dataset.batch_size or dataset.image_size")
        return f"the training process died from {sname}; see the job log"
    return f"the training process exited unexpectedly (exit code {exitcode}); see the job log"
