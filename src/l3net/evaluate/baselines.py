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

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..config import PRESETS, ModelConfig, get_preset
from ..data.sampler import AugmentConfig, AVCPairs
from ..data.shards import ShardSet, VideoRecord
from ..errors import DatasetError, InputError
from ..media import resize_smaller_side
from ..models import MODALITIES, L3Net, build_model
from ..runtime import autocast, check_precision, resolve_device
from ..train import TrainConfig
from . import paper
from .avc import PAIRS_PER_VIDEO, eval_pairs, l3_scorer, print_result, score_pairs, summarise
from .common import add_common_arguments, eval_dir, save_figure, write_result
from .features import EMBEDDING, audio_features, image_features
from .inputs import check_split, class_names, iter_clips, iter_images, open_shards, pick_items

HELP = "Table 1's supervised baselines: classifiers, 'supervised direct' and 'supervised pretraining'"
DESCRIPTION = """Train Table 1's supervised baselines on a labelled shard set and score them on the same
AVC test pairs as 'l3net eval avc':

  vision / audio classifier   the L3 tower + fc (C x 128) + fc (128 x K), cross-entropy on the train
                              split's frames / 1 s clips (their test accuracy is reported too)
  supervised direct           corresponds if the dot product of the two softmax outputs exceeds a
                              threshold chosen on the val split's pairs
  supervised pretraining      the two trained towers frozen in an L3-Net, only the fusion head
                              trained on AVC pairs

The network supervised pretraining builds is saved (OUT/baselines/supervised_pretraining/), so
the other evaluations can be run on it. Defaults suit a laptop CPU with the small preset.

example:
  l3net eval baselines --data shards/ --out runs/small --preset small --epochs 10
  -> runs/small/eval/baselines.json, baselines_training.png"""

PROTOCOL = "baselines"
TITLE = "Supervised baselines (Table 1)"
#: Where the supervised-pretraining network is saved, relative to --out.
MODEL_SUBDIR = Path("baselines") / "supervised_pretraining"


