"""The networks of Table 1's supervised baselines and how they are trained (see
:mod:`l3net.evaluate.baselines` for the protocol).

Training here is a plain loop (a different objective from AVC training) with the paper's Adam
settings and the same optimisation step as ``l3net train`` (:func:`l3net.runtime.optimizer_step`).
Augmentation of the classifiers' inputs: random crop and flip of frames, a random 1 s clip with a
random gain, from the sampler's :class:`~l3net.data.sampler.AugmentConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..config import ModelConfig
from ..data.sampler import AugmentConfig, AVCPairs
from ..data.shards import ShardSet, VideoRecord
from ..errors import InputError
from ..media import resize_smaller_side
from ..models import MODALITIES, L3Net, build_model
from ..runtime import autocast, optimizer_step
from .features import EMBEDDING, audio_features, image_features
from .inputs import check_split, iter_clips, iter_images, pick_items


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
                optimizer_step(optimizer, scaler, loss)
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
            optimizer_step(optimizer, scaler, loss)
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


