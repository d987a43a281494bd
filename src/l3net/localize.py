"""``l3net localize``: heatmaps of where the sound is, over a whole video (the video scoring pipeline).

Frames every ``1 / fps`` s, each paired with the 1 s clip centred on it, are scored by
:func:`l3net.heatmaps.low_res_heatmaps` a batch at a time (the video is streamed, never held in
memory), drawn over the frames and written as pictures, an MP4 with the original sound
(:class:`l3net.media.VideoWriter`), the maps (``heatmaps.npz``) and a summary (``localize.json``),
each atomically. Like :func:`l3net.process_video_file`, this is a file-to-files function.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .config import SAMPLE_RATE
from .errors import InputError, MediaError
from .fileio import atomic_path, ensure_dir, remove_stale_temporaries, write_json
from .heatmaps import _colormap_lut, clip_at, low_res_heatmaps, overlay, peak_location, upsample
from .media import VideoWriter, iter_video_frames, load_audio, probe
from .models import L3Net

#: Frames per second :func:`localize_video` scores by default (the data pipeline's default rate).
DEFAULT_FPS = 4.0
#: Frames are drawn no larger than this (smaller side, px): overlays of a 4K video need not be 4K.
MAX_OVERLAY_SIDE = 720
OVERLAY_DIRNAME = "overlays"
HEATMAPS_FILE = "heatmaps.npz"
VIDEO_FILE = "overlay.mp4"
SUMMARY_FILE = "localize.json"


def _save_png(image: np.ndarray, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


@dataclass
class LocalizationResult:
    """What :func:`localize_video` found and wrote.

    ``maps`` are the scores at the last conv's resolution ``(N, h, w)``; :meth:`heatmap` gives one at
    the frame's size. ``peaks`` are ``(x, y)`` pixels of the drawn frames (``frame_size`` = (W, H)).
    """

    video: Path
    out_dir: Path
    times: np.ndarray  # (N,) seconds
    maps: np.ndarray  # (N, h, w) float32 in [0, 1]
    frame_size: tuple[int, int]  # (width, height) of the frames drawn
    peaks: np.ndarray  # (N, 2) x, y pixels
    overlay_paths: list[Path] = field(default_factory=list)
    video_path: Path | None = None
    summary_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def heatmap(self, index: int) -> np.ndarray:
        """Frame ``index``'s heatmap at the frame size, ``(H, W)`` in [0, 1]."""
        width, height = self.frame_size
        return upsample(self.maps[index : index + 1], height, width)[0]


def check_video_with_sound(path: Path) -> Any:
    """Probe ``path``; a clear :class:`MediaError` unless it is a video with a sound track."""
    info = probe(path)
    if info.kind == "image":
        raise MediaError(path, "is a still image; localization needs a video with its sound track")
    if not info.has_video:
        raise MediaError(path, "has no video stream (audio only): localization needs a video with its sound track")
    if not info.has_audio:
        raise MediaError(path, "has no audio stream: localization needs the video's sound track")
    return info


