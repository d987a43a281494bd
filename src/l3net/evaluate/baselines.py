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

Training here is a plain loop (a different objective from AVC training), with the paper's Adam
settings (:class:`l3net.train.TrainConfig` defaults; the head of supervised pretraining, trained alone from
scratch, takes a 10x larger learning rate by default, a choice the paper leaves open). Augmentation of the classifiers' inputs:
random crop and flip of frames, a random 1 s clip with a random gain, from the sampler's
:class:`~l3net.data.sampler.AugmentConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..config import ModelConfig, get_preset
from ..data.shards import ShardSet
from ..errors import DatasetError, InputError
from ..models import MODALITIES, L3Net, build_model
from ..runtime import check_precision, resolve_device
from ..train import TrainConfig
from . import paper
from .avc import PAIRS_PER_VIDEO, eval_pairs, l3_scorer, score_pairs, summarise
from .inputs import check_split, class_names, open_shards
from .result import FigureSpec, Result, new_figure
from .supervised import (  # noqa: F401 - the baselines' parts, importable from here too
    History,
    TowerClassifier,
    choose_threshold,
    classifier_test_accuracy,
    direct_scorer,
    train_classifier,
    train_fusion_head,
)

PROTOCOL = "baselines"
TITLE = "Supervised baselines (Table 1)"
#: Where the supervised-pretraining network is saved, relative to --out.
MODEL_SUBDIR = os.path.join("baselines", "supervised_pretraining")


@dataclass(frozen=True)
class BaselinesConfig:
    """Settings of :func:`evaluate_baselines` (defaults suit a laptop CPU with the small preset; the
    optimiser's are the paper's, from :class:`l3net.train.TrainConfig`)."""

    #: Architecture of the towers: a preset name or a ModelConfig.
    preset: str | ModelConfig = "small"
    #: Split whose AVC pairs are scored ("val" or "test"); the threshold is always chosen on "val".
    split: str = "test"
    #: Classifier training epochs.
    epochs: int = 10
    #: Random frames / 1 s clips drawn from each train video per epoch.
    samples_per_video: int = 4
    #: Steps training the fusion head of supervised pretraining.
    head_steps: int = 500
    #: Examples (or AVC pairs) per step and per forward pass.
    batch_size: int = 32
    #: Adam learning rate of the classifiers.
    lr: float = TrainConfig.lr
    #: Adam learning rate of the fusion head alone, on frozen towers (a small head from scratch
    #: learns faster with a larger step; the paper gives none).
    head_lr: float = 10 * TrainConfig.lr
    #: Adam weight decay.
    weight_decay: float = TrainConfig.weight_decay
    #: Evaluation pairs per video, as :class:`l3net.evaluate.avc.AVCConfig`.
    pairs_per_video: int = PAIRS_PER_VIDEO
    #: "cpu", "cuda", "cuda:N", "auto" or None (auto).
    device: str | None = None
    #: Numeric precision (runtime.PRECISIONS).
    precision: str = "fp32"
    #: Seed of initialisation, sampling and the pair list.
    seed: int = 0
    #: Show tqdm progress bars.
    progress: bool = True

    def __post_init__(self) -> None:
        for name, value, low in (("epochs", self.epochs, 1), ("samples per video", self.samples_per_video, 1),
                                 ("head steps", self.head_steps, 1), ("batch size", self.batch_size, 2),
                                 ("pairs per video", self.pairs_per_video, 1)):
            if value < low:
                raise InputError(f"{name} must be at least {low}, got {value}")
        lr, head_lr, weight_decay = self.lr, self.head_lr, self.weight_decay
        if not all(x > 0 and np.isfinite(x) for x in (lr, head_lr)) or not (weight_decay >= 0 and np.isfinite(weight_decay)):
            raise InputError(f"learning rates must be positive and the weight decay >= 0, got {lr}, {head_lr} and {weight_decay}")


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
                           "accuracy per epoch, fusion head on frozen supervised towers",
                           lambda: training_figure(self.histories))]


# ------------------------------------------------------------------------------------------------
# the protocol
# ------------------------------------------------------------------------------------------------
def evaluate_baselines(
    shards_dir: str | os.PathLike[str] | ShardSet,
    config: BaselinesConfig | None = None,
) -> BaselinesResult:
    """Train and score Table 1's supervised baselines on a labelled shard set.

    ``result.metrics["avc"]`` holds the AVC accuracies on the ``split`` pairs:
    ``{"Supervised direct": ..., "Supervised pretraining": ...}``; ``result.network`` the
    supervised-pretraining network. ``result.metrics["settings"]`` records ``config``.
    """
    settings = config or BaselinesConfig()
    split, epochs, samples_per_video, head_steps = settings.split, settings.epochs, settings.samples_per_video, settings.head_steps
    batch_size, lr, head_lr, weight_decay = settings.batch_size, settings.lr, settings.head_lr, settings.weight_decay
    pairs_per_video, precision, seed, progress = settings.pairs_per_video, settings.precision, settings.seed, settings.progress
    preset = settings.preset
    config = get_preset(preset) if isinstance(preset, str) else preset
    target = resolve_device(settings.device)
    check_precision(precision, target)
    shards = open_shards(shards_dir)
    classes = class_names(shards, "the supervised baselines")
    _check_labelled_splits(shards, classes, split)

    common = dict(device=target, precision=precision, progress=progress)
    train_args = dict(epochs=epochs, samples_per_video=samples_per_video, batch_size=batch_size, lr=lr,
                      weight_decay=weight_decay, seed=seed, **common)
    classifiers, histories, test_acc = {}, {}, {}
    for modality in MODALITIES:
        classifiers[modality], histories[modality] = train_classifier(shards, modality, config, classes, **train_args)
        test_acc[modality] = classifier_test_accuracy(classifiers[modality], shards, classes, split=split,
                                                      batch_size=batch_size, **common)

    # Supervised direct: threshold on val pairs, accuracy on the test pairs.
    scorer = direct_scorer(classifiers["vision"], classifiers["audio"])
    val_pairs = eval_pairs(shards, "val", config, batch_size=batch_size, seed=seed, pairs_per_video=pairs_per_video)
    val = score_pairs(scorer, val_pairs, total=val_pairs.num_pairs, desc="supervised direct, val pairs", **common)
    threshold, val_accuracy = choose_threshold(val["score"], val["label"])
    test_pairs = eval_pairs(shards, split, config, batch_size=batch_size, seed=seed, pairs_per_video=pairs_per_video)
    direct = summarise(score_pairs(scorer, test_pairs, total=test_pairs.num_pairs,
                                   desc=f"supervised direct, {split} pairs", **common), threshold)

    # Supervised pretraining: both trained towers frozen in an L3-Net, only the head trained.
    network = build_model(config, seed=seed).to(target)
    for modality in MODALITIES:
        network.tower(modality).load_state_dict(classifiers[modality].network.tower(modality).state_dict())
    head_history = train_fusion_head(network, shards, steps=head_steps, batch_size=batch_size, lr=head_lr,
                                     weight_decay=weight_decay, seed=seed, **common)
    pretraining = summarise(score_pairs(l3_scorer(network), test_pairs, total=test_pairs.num_pairs,
                                        desc=f"supervised pretraining, {split} pairs", **common))
    test_pairs.close()
    val_pairs.close()

    kinetics = paper.AVC["kinetics_sounds"]
    avc = {"Supervised direct": direct["accuracy"], "Supervised pretraining": pretraining["accuracy"]}
    rows = [
        ["chance", paper.AVC_CHANCE, paper.AVC_CHANCE],
        ["Supervised direct", round(avc["Supervised direct"], 4), kinetics["Supervised direct"]],
        ["Supervised pretraining", round(avc["Supervised pretraining"], 4), kinetics["Supervised pretraining"]],
        ["L3-Net (run 'l3net eval avc')", None, kinetics["L3-Net"]],
    ]
    classifier_rows = [
        [f"{m} classifier ({'centre frame' if m == 'vision' else 'centred 1 s clip'} of each {split} video)",
         round(test_acc[m]["accuracy"], 4), round(test_acc[m]["chance"], 4)]
        for m in MODALITIES
    ]
    notes = [
        f"{len(classes)} classes; preset {config.name}; classifiers trained {epochs} epoch(s) of {samples_per_video} "
        f"random frames / clips per train video; fusion head trained {head_steps} steps of {batch_size} AVC pairs.",
        f"Supervised direct threshold {threshold:.4g} on the dot product of the softmax outputs, chosen on "
        f"{len(val['label'])} val pairs (val accuracy {val_accuracy:.3f}); test pairs: {direct['pairs']}, "
        f"the same fixed pairs 'l3net eval avc --split {split}' scores.",
    ]
    return BaselinesResult(
        title=TITLE, model=f"supervised baselines ({config.name} preset)", dataset=str(shards.root),
        tables=[
            {"title": f"AVC accuracy on the {split} split's balanced pairs (chance 0.5)",
             "columns": ["method", "ours", "paper Kinetics-Sounds"], "rows": rows},
            {"title": "The supervised classifiers on their own", "columns": ["classifier", "accuracy", "chance"],
             "rows": classifier_rows},
        ],
        notes=notes,
        metrics={
            "avc": avc,
            "split": split,
            "direct": {**direct, "val_accuracy": val_accuracy, "val_pairs": int(len(val["label"]))},
            "pretraining": pretraining,
            "classifiers": test_acc,
            "training": {
                **{m: {"loss": histories[m].loss, "accuracy": histories[m].accuracy} for m in MODALITIES},
                "fusion_head": {"loss": head_history.loss, "accuracy": head_history.accuracy},
            },
            "settings": {**dataclasses.asdict(settings), "preset": config.name},
            "classes": classes,
        },
        config=settings, network=network, histories={**histories, "fusion_head": head_history},
    )


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
    """Loss and training accuracy of the two classifiers (per epoch) and of the fusion head."""
    fig = new_figure(12, 3.4)
    axes = fig.subplots(1, 3)
    for ax, modality in zip(axes, MODALITIES):
        h = histories[modality]
        epochs = np.arange(1, len(h.loss) + 1)
        ax.plot(epochs, h.loss, "o-", label="loss")
        ax.plot(epochs, h.accuracy, "s-", label="train accuracy")
        ax.set_title(f"{modality} classifier")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    head = histories["fusion_head"]
    chunks = np.arange(1, len(head.loss) + 1)
    axes[2].plot(chunks, head.loss, "o-", label="loss")
    axes[2].plot(chunks, head.accuracy, "s-", label="train AVC accuracy")
    axes[2].axhline(paper.AVC_CHANCE, color="grey", linestyle=":", linewidth=1)
    axes[2].set_title("fusion head (frozen supervised towers)")
    axes[2].set_xlabel("chunk of steps")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig
