"""Labelled test inputs of a shard split: frames and 1 s clips, read on demand.

The clustering (Table 4), unit (Section 3.5.3) and supervised-baseline (Table 1) evaluations all
need "the test frames and the test 1 s clips, with their class". This module picks them from a
shard directory (:class:`~l3net.data.shards.ShardSet`) and reads them lazily, one at a time, so
a split of any size never sits in memory; a picked input can be read again later (the unit
pictures re-read only the top inputs of a few units).

Which inputs: ``per_video`` frames per video, equally spaced over its stored frames (one frame,
the middle one, by default), and for each frame the 1 s clip centred on the frame's time, moved
to lie inside the video (a video shorter than a clip is zero-padded at the end;
:func:`l3net.inputs.clip_start`, as localisation centres its clips). Frame and clip of one item
therefore belong together, as an AVC positive would. Frames are prepared for the network by
:mod:`l3net.evaluate.features`, i.e. :func:`l3net.inputs.prepare_image`, as the embedding API prepares them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ..config import SAMPLE_RATE, ModelConfig
from ..data.shards import SPLITS, ShardSet, VideoRecord
from ..errors import DatasetError, InputError
from ..inputs import clip_start  # noqa: F401 - the one centred clip (l3net.inputs), importable from here too
from ..models import L3Net
from .features import EMBEDDING, audio_features, image_features


@dataclass(frozen=True)
class Item:
    """One test input: a frame of a video and the 1 s clip around it."""

    video: VideoRecord
    frame_index: int
    audio_start: int  # first sample of the clip, at SAMPLE_RATE

    @property
    def key(self) -> str:
        return self.video.key

    @property
    def label(self) -> str | None:
        return self.video.label

    @property
    def time(self) -> float:
        """Time of the frame in its video (s)."""
        return float(self.video.frame_times[self.frame_index])

    def describe(self) -> dict:
        """A JSON-friendly record of the input (for the result file)."""
        return {
            "key": self.key,
            "label": self.label,
            "frame_time": round(self.time, 3),
            "audio_start": round(self.audio_start / SAMPLE_RATE, 3),
        }


def open_shards(shards_dir: str | os.PathLike[str] | ShardSet) -> ShardSet:
    """A :class:`ShardSet`, or a :class:`DatasetError` naming what is wrong with the directory."""
    if isinstance(shards_dir, ShardSet):
        return shards_dir
    return ShardSet(shards_dir)


def check_split(shards: ShardSet, split: str) -> list[VideoRecord]:
    """The videos of ``split``; a :class:`DatasetError` when it has none."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    videos = shards.videos(split)
    if not videos:
        found = {s: len(shards.shard_paths(s)) for s in SPLITS}
        raise DatasetError(
            f"{shards.root}: the {split!r} split has no usable videos "
            f"(shard files per split: {', '.join(f'{s} {n}' for s, n in found.items())}); "
            "was 'l3net prepare' run with a non-zero share for this split?"
        )
    return videos


def class_names(shards: ShardSet, what: str) -> list[str]:
    """The dataset's classes; a :class:`DatasetError` when the shards carry no labels."""
    classes = shards.classes
    if not classes:
        raise DatasetError(
            f"{shards.root}: {what} needs class labels, but these shards have none "
            "(dataset.json 'classes' is null). Prepare the videos with labels, e.g. "
            "'l3net prepare --labels labels.csv ...'"
        )
    return list(classes)


