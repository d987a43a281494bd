"""Where in the picture is the sound? Heatmaps from the fusion head, and the pointing game.

The heatmap of a frame for an audio clip is the network's own correspondence score, location by
location: the vision tower runs over the *whole* frame (smaller side scaled to the model's
``image_resize``, the scale it was trained at, not cropped, so every part of the picture gets a
score), and at each location of its last conv map (``conv4_2``, after ReLU) the fusion head scores
that location's vector against the clip's pool4 audio embedding:
``softmax(model.fuse(v[:, y, x], a))[1]``.

Why the conv4_2 vector at a location is the right thing to give the head: pool4, the vector the
head was trained on, is the channel-wise *maximum* of conv4_2 over all locations. The conv4_2
vector at one location is exactly the pool4 vector the tower would produce for a picture in which
that location alone were active (every other location contributing nothing to the maximum). So
the head reads it in the units it was trained on (no rescaling, no learned layer), and its score
says "does this sound belong to what is *here*". The map (one score per conv4_2 cell, 1/8 of the
tower input's resolution) is bilinearly upsampled to the frame; scores stay in [0, 1].

``l3net localize`` (:func:`localize_video`) draws the maps over a video's frames, each frame paired
with the 1 s clip centred on it. ``l3net eval localize`` (:func:`run`) plays the pointing game on the
synthetic world, whose sounding objects have known boxes: a frame is a hit when its heatmap's peak
falls inside the box of the object making the sound; the frame centre is the baseline guess.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import av
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..config import SAMPLE_RATE
from ..data.shards import DATASET_FILE, ShardSet
from ..data.synth import BOXES_SUFFIX, read_boxes
from ..errors import DatasetError, InputError, MediaError, OutputError
from ..fileio import atomic_path, ensure_dir, write_json
from ..media import iter_video_frames, load_audio, probe, resize_smaller_side, to_rgb_uint8
from ..models import L3Net, build_model
from ..runtime import autocast, check_precision
from .common import add_common_arguments, eval_dir, is_run_dir, load_eval_model, save_figure, write_result

#: Frames per second :func:`localize_video` scores by default (the data pipeline's default rate).
DEFAULT_FPS = 4.0
#: Frames are drawn no larger than this (smaller side, px): overlays of a 4K video need not be 4K.
MAX_OVERLAY_SIDE = 720
#: Colour map of the overlays, and how much of the colour covers the frame.
COLORMAP = "jet"
OVERLAY_ALPHA = 0.45
OVERLAY_DIRNAME = "overlays"
HEATMAPS_FILE = "heatmaps.npz"
VIDEO_FILE = "overlay.mp4"
SUMMARY_FILE = "localize.json"


# ------------------------------------------------------------------------------------------------
# the maths
# ------------------------------------------------------------------------------------------------
def _model_device(model: L3Net) -> torch.device:
    return next(model.parameters()).device


def _as_frames(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Frames as one (N, H, W, 3) uint8 array (greyscale, RGBA and floats converted)."""
    if isinstance(frames, np.ndarray) and frames.ndim == 4 and frames.dtype == np.uint8 and frames.shape[-1] == 3:
        if 0 in frames.shape:
            raise InputError(f"frames: empty array of shape {frames.shape}")
        return frames
    if isinstance(frames, np.ndarray) and frames.ndim in (2, 3) and (frames.ndim == 2 or frames.shape[-1] in (1, 3, 4)):
        frames = [frames]  # one frame
    converted = [to_rgb_uint8(f, name=f"frame {i}") for i, f in enumerate(frames)]
    if not converted:
        raise InputError("frames: no frames given")
    sizes = {f.shape[:2] for f in converted}
    if len(sizes) > 1:
        raise InputError(f"frames: all frames must have the same size, got {sorted(sizes)}")
    return np.stack(converted)


