"""The networks of Table 1's supervised baselines and their training data (see
:mod:`l3net.evaluate.baselines` for the protocol, :mod:`l3net.evaluate.baselines.training` for the
resumable training loop).

Training data, with L3 training's own augmentation: the vision classifier reads the frames of the
AVC sampler (:class:`~l3net.data.sampler.AVCPairs`, ``train=True``: the same code, so the same
random crop, flip, brightness and saturation, and the same epochs: each train video once as the
image source, frames cycling); the audio classifier reads :class:`ClassifierClips`: per epoch each
train video once, a random 1 s clip of it with one random gain from the same
:class:`~l3net.data.sampler.AugmentConfig` (L3 training's audio augmentation). Both are pure
functions of the step, so a resumed training reads exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import IterableDataset, get_worker_info

from ...config import ModelConfig
from ...data.sampler import AugmentConfig
from ...data.shards import ShardSet, VideoRecord
from ...errors import InputError
from ...models import MODALITIES, L3Net, build_model
from ..features import EMBEDDING, audio_features, image_features
from ..inputs import check_split, iter_clips, iter_images, pick_items


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
    """Training loss and accuracy of one trained part, as means over ``every`` consecutive steps;
    ``step`` is the step that ends each entry."""

    every: int = 1
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def usable_train_videos(shards: ShardSet, config: ModelConfig) -> list[VideoRecord]:
    """The train videos the classifiers (and the AVC sampler) use: a frame and a whole clip of audio."""
    return [v for v in check_split(shards, "train") if v.num_frames > 0 and v.num_samples >= config.clip_samples]


def _stream_rng(*words: int) -> np.random.Generator:
    return np.random.default_rng([int(w) & 0xFFFFFFFFFFFF for w in words])


class ClassifierClips(IterableDataset):
    """Batches ``(clips (B, clip_samples) float32, class indices (B,) int64; -1: unlabelled)`` for the
    audio classifier, from step ``start_step`` on, endless. Slot ``s * B + i`` of step ``s`` is video
    ``order_e[slot mod n]`` of epoch ``e = slot // n`` (a seeded permutation per epoch), a uniformly
    random 1 s clip of it, scaled by one gain from ``augment.gain``: a pure function of the step.
    DataLoader workers take steps round-robin (worker ``w`` serves ``start_step + w``, ``+ W``, ...)."""

    def __init__(self, shards_dir: str | os.PathLike[str], config: ModelConfig, classes: Sequence[str], *,
                 batch_size: int, seed: int, augment: AugmentConfig, start_step: int = 0) -> None:
        super().__init__()
        self.root, self.config, self.classes = Path(shards_dir), config, list(classes)
        self.batch_size, self.seed, self.augment, self.start_step = batch_size, int(seed), augment, start_step

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shards = ShardSet(self.root)
        videos = usable_train_videos(shards, self.config)
        index = {c: i for i, c in enumerate(self.classes)}
        n, b, clip = len(videos), self.batch_size, self.config.clip_samples
        lo, hi = self.augment.gain
        orders: dict[int, np.ndarray] = {}
        try:
            step = self.start_step + worker
            while True:
                draws = _stream_rng(self.seed, 0xA0D1, step).random((b, 2))
                clips = np.empty((b, clip), dtype=np.float32)
                targets = np.empty(b, dtype=np.int64)
                for i in range(b):
                    epoch, pos = divmod(step * b + i, n)
                    if epoch not in orders:
                        orders = {epoch: _stream_rng(self.seed, 0xA0D2, epoch).permutation(n)}
                    video = videos[int(orders[epoch][pos])]
                    start = int(draws[i, 0] * (video.num_samples - clip + 1))
                    clips[i] = shards.read_audio(video, start, clip) * np.float32(lo + (hi - lo) * draws[i, 1])
                    targets[i] = index.get(video.label, -1)
                yield torch.from_numpy(clips), torch.from_numpy(targets)
                step += workers
        finally:
            shards.close()


def vision_batches(pairs_batch: dict[str, Any], class_index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, class indices; -1: unlabelled)`` of an AVC sampler batch: its frames, classed by their video."""
    targets = torch.tensor([class_index.get(c, -1) if c is not None else -1 for c in pairs_batch["image_class"]],
                           dtype=torch.int64)
    return pairs_batch["image"], targets


def new_classifier(config: ModelConfig, modality: str, num_classes: int, seed: int) -> TowerClassifier:
    """A fresh :class:`TowerClassifier` whose tower and fc layers all come from ``seed`` (the global
    random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TowerClassifier(build_model(config, seed=seed), modality, num_classes)


def classifier_test_accuracy(
    model: TowerClassifier, shards: ShardSet, classes: Sequence[str], *, split: str = "test",
    batch_size: int, device: torch.device, precision: str, progress: bool,
) -> dict[str, Any]:
    """Accuracy of a classifier on the centre frame (or centred 1 s clip) of each video of ``split``."""
    config = model.network.config
    items = pick_items(shards, split, config, what="the supervised baselines")
    if model.modality == "vision":
        emb = image_features(model.network, iter_images(shards, items, config), layer=EMBEDDING, batch_size=batch_size,
                             device=device, precision=precision, progress=progress, desc="vision classifier, test",
                             total=len(items))
    else:
        emb = audio_features(model.network, iter_clips(shards, items, config), layer=EMBEDDING, batch_size=batch_size,
                             device=device, precision=precision, progress=progress, desc="audio classifier, test",
                             total=len(items))
    with torch.inference_mode():
        predicted = model.classify(torch.from_numpy(emb).to(device)).argmax(-1).cpu().numpy()
    target = np.array([classes.index(item.label) for item in items])
    return {"accuracy": float(np.mean(predicted == target)), "inputs": len(items), "chance": 1.0 / len(classes)}
