"""Frames whose sounding object has a known box, for the pointing game: read from shards (boxes in
``KEY.json``, stored-frame pixels) or from a folder of videos with ``NAME.boxes.json`` sidecars (the
output of ``l3net synth``). A null box (the source absent or off-screen) and a box outside the
frame leave the frame out, counted.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.shards import DATASET_FILE, ShardSet
from ..data.synth import BOXES_SUFFIX, read_boxes
from ..errors import DatasetError, InputError, MediaError
from ..inputs import centred_clip
from ..localize import DEFAULT_FPS, check_video_with_sound
from ..media import iter_video_frames, load_audio

Box = Sequence[float]  # (x0, y0, x1, y1) in pixels, x to the right, y down


@dataclass
class BoxedFrame:
    """One frame with the sounding object's box(es) and its video's sound."""

    key: str
    time: float  # seconds
    frame: np.ndarray  # H x W x 3 uint8
    audio: np.ndarray  # the whole video's audio, float32 at SAMPLE_RATE (shared by its frames)
    boxes: list[tuple[float, float, float, float]]  # (x0, y0, x1, y1) pixels of ``frame``
    label: str | None = None

    def clip(self, clip_samples: int) -> np.ndarray:
        """The ``clip_samples``-long clip centred on the frame (moved inside the audio, padded)."""
        return centred_clip(self.audio, self.time, clip_samples)


def visible_boxes(boxes: Iterable[Box], width: int, height: int) -> list[tuple[float, float, float, float]]:
    """Boxes clipped to a ``width`` x ``height`` frame; those with no area on screen are dropped."""
    kept = []
    for b in boxes:
        x0, y0, x1, y1 = (float(v) for v in b)
        x0, x1 = max(0.0, min(x0, x1)), min(float(width), max(x0, x1))
        y0, y1 = max(0.0, min(y0, y1)), min(float(height), max(y0, y1))
        if x1 > x0 and y1 > y0:
            kept.append((x0, y0, x1, y1))
    return kept


def _parse_box(entry: Any, where: str) -> list[Box]:
    """A frame's box entry: None (no visible sounding object) -> [], ``[x0, y0, x1, y1]`` -> [box]."""
    if entry is None:
        return []
    if isinstance(entry, (list, tuple)) and len(entry) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry
    ):
        return [tuple(float(v) for v in entry)]  # type: ignore[list-item]
    raise DatasetError(f"{where}: not a box [x0, y0, x1, y1] or null: {entry!r}")


def _empty_counts() -> dict[str, Any]:
    return {
        "source": "",
        "videos": 0,
        "videos_without_boxes": 0,
        "unreadable": [],
        "frames": 0,
        "kept": 0,
        "no_visible_source": 0,
        "box_outside_frame": 0,
    }


def _keep_frame(
    counts: dict[str, Any], boxes: list[Box], width: int, height: int
) -> list[tuple[float, float, float, float]] | None:
    counts["frames"] += 1
    if not boxes:
        counts["no_visible_source"] += 1
        return None
    visible = visible_boxes(boxes, width, height)
    if not visible:
        counts["box_outside_frame"] += 1
        return None
    counts["kept"] += 1
    return visible


def _frames_from_shards(
    data: Path, split: str, max_videos: int | None, progress: bool
) -> tuple[list[BoxedFrame], dict[str, Any]]:
    shards = ShardSet(data)
    videos = shards.videos(split)
    if not videos:
        raise DatasetError(f"{data}: no usable '{split}' shards (is the split empty, or were the shards not finished?)")
    counts, examples = _empty_counts(), []
    counts["source"] = "shards"
    try:
        for video in tqdm(videos[:max_videos], desc="reading frames", unit="video", disable=not progress, file=sys.stderr):
            counts["videos"] += 1
            boxes = video.boxes
            if boxes is None:
                counts["videos_without_boxes"] += 1
                continue
            where = f"{video.shard}:{video.key}.json"
            if len(boxes) != video.num_frames:
                raise DatasetError(f"{where}: {len(boxes)} boxes for {video.num_frames} frames")
            audio = shards.read_audio(video)
            for i, (t, entry) in enumerate(zip(video.frame_times, boxes)):
                parsed = _parse_box(entry, where)
                if not parsed:
                    _keep_frame(counts, parsed, 0, 0)
                    continue
                frame = shards.read_frame(video, i)
                visible = _keep_frame(counts, parsed, frame.shape[1], frame.shape[0])
                if visible:
                    examples.append(BoxedFrame(video.key, float(t), frame, audio, visible, video.label))
    finally:
        shards.close()
    return examples, counts