def select_classes(all_classes: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """``wanted`` checked against the dataset's classes (all of them when ``wanted`` is empty)."""
    if not wanted:
        return list(all_classes)
    unknown = [c for c in wanted if c not in all_classes]
    if unknown:
        raise InputError(
            f"unknown class name(s) {', '.join(repr(c) for c in unknown)}; "
            f"the dataset's classes are: {', '.join(all_classes)}"
        )
    return list(dict.fromkeys(wanted))


def frame_indices(num_frames: int, per_video: int) -> list[int]:
    """``per_video`` frame indices equally spaced over ``num_frames`` (the middle one for 1)."""
    if per_video < 1:
        raise InputError(f"frames per video must be at least 1, got {per_video}")
    count = min(per_video, num_frames)
    return sorted({int((i + 0.5) * num_frames / count) for i in range(count)})


def pick_items(
    shards: ShardSet,
    split: str,
    config: ModelConfig,
    *,
    per_video: int = 1,
    classes: Sequence[str] | None = None,
    labelled: bool = True,
    what: str = "this evaluation",
) -> list[Item]:
    """The test inputs of ``split``: ``per_video`` items per video (see the module docstring).

    With ``labelled``, videos without a label are left out, a label that is not one of the
    dataset's classes is a :class:`DatasetError`, and ``classes`` (when given) keeps only those.
    """
    videos = check_split(shards, split)
    if labelled:
        known = class_names(shards, what)
        keep = set(select_classes(known, classes))
        bad = [v for v in videos if v.label is not None and v.label not in known]
        if bad:
            raise DatasetError(
                f"{bad[0].shard}: video {bad[0].key} has label {bad[0].label!r}, which is not one of the "
                f"classes in {shards.root / 'dataset.json'} ({len(bad)} such video(s))"
            )
        videos = [v for v in videos if v.label in keep]
        if not videos:
            raise DatasetError(f"{shards.root}: no labelled videos of the chosen classes in the {split!r} split")
    items = []
    for video in videos:
        if video.num_frames == 0:
            continue
        for index in frame_indices(video.num_frames, per_video):
            start = clip_start(video.frame_times[index], video.num_samples, config.clip_samples)
            items.append(Item(video, index, start))
    if not items:
        raise DatasetError(f"{shards.root}: the {split!r} split has no frames to evaluate")
    return items


def read_image(shards: ShardSet, item: Item, config: ModelConfig) -> np.ndarray:
    """The item's frame, H x W x 3 uint8 (decoded no smaller than the model's ``image_resize``).

    A corrupt frame is replaced by the next decodable frame of the same video, with a warning
    naming it (the item keeps its video, so its label still holds); a video with no decodable
    frame is a :class:`DatasetError`.
    """
    video = item.video
    for attempt in range(video.num_frames):
        index = (item.frame_index + attempt) % video.num_frames
        try:
            return shards.read_frame(video, index, min_side=config.image_resize)
        except DatasetError as exc:
            warnings.warn(f"{video.shard}: frame {index} of video {video.key} is unreadable ({exc}); using another frame")
    raise DatasetError(f"{video.shard}: no frame of video {video.key} can be decoded")


def read_clip(shards: ShardSet, item: Item, config: ModelConfig) -> np.ndarray:
    """The item's 1 s clip: float32 ``(clip_samples,)`` at SAMPLE_RATE, zero-padded if the video is shorter."""
    length = min(config.clip_samples, item.video.num_samples - item.audio_start)
    clip = shards.read_audio(item.video, item.audio_start, max(0, length))
    if len(clip) < config.clip_samples:
        clip = np.pad(clip, (0, config.clip_samples - len(clip)))
    return clip


def iter_images(shards: ShardSet, items: Sequence[Item], config: ModelConfig) -> Iterator[np.ndarray]:
    for item in items:
        yield read_image(shards, item, config)


def iter_clips(shards: ShardSet, items: Sequence[Item], config: ModelConfig) -> Iterator[np.ndarray]:
    for item in items:
        yield read_clip(shards, item, config)


def label_array(items: Sequence[Item]) -> np.ndarray:
    """The items' class names as a NumPy string array."""
    return np.array([item.label for item in items], dtype=object)


def embed_items(
    model: L3Net,
    shards: ShardSet,
    items: Sequence[Item],
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    label: str = "",
) -> dict[str, np.ndarray]:
    """pool4 embeddings ``{"vision": (N, C), "audio": (N, C)}`` of the items' frames and clips."""
    config = model.config
    suffix = f" ({label})" if label else ""
    vision = image_features(
        model, iter_images(shards, items, config), layer=EMBEDDING, batch_size=batch_size, device=device,
        precision=precision, progress=progress, desc=f"vision pool4{suffix}", total=len(items),
    )
    audio = audio_features(
        model, iter_clips(shards, items, config), layer=EMBEDDING, batch_size=batch_size, device=device,
        precision=precision, progress=progress, desc=f"audio pool4{suffix}", total=len(items),
    )
    return {"vision": vision, "audio": audio}
