"""``l3net eval baselines``: Table 1's supervised baselines on a labelled shard set.

Protocol (PAPER_SPEC 5.1):

1. Two classifiers, trained with cross-entropy on the labelled train split, separately: the vision
   tower of the L3 architecture + fc (C x 128) + ReLU + fc (128 x K) on single frames, and the
   audio tower + the same two layers on 1 s clips (K classes, C the embedding size: 512 x 128 and
   128 x 34 in the paper). The ReLU between the two fc layers is as in the fusion head; the paper
   lists only the layers.
2. *Supervised direct*: a frame and a clip correspond when the dot product of the two K-way softmax
   outputs exceeds a threshold, the one that maximises accuracy on the val split's fixed pairs;
   accuracy on the test split's fixed pairs.
3. *Supervised pretraining*: both trained towers, frozen (weights and BatchNorm statistics), put
   into an L3-Net; only the fusion head is trained, on AVC pairs of the train split (the same
   sampler and augmentation as ``l3net train``); accuracy on the test split's fixed pairs.

"In the same manner as" L3-Net (the paper): the same Adam settings (:data:`l3net.config.PAPER_LR`,
``PAPER_WEIGHT_DECAY``: ``l3net train``'s defaults; the head, trained alone from scratch, takes a 10x larger learning rate by default, a
choice the paper leaves open), L3 training's augmentation (:mod:`l3net.evaluate.baselines.networks`), and
by default the budget of the L3 run the baselines are compared with (:func:`reference_run`, its
``config.json``: steps x batch size = the pairs its model saw): the head trains on as many pairs,
each classifier on as many examples (epochs over the train split = those pairs / the usable train
videos, the AVC sampler's epoch). Without a run, the budget is ``l3net train``'s default, the
paper's 60 M pairs (:data:`l3net.config.PAPER_PAIRS`). The budget used and where it came from are in
``metrics["budget"]`` and a table. Training is resumable (:mod:`l3net.evaluate.baselines.training`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...config import PAPER_LR, PAPER_PAIRS, PAPER_WEIGHT_DECAY, ModelConfig, get_preset
from ...data.sampler import AugmentConfig
from ...data.shards import ShardSet
from ...errors import DatasetError, InputError
from ...fileio import read_json
from ...models import CONFIG_FILE, MODALITIES, L3Net
from ...runtime import check_precision, default_workers, resolve_device
from .. import paper
from ..avc import PAIRS_PER_VIDEO, eval_pairs, l3_scorer, score_pairs, summarise
from ..inputs import check_split, class_names, open_shards
from ..result import FigureSpec, Result, new_figure
from .networks import (  # noqa: F401 - the baselines' parts, importable from here too
    History,
    TowerClassifier,
    choose_threshold,
    classifier_test_accuracy,
    direct_scorer,
    usable_train_videos,
)
from .training import Checkpoint, TrainPlan, train_supervised

PROTOCOL = "baselines"
TITLE = "Supervised baselines (Table 1)"
#: Where the supervised-pretraining network is saved, relative to --out.
MODEL_SUBDIR = os.path.join("baselines", "supervised_pretraining")
#: Where the training checkpoint is kept, relative to --out.
CHECKPOINT_SUBDIR = os.path.join("baselines", "checkpoint")
#: The towers' architecture when neither the settings nor a reference run name one.
DEFAULT_PRESET = "small"


@dataclass(frozen=True)
class BaselinesConfig:
    """Settings of :func:`evaluate_baselines`. Budgets left at None follow the L3 run compared with
    (or, without one, ``l3net train``'s default, the paper's 60 M pairs); the optimiser's settings are
    the paper's (:data:`l3net.config.PAPER_LR`, ``PAPER_WEIGHT_DECAY``)."""

    #: Architecture of the towers: a preset name or a ModelConfig (None: the reference run's, else "small").
    preset: str | ModelConfig | None = None
    #: Split whose AVC pairs are scored ("val" or "test"); the threshold is always chosen on "val".
    split: str = "test"
    #: Classifier epochs over the train split (each usable train video once per epoch); None: as many
    #: examples as the reference run's pairs.
    epochs: int | None = None
    #: AVC pairs training the fusion head; None: the reference run's pairs.
    head_pairs: int | None = None
    #: Steps training the fusion head (wins over head_pairs, as --steps over --pairs in l3net train).
    head_steps: int | None = None
    #: Examples (or AVC pairs) per step and per forward pass.
    batch_size: int = 32
    #: Adam learning rate of the classifiers.
    lr: float = PAPER_LR
    #: Adam learning rate of the fusion head alone, on frozen towers (a small head from scratch
    #: learns faster with a larger step; the paper gives none).
    head_lr: float = 10 * PAPER_LR
    #: Adam weight decay.
    weight_decay: float = PAPER_WEIGHT_DECAY
    #: Evaluation pairs per video, as :class:`l3net.evaluate.avc.AVCConfig`.
    pairs_per_video: int = PAIRS_PER_VIDEO
    #: Steps between checkpoints (and at the end of each stage).
    save_every: int = 1000
    #: DataLoader worker processes reading the training batches (0: in this process; None: as
    #: ``l3net train`` chooses, 1 on the CPU, cores - 1 up to 16 per GPU). Part of the checkpoint: a resumed
    #: training keeps it.
    workers: int | None = None
    #: "cpu", "cuda", "cuda:N", "auto" or None (auto).
    device: str | None = None
    #: Numeric precision (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Seed of initialisation, sampling and the pair list.
    seed: int = 0
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        for name, value, low in (("epochs", self.epochs, 1), ("head pairs", self.head_pairs, 1),
                                 ("head steps", self.head_steps, 1), ("batch size", self.batch_size, 2),
                                 ("pairs per video", self.pairs_per_video, 1), ("save every", self.save_every, 1),
                                 ("workers", self.workers, 0)):
            if value is not None and value < low:
                raise InputError(f"{name} must be at least {low}, got {value}")
        lr, head_lr, weight_decay = self.lr, self.head_lr, self.weight_decay
        if not all(x > 0 and np.isfinite(x) for x in (lr, head_lr)) or not (weight_decay >= 0 and np.isfinite(weight_decay)):
            raise InputError(f"learning rates must be positive and the weight decay >= 0, got {lr}, {head_lr} and {weight_decay}")


