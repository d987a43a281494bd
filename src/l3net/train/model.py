"""The network a training run trains: built from its preset (or with the towers of another model),
with its optimizer and loss scaler, and as the step runs it (DDP over the processes, compiled)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import ModelConfig
from ..distributed import World
from ..errors import InputError
from ..models import L3Net, build_model
from .config import TrainConfig
from .state import TrainState


def init_towers(model: L3Net, source: str) -> None:
    """Copy both towers of the model ``source`` names (a model directory, ``openl3:NAME``) into
    ``model``, in place; its head stays as built. The two must share the architecture."""
    from ..modelspec import load_model  # any spec: a directory or openl3:NAME

    trained = load_model(source)
    trained.require("vision", "audio")
    mine = dataclasses.replace(model.config, name="", head_hidden=0)
    theirs = dataclasses.replace(trained.config, name="", head_hidden=0)
    if mine != theirs:
        differ = [f.name for f in dataclasses.fields(mine) if getattr(mine, f.name) != getattr(theirs, f.name)]
        raise InputError(
            f"--init-from {source}: its towers are a '{trained.config.name}' network, not '{model.config.name}' "
            f"(they differ in {', '.join(differ)}); train with --preset {trained.config.name}"
        )
    for part in ("vision", "audio"):
        getattr(model, part).load_state_dict(getattr(trained, part).state_dict())


def build_state(config: TrainConfig, model_config: ModelConfig, world: World, device: torch.device) -> TrainState:
    """A new run's state: the model (seeded by ``config.seed``), Adam with L2 weight decay as the paper,
    and the fp16 loss scaler, on ``device``."""
    model = build_model(model_config, seed=config.seed)
    if config.init_from:  # the towers of a trained or converted model, a new (random) head
        init_towers(model, config.init_from)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.sync_bn and world.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda" or None
    )
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    return TrainState(model=model, optimizer=optimizer, scaler=scaler)


def wrap_for_step(model: nn.Module, config: TrainConfig, world: World, device: torch.device) -> nn.Module:
    """The model as the step runs it: DDP over the processes, then (optionally) compiled."""
    if world.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        model = torch.compile(model)
    return model