def _as_clips(audio_clips: np.ndarray | torch.Tensor, count: int, clip_samples: int) -> torch.Tensor:
    """Audio clips as (count, clip_samples) float32: one clip is shared, short clips are zero-padded."""
    clips = torch.as_tensor(np.asarray(audio_clips) if not torch.is_tensor(audio_clips) else audio_clips)
    if not (clips.is_floating_point()):
        raise InputError(f"audio clips must be float waveforms at {SAMPLE_RATE} Hz, got dtype {clips.dtype}")
    clips = clips.float()
    if clips.dim() == 1:
        clips = clips.unsqueeze(0)
    if clips.dim() != 2 or clips.shape[1] == 0:
        raise InputError(f"audio clips must be (N, samples) or (samples,), got shape {tuple(clips.shape)}")
    if clips.shape[0] == 1 and count > 1:
        clips = clips.expand(count, -1)
    if clips.shape[0] != count:
        raise InputError(f"{count} frames but {clips.shape[0]} audio clips: give one clip per frame, or one for all")
    if not torch.isfinite(clips).all():
        raise InputError("audio clips contain NaN or infinite samples")
    if clips.shape[1] > clip_samples:
        raise InputError(
            f"audio clips are {clips.shape[1]} samples; the model takes {clip_samples} "
            f"({clip_samples / SAMPLE_RATE:g} s at {SAMPLE_RATE} Hz)"
        )
    if clips.shape[1] < clip_samples:
        clips = F.pad(clips, (0, clip_samples - clips.shape[1]))
    return clips


def tower_input_frames(model: L3Net, frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, 3, h, w) uint8 tensor, smaller side ``image_resize``, uncropped."""
    size = model.config.image_resize
    resized = np.stack([resize_smaller_side(f, size) for f in frames])
    return torch.from_numpy(resized).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def score_maps(model: L3Net, images: torch.Tensor, audio_embeddings: torch.Tensor) -> torch.Tensor:
    """Correspondence probability at every last-conv location: ``(N, h, w)`` in [0, 1].

    ``images`` are tower inputs ``(N, 3, H, W)`` (any size: the vision tower is convolutional up to
    its last conv), ``audio_embeddings`` pool4 vectors ``(N, C)``. The head sees each location's
    conv4_2 vector (after ReLU) in place of the pool4 vector (see the module docstring).
    """
    layer = model.vision.last_conv
    conv = model.forward_features("vision", images, [layer])[layer]  # (N, C, h, w)
    local = conv.permute(0, 2, 3, 1)  # (N, h, w, C)
    audio = audio_embeddings[:, None, None, :].expand(-1, local.shape[1], local.shape[2], -1)
    logits = model.fuse(local, audio.to(local.dtype))
    return torch.softmax(logits.float(), dim=-1)[..., 1]


@torch.no_grad()
def low_res_heatmaps(
    model: L3Net,
    frames: np.ndarray | Sequence[np.ndarray],
    audio_clips: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 16,
    precision: str = "fp32",
) -> np.ndarray:
    """The score maps at the last conv's resolution, ``(N, h, w)`` float32 in [0, 1] (see :func:`heatmaps`)."""
    frames = _as_frames(frames)
    clips = _as_clips(audio_clips, len(frames), model.config.clip_samples)
    if batch_size <= 0:
        raise InputError(f"batch_size must be positive, got {batch_size}")
    device = _model_device(model)
    check_precision(precision, device)
    out = []
    for start in range(0, len(frames), batch_size):
        images = tower_input_frames(model, frames[start : start + batch_size]).to(device)
        with autocast(precision, device):
            audio = model.embed("audio", clips[start : start + batch_size].to(device))
            out.append(score_maps(model, images, audio).float().cpu())
    return torch.cat(out).numpy()


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of ``(N, h, w)`` maps to ``(N, height, width)`` (cell centres aligned)."""
    tensor = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[:, 0].numpy()


def heatmaps(
    model: L3Net,
    frames: np.ndarray | Sequence[np.ndarray],
    audio_clips: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 16,
    precision: str = "fp32",
) -> np.ndarray:
    """Where is the sound in each frame? ``(N, H, W)`` float32 in [0, 1], at the frames' size.

    ``frames``: ``(N, H, W, 3)`` uint8 RGB (or a list of same-size images: greyscale, RGBA, float in
    [0, 1] are converted). ``audio_clips``: ``(N, samples)`` float waveforms at 48 kHz
    (:data:`~l3net.config.SAMPLE_RATE`), one per frame, or ``(samples,)`` shared by all frames;
    at most ``model.config.clip_samples`` long (shorter clips are zero-padded). Each value is the
    head's probability that the sound corresponds to the picture at that place.
    """
    frames = _as_frames(frames)
    maps = low_res_heatmaps(model, frames, audio_clips, batch_size=batch_size, precision=precision)
    return upsample(maps, frames.shape[1], frames.shape[2])


def peak_location(heatmap: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` in pixels of a 2-D map's maximum: the centre of the peak pixel (pixel c spans [c, c+1))."""
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return float(col) + 0.5, float(row) + 0.5