@dataclass(frozen=True)
class ReferenceRun:
    """The L3 run the baselines are compared with, as its model directory's ``config.json`` records it."""

    path: str
    steps: int
    batch_size: int
    preset: str | None
    augment: dict[str, Any] | None
    data_fingerprint: str | None

    @property
    def pairs(self) -> int:
        """AVC pairs the run's model saw: steps x (global) batch size."""
        return self.steps * self.batch_size


def reference_run(model_dir: str | os.PathLike[str]) -> ReferenceRun:
    """The budget and settings of the ``l3net train`` run whose model is ``model_dir`` (a run
    directory, or its ``last/``); an :class:`InputError` when it is not one."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{model_dir}: not a model directory (no {CONFIG_FILE}); pass the L3 run directory "
                         "made by 'l3net train'")
    try:
        info = read_json(path)
        train, steps = info["train"], int(info["step"])
        batch_size = int(train["batch_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: no record of an 'l3net train' run (steps and batch size: {exc!r}); pass "
                         "--epochs and --head-pairs instead") from exc
    return ReferenceRun(str(model_dir), steps, batch_size, train.get("preset"), train.get("augment"),
                        info.get("data_fingerprint"))


def training_augment(reference: ReferenceRun | None) -> AugmentConfig:
    """L3 training's augmentation: the reference run's own, else the sampler's defaults (as ``l3net train``)."""
    if reference is None or not reference.augment:
        return AugmentConfig()
    try:  # JSON gives the gain range as a list
        augment = AugmentConfig(**{**reference.augment, "gain": tuple(reference.augment.get("gain", AugmentConfig.gain))})
        augment.validate()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{reference.path}: its training augmentation {reference.augment!r} is not understood "
                         f"({exc})") from exc
    return augment


def plan_budget(settings: BaselinesConfig, train_videos: int, reference: ReferenceRun | None) -> dict[str, Any]:
    """The budget of each part: ``{"classifiers": {epochs, steps, examples, from}, "head": {steps,
    pairs, from}, "reference": {path, steps, batch_size, pairs} | None}`` (examples and pairs counted)."""
    b = settings.batch_size
    if reference is not None:
        target = reference.pairs
        origin = f"the L3 run {reference.path} ({reference.steps:,} steps x {reference.batch_size} pairs)"
    else:
        target, origin = PAPER_PAIRS, f"l3net train's default, the paper's {PAPER_PAIRS:,} pairs (no L3 run given)"
    if settings.epochs is not None:
        epochs, epochs_from = settings.epochs, "set (epochs)"
    else:
        epochs, epochs_from = max(1, math.ceil(target / train_videos)), f"{target:,} examples, as {origin}"
    classifier_steps = math.ceil(epochs * train_videos / b)
    if settings.head_steps is not None:
        head_steps, head_from = settings.head_steps, "set (head steps)"
    elif settings.head_pairs is not None:
        head_steps, head_from = math.ceil(settings.head_pairs / b), "set (head pairs)"
    else:
        head_steps, head_from = math.ceil(target / b), origin
    return {
        "classifiers": {"epochs": epochs, "steps": classifier_steps, "examples": classifier_steps * b,
                        "train_videos": train_videos, "from": epochs_from},
        "head": {"steps": head_steps, "pairs": head_steps * b, "from": head_from},
        "batch_size": b,
        "reference": None if reference is None else {**dataclasses.asdict(reference), "pairs": reference.pairs},
    }


