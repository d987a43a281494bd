"""Where and how work runs: device choice, numeric precision and worker processes, shared by every entry point."""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import multiprocessing.pool
import os
import platform
import shutil
import warnings
from pathlib import Path
from typing import ContextManager, Iterator

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
    gpu_autotune(resolved)
    return resolved


def gpu_autotune(device: torch.device) -> None:
    """On a GPU, let cuDNN time its kernels once per input shape and keep the fastest.

    Every GPU path reaches this: devices are resolved by :func:`resolve_device` and models run by
    :func:`evaluation`; each runs fixed shapes (full training batches, bounded inference buckets), so
    the timing pays for itself, and a bare-step benchmark sees the same kernels as the real run.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished the work queued on it (a GPU runs behind the host; the CPU's
    work is done when its call returns). Clocks that time device work read after this."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: Compute capability from which NVIDIA GPUs compute bf16 natively (Ampere, Hopper and later).
BF16_NATIVE_CAPABILITY = (8, 0)


def training_math(precision: str, device: torch.device) -> dict[str, object]:
    """Set how a training run on ``device`` computes, and return the choice (for the run's record).

    On a GPU, fp32 means fp32: TF32 (10-bit mantissas in fp32 matrix products and convolutions,
    PyTorch's default for cuDNN) is turned off, so "fp32" gives a CPU's numbers up to summation
    order; the spectrogram and the loss, which stay fp32 under bf16/fp16 autocast, keep their
    precision too. Speed comes from ``--precision bf16`` instead: a run in fp32 on a GPU that
    computes bf16 natively is warned about. cuDNN autotuning is on (:func:`resolve_device`).
    """
    check_precision(precision, device)
    if device.type != "cuda":
        return {"precision": precision, "tf32": None, "cudnn_benchmark": None}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if precision == "fp32" and tuple(torch.cuda.get_device_capability(device)) >= BF16_NATIVE_CAPABILITY:
        warnings.warn(
            f"training in fp32 on {torch.cuda.get_device_name(device)}, which computes bf16 natively: "
            "--precision bf16 trains several times faster (fp32 here is true fp32, TF32 off)",
            stacklevel=2,
        )
    return {"precision": precision, "tf32": False, "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}


#: Shared memory (bytes) that one data loader's ready and in-making batches may fill: its prefetch
#: depth is sized to it. 2 GiB holds 15 workers x 2 paper batches of 256 pairs (63 MB each with int16
#: audio), or 4 batches each for up to 8 workers.
LOADER_SHM_BUDGET = 2 * 1024**3
#: Where DataLoader workers put the batches they hand over (POSIX shared memory on Linux).
SHARED_MEMORY = "/dev/shm"


def loader_prefetch(workers: int, batch_nbytes: int, budget: int = LOADER_SHM_BUDGET) -> int | None:
    """Batches each of ``workers`` loader processes keeps ready (``prefetch_factor``) for batches of
    ``batch_nbytes`` bytes: 4 while ``workers`` x 4 batches fit ``budget`` bytes, down to 2 (the
    fewest that hide a slow batch) for big batches; None without workers (no prefetching)."""
    if workers <= 0:
        return None
    return max(2, min(4, budget // max(1, workers * batch_nbytes)))


def check_shared_memory(need: int, what: str, path: str = SHARED_MEMORY) -> None:
    """Raise :class:`InputError` when ``path`` has less than ``need`` bytes free for ``what`` (the
    loaders that will fill it), instead of a bus error in a worker mid-run. No check where ``path``
    does not exist (platforms that share memory another way)."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return
    if free < need:
        raise InputError(
            f"{path} has {free / 2**20:,.0f} MiB free but {what} need {need / 2**20:,.0f} MiB of shared memory "
            f"(a DataLoader worker that runs out of it dies with a bus error); give the machine or container "
            f"more ({path} is a tmpfs: `docker run --shm-size=8g`, or remount it larger), or use fewer --workers "
            "or a smaller --batch-size"
        )


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool | None:
    """Whether this x86 CPU has bf16 instructions (AVX512-BF16 or AMX); None when unknown.

    Without them, PyTorch's CPU convolutions in bf16 fall back to reference kernels that are two
    orders of magnitude slower than fp32 (measured: 80 s against 0.55 s per paper audio window on
    an AVX2 EPYC).
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`InputError` for an unknown or impossible precision; warn when it would be slow."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 autocast needs a GPU; use bf16 or fp32 on the CPU")
    if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        warnings.warn(
            "bf16 on this CPU: it has no bf16 instructions (AVX512-BF16/AMX), so convolutions run "
            "~100x slower than in fp32; use fp32 here",
            stacklevel=2,
        )


def autocast(precision: str, device: torch.device) -> ContextManager[object]:
    """Autocast context for ``precision`` ("fp32" runs in full precision: results do not change
    between runs; "bf16"/"fp16" use mixed precision)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def evaluation(model: torch.nn.Module, precision: str = "fp32") -> Iterator[torch.device]:
    """Run ``model`` for inference: eval mode (its training flag restored afterwards), no autograd, and
    ``precision``'s autocast; yields the model's device. The one way the embedding API, HEAR and the
    heatmaps run a model."""
    device = next(model.parameters()).device
    check_precision(precision, device)
    gpu_autotune(device)  # a model moved to a GPU by the caller did not pass through resolve_device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(precision, device):
            yield device
    finally:
        model.train(was_training)


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: torch.Tensor,
    *,
    lr: float | None = None,
) -> None:
    """One optimisation step on ``loss``: gradients cleared, the learning rate set (when given),
    backward through the (fp16) gradient scaler, the step, the scaler's update. Training and the
    supervised baselines step the same way."""
    optimizer.zero_grad(set_to_none=True)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


#: The most loader workers a GPU gets by default: one loader core gives ~1,100 pairs of 16:9 frames per
#: second (BENCHMARKS.md, benchmarks/pairs.py; 500-700 on slower cores), so 16 feed the ~8,000 pairs/s
#: that are one H100's physical limit for the paper preset; more would only hold shared memory and files.
MAX_WORKERS_PER_GPU = 16


def default_workers(device: torch.device, world_size: int = 1) -> int:
    """Data loader processes for this rank of a run of ``world_size`` ranks: one on the CPU (the step
    needs the cores); on a GPU, the cores of this rank's share of the node less the one the training
    process runs on (cores - 1 for one GPU), at most :data:`MAX_WORKERS_PER_GPU`. Ranks of one run may
    see different numbers (unequal nodes): the trainer takes the smallest, since the pair stream
    depends on it (``distributed.min_over_ranks``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        return 1 if cores >= 2 else 0
    per_rank = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world_size))))
    return max(1, min(MAX_WORKERS_PER_GPU, per_rank - 1))


def worker_pool(processes: int) -> multiprocessing.pool.Pool:
    """A pool of ``processes`` worker processes (forked where the platform allows) that start fast.

    Forked workers share the parent's memory (torch and all) until they write to it; a garbage
    collection in a worker would write to every object's header and so copy most of that heap
    (~0.3 s per worker here). Objects frozen before the fork are never collected (see :func:`gc.freeze`).
    """
    gc.freeze()
    try:
        return multiprocessing.get_context().Pool(processes)
    finally:
        gc.unfreeze()
