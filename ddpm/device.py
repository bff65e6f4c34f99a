"""The engine's one device decision: ``resolve_device(request) -> torch.device``."""
from __future__ import annotations

import logging
from typing import Union

import torch

log = logging.getLogger("ddpm")

DeviceLike = Union[int, str, torch.device, None]


def resolve_device(request: DeviceLike) -> torch.device:
    """The torch.device a request names.

    - ``None``: the CPU.
    - an ``int`` (a config's ``gpu`` or ``--gpu``): ``cuda:<gpu>``; -1 is the CPU. Where CUDA is
      missing the CPU is used with a warning (a config written for a GPU machine still runs);
      an index this machine does not have is a ConfigError on the key ``gpu``.
    - a ``str`` or ``torch.device`` (``"cpu"``, ``"cuda:1"``): exactly that device; CUDA asked for
      on a machine without it, or an index it does not have, is a RuntimeError.
    """
    if request is None:
        return torch.device("cpu")
    if isinstance(request, int) and not isinstance(request, bool):
        return _from_gpu_index(request)
    dev = torch.device(request)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={str(request)!r} was asked for but CUDA is not available on this "
                               "machine (torch.cuda.is_available() is False); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device={str(request)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def _from_gpu_index(gpu: int) -> torch.device:
    if gpu < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("gpu=%d asked for but CUDA is not available: running on the CPU", gpu)
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if gpu >= count:
        from ddpm.config import ConfigError

        raise ConfigError([("gpu", f"CUDA device {gpu} does not exist; this machine has {count} (0..{count - 1})")])
    return torch.device(f"cuda:{gpu}")
