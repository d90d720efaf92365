"""Which precision a model runs at when the user does not choose: bf16 where the device computes it
natively, else fp32 (``--precision auto``, the default of every command and of :func:`maest.load_model`).

bf16 halves the weights' and activations' bits and, on matrix units built for it (NVIDIA Ampere+,
Intel AMX, AVX512-BF16), runs the transformer 2-4x faster; elsewhere torch emulates it and it is
slower than fp32, so there the default stays fp32 (outputs identical to ``--precision fp32``).
The CPU's flags are read once per process from ``/proc/cpuinfo``; ``MAEST_CPU_BF16=1`` / ``=0``
overrides the CPU decision (for testing, or a CPU whose flags lie).
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["AUTO", "CPU_BF16_ENV", "CPU_BF16_FLAGS", "PrecisionChoice", "PrecisionError", "auto_precision", "cpu_bf16_flags",
           "cpu_flags", "describe", "matmul_weights_cast"]

AUTO = "auto"
CPU_BF16_ENV = "MAEST_CPU_BF16"
# x86 flags of bf16 matrix/vector units: Intel AMX tiles (Sapphire Rapids+), AVX512-BF16 (Cooper Lake,
# Zen 4+). Without one, oneDNN emulates bf16 with fp32 arithmetic plus conversions: slower than fp32.
CPU_BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
_CPUINFO = Path("/proc/cpuinfo")


class PrecisionError(ValueError):
    """The requested precision does not exist or does not run on the chosen device."""


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved precision and why it was chosen, for the summary line (``describe``)."""

    precision: str
    reason: str


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """This CPU's feature flags (the first ``flags`` line of /proc/cpuinfo); None where unreadable
    (not Linux): then the CPU is treated as having no native bf16."""
    try:
        with _CPUINFO.open() as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_bf16_flags(flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """The bf16 flags this CPU has (of :data:`CPU_BF16_FLAGS`), in that order; () if none."""
    flags = cpu_flags() if flags is None else flags
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in (flags or ()))


def _cpu_choice(flags: frozenset[str] | None) -> PrecisionChoice:
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return PrecisionChoice("bf16" if forced == "1" else "fp32", f"auto: {CPU_BF16_ENV}={forced}")
    if forced:
        raise PrecisionError(f"{CPU_BF16_ENV} must be 0 or 1 (or unset), got {forced!r}")
    found = cpu_bf16_flags(flags)
    if found:
        return PrecisionChoice("bf16", f"auto: this CPU has {' and '.join(found)}")
    if flags is None:
        return PrecisionChoice("fp32", "auto: CPU flags unreadable, so no native bf16 assumed")
    return PrecisionChoice("fp32", "auto: this CPU has no AMX or AVX512-BF16 (bf16 would be emulated, slower)")


def auto_precision(device: str | torch.device, flags: frozenset[str] | None = None) -> PrecisionChoice:
    """The default precision on ``device``: bf16 on GPUs and CPUs that compute it natively, fp16 on
    older GPUs (their tensor cores have fp16 only), fp32 elsewhere. ``flags``: the CPU flags to decide
    from (default: this machine's)."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "auto: this GPU has bf16")
        return PrecisionChoice("fp16", "auto: this GPU has no bf16 (compute capability < 8.0)")
    if device.type == "cpu":
        return _cpu_choice(cpu_flags() if flags is None else flags)
    return PrecisionChoice("fp32", f"auto: {device.type} runs fp32")


def describe(choice: PrecisionChoice) -> str:
    """``precision bf16 (auto: this CPU has amx_bf16)``: one phrase for a command's summary line."""
    return f"precision {choice.precision} ({choice.reason})"


_MATMUL_MODULES = (torch.nn.Linear, torch.nn.Conv2d)
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def matmul_weights_cast(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The model to run under autocast at ``precision``: itself for fp32, else a copy whose Linear and
    Conv2d weights and biases are stored in bf16/fp16. Autocast casts exactly these on every batch
    (fp32 -> bf16 of 50M weights for block 7: seconds per batch where the CPU lacks bf16 conversion
    instructions); cast once here with the same rounding, the outputs are the same bit for bit.
    The fp32 model stays as it was (fingerprints, HEAR and Ray actors read it)."""
    dtype = _DTYPES.get(precision)
    if dtype is None:
        return model
    cast = copy.deepcopy(model)
    for module in cast.modules():
        if isinstance(module, _MATMUL_MODULES):
            module.to(dtype)
    return cast