# ------------------------------------------------------------------------------------------------
# the pointing game
# ------------------------------------------------------------------------------------------------
Box = Sequence[float]  # (x0, y0, x1, y1) in pixels, x to the right, y down


def point_in_boxes(point: tuple[float, float], boxes: Iterable[Box], tolerance: float = 0.0) -> bool:
    """Whether ``(x, y)`` lies inside (edges included) any box grown by ``tolerance`` pixels."""
    x, y = point
    return any(
        b[0] - tolerance <= x <= b[2] + tolerance and b[1] - tolerance <= y <= b[3] + tolerance for b in boxes
    )


def pointing_game(
    peaks: Sequence[tuple[float, float]], boxes: Sequence[Sequence[Box]], tolerance: float = 0.0
) -> np.ndarray:
    """Hits of the pointing game: one bool per frame, True when its peak is inside one of its boxes.

    ``peaks[i]`` is ``(x, y)`` in pixels; ``boxes[i]`` the sounding object's box(es) in frame ``i``
    as ``(x0, y0, x1, y1)`` pixels. Frames without a box must be left out by the caller (a miss and
    "nothing to find" are different things). ``tolerance`` (pixels) grows each box; the default 0
    asks for a strict hit.
    """
    if len(peaks) != len(boxes):
        raise InputError(f"{len(peaks)} peaks but {len(boxes)} box lists")
    return np.array([point_in_boxes(p, b, tolerance) for p, b in zip(peaks, boxes)], dtype=bool)


def centre_guess(height: int, width: int) -> tuple[float, float]:
    """The baseline's "peak": the centre of a ``height`` x ``width`` frame, ``(x, y)`` in pixels."""
    return width / 2.0, height / 2.0


# ------------------------------------------------------------------------------------------------
# drawing
# ------------------------------------------------------------------------------------------------
def _colormap_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray,
    *,
    scale: str = "frame",
    peak: tuple[float, float] | None = None,
    caption: str | None = None,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """The heatmap drawn over an H x W x 3 uint8 frame (same H x W), with the peak marked.

    ``scale="frame"`` stretches each map's own [min, max] over the colour map (where, in this
    frame); ``"absolute"`` maps probabilities 0..1 (how sure, comparable across frames).
    """
    if scale not in ("frame", "absolute"):
        raise InputError(f"scale must be 'frame' or 'absolute', got {scale!r}")
    values = heatmap.astype(np.float32)
    if scale == "frame":
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low) if high - low > 1e-12 else np.zeros_like(values)
    lut = _colormap_lut() if lut is None else lut
    colour = lut[np.clip((values * 255).round(), 0, 255).astype(np.uint8)]
    blended = (frame.astype(np.float32) * (1 - OVERLAY_ALPHA) + colour.astype(np.float32) * OVERLAY_ALPHA).round()
    image = Image.fromarray(blended.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if peak is not None:
        radius = max(3, min(frame.shape[:2]) // 24)
        x, y = peak
        for width, colour_ in ((3, (0, 0, 0)), (1, (255, 255, 255))):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=colour_, width=width)
    if caption:
        box = draw.textbbox((4, 4), caption)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=(0, 0, 0))
        draw.text((4, 4), caption, fill=(255, 255, 255))
    return np.asarray(image)


