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
from .heatmaps import _colormap_lut, low_res_heatmaps, overlay, peak_location, upsample
from .inputs import centred_clip
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


@dataclass
class ScoredFrame:
    """One frame scored by :func:`score_frames`.

    ``time`` in seconds; ``frame`` the decoded picture ``(H, W, 3)`` uint8; ``low`` its heatmap at the
    last conv's resolution ``(h, w)`` and ``heat`` at the frame's ``(H, W)``, both in [0, 1];
    ``peak`` the ``(x, y)`` pixel of the hottest place.
    """

    time: float
    frame: np.ndarray
    low: np.ndarray
    heat: np.ndarray
    peak: tuple[float, float]


def score_frames(
    model: L3Net,
    path: Path,
    audio: np.ndarray,
    *,
    fps: float,
    seconds: float,
    smaller_side: int | None = None,
    batch_size: int = 16,
    precision: str = "fp32",
) -> Iterator[ScoredFrame]:
    """Decode the frames of ``path`` every ``1 / fps`` s over its first ``seconds`` and score each with
    the clip of ``audio`` (48 kHz) centred on it, ``batch_size`` frames at a time: computes only (the
    video is streamed, nothing is drawn or written)."""
    clip_samples = model.config.clip_samples
    frames_iter = iter_video_frames(path, fps=fps, duration=seconds, smaller_side=smaller_side)
    for batch in _batches(frames_iter, batch_size):
        times = [t for t, _ in batch]
        frames = np.stack([f for _, f in batch])
        clips = np.stack([centred_clip(audio, t, clip_samples) for t in times])
        low = low_res_heatmaps(model, frames, clips, batch_size=batch_size, precision=precision)
        full = upsample(low, frames.shape[1], frames.shape[2])
        for t, frame, small, heat in zip(times, frames, low, full):
            yield ScoredFrame(t, frame, small, heat, peak_location(heat))


def draw_frame(scored: ScoredFrame, *, scale: str = "frame", lut: np.ndarray | None = None) -> np.ndarray:
    """The frame with its heatmap over it, the peak circled and the time and peak score written on it:
    ``(H, W, 3)`` uint8 (``scale`` as :func:`l3net.heatmaps.overlay`'s)."""
    caption = f"t={scored.time:.2f} s  peak p={float(scored.heat.max()):.2f}"
    return overlay(scored.frame, scored.heat, scale=scale, peak=scored.peak, caption=caption, lut=lut)


def frame_record(index: int, scored: ScoredFrame) -> dict[str, Any]:
    """A frame's entry in ``localize.json``: index, time (s), peak (x, y px) and scores."""
    return {
        "index": index,
        "time": round(scored.time, 6),
        "peak": [round(scored.peak[0], 2), round(scored.peak[1], 2)],
        "peak_score": float(scored.heat.max()),
        "mean_score": float(scored.low.mean()),
    }


def _check_settings(fps: float, max_seconds: float | None, scale: str) -> None:
    if not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"fps must be a positive number, got {fps}")
    if max_seconds is not None and not max_seconds > 0:
        raise InputError(f"max_seconds must be positive, got {max_seconds}")
    if scale not in ("frame", "absolute"):
        raise InputError(f"scale must be 'frame' or 'absolute', got {scale!r}")


def _read_sound(
    model: L3Net, path: Path, info: Any, max_seconds: float | None, notes: list[str]
) -> tuple[np.ndarray, float]:
    """The sound track at 48 kHz (as far as the scored part's last clip reaches) and the seconds to
    score; a note when the sound is shorter than a clip."""
    clip_seconds = model.config.clip_seconds
    audio_limit = None if max_seconds is None else max_seconds + clip_seconds
    audio = load_audio(path, SAMPLE_RATE, duration=audio_limit)
    duration = info.duration if info.duration else audio.size / SAMPLE_RATE
    scored = duration if max_seconds is None else min(duration, max_seconds)
    if audio.size < model.config.clip_samples:
        notes.append(
            f"the sound track is {audio.size / SAMPLE_RATE:.2f} s, shorter than the model's {clip_seconds:g} s "
            "clip: it was zero-padded"
        )
    return audio, scored


def _drawing_side(info: Any, notes: list[str]) -> int | None:
    """The smaller side frames are decoded at for drawing (None: as they are); a note when scaled."""
    if info.width and info.height and min(info.width, info.height) > MAX_OVERLAY_SIDE:
        notes.append(f"frames drawn with their smaller side scaled to {MAX_OVERLAY_SIDE} px")
        return MAX_OVERLAY_SIDE
    return None


