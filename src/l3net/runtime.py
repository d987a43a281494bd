"""Where and how a model runs: device choice and numeric precision, shared by every entry point."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from .errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: the first CUDA GPU if there is one, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r} ({exc})") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but no CUDA GPU is available")
    return resolved


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 autocast needs a GPU; use bf16 or fp32 on the CPU")


def autocast(precision: str, device: torch.device) -> ContextManager[object]:
    """Autocast context for ``precision`` ("fp32" runs in full precision: results do not change
    between runs; "bf16"/"fp16" use mixed precision)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