def _save_png(image: np.ndarray, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


class _OverlayVideo:
    """H.264 (or MPEG-4 when libx264 is missing) + AAC MP4 of the overlays, with the original sound.

    Written under a temporary name; :meth:`close` renames it into place (via :func:`atomic_path`).
    """

    def __init__(self, path: Path, fps: float, audio: np.ndarray | None) -> None:
        self._context = atomic_path(path, suffix=".mp4")
        self._tmp = self._context.__enter__()
        self.container = av.open(str(self._tmp), mode="w", format="mp4")
        self.rate = Fraction(fps).limit_denominator(1000)
        self.video = None
        self.audio = None
        self._audio_data = audio
        self._audio_done = 0
        self._frames = 0
        if audio is not None:
            try:
                self.audio = self.container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            except (av.error.FFmpegError, ValueError) as exc:  # an FFmpeg without an AAC encoder
                warnings.warn(f"{path}: no AAC encoder ({exc}); the video is written without sound")

    def _open_video(self, height: int, width: int) -> None:
        for codec in ("libx264", "mpeg4"):
            try:
                av.codec.Codec(codec, "w")
            except (av.error.FFmpegError, ValueError):
                continue
            self.video = self.container.add_stream(codec, rate=self.rate)
            break
        else:
            raise OutputError("FFmpeg has neither a libx264 nor an mpeg4 encoder: cannot write the overlay video")
        # 4:2:0 chroma needs even sizes.
        self.video.width, self.video.height = width - width % 2, height - height % 2
        self.video.pix_fmt = "yuv420p"

    def write(self, image: np.ndarray) -> None:
        if self.video is None:
            self._open_video(*image.shape[:2])
        image = np.ascontiguousarray(image[: self.video.height, : self.video.width])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._frames
        self._frames += 1
        for packet in self.video.encode(frame):
            self.container.mux(packet)
        self._write_audio_until(self._frames / float(self.rate))

    def _write_audio_until(self, seconds: float) -> None:
        if self.audio is None or self._audio_data is None:
            return
        end = round(seconds * SAMPLE_RATE)
        if end <= self._audio_done:
            return
        chunk = self._audio_data[self._audio_done : end]
        if chunk.size < end - self._audio_done:  # sound shorter than the pictures: silence
            chunk = np.pad(chunk, (0, end - self._audio_done - chunk.size))
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1), format="fltp", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._audio_done
        self._audio_done = end
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            if self.video is not None:
                for packet in self.video.encode():
                    self.container.mux(packet)
            if self.audio is not None:
                for packet in self.audio.encode():
                    self.container.mux(packet)
            self.container.close()
        except BaseException as exc:
            self.abort(exc)
            raise
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        error = exc or RuntimeError("aborted")
        try:
            self._context.__exit__(type(error), error, error.__traceback__)
        except BaseException:  # noqa: BLE001 - atomic_path re-raises what we hand it
            pass


# ------------------------------------------------------------------------------------------------
# a whole video
# ------------------------------------------------------------------------------------------------
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


def clip_window(centre: float, clip_seconds: float, available: float) -> tuple[float, float]:
    """``(start, end)`` seconds of the clip centred on ``centre``, moved to lie in ``[0, available]``.

    When less than one clip of sound is available the window is ``(0, available)`` (padded later).
    """
    start = min(max(0.0, centre - clip_seconds / 2), max(0.0, available - clip_seconds))
    return start, min(start + clip_seconds, available)