# ------------------------------------------------------------------------------------------------
# the classifier and the threshold
# ------------------------------------------------------------------------------------------------
class TowerClassifier(nn.Module):
    """One tower of an L3-Net + fc (C x hidden) + ReLU + fc (hidden x K): a supervised baseline.

    The tower is asked for its embedding through the model's own contract (``network.embed``).
    """

    def __init__(self, network: L3Net, modality: str, num_classes: int, hidden: int | None = None) -> None:
        super().__init__()
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        self.network = network
        self.modality = modality
        hidden = hidden or network.config.head_hidden  # 128, as the paper's fc 512 x 128
        self.fc1 = nn.Linear(network.config.embedding_dim, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Class logits from pool4 embeddings ``(N, C)``."""
        return self.fc2(F.relu(self.fc1(embedding)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.network.embed(self.modality, x))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The tower and the two fc layers (not the other tower, nor the fusion head)."""
        return [*self.network.tower(self.modality).parameters(), *self.fc1.parameters(), *self.fc2.parameters()]


def choose_threshold(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """The threshold t maximising the accuracy of "corresponds iff score > t"; ``(t, accuracy)``.

    Candidates are the midpoints between consecutive distinct scores, plus one below the lowest
    (everything corresponds) and the highest score (nothing does). Among equally accurate
    thresholds the lowest is taken.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.ndim != 1 or s.shape != y.shape or s.size == 0:
        raise InputError(f"need as many scores as labels, at least one (got {s.shape} and {y.shape})")
    if not np.isfinite(s).all():
        raise InputError("scores contain NaN or infinite values")
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.unique(s_sorted)
    # below[i]: how many scores are <= the i-th candidate (0 for the candidate below them all)
    below = np.concatenate([[0], np.searchsorted(s_sorted, distinct, side="right")])
    negatives_below = np.concatenate([[0], np.cumsum(~y_sorted)])[below]
    positives_above = y.sum() - np.concatenate([[0], np.cumsum(y_sorted)])[below]
    correct = negatives_below + positives_above
    best = int(np.argmax(correct))
    if best == 0:
        threshold = float(np.nextafter(distinct[0], -np.inf))
    elif best == len(distinct):
        threshold = float(distinct[-1])
    else:
        threshold = float((distinct[best - 1] + distinct[best]) / 2)
    return threshold, float(correct[best] / s.size)


def direct_scorer(vision: TowerClassifier, audio: TowerClassifier):
    """Correspondence score of a pair: the dot product of the two classifiers' softmax outputs."""

    def score(images: torch.Tensor, waveforms: torch.Tensor) -> torch.Tensor:
        p_v = torch.softmax(vision(images).float(), dim=-1)
        p_a = torch.softmax(audio(waveforms).float(), dim=-1)
        return (p_v * p_a).sum(dim=-1)

    return score


# ------------------------------------------------------------------------------------------------
# training data for the classifiers
# ------------------------------------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch (or per-chunk) training loss and accuracy of one trained part."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def _classifier_batches(
    shards: ShardSet,
    videos: Sequence[VideoRecord],
    class_index: dict[str, int],
    modality: str,
    config: ModelConfig,
    *,
    samples_per_video: int,
    batch_size: int,
    rng: np.random.Generator,
    augment: AugmentConfig,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of ``(inputs, class indices)`` batches: ``samples_per_video`` random frames (or
    random 1 s clips) of every video, shuffled; frames randomly cropped and flipped, clips gained."""
    draws = [v for v in videos for _ in range(samples_per_video)]
    order = rng.permutation(len(draws))
    clip = config.clip_samples
    for first in range(0, len(order), batch_size):
        chosen = [draws[i] for i in order[first : first + batch_size]]
        targets = torch.tensor([class_index[v.label] for v in chosen], dtype=torch.int64)
        if modality == "vision":
            images = []
            for video in chosen:
                frame = shards.read_frame(video, int(rng.integers(video.num_frames)), min_side=config.image_resize)
                frame = resize_smaller_side(frame, config.image_resize)
                y = int(rng.integers(frame.shape[0] - config.image_size + 1))
                x = int(rng.integers(frame.shape[1] - config.image_size + 1))
                crop = frame[y : y + config.image_size, x : x + config.image_size]
                if rng.random() < augment.flip:
                    crop = crop[:, ::-1]
                images.append(np.ascontiguousarray(crop))
            yield torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), targets
        else:
            clips = np.zeros((len(chosen), clip), dtype=np.float32)
            for i, video in enumerate(chosen):
                start = int(rng.integers(max(1, video.num_samples - clip + 1)))
                audio = shards.read_audio(video, start, min(clip, video.num_samples - start))
                clips[i, : len(audio)] = audio * rng.uniform(*augment.gain)
            yield torch.from_numpy(clips), targets


def train_classifier(
    shards: ShardSet,
    modality: str,
    config: ModelConfig,
    classes: Sequence[str],
    *,
    epochs: int,
    samples_per_video: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    device: torch.device,
    precision: str,
    seed: int,
    progress: bool = True,
) -> tuple[TowerClassifier, History]:
    """Train a :class:`TowerClassifier` on the labelled train split (a fresh network from ``seed``)."""
    videos = [v for v in check_split(shards, "train") if v.label is not None and v.num_frames > 0]
    class_index = {c: i for i, c in enumerate(classes)}
    torch.manual_seed(seed)
    model = TowerClassifier(build_model(config, seed=seed), modality, len(classes)).to(device)
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    rng = np.random.default_rng([seed, 0 if modality == "vision" else 1])
    augment = AugmentConfig()
    history = History()
    steps_per_epoch = -(-len(videos) * samples_per_video // batch_size)
    what = "frames" if modality == "vision" else "1 s clips"
    with tqdm(total=epochs * steps_per_epoch, desc=f"{modality} classifier ({what})", unit="batch",
              disable=not progress, dynamic_ncols=True, leave=False) as bar:
        for epoch in range(epochs):
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            for x, y in _classifier_batches(shards, videos, class_index, modality, config,
                                            samples_per_video=samples_per_video, batch_size=batch_size,
                                            rng=rng, augment=augment):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with autocast(precision, device):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
                if not torch.isfinite(loss):
                    raise InputError(f"the {modality} classifier's loss became {loss.item()}; try a lower --lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total_loss += loss.item() * len(y)
                correct += int((logits.argmax(-1) == y).sum())
                seen += len(y)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.2f}")
            history.loss.append(total_loss / seen)
            history.accuracy.append(correct / seen)
    return model.eval(), history


def classifier_test_accuracy(
    model: TowerClassifier, shards: ShardSet, classes: Sequence[str], *, split: str = "test",
    batch_size: int, device: torch.device, precision: str, progress: bool,
) -> dict[str, Any]:
    """Accuracy of a classifier on the centre frame (or centred 1 s clip) of each video of ``split``."""
    config = model.network.config
    items = pick_items(shards, split, config, what="the supervised baselines")
    if model.modality == "vision":
        emb = image_features(model.network, iter_images(shards, items, config), kind=EMBEDDING, batch_size=batch_size,
                             device=device, precision=precision, progress=progress, desc="vision classifier, test",
                             total=len(items))
    else:
        emb = audio_features(model.network, iter_clips(shards, items, config), kind=EMBEDDING, batch_size=batch_size,
                             device=device, precision=precision, progress=progress, desc="audio classifier, test",
                             total=len(items))
    with torch.inference_mode():
        predicted = model.classify(torch.from_numpy(emb).to(device)).argmax(-1).cpu().numpy()
    target = np.array([classes.index(item.label) for item in items])
    return {"accuracy": float(np.mean(predicted == target)), "inputs": len(items), "chance": 1.0 / len(classes)}


def train_fusion_head(
    network: L3Net,
    shards: ShardSet,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    device: torch.device,
    precision: str,
    seed: int,
    progress: bool = True,
    chunk: int = 25,
) -> History:
    """Train only ``network.head`` on AVC pairs of the train split; the towers stay frozen (their
    BatchNorm layers keep their statistics). History entries are means over ``chunk`` steps."""
    for module in (network.vision, network.audio, network.frontend):
        module.requires_grad_(False)
    network.eval()
    network.head.train()
    optimizer = torch.optim.Adam(network.head.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    pairs = AVCPairs(shards.root, "train", config=network.config, batch_size=batch_size, train=True, seed=seed)
    history = History()
    run_loss, run_correct, run_seen = 0.0, 0, 0
    with tqdm(total=steps, desc="fusion head on frozen supervised towers", unit="step", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for step, batch in enumerate(pairs):
            if step >= steps:
                break
            images, audio = batch["image"].to(device), batch["audio"].to(device)
            labels = batch["label"].to(device)
            with torch.no_grad(), autocast(precision, device):
                v, a = network.embed("vision", images), network.embed("audio", audio)
            with autocast(precision, device):
                logits = network.fuse(v, a)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            run_loss += loss.item() * len(labels)
            run_correct += int((logits.argmax(-1) == labels).sum())
            run_seen += len(labels)
            bar.update(1)
            if (step + 1) % chunk == 0 or step + 1 == steps:
                history.loss.append(run_loss / run_seen)
                history.accuracy.append(run_correct / run_seen)
                bar.set_postfix(loss=f"{history.loss[-1]:.3f}", acc=f"{history.accuracy[-1]:.2f}")
                run_loss, run_correct, run_seen = 0.0, 0, 0
    pairs.close()
    network.eval()
    return history


# ------------------------------------------------------------------------------------------------
# the protocol
# ------------------------------------------------------------------------------------------------
def evaluate_baselines(
    shards_dir: str | os.PathLike[str] | ShardSet,
    *,
    preset: str | ModelConfig = "small",
    split: str = "test",
    out: str | os.PathLike[str] | None = None,
    epochs: int = 10,
    samples_per_video: int = 4,
    head_steps: int = 500,
    batch_size: int = 32,
    lr: float = TrainConfig.lr,
    head_lr: float = 10 * TrainConfig.lr,
    weight_decay: float = TrainConfig.weight_decay,
    pairs_per_video: int = PAIRS_PER_VIDEO,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and score Table 1's supervised baselines on a labelled shard set.

    With ``out``, the result goes to ``out/eval/baselines.json`` (with a training-curve picture)
    and the supervised-pretraining network to ``out/baselines/supervised_pretraining/``.
    ``result["metrics"]["avc"]`` holds the AVC accuracies on the ``split`` pairs:
    ``{"Supervised direct": ..., "Supervised pretraining": ...}``.
    """
    for name, value, low in (("epochs", epochs, 1), ("samples per video", samples_per_video, 1),
                             ("head steps", head_steps, 1), ("batch size", batch_size, 2)):
        if value < low:
            raise InputError(f"{name} must be at least {low}, got {value}")
    if not all(x > 0 and np.isfinite(x) for x in (lr, head_lr)) or not (weight_decay >= 0 and np.isfinite(weight_decay)):
        raise InputError(f"learning rates must be positive and the weight decay >= 0, got {lr}, {head_lr} and {weight_decay}")
    config = get_preset(preset) if isinstance(preset, str) else preset
    target = resolve_device(device)
    check_precision(precision, target)
    shards = open_shards(shards_dir)
    classes = class_names(shards, "the supervised baselines")
    _check_labelled_splits(shards, classes, split)
    out_eval = eval_dir(None, out) if out is not None else None  # an unwritable place fails before training

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
    result: dict[str, Any] = {
        "title": TITLE,
        "model": f"supervised baselines ({config.name} preset)",
        "dataset": str(shards.root),
        "tables": [
            {"title": f"AVC accuracy on the {split} split's balanced pairs (chance 0.5)",
             "columns": ["method", "ours", "paper Kinetics-Sounds"], "rows": rows},
            {"title": "The supervised classifiers on their own", "columns": ["classifier", "accuracy", "chance"],
             "rows": classifier_rows},
        ],
        "notes": notes,
        "figures": [],
        "metrics": {
            "avc": avc,
            "split": split,
            "direct": {**direct, "val_accuracy": val_accuracy, "val_pairs": int(len(val["label"]))},
            "pretraining": pretraining,
            "classifiers": test_acc,
            "training": {
                **{m: {"loss": histories[m].loss, "accuracy": histories[m].accuracy} for m in MODALITIES},
                "fusion_head": {"loss": head_history.loss, "accuracy": head_history.accuracy},
            },
            "settings": {"preset": config.name, "epochs": epochs, "samples_per_video": samples_per_video,
                         "head_steps": head_steps, "batch_size": batch_size, "lr": lr, "head_lr": head_lr,
                         "weight_decay": weight_decay,
                         "pairs_per_video": pairs_per_video, "seed": seed, "precision": precision},
            "classes": classes,
        },
    }
    if out_eval is not None:
        model_dir = Path(out) / MODEL_SUBDIR
        network.save(model_dir, extra_config={"baseline": "supervised pretraining", "classes": classes})
        result["metrics"]["model_dir"] = str(model_dir)
        notes.append(f"The supervised-pretraining network is saved in {model_dir} (use it as --model).")
        result["figures"].append({"path": _plot_training(out_eval, histories, head_history).name,
                                  "caption": "Training of the supervised baselines: classifier loss and accuracy "
                                             "per epoch, fusion head on frozen supervised towers"})
        write_result(out_eval, PROTOCOL, result)
    return result


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


def _plot_training(out: Path, histories: dict[str, History], head: History) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, modality in zip(axes, MODALITIES):
        h = histories[modality]
        epochs = np.arange(1, len(h.loss) + 1)
        ax.plot(epochs, h.loss, "o-", label="loss")
        ax.plot(epochs, h.accuracy, "s-", label="train accuracy")
        ax.set_title(f"{modality} classifier")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    chunks = np.arange(1, len(head.loss) + 1)
    axes[2].plot(chunks, head.loss, "o-", label="loss")
    axes[2].plot(chunks, head.accuracy, "s-", label="train AVC accuracy")
    axes[2].axhline(paper.AVC_CHANCE, color="grey", linestyle=":", linewidth=1)
    axes[2].set_title("fusion head (frozen supervised towers)")
    axes[2].set_xlabel("chunk of steps")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out / "baselines_training.png")


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="SHARDS", help="a labelled shard directory (l3net prepare --labels)")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS), help="architecture of the towers (default: small)")
    parser.add_argument("--split", default="test", choices=("val", "test"), help="split whose pairs are scored (default: test)")
    parser.add_argument("--epochs", type=int, default=10, help="classifier training epochs (default: 10)")
    parser.add_argument("--samples-per-video", type=int, default=4,
                        help="random frames / 1 s clips drawn from each train video per epoch (default: 4)")
    parser.add_argument("--head-steps", type=int, default=500,
                        help="steps training the fusion head of supervised pretraining (default: 500)")
    parser.add_argument("--lr", type=float, default=TrainConfig.lr, help=f"Adam learning rate (default: {TrainConfig.lr:g})")
    parser.add_argument("--head-lr", type=float, default=10 * TrainConfig.lr,
                        help=f"Adam learning rate of the fusion head alone, on frozen towers (default: {10 * TrainConfig.lr:g}: "
                        "a small head from scratch learns faster with a larger step; the paper gives none)")
    parser.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay,
                        help=f"Adam weight decay (default: {TrainConfig.weight_decay:g})")
    parser.add_argument("--pairs-per-video", type=int, default=PAIRS_PER_VIDEO,
                        help=f"evaluation pairs per video, as 'l3net eval avc' (default: {PAIRS_PER_VIDEO})")
    add_common_arguments(parser, model=False)


def run(args: argparse.Namespace) -> int:
    if args.out is None:
        raise InputError("pass --out DIR: where the results (DIR/eval/) and the baseline network go")
    result = evaluate_baselines(
        args.data, preset=args.preset, split=args.split, out=args.out, epochs=args.epochs,
        samples_per_video=args.samples_per_video, head_steps=args.head_steps, batch_size=args.batch_size,
        lr=args.lr, head_lr=args.head_lr, weight_decay=args.weight_decay, pairs_per_video=args.pairs_per_video, device=args.device,
        precision=args.precision, seed=args.seed,
    )
    print_result(result)
    out = Path(args.out) / "eval"
    print(f"results: {out / (PROTOCOL + '.json')}; pictures: " + ", ".join(str(out / f['path']) for f in result["figures"]))
    print(f"supervised-pretraining network: {result['metrics']['model_dir']}", file=sys.stdout)
    return 0
