"""The data a training run reads: its pair streams (:class:`l3net.data.sampler.AVCPairs`, each rank
its share of the global batch) and the data loaders that carry them."""

from __future__ import annotations

import os
from typing import Any

import torch

from ..config import ModelConfig
from ..distributed import World
from ..errors import DatasetError
from ..runtime import check_shared_memory, loader_prefetch
from .config import TrainConfig
from .log import say


def pair_stream(config: TrainConfig, model_config: ModelConfig, world: World, augment: Any, *, train: bool,
          step: int) -> Any:
    """The train split's stream from ``step`` completed steps on (``train``), or the val split's fixed
    pairs; ``config`` is the run's resolved config, ``augment`` its AugmentConfig."""
    from ..data.sampler import AVCPairs

    return AVCPairs(
        config.data,
        "train" if train else "val",
        config=model_config,
        batch_size=config.batch_size // world.world_size,
        train=train,
        seed=config.seed,
        rank=world.rank,
        world_size=world.world_size,
        start_step=step if train else 0,
        augment=augment,
        pcm=True,  # half the audio bytes through shared memory and pinning
    )


def check_streams(stream: Any, workers: int, world: World) -> None:
    """Raise a clear error now, not from inside a worker, when a (rank, worker) stream has no videos."""
    streams = max(1, workers)
    for c in range(streams):
        stream.stream_videos(world.rank * streams + c, world.world_size * streams)


def make_loader(dataset: Any, config: TrainConfig, world: World, device: torch.device) -> torch.utils.data.DataLoader:
    """A loader of ``dataset``'s whole batches with the run's workers (checked against shared memory)."""
    workers = config.workers or 0
    prefetch = loader_prefetch(workers, dataset.batch_nbytes)
    if workers:
        # While validation runs, the train loader's batches wait beside the val loader's (same size),
        # and the ranks of a node share its shared memory.
        ranks = int(os.environ.get("LOCAL_WORLD_SIZE", world.world_size))
        check_shared_memory(2 * ranks * workers * prefetch * dataset.batch_nbytes,
                            f"{ranks} rank(s) x 2 loaders (train, val) x {workers} workers x {prefetch} "
                            f"batches of {dataset.batch_nbytes / 2**20:.1f} MiB")
    # The loader's own generator: worker seeds must not depend on what else drew from torch's RNG.
    generator = torch.Generator().manual_seed(config.seed * 1000 + world.rank)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # the sampler yields whole batches
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=prefetch,
        generator=generator,
    )


def make_val_loader(config: TrainConfig, model_config: ModelConfig, world: World, augment: Any,
               device: torch.device) -> torch.utils.data.DataLoader | None:
    """The val split's fixed pairs (each rank its share), or None with a warning when unusable."""
    try:
        val_pairs = pair_stream(config, model_config, world, augment, train=False, step=0)
        val_pairs.eval_pairs()
    except DatasetError as exc:
        say(world, f"l3net train: warning: no validation ({exc}); the final model will be the run's model")
        return None
    return make_loader(val_pairs, config, world, device)
