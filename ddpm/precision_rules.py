"""The precision decision as a pure, torch-free function: ``choose_precision(requested, facts)``.

bf16 pays only where the hardware multiplies in it: CUDA GPUs of compute capability 8.0 or
newer, and CPUs with AVX512-BF16 or AMX-BF16. Elsewhere torch emulates bf16 and a training step
runs many times slower than in fp32 (bench/RESULTS.md, "precision"), so ``"auto"`` (the config
default) picks bf16 only on native hardware and fp32 otherwise. An explicit ``"bf16"`` on
emulating hardware still runs, with a warning that says why it is slow.

Torch-free so that the API can judge a job against the facts its workers report, in the same
words the engine logs; ``ddpm.precision`` probes this machine's devices and applies it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, get_args

from ddpm.config.errors import ConfigError
from ddpm.config.train import Precision

__all__ = ["CPU_BF16_FLAGS", "DeviceFacts", "PrecisionChoice", "choose_precision", "cpu_facts"]

# CPU feature flags (as /proc/cpuinfo and torch.cpu.get_capabilities() spell them) that give
# native bf16 matmuls and convolutions through oneDNN. ARM's BF16 extension is left out: we have
# not measured it, and fp32 is never the trap.
CPU_BF16_FLAGS: dict[str, str] = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


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

    requested: str                 # what the config (or caller) asked for: auto, fp32, bf16, fp16
    precision: str                 # what runs: fp32, bf16 or fp16
    reason: str
    warning: Optional[str] = None  # set when the choice will be slow (bf16 emulated)


def cpu_facts(flags: Iterable[str], cpu_name: str) -> DeviceFacts:
    """The facts of a CPU with these feature flags (any superset of CPU_BF16_FLAGS' keys)."""
    have = set(flags)
    features = [f for f in CPU_BF16_FLAGS if f in have]
    evidence = " and ".join(CPU_BF16_FLAGS[f] for f in features) or f"no {' or '.join(CPU_BF16_FLAGS.values())}"
    return DeviceFacts("cpu", f"the CPU ({cpu_name})", bool(features), True, evidence)


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
