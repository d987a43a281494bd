"""l3net train's input pipeline set-up: prefetch sized to the batch, shared memory checked before the
workers start, the default worker count."""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from l3net import runtime
from l3net.config import PRESETS
from l3net.distributed import World, min_over_ranks
from l3net.errors import InputError
from l3net.runtime import LOADER_SHM_BUDGET, MAX_WORKERS_PER_GPU, check_shared_memory, default_workers, loader_prefetch
from l3net.train import TrainConfig, train

MIB = 2**20
#: One paper batch of 256 pairs as l3net train loads it: uint8 224 px images, int16 audio and its scale,
#: label, frame time and audio start.
PAPER_BATCH = 256 * (3 * 224 * 224 + PRESETS["paper"].clip_samples * 2 + 4 + 3 * 8)


def test_prefetch_is_sized_to_the_batch() -> None:
    assert loader_prefetch(0, PAPER_BATCH) is None  # no workers: nothing to prefetch
    small = 32 * (3 * 96 * 96 + 48_000 * 2)
    assert loader_prefetch(1, small) == loader_prefetch(8, small) == 4  # small batches: deep enough to hide jitter
    for workers in (4, 8, 15, 32):
        prefetch = loader_prefetch(workers, PAPER_BATCH)
        assert 2 <= prefetch <= 4
        # within the budget unless even 2 batches a worker exceed it (never fewer than 2)
        assert workers * prefetch * PAPER_BATCH <= LOADER_SHM_BUDGET or prefetch == 2
    assert loader_prefetch(15, PAPER_BATCH) == 2 and loader_prefetch(4, PAPER_BATCH) == 4


def test_too_little_shared_memory_is_a_clear_error(synth_shards: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(runtime.shutil, "disk_usage", lambda path: usage(64 * MIB, 64 * MIB - MIB // 2, MIB // 2))
    with pytest.raises(InputError, match=r"/dev/shm has 0 MiB free but 1 rank\(s\) x 2 loaders \(train, val\) x 2 "
                                         r"workers x 4 batches of .* MiB need .* --shm-size"):
        train(TrainConfig(data=str(synth_shards), out=str(tmp_path / "run"), preset="small", batch_size=4, steps=1,
                          val_every=0, val_pairs=8, workers=2), progress=False)
    monkeypatch.setattr(runtime.shutil, "disk_usage", lambda path: usage(64 * MIB, 0, 64 * MIB))
    check_shared_memory(64 * MIB, "these loaders")  # exactly enough
    with pytest.raises(InputError, match="/dev/shm has 64 MiB free but these loaders need 65 MiB"):
        check_shared_memory(65 * MIB, "these loaders")

    def absent(path: str) -> None:
        raise FileNotFoundError(path)

    monkeypatch.setattr(runtime.shutil, "disk_usage", absent)
    check_shared_memory(10**15, "these loaders")  # no /dev/shm: memory is shared another way; nothing to check


@pytest.mark.parametrize("cores,local_ranks,expected", [
    (16, 1, 15),  # one GPU: every core but the training process's
    (64, 1, MAX_WORKERS_PER_GPU),  # more would feed more than a GPU can take
    (32, 4, 7), (16, 8, 1), (4, 8, 1),  # the node's cores shared by its ranks; at least one worker
])
def test_default_workers_on_gpus(monkeypatch: pytest.MonkeyPatch, cores: int, local_ranks: int, expected: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_ranks))
    assert default_workers(torch.device("cuda", 0), local_ranks) == expected


def test_default_workers_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_workers(torch.device("cpu")) == 1  # the step needs the other cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_workers(torch.device("cpu")) == 0


def _agree(rank: int, store: str, counts: list[int], out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=len(counts))
    try:
        agreed = min_over_ranks(counts[rank], World(rank, len(counts), rank), torch.device("cpu"))
        Path(out, f"rank{rank}").write_text(str(agreed))
    finally:
        dist.destroy_process_group()


def test_ranks_agree_on_the_smallest_worker_count(tmp_path: Path) -> None:
    """Ranks on unequal nodes count different defaults; every rank must use the same number."""
    counts = [15, 7]
    torch.multiprocessing.spawn(_agree, args=(str(tmp_path / "store"), counts, str(tmp_path)), nprocs=len(counts))
    assert [(tmp_path / f"rank{r}").read_text() for r in range(len(counts))] == ["7", "7"]
    assert min_over_ranks(15, World(), torch.device("cpu")) == 15  # a world of one asks nobody