@dataclass
class _Done:
    """What the frame loop of :func:`localize_video` kept: per frame its time (s), low-resolution map,
    peak (x, y px), ``localize.json`` record and picture; the drawn frames' (W, H)."""

    times: list[float] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    peaks: list[tuple[float, float]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    overlay_paths: list[Path] = field(default_factory=list)
    frame_size: tuple[int, int] = (0, 0)


def _draw_and_write(frames: Iterator[ScoredFrame], out_dir: Path, writer: VideoWriter | None, *,
                    write_overlays: bool, scale: str, bar: Any) -> _Done:
    """Draw each scored frame and write it as it comes (a picture in ``overlays/``, a frame of the
    video); keep the maps, peaks and records for the summary."""
    done = _Done()
    lut = _colormap_lut()
    for frame in frames:
        record = frame_record(len(done.records), frame)
        if write_overlays or writer is not None:
            drawn = draw_frame(frame, scale=scale, lut=lut)
        if write_overlays:
            png = out_dir / OVERLAY_DIRNAME / f"frame_{record['index']:05d}.png"
            _save_png(drawn, png)
            done.overlay_paths.append(png)
            record["overlay"] = png.relative_to(out_dir).as_posix()
        if writer is not None:
            writer.write(drawn)
        done.frame_size = (frame.frame.shape[1], frame.frame.shape[0])
        done.times.append(frame.time)
        done.maps.append(frame.low)
        done.peaks.append(frame.peak)
        done.records.append(record)
        bar.update(1)
    return done


def _remove_stale_overlays(overlay_dir: Path, current: list[Path]) -> None:
    # pictures of an earlier run over more frames would be mistaken for this run's
    keep = set(current)
    for stale in overlay_dir.glob("frame_*.png") if overlay_dir.is_dir() else ():
        if stale not in keep:
            stale.unlink(missing_ok=True)


def _write_heatmaps(path: Path, times: list[float], maps: np.ndarray, frame_size: tuple[int, int],
                    peaks: list[tuple[float, float]]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, times=np.array(times), maps=maps, frame_size=np.array(frame_size), peaks=np.array(peaks)
        )


def _summary(
    model: L3Net, path: Path, *, model_name: str | None, fps: float, scored: float, frame_size: tuple[int, int],
    maps: np.ndarray, scale: str, write_video: bool, notes: list[str], records: list[dict[str, Any]],
) -> dict[str, Any]:
    """The contents of ``localize.json``."""
    return {
        "video": str(path),
        "model": model_name or model.config.name,
        "preset": model.config.name,
        "fps": fps,
        "clip_seconds": model.config.clip_seconds,
        "seconds_scored": round(scored, 6),
        "frame_size": list(frame_size),
        "map_size": [int(maps.shape[2]), int(maps.shape[1])],
        "score": "softmax(fuse(conv4_2 vector at each location, pool4 audio embedding))[corresponds]",
        "display_scale": scale,
        "heatmaps": HEATMAPS_FILE,
        "video_out": VIDEO_FILE if write_video else None,
        "notes": notes,
        "frames": records,
    }


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

    The recipe: read the sound, then per frame score (:func:`score_frames`), draw (:func:`draw_frame`)
    and write the picture and the video's frame as it comes (the video is never held in memory), then
    write the maps and the summary.

    Raises :class:`~l3net.errors.MediaError` for a file that is unreadable, audio only, or has no sound.
    """
    path = Path(path)
    out_dir = Path(out_dir)
    _check_settings(fps, max_seconds, scale)
    info = check_video_with_sound(path)
    ensure_dir(out_dir)
    remove_stale_temporaries(out_dir, [VIDEO_FILE, HEATMAPS_FILE, SUMMARY_FILE])  # of a run killed mid-write
    remove_stale_temporaries(out_dir / OVERLAY_DIRNAME, ["frame_*.png"])
    notes: list[str] = []
    audio, scored = _read_sound(model, path, info, max_seconds, notes)
    smaller_side = _drawing_side(info, notes)

    writer: VideoWriter | None = VideoWriter(out_dir / VIDEO_FILE, fps, audio) if write_video else None
    total = max(1, math.ceil(scored * fps - 1e-9))
    bar = tqdm(total=total, desc=f"localize {path.name}", unit="frame", disable=not progress, file=sys.stderr)
    try:
        frames = score_frames(model, path, audio, fps=fps, seconds=scored, smaller_side=smaller_side,
                              batch_size=batch_size, precision=precision)
        done = _draw_and_write(frames, out_dir, writer, write_overlays=write_overlays, scale=scale, bar=bar)
        if not done.records:
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

    _remove_stale_overlays(out_dir / OVERLAY_DIRNAME, done.overlay_paths)
    maps = np.stack(done.maps).astype(np.float32)
    _write_heatmaps(out_dir / HEATMAPS_FILE, done.times, maps, done.frame_size, done.peaks)
    summary_path = out_dir / SUMMARY_FILE
    write_json(summary_path, _summary(model, path, model_name=model_name, fps=fps, scored=scored,
                                      frame_size=done.frame_size, maps=maps, scale=scale,
                                      write_video=write_video, notes=notes, records=done.records))
    return LocalizationResult(
        video=path,
        out_dir=out_dir,
        times=np.array(done.times),
        maps=maps,
        frame_size=done.frame_size,
        peaks=np.array(done.peaks, dtype=np.float64),
        overlay_paths=done.overlay_paths,
        video_path=out_dir / VIDEO_FILE if write_video else None,
        summary_path=summary_path,
        notes=notes,
    )