def _clip_at(audio: np.ndarray, centre: float, clip_samples: int) -> np.ndarray:
    start, end = clip_window(centre, clip_samples / SAMPLE_RATE, audio.size / SAMPLE_RATE)
    lo = round(start * SAMPLE_RATE)
    clip = audio[lo : lo + clip_samples]
    return np.pad(clip, (0, clip_samples - clip.size)) if clip.size < clip_samples else clip


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files of an earlier run killed mid-write (``kill -9``): ours, by name, so remove them."""
    names = [f".{VIDEO_FILE}.", f".{HEATMAPS_FILE}.", f".{SUMMARY_FILE}."]
    for directory, prefixes in ((out_dir, names), (out_dir / OVERLAY_DIRNAME, [".frame_"])):
        if directory.is_dir():
            for path in directory.glob(".*.tmp*"):
                if any(path.name.startswith(p) for p in prefixes):
                    path.unlink(missing_ok=True)


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
    _remove_stale_temporaries(out_dir)
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
    writer: _OverlayVideo | None = _OverlayVideo(out_dir / VIDEO_FILE, fps, audio) if write_video else None
    lut = _colormap_lut()
    total = max(1, math.ceil(scored * fps - 1e-9))

    bar = tqdm(total=total, desc=f"localize {path.name}", unit="frame", disable=not progress, file=sys.stderr)
    try:
        frames_iter = iter_video_frames(path, fps=fps, duration=scored, smaller_side=smaller_side)
        for batch in _batches(frames_iter, batch_size):
            batch_times = [t for t, _ in batch]
            frames = np.stack([f for _, f in batch])
            clips = np.stack([_clip_at(audio, t, clip_samples) for t in batch_times])
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


# ------------------------------------------------------------------------------------------------
# l3net eval localize: the pointing game on data with known boxes
# ------------------------------------------------------------------------------------------------
HELP = "Pointing game: is the heatmap's peak inside the sounding object's box? (synthetic world)"
DESCRIPTION = """The pointing game on videos whose sounding object has a known box (the synthetic world
of 'l3net synth', or its shards): for each frame, the heatmap of 'l3net localize' (the fusion head
applied at every conv4_2 location with the audio embedding of the 1 s clip centred on the frame)
scores a hit when its peak lies inside the box of the object making the sound. Compared with a
centre guess (the frame centre as the "peak") and with the same architecture with random weights.
Frames whose sounding object is off-screen or absent are left out (their count is in the JSON).

Writes eval/localize.json (table + metrics) and eval/localize_examples.png (frames, heatmaps,
boxes, peaks).

example:
  l3net eval localize --model runs/small --data shards/
  l3net eval localize --model random:small --data shards/ --out results/
"""
PROTOCOL = "localize"
EXAMPLES_FIGURE = "localize_examples.png"


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
        return _clip_at(self.audio, self.time, clip_samples)


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


def pointing_scores(
    model: L3Net,
    examples: Sequence[BoxedFrame],
    *,
    batch_size: int = 16,
    precision: str = "fp32",
    tolerance: float = 0.0,
    progress: bool = True,
    desc: str = "pointing game",
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Hits, peaks ``(N, 2)`` and low-resolution maps of ``model`` on boxed frames.

    Frames may differ in size: each batch groups frames of one size.
    """
    hits = np.zeros(len(examples), dtype=bool)
    peaks = np.zeros((len(examples), 2))
    maps: list[np.ndarray] = [np.zeros(0)] * len(examples)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, ex in enumerate(examples):
        by_size.setdefault(ex.frame.shape[:2], []).append(i)
    with tqdm(total=len(examples), desc=desc, unit="frame", disable=not progress, file=sys.stderr) as bar:
        for (height, width), indices in by_size.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                frames = np.stack([examples[i].frame for i in chunk])
                clips = np.stack([examples[i].clip(model.config.clip_samples) for i in chunk])
                low = low_res_heatmaps(model, frames, clips, batch_size=batch_size, precision=precision)
                full = upsample(low, height, width)
                for i, small, heat in zip(chunk, low, full):
                    peaks[i] = peak_location(heat)
                    maps[i] = small
                    hits[i] = point_in_boxes(tuple(peaks[i]), examples[i].boxes, tolerance)
                bar.update(len(chunk))
    return hits, peaks, maps