@dataclass
class BaselinesResult(Result):
    """Table 1's supervised rows: ``metrics["avc"]`` = ``{"Supervised direct": ..., "Supervised
    pretraining": ...}`` on the split's pairs. ``network`` is the supervised-pretraining L3-Net (the
    caller may save it, e.g. under ``OUT/`` :data:`MODEL_SUBDIR`)."""

    protocol = PROTOCOL
    network: L3Net | None = field(default=None, repr=False)
    histories: dict[str, History] = field(default_factory=dict, repr=False)

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec("baselines_training.png", "Training of the supervised baselines: classifier loss and "
                           "accuracy, fusion head on frozen supervised towers",
                           lambda: training_figure(self.histories))]


# ------------------------------------------------------------------------------------------------
# the protocol
# ------------------------------------------------------------------------------------------------
def evaluate_baselines(
    shards_dir: str | os.PathLike[str] | ShardSet,
    config: BaselinesConfig | None = None,
    *,
    reference: ReferenceRun | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> BaselinesResult:
    """Train and score Table 1's supervised baselines on a labelled shard set.

    ``result.metrics["avc"]`` holds the AVC accuracies on the ``split`` pairs:
    ``{"Supervised direct": ..., "Supervised pretraining": ...}``; ``result.network`` the
    supervised-pretraining network; ``result.metrics["budget"]`` the training budget and where it
    came from (``reference``: the L3 run compared with). ``checkpoint_dir``: where the training
    state is saved (``resume``: continued from it when there). ``result.metrics["settings"]``
    records ``config``.

    The recipe: check the shards, plan the training (:func:`_plan_training`), train
    (:func:`~.training.train_supervised`), score the pairs (:func:`_score`), then the tables, notes
    and metrics.
    """
    settings = config or BaselinesConfig()
    preset = settings.preset or (reference.preset if reference is not None and reference.preset else DEFAULT_PRESET)
    config = get_preset(preset) if isinstance(preset, str) else preset
    target = resolve_device(settings.device)
    check_precision(settings.precision, target)
    shards = open_shards(shards_dir)
    classes = class_names(shards, "the supervised baselines")
    _check_labelled_splits(shards, classes, settings.split)
    plan, budget, train_videos = _plan_training(shards, settings, config, classes, target, reference)
    checkpoint = None if checkpoint_dir is None else Checkpoint(checkpoint_dir, plan, settings.save_every)
    trained = train_supervised(shards, plan, device=target, checkpoint=checkpoint, resume=resume,
                               progress=settings.progress)
    scores = _score(trained, shards, classes, config, settings, target)

    split, histories = settings.split, trained.histories
    notes = _notes(scores, budget, plan, train_videos, settings.split)
    if any(trained.resumed_from.values()):
        notes.append("Resumed from a checkpoint at step " + ", ".join(
            f"{stage} {step:,}" for stage, step in trained.resumed_from.items()) + ".")
    if reference is not None and reference.data_fingerprint not in (None, plan.data_fingerprint):
        notes.append(f"The L3 run {reference.path} was trained on other data than {shards.root} (another data "
                     "fingerprint): its budget is used as it is.")
    return BaselinesResult(
        title=TITLE, model=f"supervised baselines ({config.name} preset)", dataset=str(shards.root),
        tables=_tables(scores, budget, split, train_videos),
        notes=notes,
        metrics={
            "avc": scores.avc,
            "split": split,
            "direct": {**scores.direct, "val_accuracy": scores.val_accuracy, "val_pairs": scores.val_pairs},
            "pretraining": scores.pretraining,
            "classifiers": scores.classifiers,
            "budget": budget,
            "training": {
                **{m: dataclasses.asdict(histories[m]) for m in MODALITIES},
                "fusion_head": dataclasses.asdict(histories["fusion_head"]),
                "resumed_from": trained.resumed_from,
                "workers": plan.workers,
                "augment": dataclasses.asdict(plan.augment),
            },
            "settings": {**dataclasses.asdict(settings), "preset": config.name},
            "classes": classes,
        },
        config=settings, network=trained.network, histories=histories,
    )


def _plan_training(
    shards: ShardSet, settings: BaselinesConfig, config: ModelConfig, classes: Sequence[str], target: Any,
    reference: ReferenceRun | None,
) -> tuple[TrainPlan, dict[str, Any], int]:
    """What the training will be (:class:`~.training.TrainPlan`), its budget (:func:`plan_budget`) and
    the number of usable train videos (at least 2)."""
    train_videos = len(usable_train_videos(shards, config))
    if train_videos < 2:
        raise DatasetError(f"{shards.root}: the train split has {train_videos} usable video(s) (a frame and "
                           f"{config.clip_seconds:g} s of audio); the baselines need at least 2")
    budget = plan_budget(settings, train_videos, reference)
    workers = settings.workers if settings.workers is not None else default_workers(target)
    plan = TrainPlan(config, tuple(classes), budget["classifiers"]["steps"], budget["head"]["steps"],
                     settings.batch_size, settings.lr, settings.head_lr, settings.weight_decay, settings.seed,
                     settings.precision, training_augment(reference), workers, shards.fingerprint())
    return plan, budget, train_videos


@dataclass
class _Scores:
    """What :func:`_score` measured: each classifier on its own, and both baselines' AVC pairs."""

    classifiers: dict[str, dict[str, Any]]  # per tower: classifier_test_accuracy's
    direct: dict[str, Any]  # summarise's, at the threshold chosen on val
    pretraining: dict[str, Any]
    threshold: float
    val_accuracy: float
    val_pairs: int

    @property
    def avc(self) -> dict[str, float]:
        return {"Supervised direct": self.direct["accuracy"], "Supervised pretraining": self.pretraining["accuracy"]}


def _score(
    trained: Any, shards: ShardSet, classes: Sequence[str], config: ModelConfig, settings: BaselinesConfig, target: Any,
) -> _Scores:
    """The classifiers' accuracy on the split's videos; supervised direct with its threshold chosen on
    the val pairs, and supervised pretraining, on the split's fixed pairs (those ``eval avc`` scores)."""
    split, batch_size, seed = settings.split, settings.batch_size, settings.seed
    common = dict(device=target, precision=settings.precision, progress=settings.progress)
    test_acc = {m: classifier_test_accuracy(trained.classifiers[m], shards, classes, split=split, batch_size=batch_size,
                                            **common)
                for m in MODALITIES}
    scorer = direct_scorer(trained.classifiers["vision"], trained.classifiers["audio"])
    pairs = dict(batch_size=batch_size, seed=seed, pairs_per_video=settings.pairs_per_video)
    val_pairs = eval_pairs(shards, "val", config, **pairs)
    val = score_pairs(scorer, val_pairs, total=val_pairs.num_pairs, desc="supervised direct, val pairs", **common)
    threshold, val_accuracy = choose_threshold(val["score"], val["label"])
    test_pairs = eval_pairs(shards, split, config, **pairs)
    direct = summarise(score_pairs(scorer, test_pairs, total=test_pairs.num_pairs,
                                   desc=f"supervised direct, {split} pairs", **common), threshold)
    pretraining = summarise(score_pairs(l3_scorer(trained.network), test_pairs, total=test_pairs.num_pairs,
                                        desc=f"supervised pretraining, {split} pairs", **common))
    test_pairs.close()
    val_pairs.close()
    return _Scores(test_acc, direct, pretraining, threshold, val_accuracy, int(len(val["label"])))


def _tables(scores: _Scores, budget: dict[str, Any], split: str, train_videos: int) -> list[dict[str, Any]]:
    """The result's tables: AVC accuracy beside the paper's, the classifiers alone, the budgets."""
    kinetics = paper.AVC["kinetics_sounds"]
    avc = scores.avc
    rows = [
        ["chance", paper.AVC_CHANCE, paper.AVC_CHANCE],
        ["Supervised direct", round(avc["Supervised direct"], 4), kinetics["Supervised direct"]],
        ["Supervised pretraining", round(avc["Supervised pretraining"], 4), kinetics["Supervised pretraining"]],
        ["L3-Net (run 'l3net eval avc')", None, kinetics["L3-Net"]],
    ]
    rows = [row + [paper.source(PROTOCOL, row[0], row[2])] for row in rows]
    classifier_rows = [
        [f"{m} classifier ({'centre frame' if m == 'vision' else 'centred 1 s clip'} of each {split} video)",
         round(scores.classifiers[m]["accuracy"], 4), round(scores.classifiers[m]["chance"], 4)]
        for m in MODALITIES
    ]
    cls, head = budget["classifiers"], budget["head"]
    budget_rows = [
        [f"{m} classifier", cls["epochs"], cls["steps"], cls["examples"], cls["from"]] for m in MODALITIES
    ] + [["fusion head (supervised pretraining)", round(head["pairs"] / train_videos, 2), head["steps"], head["pairs"],
          head["from"]]]
    return [
        {"title": f"AVC accuracy on the {split} split's balanced pairs (chance 0.5)",
         "columns": ["method", "ours", "paper Kinetics-Sounds", paper.SOURCE_COLUMN], "rows": rows},
        {"title": "The supervised classifiers on their own", "columns": ["classifier", "accuracy", "chance"],
         "rows": classifier_rows},
        {"title": "Training budgets (the paper: 'in the same manner as' L3-Net)",
         "columns": ["part", "epochs over the train split", "steps", "examples or pairs", "budget from"],
         "rows": budget_rows},
    ]


def _notes(scores: _Scores, budget: dict[str, Any], plan: TrainPlan, train_videos: int, split: str) -> list[str]:
    """What was trained and how the direct baseline's threshold was chosen."""
    cls, head = budget["classifiers"], budget["head"]
    return [
        f"{len(plan.classes)} classes; preset {plan.config.name}; batch {plan.batch_size}; classifiers trained "
        f"{cls['epochs']:,} epoch(s) over the {train_videos} usable train videos ({cls['steps']:,} steps), fusion "
        f"head {head['steps']:,} steps ({head['pairs']:,} AVC pairs), with L3 training's augmentation. Budget: "
        + (f"from {cls['from']}." if cls["from"] == head["from"] else f"classifiers {cls['from']}; head {head['from']}."),
        f"Supervised direct threshold {scores.threshold:.4g} on the dot product of the softmax outputs, chosen on "
        f"{scores.val_pairs} val pairs (val accuracy {scores.val_accuracy:.3f}); test pairs: "
        f"{scores.direct['pairs']}, the same fixed pairs 'l3net eval avc --split {split}' scores.",
    ]


def _check_labelled_splits(shards: ShardSet, classes: Sequence[str], split: str) -> None:
    """Train, val and the test split exist and are labelled; every class has training videos."""
    for name in dict.fromkeys(("train", "val", split)):
        videos = check_split(shards, name)
        labelled = [v for v in videos if v.label is not None]
        if not labelled:
            raise DatasetError(f"{shards.root}: the {name!r} split has no labelled videos")
        unknown = sorted({v.label for v in labelled} - set(classes))
        if unknown:
            raise DatasetError(f"{shards.root}: the {name!r} split has labels that are not in dataset.json's "
                               f"classes: {', '.join(map(repr, unknown))}")
    present = {v.label for v in shards.videos("train")}
    empty = [c for c in classes if c not in present]
    if empty:
        raise DatasetError(
            f"{shards.root}: class(es) {', '.join(map(repr, empty))} have no videos in the train split, so a "
            "classifier cannot learn them; add videos of these classes or leave them out when preparing"
        )


def training_figure(histories: dict[str, History]) -> Any:
    """Loss and training accuracy of the two classifiers and of the fusion head, against the step."""
    fig = new_figure(12, 3.4)
    axes = fig.subplots(1, 3)
    for ax, modality in zip(axes, MODALITIES):
        h = histories[modality]
        ax.plot(h.step, h.loss, "o-", label="loss")
        ax.plot(h.step, h.accuracy, "s-", label="train accuracy")
        ax.set_title(f"{modality} classifier")
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    head = histories["fusion_head"]
    axes[2].plot(head.step, head.loss, "o-", label="loss")
    axes[2].plot(head.step, head.accuracy, "s-", label="train AVC accuracy")
    axes[2].axhline(paper.AVC_CHANCE, color="grey", linestyle=":", linewidth=1)
    axes[2].set_title("fusion head (frozen supervised towers)")
    axes[2].set_xlabel("step")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig
