"""Table 3 at ImageNet's scale: the linear probe trained by streaming images, as the paper trains it.

The paper (section 5.3; ../shared/PAPER_SPEC.md section 5.3) trains one fully connected layer on the frozen vision tower's conv4_2
(after ReLU, 256 x 256 input, max-pooled to 4 x 4 x 512 = 8192-D) with the cross-entropy loss and
"data augmentation, learning rate schedule, label smoothing identical to" Inception-v3 (Szegedy et
al. 2016, "Rethinking the Inception Architecture for Computer Vision"), with Adam in place of
RMSProp. Nothing is held in memory but a batch: a DataLoader's workers decode and augment
(:mod:`l3net.evaluate.probe.data`), the tower runs on the model's device in ``precision``, and the
linear layer of every row is trained on the same batches in one pass over the data.

Each choice and where it comes from:

- feature: ``model.transfer_features("vision", ...)`` (``models.L3Net.transfer_layer`` and
  ``pool_transfer``: the one definition of the layer and pooling, shared with ``--solver lbfgs``
  and ``features.image_features``), computed by :func:`l3net.inference.inference_model`;
- training images: Inception's random-size crop to the model's ``transfer_image_size``, horizontal
  flip, TensorFlow Inception preprocessing's colour distortion (see :mod:`~l3net.evaluate.probe.data`);
  validation: the centre crop the paper's protocol and ``--solver lbfgs`` use;
- optimiser: Adam (the paper), learning rate :data:`DEFAULT_LR` = 1e-3, Adam's own default
  (Kingma & Ba 2015): the paper does not give its rate, and Inception-v3's 0.045 belongs to
  RMSProp with epsilon 1.0;
- schedule: the learning rate times 0.94 every 2 epochs, in steps (Inception-v3, section 8:
  "learning rate of 0.045, decayed every two epoch using an exponential rate of 0.94");
- label smoothing 0.1 (Inception-v3, section 7: epsilon = 0.1), ``F.cross_entropy(label_smoothing=)``;
- epochs: :data:`DEFAULT_EPOCHS` = 10; neither paper gives the probe's. The linear layer starts at
  zero (a convex problem: no initialisation to seed); no weight decay and no gradient clipping
  (Inception-v3's clipping at 2.0 and its weight decay are not among what the L3 paper names);
- features are standardised by a BatchNorm without affine parameters before the linear layer (as
  MAE's linear probe, He et al. 2022, appendix A.2): at evaluation it is a fixed per-dimension scale
  and shift, folded into the layer's weights (``RowResult.weight/bias``), so the probe stays one
  linear layer. Without it Adam barely moves on raw ReLU features, whose common positive level
  (~2x their spread across images, measured on the test images) makes every weight of a class get
  a gradient of the same sign; ``--solver lbfgs`` z-scores its features for the same reason;
- batch size 32 (Inception-v3's per replica); top-1 and top-5 on validation (Table 3 reports top-1).

The random-weights row (the paper's "L3 random weights") is the mean, with its spread, over
``random_seeds`` random twins of the model (:func:`l3net.modelspec.random_twins`: weights from
seed + 1000, + 1001, ...), each with its own linear layer trained in the same pass on the same
batches (the images are decoded once; each twin costs one more forward pass of the tower).

Checkpoints (``checkpoint=PATH``, every ``checkpoint_every`` batches and at each epoch's end,
written atomically) hold every row's linear layer, Adam state and schedule, the sampler's position
(the batches are a function of seed, epoch and position: :class:`~l3net.evaluate.probe.loader.EpochBatches`),
the files skipped so far, and a fingerprint of data and settings; ``resume=True`` continues from
one and ends with the same weights as an uninterrupted run (tested).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...errors import DatasetError, InputError
from ...inference import PRECISION_CHOICES
from ...modelspec import DEFAULT_RANDOM_SEEDS, random_twins
from ...models import L3Net
from .. import paper
from .checkpoint import checkpoint_fingerprint, load_checkpoint, save_checkpoint
from .data import ProbeImages
from .loader import EpochBatches, ProbeImageDataset, loader
from .training import ProbeRow, remember_warnings, train_rows
from ..result import FigureSpec, Result, mean_spread, spread_text

PROTOCOL = "probe"
TITLE = "Image classification linear probe (Table 3), trained by streaming"
TRAINED_ROW, RANDOM_ROW = "L3-Net", "L3 random weights"

DEFAULT_EPOCHS = 10
DEFAULT_LR = 1e-3
#: Inception-v3's schedule: x 0.94 every 2 epochs.
LR_DECAY, LR_DECAY_EPOCHS = 0.94, 2.0
LABEL_SMOOTHING = 0.1
#: DataLoader workers by default: one fewer than the CPUs, at most 16.
DEFAULT_WORKERS = max(1, min(16, (os.cpu_count() or 2) - 1))
#: Confusion matrices are kept (JSON, picture) up to this many classes; ImageNet's would be 1000 x 1000.
CONFUSION_MAX_CLASSES = 50
#: ``solver`` choices: ``lbfgs`` (evaluate.probe.inmemory: centre-crop features in memory, scikit-learn),
#: ``adam`` (this module: streamed), ``auto`` (:func:`choose_solver`).
SOLVERS = ("auto", "lbfgs", "adam")
#: ``auto`` picks lbfgs up to this many images: their features (8192 float32 = 32 KB each for the
#: paper preset, two rows) stay under ~0.7 GB and cross-validation on centre crops is the steadier
#: estimate on small folders; above it, the paper's streamed training, whose memory does not grow.
AUTO_LBFGS_MAX_IMAGES = 10_000


def choose_solver(solver: str, n_images: int) -> str:
    """``lbfgs`` or ``adam`` for a folder of ``n_images`` images (``auto``: see :data:`AUTO_LBFGS_MAX_IMAGES`)."""
    if solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if solver != "auto":
        return solver
    return "lbfgs" if n_images <= AUTO_LBFGS_MAX_IMAGES else "adam"


@dataclass(frozen=True)
class StreamProbeConfig:
    """Settings of :func:`evaluate_probe_stream` (defaults and their sources: module docstring)."""

    #: Passes over the training images.
    epochs: int = DEFAULT_EPOCHS
    #: Adam's learning rate at the start.
    lr: float = DEFAULT_LR
    #: The learning rate is multiplied by ``lr_decay`` every ``lr_decay_epochs`` epochs (staircase).
    lr_decay: float = LR_DECAY
    lr_decay_epochs: float = LR_DECAY_EPOCHS
    #: Label smoothing of the cross-entropy (0: none).
    label_smoothing: float = LABEL_SMOOTHING
    #: Images per training step and per forward pass.
    batch_size: int = 32
    #: DataLoader worker processes decoding and augmenting (0: in the main process).
    workers: int = DEFAULT_WORKERS
    #: Write a checkpoint every this many steps (and at each epoch's end).
    checkpoint_every: int = 1000
    #: Without train/ and val/: 1/n_splits of each class is held out for validation.
    n_splits: int = 5
    #: Seed of the batches, the augmentation, the hold-out and the random twins.
    seed: int = 0
    #: Random-weights networks averaged in the random-weights row (:func:`l3net.modelspec.random_twins`).
    random_seeds: int = DEFAULT_RANDOM_SEEDS
    #: Numeric precision of the frozen tower (runtime.PRECISIONS); the linear layer trains in fp32.
    precision: str = "fp32"
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every", "random_seeds"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise InputError(f"workers must be 0 or more, got {self.workers}")
        if not self.lr > 0:
            raise InputError(f"the learning rate must be positive, got {self.lr}")
        if not 0 < self.lr_decay <= 1 or not self.lr_decay_epochs > 0:
            raise InputError("lr_decay must be in (0, 1] and lr_decay_epochs positive")
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.n_splits < 2:
            raise InputError(f"n_splits must be at least 2, got {self.n_splits}")
        if self.precision not in PRECISION_CHOICES:
            raise InputError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}")


@dataclass
class RowResult:
    """One row's linear layer and its validation scores."""

    top1: float
    top5: float
    correct1: int
    correct5: int
    val_images: int
    final_loss: float | None
    confusion: np.ndarray | None = field(default=None, repr=False)
    weight: torch.Tensor | None = field(default=None, repr=False)
    bias: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class StreamProbeResult(Result):
    """Table 3, streamed: ``results[row]`` (rows :data:`TRAINED_ROW`, :data:`RANDOM_ROW`: the mean over
    the seeds of ``random_results``, the first seed's confusion and weights) on ``images``."""

    protocol = PROTOCOL
    images: ProbeImages | None = field(default=None, repr=False)
    results: dict[str, RowResult] = field(default_factory=dict, repr=False)
    random_results: dict[int, RowResult] = field(default_factory=dict, repr=False)

    def figures(self) -> list[FigureSpec]:
        if not self.results or any(r.confusion is None for r in self.results.values()):
            return []
        from ..classify import confusion_figure

        first_seed, first = next(iter(self.random_results.items()), (None, None))
        panels = [(f"{row}: top-1 {r.top1:.1%}", r.confusion) for row, r in self.results.items() if row != RANDOM_ROW]
        if first is not None:  # the random row's picture is its first network's
            label = RANDOM_ROW if first_seed is None or first_seed < 0 else f"{RANDOM_ROW} (weights seed {first_seed})"
            panels.append((f"{label}: top-1 {first.top1:.1%}", first.confusion))
        return [FigureSpec("probe_confusion.png",
                           "Confusion matrices of the linear probe on the validation images (rows: true class)",
                           lambda: confusion_figure(panels, self.images.classes))]


def evaluate_probe_stream(
    images: ProbeImages,
    model: L3Net,
    config: StreamProbeConfig | None = None,
    *,
    untrained: bool = False,
    random_model: L3Net | None = None,
    model_name: str = "L3-Net (ours)",
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> StreamProbeResult:
    """Train the linear probe of every row on streamed, augmented ``images.train`` and score it
    (top-1, top-5) on the centre crops of ``images.val``.

    Rows: ``model`` (``untrained``: its weights are random; it is the first of the random-weights
    row's networks) and the random-weights row: ``random_model`` alone when given, else
    ``config.random_seeds`` networks from :func:`l3net.modelspec.random_twins`. ``checkpoint``:
    where to keep the training state (None: nowhere); ``resume``: continue from it (it must exist
    and match the data and settings). Files that cannot be decoded are skipped, listed in
    ``metrics["dataset"]["skipped"]`` with the reason. Raises :class:`DatasetError` when no training
    image could be read.
    """
    config = config or StreamProbeConfig()
    model.require("vision")
    models: dict[str, L3Net] = {} if untrained else {TRAINED_ROW: model}
    if random_model is not None:
        twins = [(-1, random_model)]
    else:
        twins = list(random_twins(model, config.seed, config.random_seeds, untrained=untrained))
    seeds = {f"{RANDOM_ROW} (weights seed {s})": s for s, _ in twins}
    models.update({name: net for name, (_, net) in zip(seeds, twins)})
    device = next(model.parameters()).device
    for net in models.values():
        net.eval()
    dim = model.config.transfer_dim("vision")
    k = len(images.classes)
    batches = EpochBatches(len(images.train), config.batch_size, seed=config.seed, epochs=config.epochs)
    per_epoch = batches.per_epoch
    rows = {name: ProbeRow(net, dim, k, config, per_epoch, device) for name, net in models.items()}
    fingerprint = checkpoint_fingerprint(images, config, models)
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and (path is None or not path.is_file()):
        raise InputError(f"nothing to resume: no probe checkpoint at {path}")
    start, skipped = (load_checkpoint(path, rows, fingerprint, device) if resume else (0, {}))
    total = per_epoch * config.epochs
    if start > total:
        raise InputError(f"{path}: the checkpoint is at step {start}, past the {total} steps of {config.epochs} "
                         "epoch(s); pass at least as many --epochs as it was trained for")
    notes: list[str] = []
    found_warnings: dict[str, None] = {}  # the first few distinct ones: bounded however many files warn
    train_seconds, trained_images = 0.0, 0
    if start < total:
        batches.start = start
        save = None if path is None else (lambda step: save_checkpoint(path, rows, step, fingerprint, skipped))
        train_seconds, trained_images = train_rows(rows, images.train, model.config, batches, config, device=device,
                                                   skipped=skipped, found_warnings=found_warnings,
                                                   random_rows=set(seeds), save=save)
        if trained_images == 0 and start == 0:
            raise DatasetError(f"{images.root}: no training image could be read:\n"
                               + _format(list(skipped.items())))
    else:
        notes.append(f"the checkpoint had finished all {total} steps; only the validation was run")
    began = time.perf_counter()
    results, val_skipped = _validate(images, model, rows, config, device, found_warnings)
    val_seconds = time.perf_counter() - began
    skipped.update(val_skipped)
    if not any(r.val_images for r in results.values()):
        raise DatasetError(f"{images.root}: no validation image could be read:\n" + _format(list(val_skipped.items())))
    notes += [f"warning: {w}" for w in found_warnings]
    return _result(images, config, results, seeds, skipped, model_name, dim, per_epoch, total, start, train_seconds,
                   trained_images, val_seconds, notes)


def _format(items: list[tuple[str, str]]) -> str:
    from ..datasets import format_skipped

    return format_skipped(items)


@torch.no_grad()
def _validate(images: ProbeImages, model: L3Net, rows: dict[str, ProbeRow], config: StreamProbeConfig,
              device: torch.device, found_warnings: dict[str, None]) -> tuple[dict[str, RowResult], dict[str, str]]:
    k = len(images.classes)
    keep_confusion = k <= CONFUSION_MAX_CLASSES
    # Counts stay on the device and reach the host once, after the last batch: no sync per row per batch.
    correct1 = {n: torch.zeros((), dtype=torch.int64, device=device) for n in rows}
    correct5 = {n: torch.zeros((), dtype=torch.int64, device=device) for n in rows}
    confusion = {n: torch.zeros(k * k, dtype=torch.int64, device=device) for n in rows}
    seen = 0
    skipped: dict[str, str] = {}
    data = ProbeImageDataset(images.val, model.config, train=False, seed=config.seed)
    batches = EpochBatches(len(images.val), config.batch_size, shuffle=False)
    with tqdm(total=len(batches), desc="probe validation", unit="step", disable=not config.progress,
              dynamic_ncols=True, leave=False) as bar:
        for batch in loader(data, batches, workers=config.workers, pin_memory=device.type == "cuda"):
            for index, reason in batch.failures:
                skipped[str(images.val.path(index))] = reason
            remember_warnings(found_warnings, batch.warnings)
            bar.update(1)
            if batch.images is None:
                continue
            x = batch.images.to(device, non_blocking=True)
            y = batch.labels.to(device, non_blocking=True)
            for name, row in rows.items():
                logits = row.logits(x, train=False)
                top = logits.topk(min(5, k), dim=1).indices
                correct1[name] += (top[:, 0] == y).sum()
                correct5[name] += (top == y[:, None]).any(dim=1).sum()
                if keep_confusion:  # (true, predicted) counted as one index of the flattened k x k table
                    confusion[name] += torch.bincount(y * k + top[:, 0], minlength=k * k)
            seen += len(y)
    results = {}
    for name, row in rows.items():
        top1, top5 = int(correct1[name]), int(correct5[name])
        results[name] = RowResult(top1=top1 / max(seen, 1), top5=top5 / max(seen, 1), correct1=top1, correct5=top5,
                                  val_images=seen, final_loss=None if row.last_loss is None else float(row.last_loss),
                                  confusion=confusion[name].view(k, k).cpu().numpy() if keep_confusion else None,
                                  weight=row.folded()[0], bias=row.folded()[1])
    return results, skipped


def _result(images: ProbeImages, config: StreamProbeConfig, per_row: dict[str, RowResult], seeds: dict[str, int],
            skipped: dict[str, str], model_name: str, dim: int, per_epoch: int, total: int, start: int, train_seconds: float,
            trained_images: int, val_seconds: float, notes: list[str]) -> StreamProbeResult:
    random_results = {seeds[name]: r for name, r in per_row.items() if name in seeds}
    results = {name: r for name, r in per_row.items() if name not in seeds}
    listed = list(random_results.values())
    top1 = mean_spread([r.top1 for r in listed], [s for s in random_results if s >= 0] or None)
    top5 = mean_spread([r.top5 for r in listed], [s for s in random_results if s >= 0] or None)
    results[RANDOM_ROW] = RowResult(top1=top1["mean"], top5=top5["mean"], correct1=listed[0].correct1,
                                    correct5=listed[0].correct5, val_images=listed[0].val_images,
                                    final_loss=listed[0].final_loss, confusion=listed[0].confusion,
                                    weight=listed[0].weight, bias=listed[0].bias)
    cells = {name: (r.top1, r.top5) for name, r in results.items()}
    cells[RANDOM_ROW] = (spread_text(top1), spread_text(top5))
    rows = [[method, *(cells[method] if method in cells else (None, None)), value, paper.source(PROTOCOL, method, value)]
            for method, value in paper.IMAGE_PROBE.items()]
    settings = asdict(config)
    return StreamProbeResult(
        title=TITLE, model=model_name, dataset=f"images:{images.root}",
        tables=[{"title": f"Linear probe on {images.root.name} ({len(images.classes)} classes, {len(images.val)} "
                          "validation images); the paper's numbers are top-1 on ImageNet",
                 "columns": ["method", "top-1", "top-5", "paper top-1", paper.SOURCE_COLUMN], "rows": rows}],
        metrics={
            "dataset": {"root": str(images.root), "layout": images.layout, "classes": list(images.classes)
                        if len(images.classes) <= 1000 else len(images.classes),
                        "train_images": len(images.train), "val_images": len(images.val),
                        "split_rule": images.split_rule,
                        "skipped": [{"path": p, "reason": r} for p, r in list(images.skipped) + list(skipped.items())]},
            "feature_dim": dim,
            "classifier": {
                "name": "one linear layer on frozen conv4_2 features (after ReLU, max-pooled to the transfer grid), "
                        "standardised by a BatchNorm without affine parameters (folded into the layer)",
                "solver": "adam, streamed", "epochs": config.epochs, "steps": total, "steps_per_epoch": per_epoch,
                "batch_size": config.batch_size, "lr": config.lr,
                "schedule": f"x {config.lr_decay} every {config.lr_decay_epochs:g} epochs (staircase, in steps)",
                "label_smoothing": config.label_smoothing,
                "augmentation": "Inception random-size crop (8-100 % area, aspect 3/4-4/3), flip, colour distortion",
                "resumed_at_step": start or None,
            },
            "settings": settings,
            "timing": {"train_seconds": round(train_seconds, 2), "val_seconds": round(val_seconds, 2),
                       "train_images_per_second": round(trained_images / train_seconds, 2) if train_seconds else None,
                       "rows_per_image": len(results)},
            **{row: {"top1": r.top1, "top5": r.top5, "accuracy": r.top1, "val_images": r.val_images,
                     "final_train_loss": r.final_loss,
                     **({"confusion": r.confusion.tolist()} if r.confusion is not None else {})}
               for row, r in results.items()},
            "random_weights": {"top1": top1, "top5": top5},
        },
        notes=notes, config=config, images=images, results=results, random_results=random_results,
    )