# -- reading boxed frames ------------------------------------------------------------------------
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
            print(f"l3net eval localize: skipped {exc}", file=sys.stderr)
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


# -- the protocol ----------------------------------------------------------------------------------
def wilson_interval(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (by default) Wilson score interval of a proportion ``hits / total``."""
    if total <= 0:
        return 0.0, 1.0
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _example_figure(
    examples: Sequence[BoxedFrame],
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, list[np.ndarray]]],
    count: int,
) -> Any:
    """Frames with their box, then each method's heatmap, peak and hit/miss, for ``count`` examples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    chosen = np.unique(np.linspace(0, len(examples) - 1, min(count, len(examples))).round().astype(int))
    columns = 1 + len(rows)
    fig, axes = plt.subplots(len(chosen), columns, figsize=(2.6 * columns, 2.3 * len(chosen)), squeeze=False)
    lut = _colormap_lut()
    for r, index in enumerate(chosen):
        ex = examples[index]
        height, width = ex.frame.shape[:2]
        centre = centre_guess(height, width)
        panels: list[tuple[np.ndarray, str, tuple[float, float] | None, bool | None]] = [
            (ex.frame, f"{ex.key[:10]} t={ex.time:.2f}s" + (f"\n{ex.label}" if ex.label else ""), centre, None)
        ]
        for name, hits, peaks, maps in rows:
            heat = upsample(maps[index][None], height, width)[0]
            panels.append((overlay(ex.frame, heat, lut=lut), name, tuple(peaks[index]), bool(hits[index])))
        for c, (image, title, point, hit) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(image)
            for x0, y0, x1, y1 in ex.boxes:
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
            if point is not None:
                marker = "x" if hit is None else "o"
                ax.plot([point[0]], [point[1]], marker=marker, markersize=9, markeredgewidth=2,
                        markerfacecolor="none", color="white" if hit is None else ("lime" if hit else "red"))
            if hit is not None:
                title += "\nhit" if hit else "\nmiss"
            elif r == 0:
                title += "\n(box; x = centre guess)"
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle("Pointing game: green box = sounding object; circle = heatmap peak (green hit, red miss)", fontsize=8)
    fig.tight_layout()
    return fig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="shards of a world with boxes ('l3net prepare' of 'l3net synth' output), or the 'l3net synth' "
        "folder itself (videos with NAME.boxes.json)",
    )
    parser.add_argument("--split", default="test", help="shard split to evaluate (default: test)")
    parser.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help=f"frames per second read from videos (default: {DEFAULT_FPS:g}; "
        "shards keep their own frames)"
    )
    parser.add_argument("--max-videos", type=int, help="use at most this many videos (default: all)")
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="grow each box by this many pixels (default: 0, a strict hit)"
    )
    parser.add_argument("--examples", type=int, default=6, help="examples drawn in the figure (default: 6)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.tolerance < 0:
        raise InputError(f"--tolerance must be >= 0, got {args.tolerance}")
    if args.max_videos is not None and args.max_videos <= 0:
        raise InputError(f"--max-videos must be positive, got {args.max_videos}")
    if args.out is None and not is_run_dir(args.model):
        eval_dir(args.model, None)  # the clear "pass --out" error, before any work
    model, label = load_eval_model(args.model, device=args.device, seed=args.seed)
    examples, counts = load_boxed_frames(args.data, split=args.split, fps=args.fps, max_videos=args.max_videos)
    if not examples:
        raise DatasetError(
            f"{args.data}: no frame has a visible sounding object ({counts['videos']} videos, "
            f"{counts['videos_without_boxes']} without boxes, {len(counts['unreadable'])} unreadable, "
            f"{counts['no_visible_source']} frames whose source is absent or off-screen); the pointing game "
            "needs ground-truth boxes, as 'l3net synth' makes"
        )
    out = eval_dir(args.model, args.out)  # created only now: a bad model or data leaves no empty folder
    common = {"batch_size": args.batch_size, "precision": args.precision, "tolerance": args.tolerance}
    hits, peaks, maps = pointing_scores(model, examples, desc=f"pointing game ({label})", **common)
    rows = [(label, hits, peaks, maps)]
    random_label = None
    notes = []
    if args.model == "random" or args.model.startswith("random:"):
        notes.append("the model has random weights itself: no separate random-network row")
    else:
        twin = build_model(model.config, seed=args.seed).to(_model_device(model)).eval()
        random_label = "random weights (same architecture)"
        r_hits, r_peaks, r_maps = pointing_scores(twin, examples, desc="pointing game (random weights)", **common)
        rows.append((random_label, r_hits, r_peaks, r_maps))
    centres = [centre_guess(*ex.frame.shape[:2]) for ex in examples]
    centre_hits = pointing_game(centres, [ex.boxes for ex in examples], args.tolerance)

    n = len(examples)
    table_rows = []
    accuracy: dict[str, float] = {}
    for name, h in [(name, h) for name, h, _, _ in rows] + [("centre guess (baseline)", centre_hits)]:
        k = int(h.sum())
        low, high = wilson_interval(k, n)
        accuracy[name] = k / n
        table_rows.append([name, round(k / n, 4), f"{low:.3f}-{high:.3f}", f"{k}/{n}"])
    excluded = counts["no_visible_source"] + counts["box_outside_frame"]
    metrics = {
        "accuracy": {
            "model": accuracy[label],
            "centre_guess": float(centre_hits.mean()),
            "random_weights": accuracy.get(random_label) if random_label else None,
        },
        "frames_scored": n,
        "frames_excluded": {
            "no_visible_source": counts["no_visible_source"],
            "box_outside_frame": counts["box_outside_frame"],
            "reason": "the pointing game needs the sounding object in the picture: frames whose sound source is "
            "absent or off-screen (a null box) or whose box lies outside the frame are left out",
        },
        "videos": counts["videos"],
        "videos_without_boxes": counts["videos_without_boxes"],
        "unreadable": counts["unreadable"],
        "tolerance_px": args.tolerance,
        "source": counts["source"],
        "split": args.split if counts["source"] == "shards" else None,
        "fps": args.fps if counts["source"] == "videos" else None,
        "heatmap": "softmax(fuse(conv4_2 vector at each location, pool4 audio embedding of the 1 s clip "
        "centred on the frame))[corresponds], upsampled bilinearly; peak = its maximum",
    }
    figure_path = save_figure(_example_figure(examples, rows, args.examples), out / EXAMPLES_FIGURE)
    result = {
        "title": "Sound localization: pointing game",
        "model": label,
        "dataset": f"{args.data} ({args.split} split)" if counts["source"] == "shards" else str(args.data),
        "tables": [
            {
                "title": f"Pointing game on {n} frames ({excluded} without a visible sounding object left out); "
                "the paper shows localization only qualitatively",
                "columns": ["method", "pointing-game accuracy", "95% interval", "hits"],
                "rows": table_rows,
            }
        ],
        "figures": [{"path": figure_path.name, "caption": "Examples (evenly spaced, not chosen): frame with the "
                     "sounding object's box, then each method's heatmap and peak"}],
        "metrics": metrics,
        "notes": notes,
    }
    path = write_result(out, PROTOCOL, result)
    for row in table_rows:
        print(f"{row[0]:<40} {row[1]:.3f}  ({row[2]}, {row[3]})")
    print(f"wrote {path} and {figure_path}")
    return 0
