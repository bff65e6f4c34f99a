"""The engine's precision on this machine: ``resolve_precision(requested, device) -> PrecisionChoice``.

The rule (bf16 only where the hardware runs it natively; "auto" the default) is the pure,
torch-free ``ddpm.precision_rules.choose_precision``; this module probes the device's facts
(``device_facts``), applies the rule, logs the warning of a slow choice and gives the autocast
dtype of a choice.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional, Union

import torch

from ddpm.config.errors import ConfigError
from ddpm.precision_rules import CPU_BF16_FLAGS, DeviceFacts, PrecisionChoice, choose_precision, cpu_facts

__all__ = ["DeviceFacts", "PrecisionChoice", "autocast_dtype", "choose_precision", "cpu_bf16_features",
           "device_facts", "precision_problem", "resolve_precision"]

log = logging.getLogger("ddpm")

DeviceLike = Union[str, torch.device]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(choice: PrecisionChoice) -> Optional[torch.dtype]:
    """The autocast dtype of a choice, or None for fp32 (no autocast)."""
    return _DTYPES.get(choice.precision)


def resolve_precision(requested: str, device: DeviceLike, logger: logging.Logger = log,
                      key: str = "model.precision") -> PrecisionChoice:
    """``choose_precision`` on this machine's ``device``; the warning of a slow choice goes to
    ``logger`` (the trainer passes its own, so the warning lands in train.log)."""
    choice = choose_precision(requested, device_facts(torch.device(device)), key)
    if choice.warning:
        logger.warning(choice.warning)
    return choice


def precision_problem(precision: str, device: DeviceLike) -> Optional[str]:
    """Why running ``precision`` on ``device`` makes no sense (it cannot run, or only emulated),
    or None. Benchmarks use it to skip such variants and say why."""
    try:
        choice = choose_precision(precision, device_facts(torch.device(device)), key="precision")
    except ConfigError as exc:
        return exc.errors[0][1]
    return choice.reason if choice.warning else None


def device_facts(device: torch.device) -> DeviceFacts:
    """Probe ``device`` (a CPU or a CUDA GPU; other device types count as emulating bf16)."""
    if device.type == "cuda":
        return _cuda_facts(device)
    if device.type == "cpu":
        return cpu_facts(cpu_bf16_features(), _cpu_name())
    return DeviceFacts(device.type, f"the {device.type} device", False, True, "not a CPU or CUDA GPU")


@functools.lru_cache(maxsize=1)
def cpu_bf16_features() -> tuple[str, ...]:
    """The native-bf16 flags of this CPU (keys of CPU_BF16_FLAGS), as torch's cpuinfo reads
    CPUID or, where torch does not expose it, as /proc/cpuinfo lists them. (Not oneDNN's
    ``_is_mkldnn_bf16_supported``: that is true on any AVX512 CPU, emulation included.)"""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        caps = get_capabilities()
        return tuple(f for f in CPU_BF16_FLAGS if caps.get(f) is True)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return tuple(f for f in CPU_BF16_FLAGS if f in flags)
    return ()


def _cpu_name() -> str:
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    name = get_capabilities().get("cpu_name") if get_capabilities is not None else None
    return str(name) if name else "unknown model"


def _cuda_facts(device: torch.device) -> DeviceFacts:
    with torch.cuda.device(device):
        major, minor = torch.cuda.get_device_capability()
        runs = torch.cuda.is_bf16_supported()  # counts emulation (compute capability < 8.0)
        name = torch.cuda.get_device_name()
    native = (major, minor) >= (8, 0) and runs
    return DeviceFacts("cuda", f"the GPU ({name})", native, runs, f"compute capability {major}.{minor}")
