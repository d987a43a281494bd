"""The streamed probe's training (:mod:`l3net.evaluate.probe.stream`): each row (a frozen tower and the
linear layer trained on its features) and the loop that trains every row on the same streamed,
augmented batches.

The loop computes only: the checkpoint is written by the caller's ``save(step)``, called at the
steps where one is due, and what cannot be decoded is recorded in the caller's ``skipped``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...config import ModelConfig
from ...inference import inference_model
from ...models import L3Net
from ...runtime import synchronize
from .data import ImageList
from .loader import EpochBatches, ProbeImageDataset, loader


class ProbeRow:
    """A row being trained: its frozen tower, linear layer, Adam and schedule (``config``: the
    :class:`~l3net.evaluate.probe.stream.StreamProbeConfig`)."""

    def __init__(self, model: L3Net, dim: int, classes: int, config: Any, steps_per_epoch: int,
                 device: torch.device) -> None:
        self.fast = inference_model(model, precision=config.precision)
        # momentum=None: running statistics = the plain average over all batches (the tower is frozen, so
        # they are stationary; an exponential average would lag for the short runs of small folders)
        self.norm = torch.nn.BatchNorm1d(dim, affine=False, momentum=None).to(device)
        self.head = torch.nn.Linear(dim, classes).to(device)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=config.lr)
        period = max(1, round(config.lr_decay_epochs * steps_per_epoch))
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=period, gamma=config.lr_decay)
        self.last_loss: torch.Tensor | None = None  # read only for display: no device sync per step

    def features(self, images: torch.Tensor) -> torch.Tensor:
        # a normal fp32 tensor (the inference copy returns inference-mode tensors, which autograd cannot save)
        return self.fast.transfer_features("vision", images).to(torch.float32, copy=True)

    def logits(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        self.norm.train(train)
        return self.head(self.norm(self.features(images)))

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The linear layer with the standardisation folded in: ``logits = features @ W.T + b``."""
        scale = torch.rsqrt(self.norm.running_var + self.norm.eps)
        weight = self.head.weight.detach() * scale
        bias = self.head.bias.detach() - weight @ self.norm.running_mean
        return weight.cpu().clone(), bias.cpu().clone()

    def state(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "norm": self.norm.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.norm.load_state_dict(state["norm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])


def train_rows(
    rows: dict[str, ProbeRow], train: ImageList, model_config: ModelConfig, batches: EpochBatches, config: Any, *,
    device: torch.device, skipped: dict[str, str], found_warnings: dict[str, None], random_rows: set[str],
    save: Callable[[int], None] | None = None,
) -> tuple[float, int]:
    """Train every row on the same batches of ``train`` from ``batches.start`` to the end of
    ``config.epochs`` (``config``: the StreamProbeConfig). Files that cannot be decoded go into
    ``skipped`` (path -> reason), the first distinct decoding warnings into ``found_warnings``;
    ``save(step)`` is called every ``config.checkpoint_every`` steps and at each epoch's end.
    ``random_rows`` names the rows shown as "loss_random" on the bar. Returns ``(seconds, images
    trained on)``; the time ends when the device has finished the last step."""
    per_epoch, total, start = batches.per_epoch, batches.per_epoch * config.epochs, batches.start
    data = ProbeImageDataset(train, model_config, train=True, seed=config.seed)
    trained_images = 0
    began = time.perf_counter()
    step = start
    with tqdm(total=total, initial=start, desc="probe training", unit="step", disable=not config.progress,
              dynamic_ncols=True) as bar:
        for batch in loader(data, batches, workers=config.workers, pin_memory=device.type == "cuda"):
            for index, reason in batch.failures:
                skipped.setdefault(str(train.path(index)), reason)
            remember_warnings(found_warnings, batch.warnings)
            # BatchNorm needs two images: a batch of one (an epoch's last, or all others unreadable) is
            # not trained on, in an interrupted run and a resumed one alike
            if batch.images is not None and len(batch.labels) >= 2:
                x = batch.images.to(device, non_blocking=True)
                y = batch.labels.to(device, non_blocking=True)
                for row in rows.values():
                    logits = row.logits(x, train=True)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                    row.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    row.optimizer.step()
                    row.last_loss = loss.detach()
                trained_images += len(y)
                for row in rows.values():  # the schedule counts optimiser steps (a batch none of whose
                    row.schedule.step()    # images could be read is no step, in a resumed run too)
            step += 1
            bar.update(1)
            if config.progress and (step % 10 == 0 or step == total):
                bar.set_postfix(epoch=f"{(step - 1) // per_epoch + 1}/{config.epochs}", skipped=len(skipped),
                                **{("loss_random" if n in random_rows else "loss"): f"{_value(r.last_loss):.3f}"
                                   for n, r in reversed(rows.items())}, refresh=False)
            if save is not None and (step % config.checkpoint_every == 0 or step % per_epoch == 0):
                save(step)
    synchronize(device)  # the time ends when the device has finished the last steps, not when they were queued
    return time.perf_counter() - began, trained_images


def remember_warnings(found: dict[str, None], messages: list[str], limit: int = 20) -> None:
    """Keep the first ``limit`` distinct ``messages`` in ``found`` (bounded however many files warn)."""
    for message in messages:
        if len(found) >= limit:
            return
        found.setdefault(message, None)


def _value(loss: torch.Tensor | None) -> float:
    return float("nan") if loss is None else float(loss)
