"""Training Table 1's supervised baselines, resumable (see :mod:`l3net.evaluate.baselines`).

Three stages, in order: the vision classifier, the audio classifier, then the fusion head on both
trained towers, frozen. Each is a plain loop with the paper's Adam settings and the same
optimisation step as ``l3net train`` (:func:`l3net.runtime.optimizer_step`), on batches that are a
pure function of the step (:mod:`l3net.evaluate.baselines.networks`). Everything a resumed training needs
(per stage: the step, the trained weights, the optimizer and gradient-scaler state, the history
and the running sums of the current history entry) is one file, ``checkpoint/state.pt``, written
atomically by :mod:`l3net.checkpoint` every ``save_every`` steps and at the end of each stage, with
the :class:`TrainPlan` as its fingerprint; resuming from it ends, on the CPU, with exactly the networks of an uninterrupted training.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ...checkpoint import resume_checkpoint, save_checkpoint
from ...config import ModelConfig
from ...data.sampler import AugmentConfig, AVCPairs
from ...data.shards import ShardSet
from ...errors import InputError
from ...models import MODALITIES, L3Net, build_model
from ...runtime import autocast, optimizer_step
from .networks import ClassifierClips, History, TowerClassifier, new_classifier, vision_batches

#: The loop's name in its checkpoint (l3net.checkpoint).
CHECKPOINT_KIND = "baselines"
CHECKPOINT_FILE = "state.pt"
#: The stages, in the order they train.
STAGES = ("vision", "audio", "head")
#: History entries per stage at most (a long stage averages more steps per entry).
HISTORY_POINTS = 50


@dataclass(frozen=True)
class TrainPlan:
    """What defines a supervised training: a checkpoint resumes only under the same plan."""

    config: ModelConfig
    classes: tuple[str, ...]
    classifier_steps: int
    head_steps: int
    batch_size: int
    lr: float
    head_lr: float
    weight_decay: float
    seed: int
    precision: str
    augment: AugmentConfig
    workers: int
    data_fingerprint: str

    def fingerprint(self) -> dict[str, Any]:
        """The plan as JSON values: its checkpoint's fingerprint (a resume needs an equal one)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"] = self.config.name
        out["augment"] = dataclasses.asdict(self.augment)
        return out


@dataclass
class Trained:
    """The trained parts: both classifiers, the supervised-pretraining network, their histories."""

    classifiers: dict[str, TowerClassifier]
    network: L3Net
    histories: dict[str, History]
    resumed_from: dict[str, int]  # per stage, the step the checkpoint had reached (0: none)


class Checkpoint:
    """``DIR/state.pt``: the state of every stage, saved atomically every ``save_every`` steps."""

    def __init__(self, directory: str | os.PathLike[str], plan: TrainPlan, save_every: int) -> None:
        if save_every < 1:
            raise InputError(f"save_every must be at least 1, got {save_every}")
        self.path = Path(directory) / CHECKPOINT_FILE
        self.fingerprint = plan.fingerprint()
        self.save_every = save_every

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, dict[str, Any]]:
        """The stages' states; an :class:`InputError` for a corrupt file or another plan (naming what differs)."""
        state = resume_checkpoint(self.path, CHECKPOINT_KIND, self.fingerprint,
                                  advice="Resume with the same options (and --model) as the interrupted run, "
                                  "or use another --out")
        return state["stages"]

    def save(self, stages: Mapping[str, Any]) -> None:
        """Write the stages' states, atomically (an :class:`~l3net.errors.OutputError` on a full disk)."""
        save_checkpoint(self.path, CHECKPOINT_KIND, self.fingerprint, {"stages": dict(stages)})


def _batches(dataset: torch.utils.data.IterableDataset, workers: int, pin_memory: bool = False) -> Iterator[Any]:
    """The dataset's batches, read here (``workers`` 0) or by DataLoader worker processes, in pinned
    memory when ``pin_memory`` (for a GPU: copies to it then run without waiting); the dataset's files
    are closed when the iteration is dropped."""
    try:
        if workers == 0 and not pin_memory:
            yield from dataset
        else:
            yield from DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory)
    finally:
        close = getattr(dataset, "close", None)
        if close is not None:
            close()