def _batches(iterator: Iterator[tuple[float, np.ndarray]], size: int) -> Iterator[list[tuple[float, np.ndarray]]]:
    batch: list[tuple[float, np.ndarray]] = []
    for item in iterator:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def localize_video(
    model: L3Net,
    path: str | Path,
    out_dir: str | Path,
    *,
    fps: float = DEFAULT_FPS,
    max_seconds: float | None = None,
    batch_size: int = 16,
    precision: str = "fp32",
    scale: str = "frame",
    write_overlays: bool = True,
    write_video: bool = True,
    model_name: str | None = None,
    progress: bool = True,
) -> LocalizationResult:
    """Heatmaps of where the sound is, for a video's frames every ``1 / fps`` seconds.

    Each frame at time t is paired with the 1 s clip centred on t (moved inside the video near its
    ends; zero-padded when the video is shorter than 1 s). Writes into ``out_dir``:
    ``overlays/frame_NNNNN.png`` (heatmap over the frame, peak circled), ``overlay.mp4`` (the
    overlays at ``fps`` with the original sound, H.264 + AAC), ``heatmaps.npz`` (``times`` in s,
    ``maps`` ``(N, h, w)`` in [0, 1], ``frame_size`` (W, H)) and ``localize.json`` (per frame: time,
    peak, scores, picture), each atomically; ``localize.json`` is written last. ``max_seconds``
    limits the part of the video scored (from its start).

    Raises :class:`~l3net.errors.MediaError` for a file that is unreadable, audio only, or has no sound.
    """
    path = Path(path)
    out_dir = Path(out_dir)
    if not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"fps must be a positive number, got {fps}")
    if max_seconds is not None and not max_seconds > 0:
        raise InputError(f"max_seconds must be positive, got {max_seconds}")
    if scale not in ("frame", "absolute"):
        raise InputError(f"scale must be 'frame' or 'absolute', got {scale!r}")
    info = check_video_with_sound(path)
    ensure_dir(out_dir)
    remove_stale_temporaries(out_dir, [VIDEO_FILE, HEATMAPS_FILE, SUMMARY_FILE])  # of a run killed mid-write
    remove_stale_temporaries(out_dir / OVERLAY_DIRNAME, ["frame_*.png"])
    notes: list[str] = []
    clip_samples = model.config.clip_samples
    clip_seconds = model.config.clip_seconds

    audio_limit = None if max_seconds is None else max_seconds + clip_seconds
    audio = load_audio(path, SAMPLE_RATE, duration=audio_limit)
    duration = info.duration if info.duration else audio.size / SAMPLE_RATE
    scored = duration if max_seconds is None else min(duration, max_seconds)
    if audio.size < clip_samples:
        notes.append(
            f"the sound track is {audio.size / SAMPLE_RATE:.2f} s, shorter than the model's {clip_seconds:g} s "
            "clip: it was zero-padded"
        )
    if info.width and info.height and min(info.width, info.height) > MAX_OVERLAY_SIDE:
        smaller_side: int | None = MAX_OVERLAY_SIDE
        notes.append(f"frames drawn with their smaller side scaled to {MAX_OVERLAY_SIDE} px")
    else:
        smaller_side = None

    overlay_dir = out_dir / OVERLAY_DIRNAME
    times: list[float] = []
    maps: list[np.ndarray] = []
    peaks: list[tuple[float, float]] = []
    records: list[dict[str, Any]] = []
    overlay_paths: list[Path] = []
    frame_size: tuple[int, int] | None = None
    writer: VideoWriter | None = VideoWriter(out_dir / VIDEO_FILE, fps, audio) if write_video else None
    lut = _colormap_lut()
    total = max(1, math.ceil(scored * fps - 1e-9))

    bar = tqdm(total=total, desc=f"localize {path.name}", unit="frame", disable=not progress, file=sys.stderr)
    try:
        frames_iter = iter_video_frames(path, fps=fps, duration=scored, smaller_side=smaller_side)
        for batch in _batches(frames_iter, batch_size):
            batch_times = [t for t, _ in batch]
            frames = np.stack([f for _, f in batch])
            clips = np.stack([clip_at(audio, t, clip_samples) for t in batch_times])
            low = low_res_heatmaps(model, frames, clips, batch_size=batch_size, precision=precision)
            full = upsample(low, frames.shape[1], frames.shape[2])
            frame_size = (frames.shape[2], frames.shape[1])
            for t, frame, small, heat in zip(batch_times, frames, low, full):
                index = len(times)
                peak = peak_location(heat)
                if write_overlays or writer is not None:
                    caption = f"t={t:.2f} s  peak p={float(heat.max()):.2f}"
                    drawn = overlay(frame, heat, scale=scale, peak=peak, caption=caption, lut=lut)
                record = {
                    "index": index,
                    "time": round(t, 6),
                    "peak": [round(peak[0], 2), round(peak[1], 2)],
                    "peak_score": float(heat.max()),
                    "mean_score": float(small.mean()),
                }
                if write_overlays:
                    png = overlay_dir / f"frame_{index:05d}.png"
                    _save_png(drawn, png)
                    overlay_paths.append(png)
                    record["overlay"] = png.relative_to(out_dir).as_posix()
                if writer is not None:
                    writer.write(drawn)
                times.append(t)
                maps.append(small)
                peaks.append(peak)
                records.append(record)
            bar.update(len(batch))
        if not times:
            raise MediaError(path, "no video frame could be decoded")
        if writer is not None:
            writer.close()
            writer = None
    except BaseException as exc:
        if writer is not None:
            writer.abort(exc)
        raise
    finally:
        bar.close()

    # pictures of an earlier run over more frames would be mistaken for this run's
    current = set(overlay_paths)
    for stale in overlay_dir.glob("frame_*.png") if overlay_dir.is_dir() else ():
        if stale not in current:
            stale.unlink(missing_ok=True)
    maps_array = np.stack(maps).astype(np.float32)
    with atomic_path(out_dir / HEATMAPS_FILE, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, times=np.array(times), maps=maps_array, frame_size=np.array(frame_size), peaks=np.array(peaks)
        )
    video_path = out_dir / VIDEO_FILE if write_video else None
    summary = {
        "video": str(path),
        "model": model_name or model.config.name,
        "preset": model.config.name,
        "fps": fps,
        "clip_seconds": clip_seconds,
        "seconds_scored": round(scored, 6),
        "frame_size": list(frame_size),
        "map_size": [int(maps_array.shape[2]), int(maps_array.shape[1])],
        "score": "softmax(fuse(conv4_2 vector at each location, pool4 audio embedding))[corresponds]",
        "display_scale": scale,
        "heatmaps": HEATMAPS_FILE,
        "video_out": VIDEO_FILE if video_path else None,
        "notes": notes,
        "frames": records,
    }
    summary_path = out_dir / SUMMARY_FILE
    write_json(summary_path, summary)
    return LocalizationResult(
        video=path,
        out_dir=out_dir,
        times=np.array(times),
        maps=maps_array,
        frame_size=frame_size,
        peaks=np.array(peaks, dtype=np.float64),
        overlay_paths=overlay_paths,
        video_path=video_path,
        summary_path=summary_path,
        notes=notes,
    )
