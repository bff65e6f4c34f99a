"""The engine's one precision decision: ``resolve_precision(requested, device) -> PrecisionChoice``.

bf16 pays only where the hardware multiplies in it: CUDA GPUs of compute capability 8.0 or
newer, and CPUs with AVX512-BF16 or AMX-BF16. Elsewhere torch emulates bf16 and a training step
runs many times slower than in fp32 (bench/RESULTS.md, "precision"), so ``"auto"`` (the config
default) picks bf16 only on native hardware and fp32 otherwise. An explicit ``"bf16"`` on
emulating hardware still runs, with a warning that says why it is slow.

The decision itself (``choose_precision``) is a pure function of the device's facts
(``device_facts`` probes them), so every branch can be tested on any machine.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union, get_args

import torch

from ddpm.config_errors import ConfigError
from ddpm.config_train import Precision

log = logging.getLogger("ddpm")

DeviceLike = Union[str, torch.device]

# CPU feature flags (as /proc/cpuinfo and torch.cpu.get_capabilities() spell them) that give
# native bf16 matmuls and convolutions through oneDNN. ARM's BF16 extension is left out: we have
# not measured it, and fp32 is never the trap.
CPU_BF16_FLAGS: dict[str, str] = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DeviceFacts:
    """What the precision decision needs to know about a device."""

    kind: str          # torch device type: "cpu", "cuda"
    name: str          # for messages, e.g. "the CPU (AMD EPYC)", "the GPU (NVIDIA H100)"
    native_bf16: bool  # the hardware computes in bf16 (not emulated)
    bf16_runs: bool    # bf16 works at all, natively or emulated (False on pre-Pascal GPUs)
    evidence: str      # what native_bf16 rests on, e.g. "AVX512-BF16", "no AVX512-BF16 or AMX-BF16"


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and why, in one line a log or a job page can show."""

    requested: str              # what the config (or caller) asked for: auto, fp32, bf16, fp16
    precision: str              # what runs: fp32, bf16 or fp16
    reason: str
    warning: Optional[str] = None  # set when the choice will be slow (bf16 emulated)

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        """The autocast dtype, or None for fp32 (no autocast)."""
        return _DTYPES.get(self.precision)


def choose_precision(requested: str, facts: DeviceFacts, key: str = "model.precision") -> PrecisionChoice:
    """The precision to run for ``requested`` on a device with ``facts``. A precision the device
    cannot run at all is a ConfigError on ``key``."""
    if requested == "auto":
        if facts.native_bf16:
            return PrecisionChoice(requested, "bf16", f"auto: {facts.name} runs bf16 natively ({facts.evidence})")
        return PrecisionChoice(requested, "fp32", f"auto: {facts.name} has no native bf16 ({facts.evidence}), "
                                                  "so bf16 would be emulated and slow")
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", "fp32 as configured")
    if requested == "fp16":
        if facts.kind != "cuda":
            raise ConfigError([(key, "fp16 needs a CUDA GPU (it trains with a gradient scaler); "
                                     "on the CPU use auto, bf16 or fp32")])
        return PrecisionChoice(requested, "fp16", "fp16 as configured (autocast with a gradient scaler)")
    if requested == "bf16":
        if not facts.bf16_runs:
            raise ConfigError([(key, f"{facts.name} has no bf16 support; use auto, fp16 or fp32")])
        if facts.native_bf16:
            return PrecisionChoice(requested, "bf16", f"bf16 as configured; {facts.name} runs it natively "
                                                      f"({facts.evidence})")
        return PrecisionChoice(
            requested, "bf16", f"bf16 as configured, emulated: {facts.name} has no native bf16 ({facts.evidence})",
            warning=f"{key} is bf16 but {facts.name} has no native bf16 ({facts.evidence}): torch emulates "
                    "it, and a training step can take 20 times as long as in fp32; set "
                    f"{key} to auto (or fp32)")
    raise ConfigError([(key, f"{requested!r} is not a precision; allowed values: {', '.join(get_args(Precision))}")])


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
        features = cpu_bf16_features()
        evidence = " and ".join(CPU_BF16_FLAGS[f] for f in features) or \
            f"no {' or '.join(CPU_BF16_FLAGS.values())}"
        return DeviceFacts("cpu", f"the CPU ({_cpu_name()})", bool(features), True, evidence)
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
