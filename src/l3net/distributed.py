"""Data-parallel set-up for ``l3net train``: one process per device, started by ``torchrun``.

``torchrun --nproc_per_node G -m l3net train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the
rendezvous address) in each process's environment; a plain ``l3net train`` has none of them and runs
as a world of one. GPUs talk over NCCL, CPU processes over Gloo. Only rank 0 writes files; an error
found by one rank is shared with all of them so that no rank waits forever on the others.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import InputError, L3NetError
from .runtime import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Where this process stands among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world_from_env() -> World:
    """The world ``torchrun`` describes in the environment (a world of one without it)."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as exc:
        raise InputError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from exc
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"inconsistent distributed environment: RANK={rank}, WORLD_SIZE={world_size}")
    return World(rank=rank, world_size=world_size, local_rank=local_rank)


def setup(device: str | None = None, timeout_s: float = 1800.0) -> tuple[World, torch.device]:
    """Join the process group (when there is more than one process) and pick this rank's device.

    ``device``: ``None``/"auto" (a GPU if there is one, else the CPU), "cpu", "cuda". Under torchrun a
    GPU run uses ``cuda:LOCAL_RANK``. ``timeout_s`` bounds how long a rank waits for the others.
    """
    world = world_from_env()
    resolved = resolve_device(device)
    if resolved.type == "cuda" and world.distributed:
        if world.local_rank >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        resolved = torch.device("cuda", world.local_rank)
    if resolved.type == "cuda":
        if resolved.index is None:  # "cuda": the current GPU, named, so that every use agrees
            resolved = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(resolved)
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend, "timeout": datetime.timedelta(seconds=timeout_s)}
        if backend == "nccl":
            kwargs["device_id"] = resolved  # binds the communicator to this rank's GPU up front
        dist.init_process_group(**kwargs)
    return world, resolved


def teardown() -> None:
    """Leave the process group (a no-op for a world of one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(obj: T, world: World, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank (any picklable object)."""
    if not world.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def gather_to_main(obj: T, world: World) -> list[T] | None:
    """Every rank's ``obj``, in rank order, on rank 0 (``None`` elsewhere)."""
    if not world.distributed:
        return [obj]
    out: list[T] | None = [None] * world.world_size if world.is_main else None  # type: ignore[list-item]
    dist.gather_object(obj, out, dst=0)
    return out


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place (returns it)."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def min_over_ranks(value: int, world: World, device: torch.device) -> int:
    """The smallest of every rank's ``value``, the same on every rank (``device``: where this rank's
    collectives run: its GPU under NCCL, the CPU under Gloo)."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def run_on_main(fn: Any, world: World, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on rank 0 only and give its result to every rank.

    If it raises an :class:`~l3net.errors.L3NetError` there, every rank raises the same message, so
    the others stop with the reason instead of hanging in the next collective.
    """
    result, error, original = None, None, None
    if world.is_main:
        try:
            result = fn(*args, **kwargs)
        except L3NetError as exc:
            if not world.distributed:
                raise
            error, original = (type(exc), str(exc)), exc
    result, error = broadcast((result, error), world)
    if original is not None:
        raise original
    if error is not None:
        raise _rebuild(*error)
    return result


def _rebuild(kind: type, message: str) -> L3NetError:
    # MediaError takes (path, reason); every other l3net error takes the message alone.
    exc = L3NetError.__new__(kind)
    Exception.__init__(exc, message)
    return exc