def _run_stage(
    name: str,
    *,
    trainable: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batches: Callable[[int], Iterator[Any]],
    step_fn: Callable[[Any], tuple[Any, Any, int]],
    total: int,
    stages: dict[str, Any],
    checkpoint: Checkpoint | None,
    desc: str,
    progress: bool,
    diverged: str,
) -> tuple[History, int]:
    """Train ``trainable`` for ``total`` steps (from the stage's saved state, if any); its history
    and the step it resumed from.

    ``step_fn`` returns the batch's summed loss and correct count as device tensors (a float64 sum
    is exactly what adding the host's floats gave) and its size; they reach the host only at history
    points and checkpoints, where a non-finite loss stops the stage (``diverged`` + the value) before
    anything is saved: no host sync per step."""
    saved = stages.get(name)
    history, start, running = History(every=max(1, math.ceil(total / HISTORY_POINTS))), 0, [0.0, 0, 0]
    if saved is not None:
        trainable.load_state_dict(saved["model"])
        start, history, running = int(saved["step"]), History(**saved["history"]), list(saved["running"])
        if start < total:
            optimizer.load_state_dict(saved["optimizer"])
            scaler.load_state_dict(saved["scaler"])

    def on_host(step: int) -> list[Any]:
        """The running sums on the host (one sync); a non-finite loss sum is an error."""
        host = [float(running[0]), int(running[1]), int(running[2])]
        if not math.isfinite(host[0]):
            raise InputError(f"{diverged} (the loss became {host[0]} at or before step {step:,})")
        return host

    def state(step: int, finished: bool) -> dict[str, Any]:
        out = {"step": step, "model": trainable.state_dict(), "history": dataclasses.asdict(history),
               "running": on_host(step)}
        if not finished:
            out.update(optimizer=optimizer.state_dict(), scaler=scaler.state_dict())
        return out

    if start >= total:
        return history, start
    source = batches(start)
    with tqdm(total=total, initial=start, desc=desc, unit="step", disable=not progress, dynamic_ncols=True,
              leave=False) as bar:
        for step in range(start, total):
            loss_sum, correct, seen = step_fn(next(source))
            running = [running[0] + loss_sum, running[1] + correct, running[2] + seen]
            bar.update(1)
            if (step + 1) % history.every == 0 or step + 1 == total:
                loss_sum, correct_sum, seen_sum = on_host(step + 1)
                history.step.append(step + 1)
                history.loss.append(loss_sum / max(seen_sum, 1))
                history.accuracy.append(correct_sum / max(seen_sum, 1))
                running = [0.0, 0, 0]
                bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.accuracy[-1]:.2f}")
            if checkpoint is not None and (step + 1) % checkpoint.save_every == 0 and step + 1 < total:
                stages[name] = state(step + 1, False)
                checkpoint.save(stages)
    source.close()  # stops DataLoader workers, closes the shard files
    stages[name] = state(total, True)
    if checkpoint is not None:
        checkpoint.save(stages)
    return history, start