def _video_with_boxes(sidecar: Path) -> Path | None:

    stem = sidecar.name[: -len(BOXES_SUFFIX)]
    candidates = sorted(p for p in sidecar.parent.glob(f"{stem}.*") if p != sidecar and p.suffix != ".json")
    return candidates[0] if candidates else None


def _frames_from_videos(
    sidecars: list[Path], fps: float, max_videos: int | None, progress: bool
) -> tuple[list[BoxedFrame], dict[str, Any]]:
    """Frames every ``1 / fps`` s of videos with ``NAME.boxes.json`` ground truth (``l3net synth``)."""

    counts, examples = _empty_counts(), []
    counts["source"] = "videos"
    for sidecar in tqdm(sidecars[:max_videos], desc="reading videos", unit="video", disable=not progress, file=sys.stderr):
        counts["videos"] += 1
        video = _video_with_boxes(sidecar)
        truth = read_boxes(video) if video is not None else None
        if video is None or truth is None:
            counts["unreadable"].append(f"{sidecar}: no video beside it, or not an l3net-boxes file")
            continue
        try:
            check_video_with_sound(video)
            duration = len(truth["boxes"]) / float(truth["fps"])  # the ground truth's timeline
            times = [k / fps for k in range(max(1, math.ceil(duration * fps - 1e-9)))]
            # box i belongs to video frame i, shown from i / F seconds
            boxes = [
                _parse_box(truth["boxes"][min(len(truth["boxes"]) - 1, int(math.floor(t * truth["fps"] + 1e-6)))], str(sidecar))
                for t in times
            ]
            wanted = [t for t, b in zip(times, boxes) if b]
            for b in boxes:
                if not b:
                    _keep_frame(counts, b, 0, 0)
            if not wanted:
                continue
            audio = load_audio(video)
            by_time = dict(zip(times, boxes))
            for t, frame in iter_video_frames(video, times=wanted):
                height, width = frame.shape[:2]
                sx, sy = width / float(truth.get("width") or width), height / float(truth.get("height") or height)
                scaled = [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in by_time[t]]
                visible = _keep_frame(counts, scaled, width, height)
                if visible:
                    examples.append(BoxedFrame(video.stem, float(t), frame, audio, visible, truth.get("class")))
        except MediaError as exc:
            counts["unreadable"].append(str(exc))
    return examples, counts


def load_boxed_frames(
    data: str | Path,
    *,
    split: str = "test",
    fps: float = DEFAULT_FPS,
    max_videos: int | None = None,
    progress: bool = True,
) -> tuple[list[BoxedFrame], dict[str, Any]]:
    """Every frame whose sounding object is visible, from shards or a folder of boxed videos.

    ``data`` is a shard directory (``dataset.json``; frames of ``split`` as stored, boxes from each
    sample's ``boxes``) or a folder holding videos with ``NAME.boxes.json`` ground truth, such as
    the output of ``l3net synth`` (every video, frames every ``1 / fps`` s; ``split`` is unused).
    Returns the frames and counts: ``source`` ("shards" or "videos"), ``videos``, ``videos_without_boxes``, ``unreadable`` (messages),
    ``frames``, ``kept``, ``no_visible_source`` (null box: the source is absent or off-screen) and
    ``box_outside_frame`` (a box with no area inside the frame).
    """
    data = Path(data)
    if not data.is_dir():
        raise DatasetError(f"{data}: no such directory (pass shards from 'l3net prepare' or a world from 'l3net synth')")
    if not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"fps must be a positive number, got {fps}")
    if (data / DATASET_FILE).is_file():
        return _frames_from_shards(data, split, max_videos, progress)
    sidecars = sorted(data.rglob(f"*{BOXES_SUFFIX}"))
    if sidecars:
        return _frames_from_videos(sidecars, fps, max_videos, progress)
    raise DatasetError(
        f"{data}: neither a shard directory (no {DATASET_FILE}) nor a folder of videos with {BOXES_SUFFIX} "
        "ground truth (as 'l3net synth' writes): the pointing game needs the sounding object's boxes"
    )