def _supervised_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     device: torch.device, precision: str) -> Callable[[Any], tuple[Any, Any, int]]:
    """One cross-entropy step on ``(inputs, class indices)``; inputs of index -1 (unlabelled) left out.
    Returns the summed loss and correct count on the device, and the batch size (see :func:`_run_stage`)."""

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[Any, Any, int]:
        x, y = batch
        keep = y >= 0  # on the host, as the loader gave it: reading it waits for no device
        if not bool(keep.any()):
            return 0.0, 0, 0
        if not bool(keep.all()):  # (a copy: the pinned batch is used as is when every input is labelled)
            x, y = x[keep], y[keep]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(precision, device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer_step(optimizer, scaler, loss)
        return loss.detach().double() * len(y), (logits.detach().argmax(-1) == y).sum(), len(y)

    return step


def train_supervised(
    shards: ShardSet,
    plan: TrainPlan,
    *,
    device: torch.device,
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Trained:
    """Train both classifiers and the supervised-pretraining head under ``plan`` (from ``checkpoint``'s
    state when ``resume`` and it exists; saving to it when given)."""
    stages: dict[str, Any] = checkpoint.load() if checkpoint is not None and resume and checkpoint.exists() else {}
    resumed = {name: int(stages[name]["step"]) if name in stages else 0 for name in STAGES}
    config, b, classes = plan.config, plan.batch_size, list(plan.classes)
    class_index = {c: i for i, c in enumerate(classes)}
    classifiers, histories = {}, {}
    for modality in MODALITIES:
        model = new_classifier(config, modality, len(classes), plan.seed).to(device)
        model.train()
        optimizer = torch.optim.Adam(model.trainable_parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
        scaler = torch.amp.GradScaler(device.type, enabled=plan.precision == "fp16")
        if modality == "vision":
            def batches(start: int) -> Iterator[Any]:
                pairs = AVCPairs(shards.root, "train", config=config, batch_size=b, train=True, seed=plan.seed,
                                 start_step=start, augment=plan.augment)
                inner = _batches(pairs, plan.workers, pin_memory=device.type == "cuda")
                try:
                    for batch in inner:
                        yield vision_batches(batch, class_index)
                finally:
                    inner.close()
        else:
            def batches(start: int) -> Iterator[Any]:
                return _batches(ClassifierClips(shards.root, config, classes, batch_size=b, seed=plan.seed,
                                                augment=plan.augment, start_step=start), plan.workers,
                                pin_memory=device.type == "cuda")
        what = "frames" if modality == "vision" else "1 s clips"
        histories[modality], _ = _run_stage(
            modality, trainable=model, optimizer=optimizer, scaler=scaler, batches=batches,
            step_fn=_supervised_step(model, optimizer, scaler, device, plan.precision),
            total=plan.classifier_steps, stages=stages, checkpoint=checkpoint, desc=f"{modality} classifier ({what})",
            progress=progress, diverged=f"the {modality} classifier's training diverged; try a lower --lr")
        classifiers[modality] = model.eval()

    # Supervised pretraining: both trained towers frozen (weights and BatchNorm statistics) in an L3-Net.
    network = build_model(config, seed=plan.seed).to(device)
    for modality in MODALITIES:
        network.tower(modality).load_state_dict(classifiers[modality].network.tower(modality).state_dict())
    for module in (network.vision, network.audio, network.frontend):
        module.requires_grad_(False)
    network.eval()
    network.head.train()
    optimizer = torch.optim.Adam(network.head.parameters(), lr=plan.head_lr, weight_decay=plan.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=plan.precision == "fp16")

    def head_batches(start: int) -> Iterator[Any]:
        return _batches(AVCPairs(shards.root, "train", config=config, batch_size=b, train=True, seed=plan.seed,
                                 start_step=start, augment=plan.augment), plan.workers,
                        pin_memory=device.type == "cuda")

    def head_step(batch: Mapping[str, Any]) -> tuple[Any, Any, int]:
        images, audio, labels = (batch[k].to(device, non_blocking=True) for k in ("image", "audio", "label"))
        with torch.no_grad(), autocast(plan.precision, device):
            v, a = network.embed("vision", images), network.embed("audio", audio)
        with autocast(plan.precision, device):
            logits = network.fuse(v, a)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer_step(optimizer, scaler, loss)
        return loss.detach().double() * len(labels), (logits.detach().argmax(-1) == labels).sum(), len(labels)

    histories["fusion_head"], _ = _run_stage(
        "head", trainable=network.head, optimizer=optimizer, scaler=scaler, batches=head_batches, step_fn=head_step,
        total=plan.head_steps, stages=stages, checkpoint=checkpoint, desc="fusion head on frozen supervised towers",
        progress=progress, diverged="the fusion head's training diverged; try a lower --head-lr")
    network.eval()
    return Trained(classifiers, network, histories, resumed)
